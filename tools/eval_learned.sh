#!/usr/bin/env bash
# After tools/train_learned.sh (INPUT=dtufc and INPUT=caufc): export the DT-UFC runs as the
# shipped weights, then measure everything docs/results.md reports.
# Usage: tools/eval_learned.sh [export] [rd] [speed] [fidelity] [universality]   (default: all)
#        tools/eval_learned.sh export-elic rd-elic speed-elic fidelity-elic
# universality needs the leave-one-family-out runs under LOFO_ROOT (benchmarks/universality.py).
# The -elic steps ship and measure the ELIC runs of ELIC_RUNS (train_learned.sh with
# ARCH=elic ROOT=/work/train_elic POLISH_ROUNDS=5: docs/learned.md), merging their RD
# points into the existing docs/learned_rd.json.
set -euo pipefail
PY=${PY:-/work/venv/bin/python}
CORPUS=${CORPUS:-/work/corpus}
ROOT=${ROOT:-/work/train}
RUNS=${RUNS:-$ROOT/polished2}  # the runs to ship and compare (train_learned.sh POLISH_ROUNDS=2: its last stage)
LMBDAS=${LMBDAS:-"0.0005 0.002 0.006 0.02 0.06 0.15"}   # increasing rate = quality 1..6
ELIC_RUNS=${ELIC_RUNS:-/work/train_elic/polished5}  # the fifth polishing round
ELIC_LMBDAS=${ELIC_LMBDAS:-"0.0015 0.006 0.03"}            # int8 weights: 3 fit the 40 MB
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
steps=${*:-export rd speed fidelity universality}
for s in $steps; do
  case $s in
    export)
      ckpts=()
      for l in $LMBDAS; do ckpts+=("$RUNS/hyperprior_dtufc_$l/ckpt.pt"); done
      $PY -m featcodec.codecs.learned.export --codec hyperprior --out featcodec/codecs/learned/weights "${ckpts[@]}" ;;
    rd)
      $PY benchmarks/learned_rd.py --corpus "$CORPUS" --per-tap 4 \
          --baseline-runs "$RUNS/hyperprior_caufc_*" --out docs/learned_rd ;;
    speed)
      $PY benchmarks/learned_speed.py --corpus "$CORPUS" --out docs/learned_speed.json ;;
    fidelity|fidelity-elic)
      codec=hyperprior; [ "$s" = fidelity-elic ] && codec=elic
      csv=benchmarks/results/task_fidelity_$codec.csv
      rm -f "$csv"
      $PY benchmarks/task_fidelity.py run --settings $codec --out "$csv"
      $PY benchmarks/task_fidelity.py report --csv benchmarks/results/task_fidelity_llm_cnn.csv \
          benchmarks/results/task_fidelity_vit_latent.csv \
          $(ls benchmarks/results/task_fidelity_{hyperprior,elic,max_error}.csv 2>/dev/null) ;;
    export-elic)
      ckpts=()
      for l in $ELIC_LMBDAS; do ckpts+=("$ELIC_RUNS/elic_dtufc_$l/ckpt.pt"); done
      $PY -m featcodec.codecs.learned.export --codec elic --weights int8 --out featcodec/codecs/learned/weights \
          "${ckpts[@]}" ;;
    rd-elic)
      $PY benchmarks/learned_rd.py --corpus "$CORPUS" --per-tap 4 --methods elic \
          --merge docs/learned_rd.json --out docs/learned_rd ;;
    speed-elic)
      $PY benchmarks/learned_speed.py --codec elic --corpus "$CORPUS" --out docs/learned_speed_elic.json ;;
    universality)
      $PY benchmarks/universality.py --corpus "$CORPUS" --runs-root "${LOFO_ROOT:-/work/lofo}" \
          --out docs/universality ;;
    *) echo "unknown step $s" >&2; exit 2 ;;
  esac
done
