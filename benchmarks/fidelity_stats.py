"""Confidence intervals for the task-fidelity harness (benchmarks/task_fidelity.py).

Every task metric is a statistic over held-out inputs; its uncertainty comes from which
inputs were drawn, so the bootstrap resamples **inputs** (never positions or pixels of one
input, which are correlated). All statistics here are ratios of sums over inputs,
``sum(num) / sum(den)``:

- a plain mean over inputs (CNN top-1 agreement, ViT CLS cosine): ``den = 1``;
- the LLM's next-token agreement over all positions: ``num`` = agreeing positions of a
  sequence, ``den`` = its positions (so a resampled sequence brings all its positions);
- the latent's relative PSNR: ``num`` = PSNR of the compressed decode, ``den`` = PSNR of
  the uncompressed decode, both vs the source image (paired: one input, one pair).

The interval is the percentile bootstrap at ``level`` with a seeded numpy generator, so the
same rows always give the same interval.

Example:
    >>> lo_hi = bootstrap_ratio(np.r_[np.ones(90), np.zeros(10)], seed=0)
    >>> lo_hi.estimate, round(lo_hi.low, 2), round(lo_hi.high, 2)
    (0.9, 0.84, 0.95)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["Interval", "bootstrap_ratio", "clopper_pearson", "N_BOOT", "SEED", "LEVEL"]

N_BOOT = 10_000  #: bootstrap resamples
SEED = 20261207  #: numpy seed of the resampling
LEVEL = 0.95  #: two-sided coverage


class Interval(NamedTuple):
    """A point estimate with its two-sided confidence interval."""

    estimate: float
    low: float
    high: float

    def fmt(self, digits: int = 4) -> str:
        """``0.9912 [0.9871, 0.9950]``."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_ratio(num: np.ndarray, den: np.ndarray | None = None, *, n_boot: int = N_BOOT,
                    level: float = LEVEL, seed: int = SEED) -> Interval:
    """``sum(num) / sum(den)`` over inputs and its percentile-bootstrap interval.

    ``num[i]``, ``den[i]`` belong to input ``i``; a resample draws ``n`` inputs with
    replacement and keeps each input's pair together. ``den`` defaults to ones (the mean of
    ``num``). Deterministic for a given ``seed``. An empty input gives NaNs.
    """
    num = np.asarray(num, np.float64).ravel()
    den = np.ones_like(num) if den is None else np.asarray(den, np.float64).ravel()
    if num.shape != den.shape:
        raise ValueError(f"num and den differ in length: {num.size} vs {den.size}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = num.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    est = float(num.sum() / den.sum())
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    stats = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return Interval(est, float(lo), float(hi))


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> Interval:
    """The exact (Clopper-Pearson) binomial interval of ``k`` successes in ``n`` trials.

    A cross-check for 0/1 metrics: when every input agrees the bootstrap interval collapses
    to ``[1, 1]``, while the exact one keeps the sampling uncertainty (``n = 256``, ``k =
    n``: lower bound ``0.025 ** (1 / 256) = 0.9857``).

    >>> round(clopper_pearson(256, 256).low, 4)
    0.9857
    """
    from scipy.stats import beta

    if not 0 <= k <= n or n == 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return Interval(k / n, lo, hi)
