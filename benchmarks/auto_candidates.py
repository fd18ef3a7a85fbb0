"""Which of codec="auto"'s candidates has the lowest feature-domain MSE within a rate, and
where the value stages (outliers, rotation) would stand among them, on the real features.

    PYTHONPATH=$PWD python benchmarks/auto_candidates.py [--targets 0.5,1,2] [--markdown]

For each tensor of tests/data/features and each target (bits per value of the whole
stream), the candidates of featcodec.ratecontrol (``ratecontrol.candidates``: the index
codec at the most bits that fit, the finest max_error that fits, on maps the same on the
spatial stage's coefficients, each learned codec at its highest fitting quality, its peaks
moved out exactly) and two more: the index codec at the most bits that fit after the ``outliers`` stage
(one value in 4096 moved out, at least 8 and at most 256) and after the ``rotation`` stage. Prints
each one's bits per value and MSE relative to the tensor's variance, and which wins.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402
from featcodec import pipeline, ratecontrol  # noqa: E402
from featcodec.stages import DEFAULT_STAGES  # noqa: E402


def candidates(x: np.ndarray, target: float) -> dict[str, bytes]:
    """ratecontrol's own candidates (what ``encode(x, codec="auto", target_bpfp=target)``
    chooses among) and the index codec after the outliers and rotation stages."""
    budget = target * x.size / 8
    out = {name: s for name, (s, _) in ratecontrol.candidates(x, target, {"transform": "auto"}).items()}

    def most_bits(opts: dict, stages) -> bytes:
        enc = functools.lru_cache(maxsize=None)(
            lambda b: (pipeline.encode(x, "index", {**opts, "bits": b}, None, stages), None))
        return ratecontrol._most_bits_within(budget, enc)[0]

    k = int(min(256, max(8, x.size >> 12)))  # a handful per token or channel, not a share
    out["outliers + index"] = most_bits({"transform": "auto", "outliers": k}, ["outliers", *DEFAULT_STAGES])
    try:
        out["rotation + index"] = most_bits({"transform": "auto", "rotation": True}, ["rotation", *DEFAULT_STAGES])
    except featcodec.InputError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="0.5,1,2")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore", featcodec.QualityWarning)
    rows = []
    for path in sorted((ROOT / "tests" / "data" / "features").glob("*.npy")):
        x = np.load(path).astype(np.float32)
        var = float(np.var(x.astype(np.float64)))
        for target in map(float, a.targets.split(",")):
            budget = target * x.size / 8
            res = {}
            for name, blob in candidates(x, target).items():
                y = featcodec.decode(blob)
                res[name] = (8 * len(blob) / x.size, float(np.mean((y.astype(np.float64) - x) ** 2)) / var,
                             len(blob) <= budget)
            fit = {n: r for n, r in res.items() if r[2]}
            win = min(fit, key=lambda n: fit[n][1]) if fit else "-"
            rows.append((path.stem, target, res, win))
            print(path.stem, target, "winner:", win, {n: f"{r[0]:.2f}b {r[1]:.2e}" for n, r in res.items()}, flush=True)
    if a.markdown:
        names = sorted({n for _, _, res, _ in rows for n in res}, key=lambda n: (n.startswith(("outliers", "rotation")), n))
        print("\n| tensor | target | " + " | ".join(names) + " | lowest MSE within the target |")
        print("|---|---:|" + "---:|" * len(names) + "---|")
        for stem, target, res, win in rows:
            cells = [f"{res[n][1]:.2e}" + ("" if res[n][2] else " (over)") if n in res else "-" for n in names]
            print(f"| {stem} | {target:g} | " + " | ".join(cells) + f" | {win} |")


if __name__ == "__main__":
    main()
