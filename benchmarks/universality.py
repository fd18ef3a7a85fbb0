"""Universality of the learned codec (issue 4): leave one family out of training.

For every family F, two sets of training runs with the same schedule are compared on F's
held-out test tensors: ``all`` (trained on all four families) and ``no<F>`` (trained
without F, so F is unseen). Input: the DT-UFC 8-bit transform fitted per tap on
``--fit-samples`` train features, packed to a plane, indices / 255, exactly as in
training. Each run is coded exactly as the shipped codec would code it
(``learned_rd.Baseline``: exported weights, padding, integer table choice, our rANS); the
rate is the payload (the container around it is the same for both and left out). MSE and PSNR
are in the original feature domain, averaged over tensors as in ``learned_rd.py``.

The figure of merit is the BD-rate of ``no<F>`` against ``all`` on F (target: +10% or
less: an unseen family costs at most 10% more bits at equal PSNR).

Runs come from ``tools/train_learned.sh`` with ``TAG=_all FAMILIES=llm,vit,cnn,latent``
and ``TAG=_no<F> FAMILIES=<the other three>`` under one ``ROOT``, for example::

    for spec in all:llm,vit,cnn,latent nollm:vit,cnn,latent novit:llm,cnn,latent \\
                nocnn:llm,vit,latent nolatent:llm,vit,cnn; do
      ROOT=/work/lofo MAIN_STEPS=1200 FT_STEPS=300 UP_LMBDAS="0.02 0.06" DOWN_LMBDAS=0.002 \\
        TAG=_${spec%%:*} FAMILIES=${spec#*:} tools/train_learned.sh
    done
    PYTHONPATH=. python benchmarks/universality.py --runs-root /work/lofo --out docs/universality

With ``POLISH_STEPS=k`` every model is then polished k more steps at its own lambda into
``ROOT/polished/``; ``--runs-root ROOT/polished`` compares those (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import Baseline, _psnr, bd_psnr, bd_rate  # noqa: E402

FAMILIES = ("llm", "vit", "cnn", "latent")
_RUN = re.compile(r"^(?P<arch>[a-z]+)_dtufc_(?P<tag>all|no[a-z]+)_(?P<lmbda>[0-9.e-]+)$")


def find_runs(root: Path) -> dict[str, list[Path]]:
    """tag ("all", "nollm", ...) -> run directories with a checkpoint, by ascending lambda."""
    runs: dict[str, list[tuple[float, Path]]] = defaultdict(list)
    for d in sorted(root.iterdir()):
        m = _RUN.match(d.name)
        if m and (d / "ckpt.pt").exists():
            runs[m["tag"]].append((float(m["lmbda"]), d))
    return {t: [p for _, p in sorted(v)] for t, v in runs.items()}


@lru_cache(maxsize=None)
def load_run(d: Path) -> Baseline:
    """A run, exported and loaded once (the "all" runs serve every family)."""
    return Baseline(d)


def evaluate(corpus: Path, family: str, runs: dict[str, list[Path]], per_tap: int,
             fit_samples: int) -> dict[str, list[tuple[float, float, float]]]:
    """tag -> [(lambda, BPFP, PSNR)] for ``family``'s test tensors, one point per run."""
    import featcodec
    from featcodec.codecs.learned.data import TapTransform, load_manifest, tap_key

    taps = defaultdict(list)
    for e in sorted(load_manifest(corpus), key=lambda e: (tap_key(e), str(e["input_id"]))):
        if e["family"] == family:
            taps[tap_key(e)].append(e)
    tensors = []
    for es in taps.values():
        train = [e for e in es if e["split"] == "train"][:fit_samples]
        test = [e for e in es if e["split"] == "test"][:per_tap]
        if train and test:
            tt = TapTransform.fit("dtufc", np.concatenate([np.load(e["abspath"]).ravel() for e in train]))
            tensors += [(tt, np.load(e["abspath"]).astype(np.float32)) for e in test]
    out = {}
    for tag, dirs in runs.items():
        pts = []
        for d in dirs:
            net = load_run(d)
            rates, psnrs = [], []
            for tt, x in tensors:
                plane, info = featcodec.pack(x)
                bits, y = net.code(tt.to_unit(plane))
                xr = featcodec.unpack(tt.from_unit(y).astype(np.float32), info)
                rates.append(bits / x.size)
                psnrs.append(_psnr(x, float(np.mean((xr.astype(np.float64) - x) ** 2))))
            pts.append((float(net.config["lmbda"]), float(np.mean(rates)), float(np.mean(psnrs))))
        out[tag] = pts
    return out


def report(res: dict[str, dict], steps: dict[str, list[int]], root: str = "") -> str:
    lines = [f"# Universality: each family left out of training (runs under {root})\n",
             "Made by `python benchmarks/universality.py` (its docstring has the method). "
             "BPFP = payload bits per value, PSNR in the feature domain, means over the "
             "held-out family's test tensors.\n",
             "| held-out family | BD-rate of no-F vs all | BD-PSNR | all: BPFP / PSNR per lambda | "
             "no-F: BPFP / PSNR per lambda |", "|---|---|---|---|---|"]
    bds = []
    for fam, cur in res.items():
        a, n = cur["all"], cur[f"no{fam}"]
        args = ([p[1] for p in a], [p[2] for p in a], [p[1] for p in n], [p[2] for p in n])
        br, bp = bd_rate(*args), bd_psnr(*args)
        bds.append(br)
        cell = lambda ps: ", ".join(f"{r:.3f} / {p:.2f}" for _, r, p in ps)  # noqa: E731
        lines.append(f"| {fam} | {br:+.1f}% | {bp:+.2f} dB | {cell(a)} | {cell(n)} |")
    fin = [b for b in bds if math.isfinite(b)]
    lines.append(f"| **mean** | **{np.mean(fin):+.1f}%** | | | |" if fin else "| **mean** | n/a | | | |")
    lines.append(f"\nTraining steps of each run, by ascending lambda (fine-tunes start from their neighbour's checkpoint): {json.dumps(steps)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--runs-root", default="/work/lofo", help="ROOT of the training runs")
    ap.add_argument("--per-tap", type=int, default=4, help="test tensors per tap")
    ap.add_argument("--fit-samples", type=int, default=10)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--out", default="docs/universality", help="writes <out>.md and <out>.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    runs = find_runs(Path(a.runs_root))
    if "all" not in runs:
        raise SystemExit(f"no '_all' runs under {a.runs_root}: train them first (see --help)")
    res = {}
    for fam in a.families:
        if f"no{fam}" not in runs:
            print(f"{fam}: no 'no{fam}' runs, skipped", flush=True)
            continue
        res[fam] = evaluate(Path(a.corpus), fam, {"all": runs["all"], f"no{fam}": runs[f"no{fam}"]},
                            a.per_tap, a.fit_samples)
        print(fam, json.dumps(res[fam]), flush=True)
    steps = {t: [load_run(d).steps for d in ds] for t, ds in runs.items()}
    text = report(res, steps, a.runs_root)
    Path(f"{a.out}.json").write_text(json.dumps({"curves": res, "steps": steps}, indent=1))
    Path(f"{a.out}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
