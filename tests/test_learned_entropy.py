"""Integer-exact hyper-decoder and table choice (featcodec.codecs.learned.integer_entropy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from featcodec.codecs.learned.integer_entropy import (FRAC, FixedPointHyperSynthesis, scale_indexes,
                                               scale_thresholds)
from featcodec.codecs.learned.models import build_model


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(1)
    n = build_model({"arch": "hyperprior", "N": 16, "M": 24})
    n.update(force=True)
    return n.eval()


def _reference_indexes(net, scales: torch.Tensor) -> np.ndarray:
    return net.gaussian_conditional.build_indexes(scales).numpy()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300 << FRAC), min_size=1, max_size=200), st.booleans())
def test_indexes_match_compressai_rule(net, ints, on_table):
    """Integer comparison == CompressAI's float rule on the same (exact) scale values."""
    q = np.array(ints, np.int64)
    th = scale_thresholds(net.gaussian_conditional.scale_table)
    if on_table:  # exactly on and around the thresholds
        q = np.concatenate([q, th, th + 1, th - 1])
    ref = _reference_indexes(net, torch.from_numpy(q.astype(np.float64) / 2.0 ** FRAC))
    np.testing.assert_array_equal(scale_indexes(q, th), ref)


def test_fixed_point_tracks_float_hyper_decoder(net):
    hs = FixedPointHyperSynthesis(net.h_s)
    med = net.entropy_bottleneck._get_medians().detach().reshape(-1)
    z = torch.randint(-6, 7, (1, 16, 3, 5))
    q = hs(z, med)
    with torch.no_grad():
        ref = net.h_s(z.float() + med.view(1, -1, 1, 1)).double()
    assert q.dtype == torch.int64
    err = (q.double() / 2 ** FRAC - ref).abs().max().item()
    assert err < 1e-3 * max(1.0, ref.abs().max().item())


def test_fixed_point_is_thread_count_invariant(net):
    hs = FixedPointHyperSynthesis(net.h_s)
    med = net.entropy_bottleneck._get_medians().detach().reshape(-1)
    z = torch.randint(-40, 41, (1, 16, 9, 11))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = hs(z, med)
        torch.set_num_threads(2)
        b = hs(z, med)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b)


def test_huge_symbols_stay_exact(net):
    """Inputs are clamped so partial sums stay exact integers (no inf/nan, deterministic)."""
    hs = FixedPointHyperSynthesis(net.h_s)
    med = torch.zeros(16)
    z = torch.full((1, 16, 2, 2), 2 ** 30, dtype=torch.int64)
    q = hs(z, med)
    assert torch.isfinite(q.double()).all() and (q.abs() < 2 ** 53).all()


@pytest.mark.parametrize("cout,h,w", [(1, 5, 7), (1, 16, 9), (3, 4, 4), (8, 1, 1)])
def test_subpixel_deconv_equals_compressai_deconv(cout, h, w):
    """The sub-pixel rewrite of a stride-2 5x5 transposed conv gives CompressAI's output."""
    from compressai.models.utils import deconv

    from featcodec.codecs.learned.models import _SubPixelDeconv

    torch.manual_seed(cout * 100 + h)
    d = deconv(6, cout).eval()
    x = torch.randn(2, 6, h, w, dtype=torch.float64)
    d = d.double()
    with torch.no_grad():
        np.testing.assert_allclose(_SubPixelDeconv(d)(x).numpy(), d(x).numpy(), rtol=0, atol=1e-12)


def test_inference_transforms_match_compressai(net):
    """for_inference (frozen in-place GDN, sub-pixel last layer, channels-last) computes
    what CompressAI's g_a / g_s compute."""
    from featcodec.codecs.learned.models import for_inference

    x = torch.rand(1, 1, 64, 128)
    with torch.no_grad():
        y_ref = net.g_a(x)
        x_ref = net.g_s(torch.round(y_ref))
        g_a, g_s = for_inference(net.g_a), for_inference(net.g_s)
        y = g_a(x.contiguous(memory_format=torch.channels_last))
        x_hat = g_s(torch.round(y_ref).contiguous(memory_format=torch.channels_last))
    assert any(type(m).__name__ == "_SubPixelDeconv" for m in g_s)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x_hat.numpy(), x_ref.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pixels", [1, 20, 64, 10 ** 6])  # bands of 1 row, partial, whole
@pytest.mark.parametrize("hw", [(1, 1), (5, 9), (17, 6)])
def test_blocked_elic_blocks_equal_compressai_blocks(monkeypatch, pixels, hw):
    """ELIC's residual bottleneck and attention blocks computed in bands of rows (with the
    3x3 convolution's context rows), in place or not, give CompressAI's output, for any
    band size."""
    from compressai.layers import AttentionBlock
    from compressai.models.sensetime import ResidualBottleneckBlock

    from featcodec.codecs.learned.models import _BlockedAttention, _BlockedBottleneck

    monkeypatch.setattr(_BlockedBottleneck, "PIXELS", pixels)
    monkeypatch.setattr(_BlockedAttention, "PIXELS", pixels)
    torch.manual_seed(hw[0] * 31 + hw[1])
    rbb, att = ResidualBottleneckBlock(8, 8).eval(), AttentionBlock(8).eval()
    x = torch.randn(2, 8, *hw)
    for ref, fast in ((rbb, _BlockedBottleneck.of(rbb)),
                      (rbb, _BlockedBottleneck.of(rbb, inplace=True)),
                      (att, _BlockedAttention(att))):
        inp = x.clone().contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            out = fast(inp)
            assert out.is_contiguous(memory_format=torch.channels_last)
            assert (out.data_ptr() == inp.data_ptr()) == getattr(fast, "inplace", False)
            np.testing.assert_allclose(out.numpy(), ref(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("hw", [(3, 5), (70, 90)])  # 6300 pixels: more than one block
def test_frozen_gdn_equals_compressai_gdn(inverse, hw):
    from compressai.layers import GDN

    from featcodec.codecs.learned.models import _FrozenGDN

    torch.manual_seed(hw[0])
    gdn = GDN(8, inverse=inverse).eval()
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
        x = torch.randn(2, 8, *hw)
        ref = gdn(x)
        for frozen in (_FrozenGDN(gdn), _FrozenGDN(gdn, inplace=True)):
            for inp in (x, x.contiguous(memory_format=torch.channels_last)):  # plain, blocked
                np.testing.assert_allclose(frozen(inp.clone()).numpy(), ref.numpy(), rtol=1e-5,
                                           atol=1e-6)


# -- ELIC's space-channel context model in fixed point (featcodec.codecs.learned.latents) -------

def _tiny_elic():
    torch.manual_seed(3)
    n = build_model({"arch": "elic", "N": 16, "M": 40})
    n.update(force=True)
    return n.eval()


@pytest.fixture(scope="module")
def elic():
    from featcodec.codecs.learned.integer_entropy import to_fixed
    from featcodec.codecs.learned.latents import CheckerboardGroupLatents

    n = _tiny_elic()
    gc = n.latent_codec["y"].latent_codec["y0"].latent_codec["y"].gaussian_conditional
    tables = (gc._quantized_cdf.numpy().astype(np.int32), gc._cdf_length.numpy().astype(np.int32),
              gc._offset.numpy().astype(np.int32))
    lat = CheckerboardGroupLatents(n.latent_codec["y"], tables, scale_thresholds(gc.scale_table))
    return n, lat, to_fixed


def _side(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 2 * 16, h, w, generator=g) * 2


def test_elic_fixed_point_latents_track_compressai(elic):
    """Our fixed-point checkerboard x channel-group coding gives CompressAI's float y_hat
    (up to the fixed-point rounding of the means, which may flip a rare symbol that sits on
    a rounding boundary) on a size CompressAI supports."""
    n, lat, to_fixed = elic
    y = torch.randn(1, 40, 6, 8) * 4
    side = _side(n, 6, 8, 0)
    with torch.no_grad():
        ref = n.latent_codec["y"].compress(y, side)["y_hat"]
    strings = lat.encode(y, to_fixed(side).to(torch.int64))
    y_hat = lat.decode(strings, to_fixed(side).to(torch.int64), (6, 8))
    assert len(strings) == 2 * len(n.groups)
    diff = (y_hat - ref).abs()
    assert diff.median().item() < 1e-4 and (diff > 1e-3).float().mean().item() < 0.01


@pytest.mark.parametrize("h,w", [(5, 7), (1, 1), (3, 10)])
def test_elic_latents_round_trip_on_odd_sizes(elic, h, w):
    """Sizes CompressAI's checkerboard cannot code (it halves the width) round-trip: the
    decoder rebuilds exactly the encoder's y_hat, and y_hat - y is within half a step."""
    n, lat, to_fixed = elic
    y = torch.randn(1, 40, h, w) * 5
    side = to_fixed(_side(n, h, w, 1)).to(torch.int64)
    enc_hat, strings = lat._run(side, (h, w), y, None)
    dec_hat = lat.decode(strings, side, (h, w))
    assert torch.equal(enc_hat, dec_hat)
    assert (dec_hat - y).abs().max().item() <= 0.5 + 1e-4


def test_elic_latents_thread_count_invariant(elic):
    n, lat, to_fixed = elic
    y = torch.randn(1, 40, 9, 7) * 5
    side = to_fixed(_side(n, 9, 7, 2)).to(torch.int64)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = lat.encode(y, side)
        torch.set_num_threads(2)
        b = lat.encode(y, side)
        da = lat.decode(a, side, (9, 7))
    finally:
        torch.set_num_threads(old)
    assert a == b and torch.equal(da, lat.decode(b, side, (9, 7)))


def test_elic_latents_reject_a_wrong_string_count(elic):
    import featcodec

    n, lat, to_fixed = elic
    side = to_fixed(_side(n, 2, 2, 3)).to(torch.int64)
    strings = lat.encode(torch.zeros(1, 40, 2, 2), side)
    with pytest.raises(featcodec.FormatError):
        lat.decode(strings[:-1], side, (2, 2))


@pytest.mark.parametrize("h,w", [(1, 1), (4, 7), (9, 6)])
def test_conv_at_positions_equals_the_full_fixed_point_conv(h, w):
    """The checkerboard context evaluated at chosen positions over its nonzero taps gives
    exactly the full fixed-point convolution's numbers there (integer sums: any order)."""
    from compressai.layers import CheckerboardMaskedConv2d

    from featcodec.codecs.learned.integer_entropy import FixedPointConvAt, FixedPointSequential, to_fixed

    torch.manual_seed(h * 10 + w)
    m = CheckerboardMaskedConv2d(6, 12, kernel_size=5, padding=2)
    a = to_fixed(torch.randn(6, h, w) * 3)
    where = torch.rand(h, w) < 0.5
    full = FixedPointSequential(torch.nn.Sequential(m))(a[None])[0][:, where]
    assert torch.equal(FixedPointConvAt(m)(a, where), full)
    assert len(FixedPointConvAt(m).offsets) == 12  # the checkerboard's taps only
