"""The ``"spatial"`` stage (featcodec/stages/spatial.py): the blockwise 2-D Walsh-Hadamard
transform against scipy's Hadamard matrix, on maps and on the patch grids of ViT-style
tokens, streams through it in every dtype and framework, bad input, hostile headers, the
same bytes for any thread count and in another process, golden streams, and
``codec="auto"`` choosing it where it pays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

import featcodec
from conftest import check_golden_stage, digest, on_threads, write_golden_stage
from featcodec.stages.spatial import _grid_forward, _grid_inverse, block_for, candidate_block, forward, inverse
from featcodec.stream.container import read_stream, write_stream


def _maps(seed: int = 0, shape=(2, 3, 16, 24)) -> np.ndarray:
    """Smooth channels-first maps (random walks in both directions), float32."""
    rng = np.random.default_rng(seed)
    return (np.cumsum(np.cumsum(rng.normal(size=shape), 2), 3) * 0.1).astype(np.float32)


def _tokens(seed: int = 0, shape=(2, 1 + 16 * 16, 6), prefix: int = 1) -> np.ndarray:
    """ViT-style tokens: ``prefix`` leading ones, then a smooth square patch grid (row-major), float32."""
    n, t, c = shape
    side = int(round((t - prefix) ** 0.5))
    rng = np.random.default_rng(seed)
    grid = np.cumsum(np.cumsum(rng.normal(size=(n, side, side, c)), 1), 2) * 0.1
    lead = rng.normal(size=(n, prefix, c)) * 3
    return np.concatenate([lead, grid.reshape(n, side * side, c)], 1).astype(np.float32)


def _reference(x: np.ndarray, b: int) -> np.ndarray:
    """forward() by matrices: scipy's Sylvester Hadamard H_b / sqrt(b) on both sides of every
    block, coefficients frequency-major, in float64."""
    h = hadamard(b) / np.sqrt(b)
    n, c, hh, ww = x.shape
    blocks = x.astype(np.float64).reshape(n, c, hh // b, b, ww // b, b)
    y = np.einsum("ka,ncxayb,lb->ncklxy", h, blocks, h)
    return y.reshape(n, c * b * b, hh // b, ww // b)


@pytest.mark.parametrize("b", [2, 4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_transform_is_the_orthonormal_blockwise_hadamard(b, dtype):
    x = _maps(b).astype(dtype)
    z = forward(x, b)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert z.dtype == dtype and z.shape == (2, 3 * b * b, 16 // b, 24 // b)
    np.testing.assert_allclose(z, _reference(x, b), rtol=tol, atol=tol * float(np.abs(x).max()))
    np.testing.assert_allclose(inverse(z, b, x.shape), x, rtol=tol, atol=tol * float(np.abs(x).max()))
    assert np.isclose(np.sum(z.astype(np.float64) ** 2), np.sum(x.astype(np.float64) ** 2), rtol=tol * 10)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_streams_come_back_like_the_input_with_the_coefficients_error(framework, dtype):
    """Decoded: the input's framework, dtype and shape; the feature-domain MSE is the
    coefficient-domain MSE of the transform the stream carries (orthonormal)."""
    if framework == "numpy" and dtype == "bfloat16":
        pytest.skip("numpy has no bfloat16")
    a = _maps(1)
    x = torch.from_numpy(a).to(getattr(torch, dtype)) if framework == "torch" else a.astype(dtype)
    blob, ctx = featcodec.pipeline.encode_context(x, "index", {"bits": 5, "spatial": 8}, None,
                                                  ["spatial", "transform", "pack"])
    assert blob == featcodec.encode(x, bits=5, spatial=8)
    h = featcodec.header(blob)
    assert h["spatial"] == {"block": 8} and h["stages"] == ["spatial", "transform", "pack"]
    assert h["format_version"] == 10  # the stage needs 8, the embedded levels (packed) 10
    assert h["pack"]["shape"] == [2, 192, 2, 3]
    y = featcodec.decode(blob)
    assert type(y) is type(x) and str(y.dtype).split(".")[-1] == dtype and tuple(y.shape) == a.shape
    f64 = (lambda t: t.double().numpy()) if framework == "torch" else (lambda t: t.astype(np.float64))
    z = forward(f64(x), 8)
    t = ctx.state["transform"]
    coeff_mse = np.mean((t.inverse(t.forward(z.astype(np.float32))).astype(np.float64) - z) ** 2)
    feature_mse = np.mean((f64(y) - f64(x)) ** 2)
    rounding = {"float16": 2e-3, "bfloat16": 2e-2}.get(dtype, 1e-5)  # the decoded dtype's own rounding
    assert abs(feature_mse - coeff_mse) <= rounding * coeff_mse + 1e-6


def test_uniform_steps_on_the_coefficients_of_a_smooth_map_cost_less():
    """Where it pays, as rate control uses it: the same uniform steps (the error-bounded
    quantizer, bound on the coefficients) give a smaller stream on the coefficients of a
    smooth map than on its values, at no more MSE."""
    from featcodec.stages.spatial import COEFFICIENT_BOUND

    x = _maps(2, (1, 8, 64, 64))
    e = 0.05 * float(x.std())
    plain = featcodec.encode(x, max_error=e)
    coded = featcodec.pipeline.encode(x, "index", {"max_error": e, "spatial": 8, COEFFICIENT_BOUND: True}, None,
                                      ["spatial", "transform", "pack"])
    mse = [float(np.mean((featcodec.decode(b).astype(np.float64) - x) ** 2)) for b in (plain, coded)]
    assert len(coded) < 0.8 * len(plain) and mse[1] <= 1.01 * mse[0]


@pytest.mark.parametrize("kw, match", [
    ({"spatial": 3}, "power of two"),
    ({"spatial": True}, "power of two"),
    ({"spatial": 128}, "power of two"),
    ({"spatial": 16}, "spatial=8 divides"),
    ({"spatial": 8, "max_error": 0.1}, "codec='auto'"),
])
def test_bad_options_are_input_errors_that_say_what_to_do(kw, match):
    with pytest.raises(featcodec.InputError, match=match):
        featcodec.encode(_maps(), **kw)


@pytest.mark.parametrize("prefix, side, b", [(1, 16, 4), (0, 14, 2), (5, 8, 8), (8, 4, 2)])
def test_token_grids_are_the_patch_maps_coefficients_then_the_leading_tokens(prefix, side, b):
    """Tokens (N, P + side**2, C): the stage's values are the coefficients of the patch grid
    as a channels-first map (scipy's matrices), then the P leading tokens' values as
    channels of their own, the last one's spare places repeating its last value; the
    inverse gives the tokens back."""
    x = _tokens(3, (2, prefix + side * side, 5), prefix).astype(np.float64)
    z = _grid_forward(x, b, prefix, side)
    n, h = 2, side // b
    patches = x[:, prefix:].reshape(n, side, side, 5).transpose(0, 3, 1, 2)
    lead = x[:, :prefix].reshape(n, -1)
    extra = -(-lead.shape[1] // (h * h))
    padded = np.concatenate([lead, np.repeat(lead[:, -1:], extra * h * h - lead.shape[1], 1)], 1) if prefix else lead
    want = np.concatenate([_reference(patches, b), padded.reshape(n, extra, h, h)], 1)
    np.testing.assert_allclose(z, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_grid_inverse(z, b, prefix, side, x.shape), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_token_streams_come_back_like_the_input(framework, dtype):
    x = _tokens()
    xin = x.astype(dtype) if framework == "numpy" else torch.from_numpy(x.astype(dtype))
    blob = featcodec.encode(xin, bits=12, spatial=4, transform="uniform")
    h = featcodec.header(blob)
    assert h["spatial"] == {"block": 4, "grid": [16, 16], "prefix": 1} and h["format_version"] == 9
    y = featcodec.decode(blob)
    assert type(y) is type(xin) and tuple(y.shape) == x.shape and str(y.dtype).endswith(dtype)
    got = np.asarray(y, np.float64) if framework == "numpy" else y.double().numpy()
    assert np.sqrt(np.mean((got - x) ** 2)) < 0.01 * x.std()


def test_auto_takes_the_patch_grid_of_a_real_vit_where_the_decoded_error_is_lower():
    """codec="auto" on ViT layer 9 of tests/data/features (a class token, 16 x 16 patches):
    at 0.5 and 1 bit per value it keeps the spatial candidate on the patch grid, within the
    budget, at a lower MSE than the best it finds without value stages (stages given)."""
    x = np.load(Path(__file__).resolve().parent / "data" / "features" / "vit__layer9.npy")
    for target in (0.5, 1.0):
        blob = featcodec.encode(x, codec="auto", target_bpfp=target)
        without = featcodec.encode(x, codec="auto", target_bpfp=target, stages=["transform", "pack"])
        h = featcodec.header(blob)
        assert 8 * len(blob) / x.size <= target and h["stages"][0] == "spatial" and "grid" in h["spatial"]
        mse = [float(np.mean((featcodec.decode(b) - x) ** 2)) for b in (blob, without)]
        assert mse[0] < mse[1]


def test_auto_tries_the_grid_only_on_tokens_that_look_like_an_image():
    """candidate_block: the ViT layers of tests/data/features get block_for's block (numpy
    and torch bfloat16), the SmolLM2 hidden state of 7 + 10 x 10 tokens, which only its
    shape makes a grid, gets none; maps get block_for's block."""
    data = Path(__file__).resolve().parent / "data" / "features"
    for name in ("vit__layer6", "vit__layer9", "vit__layer11"):
        x = np.load(data / f"{name}.npy")
        assert candidate_block(x) == block_for(x.shape) == 2
        assert candidate_block(torch.from_numpy(x).to(torch.bfloat16)) == 2
    llm = np.load(data / "llm__hidden15.npy")
    assert block_for(llm.shape) == 2 and candidate_block(llm) is None
    assert candidate_block(_maps()) == block_for(_maps().shape) == 8


def test_only_channels_first_maps_and_token_grids():
    with pytest.raises(featcodec.InputError, match="channels-first map"):
        featcodec.encode(np.ones((16, 16), np.float32), spatial=4)
    with pytest.raises(featcodec.InputError, match="no block divides the grid's side 7"):
        featcodec.encode(np.ones((1, 50, 8), np.float32), spatial=2)
    with pytest.raises(featcodec.InputError, match="make no such grid"):
        featcodec.encode(np.ones((1, 110, 8), np.float32), spatial=2)
    with pytest.raises(featcodec.InputError, match="spatial=2 divides it"):
        featcodec.encode(np.ones((1, 257, 8), np.float32), spatial=32)
    x = _maps()
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(featcodec.InputError, match="NaN"):
        featcodec.encode(x, spatial=4)
    assert block_for((1, 32, 64, 64)) == 8 and block_for((1, 96, 14, 14)) == 2 and block_for((1, 9, 7, 7)) is None
    assert block_for((8, 8)) is None
    assert block_for((1, 257, 384)) == 2 and block_for((1, 197, 768)) == 2 and block_for((1, 50, 768)) is None


def _rewrite(blob: bytes, **fields) -> bytes:
    s = read_stream(blob)
    h = {**s.header, **fields}
    return write_stream(h, [bytes(x) for x in s.sections], s.version)


@pytest.mark.parametrize("field", [{"block": 3}, {"block": 16}, {"block": 8, "x": 1}, {"block": "8"}, [8], None])
def test_hostile_spatial_fields_are_format_errors(field):
    blob = featcodec.encode(_maps(), bits=4, spatial=8)
    with pytest.raises(featcodec.FormatError):
        featcodec.decode(_rewrite(blob, spatial=field))


@pytest.mark.parametrize("field", [
    {"block": 4, "grid": [16, 16], "prefix": 2},    # the tokens are not prefix + grid
    {"block": 4, "grid": [16, 16]},                 # no prefix
    {"block": 4, "grid": [8, 32], "prefix": 1},     # not square
    {"block": 4, "grid": [16, 16], "prefix": True},
    {"block": 4, "grid": [16.0, 16], "prefix": 1},
    {"block": 4, "grid": [16, 16], "prefix": 1, "x": 0},
    {"block": 32, "grid": [16, 16], "prefix": 1},   # the block does not divide the grid
    {"block": 4},                                   # a map's field on tokens
])
def test_hostile_token_grid_fields_are_format_errors(field):
    blob = featcodec.encode(_tokens(), bits=4, spatial=4)
    with pytest.raises(featcodec.FormatError):
        featcodec.decode(_rewrite(blob, spatial=field))


def test_a_pack_shape_the_stage_does_not_give_is_a_format_error():
    blob = featcodec.encode(_maps(), bits=4, spatial=8)
    h = read_stream(blob).header
    with pytest.raises(featcodec.FormatError, match="pack shape"):
        featcodec.decode(_rewrite(blob, spatial={"block": 4}))
    with pytest.raises(featcodec.FormatError):
        featcodec.decode(_rewrite(blob, pack={**h["pack"], "shape": [2, 3, 16, 24]}))


@pytest.mark.parametrize("tokens", [False, True])
def test_the_field_in_an_older_version_is_a_format_error(tokens):
    """The field on maps in a version-7 stream, its token grid in a version-8 one."""
    blob = featcodec.encode(_tokens() if tokens else _maps(), bits=4, spatial=8)
    s = read_stream(blob)
    older = write_stream(dict(s.header), [bytes(x) for x in s.sections], 8 if tokens else 7)
    with pytest.raises(featcodec.FormatError, match="newer version"):
        featcodec.decode(older)


@pytest.mark.parametrize("tokens", [False, True])
def test_same_bytes_for_any_thread_count_and_in_another_process(digest_elsewhere, tokens):
    x = _tokens(3, (2, 1 + 32 * 32, 16)) if tokens else _maps(3, (2, 16, 32, 32))
    one, two = on_threads(lambda: featcodec.encode(x, bits=5, spatial=8), 1, 2)
    y1, y2 = on_threads(lambda: featcodec.decode(one), 1, 2)
    assert one == two and np.array_equal(y1, y2)
    assert digest_elsewhere(one) == digest(y2)


def test_the_session_form_fits_on_the_coefficients_and_writes_the_same_bytes():
    xs = [_maps(s, (1, 4, 32, 32)) for s in range(3)]
    enc = featcodec.Encoder(samples=xs[:2], bits=6, spatial=8)
    blob = enc.encode(xs[2])
    assert blob == featcodec.encode(xs[2], transform=enc.transform, embed_transform=False, spatial=8)
    assert featcodec.header(blob)["stages"] == ["spatial", "transform", "pack"]
    assert enc.decode(blob).shape == xs[2].shape


def test_auto_takes_it_on_a_real_latent_where_the_decoded_error_is_lower():
    """codec="auto" on the TAEF2 latent of tests/data/features: at 1 and 2 bits per value
    it keeps the spatial candidate, within the budget, at a lower MSE than the best it
    finds without value stages (stages given)."""
    x = np.load(Path(__file__).resolve().parent / "data" / "features" / "latent__latent256.npy")
    for target in (1.0, 2.0):
        blob = featcodec.encode(x, codec="auto", target_bpfp=target)
        without = featcodec.encode(x, codec="auto", target_bpfp=target, stages=["transform", "pack"])
        assert 8 * len(blob) / x.size <= target and featcodec.header(blob)["stages"][0] == "spatial"
        mse = [float(np.mean((featcodec.decode(b) - x) ** 2)) for b in (blob, without)]
        assert mse[0] < mse[1]


GOLDEN_CASE = {"bits": 4, "spatial": 4}
#: golden stream name -> the function of this file that makes its input
GOLDEN_INPUTS = {"spatial": _maps, "spatial_tokens": _tokens}


@pytest.mark.parametrize("name", sorted(GOLDEN_INPUTS))
def test_golden_stream_decodes_bit_exactly(name):
    """tests/data/golden_stages/spatial*.*: written by ``python tests/test_spatial.py``."""
    check_golden_stage(name, GOLDEN_INPUTS[name], GOLDEN_CASE)


if __name__ == "__main__":  # write the golden streams (only when the format changes on purpose)
    for name, make in GOLDEN_INPUTS.items():
        write_golden_stage(name, make, GOLDEN_CASE, f"tests/test_spatial.py::{make.__name__}")
