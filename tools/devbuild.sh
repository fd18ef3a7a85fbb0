#!/usr/bin/env bash
# Developer build: compile featcodec._core into ./build/dev and drop it into ./featcodec,
# so `PYTHONPATH=$PWD python -c "import featcodec"` uses this work tree without installing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
  -DFEATCODEC_CUDA="${FEATCODEC_CUDA:-AUTO}" >/dev/null
cmake --build build/dev
cp build/dev/_core*.so featcodec/
if ls build/dev/_cuda*.so >/dev/null 2>&1; then cp build/dev/_cuda*.so featcodec/; fi
