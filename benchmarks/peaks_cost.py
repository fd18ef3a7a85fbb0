"""What moving the peaks out exactly costs a learned encode: ``featcodec.encode(x,
codec=c, quality=q, check_quality=False)`` (the peaks of ``count_for_peaks`` in the
outliers section, the transform fitted on the rest) against the same encode without them
(``stages=["transform", "pack"]``), on the real features of tests/data/features, one
thread, thread CPU time, best of ``--repeat`` rounds (each round times every call in
turn). Also the time of ``count_for_peaks`` alone, and its count; and the default
encode, whose quality check (``featcodec.bounded.check_quality``: a decode of the learned
stream and one or two index-codec encodes and decodes) comes on top.

    PYTHONPATH=$PWD python benchmarks/peaks_cost.py [--codec hyperprior] [--quality 3] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def best(fs: list, repeat: int) -> list[float]:
    """Best thread CPU time of each of ``fs``, the functions run in turn every round."""
    t = [float("inf")] * len(fs)
    for _ in range(repeat):
        for i, f in enumerate(fs):
            t0 = time.thread_time()
            f()
            t[i] = min(t[i], time.thread_time() - t0)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codec", default="hyperprior")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    import torch

    import featcodec
    from featcodec.stages.outliers import count_for_peaks

    torch.set_num_threads(1)
    featcodec.set_num_threads(1)
    warnings.simplefilter("ignore", featcodec.QualityWarning)
    rows = []
    for path in sorted((ROOT / "tests" / "data" / "features").glob("*.npy")):
        x = np.load(path)
        kw = dict(codec=a.codec, quality=a.quality, check_quality=False)
        with_peaks, without, find, checked = best([
            lambda: featcodec.encode(x, **kw),
            lambda: featcodec.encode(x, stages=["transform", "pack"], **kw),
            lambda: count_for_peaks(x),
            lambda: featcodec.encode(x, codec=a.codec, quality=a.quality)], a.repeat)
        rows.append((path.stem, x.shape, count_for_peaks(x), without, with_peaks, find, checked))
        print(f"{path.stem} {x.shape}: peaks {rows[-1][2]}, without {1e3 * without:.2f} ms, "
              f"with {1e3 * with_peaks:.2f} ms, count_for_peaks {1e3 * find:.3f} ms, "
              f"default (checked) {1e3 * checked:.2f} ms", flush=True)
    if a.markdown:
        print(f"\n| tensor | shape | peaks | {a.codec} q{a.quality} without, ms | with, ms | with / without "
              "| count_for_peaks, ms | default (quality check), ms | default / with |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for stem, shape, k, wo, w, f, c in rows:
            print(f"| {stem} | {tuple(shape)} | {k} | {1e3 * wo:.2f} | {1e3 * w:.2f} | {w / wo:.2f} | {1e3 * f:.3f} "
                  f"| {1e3 * c:.2f} | {c / w:.2f} |")


if __name__ == "__main__":
    main()
