"""Learned codecs that are never silently bad (issue 15).

The shipped learned codecs were trained on a corpus of features; on other models they can
reconstruct poorly (feature-domain MSE up to 50-90% of the variance at their top quality).
Two guards, both measured by the encoder, which holds the decoder:

* :func:`encode_bounded` (``featcodec.encode(x, codec="elic"|"hyperprior", max_error=e)``):
  the learned stream plus an error-bounded residual (the ``"residual"`` stage,
  :mod:`featcodec.stages.residual`), so every decoded value is within ``e`` of ``x``; the
  index codec's ``max_error=e`` stream is made too and the smaller of the two is returned
  (``featcodec.header(blob)["codec"]`` says which: ``"index"``, or the learned codec with a
  ``residual`` field).
* :func:`check_quality` (every ``featcodec.encode(x, codec="hyperprior"|"elic", ...)``
  without ``max_error``): decodes the learned stream, encodes ``x`` with the index codec at
  the largest ``bits`` whose stream is no larger, and warns with a
  :class:`featcodec.QualityWarning` when that one has the lower MSE. Silence it with
  ``warnings.filterwarnings("ignore", category=featcodec.QualityWarning)``, or skip the
  measurement (one decode and, as a rule, one or two index encodes) with
  ``check_quality=False``.

Example:
    >>> import warnings, numpy as np, featcodec
    >>> x = np.random.default_rng(0).standard_t(3, size=(1, 64, 96)).astype(np.float32)
    >>> blob = featcodec.encode(x, codec="elic", quality=3, max_error=0.1)
    >>> bool(np.abs(featcodec.decode(blob) - x).max() <= 0.1)
    True
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     _ = featcodec.encode(x, codec="hyperprior", quality=3)
    >>> [type(w.message).__name__ for w in seen]  # i.i.d. noise is far outside the corpus
    ['QualityWarning']
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

from . import pipeline
from ._arrays import is_torch
from .errors import InputError, QualityWarning
from .stages import DEFAULT_STAGES

__all__ = ["encode_bounded", "check_quality"]


def encode_bounded(x: Any, codec: str, codec_params: dict[str, Any], max_error: float,
                   options: dict[str, Any], stages: Sequence[str] | None = None) -> bytes:
    """The smaller of two streams of ``x`` that both decode within ``max_error`` of every
    value: learned ``codec`` (with ``codec_params``, e.g. ``quality``; default its lowest
    quality, which measured best under a residual) plus the residual stage, and the index codec with ``max_error`` (ties: the index stream). ``options`` are
    the stages' options of :func:`featcodec.encode`. If only one can meet the bound (the
    other's 16-bit indices cannot span the range), that one; if neither, the index codec's
    :class:`featcodec.InputError`."""
    names = list(DEFAULT_STAGES if stages is None else stages)
    if codec_params.get("quality") is None and codec_params.get("target_bpfp") is None:
        from .codecs.learned.codec import available_qualities

        # the residual pays for a poor prediction less than the payload costs at higher qualities
        # (docs/residual.md): the lowest quality is the default
        codec_params = {**codec_params, "quality": min(available_qualities(codec))}
    if "residual" in names:
        raise InputError("max_error with a learned codec adds the 'residual' stage itself; omit it from stages.")
    made, failed = [], []
    for codec_name, opts, params, steps in (
        ("index", {**options, "max_error": max_error}, None, stages),
        (codec, {**options, "max_error": None, "residual": max_error}, codec_params, ["residual", *names]),
    ):
        try:
            made.append(pipeline.encode(x, codec_name, opts, params, steps))
        except InputError as e:
            failed.append(e)
    if not made:
        raise failed[0]
    return min(made, key=len)


def check_quality(x: Any, blob: bytes, transform: Any, options: dict[str, Any],
                  stages: Sequence[str] | None = None) -> float | None:
    """Warn (:class:`featcodec.QualityWarning`) when the index codec reconstructs ``x``
    with a lower feature-domain MSE than the (learned) stream ``blob`` at the same or a
    smaller stream size. ``transform``: the Transform ``blob`` was made with (for a stream
    that only references it); ``options``: the stages' options of the encode.

    The index codec is tried at the largest ``bits`` whose stream can fit (one more than
    the learned stream's bits per value, at most 8), then at fewer bits until one is no
    larger than ``blob``: one or two encodes as a rule, more on small tensors, where the
    embedded levels weigh more (before session 12 it stopped after three, and a 1,920-value
    tensor whose learned stream was 74% error went unwarned). Returns the index codec's MSE
    (``None`` if no index stream fitted)."""
    from .metrics import mse

    n = x.numel() if is_torch(x) else math.prod(x.shape)
    learned = mse(x, pipeline.decode(blob, {"transform": transform}))
    bpv = 8 * len(blob) / n
    shared = {**options, "transform": "auto", "max_error": None, "fit_cache": {}}
    top = min(8, math.ceil(bpv) + 1)
    for bits in range(top, 0, -1):
        s, ctx = pipeline.encode_context(x, "index", {**shared, "bits": bits}, None, stages)
        if len(s) <= len(blob):
            break
    else:
        return None
    index = mse(x, pipeline.decode(s, {"transform": ctx.state["transform"]}))
    if index < learned:
        h = pipeline.read_header(blob)
        q = h["codec_params"].get("quality")
        warnings.warn(QualityWarning(
            f"codec={h['codec']!r} (quality {q}) reconstructs this tensor with MSE {learned:.4g} at "
            f"{bpv:.3g} bits per value, but codec='index', bits={bits} reaches MSE {index:.4g} at "
            f"{8 * len(s) / n:.3g} bits per value: this tensor is outside what the learned codec was "
            f"trained on. Use featcodec.encode(x, bits={bits}), or max_error=... for a guaranteed bound "
            f"(codec={h['codec']!r}, max_error=... adds a residual). Silence this with "
            f"warnings.filterwarnings('ignore', category=featcodec.QualityWarning) or check_quality=False."
        ), stacklevel=3)
    return index
