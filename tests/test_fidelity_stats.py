"""The task-fidelity harness's bootstrap (benchmarks/fidelity_stats.py) against independent
references: the normal approximation of a Bernoulli mean, the delta-method standard error of
a ratio of sums, and the closed forms of the exact binomial interval at k = 0 and k = n."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_stats.py"
_spec = importlib.util.spec_from_file_location("fidelity_stats", _PATH)
fs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fs)

Z975 = 1.959963984540054  # standard normal 97.5% quantile


def test_bernoulli_mean_matches_normal_approximation() -> None:
    n, k = 400, 120
    x = np.r_[np.ones(k), np.zeros(n - k)]
    iv = fs.bootstrap_ratio(x, seed=1)
    p = k / n
    half = Z975 * math.sqrt(p * (1 - p) / n)  # 0.0449
    assert iv.estimate == p
    assert iv.low == pytest.approx(p - half, abs=0.006)
    assert iv.high == pytest.approx(p + half, abs=0.006)


def test_ratio_of_sums_matches_delta_method() -> None:
    """LLM-like: sequences of different lengths; the CI of pooled agreement over positions,
    resampling whole sequences, has the delta-method width of a ratio estimator."""
    rng = np.random.default_rng(3)
    T = rng.integers(60, 244, size=300).astype(np.float64)
    agree = np.round(T * np.clip(rng.normal(0.9, 0.05, size=T.size), 0, 1))
    iv = fs.bootstrap_ratio(agree, T, seed=7)
    r = agree.sum() / T.sum()
    se = math.sqrt(np.sum((agree - r * T) ** 2)) / T.sum()
    assert iv.estimate == pytest.approx(r, rel=1e-12)
    assert iv.high - iv.low == pytest.approx(2 * Z975 * se, rel=0.08)
    assert iv.low < r < iv.high


def test_deterministic_with_seed() -> None:
    x = np.random.default_rng(0).random(50)
    a, b = fs.bootstrap_ratio(x, seed=5), fs.bootstrap_ratio(x, seed=5)
    assert a == b
    assert fs.bootstrap_ratio(x, seed=6) != a
    assert fs.bootstrap_ratio(x) == fs.bootstrap_ratio(x, seed=fs.SEED)


def test_constant_input_and_errors() -> None:
    iv = fs.bootstrap_ratio(np.ones(256))
    assert (iv.estimate, iv.low, iv.high) == (1.0, 1.0, 1.0)  # the degenerate case the doc names
    assert all(math.isnan(v) for v in fs.bootstrap_ratio(np.zeros(0)))
    with pytest.raises(ValueError):
        fs.bootstrap_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        fs.bootstrap_ratio(np.ones(3), level=1.0)


@pytest.mark.parametrize("n", [24, 256, 1000])
def test_clopper_pearson_closed_forms(n: int) -> None:
    a = (1 - fs.LEVEL) / 2
    assert fs.clopper_pearson(n, n).low == pytest.approx(a ** (1 / n), rel=1e-9)
    assert fs.clopper_pearson(n, n).high == 1.0
    assert fs.clopper_pearson(0, n).high == pytest.approx(1 - a ** (1 / n), rel=1e-9)
    mid = fs.clopper_pearson(n // 2, n)
    assert mid.low < 0.5 < mid.high
