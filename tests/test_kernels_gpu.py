"""The CUDA kernels against numpy and the CPU kernels. Every test here needs a CUDA device
and the compiled featcodec._cuda module; without them the tests are skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import featcodec
from featcodec.transform import kernels

cuda = pytest.importorskip("featcodec.transform.cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda.available(), reason="needs a CUDA device and featcodec._cuda"),
]

DEV = "cuda"


def thresholds(T: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.concatenate([[0.0, -0.0, 1e-45, 1.0], rng.standard_t(2, max(T - 4, 0))])[:T]
    return np.sort(t.astype(np.float32))


def heavy(shape, seed=1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.standard_t(2, shape) * 0.5).astype(np.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("T", [0, 1, 255, 1023, 65535])
def test_quantize_on_device_equals_searchsorted(dtype, T):
    t = thresholds(T)
    x = heavy((300, 257)).to(dtype)
    x[0, :T] = torch.from_numpy(t[:257]).to(dtype)  # values equal to thresholds
    got = kernels.quantize(x.to(DEV), t)
    assert got.device.type == "cuda" and got.dtype == (torch.uint8 if T < 256 else torch.uint16)
    wide = np.float64 if dtype == torch.float64 else np.float32
    ref = np.searchsorted(t.astype(wide), x.to(torch.float64 if dtype == torch.float64 else torch.float32).numpy(), side="right")
    np.testing.assert_array_equal(got.cpu().numpy().astype(np.int64), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_16bit_pattern_matches_the_cpu_kernel(dtype):
    bits = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    x = bits.view(dtype)
    x = x[torch.isfinite(x.float())]
    t = thresholds(255)
    np.testing.assert_array_equal(kernels.quantize(x.to(DEV), t).cpu().numpy(), kernels.quantize(x, t))


def test_strided_views_and_raw_bfloat16_bits():
    x = heavy((64, 48, 3)).to(DEV)
    t = thresholds(255)
    for view in (x.transpose(0, 2), x[::2, 1::3], x.permute(1, 2, 0)[:, :, 5:40]):
        ref = np.searchsorted(t, view.cpu().numpy(), side="right")
        np.testing.assert_array_equal(kernels.quantize(view, t).cpu().numpy(), ref)
    xb = x.bfloat16()
    np.testing.assert_array_equal(
        kernels.quantize(xb.view(torch.uint16), t, bfloat16=True).cpu().numpy(),
        kernels.quantize(xb, t).cpu().numpy(),
    )


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_on_device(axis):
    x = heavy((7, 9, 11))
    C = x.shape[axis]
    t = np.sort(np.random.default_rng(2).standard_normal((C, 40)).astype(np.float32), axis=1)
    got = kernels.quantize(x.to(DEV), t, channel_axis=axis).cpu().numpy()
    np.testing.assert_array_equal(got, kernels.quantize(x.numpy(), t, channel_axis=axis))
    levels = np.random.default_rng(3).standard_normal((C, 41)).astype(np.float32)
    back = kernels.dequantize(torch.from_numpy(got).to(DEV), levels, channel_axis=axis)
    np.testing.assert_array_equal(back.cpu().numpy(), kernels.dequantize(got, levels, channel_axis=axis))


@pytest.mark.parametrize("idx_dtype", [torch.uint8, torch.uint16, torch.int32, torch.int64, torch.int16])
@pytest.mark.parametrize("out_dtype", ["float32", "float16", "bfloat16"])
def test_dequantize_on_device_equals_take(idx_dtype, out_dtype):
    L = 200
    levels = (np.random.default_rng(4).standard_t(2, L) * 10).astype(np.float32)
    idx = torch.randint(0, L, (123, 77)).to(idx_dtype)
    got = kernels.dequantize(idx.to(DEV).t(), levels, dtype=out_dtype)
    ref = torch.from_numpy(levels)[idx.t().long()].to(getattr(torch, out_dtype))
    assert got.device.type == "cuda" and got.dtype == ref.dtype
    assert torch.equal(got.cpu(), ref)


def test_runs_on_the_current_stream_and_writes_out():
    x = heavy((1 << 20,)).to(DEV)
    t = thresholds(255)
    out = torch.empty(x.shape, dtype=torch.uint8, device=DEV)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())  # x and out were made on the default stream
    with torch.cuda.stream(s):
        res = kernels.quantize(x, t, out=out)
    s.synchronize()
    assert res is out
    np.testing.assert_array_equal(out.cpu().numpy(), np.searchsorted(t, x.cpu().numpy(), side="right"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_on_device_raises_with_position(bad):
    x = torch.zeros(5000, device=DEV)
    x[4321] = bad
    x[4999] = bad
    with pytest.raises(featcodec.InputError, match=r"first at index \(4321,\)"):
        kernels.quantize(x, np.float32([0.0]))


def test_out_of_range_index_on_device_raises():
    idx = torch.zeros(1000, dtype=torch.int64, device=DEV)
    idx[700] = -1
    with pytest.raises(featcodec.InputError, match=r"holds -1 at index \(700,\)"):
        kernels.dequantize(idx, np.float32([0, 1]))
    idx[700] = 2
    with pytest.raises(featcodec.InputError, match="outside"):
        kernels.dequantize(idx.to(torch.uint8), np.float32([0, 1]))


def test_transform_and_codec_keep_device_tensors_on_the_device():
    x = heavy((4, 64, 32))
    t = featcodec.fit_transform(x, bits=8)
    idx = t.forward(x.to(DEV))
    assert idx.device.type == "cuda" and torch.equal(idx.cpu(), t.forward(x))
    y = t.inverse(idx)
    assert y.device.type == "cuda" and torch.equal(y.cpu(), t.inverse(t.forward(x)))
    blob = featcodec.encode(x.to(DEV), transform=t)
    assert blob == featcodec.encode(x, transform=t)
    z = featcodec.decode(blob, device=DEV)
    assert z.device.type == "cuda" and torch.equal(z.cpu(), featcodec.decode(blob))
