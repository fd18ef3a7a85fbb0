"""The "index" codec: the index plane entropy-coded with rANS under a static model fitted
to the plane itself (its frequency table travels inside the payload).

Lossless on the indices; the loss comes only from the transform (its ``bits``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError, InputError
from . import columns


class IndexCodec:
    """Static-model rANS over the indices (``featcodec.entropy.encode_symbols``): one
    table for the whole plane, or one per group of columns (:mod:`featcodec.codecs.columns`,
    ``codec_params`` ``{"table": "columns"}``, format version 3), whichever is smaller.

    Example:
        >>> import numpy as np
        >>> plane = np.array([[0, 1, 1], [2, 1, 0]], np.uint8)
        >>> c = IndexCodec()
        >>> payload, params = c.encode_plane(plane, bits=2)
        >>> bool((c.decode_plane(payload, (2, 3), 2, params) == plane).all())
        True
    """

    def encode_plane(self, plane: np.ndarray, bits: int, **params: Any) -> tuple[bytes, dict]:
        from ..entropy import encode_symbols

        if params:
            raise InputError(
                f"codec 'index' takes no parameters besides bits (got {sorted(set(params) - {'stream_size'})}); "
                "lower bits for a smaller stream, or choose a learned codec for quality/target_bpfp."
            )
        plane = np.ascontiguousarray(plane)
        one = encode_symbols(plane.reshape(-1))
        if min(plane.shape) < 2 or plane.size > columns.MAX_VALUES:
            return one, {}
        grouped = columns.encode(plane, bits)
        return (grouped, {"table": "columns"}) if len(grouped) < len(one) else (one, {})

    def decode_plane(self, payload: bytes, shape: tuple[int, int], bits: int, params: dict) -> np.ndarray:
        from ..entropy import decode_symbols

        if params == {"table": "columns"}:
            return columns.decode(payload, shape, bits)
        if params:
            raise FormatError(f"codec 'index' stream has unexpected parameters {sorted(params)[:5]}.")
        count = shape[0] * shape[1]
        sym = decode_symbols(payload, count)
        if sym.shape != (count,):
            raise FormatError("index payload decoded to the wrong number of symbols.")
        return sym.reshape(shape)

    @staticmethod
    def format_version(params: dict) -> int:
        """The lowest stream format version that holds these ``codec_params``."""
        return 3 if params.get("table") == "columns" else 1
