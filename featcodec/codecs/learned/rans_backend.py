"""Indexed-CDF rANS for the learned codecs.

Uses the library's compiled indexed-CDF coder (``featcodec.stream.rans`` or the
``featcodec._core.rans_*_indexed`` functions behind it: CompressAI's semantics, precision
16, bounds-checked decoding, no Python lists, GIL released). CompressAI's own
``RansEncoder``/``RansDecoder`` remain as a fallback for a build without them; the two
formats differ, so a stream is decoded by the backend that wrote it (``BACKEND``).

Example:
    >>> import numpy as np
    >>> cdfs = np.array([[0, 32768, 65536]], np.int32)     # one table, 2 symbols + escape
    >>> lengths = np.array([3], np.int32); offsets = np.array([0], np.int32)
    >>> sym = np.array([0, 1, 0, 0], np.int32); idx = np.zeros(4, np.int32)
    >>> data = encode(sym, idx, cdfs, lengths, offsets)
    >>> decode(data, idx, cdfs, lengths, offsets).tolist()
    [0, 1, 0, 0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["encode", "decode", "BACKEND"]

try:
    from featcodec.stream.rans import decode_with_indexes as _dec  # type: ignore
    from featcodec.stream.rans import encode_with_indexes as _enc  # type: ignore

    BACKEND = "featcodec"
except ImportError:
    try:
        from featcodec._core import rans_decode_indexed as _dec  # type: ignore
        from featcodec._core import rans_encode_indexed as _enc  # type: ignore

        BACKEND = "featcodec"
    except ImportError:  # pragma: no cover - a build without the rANS core
        _enc = _dec = None
        BACKEND = "compressai"


_LIST_CACHE: dict[int, tuple] = {}


def _lists(cdfs: np.ndarray, lengths: np.ndarray, offsets: np.ndarray):
    """Tables as Python lists for CompressAI, converted once per table array."""
    hit = _LIST_CACHE.get(id(cdfs))
    if hit is None or hit[0] is not cdfs:
        hit = (cdfs, [row[:n].tolist() for row, n in zip(cdfs, lengths)],
               lengths.tolist(), offsets.tolist())
        _LIST_CACHE[id(cdfs)] = hit
    return hit[1:]


def encode(symbols: np.ndarray, indexes: np.ndarray, cdfs: np.ndarray,
           lengths: np.ndarray, offsets: np.ndarray) -> bytes:
    """rANS-encode int32 ``symbols`` with per-symbol table ``indexes``."""
    symbols = np.ascontiguousarray(symbols, np.int32).ravel()
    indexes = np.ascontiguousarray(indexes, np.int32).ravel()
    if _enc is not None:
        return bytes(_enc(symbols, indexes, cdfs, lengths, offsets))
    from compressai.ans import RansEncoder

    c, l, o = _lists(cdfs, lengths, offsets)
    return RansEncoder().encode_with_indexes(symbols.tolist(), indexes.tolist(), c, l, o)


def decode(data: bytes, indexes: np.ndarray, cdfs: np.ndarray,
           lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode` (int32 array shaped like ``indexes``)."""
    shape = np.shape(indexes)
    indexes = np.ascontiguousarray(indexes, np.int32).ravel()
    if _dec is not None:
        return np.asarray(_dec(data, indexes, cdfs, lengths, offsets), np.int32).reshape(shape)
    from compressai.ans import RansDecoder

    c, l, o = _lists(cdfs, lengths, offsets)
    out = RansDecoder().decode_with_indexes(data, indexes.tolist(), c, l, o)
    return np.asarray(out, np.int32).reshape(shape)
