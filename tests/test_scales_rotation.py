"""The "rotation" (randomised Hadamard) and "scales" (per token / per channel) stages:
checked against independent references (scipy's Hadamard matrix, splitmix64 written out
in Python, the scale rule and its log grid in float64), round trips in every dtype and
framework, hostile headers and sections, golden streams, other processes and thread
counts."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

import featcodec
from conftest import check_golden_stage, write_golden_stage
from featcodec.stages.rotation import block_of, rotate, signs
from featcodec.stages.scales import quantize_scales, robust_scales, scale_values
from featcodec.stream.container import FORMAT_VERSION, read_stream, write_stream

FEATURES = Path(__file__).resolve().parent / "data" / "features"
M64 = (1 << 64) - 1


def _splitmix_signs(seed: int, d: int) -> np.ndarray:
    """The format's signs, from the splitmix64 reference algorithm in Python integers."""
    out = []
    for i in range(d):
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        out.append(-1 if z >> 63 else 1)
    return np.array(out)


def _matrix(seed: int, d: int, block: int) -> np.ndarray:
    """The rotation as a dense d x d matrix: blockwise H/sqrt(b) times diag(signs)."""
    h = np.kron(np.eye(d // block), hadamard(block) / np.sqrt(block))
    return h @ np.diag(_splitmix_signs(seed, d).astype(np.float64))


def _llm_like(seed: int = 0, d: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(1, 48, d)).astype(np.float32)
    x[0, 0, [5, 17, 60]] = [2.1e4, -9.5e3, 7.0e3]  # massive activations at the first token
    x[0, 1:, 33] *= 40  # an outlier channel
    return x


def _section(blob: bytes, name: str) -> bytes:
    return bytes(read_stream(blob).sections[featcodec.header(blob)["sections"].index(name)])


def _rewrite(blob: bytes, field: str, value=None, section: bytes | None = None) -> bytes:
    s = read_stream(blob)
    h = dict(s.header)
    secs = dict(zip(h["sections"], (bytes(x) for x in s.sections)))
    if value is not None:
        h[field] = value
    if section is not None:
        secs[field] = section
    return write_stream(h, list(secs.values()), s.version)


def _snr(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64)
    return 10 * math.log10(np.mean(x**2) / np.mean((y - x) ** 2))


# ------------------------------------------------------------------------ the rotation
@pytest.mark.parametrize("seed", [0, 1, 12345, M64])
def test_signs_are_splitmix64(seed):
    np.testing.assert_array_equal(signs(seed, 1000), _splitmix_signs(seed, 1000))
    assert 400 < int((signs(seed, 1000) > 0).sum()) < 600


@pytest.mark.parametrize("d", [2, 8, 64, 96, 384, 576, 1024])
def test_rotation_is_the_hadamard_matrix_times_the_signs(d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(7, d))
    b = block_of(d)
    r = _matrix(99, d, b)
    np.testing.assert_allclose(rotate(x, 99, b), x @ r.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rotate(x, 99, b, inverse=True), x @ r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r @ r.T, np.eye(d), atol=1e-12)  # the reference is orthogonal
    x32 = x.astype(np.float32)
    y32 = rotate(x32, 99, b)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, x32.astype(np.float64) @ r.T, atol=2e-6 * np.abs(x).max() * math.log2(2 * b))


def test_rotation_keeps_norms_and_its_inverse_is_exact_within_rounding():
    x = _llm_like(d=576).reshape(-1, 576).astype(np.float64)
    y = rotate(x, 7, 64)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-14)
    np.testing.assert_allclose(rotate(y, 7, 64, inverse=True), x, rtol=0, atol=1e-15 * np.abs(x).max() * 16)
    x32 = x.astype(np.float32)
    back = rotate(rotate(x32, 7, 64), 7, 64, inverse=True)
    assert np.abs(back - x32).max() <= 1e-6 * np.abs(x32).max()
    # it spreads an outlier channel over all channels of its block
    spike = np.zeros((1, 64))
    spike[0, 3] = 8.0
    np.testing.assert_allclose(np.abs(rotate(spike, 7, 64)), 1.0)


def test_decode_error_is_the_transforms_error_rotated_back():
    x = _llm_like()
    blob = featcodec.encode(x, bits=3, rotation=5)
    h = featcodec.header(blob)
    assert h["rotation"] == {"seed": 5, "block": 32} and h["stages"] == ["rotation", "transform", "pack"]
    r = _matrix(5, 96, 32)
    rotated = rotate(x.reshape(-1, 96), 5, 32).reshape(x.shape)
    np.testing.assert_allclose(rotated, x @ r.T, rtol=1e-6, atol=1e-6 * np.abs(x).max())
    t = featcodec.fit_transform(rotated, bits=3, method="fast")
    assert h["transform"]["id"] == t.id
    err = t.inverse(t.forward(rotated)).astype(np.float64) - rotated  # the transform's error
    got = featcodec.decode(blob).astype(np.float64) - x
    np.testing.assert_allclose(got, err @ r, rtol=0, atol=1e-6 * np.abs(x).max())
    assert math.isclose(np.sum(got**2), np.sum(err**2), rel_tol=1e-4)  # orthogonal: the same squared error


# ------------------------------------------------------------------------ the scales
def test_scales_are_the_99th_percentile_on_a_log_grid():
    x = _llm_like()
    a = x.reshape(-1, 96).astype(np.float64)
    for axis, rows in (("token", a), ("channel", a.T)):
        mag = np.sort(np.abs(rows), axis=1)
        want = mag[:, 99 * (rows.shape[1] - 1) // 100]
        np.testing.assert_array_equal(robust_scales(a, axis), want)
        E, codes = quantize_scales(want)
        exact = np.array([np.float32(2.0 ** (E + int(c) / 8)) for c in codes])
        np.testing.assert_array_equal(scale_values(E, codes), exact)
        assert np.all(np.abs(np.log2(exact / want)) <= 1 / 16 + 1e-9)  # the nearest step of 2**(1/8)


@pytest.mark.parametrize("axis", ["token", "channel"])
def test_decode_multiplies_back_exactly_the_scale_the_encoder_divided_by(axis):
    x = _llm_like()
    blob = featcodec.encode(x, bits=3, scales=axis)
    h = featcodec.header(blob)
    codes = np.frombuffer(_section(blob, "scales"), np.uint8)
    n = 48 if axis == "token" else 96
    assert h["scales"]["axis"] == axis and h["scales"]["count"] == n == codes.size
    s = np.array([np.float32(2.0 ** (h["scales"]["exponent"] + int(c) / 8)) for c in codes], np.float32)
    a = x.reshape(-1, 96)
    s2 = s[:, None] if axis == "token" else s[None, :]
    scaled = (a / s2).reshape(x.shape)
    t = featcodec.fit_transform(scaled, bits=3, method="fast")
    assert h["transform"]["id"] == t.id
    want = (t.inverse(t.forward(scaled)).reshape(-1, 96) * s2).reshape(x.shape)
    np.testing.assert_array_equal(featcodec.decode(blob), want)


def test_zero_tiny_and_huge_scales_give_finite_values():
    x = np.zeros((6, 8), np.float32)
    x[1] = 1e-30
    x[2] = np.linspace(-3e30, 3e30, 8)
    x[3, 0] = 5.0  # a token whose 99th percentile is 0: its largest magnitude
    for axis in ("token", "channel"):
        for rot in (None, True):
            y = featcodec.decode(featcodec.encode(x, bits=4, scales=axis, rotation=rot))
            assert np.all(np.isfinite(y))
            if rot is None:
                np.testing.assert_array_equal(y[x == 0] if axis == "token" else y[:, 1:][0], 0)
    zeros = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(featcodec.decode(featcodec.encode(zeros, bits=2, scales="token")), zeros)
    E, codes = quantize_scales(np.array([0.0, 2.0**-200, 2.0**200]))
    s = scale_values(E, codes)
    assert np.all(np.isfinite(s)) and np.all(s > 0)


def test_keys_per_channel_and_values_per_token_on_real_features():
    """KIVI's rule on SmolLM2's KV cache: at the same 2 bits, channel scales cut the keys'
    error and token scales the values'."""
    for name, axis in (("llm__key15", "channel"), ("llm__value15", "token")):
        x = np.load(FEATURES / f"{name}.npy")
        plain = featcodec.decode(featcodec.encode(x, bits=2))
        scaled = featcodec.decode(featcodec.encode(x, bits=2, scales=axis))
        assert _snr(x, scaled) > _snr(x, plain) + 0.3, name


# ------------------------------------------------------------------------ together, frameworks
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "bfloat16"])
def test_round_trip_in_every_dtype_and_the_stage_order(dtype):
    x = _llm_like()
    x = torch.from_numpy(x).to(torch.bfloat16) if dtype == "bfloat16" else x.astype(dtype)
    blob = featcodec.encode(x, bits=4, outliers=3, rotation=11, scales="token")
    assert featcodec.header(blob)["stages"] == ["outliers", "rotation", "scales", "transform", "pack"]
    y = featcodec.decode(blob)
    assert type(y) is type(x) and y.dtype == x.dtype and tuple(y.shape) == tuple(x.shape)
    f = (lambda v: v.float().numpy()) if dtype == "bfloat16" else (lambda v: v.astype(np.float64))
    assert _snr(f(x), f(y)) > 15
    np.testing.assert_array_equal(f(y)[0, 0, [5, 17, 60]], f(x)[0, 0, [5, 17, 60]])  # the outliers, exact
    y32 = featcodec.decode(blob, dtype="float32")
    assert y32.dtype in (np.float32, torch.float32)


def test_stages_given_by_name_and_rate_control():
    x = _llm_like()
    a = featcodec.encode(x, bits=3, rotation=True, scales="channel")
    b = featcodec.encode(x, bits=3, rotation=True, scales="channel",
                         stages=["rotation", "scales", "transform", "pack"])
    assert a == b
    c = featcodec.encode(x, bits=3, rotation=True, scales="channel", stages=["scales", "rotation", "transform", "pack"])
    assert featcodec.header(c)["stages"][:2] == ["scales", "rotation"] and _snr(x, featcodec.decode(c)) > 5
    blob = featcodec.encode(x, codec="auto", target_bpfp=2.0, rotation=True)
    assert featcodec.header(blob)["stages"][0] == "rotation" and 8 * len(blob) / x.size <= 2.0


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw, match", [
    ({"rotation": -1}, "seed"), ({"rotation": 2**64}, "seed"), ({"rotation": 1.5}, "seed"),
    ({"rotation": "yes"}, "seed"), ({"scales": "row"}, "'token'"), ({"scales": True}, "'token'"),
    ({"rotation": True, "max_error": 0.1}, "max_error"), ({"scales": "token", "max_error": 0.1}, "max_error"),
    ({"rotation": True, "stages": ["transform", "pack"]}, "'rotation' stage"),
    ({"scales": "token", "stages": ["rotation", "transform", "pack"]}, "'scales' stage"),
])
def test_bad_arguments_are_input_errors_that_say_what_to_do(kw, match):
    with pytest.raises(featcodec.InputError, match=match):
        featcodec.encode(_llm_like(), **kw)


def test_rotate_checks_its_arguments():
    for a, block in ((np.ones(8), 8), (np.ones((2, 8), np.float16), 8), (np.ones((2, 8)), 3), (np.ones((2, 8)), 16),
                     (np.ones((2, 8)), True)):
        with pytest.raises(featcodec.InputError, match="rotate takes|block must"):
            rotate(a, 0, block)
    with pytest.raises(featcodec.InputError, match="seed"):
        rotate(np.ones((2, 8)), -1, 8)


def test_shapes_the_stages_cannot_serve():
    with pytest.raises(featcodec.InputError, match="token layout.*reshape"):
        featcodec.encode(np.ones(16, np.float32), scales="token")
    with pytest.raises(featcodec.InputError, match="token layout"):
        featcodec.encode(np.ones(16, np.float32), rotation=True)
    with pytest.raises(featcodec.InputError, match="power-of-two factor, got 575"):
        featcodec.encode(np.ones((3, 575), np.float32), rotation=True)
    x = np.ones((3, 8), np.float32)
    x[1, 1] = np.inf
    with pytest.raises(featcodec.InputError, match="NaN or Inf"):
        featcodec.encode(x, scales="channel")


# ------------------------------------------------------------------------ hostile streams
def test_hostile_fields_and_sections_are_format_errors():
    blob = featcodec.encode(_llm_like(), bits=3, rotation=True, scales="channel")
    for value in ({"seed": 0}, {"seed": -1, "block": 32}, {"seed": 2**64, "block": 32}, {"seed": 0, "block": 24},
                  {"seed": 0, "block": 64}, {"seed": 0, "block": 1}, {"seed": 0, "block": True},
                  {"seed": "0", "block": 32}, [0, 32], {"seed": 0, "block": 32, "x": 1}):
        with pytest.raises(featcodec.FormatError, match="rotation"):
            featcodec.decode(_rewrite(blob, "rotation", value))
    good = featcodec.header(blob)["scales"]
    for value in ({**good, "axis": "row"}, {**good, "count": 48}, {**good, "count": 95}, {**good, "exponent": 96},
                  {**good, "exponent": -127}, {**good, "exponent": 1.0}, {"axis": "channel", "count": 96}, "x"):
        with pytest.raises(featcodec.FormatError, match="scales"):
            featcodec.decode(_rewrite(blob, "scales", value))
    sec = _section(blob, "scales")
    for section in (sec[:-1], sec + b"\x00", b""):
        with pytest.raises(featcodec.FormatError, match="scales section"):
            featcodec.decode(_rewrite(blob, "scales", section=section))


def test_the_stages_need_format_version_7():
    # the transform referenced, not embedded: its packed levels would need version 10
    blob = featcodec.encode(_llm_like(), bits=3, rotation=True, embed_transform=False)
    assert featcodec.header(blob)["format_version"] == 7
    for name, kw in (("rotation", {"rotation": True}), ("scales", {"scales": "channel"})):
        s = read_stream(featcodec.encode(_llm_like(), bits=3, embed_transform=False, **kw))
        older = write_stream(dict(s.header), [bytes(x) for x in s.sections], 5)  # the outliers stage's version
        with pytest.raises(featcodec.FormatError, match=f"version 5 has '{name}' fields of a newer version"):
            featcodec.decode(older)
    newer = bytearray(blob)
    newer[8:10] = (FORMAT_VERSION + 1).to_bytes(2, "little")
    with pytest.raises(featcodec.VersionError, match="Upgrade featcodec"):
        featcodec.decode(bytes(newer))


def test_mutated_fields_and_sections_never_crash():
    x = _llm_like()
    blob = featcodec.encode(x, bits=4, outliers=4, rotation=3, scales="token")
    sec = bytearray(_section(blob, "scales"))
    rng = np.random.default_rng(9)
    values = [0, 1, 2, 3, 8, 16, 32, 64, 96, -1, 2**63, 2**64 - 1, 2**64, 1e300, None, "a", [], {}]
    for i in range(300):
        if i % 3 == 0:
            mutated = _rewrite(blob, "rotation", {"seed": values[rng.integers(len(values))],
                                                  "block": values[rng.integers(len(values))]})
        elif i % 3 == 1:
            mutated = _rewrite(blob, "scales", {"axis": ["token", "channel", "x"][rng.integers(3)],
                                                "count": values[rng.integers(len(values))],
                                                "exponent": values[rng.integers(len(values))]})
        else:
            bad = bytearray(sec[: int(rng.integers(len(sec) - 2, len(sec) + 2))])
            bad += b"\x00" * max(0, len(sec) - len(bad) - int(rng.integers(2)))
            for _ in range(int(rng.integers(1, 4))):
                if bad:
                    bad[int(rng.integers(len(bad)))] = int(rng.integers(256))
            mutated = _rewrite(blob, "scales", section=bytes(bad))
        try:
            y = featcodec.decode(mutated)
        except featcodec.FormatError:
            continue
        assert y.shape == x.shape and np.all(np.isfinite(y))


# ------------------------------------------------------------------------ determinism
def test_same_bytes_for_any_thread_count_and_in_another_process(run_python, tmp_path):
    x = np.load(FEATURES / "llm__hidden15.npy")
    big = np.random.default_rng(0).normal(size=(4096, 576)).astype(np.float32)
    n = featcodec.get_num_threads()
    try:
        featcodec.set_num_threads(1)
        one = featcodec.encode(x, bits=3, outliers=8, rotation=True, scales="token")
        r1 = rotate(big, 1, 64)
        featcodec.set_num_threads(2)
        two = featcodec.encode(x, bits=3, outliers=8, rotation=True, scales="token")
        r2 = rotate(big, 1, 64)
        y2 = featcodec.decode(two)
    finally:
        featcodec.set_num_threads(n)
    assert one == two and r1.tobytes() == r2.tobytes()
    path = tmp_path / "s.fcs"
    path.write_bytes(one)
    code = ("import sys, hashlib, pathlib, numpy as np, featcodec\n"
            "featcodec.set_num_threads(1)\n"
            "y = featcodec.decode(pathlib.Path(sys.argv[1]).read_bytes())\n"
            "x = np.load(sys.argv[2])\n"
            "again = featcodec.encode(x, bits=3, outliers=8, rotation=True, scales='token')\n"
            "print(hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest(), hashlib.sha256(again).hexdigest())\n")
    out = run_python("-c", code, path, FEATURES / "llm__hidden15.npy", text=True).stdout.split()[-2:]
    assert out == [hashlib.sha256(np.ascontiguousarray(y2).tobytes()).hexdigest(), hashlib.sha256(one).hexdigest()]


# ------------------------------------------------------------------------ golden streams
GOLDEN_CASES = {
    "rotation": {"bits": 3, "rotation": 1234},
    "scales_channel": {"bits": 3, "scales": "channel"},
    "scales_token": {"bits": 3, "scales": "token"},
    "outliers_rotation_scales": {"bits": 2, "outliers": 8, "rotation": True, "scales": "token"},
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_streams_decode_bit_exactly(name):
    """tests/data/golden_stages/<name>.*: written by ``python tests/test_scales_rotation.py``."""
    check_golden_stage(name, _llm_like, GOLDEN_CASES[name])


if __name__ == "__main__":  # write the golden streams (only when the format changes on purpose)
    for name, kw in GOLDEN_CASES.items():
        write_golden_stage(name, _llm_like, kw, "tests/test_scales_rotation.py::_llm_like")
