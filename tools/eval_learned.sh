#!/usr/bin/env bash
# After tools/train_learned.sh (INPUT=dtufc and INPUT=caufc): export the DT-UFC runs as the
# shipped weights, then measure everything docs/results.md reports.
# Usage: tools/eval_learned.sh [export] [rd] [speed] [fidelity] [universality]   (default: all)
# universality needs the leave-one-family-out runs under LOFO_ROOT (benchmarks/universality.py).
set -euo pipefail
PY=${PY:-/work/venv/bin/python}
CORPUS=${CORPUS:-/work/corpus}
ROOT=${ROOT:-/work/train}
RUNS=${RUNS:-$ROOT/polished}   # the runs to ship and compare (train_learned.sh's last stage)
LMBDAS=${LMBDAS:-"0.0005 0.002 0.006 0.02 0.06 0.15"}   # increasing rate = quality 1..6
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
steps=${*:-export rd speed fidelity universality}
for s in $steps; do
  case $s in
    export)
      ckpts=()
      for l in $LMBDAS; do ckpts+=("$RUNS/hyperprior_dtufc_$l/ckpt.pt"); done
      $PY -m featcodec.learned.export --codec hyperprior --out featcodec/learned/weights "${ckpts[@]}" ;;
    rd)
      $PY benchmarks/learned_rd.py --corpus "$CORPUS" --per-tap 4 \
          --baseline-runs "$RUNS/hyperprior_caufc_*" --out docs/learned_rd ;;
    speed)
      $PY benchmarks/learned_speed.py --corpus "$CORPUS" --out docs/learned_speed.json ;;
    fidelity)
      csv=benchmarks/results/task_fidelity_hyperprior.csv
      rm -f "$csv"
      $PY benchmarks/task_fidelity.py run --settings hyperprior --out "$csv"
      $PY benchmarks/task_fidelity.py report --csv benchmarks/results/task_fidelity_llm_cnn.csv \
          benchmarks/results/task_fidelity_vit_latent.csv "$csv" ;;
    universality)
      $PY benchmarks/universality.py --corpus "$CORPUS" --runs-root "${LOFO_ROOT:-/work/lofo}" \
          --out docs/universality ;;
    *) echo "unknown step $s" >&2; exit 2 ;;
  esac
done
