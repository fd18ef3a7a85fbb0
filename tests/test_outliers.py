"""The "outliers" stage (dense + sparse): the k largest magnitudes travel exactly in a
sparse section, the rest is fitted and coded without them; hostile sections are
FormatErrors; streams are deterministic and decode from committed bytes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import featcodec
from conftest import check_golden_stage, digest, on_threads, write_golden_stage
from featcodec.stages.outliers import (PEAK_RATIO, count_for_bound, count_for_peaks, decode_positions,
                                       encode_positions, largest)
from featcodec.stream.container import read_stream, write_stream


def _leb128(values) -> bytes:
    """Unsigned LEB128, written out as the format describes it."""
    out = bytearray()
    for v in values:
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _llm_like(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(1, 48, 96)).astype(np.float32)
    x[0, 0, [5, 17, 60]] = [2.1e4, -9.5e3, 7.0e3]  # massive activations at the first token
    x[0, 1:, 33] *= 40  # an outlier channel
    return x


def _rewrite(blob: bytes, field=None, section=None) -> bytes:
    s = read_stream(blob)
    h = dict(s.header)
    secs = dict(zip(h["sections"], (bytes(x) for x in s.sections)))
    if field is not None:
        h["outliers"] = field
    if section is not None:
        secs["outliers"] = section
    return write_stream(h, list(secs.values()), s.version)


def test_positions_are_leb128_gaps_and_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        size = int(rng.integers(1, 1 << 30))
        pos = np.unique(rng.integers(0, size, size=int(rng.integers(1, 200))))
        raw = encode_positions(pos)
        assert raw == _leb128(np.diff(pos, prepend=-1).tolist())
        np.testing.assert_array_equal(decode_positions(raw, len(pos), size), pos)


@pytest.mark.parametrize("raw, count, size", [
    (b"\x01\x01", 3, 10),            # fewer varints than announced
    (b"\x01\x81", 2, 10),            # the last varint does not end
    (b"\x81\x00", 1, 10),            # non-minimal
    (b"\x80\x80\x80\x80\x80\x01", 1, 1 << 40),  # longer than 5 bytes
    (b"\x00", 1, 10),                # a gap of 0: a repeated position
    (b"\x05\x06", 2, 10),            # position 10 >= size
])
def test_corrupt_positions_are_format_errors(raw, count, size):
    with pytest.raises(featcodec.FormatError, match="outlier positions"):
        decode_positions(raw, count, size)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "bfloat16"])
def test_the_largest_values_come_back_bit_exactly(dtype):
    x = _llm_like()
    x = torch.from_numpy(x).to(torch.bfloat16) if dtype == "bfloat16" else x.astype(dtype)
    k = 40
    blob = featcodec.encode(x, bits=3, outliers=k)
    y = featcodec.decode(blob)
    assert featcodec.header(blob)["outliers"]["count"] == k and y.dtype == x.dtype
    flat = (x.float().numpy() if dtype == "bfloat16" else x).ravel()
    top = np.argsort(-np.abs(flat.astype(np.float64)), kind="stable")[:k]
    got = (y.float().numpy() if dtype == "bfloat16" else y).ravel()
    np.testing.assert_array_equal(got[top], flat[top])


def test_the_dense_rest_is_coded_with_a_transform_fitted_without_the_outliers():
    x = _llm_like()
    k = 40
    blob = featcodec.encode(x, bits=4, outliers=k)
    flat = x.ravel()
    top = np.argsort(-np.abs(flat), kind="stable")[:k]
    rest = np.delete(flat, top)
    dense = flat.copy()
    dense[top] = np.clip(flat[top], rest.min(), rest.max())
    t = featcodec.fit_transform(dense.reshape(x.shape), bits=4, method="fast")
    assert featcodec.header(blob)["transform"]["id"] == t.id
    want = t.inverse(t.forward(dense)).copy()
    want[top] = flat[top]
    np.testing.assert_array_equal(featcodec.decode(blob).ravel(), want)
    # the point of it: at 3-4 bits the dense rest's levels are far finer
    for bits in (3, 4):
        plain = featcodec.decode(featcodec.encode(x, bits=bits))
        with_outliers = featcodec.decode(featcodec.encode(x, bits=bits, outliers=k))
        assert np.mean((with_outliers - x) ** 2) < 0.5 * np.mean((plain - x) ** 2)


def test_with_an_error_bound_and_with_rate_control():
    x = _llm_like()
    y = featcodec.decode(featcodec.encode(x, max_error=0.05, outliers=8))
    assert np.abs(y - x).max() <= 0.05
    blob = featcodec.encode(x, codec="auto", target_bpfp=2.0, outliers=8)
    assert featcodec.header(blob)["stages"][0] == "outliers" and 8 * len(blob) / x.size <= 2.0


@pytest.mark.parametrize("seed", range(8))
def test_the_largest_are_those_a_full_sort_gives(seed):
    """largest() against a full sort by (magnitude descending, position ascending), on
    magnitudes with many ties, for counts from 1 to all (its guess from a sample both
    right and too high)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300_000))
    mag = np.abs(rng.integers(-50, 50, n) if seed % 2 else rng.standard_t(2, n)).astype(np.float32)
    order = np.lexsort((np.arange(n), -mag))
    for k in {1, 2, n // 1000 + 1, n // 100 + 1, n // 3 + 1, n}:
        k = min(k, n)
        assert np.array_equal(largest(mag, k), np.sort(order[:k]))


def _fewest_explicit(x, e) -> int:
    """The reference for count_for_bound: the smallest explicit ``outliers=k`` (0: none)
    with which the error-bounded encode succeeds, by trying them in turn."""
    for k in range(0, 64):
        try:
            featcodec.encode(x, max_error=e, **({"outliers": k} if k else {"stages": ["transform", "pack"]}))
            return k
        except featcodec.InputError:
            continue
    raise AssertionError("no count up to 63 served")


@pytest.mark.parametrize("seed", range(6))
def test_a_bound_16_bits_cannot_span_moves_the_fewest_massive_values(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(1, 24, 40)).astype(np.float32)
    n = int(rng.integers(1, 6))
    big = rng.uniform(3e3, 3e4, size=n) * rng.choice([-1, 1], size=n)
    big[: n // 2] = np.abs(big[n - 1])  # ties of magnitude, and of either sign
    if n > 1:
        big[0] = -big[0]
    x.reshape(-1)[rng.choice(x.size, n, replace=False)] = big
    e = float(rng.choice([0.02, 0.05, 0.2]))
    k = count_for_bound(x, e)
    assert k == _fewest_explicit(x, e)
    blob = featcodec.encode(x, max_error=e)
    y = featcodec.decode(blob)
    assert np.abs(y.astype(np.float64) - x).max() <= e
    assert featcodec.header(blob).get("outliers", {}).get("count", 0) == k
    if k:  # the same stream as asking for that count
        assert blob == featcodec.encode(x, max_error=e, outliers=k)
        assert np.array_equal(y.reshape(-1)[np.abs(x.reshape(-1)) >= np.sort(np.abs(x).reshape(-1))[-k]],
                              x.reshape(-1)[np.abs(x.reshape(-1)) >= np.sort(np.abs(x).reshape(-1))[-k]])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_fine_bounds_on_a_real_llm_hidden_state(dtype):
    """SmolLM2's massive activation (2.4e4 where the robust scale is 2.8) made every bound
    below about 0.2 an InputError; now it travels exactly and the bound holds."""
    a = np.load(Path(__file__).resolve().parent / "data" / "features" / "llm__hidden15.npy")
    x = torch.from_numpy(a).to(torch.bfloat16) if dtype == "bfloat16" else a.astype(dtype)
    e = {"float16": 1.5, "bfloat16": 8.0, "float64": 0.05}[dtype]  # bounds the dtype resolves
    blob = featcodec.encode(x, max_error=e)
    y = featcodec.decode(blob)
    f64 = (lambda t: t.double().numpy()) if dtype == "bfloat16" else (lambda t: t.astype(np.float64))
    assert np.abs(f64(y) - f64(x)).max() <= e
    assert featcodec.header(blob)["outliers"]["count"] == count_for_bound(x, e) > 0
    if dtype == "float64":
        with pytest.raises(featcodec.InputError, match="outliers"):
            featcodec.encode(x, max_error=e, stages=["transform", "pack"])


def test_with_a_learned_codec_the_massive_values_also_travel_exactly():
    x = _llm_like()[:, :32, :64]
    blob = featcodec.encode(x, codec="hyperprior", max_error=0.02)
    h = featcodec.header(blob)
    assert h["stages"][:2] in (["outliers", "transform"], ["residual", "outliers"])
    assert np.abs(featcodec.decode(blob).astype(np.float64) - x).max() <= 0.02


def _peaks_by_definition(x: np.ndarray, ratio: float) -> int:
    """count_for_peaks by its definition: take the largest magnitudes out one at a time."""
    mag = np.sort(np.abs(x.astype(np.float64)).ravel())[::-1]
    kmax = min(mag.size - 1, max(1, mag.size // 100))
    for k in range(kmax + 1):
        rest = mag[k:]
        if rest[0] <= ratio * math.sqrt(np.mean(rest * rest)):
            return k
    return kmax


@pytest.mark.parametrize("case", ["gaussian", "massive", "t2", "channels", "constant", "zeros", "relu"])
def test_peaks_are_the_fewest_largest_values_whose_removal_leaves_no_peak(case):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 64, 96))
    if case == "massive":
        x[0, 0, [3, 9, 40]] = [2e4, -7e3, 900.0]
    elif case == "t2":
        x = rng.standard_t(2, size=x.shape)
    elif case == "channels":
        x[..., [5, 70]] *= 60
    elif case == "constant":
        x[:] = -3.5
    elif case == "zeros":
        x[:] = 0.0
    elif case == "relu":
        x = np.maximum(x, 0) ** 3
    x = x.astype(np.float32)
    for ratio in (PEAK_RATIO, 4.0, 12.0):
        assert count_for_peaks(x, ratio) == _peaks_by_definition(x, ratio), ratio
    want = {"gaussian": 0, "massive": 3, "constant": 0, "zeros": 0}
    if case in want:
        assert count_for_peaks(x) == want[case]
    assert count_for_peaks(torch.from_numpy(x).to(torch.bfloat16)) == _peaks_by_definition(
        torch.from_numpy(x).to(torch.bfloat16).float().numpy(), PEAK_RATIO)


def test_a_learned_codec_takes_the_peaks_out_by_default():
    x = _llm_like()[:, :32, :64]
    k = count_for_peaks(x)
    assert k >= 3  # the massive activations at least
    blob = featcodec.encode(x, codec="hyperprior", quality=2, check_quality=False)
    h = featcodec.header(blob)
    assert h["stages"][0] == "outliers" and h["outliers"]["count"] == k
    y = featcodec.decode(blob)
    top = largest(np.abs(x).ravel(), k)
    assert np.array_equal(y.ravel()[top], x.ravel()[top])  # exact
    # asked for explicitly, the user's choice stands; with stages given, none are added
    assert featcodec.header(featcodec.encode(x, codec="hyperprior", quality=2, outliers=1,
                                             check_quality=False))["outliers"]["count"] == 1
    h = featcodec.header(featcodec.encode(x, codec="hyperprior", quality=2, stages=["transform", "pack"],
                                          check_quality=False))
    assert "outliers" not in h.get("stages", [])
    # nothing to take out of a Gaussian tensor, and the index codec never takes any by itself
    g = np.random.default_rng(1).normal(size=(32, 64)).astype(np.float32)
    assert "outliers" not in featcodec.header(featcodec.encode(g, codec="hyperprior", quality=2,
                                                               check_quality=False)).get("stages", [])
    assert "outliers" not in featcodec.header(featcodec.encode(x)).get("stages", [])


def test_streams_are_the_same_for_any_thread_count_and_in_another_process(digest_elsewhere):
    x = _llm_like()
    one, two = on_threads(lambda: featcodec.encode(x, bits=5, outliers=16), 1, 2)
    assert one == two
    assert digest_elsewhere(one) == digest(featcodec.decode(one))


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", 48 * 96 + 1])
def test_bad_counts_are_input_errors(k):
    with pytest.raises(featcodec.InputError, match="outliers"):
        featcodec.encode(_llm_like(), outliers=k)


def test_outliers_need_their_stage_and_finite_values():
    with pytest.raises(featcodec.InputError, match="'outliers' stage"):
        featcodec.encode(_llm_like(), outliers=3, stages=["transform", "pack"])
    x = _llm_like()
    x[0, 3, 3] = np.nan
    with pytest.raises(featcodec.InputError, match="NaN"):
        featcodec.encode(x, outliers=3)


def test_ties_take_the_first_positions():
    x = np.ones((4, 4), np.float32)
    x[2, 2] = -1.0
    blob = featcodec.encode(x, bits=1, outliers=3)
    sec = bytes(read_stream(blob).sections[featcodec.header(blob)["sections"].index("outliers")])
    np.testing.assert_array_equal(decode_positions(sec[:3], 3, 16), [0, 1, 2])


def test_every_value_an_outlier():
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(featcodec.decode(featcodec.encode(x, bits=1, outliers=3)), x)


def test_hostile_fields_and_sections_are_format_errors():
    blob = featcodec.encode(_llm_like(), bits=4, outliers=5)
    f = featcodec.header(blob)["outliers"]
    sec = bytes(read_stream(blob).sections[featcodec.header(blob)["sections"].index("outliers")])
    for field in ({"count": 0, "position_bytes": 0}, {"count": 5}, {"count": 5, "position_bytes": 99},
                  {"count": 10**12, "position_bytes": 10**12}, {"count": "5", "position_bytes": 5}, [5]):
        with pytest.raises(featcodec.FormatError, match="outliers"):
            featcodec.decode(_rewrite(blob, field=field))
    for section in (sec[:-1], sec + b"\x00", b"\x00" * len(sec),
                    sec[: f["position_bytes"]] + np.full(5, np.inf, "<f4").tobytes()):
        with pytest.raises(featcodec.FormatError, match="outlier"):
            featcodec.decode(_rewrite(blob, section=section))


def test_mutated_outlier_sections_never_crash():
    blob = featcodec.encode(_llm_like(), bits=4, outliers=12)
    sec = bytearray(read_stream(blob).sections[featcodec.header(blob)["sections"].index("outliers")])
    rng = np.random.default_rng(4)
    for _ in range(300):
        bad = bytearray(sec)
        for _ in range(int(rng.integers(1, 4))):
            bad[int(rng.integers(len(bad)))] = int(rng.integers(256))
        try:
            y = featcodec.decode(_rewrite(blob, section=bytes(bad)))
        except featcodec.FormatError:
            continue
        assert y.shape == (1, 48, 96)


#: the options of the golden stream tests/data/golden_stages/outliers.*
GOLDEN_CASE = {"bits": 4, "outliers": 16}


def test_golden_outliers_stream_decodes_bit_exactly():
    """tests/data/golden_stages/outliers.*: written by ``python tests/test_outliers.py``."""
    check_golden_stage("outliers", _llm_like, GOLDEN_CASE)


if __name__ == "__main__":  # write the golden stream (only when the format changes on purpose)
    write_golden_stage("outliers", _llm_like, GOLDEN_CASE, "tests/test_outliers.py::_llm_like")
