"""Public API: encode/decode round trips against an independent numpy reference of the
transform, rate against the empirical entropy, transforms by reference, codec registry,
and every kind of bad input."""

import struct
import zlib

import numpy as np
import pytest
import torch

import featcodec
from featcodec.codecs import register_codec


def _heavy(shape, seed=0):
    return (np.random.default_rng(seed).standard_t(3, size=shape) * 2).astype(np.float32)


def _reference(x32, t):
    """What decode must return: the level of the interval each value falls into."""
    idx = np.searchsorted(np.asarray(t.thresholds, np.float32), x32, side="right")
    return np.asarray(t.levels, np.float32)[idx]


@pytest.mark.parametrize("bits", [2, 5, 8, 10])
@pytest.mark.parametrize("shape,layout", [((1, 12, 40), "auto"), ((1, 4, 9, 8), "kv"), ((2, 7, 5, 6), "auto"), ((300,), "auto")])
def test_numpy_round_trip_matches_reference(bits, shape, layout):
    x = _heavy(shape)
    blob = featcodec.encode(x, bits=bits, layout=layout)
    y = featcodec.decode(blob)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == x.shape
    t = featcodec.fit_transform(x, bits=bits, method="fast")  # what encode fits
    np.testing.assert_array_equal(y, _reference(x, t))
    h = featcodec.header(blob)
    assert h["bits"] == bits and h["shape"] == list(shape) and h["transform"]["id"] == t.id


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_torch_in_torch_out(dtype):
    x = torch.from_numpy(_heavy((1, 3, 6, 6))).to(dtype)
    y = featcodec.decode(featcodec.encode(x, bits=8))
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == x.shape and y.device.type == "cpu"
    t = featcodec.fit_transform(x.float().numpy(), bits=8, method="fast")
    ref = torch.from_numpy(_reference(x.float().numpy(), t)).to(dtype)
    assert torch.equal(y, ref)
    assert featcodec.decode(featcodec.encode(x), device="cpu").device.type == "cpu"


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_numpy_dtypes_preserved(dtype):
    x = _heavy((5, 33)).astype(dtype)
    y = featcodec.decode(featcodec.encode(x))
    assert y.dtype == dtype and y.shape == x.shape
    assert featcodec.decode(featcodec.encode(x), dtype="float32").dtype == np.float32


def test_rate_is_the_empirical_entropy_and_falls_with_bits():
    x = _heavy((64, 256))
    sizes, errs = [], []
    for bits in (2, 4, 6, 8):
        blob = featcodec.encode(x, bits=bits)
        h = featcodec.header(blob)
        t = featcodec.fit_transform(x, bits=bits, method="fast")
        idx = np.searchsorted(t.thresholds, x, side="right")
        p = np.bincount(idx.ravel()) / idx.size
        entropy_bits = -(p[p > 0] * np.log2(p[p > 0])).sum() * idx.size
        payload_bits = 8 * h["section_lengths"]["payload"]
        # a static model cannot beat the empirical entropy, and its table costs little
        assert entropy_bits * 0.999 <= payload_bits <= entropy_bits * 1.01 + 8 * (2 ** bits) * 2 + 256
        sizes.append(len(blob))
        errs.append(float(np.mean((featcodec.decode(blob) - x) ** 2)))
    assert sizes == sorted(sizes) and errs == sorted(errs, reverse=True)


def test_given_transform_embedded_or_referenced():
    rng = np.random.default_rng(3)
    t = featcodec.fit_transform(rng.normal(size=20000).astype(np.float32), bits=6)
    x = rng.normal(size=(9, 31)).astype(np.float32)
    emb = featcodec.encode(x, transform=t)
    ref = featcodec.encode(x, transform=t, embed_transform=False)
    assert len(ref) < len(emb)
    np.testing.assert_array_equal(featcodec.decode(emb), _reference(x, t))
    assert featcodec.header(ref)["transform"] == {
        "id": t.id, "embedded": False, "channel_axis": None, "channels": None, "thresholds": False
    }
    with pytest.raises(featcodec.MissingTransformError, match=t.id):
        featcodec.decode(ref)
    np.testing.assert_array_equal(featcodec.decode(ref, transform=t), _reference(x, t))
    other = featcodec.fit_transform(rng.normal(size=5000).astype(np.float32) * 3, bits=6)
    with pytest.raises(featcodec.InputError):
        featcodec.decode(ref, transform=other)
    featcodec.register_transform(t)
    np.testing.assert_array_equal(featcodec.decode(ref), _reference(x, t))
    # by id, once registered
    np.testing.assert_array_equal(featcodec.decode(featcodec.encode(x, transform=t.id)), _reference(x, t))
    with pytest.raises(featcodec.InputError):
        featcodec.encode(x, transform=t, bits=4)


def test_custom_thresholds_and_per_channel_transforms_travel_in_the_stream():
    rng = np.random.default_rng(4)
    centres = np.sort(rng.normal(size=16)).astype(np.float32)
    t = featcodec.Transform.from_points(centres, assignment="round_down")  # not midpoints
    x = rng.normal(size=(5, 12)).astype(np.float32)
    blob = featcodec.encode(x, transform=t)
    h = featcodec.header(blob)
    assert h["transform"]["thresholds"] and h["section_lengths"]["thresholds"] == 4 * 15
    np.testing.assert_array_equal(featcodec.decode(blob), _reference(x, t))
    # per-channel: one level table per channel of axis 1
    x = (rng.standard_t(3, size=(2, 6, 4, 5)) * np.arange(1, 7)[None, :, None, None]).astype(np.float32)
    table = np.sort(rng.normal(size=(6, 8)) * np.arange(1, 7)[:, None], axis=1)
    pc = featcodec.Transform(table, channel_axis=1)
    y = featcodec.decode(featcodec.encode(x, transform=pc))
    ref = np.empty_like(x)
    for c in range(6):
        ref[:, c] = pc.levels[c][np.searchsorted(pc.thresholds[c], x[:, c], side="right")]
    np.testing.assert_array_equal(y, ref)


def test_uniform_transform():
    x = _heavy((8, 40))
    y = featcodec.decode(featcodec.encode(x, transform="uniform", bits=8))
    assert y.shape == x.shape and np.isfinite(y).all()


class _RawCodec:
    """A plug-in codec: the plane's bytes as they are (a real codec, the simplest one)."""

    def encode_plane(self, plane, bits, **params):
        return plane.tobytes(), {"scale": params.get("quality", 1)}

    def decode_plane(self, payload, shape, bits, params):
        dt = np.uint8 if bits <= 8 else np.uint16
        if len(payload) != shape[0] * shape[1] * np.dtype(dt).itemsize:
            raise featcodec.FormatError("raw payload length")
        return np.frombuffer(payload, dt).reshape(shape)


def test_codec_registry_plugs_in_by_name():
    register_codec("raw-test", _RawCodec, replace=True)
    assert "raw-test" in featcodec.available_codecs() and "index" in featcodec.available_codecs()
    x = _heavy((6, 10))
    blob = featcodec.encode(x, codec="raw-test", quality=3)
    h = featcodec.header(blob)
    assert h["codec"] == "raw-test" and h["codec_params"] == {"scale": 3}
    np.testing.assert_array_equal(featcodec.decode(blob), featcodec.decode(featcodec.encode(x)))
    with pytest.raises(featcodec.InputError):
        register_codec("raw-test", dict)
    with pytest.raises(featcodec.UnknownCodecError, match="available"):
        featcodec.encode(x, codec="nope")


@pytest.mark.parametrize(
    "x,kw",
    [
        (np.arange(6).reshape(2, 3), {}),
        (torch.arange(6), {}),
        (np.array([[1.0, np.nan]], np.float32), {}),
        (np.array([[1.0, np.inf]], np.float32), {}),
        (torch.tensor([[1.0, -float("inf")]]).to(torch.bfloat16), {}),
        (np.zeros((0, 4), np.float32), {}),
        (np.float32(3.0), {}),
        ("text", {}),
        (np.ones((2, 3), np.float32), {"bits": 0}),
        (np.ones((2, 3), np.float32), {"bits": 17}),
        (np.ones((2, 3), np.float32), {"bits": 2.5}),
        (np.ones((2, 3), np.float32), {"layout": "kv"}),
        (np.ones((2, 3), np.float32), {"transform": "peaky"}),
        (np.ones((2, 3), np.float32), {"quality": 3}),
    ],
)
def test_bad_input_is_an_input_error(x, kw):
    with pytest.raises(featcodec.InputError):
        featcodec.encode(x, **kw)


def test_decode_argument_errors():
    blob = featcodec.encode(_heavy((4, 4)))
    with pytest.raises(featcodec.InputError, match="numpy"):
        featcodec.decode(blob, device="cuda")
    with pytest.raises(featcodec.InputError):
        featcodec.decode(blob, transform="abc")
    with pytest.raises(featcodec.FormatError, match="bytes"):
        featcodec.decode("abc")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_decode_to_cuda_without_a_gpu_is_an_input_error():
    blob = featcodec.encode(torch.from_numpy(_heavy((4, 4))))
    with pytest.raises(featcodec.InputError, match="no CUDA device"):
        featcodec.decode(blob, device="cuda")
    with pytest.raises(featcodec.InputError, match="torch device"):
        featcodec.decode(blob, device="gpu9")


def _rewrite_header(blob, edit):
    """Re-serialise a stream with an edited header (valid checksum): hostile input."""
    from featcodec.stream.container import read_stream, write_stream

    s = read_stream(blob)
    h = dict(s.header)
    edit(h)
    return write_stream(h, [bytes(x) for x in s.sections], s.version)


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h.update(shape=[4, 5]),
        lambda h: h.update(shape=[2**20, 2**20]),
        lambda h: h.update(dtype="int8"),
        lambda h: h.update(bits=3),
        lambda h: h.update(bits=True),
        lambda h: h.update(framework="jax"),
        lambda h: h.update(codec_params={"x": 1}),
        lambda h: h.pop("pack"),
        lambda h: h.update(extra=1),
        lambda h: h.update(sections=["payload"]),
        lambda h: h["transform"].update(embedded=False),
        lambda h: h["transform"].update(thresholds=True),
        lambda h: h["transform"].update(channels=4),
        lambda h: h["transform"].update(channel_axis=0),
        lambda h: h["transform"].update(channel_axis=0, channels=4),
        lambda h: h["transform"].update(channel_axis=5, channels=4),
        lambda h: h["transform"].update(id="0123456789abcdef"),
        lambda h: h.update(sections=["payload", "thresholds"]),
        lambda h: h["transform"].update(id="x" * 500),
        lambda h: h["pack"].update(layout="tokens"),
        lambda h: h["pack"].update(shape=[2, 8]),
    ],
)
def test_hostile_headers_with_valid_checksum(edit):
    blob = featcodec.encode(_heavy((4, 4)), bits=8)
    with pytest.raises(featcodec.FeatcodecError):
        featcodec.decode(_rewrite_header(blob, edit))


def test_max_values_caps_the_declared_size_before_decoding():
    blob = featcodec.encode(_heavy((4, 8)))
    assert featcodec.decode(blob, max_values=32).shape == (4, 8)
    with pytest.raises(featcodec.FormatError, match="max_values"):
        featcodec.decode(blob, max_values=31)


def test_unknown_codec_in_stream():
    blob = _rewrite_header(featcodec.encode(_heavy((4, 4))), lambda h: h.update(codec="elic-9000"))
    with pytest.raises(featcodec.UnknownCodecError, match="elic-9000"):
        featcodec.decode(blob)
    assert featcodec.header(blob)["codec"] == "elic-9000"  # header() needs no codec


def test_corrupt_levels_with_valid_checksum():
    from featcodec.stages.value_transform import pack_levels, unpack_levels
    from featcodec.stream.container import read_stream, write_stream

    blob = featcodec.encode(_heavy((4, 4)), bits=4)
    s = read_stream(blob)
    lv = unpack_levels(bytes(s.sections[1]), s.header["transform"]["packed"], 1, 16)[0]

    def with_levels(levels, packed):
        t = {k: v for k, v in s.header["transform"].items() if k != "packed"}
        if not packed:  # float32 levels, as versions 2-9 store them
            h = {**s.header, "transform": t}
            return write_stream(h, [bytes(s.sections[0]), levels.astype("<f4").tobytes()], 4)
        t["packed"], raw = pack_levels(levels)
        return write_stream({**s.header, "transform": t}, [bytes(s.sections[0]), raw], s.version)

    np.testing.assert_array_equal(featcodec.decode(with_levels(lv, packed=False)), featcodec.decode(blob))
    assert with_levels(lv, packed=True) == blob
    for packed in (False, True):
        for at, bad in ((-1, np.nan), (-1, np.inf), (0, -np.inf)):  # (packable: their keys ascend)
            lv2 = lv.copy()
            lv2[at] = bad
            with pytest.raises(featcodec.FormatError):
                featcodec.decode(with_levels(lv2, packed))
        lv2 = lv.copy()
        lv2[0] -= 1e-3  # valid levels, but not the transform the id names
        with pytest.raises(featcodec.FormatError):
            featcodec.decode(with_levels(lv2, packed))


@pytest.mark.parametrize("cut", ["truncated", "extra", "non-minimal", "beyond 32 bits", "shift 24"])
def test_corrupt_packed_levels_are_format_errors(cut):
    from featcodec.stream.container import read_stream, write_stream

    s = read_stream(featcodec.encode(_heavy((4, 4)), bits=4))
    h = {**s.header, "transform": dict(s.header["transform"])}
    raw = bytes(s.sections[1])
    first_end = next(i for i, b in enumerate(raw) if b < 0x80)  # the first varint's last byte
    if cut == "truncated":
        raw = raw[:-1]
    elif cut == "extra":
        raw = raw + b"\x00"
    elif cut == "non-minimal":
        raw = raw[:-1] + bytes([raw[-1] | 0x80, 0])
    elif cut == "beyond 32 bits":
        raw = b"\xff\xff\xff\xff\x0f" + raw[first_end + 1:]
    else:
        h["transform"]["packed"] = 24
    with pytest.raises(featcodec.FormatError):
        featcodec.decode(write_stream(h, [bytes(s.sections[0]), raw], s.version))


def test_version_from_the_future():
    blob = bytearray(featcodec.encode(_heavy((4, 4))))
    struct.pack_into("<H", blob, 8, featcodec.stream.container.FORMAT_VERSION + 1)
    body = bytes(blob[:-4])
    with pytest.raises(featcodec.VersionError, match="[Uu]pgrade"):
        featcodec.decode(body + struct.pack("<I", zlib.crc32(body)))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=5).map(tuple),
    dtype=st.sampled_from(["float16", "float32", "float64", "torch.bfloat16", "torch.float32"]),
    bits=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_any_tensor_round_trips_to_its_levels(shape, dtype, bits, seed):
    x64 = np.random.default_rng(seed).standard_t(2, size=shape) * 3
    if dtype.startswith("torch."):
        x = torch.from_numpy(x64).to(getattr(torch, dtype[6:]))
        xw = x.double().numpy()
    else:
        x = x64.astype(dtype)
        xw = x.astype(np.float64)
    blob = featcodec.encode(x, bits=bits)
    y = featcodec.decode(blob)
    t = featcodec.fit_transform(x, bits=bits, method="fast")
    # independent reference: interval search in float64 (exact for every input dtype
    # but float64, where it is the comparison quantize makes)
    ref = t.levels[np.searchsorted(t.thresholds.astype(np.float64), xw, side="right")]
    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and y.dtype == x.dtype
        assert torch.equal(y, torch.from_numpy(ref).to(x.dtype))
    else:
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(y, ref.astype(x.dtype))
    assert tuple(y.shape) == shape
