"""The public API: ``encode`` a feature tensor to one self-describing stream, ``decode`` it
back to a tensor like the input (framework, dtype, shape), read its ``header``.

These functions check their arguments and run the pipeline (:mod:`featcodec.pipeline`):
the stages (value transform -> indices, :func:`featcodec.pack` into a 2-D plane), the
codec (``"index"``: rANS), the stream (docs/format.md). ``decode`` runs it backwards.

Example:
    >>> import numpy as np, featcodec
    >>> x = np.random.default_rng(0).standard_t(3, size=(1, 16, 64)).astype(np.float32)
    >>> blob = featcodec.encode(x, bits=8)
    >>> y = featcodec.decode(blob)
    >>> y.shape, y.dtype, float(np.abs(y - x).max()) < float(np.abs(x).max()) / 10
    ((1, 16, 64), dtype('float32'), True)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import pipeline
from .bounded import check_quality as quality_check
from .bounded import encode_bounded
from .codecs.learned.codec import learned_codecs
from .errors import InputError
from .stages import with_value_stages
from .stages.outliers import count_for_bound, count_for_peaks
from .transform import Transform
from .transform.registry import register_transform, registered_transforms

__all__ = ["encode", "decode", "header", "register_transform", "registered_transforms"]


def encode(
    x: Any,
    codec: str = "index",
    *,
    transform: Any = "auto",
    bits: int | None = None,
    quality: Any = None,
    target_bpfp: float | None = None,
    layout: str = "auto",
    embed_transform: bool = True,
    max_error: float | None = None,
    outliers: int | None = None,
    rotation: bool | int | None = None,
    scales: str | None = None,
    spatial: int | None = None,
    stages: Sequence[str] | None = None,
    check_quality: bool = True,
    **params: Any,
) -> bytes:
    """Compress a feature tensor into one self-describing stream (see docs/format.md).

    Args:
        x: torch tensor (any device) or numpy array, float16/bfloat16/float32/float64,
            finite, not empty.
        codec: a name from :func:`featcodec.available_codecs` (``"index"``: rANS over the
            transform's indices, lossless on them), or ``"auto"`` (below).
        transform: ``"auto"`` (fit the peaky-to-balanced transform on ``x``), ``"uniform"``,
            a fitted :class:`featcodec.Transform`, or the id of a registered one.
        bits: the transform's bits when fitting (default 8; lower is smaller and lossier).
        quality, target_bpfp: rate knobs of learned codecs (passed to the codec).
        layout: how to pack ``x`` into a plane (:func:`featcodec.pack`).
        embed_transform: store the transform's levels in the stream (default). With
            ``False`` only its id is stored, and the decoder needs it registered or passed.
        max_error: error-bounded coding: every decoded value is within this absolute
            error of ``x``, checked on ``x`` in its dtype. With the index codec: uniform
            levels with the fewest bits that guarantee it (:func:`featcodec.fit_max_error`);
            replaces ``transform`` and ``bits``. With a learned codec (``quality`` allowed):
            its reconstruction plus a quantized residual (:mod:`featcodec.stages.residual`),
            or the index codec's ``max_error`` stream when that is smaller
            (:func:`featcodec.bounded.encode_bounded`). Where 16-bit indices cannot
            span ``x``'s range at this bound (massive activations), the fewest values of
            largest magnitude travel exactly in the outliers section, as with
            ``outliers=``, unless ``outliers`` or ``stages`` is given
            (:func:`featcodec.stages.outliers.count_for_bound`).
        outliers: move this many values of largest magnitude out of the tensor before the
            transform and store them exactly in a sparse section (dense + sparse,
            :mod:`featcodec.stages.outliers`); adds the ``"outliers"`` stage. A learned
            codec without ``max_error`` and ``stages`` does so by itself for the peaks of
            ``x`` (:func:`featcodec.stages.outliers.count_for_peaks`: the fewest largest
            values whose removal leaves none above 8 times the rest's RMS, at most 1%):
            its reconstruction is off by several levels, which on a massive activation's
            far-apart levels is most of the tensor's error.
        rotation: ``True`` (seed 0) or a seed: rotate every token along the last (hidden)
            axis by a randomised Hadamard transform before the transform, so that no
            channel dominates (QuaRot; :mod:`featcodec.stages.rotation`); adds the
            ``"rotation"`` stage. Needs a last axis with a power-of-two factor.
        scales: ``"token"`` or ``"channel"``: divide each token (every position of the
            leading axes) or each channel (the last axis) by a robust scale before the
            transform (KIVI: keys per channel, values per token;
            :mod:`featcodec.stages.scales`); adds the ``"scales"`` stage. Neither
            rotation nor scales can keep a ``max_error`` bound (InputError).
        spatial: a block size (a power of two, e.g. 8) dividing the height and width of a
            channels-first map ``(N, C, H, W)``, or the side of the square patch grid of
            ViT-style tokens ``(N, T, C)`` (after at most 8 leading tokens: a class token,
            registers): every block of every channel is replaced by its 2-D Walsh-Hadamard
            coefficients, laid out one plane per frequency, before the transform
            (:mod:`featcodec.stages.spatial`); adds the ``"spatial"`` stage. It pays with
            uniform steps at low rates, which ``codec="auto"`` tries by itself; it cannot
            keep a ``max_error`` bound (InputError).
        stages: the pipeline's stage names in order (default ``["transform", "pack"]``);
            registered stages (:mod:`featcodec.stages`) plug in before ``"transform"``.
        check_quality: for a learned codec without ``max_error``, measure its feature-domain
            MSE against the index codec's at the same or a smaller stream size and warn
            (:class:`featcodec.QualityWarning`) if the index codec is better
            (:func:`featcodec.bounded.check_quality`: one decode and, as a rule, one or
            two index encodes, which take longer than the learned encode itself: 2.1-2.4x
            its time in all, docs/learned.md). ``False`` skips it.
        **params: further codec parameters.

    Returns:
        bytes that :func:`decode` turns back into a tensor like ``x``.

    ``codec="auto"`` with ``target_bpfp``: the stream with the lowest MSE within that many
    bits per value among the index codec and the learned codecs (:mod:`featcodec.ratecontrol`).

    Example (error-bounded):
        >>> import numpy as np, featcodec
        >>> x = np.random.default_rng(0).normal(size=(64, 96)).astype(np.float32)
        >>> y = featcodec.decode(featcodec.encode(x, max_error=0.01))
        >>> bool(np.abs(y - x).max() <= 0.01)
        True
        >>> blob = featcodec.encode(x, codec="elic", quality=3, max_error=0.01)
        >>> featcodec.header(blob)["codec"] in ("elic", "index")  # the smaller stream
        True
        >>> bool(np.abs(featcodec.decode(blob) - x).max() <= 0.01)
        True
    """
    learned = codec in learned_codecs()
    if max_error is not None:
        if codec != "index" and not learned:
            raise InputError(
                f"max_error bounds the error of the index codec and of the learned codecs "
                f"{learned_codecs()}; codec={codec!r} cannot guarantee a bound. Use codec='index' (the "
                "default) with max_error."
            )
        if (transform != "auto" or bits is not None or target_bpfp is not None
                or (quality is not None and not learned)):
            raise InputError("max_error picks the transform and its bits itself; omit transform, bits, "
                             "target_bpfp (and quality, except for a learned codec).")
    if max_error is not None and outliers is None and stages is None and _positive(max_error):
        # massive values the 16-bit indices cannot span at this bound travel exactly instead
        outliers = count_for_bound(x, max_error) or None
    values = {"outliers": outliers, "rotation": rotation, "scales": scales, "spatial": spatial}
    coded = dict(values)  # what this encode runs with
    if learned and outliers is None and stages is None and max_error is None:
        # a learned reconstruction misses peaks by several levels: they travel exactly
        coded["outliers"] = count_for_peaks(x) or None
    user_stages, stages = stages, with_value_stages(stages, coded)
    options = {"transform": transform, "bits": bits, "max_error": max_error, "layout": layout,
               "embed_transform": embed_transform, **coded}
    if codec == "auto":
        from .ratecontrol import encode_within

        if quality is not None or bits is not None or params:
            raise InputError("codec='auto' chooses the codec, bits and quality itself: pass only "
                             "target_bpfp (and transform, layout, embed_transform, stages).")
        return encode_within(x, target_bpfp, options, stages)
    for k, v in (("quality", quality), ("target_bpfp", target_bpfp)):
        if v is not None:
            params[k] = v
    if learned and max_error is not None:
        return encode_bounded(x, codec, params, max_error, options, stages)
    blob, ctx = pipeline.encode_context(x, codec, options, params, stages)
    if learned and check_quality:  # against the plain index codec, whose levels keep the peaks
        quality_check(x, blob, ctx.state["transform"], {**options, **values},
                      with_value_stages(user_stages, values))
    return blob


def _positive(v: Any) -> bool:
    """``v`` is a positive finite number (else the fit says what is wrong with it)."""
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and 0 < v < np.inf


def header(blob: Any) -> dict[str, Any]:
    """Read a stream's header without decoding it (validated; see docs/format.md).

    Example:
        >>> import numpy as np, featcodec
        >>> h = featcodec.header(featcodec.encode(np.ones((4, 8), np.float32), bits=4))
        >>> h["codec"], h["shape"], h["dtype"], h["bits"]
        ('index', [4, 8], 'float32', 4)
    """
    return pipeline.read_header(blob)


def decode(
    blob: Any,
    *,
    transform: Any = None,
    device: Any = None,
    dtype: str | None = None,
    max_values: int | None = None,
) -> Any:
    """Decode a stream from :func:`encode` into a tensor like the one encoded.

    Returns a torch tensor (on ``device``, default CPU) if a torch tensor was encoded, a
    numpy array if a numpy array was, with the original shape and dtype (``dtype``
    overrides it, e.g. ``"float32"``). ``transform`` supplies a transform the stream only
    references by id (see :func:`register_transform`). ``max_values`` caps the values a
    stream may declare (default: ``featcodec.limits.MAX_ELEMENTS``, 2**31), for services
    that decode untrusted streams and cannot afford a large allocation; a stream above it
    raises :class:`featcodec.FormatError` before anything is allocated.

    Raises a :class:`featcodec.FormatError` subclass for corrupt, truncated or foreign
    bytes, :class:`featcodec.MissingTransformError` for an unknown referenced transform,
    :class:`featcodec.UnknownCodecError` for an unregistered codec.
    """
    if transform is not None and not isinstance(transform, Transform):
        raise InputError(f"transform must be a featcodec Transform, not {type(transform).__name__}.")
    return pipeline.decode(blob, {"transform": transform, "dtype": dtype, "device": device}, max_values)
