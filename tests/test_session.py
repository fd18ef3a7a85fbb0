"""The session form (featcodec.Encoder) and the index codec's tables="single": the same
streams as featcodec.encode with the same transform, decoded to the transform's levels,
in this process and in another one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import featcodec

RNG = np.random.default_rng(11)
SAMPLES = RNG.standard_t(3, (6, 48, 96)).astype(np.float32)
X = RNG.standard_t(3, (1, 48, 96)).astype(np.float32)


def _levels_of(t: featcodec.Transform, x: np.ndarray) -> np.ndarray:
    """Independent reference: nearest level by a float64 interval search (numpy)."""
    return t.levels[np.searchsorted(t.thresholds.astype(np.float64), x.astype(np.float64), side="right")]


def test_session_streams_equal_encode_with_that_transform_and_decode_to_its_levels():
    enc = featcodec.Encoder(samples=SAMPLES, bits=6)
    assert enc.transform.id == featcodec.fit_transform(SAMPLES, bits=6).id
    blob = enc.encode(X)
    assert blob == featcodec.encode(X, transform=enc.transform, embed_transform=False)
    h = featcodec.header(blob)
    assert h["transform"]["embedded"] is False and h["transform"]["id"] == enc.transform.id
    assert "levels" not in h["sections"]  # only the id travels
    np.testing.assert_array_equal(featcodec.decode(blob), _levels_of(enc.transform, X))  # registered
    np.testing.assert_array_equal(enc.decode(blob), _levels_of(enc.transform, X))
    assert enc(X) == blob and repr(enc).startswith("Encoder(transform=")


def test_session_by_registered_id_and_with_embedded_levels():
    t = featcodec.fit_transform(SAMPLES, bits=4)
    featcodec.register_transform(t)
    enc = featcodec.Encoder(t.id, embed_transform=True)
    blob = enc.encode(X)
    assert blob == featcodec.encode(X, transform=t)
    assert featcodec.header(blob)["transform"]["embedded"] is True


def test_session_takes_torch_and_keeps_dtype():
    enc = featcodec.Encoder(samples=SAMPLES, bits=8)
    xt = torch.from_numpy(X).to(torch.bfloat16)
    y = featcodec.decode(enc.encode(xt))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16 and y.shape == xt.shape


def test_session_stream_decodes_in_another_process(tmp_path, run_python):
    enc = featcodec.Encoder(samples=SAMPLES, bits=6, tables="single")
    (tmp_path / "s.fcs").write_bytes(enc.encode(X))
    enc.transform.save(tmp_path / "t.json")
    code = ("import sys, numpy as np, featcodec\n"
            "t = featcodec.load_transform(sys.argv[1])\n"
            "y = featcodec.decode(open(sys.argv[2], 'rb').read(), transform=t)\n"
            "np.save(sys.argv[3], y)\n")
    run_python("-c", code, tmp_path / "t.json", tmp_path / "s.fcs", tmp_path / "y.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), _levels_of(enc.transform, X))


def test_single_table_codes_the_same_indices_with_one_table():
    x = np.load(Path(__file__).parent / "data" / "features" / "vit__layer9.npy")  # channels differ
    t = featcodec.fit_transform(x, bits=6)
    auto = featcodec.encode(x, transform=t)
    single = featcodec.encode(x, transform=t, tables="single")
    assert featcodec.header(single)["codec_params"] == {}
    assert featcodec.header(auto)["codec_params"].get("table") == "columns"  # grouped tables win here
    assert len(auto) < len(single)
    np.testing.assert_array_equal(featcodec.decode(single), featcodec.decode(auto))


@pytest.mark.parametrize("kwargs, match", [
    ({}, "either transform"),
    ({"transform": "no-such-id"}, "no registered transform"),
    ({"transform": 3}, "must be a featcodec Transform"),
    ({"samples": SAMPLES, "transform": "x"}, "not both"),
])
def test_session_bad_arguments(kwargs, match):
    with pytest.raises(featcodec.InputError, match=match):
        featcodec.Encoder(**kwargs)


def test_bad_tables_option():
    enc = featcodec.Encoder(samples=SAMPLES, bits=4, tables="many")
    with pytest.raises(featcodec.InputError, match="tables must be"):
        enc.encode(X)


def test_session_with_value_stages_fits_on_what_the_transform_sees():
    """outliers=k in a session: the transform is fitted without the massive values (its
    levels stay in the bulk), the streams are those of featcodec.encode with the same
    transform and stage, and the massive values come back exactly."""
    x = np.load(Path(__file__).parent / "data" / "features" / "llm__hidden15.npy")  # a 2e4 activation
    enc = featcodec.Encoder(samples=[x], bits=6, outliers=8)
    assert float(np.abs(enc.transform.levels).max()) < 0.1 * float(np.abs(x).max())
    blob = enc.encode(x)
    assert blob == featcodec.encode(x, transform=enc.transform, embed_transform=False, outliers=8)
    assert featcodec.header(blob)["stages"] == ["outliers", "transform", "pack"]
    y = featcodec.decode(blob)
    top = np.argsort(np.abs(x).ravel())[-8:]
    np.testing.assert_array_equal(y.ravel()[top], x.ravel()[top])
    with pytest.raises(featcodec.InputError, match="needs the 'rotation' stage"):
        featcodec.Encoder(samples=[x], rotation=True, stages=["transform", "pack"])


def test_session_with_a_learned_codec_checks_the_first_tensor_only():
    noise = np.random.default_rng(1).standard_t(3, (1, 64, 96)).astype(np.float32)  # far outside the corpus
    enc = featcodec.Encoder(samples=noise, codec="hyperprior", quality=6)
    with pytest.warns(featcodec.QualityWarning):
        enc.encode(noise)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", featcodec.QualityWarning)
        enc.encode(noise)  # measured once per session
    quiet = featcodec.Encoder(enc.transform, codec="hyperprior", quality=6, check_quality=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", featcodec.QualityWarning)
        quiet.encode(noise)
