"""BD-rate and BD-PSNR of one method's curves in two ``learned_rd.py`` (or ``heldout_rd.py``)
JSON files, per family: how much a retrained codec gained over the weights it replaced,
measured on the same test tensors with the same stream accounting.

A family's point is the mean over its tensors (BPFP = stream bits / values, PSNR in the
feature domain), as in learned_rd.py; BD figures are of NEW against OLD (negative
BD-rate: fewer bits at equal PSNR). Earlier runs' JSON files are in git history::

    git show 37c30f0:docs/learned_rd.json > /tmp/before.json   # first-polish hyperprior
    PYTHONPATH=$PWD python benchmarks/compare_rd.py /tmp/before.json docs/learned_rd.json hyperprior
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import bd_psnr, bd_rate  # noqa: E402

FAMILIES = ("cnn", "latent", "llm", "vit")


def curve(points: list[dict], method: str, family: str) -> tuple[np.ndarray, np.ndarray]:
    """(BPFP, PSNR) per point of ``method`` on ``family``, each the mean over tensors."""
    by: dict[int, list[tuple[float, float]]] = {}
    for p in points:
        if p["method"] == method and p["family"] == family:
            by.setdefault(p["point"], []).append((p["bits"] / p["n"], p["psnr"]))
    keys = sorted(by)
    return (np.array([np.mean([r for r, _ in by[k]]) for k in keys]),
            np.array([np.mean([q for _, q in by[k]]) for k in keys]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="learned_rd.py JSON of the earlier weights")
    ap.add_argument("new", help="learned_rd.py JSON of the later weights")
    ap.add_argument("method", help="the method to compare, e.g. hyperprior, elic, caufc")
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help="comma list (heldout_rd.py's families, for its JSON files)")
    a = ap.parse_args()
    old = json.loads(Path(a.old).read_text())["points"]
    new = json.loads(Path(a.new).read_text())["points"]
    rates = []
    print(f"| family | BD-rate of {a.method}, new vs old | BD-PSNR |")
    print("|---|---|---|")
    for fam in a.families.split(","):
        r1, p1 = curve(old, a.method, fam)
        r2, p2 = curve(new, a.method, fam)
        if len(r1) < 2 or len(r2) < 2:
            print(f"| {fam} | no curve | |")
            continue
        b = bd_rate(r1, p1, r2, p2)
        rates.append(b)
        print(f"| {fam} | {b:+.1f}% | {bd_psnr(r1, p1, r2, p2):+.2f} dB |")
    print(f"| **mean** | **{np.nanmean(rates):+.1f}%** | |")


if __name__ == "__main__":
    main()
