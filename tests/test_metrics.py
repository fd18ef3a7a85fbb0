"""featcodec.metrics against numpy / scipy and the definitions in the papers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

import featcodec
from featcodec import metrics

RNG = np.random.default_rng(5)
A = RNG.standard_normal((30, 40)).astype(np.float32)
B = (A + RNG.standard_normal((30, 40)) * 0.1).astype(np.float32)


def test_mse_and_psnr_match_numpy():
    ref = np.mean((A.astype(np.float64) - B.astype(np.float64)) ** 2)
    assert metrics.mse(A, B) == pytest.approx(ref, rel=1e-12)
    peak = float(A.max() - A.min())
    assert metrics.psnr(A, B) == pytest.approx(10 * math.log10(peak**2 / ref), rel=1e-12)
    assert metrics.psnr(A, B, peak=1.0) == pytest.approx(10 * math.log10(1 / ref), rel=1e-12)
    assert metrics.psnr(A, A) == math.inf and metrics.mse(A, A) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_inputs(dtype):
    a, b = torch.from_numpy(A).to(dtype), torch.from_numpy(B).to(dtype)
    ref = np.mean((a.double().numpy() - b.double().numpy()) ** 2)
    assert metrics.mse(a, b) == pytest.approx(ref, rel=1e-12)


def test_metric_errors():
    with pytest.raises(featcodec.InputError, match="shape"):
        metrics.mse(A, B[:, :3])
    with pytest.raises(featcodec.InputError, match="NaN"):
        metrics.mse(A, np.full_like(A, np.nan))
    with pytest.raises(featcodec.InputError, match="empty"):
        metrics.mse(np.zeros(0, np.float32), np.zeros(0, np.float32))
    with pytest.raises(featcodec.InputError, match="peak"):
        metrics.psnr(np.ones(3), np.zeros(3))
    with pytest.raises(featcodec.InputError, match="peak"):
        metrics.psnr(A, B, peak=-1.0)
    with pytest.raises(featcodec.InputError):
        metrics.mse(np.arange(3), np.arange(3))


def test_bpfp():
    x = np.zeros((4, 8), np.float32)
    assert metrics.bpfp(b"\x00" * 4, x) == 1.0
    assert metrics.bpfp([b"ab", bytearray(b"cd"), memoryview(b"ef")], 48) == 1.0
    assert metrics.bpfp(16, torch.zeros(32)) == 0.5
    with pytest.raises(featcodec.InputError):
        metrics.bpfp("text", 3)
    with pytest.raises(featcodec.InputError):
        metrics.bpfp(b"a", 0)
    with pytest.raises(featcodec.InputError):
        metrics.bpfp([b"a", 3], 4)
    with pytest.raises(featcodec.InputError):
        metrics.bpfp(-1, 4)


def test_histogram_matches_numpy():
    x = RNG.standard_normal(10_000)
    h = metrics.histogram(x, bins=50, range=(-3, 3))
    inside = x[(x >= -3) & (x <= 3)]
    ref, _ = np.histogram(np.clip(x, -3, 3), bins=50, range=(-3, 3))
    np.testing.assert_allclose(h, ref / len(x), atol=2 / len(x))  # edge rounding only
    assert h.sum() == pytest.approx(1.0) and len(inside) < len(x)
    idx = RNG.integers(0, 256, 5000).astype(np.uint8)
    np.testing.assert_array_equal(metrics.histogram(idx), np.bincount(idx, minlength=256) / 5000)
    with pytest.raises(featcodec.InputError):
        metrics.histogram(idx, bins=100)
    with pytest.raises(featcodec.InputError):
        metrics.histogram(x, bins=0)


def test_kl_divergence_matches_scipy():
    p = RNG.random(64) + 0.01
    q = RNG.random(64) + 0.01
    assert metrics.kl_divergence_from_histograms(p, q, eps=0) == pytest.approx(entropy(p, q), rel=1e-12)
    assert metrics.kl_divergence_from_histograms(p, p) == 0.0
    x = RNG.standard_normal(20_000)
    y = RNG.standard_t(2, 20_000)
    rng_ = (min(x.min(), y.min()), max(x.max(), y.max()))
    hx = metrics.histogram(x, bins=128, range=rng_)
    hy = metrics.histogram(y, bins=128, range=rng_)
    assert metrics.kl_divergence(x, y, bins=128) == pytest.approx(
        metrics.kl_divergence_from_histograms(hx, hy), rel=1e-12
    )
    # Lloyd-Max indices of heavy-tailed values are far more balanced than the uniform
    # (min-max) alignment's: closer to the flat histogram
    flat = np.full(256, 1 / 256)
    lm = featcodec.fit_transform(y.astype(np.float32), bits=8)
    un = featcodec.fit_uniform(y.astype(np.float32), bits=8)
    kl_lm = metrics.kl_divergence_from_histograms(metrics.histogram(lm.forward(y)), flat)
    kl_un = metrics.kl_divergence_from_histograms(metrics.histogram(un.forward(y)), flat)
    assert kl_lm < 0.2 * kl_un


def test_kl_errors():
    with pytest.raises(featcodec.InputError):
        metrics.kl_divergence_from_histograms([1, 2], [1, 2, 3])
    with pytest.raises(featcodec.InputError):
        metrics.kl_divergence_from_histograms([0, 0], [1, 1])
    with pytest.raises(featcodec.InputError):
        metrics.kl_divergence_from_histograms([-1, 2], [1, 1])
    with pytest.raises(featcodec.InputError):
        metrics.kl_divergence(np.arange(4, dtype=np.uint8), np.ones(4))
    assert metrics.kl_divergence_from_histograms([1, 0], [0, 1], eps=0) == math.inf


def test_robust_scale_matches_scipy_and_ignores_massive_values():
    from scipy.stats import median_abs_deviation

    x = np.random.default_rng(3).standard_t(3, 10_001).astype(np.float32)
    want = float(median_abs_deviation(x.astype(np.float64), scale="normal"))
    assert metrics.robust_scale(x) == pytest.approx(want, rel=1e-5)  # 1.4826 vs 1/Phi^-1(3/4)
    x[:5] = 2e4  # a few massive activations barely move it, unlike the standard deviation
    assert metrics.robust_scale(x) == pytest.approx(want, rel=0.01) and np.std(x) > 100 * want
    assert metrics.robust_scale(torch.from_numpy(x).to(torch.bfloat16)) == pytest.approx(want, rel=0.02)
    with pytest.raises(featcodec.InputError):
        metrics.robust_scale(np.array([1.0, np.nan]))
