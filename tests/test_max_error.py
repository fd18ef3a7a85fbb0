"""Error-bounded coding (``encode(x, max_error=e)``) and the compact uniform transform of
format version 3: the bound holds on every value, against exact arithmetic; the bits are
the fewest that can hold it; uniform levels travel as their two ends; hostile ends fail
cleanly."""

import json
import math

import numpy as np
import pytest
import torch

import featcodec
from featcodec.stream.container import read_stream, write_stream


def _f64(a):
    return a.detach().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)


def _data(kind, rng):
    if kind == "t3":
        return rng.standard_t(3, size=(2, 40, 33)) * 3
    if kind == "relu":
        return np.maximum(rng.normal(size=(4, 9, 9)), 0)
    if kind == "outlier":  # an LLM-like massive activation
        x = rng.normal(size=(1, 30, 64))
        x[0, 0, 5] = 2.0e4
        return x
    return np.full((5, 7), 1.25)  # constant


@pytest.mark.parametrize("kind", ["t3", "relu", "outlier", "constant"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("max_error", [1.0, 0.1, 0.01])
def test_every_decoded_value_is_within_max_error(kind, dtype, max_error):
    rng = np.random.default_rng(hash((kind, dtype)) % 2**32)
    a = _data(kind, rng)
    x = torch.from_numpy(a).to(torch.bfloat16) if dtype == "bfloat16" else a.astype(dtype)
    try:
        blob = featcodec.encode(x, max_error=max_error)
    except featcodec.InputError as e:  # only when the dtype or 16 bits cannot resolve it
        lo, hi = _f64(x).min(), _f64(x).max()  # only where 16 bits cannot span the range
        assert "cannot be met" in str(e) and (hi - lo) / (2 * (2**16 - 1)) > max_error / 8
        return
    y = featcodec.decode(blob)
    assert type(y) is type(x) and y.dtype == x.dtype and y.shape == x.shape
    assert np.max(np.abs(_f64(y) - _f64(x))) <= max_error
    h = featcodec.header(blob)
    assert h["format_version"] >= 3 and "levels" not in h["sections"]
    # the fewest bits: one bit less cannot span the range with gaps of 2 * max_error (in
    # float16/bfloat16 the decoded rounding can call for finer levels)
    lo, hi = _f64(x).min(), _f64(x).max()
    if h["bits"] > 1 and dtype in ("float32", "float64"):
        assert 2 * max_error * (2 ** (h["bits"] - 1) - 1) < hi - lo


def test_the_bound_is_met_without_waste():
    """Levels are spaced just under 2 * max_error (not at the next power of two over the
    range), so the largest error is close to the bound."""
    x = np.random.default_rng(3).normal(size=(64, 64)).astype(np.float32) * 7
    for e in (0.5, 0.05, 0.005):
        t = featcodec.fit_max_error(x, e)
        gaps = np.diff(t.levels.astype(np.float64))
        assert np.all(gaps < 2 * e) and np.all(gaps > 2 * e * (1 - 1e-3))
        err = np.abs(t.inverse(t.forward(x)).astype(np.float64) - x)
        assert 0.9 * e < err.max() <= e


def test_a_level_sits_on_the_median_when_the_range_leaves_room():
    """Mid-tread levels: with slack in the range, a level falls on the median (to float32
    rounding), so a peaked bulk goes to one level instead of straddling a threshold; at a
    coarse bound that codes a Laplacian bulk in far fewer bits, at lower error, than
    levels started at the minimum."""
    rng = np.random.default_rng(5)
    x = (rng.laplace(size=(64, 256)) + 0.37).astype(np.float32)
    for e in (4.0, 1.0, 0.3, 0.01):
        t = featcodec.fit_max_error(x, e)
        med = float(np.median(x.astype(np.float64)))
        lv = t.levels.astype(np.float64).ravel()
        slack = 2 * e / (1 + 2**-12) * (t.levels.size - 1) - (float(x.max()) - float(x.min()))
        if slack >= 2 * e:  # room for any shift: the median is on a level
            assert np.min(np.abs(lv - med)) <= 1e-5 * max(1.0, abs(lv).max())
    e = 2.0  # coarse: against the same spacing with a threshold on the median ("mid-rise")
    step = 2 * e / (1 + 2**-12)
    t = featcodec.fit_max_error(x, e)
    med = float(np.median(x.astype(np.float64)))
    low = np.float32(med - step / 2 - step * math.ceil((med - step / 2 - float(x.min())) / step))
    high = np.float32(float(low) + step * (2 ** (t.bits + 1) - 1))
    mid_rise = featcodec.transform.uniform_transform(float(low), float(high), t.bits + 1)
    ours, theirs = featcodec.encode(x, max_error=e), featcodec.encode(x, transform=mid_rise)
    assert featcodec.header(theirs)["format_version"] >= 3  # both store two ends, no levels
    mse = [float(np.mean((featcodec.decode(b).astype(np.float64) - x) ** 2)) for b in (ours, theirs)]
    assert len(ours) < 0.7 * len(theirs) and mse[0] < mse[1]


@pytest.mark.parametrize("seed", range(10))
def test_the_compiled_median_and_error_are_numpys(seed):
    """The error-bounded fit's centre (a radix select) and its bound check (max |y - x| in
    float64 without a copy) against numpy: ties, signed zeros, both parities, one value."""
    from featcodec import _core

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200_000)) if seed else 1
    a = [rng.standard_t(2, n), rng.integers(-3, 4, n) * 0.5, np.maximum(rng.normal(size=n), 0) * -1.0][seed % 3]
    x = a.astype(np.float32)
    x[rng.random(n) < 0.1] = -0.0
    mid = np.partition(x, [(n - 1) // 2, n // 2])
    assert _core.median_pair(x) == (float(mid[(n - 1) // 2]), float(mid[n // 2]))
    y = (x + rng.normal(size=n).astype(np.float32) * np.float32(1e-3)).astype(np.float32)
    assert _core.max_abs_diff(y, x) == float(np.abs(y.astype(np.float64) - x).max())
    x64, y64 = x.astype(np.float64), y.astype(np.float64) + 1e-9
    assert _core.max_abs_diff(y64, x64) == float(np.abs(y64 - x64).max())


def test_float32_rounding_of_fine_levels_does_not_refuse_a_reachable_bound():
    """A SmolLM2 value cache (test input 200000) where, at range / 2**16, rounding the
    levels to float32 near |x| = 4 widens one gap just past 2 * max_error: the fit must
    make room for that, not report the bound unreachable (it once did)."""
    from pathlib import Path

    x = np.load(Path(__file__).parent / "data" / "value15_float32_gaps.npy")
    for k in (14, 15, 16):
        e = float(x.max() - x.min()) * 2.0**-k
        t = featcodec.fit_max_error(x, e)
        assert t.bits == k
        assert np.max(np.abs(t.inverse(t.forward(x)).astype(np.float64) - x)) <= e


def test_a_bound_that_cannot_be_met_says_what_to_do():
    # spread out: no count of outliers up to 1% leaves a rest that 16 bits span at 1e-3
    x = np.linspace(0.0, 1.0e4, 100_001, dtype=np.float32)
    with pytest.raises(featcodec.InputError, match="Raise max_error"):
        featcodec.encode(x, max_error=1e-3)
    # one massive value: it travels exactly unless the outliers are fixed by the caller
    x = np.array([0.0, 0.5, 1.0e4], np.float32)
    with pytest.raises(featcodec.InputError, match="Raise max_error"):
        featcodec.encode(x, max_error=1e-3, stages=["transform", "pack"])
    y = featcodec.decode(featcodec.encode(x, max_error=1e-3))
    assert np.abs(y - x).max() <= 1e-3 and y[2] == x[2]
    # where the dtype is coarser than the bound, decoded values round back to x itself
    x16 = (3.0e4 + 16 * np.arange(-50, 50)).astype(np.float16)
    y = featcodec.decode(featcodec.encode(x16, max_error=1.0))
    assert np.array_equal(y, x16)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "0.1", True, None, [0.1]])
def test_bad_max_error_values(bad):
    x = np.ones((3, 3), np.float32)
    with pytest.raises(featcodec.InputError, match="max_error"):
        featcodec.fit_max_error(x, bad)


@pytest.mark.parametrize("kw", [{"codec": "hyperprior", "bits": 8}, {"bits": 8}, {"transform": "uniform"},
                                {"target_bpfp": 2.0}])  # learned codecs with max_error: test_residual.py
def test_max_error_does_not_mix_with_other_rate_knobs(kw):
    x = np.ones((3, 3), np.float32)
    with pytest.raises(featcodec.InputError, match="max_error"):
        featcodec.encode(x, max_error=0.1, **kw)


def test_max_error_rejects_bad_tensors():
    with pytest.raises(featcodec.InputError, match="NaN"):
        featcodec.encode(np.array([1.0, np.nan], np.float32), max_error=0.1)
    with pytest.raises(featcodec.InputError):
        featcodec.encode(np.zeros((0, 3), np.float32), max_error=0.1)
    with pytest.raises(featcodec.InputError):
        featcodec.encode(np.arange(4), max_error=0.1)


def test_uniform_transforms_travel_as_their_two_ends():
    rng = np.random.default_rng(5)
    x = rng.standard_t(4, size=(8, 48)).astype(np.float32)
    for t in (featcodec.fit_uniform(x, bits=12), featcodec.fit_uniform(x, bits=6, channel_axis=0)):
        blob = featcodec.encode(x, transform=t)
        h = featcodec.header(blob)
        assert h["format_version"] >= 3 and h["sections"] == ["payload"]
        assert h["transform"]["id"] == t.id
        np.testing.assert_array_equal(featcodec.decode(blob), t.inverse(t.forward(x)))
        assert len(blob) < 4 * t.levels.size  # smaller than the levels alone
        # recognised by its levels, however it was made
        same = featcodec.Transform(t.levels, channel_axis=t.channel_axis)
        assert featcodec.header(featcodec.encode(x, transform=same))["sections"] == ["payload"]
    # Lloyd-Max levels are not evenly spaced: they stay a levels section, packed (version 10)
    blob = featcodec.encode(x, bits=6)
    assert featcodec.header(blob)["format_version"] == 10 and "levels" in featcodec.header(blob)["sections"]
    # ends that are not float32 numbers: explicit levels, still exact
    t = featcodec.fit_uniform(x, bits=4, clip=(-0.1, 0.3))
    np.testing.assert_array_equal(featcodec.decode(featcodec.encode(x, transform=t)), t.inverse(t.forward(x)))


def _with_transform(blob, version=None, **fields):
    s = read_stream(blob)
    h = json.loads(json.dumps(s.header))
    h["transform"].update(fields)
    return write_stream(h, [bytes(x) for x in s.sections], s.version if version is None else version)


@pytest.mark.parametrize("ends", [
    [0.0], [0.0, 1.0, 2.0], ["0", 1.0], [1.0, 0.0], [True, 1.0], [[0.0], [1.0]],
    {"low": 0, "high": 1}, None, [0.0, 3.0e38 * 10], [-1e39, 0.0],
])
def test_hostile_uniform_ends_are_format_errors(ends):
    blob = featcodec.encode(np.linspace(-1, 1, 40, dtype=np.float32).reshape(5, 8), max_error=0.05)
    with pytest.raises(featcodec.FormatError):
        featcodec.decode(_with_transform(blob, uniform=ends))


def test_uniform_ends_that_do_not_match_the_id_are_caught():
    blob = featcodec.encode(np.linspace(-1, 1, 40, dtype=np.float32).reshape(5, 8), max_error=0.05)
    lo, hi = featcodec.header(blob)["transform"]["uniform"]
    with pytest.raises(featcodec.FormatError, match="does not match its id"):
        featcodec.decode(_with_transform(blob, uniform=[lo, hi + 1.0]))


def test_version_3_fields_in_a_version_2_stream_are_rejected():
    blob = featcodec.encode(np.linspace(-1, 1, 40, dtype=np.float32).reshape(5, 8), max_error=0.05)
    with pytest.raises(featcodec.FormatError, match="transform"):
        featcodec.decode(_with_transform(blob, version=2))


def test_a_newer_reader_is_asked_for_by_older_versions_only():
    """Streams keep the lowest version that holds them: uniform ends need 3, packed levels
    10, a referenced transform neither."""
    x = np.random.default_rng(1).normal(size=(6, 6)).astype(np.float32)
    t = featcodec.fit_transform(x, bits=8)
    assert featcodec.header(featcodec.encode(x, transform=t, embed_transform=False))["format_version"] == 2
    assert featcodec.header(featcodec.encode(x, transform="uniform"))["format_version"] == 3
    assert featcodec.header(featcodec.encode(x))["format_version"] == 10
