"""Packed transform levels (format version 10, csrc/packed_levels.cpp) against numpy
references written from docs/format.md, on hostile level sets."""

import numpy as np
import pytest

import featcodec
from featcodec.stages.value_transform import pack_levels, unpack_levels
from featcodec.stream import varints
from featcodec.transform.lloydmax import round_levels


def _keys(levels: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(levels, "<f4").view("<u4").astype(np.int64)
    return np.where(u >> 31 == 1, 0xFFFFFFFF - u, u | 0x80000000)


def _pack_reference(levels: np.ndarray) -> tuple[int, bytes]:
    rows = np.atleast_2d(levels)
    mant = np.ascontiguousarray(rows, "<f4").view("<u4").astype(np.int64) & 0x7FFFFF
    shift = min([23] + [(int(m) & -int(m)).bit_length() - 1 for m in mant.ravel() if m])
    q = _keys(rows) >> shift
    step = np.diff(q, axis=1)
    change = np.diff(step, axis=1)
    zigzag = np.where(change >= 0, 2 * change, -2 * change - 1)
    return shift, varints.encode(np.concatenate([q[:, :1], step[:, :1] - 1, zigzag], axis=1))


def _round_reference(levels: np.ndarray) -> np.ndarray:
    lv = np.asarray(levels, np.float32)
    g = np.diff(lv.astype(np.float64))
    gap = np.minimum(np.r_[g[:1], g], np.r_[g, g[-1:]])
    need = [np.frexp(float(v))[1] - np.frexp(float(d))[1] for v, d in zip(lv, gap) if v != 0]
    shift = 23 - min(max(max(need, default=-64) + 7, 0), 23)
    u = lv.view(np.uint32).astype(np.int64)
    mag = (((u & 0x7FFFFFFF) + ((1 << shift) >> 1)) >> shift) << shift
    out = ((u & 0x80000000) | mag).astype(np.uint32).view(np.float32)
    if not (np.isfinite(out).all() and (np.diff(out) > 0).all()):
        return lv.astype(np.float64)
    return out.astype(np.float64)


def _level_sets():
    rng = np.random.default_rng(2026)
    yield np.array([-1.5, -0.0, 0.0, 0.25, 3.0], np.float32)
    yield np.array([-3e38, -1e-45, 1e-45, 3e38], np.float32)  # the float32 extremes, subnormals
    yield np.array([1.0, np.nextafter(np.float32(1), np.float32(2))], np.float32)  # one ulp apart
    for _ in range(200):
        k = int(rng.integers(2, 300))
        v = np.unique((rng.standard_t(2, k) * 10.0 ** rng.uniform(-20, 20)).astype(np.float32))
        if v.size >= 2 and np.isfinite(v).all():
            yield v


@pytest.mark.parametrize("levels", list(_level_sets())[:60] + list(_level_sets())[60::10])
def test_pack_and_unpack_match_the_reference_bit_for_bit(levels):
    shift, raw = pack_levels(levels)
    assert (shift, raw) == _pack_reference(levels)
    back = unpack_levels(raw, shift, 1, levels.size)
    np.testing.assert_array_equal(back.view(np.uint32), levels.reshape(1, -1).view(np.uint32))
    rounded = round_levels(levels.astype(np.float64))
    np.testing.assert_array_equal(rounded, _round_reference(levels))


def test_rounded_levels_move_at_most_1_256_of_their_gap_and_pack_in_under_2_bytes():
    x = np.random.default_rng(1).standard_t(3, 100_000).astype(np.float32)
    fitted = featcodec.fit_transform(x, bits=8).levels.astype(np.float64)  # the exact fit: not rounded
    assert pack_levels(fitted.astype(np.float32))[0] < 4
    lv = round_levels(fitted)
    gap = np.minimum(np.r_[np.inf, np.diff(fitted)], np.r_[np.diff(fitted), np.inf])
    assert np.all(np.abs(lv - fitted) <= gap / 256) and not np.array_equal(lv, fitted)
    shift, raw = pack_levels(lv.astype(np.float32))
    assert shift >= 8 and len(raw) <= 1.8 * lv.size
    # what the per-call fit embeds is rounded so
    t = featcodec.fit_transform(x, bits=8, method="fast")
    assert np.array_equal(round_levels(t.levels.astype(np.float64)), t.levels.astype(np.float64))


def test_several_rows_pack_as_one_section():
    rows = np.sort(np.random.default_rng(3).normal(size=(3, 16)).astype(np.float32), axis=1)
    shift, raw = pack_levels(rows)
    np.testing.assert_array_equal(unpack_levels(raw, shift, 3, 16), rows)
    with pytest.raises(ValueError, match="ascend"):
        pack_levels(rows[:, ::-1])


@pytest.mark.parametrize("values", [
    [5, 0, 1] + [0] * 13,  # the second step 0: keys that do not ascend
    [5, 0, 3] + [0] * 13,  # the second step -1
    [2**32] + [0] * 15,  # a key beyond 32 bits
    [5] + [0] * 14,  # one level short
])
def test_unpacking_refuses_what_packing_cannot_write(values):
    with pytest.raises(featcodec.FormatError):
        unpack_levels(varints.encode(np.array(values)), 0, 1, 16)
