"""featcodec in numcodecs and Zarr: the codec round-trips chunks like featcodec itself, its
config is small JSON (names, numbers, a transform id: never weights), and a feature data
set written to Zarr through it reads back smaller and close to the original."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import featcodec

numcodecs = pytest.importorskip("numcodecs")
from featcodec.integrations.numcodecs_codec import FeatCodec  # noqa: E402

FIXTURES = Path(__file__).parent / "data" / "features"


def _features() -> np.ndarray:
    """A feature data set: the committed CNN/latent fixtures if present, else heavy-tailed
    synthetic maps (same shape for every item)."""
    files = sorted(FIXTURES.glob("cnn__*.npy")) + sorted(FIXTURES.glob("latent__*.npy"))
    for f in files:
        a = np.load(f).astype(np.float32)
        if a.ndim == 4 and a.shape[0] == 1 and a.size >= 4096:
            return np.concatenate([a, a * 0.5 + 0.1, -a], axis=0)  # 3 items of one real map
    rng = np.random.default_rng(0)
    return rng.standard_t(4, size=(3, 32, 16, 16)).astype(np.float32)


def test_entry_point_declares_the_codec():
    try:
        eps = metadata.entry_points(group="numcodecs.codecs")
    except Exception:  # pragma: no cover
        pytest.skip("entry points unavailable")
    ours = [ep for ep in eps if ep.name == "featcodec"]
    if not ours:
        pytest.skip("featcodec is not installed (running from a source tree)")
    assert ours[0].load() is FeatCodec
    codec = numcodecs.get_codec({"id": "featcodec", "bits": 6})
    assert isinstance(codec, FeatCodec) and codec.bits == 6


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_round_trip_matches_featcodec(dtype):
    x = np.random.default_rng(1).standard_t(3, size=(4, 24, 24)).astype(dtype)
    codec = FeatCodec(bits=6)
    enc = codec.encode(x)
    assert enc == featcodec.encode(x, "index", bits=6, transform="auto", layout="auto", embed_transform=True)
    y = codec.decode(enc)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, featcodec.decode(enc))
    out = np.empty_like(x)
    assert codec.decode(np.frombuffer(enc, np.uint8), out=out) is out
    np.testing.assert_array_equal(out, y)


def test_config_is_small_json_and_round_trips():
    t = featcodec.fit_transform(np.random.default_rng(0).standard_normal(20000), bits=5)
    codec = FeatCodec(transform=t, embed_transform=False, bits=5)
    cfg = codec.get_config()
    text = json.dumps(cfg)  # JSON-able
    assert cfg == {"id": "featcodec", "codec": "index", "bits": 5, "transform": t.id,
                   "layout": "auto", "embed_transform": False}
    assert len(text) < 300  # names and numbers only: no levels, no weights
    again = numcodecs.get_codec(json.loads(text))
    x = np.random.default_rng(2).standard_normal((8, 64)).astype(np.float32)
    assert again.encode(x) == codec.encode(x)
    assert len(codec.encode(x)) < len(FeatCodec(bits=5).encode(x))  # no levels in each chunk


def _registered() -> bool:
    try:
        numcodecs.get_codec({"id": "featcodec"})
        return True
    except (ValueError, KeyError):
        return False


if not _registered():  # a source tree without installed entry points: register by hand
    numcodecs.register_codec(FeatCodec)


def test_error_bounded_chunks():
    """max_error through numcodecs: every value of every chunk within the bound, and the
    config stays small JSON that rebuilds the same codec."""
    x = np.random.default_rng(3).standard_t(3, size=(6, 40, 32)).astype(np.float32)
    codec = FeatCodec(max_error=0.02)
    cfg = codec.get_config()
    assert cfg["max_error"] == 0.02 and json.loads(json.dumps(cfg)) == cfg
    blob = numcodecs.get_codec(cfg).encode(x)
    assert blob == featcodec.encode(x, max_error=0.02)
    assert np.abs(codec.decode(blob).astype(np.float64) - x).max() <= 0.02
    with pytest.raises(featcodec.InputError, match="max_error"):
        FeatCodec(max_error=0.02, bits=6)
    with pytest.raises(featcodec.InputError, match="max_error"):
        FeatCodec(max_error="0.02")


def test_bad_settings_and_chunks():
    with pytest.raises(featcodec.InputError, match="bits"):
        FeatCodec(bits=0)
    with pytest.raises(featcodec.InputError, match="transform"):
        FeatCodec(transform=np.zeros(3))
    with pytest.raises(featcodec.InputError, match="float"):
        FeatCodec().encode(np.arange(10, dtype=np.int32))
    with pytest.raises(featcodec.FormatError):
        FeatCodec().decode(b"definitely not a stream")


def test_missing_transform_is_reported():
    t = featcodec.fit_transform(np.random.default_rng(5).standard_normal(5000) * 3, bits=4)
    blob = FeatCodec(transform=t, embed_transform=False).encode(np.ones((4, 4), np.float32))
    from featcodec.transform.registry import unregister_transform

    saved = unregister_transform(t.id)  # a reader that never registered it
    try:
        with pytest.raises(featcodec.MissingTransformError, match="register_transform"):
            FeatCodec().decode(blob)
    finally:
        featcodec.register_transform(saved)


def _report(name: str, x: np.ndarray, y: np.ndarray, stored: int) -> dict:
    mse = float(np.mean((x.astype(np.float64) - y) ** 2))
    psnr = 10 * np.log10(float(x.max() - x.min()) ** 2 / mse)
    print(f"\n{name}: {x.nbytes:,} raw bytes -> {stored:,} stored ({x.nbytes / stored:.2f}x), "
          f"MSE {mse:.3e}, PSNR {psnr:.2f} dB")
    return {"mse": mse, "psnr": psnr}


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "zarr.json" not in f.name
               and not f.name.startswith(".z"))


zarr = None
try:
    import zarr  # noqa: F811
except Exception:
    pass
needs_zarr3 = pytest.mark.skipif(zarr is None or int(zarr.__version__.split(".")[0]) < 3, reason="zarr>=3 not installed")


@needs_zarr3
def test_zarr_v3_feature_store(tmp_path):
    from featcodec.integrations.zarr_codec import FeatcodecZarrCodec

    x = _features()
    path = tmp_path / "feats.zarr"
    z = zarr.create_array(store=str(path), shape=x.shape, chunks=(1,) + x.shape[1:], dtype="float32",
                          serializer=FeatcodecZarrCodec(bits=8), compressors=None)
    z[:] = x
    meta = json.loads((path / "zarr.json").read_text())
    codecs = meta["codecs"]
    assert codecs == [{"name": "featcodec", "configuration": {"codec": "index", "bits": 8, "transform": "auto",
                                                              "layout": "auto", "embed_transform": True}}]
    back = zarr.open_array(str(path), mode="r")
    y = back[:]
    assert y.shape == x.shape and y.dtype == np.float32
    # each chunk is exactly featcodec's own stream for that item
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(y[i], featcodec.decode(featcodec.encode(x[i], bits=8)))
    stored = _store_bytes(path)
    r = _report("zarr v3 + featcodec (8 bits, transform fitted per chunk)", x, y, stored)
    assert stored < x.nbytes / 3  # 8-bit codes; each chunk carries its 1 KB of levels
    assert r["psnr"] > 35
    # a partial read decodes only what it needs and agrees
    np.testing.assert_array_equal(back[1, :4], y[1, :4])


@needs_zarr3
def test_zarr_v3_with_a_shared_transform(tmp_path):
    """One transform fitted on the data set, stored by id: smaller chunks, same decode."""
    from featcodec.integrations.zarr_codec import FeatcodecZarrCodec

    x = _features()
    t = featcodec.fit_transform(x, bits=6)
    path = tmp_path / "shared.zarr"
    z = zarr.create_array(store=str(path), shape=x.shape, chunks=(1,) + x.shape[1:], dtype="float32",
                          serializer=FeatcodecZarrCodec(transform=t, embed_transform=False), compressors=None)
    z[:] = x
    meta = (path / "zarr.json").read_text()
    assert t.id in meta and len(meta) < 2000  # the id, not the levels
    y = zarr.open_array(str(path), mode="r")[:]
    for i in range(x.shape[0]):
        np.testing.assert_array_equal(y[i], featcodec.decode(featcodec.encode(x[i], transform=t)))
    stored = _store_bytes(path)
    r = _report("zarr v3 + featcodec (6 bits, one shared transform by id)", x, y, stored)
    assert stored < x.nbytes / 4.5
    assert r["psnr"] > 30


@needs_zarr3
def test_zarr_v3_rejects_non_float_arrays(tmp_path):
    from featcodec.integrations.zarr_codec import FeatcodecZarrCodec

    with pytest.raises(featcodec.InputError, match="float"):
        zarr.create_array(store=str(tmp_path / "i.zarr"), shape=(4, 4), dtype="int32",
                          serializer=FeatcodecZarrCodec())


@needs_zarr3
def test_zarr_format2_with_numcodecs_compressor(tmp_path):
    x = _features()
    path = tmp_path / "v2.zarr"
    z = zarr.create_array(store=str(path), shape=x.shape, chunks=(1,) + x.shape[1:], dtype="float32",
                          zarr_format=2, compressors=FeatCodec(bits=8), filters=None)
    z[:] = x
    zmeta = json.loads((path / ".zarray").read_text())
    assert zmeta["compressor"]["id"] == "featcodec"
    y = zarr.open_array(str(path), mode="r")[:]
    stored = _store_bytes(path)
    _report("zarr v2 + featcodec numcodecs (8 bits)", x, y, stored)
    assert stored < x.nbytes / 3
    np.testing.assert_array_equal(y[0], featcodec.decode(featcodec.encode(x[0], bits=8)))
