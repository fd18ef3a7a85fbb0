"""featcodec as a numcodecs codec, for Zarr (format 2) arrays, and anything else that takes
numcodecs codecs.

The codec is registered under the id ``"featcodec"`` through the ``numcodecs.codecs``
entry point, so ``numcodecs.get_codec({"id": "featcodec", ...})`` finds it once featcodec
is installed. Its JSON config names the codec, its parameters and the transform **id**,
never weights or tensors::

    {"id": "featcodec", "codec": "index", "bits": 8, "transform": "auto"}

A transform named by id must be registered (:func:`featcodec.register_transform`) in the
process that reads or writes; ``"auto"`` makes every chunk self-contained. The codec is
lossy: it takes float16/float32/float64 chunks and decodes them to the same dtype and shape.

Example:
    >>> import numpy as np
    >>> from featcodec.integrations.numcodecs_codec import FeatCodec
    >>> codec = FeatCodec(bits=8)
    >>> x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    >>> y = codec.decode(codec.encode(x))           # doctest: +SKIP
    >>> y.shape, y.dtype                            # doctest: +SKIP
    ((64, 64), dtype('float32'))

For Zarr format 3 arrays use :class:`featcodec.integrations.zarr_codec.FeatcodecZarrCodec`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from ..errors import InputError

__all__ = ["FeatCodec", "CodecSettings"]

_FLOAT_DTYPES = ("float16", "float32", "float64")


class CodecSettings:
    """The JSON-able settings shared by the numcodecs and the Zarr v3 codec.

    ``transform`` is ``"auto"``, a transform id (str), or a Transform object (it is
    registered, and only its id is kept).
    """

    KEYS = ("codec", "bits", "transform", "quality", "target_bpfp", "layout", "embed_transform",
            "max_error")

    def __init__(
        self,
        codec: str = "index",
        bits: int | None = None,
        transform: Any = "auto",
        quality: float | None = None,
        target_bpfp: float | None = None,
        layout: str = "auto",
        embed_transform: bool = True,
        max_error: float | None = None,
    ) -> None:
        if not isinstance(codec, str) or not codec:
            raise InputError(f"codec must be a codec name (str), not {codec!r}.")
        if bits is not None and (
            isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= 16
        ):
            raise InputError(f"bits must be an int in 1..16 or None, not {bits!r}.")
        if not isinstance(embed_transform, bool):
            raise InputError(f"embed_transform must be True or False, not {embed_transform!r}.")
        if not isinstance(transform, str):
            tid = getattr(transform, "id", None)
            if not isinstance(tid, str):
                raise InputError(
                    f"transform must be 'auto', a transform id or a featcodec Transform, "
                    f"not {type(transform).__name__}."
                )
            from .. import api

            api.register_transform(transform)
            transform = tid
        for name, v in (("quality", quality), ("target_bpfp", target_bpfp), ("max_error", max_error)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InputError(f"{name} must be a number or None, not {v!r}.")
        if max_error is not None and (codec != "index" or bits is not None or transform != "auto"
                                      or quality is not None or target_bpfp is not None):
            raise InputError("max_error (error-bounded, codec 'index') picks the transform and bits "
                             "itself; leave codec, bits, transform, quality and target_bpfp unset.")
        self.codec = codec
        self.bits = None if bits is None else int(bits)
        self.transform = transform
        self.quality = quality
        self.target_bpfp = target_bpfp
        self.layout = layout
        self.embed_transform = embed_transform
        self.max_error = None if max_error is None else float(max_error)

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON values, leaving out the ones that are None."""
        d = {k: getattr(self, k) for k in self.KEYS}
        return {k: v for k, v in d.items() if v is not None}

    def encode(self, arr: np.ndarray) -> bytes:
        """Encode one chunk (a float numpy array) to a featcodec stream."""
        from .. import api

        if arr.dtype.name not in _FLOAT_DTYPES:
            raise InputError(
                f"featcodec stores float16/float32/float64 arrays, not {arr.dtype}; create the "
                f"array with a float dtype or use another codec for it."
            )
        opts = self.to_dict()
        codec = opts.pop("codec")
        return api.encode(arr, codec, **opts)

    @staticmethod
    def decode(blob: bytes) -> np.ndarray:
        """Decode one stream back to a numpy array of the stored shape and dtype."""
        from .. import api

        out = api.decode(blob)
        return np.asarray(out)


class FeatCodec(Codec):
    """numcodecs codec ``"featcodec"``: a lossy float codec for neural-network features.

    Parameters are those of :func:`featcodec.encode`: ``codec`` (see
    :func:`featcodec.available_codecs`), ``bits``, ``transform`` (``"auto"``, ``"uniform"``,
    a registered transform id, or a Transform, kept by id), ``quality``, ``target_bpfp``,
    ``layout``, ``embed_transform`` (``False`` keeps a fitted transform's levels out of every
    chunk; readers must then register the transform), ``max_error`` (error-bounded: every
    value of every chunk within this absolute error, like zfp's fixed-accuracy mode).
    """

    codec_id = "featcodec"

    def __init__(
        self,
        codec: str = "index",
        bits: int | None = None,
        transform: Any = "auto",
        quality: float | None = None,
        target_bpfp: float | None = None,
        layout: str = "auto",
        embed_transform: bool = True,
        max_error: float | None = None,
    ) -> None:
        self._settings = CodecSettings(codec, bits, transform, quality, target_bpfp, layout, embed_transform,
                                       max_error)
        for k, v in self._settings.to_dict().items():
            setattr(self, k, v)  # numcodecs' default get_config/__repr__ read attributes

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, **self._settings.to_dict()}

    def encode(self, buf: Any) -> bytes:
        arr = np.asarray(buf)
        return self._settings.encode(arr)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        blob = ensure_contiguous_ndarray(buf).view(np.uint8).tobytes()
        dec = self._settings.decode(blob)
        if out is not None:
            return ndarray_copy(dec, out)
        return dec

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._settings.to_dict().items())
        return f"FeatCodec({params})"
