#!/usr/bin/env bash
# Train the shipped learned codecs: one model at a middle lambda, then short fine-tunes
# to the other lambdas (rate points). INPUT=dtufc (the transform) or caufc (baseline).
# Usage: INPUT=dtufc MAIN_STEPS=5000 FT_STEPS=800 tools/train_learned.sh
# Every stage resumes from its own checkpoint if rerun.
set -euo pipefail
PY=${PY:-/work/venv/bin/python}
CORPUS=${CORPUS:-/work/corpus}
ROOT=${ROOT:-/work/train}
INPUT=${INPUT:-dtufc}
ARCH=${ARCH:-hyperprior}
MAIN_LMBDA=${MAIN_LMBDA:-0.008}
FT_LMBDAS=${FT_LMBDAS:-"0.002 0.03 0.0005 0.1"}
MAIN_STEPS=${MAIN_STEPS:-5000}
FT_STEPS=${FT_STEPS:-800}
LR=${LR:-2e-4}
FAMILIES=${FAMILIES:-llm,vit,cnn,latent}
TAG=${TAG:-}
N=${N:-64}
M=${M:-64}
BATCH=${BATCH:-8}
REFRESH=${REFRESH:-0}   # >0 while the corpus is still being extracted
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
common=(--corpus "$CORPUS" --arch "$ARCH" --input "$INPUT" --lr "$LR" --families "$FAMILIES"
        --threads 1 --seed 0 --N "$N" --M "$M" --batch "$BATCH" --no-progress)
main="$ROOT/${ARCH}_${INPUT}${TAG}_$MAIN_LMBDA"
$PY -m featcodec.learned.train "${common[@]}" --out "$main" --lmbda "$MAIN_LMBDA" \
    --steps "$MAIN_STEPS" --refresh-every "$REFRESH"
for l in $FT_LMBDAS; do
  $PY -m featcodec.learned.train "${common[@]}" --out "$ROOT/${ARCH}_${INPUT}${TAG}_$l" \
      --lmbda "$l" --steps "$FT_STEPS" --init "$main/ckpt.pt" --lr-drop-at 0.7
done
