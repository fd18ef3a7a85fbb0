"""The session form: one model, many tensors. :class:`Encoder` fits (or takes) one
transform, registers it, and encodes every tensor with it: no fit per call, and each
stream carries the transform's id instead of its levels.

Example:
    >>> import numpy as np, featcodec
    >>> rng = np.random.default_rng(0)
    >>> enc = featcodec.Encoder(samples=rng.standard_t(3, (8, 64, 96)).astype(np.float32), bits=6)
    >>> x = rng.standard_t(3, (1, 64, 96)).astype(np.float32)      # a new tensor of that model
    >>> blob = enc.encode(x)
    >>> featcodec.header(blob)["transform"]["embedded"]               # only the id travels
    False
    >>> y = featcodec.decode(blob)          # this process knows the transform (registered)
    >>> t = enc.transform
    >>> bool((y == t.inverse(t.forward(x))).all())  # each value on its nearest level
    True
    >>> blob == featcodec.encode(x, transform=t, embed_transform=False)
    True
"""

from __future__ import annotations

from typing import Any, Sequence

from . import pipeline
from .codecs.learned.codec import learned_codecs
from .errors import InputError
from .stages import with_value_stages
from .transform import Transform, fit_transform
from .transform.registry import lookup, register_transform

__all__ = ["Encoder"]


class Encoder:
    """Encode many tensors of one model with one transform.

    Args:
        transform: a fitted :class:`featcodec.Transform`, or the id of a registered one.
        samples: instead of ``transform``, feature tensors of the model (an array, a list
            or an iterable of them; about ten inputs' worth) to fit it on, with
            :func:`featcodec.fit_transform` at ``bits``.
        bits: the transform's bits when fitting from ``samples`` (default 8).
        codec: the codec (default ``"index"``).
        layout: how tensors are packed into a plane (:func:`featcodec.pack`).
        embed_transform: store the levels in every stream (default ``False``: streams
            carry the id, and a decoding process needs the transform registered or passed
            as ``featcodec.decode(blob, transform=...)``; save it with ``transform.save``).
        outliers, rotation, scales, spatial: the value stages, as :func:`featcodec.encode`
            takes them (``outliers=k``, ``rotation=True``, ``scales="token"|"channel"``,
            ``spatial=8``). With
            ``samples`` the transform is fitted on the samples after these stages (what it
            will see); a ``transform`` given should have been fitted the same way
            (:func:`featcodec.pipeline.values_for_transform`).
        stages: the pipeline's stages (default ``["transform", "pack"]``).
        check_quality: with a learned codec, measure the first tensor's stream against the
            index codec and warn (:class:`featcodec.QualityWarning`) if the index codec does
            better at the same size (once per session; ``False`` skips it).
        **codec_params: codec parameters, e.g. ``tables="single"`` for the index codec's
            fastest encode (one rANS table per stream, no search among grouped tables:
            the lowest latency for small tensors, a few percent more bytes on
            channel-structured features) or ``quality=`` for a learned codec.

    The transform is registered on construction, so this process decodes the streams with
    a plain :func:`featcodec.decode`. :meth:`encode` gives the same bytes as
    ``featcodec.encode(x, codec, transform=enc.transform, embed_transform=..., ...)``.
    """

    def __init__(self, transform: Transform | str | None = None, *, samples: Any = None, bits: int = 8,
                 codec: str = "index", layout: str = "auto", embed_transform: bool = False,
                 outliers: int | None = None, rotation: bool | int | None = None, scales: str | None = None,
                 spatial: int | None = None, stages: Sequence[str] | None = None, check_quality: bool = True,
                 **codec_params: Any) -> None:
        if (transform is None) == (samples is None):
            raise InputError("Encoder needs either transform= (a fitted Transform or a registered id) or "
                             "samples= (tensors to fit one on), not both or neither.")
        values = {"outliers": outliers, "rotation": rotation, "scales": scales, "spatial": spatial}
        chosen = with_value_stages(stages, values)
        if samples is not None:
            if chosen is not None:  # fit on what the transform will see: the samples after the value stages
                samples = [pipeline.values_for_transform(s, values, chosen)
                           for s in ([samples] if hasattr(samples, "shape") else samples)]
            transform = fit_transform(samples, bits=bits)
        elif isinstance(transform, str):
            found = lookup(transform)
            if found is None:
                raise InputError(f"no registered transform has the id {transform!r:.80}; pass the Transform "
                                 "itself or register it with featcodec.register_transform.")
            transform = found
        if not isinstance(transform, Transform):
            raise InputError(f"transform must be a featcodec Transform or a registered id, not "
                             f"{type(transform).__name__}.")
        register_transform(transform)
        self.transform: Transform = transform
        self.codec = codec
        self._options = {"transform": transform, "bits": None, "max_error": None, "layout": layout,
                         "embed_transform": bool(embed_transform), **values}
        self._params = dict(codec_params)
        self._stages = None if chosen is None else list(chosen)
        self._check = check_quality and codec in learned_codecs()  # until the first tensor

    def encode(self, x: Any) -> bytes:
        """One stream of ``x`` (torch or numpy, as :func:`featcodec.encode` takes)."""
        blob = pipeline.encode(x, self.codec, self._options, self._params, self._stages)
        if self._check:
            from .bounded import check_quality

            self._check = False
            check_quality(x, blob, self.transform, self._options, self._stages)
        return blob

    __call__ = encode

    def decode(self, blob: Any, **kwargs: Any) -> Any:
        """:func:`featcodec.decode` with this encoder's transform supplied."""
        from .api import decode

        return decode(blob, transform=self.transform, **kwargs)

    def __repr__(self) -> str:
        return (f"Encoder(transform={self.transform.id!r}, bits={self.transform.bits}, codec={self.codec!r}, "
                f"embed_transform={self._options['embed_transform']})")
