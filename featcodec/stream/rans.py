"""rANS entropy coding: a static frequency model and CompressAI's indexed-CDF model.

Two coders, both compiled (``featcodec._core``), zero-copy on numpy arrays, with the GIL
released while they run and a fixed little-endian byte order (the bytes are the same on
every platform, in every process and for any thread count):

* :func:`encode_symbols` / :func:`decode_symbols`: one frequency table for the whole
  array of ``uint8`` or ``uint16`` symbols, normalised to a power of two and stored
  compactly inside the bytes (only the symbols present, varint-coded). Long inputs are
  cut into chunks of 2**20 symbols that threads code in parallel.
* :func:`encode_with_indexes` / :func:`decode_with_indexes`: each symbol names one of
  many quantized CDF tables (precision 16), exactly CompressAI's convention for its
  entropy bottleneck and Gaussian conditional; values outside a table are escaped.

The decoders treat their input as untrusted: corrupt, truncated or foreign bytes raise
:class:`featcodec.FormatError` (or its subclass :class:`featcodec.TruncatedError`),
never crash and never return wrong symbols silently (the final coder states are
checked).

Example:
    >>> import numpy as np
    >>> from featcodec.stream.rans import encode_symbols, decode_symbols
    >>> x = np.array([3, 3, 3, 7, 3, 200], dtype=np.uint8)
    >>> data = encode_symbols(x)
    >>> decode_symbols(data, x.size).tolist()
    [3, 3, 3, 7, 3, 200]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..errors import FormatError, InputError
from ..threads import get_num_threads

__all__ = [
    "encode_symbols",
    "decode_symbols",
    "encode_with_indexes",
    "decode_with_indexes",
    "prepare_cdfs",
]

def _threads(threads: int | None) -> int:
    """The thread count to use: ``threads`` if given, else featcodec's default."""
    if threads is not None:
        if int(threads) < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        return int(threads)
    return get_num_threads()


def _bytes(data: Any) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        raise FormatError(
            f"rANS data must be bytes-like (bytes, bytearray, memoryview), got {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise FormatError("rANS data must be a contiguous buffer; pass bytes(data)")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _count(count: Any) -> int:
    try:
        n = int(count)
    except (TypeError, ValueError):
        raise InputError(f"count must be an integer, got {count!r}") from None
    if n < 0 or n != count:
        raise InputError(f"count must be a non-negative integer, got {count!r}")
    return n


def encode_symbols(symbols: np.ndarray, *, threads: int | None = None) -> bytes:
    """Entropy-code an array of ``uint8`` or ``uint16`` symbols with a static model.

    The frequency table travels inside the returned bytes; the caller keeps the symbol
    count (and the shape) to decode. Any shape is accepted and read in C order.

    Args:
        symbols: ``uint8`` (alphabet of 256) or ``uint16`` (alphabet of 65536) array.
        threads: threads for long inputs (default: featcodec's thread count); the bytes
            do not depend on it.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).integers(0, 4, 1000).astype(np.uint8)
        >>> len(encode_symbols(x)) < 300   # about 2 bits per symbol
        True
    """
    if not isinstance(symbols, np.ndarray):
        raise InputError(
            f"symbols must be a numpy array of uint8 or uint16, got {type(symbols).__name__}"
        )
    if symbols.dtype.kind == "u" and symbols.dtype.itemsize <= 2 and not symbols.dtype.isnative:
        symbols = symbols.astype(symbols.dtype.newbyteorder("="))  # big-endian input
    if symbols.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"symbols must be uint8 or uint16, got {symbols.dtype}; cast with "
            ".astype(np.uint8) or .astype(np.uint16) after checking the range"
        )
    flat = np.ascontiguousarray(symbols).reshape(-1)  # no copy when already contiguous
    return _core.rans_encode_static(flat, _threads(threads))


def decode_symbols(
    data: Any, count: int, *, threads: int | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Decode ``count`` symbols written by :func:`encode_symbols`.

    Returns a 1-D ``uint8`` or ``uint16`` array (the dtype that was encoded); reshape it
    yourself. With ``out`` (a writeable C-contiguous array of that dtype and ``count``
    elements, any shape) the symbols are written there and ``out`` is returned. Bytes that
    are not a stream of exactly ``count`` symbols raise :class:`featcodec.FormatError` /
    :class:`featcodec.TruncatedError`; on error ``out`` may hold partial garbage.

    Example:
        >>> import numpy as np
        >>> x = np.arange(600, dtype=np.uint16) % 300
        >>> bool((decode_symbols(encode_symbols(x), 600) == x).all())
        True
    """
    if out is not None and not isinstance(out, np.ndarray):
        raise InputError(f"out must be a numpy array, got {type(out).__name__}")
    return _core.rans_decode_static(_bytes(data), _count(count), _threads(threads), out)


def _int32(a: Any, name: str, ndim: int = 1) -> np.ndarray:
    """``a`` as a C-contiguous int32 array, refusing values that do not fit."""
    if isinstance(a, np.ndarray) and a.dtype == np.int32:
        arr = np.ascontiguousarray(a)
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError) as e:
            raise InputError(f"{name} must be an array of integers: {e}") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise InputError(f"{name} must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise InputError(f"{name} has values outside int32")
        arr = np.ascontiguousarray(arr, dtype=np.int32)
    if ndim == 1:
        arr = arr.reshape(-1)
    elif arr.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def prepare_cdfs(
    cdfs: Any, cdf_lengths: Any, offsets: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CDF tables in the form the coder reads: ``(cdfs[N, W], lengths[N], offsets[N])``.

    ``cdfs`` may be a 2-D int array / tensor (CompressAI's ``_quantized_cdf``) or a list
    of lists, ragged lists being padded. Convert once and reuse the result across calls
    to avoid paying for the conversion every time.
    """
    if isinstance(cdfs, (list, tuple)) and cdfs and isinstance(cdfs[0], (list, tuple)):
        width = max(len(row) for row in cdfs)
        if any(len(row) != width for row in cdfs):
            padded = np.zeros((len(cdfs), width), dtype=np.int64)
            for i, row in enumerate(cdfs):
                padded[i, : len(row)] = row
            cdfs = padded
    if hasattr(cdfs, "detach"):  # torch tensors without importing torch
        cdfs = cdfs.detach().cpu().numpy()
    if hasattr(cdf_lengths, "detach"):
        cdf_lengths = cdf_lengths.detach().cpu().numpy()
    if hasattr(offsets, "detach"):
        offsets = offsets.detach().cpu().numpy()
    c = _int32(cdfs, "cdfs", ndim=2)
    lengths = _int32(cdf_lengths, "cdf_lengths")
    offs = _int32(offsets, "offsets")
    if not (c.shape[0] == lengths.size == offs.size):
        raise InputError(
            f"cdfs ({c.shape[0]} tables), cdf_lengths ({lengths.size}) and offsets "
            f"({offs.size}) must describe the same number of tables"
        )
    return c, lengths, offs


def encode_with_indexes(
    symbols: Any,
    indexes: Any,
    cdfs: Any,
    cdf_lengths: Any,
    offsets: Any,
) -> bytes:
    """Entropy-code ``symbols[i]`` with CDF table ``indexes[i]`` (CompressAI semantics).

    Table ``r`` is ``cdfs[r][:cdf_lengths[r]]``, a quantized CDF at precision 16 (starting
    at 0, ending at 65536) over the values ``offsets[r] .. offsets[r] + cdf_lengths[r] - 3``
    followed by one escape entry: a value outside that range is coded as the escape plus
    its exact value in 4-bit groups, so every int32 value round-trips.

    Args:
        symbols, indexes: int32 arrays (or sequences / tensors) of the same size.
        cdfs: (N, W) int table rows or a list of lists (see :func:`prepare_cdfs`).
        cdf_lengths, offsets: N ints each.

    Example:
        >>> import numpy as np
        >>> cdfs = np.array([[0, 30000, 60000, 65536]])       # values 0, 1 and escape
        >>> data = encode_with_indexes([0, 1, 5, -3], [0, 0, 0, 0], cdfs, [4], [0])
        >>> decode_with_indexes(data, [0, 0, 0, 0], cdfs, [4], [0]).tolist()
        [0, 1, 5, -3]
    """
    s = _int32(symbols, "symbols")
    ix = _int32(indexes, "indexes")
    if s.size != ix.size:
        raise InputError(f"symbols ({s.size}) and indexes ({ix.size}) must have the same size")
    c, lengths, offs = prepare_cdfs(cdfs, cdf_lengths, offsets)
    return _core.rans_encode_indexed(s, ix, c, lengths, offs)


def decode_with_indexes(
    data: Any,
    indexes: Any,
    cdfs: Any,
    cdf_lengths: Any,
    offsets: Any,
) -> np.ndarray:
    """Decode the int32 symbols :func:`encode_with_indexes` wrote with these tables.

    Decodes exactly ``len(indexes)`` symbols; bytes that do not hold them raise
    :class:`featcodec.FormatError` / :class:`featcodec.TruncatedError`.
    """
    ix = _int32(indexes, "indexes")
    c, lengths, offs = prepare_cdfs(cdfs, cdf_lengths, offsets)
    return _core.rans_decode_indexed(_bytes(data), ix, c, lengths, offs)
