"""The index codec's grouped tables: one static rANS table per group of units, a unit
being a column of the plane or, for a mosaic of channel tiles, one tile.

Both are mostly channels of the feature (the ``tokens`` layout puts one channel per
column, the ``mosaic`` layout one per tile), and channels differ in where their values
sit and how widely they spread: ViT tokens and LLM hidden states carry a few wide
outlier channels beside many narrow ones. One frequency table for the whole plane codes
every channel as if it were the average one. This model subtracts each unit's lower
median (modulo ``2**bits``, so the residuals stay in the plane's dtype) and groups the
units by the spread of their residuals, half an octave of mean absolute residual per
group; each group gets its own table (``featcodec.entropy.encode_symbols``).

Payload: ``u16 G``, then ``G + 2`` u32 lengths, then the coded medians (one per unit,
the plane's dtype), the coded group of each unit (uint8, ``0 .. G-1``) and each group's
residuals (its units one after the other). The group assignment is the encoder's choice
and travels in the stream, so the decoder needs no arithmetic that could differ between
platforms.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import FormatError

#: at most this many groups (and the group ids are uint8)
MAX_GROUPS = 64
#: the encoder tries grouped tables on planes up to this many values (it works on
#: copies of the plane); larger planes get one table
MAX_VALUES = 1 << 26
_POWERS = np.int64(1) << np.arange(63, dtype=np.int64)  # 2**k: searchsorted(x) is x's bit length


def _groups(sums: np.ndarray, m: int) -> np.ndarray:
    """Group id per unit from ``sums`` (each unit's sum of ``m`` absolute residuals):
    the half-octave of its mean, by integer arithmetic only."""
    v = sums * 16 // m  # 16 x mean |residual| (< 2**21, so v * v fits in int64)
    octave2 = np.searchsorted(_POWERS, v * v, side="right")  # bit length of v * v: about 2 log2(v)
    _, ids = np.unique(octave2, return_inverse=True)
    return np.minimum(ids, MAX_GROUPS - 1).astype(np.uint8)


def encode(units: np.ndarray, bits: int) -> bytes:
    """The payload of a 2-D uint8/uint16 array of ``bits``-bit indices, one row per unit
    (a plane column, or a mosaic tile: :func:`units_of`)."""
    from .. import _core, kernels
    from ..entropy import encode_symbols

    # each unit's lower median ((m - 1) // 2-th smallest), its residuals modulo 2**bits
    # and their summed magnitude (read as signed), in one pass
    med, resid, sums = _core.unit_residuals(np.ascontiguousarray(units), bits, kernels.get_num_threads())
    gid = _groups(sums, units.shape[1])
    G = int(gid.max()) + 1
    parts = [encode_symbols(med), encode_symbols(gid)]
    for g in range(G):
        parts.append(encode_symbols(np.ascontiguousarray(resid[gid == g])))
    head = struct.pack(f"<H{len(parts)}I", G, *map(len, parts))
    return head + b"".join(parts)


def units_of(plane: np.ndarray, tile: tuple[int, int] | None) -> np.ndarray:
    """The plane as one row per unit: its columns, or its ``tile = (h, w)`` tiles (row
    by row of tiles, each tile's values row-major)."""
    if tile is None:
        return np.ascontiguousarray(plane.T)
    (R, C), (h, w) = plane.shape, tile
    return np.ascontiguousarray(plane.reshape(R // h, h, C // w, w).transpose(0, 2, 1, 3).reshape(-1, h * w))


def plane_of(units: np.ndarray, shape: tuple[int, int], tile: tuple[int, int] | None) -> np.ndarray:
    """The inverse of :func:`units_of`."""
    if tile is None:
        return np.ascontiguousarray(units.T)
    (R, C), (h, w) = shape, tile
    return np.ascontiguousarray(units.reshape(R // h, C // w, h, w).transpose(0, 2, 1, 3).reshape(R, C))


def decode(payload: bytes, n: int, m: int, bits: int) -> np.ndarray:
    """The ``(n, m)`` units :func:`encode` coded; any malformed payload is a ``FormatError``."""
    from ..entropy import decode_symbols

    dtype = np.uint8 if bits <= 8 else np.uint16
    modulus = 1 << bits
    if len(payload) < 2:
        raise FormatError("index payload (grouped tables) is truncated.")
    (G,) = struct.unpack_from("<H", payload, 0)
    if not 1 <= G <= min(MAX_GROUPS, n):
        raise FormatError(f"index payload (grouped tables) claims {G} groups for {n} units.")
    k = G + 2
    if len(payload) < 2 + 4 * k:
        raise FormatError("index payload (grouped tables) is truncated.")
    lengths = struct.unpack_from(f"<{k}I", payload, 2)
    pos = 2 + 4 * k
    if pos + sum(lengths) != len(payload):
        raise FormatError("index payload (grouped tables) lengths do not add up to its size.")
    parts = []
    for length in lengths:
        parts.append(payload[pos : pos + length])
        pos += length
    med = decode_symbols(parts[0], n)
    gid = decode_symbols(parts[1], n)
    if med.dtype != dtype or gid.dtype != np.uint8 or int(med.max()) >= modulus or int(gid.max()) >= G:
        raise FormatError("index payload (grouped tables) has invalid medians or groups.")
    units = np.empty((n, m), dtype)
    for g in range(G):
        sel = np.flatnonzero(gid == g)
        if sel.size == 0:
            raise FormatError("index payload (grouped tables) has an empty group.")
        r = decode_symbols(parts[2 + g], sel.size * m)
        if r.dtype != dtype or (bits < 8 * r.itemsize and int(r.max()) >= modulus):
            raise FormatError("index payload (grouped tables) has residuals beyond the bits.")
        units[sel] = r.reshape(sel.size, m)
    units += med[:, None]  # unsigned wrap-around, then modulo 2**bits
    units &= dtype(modulus - 1)
    return units
