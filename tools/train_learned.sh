#!/usr/bin/env bash
# Train the shipped learned codecs: one model at a middle lambda, then chains of short
# fine-tunes towards higher and lower rates, each starting from its neighbour's
# checkpoint (a small move per stage), then every model polished at its own lambda
# (POLISH_STEPS more steps, seed 1, into $ROOT/polished/; with POLISH_ROUNDS=k, round r
# continues round r-1 with seed r into $ROOT/polished<r>/). INPUT=dtufc (the transform)
# or caufc (baseline).
# Usage: INPUT=dtufc MAIN_STEPS=4000 FT_STEPS=1000 POLISH_STEPS=1000 tools/train_learned.sh
# Every stage resumes from its own checkpoint if rerun.
set -euo pipefail
PY=${PY:-/work/venv/bin/python}
CORPUS=${CORPUS:-/work/corpus}
ROOT=${ROOT:-/work/train}
INPUT=${INPUT:-dtufc}
DISTORTION=${DISTORTION:-index}      # or feature: the error after the inverse transform
ARCH=${ARCH:-hyperprior}
MAIN_LMBDA=${MAIN_LMBDA:-0.006}
UP_LMBDAS=${UP_LMBDAS:-"0.02 0.06 0.15"}   # fine-tune chain towards higher rates
DOWN_LMBDAS=${DOWN_LMBDAS:-"0.002 0.0005"}  # and towards lower rates
MAIN_STEPS=${MAIN_STEPS:-4000}
FT_STEPS=${FT_STEPS:-1000}
POLISH_STEPS=${POLISH_STEPS:-1000}   # 0: no polishing stage
POLISH_ROUNDS=${POLISH_ROUNDS:-1}
LR=${LR:-3e-4}
FT_LR=${FT_LR:-1e-4}
FAMILIES=${FAMILIES:-llm,vit,cnn,latent}
TAG=${TAG:-}
N=${N:-48}
M=${M:-192}
BATCH=${BATCH:-4}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
common=(--corpus "$CORPUS" --arch "$ARCH" --input "$INPUT" --distortion "$DISTORTION" --families "$FAMILIES"
        --threads 1 --seed 0 --N "$N" --M "$M" --batch "$BATCH" --no-progress)
run() { echo "$ROOT/${ARCH}_${INPUT}${TAG}_$1"; }
$PY -m featcodec.codecs.learned.train "${common[@]}" --out "$(run "$MAIN_LMBDA")" --lr "$LR" \
    --lmbda "$MAIN_LMBDA" --steps "$MAIN_STEPS" --lr-drop-at 0.85
for chain in "$UP_LMBDAS" "$DOWN_LMBDAS"; do
  prev=$MAIN_LMBDA
  for l in $chain; do
    $PY -m featcodec.codecs.learned.train "${common[@]}" --out "$(run "$l")" --lr "$FT_LR" \
        --lmbda "$l" --steps "$FT_STEPS" --init "$(run "$prev")/ckpt.pt" --lr-drop-at 0.7
    prev=$l
  done
done
polished() { [ "$1" -eq 1 ] && echo "$ROOT/polished" || echo "$ROOT/polished$1"; }
if [ "$POLISH_STEPS" -gt 0 ]; then  # (the later --seed wins)
  for r in $(seq 1 "$POLISH_ROUNDS"); do
    for l in $MAIN_LMBDA $UP_LMBDAS $DOWN_LMBDAS; do
      init="$(run "$l")/ckpt.pt"
      [ "$r" -gt 1 ] && init="$(polished $((r - 1)))/${ARCH}_${INPUT}${TAG}_$l/ckpt.pt"
      $PY -m featcodec.codecs.learned.train "${common[@]}" --seed "$r" \
          --out "$(polished "$r")/${ARCH}_${INPUT}${TAG}_$l" --lr "$FT_LR" --lmbda "$l" \
          --steps "$POLISH_STEPS" --init "$init" --lr-drop-at 0.7
    done
  done
fi
