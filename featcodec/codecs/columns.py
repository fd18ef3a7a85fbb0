"""The index codec's column model: one static rANS table per group of plane columns.

The columns of a packed plane are mostly the channels of the feature (the ``tokens``
layout puts one channel per column), and channels differ in where their values sit and
how widely they spread: ViT tokens and LLM hidden states carry a few wide outlier
channels beside many narrow ones. One frequency table for the whole plane codes every
channel as if it were the average one. The column model subtracts each column's median
(modulo ``2**bits``, so the residuals stay in the plane's dtype) and groups the columns
by the spread of their residuals, half an octave of mean absolute residual per group;
each group gets its own table (``featcodec.entropy.encode_symbols``). On ViT and LLM
planes of the corpus this takes 4-20% off the index codec's payload (docs/encode.md).

Payload: ``u16 G``, then ``G + 2`` u32 lengths, then the coded medians (one per column,
the plane's dtype), the coded group of each column (uint8, ``0 .. G-1``) and each
group's residuals (its columns one after the other, top to bottom). The group
assignment is the encoder's choice and travels in the stream, so the decoder needs no
arithmetic that could differ between platforms.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import FormatError

#: at most this many groups (and the group ids are uint8)
MAX_GROUPS = 64
#: the encoder tries the column model on planes up to this many values (it works on
#: copies of the plane); larger planes get one table
MAX_VALUES = 1 << 26


def _groups(absres: np.ndarray) -> np.ndarray:
    """Group id per row of ``absres`` (a column's absolute residuals): the half-octave of
    its mean, by integer arithmetic only."""
    v = absres.sum(axis=1, dtype=np.int64) * 16 // absres.shape[1]  # 16 x mean |residual|
    octave2 = np.array([int(a * a).bit_length() for a in v.tolist()])  # about 2 log2(v): half octaves
    _, ids = np.unique(octave2, return_inverse=True)
    return np.minimum(ids, MAX_GROUPS - 1).astype(np.uint8)


def encode(plane: np.ndarray, bits: int) -> bytes:
    """The column-model payload of a 2-D uint8/uint16 ``plane`` of ``bits``-bit indices."""
    from ..entropy import encode_symbols

    mask = plane.dtype.type((1 << bits) - 1)
    cols = np.ascontiguousarray(plane.T)  # one row per column
    h = cols.shape[1]
    med = np.partition(cols, (h - 1) // 2, axis=1)[:, (h - 1) // 2]  # the lower median
    resid = (cols - med[:, None]) & mask  # unsigned wrap-around, then modulo 2**bits
    absres = np.minimum(resid, (mask - resid + 1) & mask)  # |residual| read as signed
    gid = _groups(absres)
    G = int(gid.max()) + 1
    parts = [encode_symbols(med), encode_symbols(gid)]
    for g in range(G):
        parts.append(encode_symbols(np.ascontiguousarray(resid[gid == g])))
    head = struct.pack(f"<H{len(parts)}I", G, *map(len, parts))
    return head + b"".join(parts)


def decode(payload: bytes, shape: tuple[int, int], bits: int) -> np.ndarray:
    """The plane :func:`encode` coded; any malformed payload is a ``FormatError``."""
    from ..entropy import decode_symbols

    h, w = shape
    dtype = np.uint8 if bits <= 8 else np.uint16
    modulus = 1 << bits
    if len(payload) < 2:
        raise FormatError("index payload (column model) is truncated.")
    (G,) = struct.unpack_from("<H", payload, 0)
    if not 1 <= G <= min(MAX_GROUPS, w):
        raise FormatError(f"index payload (column model) claims {G} groups for {w} columns.")
    n = G + 2
    if len(payload) < 2 + 4 * n:
        raise FormatError("index payload (column model) is truncated.")
    lengths = struct.unpack_from(f"<{n}I", payload, 2)
    pos = 2 + 4 * n
    if pos + sum(lengths) != len(payload):
        raise FormatError("index payload (column model) lengths do not add up to its size.")
    parts = []
    for length in lengths:
        parts.append(payload[pos : pos + length])
        pos += length
    med = decode_symbols(parts[0], w)
    gid = decode_symbols(parts[1], w)
    if med.dtype != dtype or gid.dtype != np.uint8 or int(med.max()) >= modulus or int(gid.max()) >= G:
        raise FormatError("index payload (column model) has invalid medians or groups.")
    cols = np.empty((w, h), dtype)
    for g in range(G):
        sel = np.flatnonzero(gid == g)
        if sel.size == 0:
            raise FormatError("index payload (column model) has an empty group.")
        r = decode_symbols(parts[2 + g], sel.size * h)
        if r.dtype != dtype or (bits < 8 * r.itemsize and int(r.max()) >= modulus):
            raise FormatError("index payload (column model) has residuals beyond the bits.")
        cols[sel] = r.reshape(sel.size, h)
    cols += med[:, None]  # unsigned wrap-around, then modulo 2**bits
    cols &= dtype(modulus - 1)
    return np.ascontiguousarray(cols.T)
