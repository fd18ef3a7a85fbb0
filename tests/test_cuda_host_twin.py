"""The CUDA kernels' per-element code (csrc/cuda/kernels.cu: index arithmetic for strided
views, channel selection, binary search on keys, bounds and NaN checks), run by the CPU
through featcodec._cuda's host twin, against numpy. Runs wherever featcodec._cuda was
built, GPU or not; test_kernels_gpu.py runs the same code on a device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import featcodec
from featcodec.transform import kernels

pytest.importorskip("featcodec._cuda")
from featcodec.transform import cuda  # noqa: E402


def heavy(shape, seed=1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.standard_t(2, shape) * 0.5).astype(np.float32))


def thresholds(T: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.concatenate([[0.0, -0.0, 1e-45, 1.0], rng.standard_t(2, max(T - 4, 0))])[:T]
    return np.sort(t.astype(np.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("T", [0, 3, 255, 1023])
@pytest.mark.parametrize("view", ["contiguous", "transposed", "sliced"])
def test_quantize_twin_equals_searchsorted(dtype, T, view):
    t = thresholds(T)
    x = heavy((40, 30, 6)).to(dtype)
    x.view(-1)[:T] = torch.from_numpy(t[:7200]).to(dtype)  # values equal to thresholds
    x = {"contiguous": x, "transposed": x.permute(2, 0, 1), "sliced": x[::3, 1:20:2]}[view]
    got = cuda.quantize(x, t, _host_twin=True)
    assert got.dtype == (torch.uint8 if T < 256 else torch.uint16)
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    ref = np.searchsorted(t.astype(np.float64 if dtype == torch.float64 else np.float32),
                          x.to(wide).numpy(), side="right")
    np.testing.assert_array_equal(got.numpy().astype(np.int64), ref)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_per_channel_twin(axis):
    x = heavy((5, 6, 7)).transpose(0, 2)
    C = x.shape[axis]
    t = np.sort(np.random.default_rng(2).standard_normal((C, 30)).astype(np.float32), axis=1)
    got = cuda.quantize(x, t, channel_axis=axis, _host_twin=True).numpy()
    np.testing.assert_array_equal(got, kernels.quantize(x.numpy(), t, channel_axis=axis))
    levels = np.random.default_rng(3).standard_normal((C, 31)).astype(np.float32)
    back = cuda.dequantize(torch.from_numpy(got).transpose(0, 1), levels, channel_axis=[1, 0, 2][axis % 3],
                           _host_twin=True)
    np.testing.assert_array_equal(back.numpy(), kernels.dequantize(got.transpose(1, 0, 2), levels,
                                                                   channel_axis=[1, 0, 2][axis % 3]))


def test_bfloat16_bits_twin():
    xb = heavy((33, 17)).bfloat16()
    t = thresholds(255)
    a = cuda.quantize(xb.view(torch.uint16), t, bfloat16=True, _host_twin=True)
    np.testing.assert_array_equal(a.numpy(), kernels.quantize(xb, t))


@pytest.mark.parametrize("idx_dtype", [torch.uint8, torch.uint16, torch.int32, torch.int64, torch.int8])
@pytest.mark.parametrize("out_dtype", ["float32", "float16", "bfloat16"])
def test_dequantize_twin_equals_take(idx_dtype, out_dtype):
    L = 100
    levels = (np.random.default_rng(4).standard_t(2, L) * 10).astype(np.float32)
    idx = torch.randint(0, L, (23, 17)).to(idx_dtype).t()
    got = cuda.dequantize(idx, levels, dtype=out_dtype, _host_twin=True)
    ref = torch.from_numpy(levels)[idx.long()].to(getattr(torch, out_dtype))
    assert got.dtype == ref.dtype and torch.equal(got, ref)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_twin_raises_with_first_position(bad):
    x = torch.zeros(50, 40)
    x[31, 7] = bad
    x[45, 0] = bad
    with pytest.raises(featcodec.InputError, match=r"first at index \(31, 7\)"):
        cuda.quantize(x, np.float32([0.0]), _host_twin=True)


def test_out_of_range_twin_raises():
    idx = torch.zeros(100, dtype=torch.int64)
    idx[70] = -3
    idx[90] = 5
    with pytest.raises(featcodec.InputError, match=r"holds -3 at index \(70,\)"):
        cuda.dequantize(idx, np.float32([0, 1]), _host_twin=True)
