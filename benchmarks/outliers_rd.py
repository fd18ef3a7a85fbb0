"""Rate-distortion of the "outliers" stage (dense + sparse) on the bundled real features:
the index codec at 1-8 bits with and without ``outliers=k``, in the feature domain.

For each tensor and k it reports the mean change in feature-domain MSE at equal bits per
value (whole streams), in dB, over the rate range both curves cover (log-MSE interpolated
linearly in bits per value): negative = the outliers stage is better.

    PYTHONPATH=$PWD python benchmarks/outliers_rd.py [--markdown]
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402


def curve(x: np.ndarray, outliers: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(bits per value, MSE) at 1..8 bits."""
    rate, mse = [], []
    for bits in range(1, 9):
        blob = featcodec.encode(x, bits=bits, outliers=outliers)
        rate.append(8 * len(blob) / x.size)
        mse.append(float(np.mean((featcodec.decode(blob).astype(np.float64) - x) ** 2)))
    return np.array(rate), np.array(mse)


def mean_db_change(base: tuple, other: tuple) -> float:
    """Mean of 10*log10(MSE_other / MSE_base) at equal rate over the shared rate range."""
    lo, hi = max(base[0].min(), other[0].min()), min(base[0].max(), other[0].max())
    if hi <= lo:
        return float("nan")
    r = np.linspace(lo, hi, 200)
    db = [10 * np.interp(r, c[0], np.log10(np.maximum(c[1], 1e-30))) for c in (base, other)]
    return float(np.mean(db[1] - db[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = []
    for path in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / "*.npy"))):
        x = np.load(path).astype(np.float32)
        base = curve(x, None)
        counts = {"k=8": 8, "k=64": 64, "k=0.5%": max(1, x.size // 200)}
        rows.append((Path(path).stem, x.shape, {name: mean_db_change(base, curve(x, k)) for name, k in counts.items()}))
    if a.markdown:
        print("| tensor | shape | k=8 | k=64 | k=0.5% of values |")
        print("|---|---|---|---|---|")
        for name, shape, d in rows:
            print(f"| {name} | {tuple(shape)} | " + " | ".join(f"{v:+.2f} dB" for v in d.values()) + " |")
    else:
        for name, shape, d in rows:
            print(name, shape, {k: round(v, 2) for k, v in d.items()})


if __name__ == "__main__":
    main()
