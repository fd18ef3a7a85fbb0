"""featcodec as a Zarr format 3 codec (needs ``zarr>=3``).

:class:`FeatcodecZarrCodec` is an array-to-bytes codec named ``"featcodec"``, registered
with Zarr through the ``zarr.codecs`` entry point (and on import of this module). It takes
the place of Zarr's ``bytes`` codec in an array's ``serializer``; byte-to-byte compressors
after it gain nothing (the stream is entropy coded). Its metadata holds the same settings
as the numcodecs codec, never weights::

    {"name": "featcodec", "configuration": {"codec": "index", "bits": 8, "transform": "auto"}}

Example:
    >>> import zarr, numpy as np                                   # doctest: +SKIP
    >>> from featcodec.integrations.zarr_codec import FeatcodecZarrCodec         # doctest: +SKIP
    >>> z = zarr.create_array(store="feats.zarr", shape=(16, 96, 14, 14), chunks=(1, 96, 14, 14),
    ...                       dtype="float32", serializer=FeatcodecZarrCodec(bits=8))  # doctest: +SKIP
    >>> z[:] = features                                            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from ..errors import FormatError, InputError
from .numcodecs_codec import CodecSettings

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["FeatcodecZarrCodec"]


@dataclass(frozen=True)
class FeatcodecZarrCodec(ArrayBytesCodec):
    """Zarr v3 array-to-bytes codec ``"featcodec"`` (lossy, float16/32/64 arrays).

    Parameters as for :func:`featcodec.encode`: ``codec``, ``bits``, ``transform``
    (``"auto"``, a registered transform id, or a Transform, kept by id), ``quality``,
    ``target_bpfp``, ``layout``.
    """

    is_fixed_size = False
    settings: CodecSettings

    def __init__(self, **config: Any) -> None:
        unknown = set(config) - set(CodecSettings.KEYS)
        if unknown:
            raise InputError(
                f"unknown featcodec codec setting(s) {sorted(unknown)}; "
                f"known: {', '.join(CodecSettings.KEYS)}."
            )
        object.__setattr__(self, "settings", CodecSettings(**config))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatcodecZarrCodec":
        _, configuration = parse_named_configuration(data, "featcodec", require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": "featcodec", "configuration": self.settings.to_dict()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatcodecZarrCodec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.settings.to_dict().items())))

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        name = np.dtype(dtype.to_native_dtype()).name
        if name not in ("float16", "float32", "float64"):
            raise InputError(
                f"the featcodec codec stores float16/float32/float64 arrays, not {name}; "
                f"use a float dtype or another serializer."
            )

    async def _encode_single(self, chunk_array: "NDBuffer", chunk_spec: "ArraySpec") -> "Buffer":
        arr = np.ascontiguousarray(chunk_array.as_numpy_array())
        blob = await asyncio.to_thread(self.settings.encode, arr)
        return chunk_spec.prototype.buffer.from_bytes(blob)

    async def _decode_single(self, chunk_bytes: "Buffer", chunk_spec: "ArraySpec") -> "NDBuffer":
        blob = chunk_bytes.to_bytes()
        arr = await asyncio.to_thread(self.settings.decode, blob)
        want = np.dtype(chunk_spec.dtype.to_native_dtype())
        if tuple(arr.shape) != tuple(chunk_spec.shape) or arr.dtype != want:
            raise FormatError(
                f"a featcodec chunk decodes to {arr.dtype}{tuple(arr.shape)} but the array "
                f"expects {want}{tuple(chunk_spec.shape)}: the store is damaged or mixed up."
            )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: "ArraySpec") -> int:
        raise NotImplementedError  # variable-size output, like any compressor


register_codec("featcodec", FeatcodecZarrCodec)
