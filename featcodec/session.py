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
from .errors import InputError
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
        stages: the pipeline's stages (default ``["transform", "pack"]``).
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
                 stages: Sequence[str] | None = None, **codec_params: Any) -> None:
        if (transform is None) == (samples is None):
            raise InputError("Encoder needs either transform= (a fitted Transform or a registered id) or "
                             "samples= (tensors to fit one on), not both or neither.")
        if samples is not None:
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
                         "embed_transform": bool(embed_transform), "outliers": None}
        self._params = dict(codec_params)
        self._stages = None if stages is None else list(stages)

    def encode(self, x: Any) -> bytes:
        """One stream of ``x`` (torch or numpy, as :func:`featcodec.encode` takes)."""
        return pipeline.encode(x, self.codec, self._options, self._params, self._stages)

    __call__ = encode

    def decode(self, blob: Any, **kwargs: Any) -> Any:
        """:func:`featcodec.decode` with this encoder's transform supplied."""
        from .api import decode

        return decode(blob, transform=self.transform, **kwargs)

    def __repr__(self) -> str:
        return (f"Encoder(transform={self.transform.id!r}, bits={self.transform.bits}, codec={self.codec!r}, "
                f"embed_transform={self._options['embed_transform']})")
