#!/usr/bin/env bash
# Developer build: compile featcodec._core into ./build/dev and drop it into ./featcodec,
# so `PYTHONPATH=$PWD python -c "import featcodec"` uses this work tree without installing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >/dev/null
cmake --build build/dev
cp build/dev/_core*.so featcodec/
