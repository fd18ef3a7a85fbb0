"""featcodec.transform.kernels against numpy: quantize == np.searchsorted(side="right"),
dequantize == levels[idx], for every dtype, layout, channel mode and thread count."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featcodec
from featcodec.transform import kernels

# FEATCODEC_HYPOTHESIS_EXAMPLES=2000 for a thorough run; the default keeps the suite quick.
SETTINGS = settings(
    max_examples=int(os.environ.get("FEATCODEC_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow])

F32_SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38, 1.1754944e-38,
     3.4028235e38, -3.4028235e38, 65504.0, -65504.0, 6e-8, 1e-3, 0.5, -0.5, 2.0, 1e10],
    dtype=np.float32,
)


@pytest.fixture(autouse=True)
def _restore_threads():
    n = kernels.get_num_threads()
    yield
    kernels.set_num_threads(n)


# ------------------------------------------------------------------------------- helpers


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    wide = np.asarray(np.asarray(bits).astype(np.uint32) << np.uint32(16), dtype=np.uint32)
    return wide.reshape(-1).view(np.float32).reshape(wide.shape)


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (round to nearest even) through torch, the reference."""
    return torch.from_numpy(np.ascontiguousarray(x)).bfloat16().view(torch.int16).numpy().view(np.uint16)


def reference_quantize(x, t, kind, channel_axis=None):
    """np.searchsorted in the contract's comparison type, per channel if asked."""
    if kind == "bfloat16":
        xw, tw = bf16_to_f32(x), t.astype(np.float32)
    elif x.dtype == np.float64:
        xw, tw = x, t.astype(np.float64)
    else:
        xw, tw = x.astype(np.float32), t.astype(np.float32)
    if channel_axis is None or t.ndim == 1:
        r = np.searchsorted(tw, xw, side="right")
    else:
        moved = np.moveaxis(xw, channel_axis, 0)
        r = np.stack([np.searchsorted(tw[c], moved[c], side="right") for c in range(tw.shape[0])])
        r = np.moveaxis(r, 0, channel_axis)
    return r


def finite_bit_patterns(kind: str) -> np.ndarray:
    """Every finite 16-bit pattern of float16 or bfloat16."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    if kind == "float16":
        return bits[(bits & 0x7C00) != 0x7C00].view(np.float16)
    return bits[(bits & 0x7F80) != 0x7F80]


@st.composite
def sorted_thresholds(draw, max_t=300):
    n = draw(st.integers(0, max_t))
    mode = draw(st.sampled_from(["normal", "special", "dense", "dups", "even"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "even":  # evenly spaced (uniform transforms), jittered up to 0.49 step: the grid-guess plan
        lo, step = rng.standard_normal() * 10.0 ** rng.integers(-40, 30), 10.0 ** rng.uniform(-44, 35)
        t = lo + step * (np.arange(n) + rng.uniform(-0.49, 0.49, n) * rng.integers(0, 2))
    elif mode == "normal":
        t = rng.standard_t(2, n) * 10.0 ** rng.integers(-3, 3)
    elif mode == "special":
        t = rng.choice(F32_SPECIAL, n)
    elif mode == "dense":  # many thresholds in one table bucket
        t = 1.0 + rng.random(n) * 1e-3
    else:
        t = rng.choice(rng.standard_normal(max(1, n // 4)), n)
    return np.sort(t.astype(np.float32))


def values_for(t: np.ndarray, dtype, n: int, rng) -> np.ndarray:
    """Values that hit thresholds exactly, their neighbours, specials and random ones."""
    pool = [rng.standard_t(2, n) * 3, rng.choice(F32_SPECIAL, n)]
    if t.size:
        pool.append(rng.uniform(t[0], t[-1], n) if np.isfinite(float(t[-1]) - float(t[0])) else rng.choice(t, n))
        exact = rng.choice(t, n)
        with np.errstate(over="ignore"):
            pool += [exact, np.nextafter(exact, np.float32(np.inf)), np.nextafter(exact, np.float32(-np.inf))]
    v = np.concatenate(pool).astype(np.float64)
    v = v[np.isfinite(v)]
    rng.shuffle(v)
    if dtype == "bfloat16":
        bits = f32_to_bf16(v[:n].astype(np.float32))
        return np.where((bits & 0x7F80) == 0x7F80, 0, bits).astype(np.uint16)  # no +-Inf
    if dtype == np.float64:
        v = v[:n] + rng.choice([0.0, 1e-12, -1e-12, 1e-300], n) * np.abs(v[:n])
        return v
    with np.errstate(over="ignore"):
        out = v[:n].astype(dtype)
    return np.where(np.isfinite(out), out, 0).astype(dtype)


def strided_view(a: np.ndarray, how: int) -> np.ndarray:
    """A non-contiguous view of the same values' kind: transposed, sliced or reversed."""
    if how == 0 or a.ndim == 0:
        return a
    if how == 1:
        return a.T
    if how == 2:
        return a[(slice(None, None, 2),) * a.ndim]
    return a[(slice(None, None, -1),) * a.ndim]


DTYPES = [np.float16, np.float32, np.float64, "bfloat16"]


# ------------------------------------------------------------------------------- quantize


@SETTINGS
@given(
    t=sorted_thresholds(),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 9), min_size=0, max_size=3),
    how=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    threads=st.integers(1, 4),
)
def test_quantize_matches_searchsorted(t, dtype, shape, how, seed, threads):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape)) * 2 ** len(shape)
    big_shape = tuple(2 * s for s in shape)
    x = values_for(t, dtype, n, rng).reshape(big_shape)
    x = strided_view(x, how)
    kernels.set_num_threads(threads)
    bf = dtype == "bfloat16"
    got = kernels.quantize(x, t, bfloat16=bf)
    ref = reference_quantize(x, t, "bfloat16" if bf else None)
    assert got.shape == x.shape
    assert got.dtype == (np.uint8 if t.size + 1 <= 256 else np.uint16)
    np.testing.assert_array_equal(got, ref)


@SETTINGS
@given(
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    ndim=st.integers(1, 3),
    how=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_per_channel_quantize_matches_searchsorted(data, dtype, ndim, how, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 7, ndim))
    x = strided_view(values_for(np.float32([0, 1]), dtype, int(np.prod(shape)) * 2**ndim, rng).reshape(
        tuple(2 * s for s in shape)), how)
    axis = data.draw(st.integers(-ndim, ndim - 1))
    C = x.shape[axis]
    T = data.draw(st.integers(0, 40))
    t = np.stack([data.draw(sorted_thresholds(max_t=0)) if T == 0 else
                  np.sort(rng.choice(np.concatenate([F32_SPECIAL, rng.standard_normal(T)]), T))
                  for _ in range(C)]).astype(np.float32).reshape(C, T)
    bf = dtype == "bfloat16"
    got = kernels.quantize(x, t, bfloat16=bf, channel_axis=axis)
    np.testing.assert_array_equal(got, reference_quantize(x, t, "bfloat16" if bf else None, axis % ndim))


@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
@pytest.mark.parametrize("tiles", [1, 5])  # 1: per-element path; 5: complete 65536-entry table
def test_every_16bit_pattern(kind, tiles):
    rng = np.random.default_rng(1)
    x = np.tile(finite_bit_patterns(kind), tiles)
    t = np.sort(np.concatenate([rng.standard_t(2, 250), [0.0, -0.0, 6e-8, -6e-8, 65504]]).astype(np.float32))
    got = kernels.quantize(x, t, bfloat16=kind == "bfloat16")
    np.testing.assert_array_equal(got, reference_quantize(x, t, kind if kind == "bfloat16" else None))


@settings(max_examples=int(os.environ.get("FEATCODEC_HYPOTHESIS_EXAMPLES", "60")) // 3, deadline=None)
@given(t=sorted_thresholds(max_t=400), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1),
       per_channel=st.booleans())
def test_large_inputs_match_searchsorted(t, dtype, seed, per_channel):
    """Inputs large enough for the bucket-table plan (>= 4096 values per channel)."""
    rng = np.random.default_rng(seed)
    x = values_for(t, dtype, 3 * 20000, rng).reshape(3, 20000)
    bf = dtype == "bfloat16"
    if per_channel:  # one row of thresholds per channel, channel axis outermost
        tc = np.stack([t, np.sort(t * np.float32(0.5)), np.sort(-t)]).astype(np.float32)
        got = kernels.quantize(x, tc, bfloat16=bf, channel_axis=0)
        ref = reference_quantize(x, tc, "bfloat16" if bf else None, 0)
    else:
        got = kernels.quantize(x[:, ::-1], t, bfloat16=bf)
        ref = reference_quantize(x[:, ::-1], t, "bfloat16" if bf else None)
    np.testing.assert_array_equal(got, ref)


def test_float64_rounds_between_float32_neighbours():
    t = np.array([-3.4028235e38, -1.0, -1e-45, 0.0, 1e-45, 1.0, 3.4028235e38], np.float32)
    t64 = t.astype(np.float64)
    near = np.concatenate([t64, np.nextafter(t64, np.inf), np.nextafter(t64, -np.inf)])
    extra = np.array([1e300, -1e300, 5e-324, -5e-324, 1e-46, -1e-46, 0.7e-45, -0.7e-45, -0.0,
                      3.4028236e38, -3.4028236e38, 2.9e-45, -2.9e-45])
    x = np.concatenate([near, extra])
    np.testing.assert_array_equal(kernels.quantize(x, t), np.searchsorted(t64, x, side="right"))


@pytest.mark.parametrize("T", [255, 256, 1023, 65535])
def test_uint16_output_for_many_levels(T):
    rng = np.random.default_rng(T)
    t = np.sort(rng.standard_normal(T).astype(np.float32))
    x = np.concatenate([rng.standard_normal(20000).astype(np.float32), rng.choice(t, 5000)])
    got = kernels.quantize(x, t)
    assert got.dtype == (np.uint8 if T <= 255 else np.uint16)
    np.testing.assert_array_equal(got, np.searchsorted(t, x, side="right"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [4, 6, 9, 12, 16])
def test_uniform_transforms_match_searchsorted(dtype, bits):
    """The thresholds featcodec's uniform and error-bounded transforms make (evenly spaced
    after rounding to float32) take the grid-guess plan; exact on values at, next to,
    between and beyond the thresholds, per channel with the channel axis last, and with
    +-0.0 and subnormal spacings."""
    from featcodec.transform import uniform_transform

    rng = np.random.default_rng(bits)
    for (lo, hi), n in itertools.product(((-3.0, 5.0), (1e-40, 3e-39), (-2e4, 2.3e4), (0.0, 1.0)), (3000, 40_000)):
        t = uniform_transform(lo, hi, bits).thresholds
        x = values_for(t, dtype, n, rng)  # (3000 values: too few for a bucket table)
        bf = dtype == "bfloat16"
        np.testing.assert_array_equal(kernels.quantize(x, t, bfloat16=bf),
                                      reference_quantize(x, t, "bfloat16" if bf else None))
    tc = uniform_transform([-1.0, 0.0, -7.0], [1.0, 1e-3, 9.0], bits, channel_axis=1).thresholds
    x = values_for(tc[2], dtype, 3 * 5000, rng).reshape(5000, 3)  # channel changes per element
    bf = dtype == "bfloat16"
    np.testing.assert_array_equal(kernels.quantize(x, tc, bfloat16=bf, channel_axis=1),
                                  reference_quantize(x, tc, "bfloat16" if bf else None, 1))


def test_no_thresholds_gives_zeros():
    x = np.float32([-1e30, 0.0, 5.0])
    np.testing.assert_array_equal(kernels.quantize(x, np.zeros(0, np.float32)), [0, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, "bfloat16", np.float64])
def test_results_identical_for_any_thread_count(dtype):
    rng = np.random.default_rng(7)
    x32 = (rng.standard_t(2, (600, 700)) * 2).astype(np.float32)
    x = f32_to_bf16(x32) if dtype == "bfloat16" else x32.astype(dtype)
    t = np.quantile(x32, np.linspace(0, 1, 257)[1:-1]).astype(np.float32)
    per_ch = np.sort(rng.standard_normal((700, 31)).astype(np.float32), axis=1)
    # per-channel uniform 6-bit levels along the last axis: the grid-guess plan
    even = np.stack([np.linspace(-a, a, 63) for a in rng.uniform(1, 20, 700)]).astype(np.float32)
    results, ch_results, even_results = [], [], []
    for n in (1, 2, 3, 4):
        kernels.set_num_threads(n)
        results.append(kernels.quantize(x[:, ::-1], t, bfloat16=dtype == "bfloat16"))
        ch_results.append(kernels.quantize(x, per_ch, bfloat16=dtype == "bfloat16", channel_axis=1))
        even_results.append(kernels.quantize(x, even, bfloat16=dtype == "bfloat16", channel_axis=1))
    bf = "bfloat16" if dtype == "bfloat16" else None
    np.testing.assert_array_equal(results[0], reference_quantize(x[:, ::-1], t, bf))
    np.testing.assert_array_equal(ch_results[0], reference_quantize(x, per_ch, bf, 1))
    np.testing.assert_array_equal(even_results[0], reference_quantize(x, even, bf, 1))
    for r, c, e in zip(results[1:], ch_results[1:], even_results[1:]):
        np.testing.assert_array_equal(r, results[0])
        np.testing.assert_array_equal(c, ch_results[0])
        np.testing.assert_array_equal(e, even_results[0])


def test_out_argument_is_written_in_place_and_views_are_not_copied():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 64)).astype(np.float32)
    t = np.float32([-1, 0, 1])
    out = np.empty((64, 32), np.uint8)[:, :]
    res = kernels.quantize(x[:, ::2], t, out=out)
    assert res is out
    np.testing.assert_array_equal(out, np.searchsorted(t, x[:, ::2], side="right"))
    out_t = np.empty((32, 64), np.uint8).T  # a transposed (non-contiguous) out
    kernels.quantize(x[:, 1::2], t, out=out_t)
    np.testing.assert_array_equal(out_t, np.searchsorted(t, x[:, 1::2], side="right"))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, "bfloat16"])
def test_unaligned_buffers(dtype):
    """Arrays at odd byte offsets (np.frombuffer) are read and written correctly."""
    rng = np.random.default_rng(9)
    t = np.sort(rng.standard_normal(255).astype(np.float32))
    x = rng.standard_normal(300_000).astype(np.float32)
    x = f32_to_bf16(x) if dtype == "bfloat16" else x.astype(dtype)
    raw = bytearray(x.nbytes + 1)
    raw[1:] = x.tobytes()
    xu = np.frombuffer(raw, dtype=x.dtype, offset=1)
    assert not xu.flags.aligned
    out = np.frombuffer(bytearray(x.size * 2 + 1), dtype=np.uint16, offset=1)[: x.size]
    t1k = np.sort(rng.standard_normal(1000).astype(np.float32))
    bf = dtype == "bfloat16"
    np.testing.assert_array_equal(kernels.quantize(xu, t, bfloat16=bf), kernels.quantize(x, t, bfloat16=bf))
    kernels.quantize(xu, t1k, bfloat16=bf, out=out)
    np.testing.assert_array_equal(out, kernels.quantize(x, t1k, bfloat16=bf))
    levels = rng.standard_normal(1001).astype(np.float32)
    y = np.frombuffer(bytearray(x.size * 4 + 1), dtype=np.float32, offset=1)[: x.size]
    kernels.dequantize(out, levels, out=y)
    np.testing.assert_array_equal(y, levels[out])


def test_torch_cpu_tensors_are_accepted():
    x = torch.randn(40, 30)
    t = np.float32([-0.5, 0, 0.5])
    np.testing.assert_array_equal(kernels.quantize(x, t), np.searchsorted(t, x.numpy(), side="right"))
    xb = x.bfloat16()
    np.testing.assert_array_equal(kernels.quantize(xb, t), np.searchsorted(t, xb.float().numpy(), side="right"))
    np.testing.assert_array_equal(kernels.quantize(xb.view(torch.uint16), t, bfloat16=True), kernels.quantize(xb, t))
    idx = torch.from_numpy(kernels.quantize(x, t))
    np.testing.assert_array_equal(kernels.dequantize(idx, np.float32([1, 2, 3, 4])),
                                  np.float32([1, 2, 3, 4])[idx.numpy()])


def test_empty_and_scalar_inputs():
    t = np.float32([0.0, 1.0])
    assert kernels.quantize(np.zeros((0, 5), np.float32), t).shape == (0, 5)
    assert kernels.quantize(np.array(0.5, np.float32), t).shape == ()
    assert kernels.quantize(np.array(0.5, np.float32), t)[()] == 1
    assert kernels.dequantize(np.zeros((3, 0), np.uint8), t).shape == (3, 0)


# ------------------------------------------------------------------------------- dequantize


@SETTINGS
@given(
    L=st.integers(1, 70000),
    idx_dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.int32, np.int64, np.int16]),
    out_dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    how=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
    threads=st.integers(1, 4),
)
def test_dequantize_matches_numpy_take(L, idx_dtype, out_dtype, shape, how, seed, threads):
    rng = np.random.default_rng(seed)
    L = min(L, int(np.iinfo(idx_dtype).max) + 1)
    levels = (rng.standard_t(2, L) * 100).astype(np.float32)
    idx = strided_view(rng.integers(0, L, [2 * s for s in shape]).astype(idx_dtype), how)
    kernels.set_num_threads(threads)
    got = kernels.dequantize(idx, levels, dtype=out_dtype)
    ref = levels[idx]
    if out_dtype == "float16":
        ref = ref.astype(np.float16)
    elif out_dtype == "bfloat16":
        ref = f32_to_bf16(ref)
    assert got.dtype == ref.dtype and got.shape == idx.shape
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_dequantize(axis):
    rng = np.random.default_rng(11)
    idx = rng.integers(0, 16, (6, 7, 8)).astype(np.uint8)
    C = idx.shape[axis]
    levels = rng.standard_normal((C, 16)).astype(np.float32)
    got = kernels.dequantize(idx, levels, channel_axis=axis)
    moved = np.moveaxis(idx, axis, 0)
    ref = np.moveaxis(np.stack([levels[c][moved[c]] for c in range(C)]), 0, axis)
    np.testing.assert_array_equal(got, ref)


def test_quantize_then_dequantize_large_parallel():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2_500_000).astype(np.float32)  # the inverse splits from 2**21 values
    t = np.quantile(x, np.linspace(0, 1, 1025)[1:-1]).astype(np.float32)
    levels = np.concatenate([[t[0] - 1], (t[1:] + t[:-1]) / 2, [t[-1] + 1]]).astype(np.float32)
    outs = []
    for n in (1, 2, 4):
        kernels.set_num_threads(n)
        outs.append(kernels.dequantize(kernels.quantize(x, t), levels, dtype="float16"))
    ref = levels[np.searchsorted(t, x, side="right")].astype(np.float16)
    for o in outs:
        np.testing.assert_array_equal(o, ref)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, "bfloat16"])
@pytest.mark.parametrize("n", [10, 300_000])
def test_non_finite_input_raises_with_position(bad, dtype, n):
    x = np.zeros(n, np.float32)
    x[n - 3] = bad
    x = f32_to_bf16(x) if dtype == "bfloat16" else x.astype(dtype)
    for t in (np.float32([0.0]), np.arange(-100, 100, dtype=np.float32)):  # the second: grid-guess plan
        with pytest.raises(featcodec.InputError, match=rf"NaN or Inf \(first at index \({n - 3},\)\)"):
            kernels.quantize(x, t, bfloat16=dtype == "bfloat16")
    with pytest.raises(featcodec.InputError, match="NaN or Inf"):
        kernels.quantize(x.reshape(-1, 1), np.float32([[0.0]]), bfloat16=dtype == "bfloat16", channel_axis=1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_thresholds_that_come_back_give_the_same_indices(dtype):
    # the second call with the same thresholds builds a table plan and keeps it; the calls
    # after it use it at any size: each against np.searchsorted, and it still finds NaN/Inf
    rng = np.random.default_rng(7)
    t = np.sort(rng.standard_t(3, 255)).astype(np.float32)
    for n in (5, 300, 4_000, 20_000, 70_000, 20_000, 7):
        x = (rng.standard_t(3, n) * 1.3).astype(dtype)
        x[: min(n, 3)] = t[:3]  # values on thresholds
        want = np.searchsorted(t.astype(np.float64), x.astype(np.float64), side="right")  # exact for all three
        np.testing.assert_array_equal(kernels.quantize(x, t), want)
        np.testing.assert_array_equal(kernels.quantize(x[::-1], t), want[::-1])  # strided input
    x = np.zeros(20_000, dtype)
    x[12_345] = np.nan
    with pytest.raises(featcodec.InputError, match=r"first at index \(12345,\)"):
        kernels.quantize(x, t)


@pytest.mark.parametrize(
    "thresholds, kwargs, match",
    [
        (np.float32([1, 0]), {}, "ascending"),
        (np.float32([[0, 1], [1, 0], [0, 1]]), {"channel_axis": 0}, r"ascending; row 1"),
        (np.float32([0, np.nan]), {}, "finite"),
        (np.float32([0, np.inf]), {}, "finite"),
        (np.float32([[0, 1]] * 3), {}, "channel_axis"),
        (np.float32([[0, 1]] * 2), {"channel_axis": 0}, "shape"),
        (np.zeros((3, 1, 1), np.float32), {"channel_axis": 0}, "shape"),
        (np.float64([0.1]), {}, "float32"),
        (np.array(["a"]), {}, "dtype"),
        (np.zeros(65536, np.float32), {}, "65536"),
        (np.float32([0]), {"channel_axis": 2}, "out of range"),
        (np.float32([0]), {"channel_axis": 1.0}, "int"),
    ],
)
def test_bad_thresholds_raise(thresholds, kwargs, match):
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(featcodec.InputError, match=match):
        kernels.quantize(x, thresholds, **kwargs)


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.arange(4), {}, "int64"),
        (np.zeros(4, np.uint16), {}, "bfloat16=True"),
        (np.zeros(4, np.float32), {"bfloat16": True}, "uint16"),
        (np.zeros(4, np.complex64), {}, "complex"),
        ("text", {}, "str"),
        (np.zeros(4, np.float32), {"out": np.zeros(4, np.uint16)}, "dtype uint8"),
        (np.zeros(4, np.float32), {"out": np.zeros(5, np.uint8)}, "shape"),
        (np.zeros(4, np.float32), {"out": np.broadcast_to(np.zeros(1, np.uint8), (4,))}, "read-only|zero stride"),
        (np.zeros(4, np.float32), {"out": [0, 0, 0, 0]}, "numpy array"),
    ],
)
def test_bad_quantize_arguments_raise(x, kwargs, match):
    with pytest.raises(featcodec.InputError, match=match):
        kernels.quantize(x, np.float32([0.5]), **kwargs)


def test_out_overlapping_input_raises():
    buf = np.zeros(16, np.float32)
    with pytest.raises(featcodec.InputError, match="overlaps"):
        kernels.quantize(buf, np.float32([0.5]), out=buf.view(np.uint8)[:16])


@pytest.mark.parametrize("bad_value, dtype", [(4, np.uint8), (300, np.uint16), (-1, np.int32), (-5, np.int64), (2**40, np.int64)])
def test_out_of_range_indices_raise(bad_value, dtype):
    idx = np.zeros(50, dtype)
    idx[17] = bad_value
    with pytest.raises(featcodec.InputError, match=rf"holds {bad_value} at index \(17,\), outside \[0, 4\)"):
        kernels.dequantize(idx, np.float32([0, 1, 2, 3]))
    idx2 = np.zeros((2, 50), dtype)
    idx2[1, 17] = bad_value
    with pytest.raises(featcodec.InputError, match="outside"):
        kernels.dequantize(idx2, np.float32([[0, 1, 2, 3]] * 2), channel_axis=0)


@pytest.mark.parametrize(
    "idx, levels, kwargs, match",
    [
        (np.zeros(3, np.float32), np.float32([0]), {}, "integer"),
        (np.zeros(3, np.uint8), np.float32([]), {}, "empty"),
        (np.zeros(3, np.uint8), np.float32([0]), {"dtype": "int8"}, "dtype must be"),
        (np.zeros(3, np.uint8), np.float32([0, np.nan]), {}, "finite"),
        (np.zeros((2, 3), np.uint8), np.float32([[0], [1], [2]]), {"channel_axis": 0}, "shape"),
        (np.zeros(3, np.uint8), np.float32([0]), {"out": np.zeros(3, np.float16)}, "dtype float32"),
    ],
)
def test_bad_dequantize_arguments_raise(idx, levels, kwargs, match):
    with pytest.raises(featcodec.InputError, match=match):
        kernels.dequantize(idx, levels, **kwargs)


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_raise(n):
    with pytest.raises(featcodec.InputError, match="positive integer"):
        kernels.set_num_threads(n)


def test_docstring_examples_run():
    import doctest

    res = doctest.testmod(kernels, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0


def test_thread_count_api_is_exported():
    featcodec.set_num_threads(3)
    assert featcodec.get_num_threads() == 3 == kernels.get_num_threads()
