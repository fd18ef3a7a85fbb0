"""codec="auto": the lowest-MSE stream within the budget, checked by brute force over every
index-codec bits and learned-codec quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import featcodec
from featcodec.codecs.learned.codec import available_qualities

#: every shipped (codec, quality)
LEARNED = [(c, q) for c in ("hyperprior", "elic") for q in available_qualities(c)]


def _x():
    return np.cumsum(np.random.default_rng(3).standard_normal((1, 32, 24, 40)), -1).astype(np.float32)


def _values(a):
    """float64 numpy values of a numpy array or a (bfloat16) torch tensor."""
    return a.double().numpy() if hasattr(a, "double") else np.asarray(a, np.float64)


def _mse(blob, x, t=None):
    return float(np.mean((_values(featcodec.decode(blob, transform=t)) - _values(x)) ** 2))


@pytest.mark.parametrize("target", [0.6, 1.5, 3.0, 6.0])
@pytest.mark.parametrize("bf16", [False, True])  # bfloat16 travels as raw bits: MSE of values
def test_auto_is_the_best_fitting_candidate(target, bf16):
    import torch

    x = torch.from_numpy(_x()).to(torch.bfloat16) if bf16 else _x()
    budget = target * np.size(_values(x)) / 8
    cands = []
    for b in range(1, 9):
        t = featcodec.fit_transform(x, bits=b)
        cands.append(featcodec.encode(x, "index", transform=t))
    t8 = featcodec.fit_transform(x, bits=8)
    for c, q in LEARNED:
        cands.append(featcodec.encode(x, c, transform=t8, quality=q, check_quality=False))
    fitting = [c for c in cands if len(c) <= budget]
    blob = featcodec.encode(x, codec="auto", target_bpfp=target)
    assert len(blob) <= budget
    assert _mse(blob, x) <= min(_mse(c, x) for c in fitting) * (1 + 1e-12)


def test_auto_with_a_registered_transform_and_nothing_fitting():
    x = _x()
    t = featcodec.fit_transform(x, bits=8)
    featcodec.register_transform(t)
    blob = featcodec.encode(x, codec="auto", target_bpfp=1e-4, transform=t.id, embed_transform=False)
    smallest = min([featcodec.encode(x, "index", transform=t, embed_transform=False)]
                   + [featcodec.encode(x, c, transform=t, quality=q, embed_transform=False, check_quality=False)
                      for c, q in LEARNED], key=len)
    assert blob == smallest  # nothing fits: the smallest stream
    assert featcodec.header(blob)["transform"]["id"] == t.id


def test_auto_needs_a_target_and_nothing_else():
    x = _x()
    with pytest.raises(featcodec.InputError, match="target_bpfp"):
        featcodec.encode(x, codec="auto")
    with pytest.raises(featcodec.InputError, match="chooses"):
        featcodec.encode(x, codec="auto", target_bpfp=1.0, quality=2)
    with pytest.raises(featcodec.InputError, match="transform"):
        featcodec.encode(x, codec="auto", target_bpfp=1.0, transform="no-such-id")


def test_auto_is_not_a_registrable_codec_name():
    from featcodec.codecs import register_codec

    with pytest.raises(featcodec.InputError, match="reserved"):
        register_codec("auto", object)



@pytest.mark.parametrize("target", [1.5, 3.0, 6.0])
def test_auto_finds_the_finest_error_bound_that_fits(target):
    """The error-bounded candidate: no bound on a fine grid that fits the budget gives a
    stream with a lower MSE than auto's (bisection to 1% of the bound: within 3% MSE)."""
    x = _x()
    budget = target * x.size / 8
    span = float(x.max() - x.min())
    grid = []
    for e in np.geomspace(span / (2 * 65535), span, 80):
        try:
            grid.append(featcodec.encode(x, max_error=float(e)))
        except featcodec.InputError:
            continue
    fitting = [b for b in grid if len(b) <= budget]
    assert fitting
    blob = featcodec.encode(x, codec="auto", target_bpfp=target)
    assert len(blob) <= budget
    assert _mse(blob, x) <= min(_mse(b, x) for b in fitting) * 1.03


def test_auto_reaches_bounds_finer_than_16_bits_span_over_massive_values():
    """A real SmolLM2 hidden state (a 2.4e4 activation, robust scale 2.8): at 7 bits per
    value the finest bound over the whole range stops at 5.6; with the massive value moved
    out exactly (as encode(x, max_error=e) does), auto spends the budget, at a lower MSE
    than any explicit fine bound over the whole range or Lloyd-Max at 8 bits."""
    x = np.load(Path(__file__).resolve().parent / "data" / "features" / "llm__hidden15.npy")
    budget = 7.0 * x.size / 8
    blob = featcodec.encode(x, codec="auto", target_bpfp=7.0)
    assert len(blob) <= budget and featcodec.header(blob)["stages"][0] == "outliers"
    floor = float(x.max() - x.min()) / (2 * 65535) * 1.01
    whole = featcodec.encode(x, max_error=floor, stages=["transform", "pack"])
    assert len(whole) <= budget and _mse(blob, x) < 0.5 * min(_mse(whole, x), _mse(featcodec.encode(x), x))
