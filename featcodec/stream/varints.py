"""Unsigned LEB128 varints of whole arrays, vectorised: the outlier positions
(:mod:`featcodec.stages.outliers`) and the packed transform levels
(:mod:`featcodec.stages.value_transform`) store their integers this way.

A varint holds 7 bits per byte, low bits first, the high bit set on every byte but the
last. Values here are below ``2**35`` (at most :data:`MAX_BYTES` bytes), and the reader
takes only minimal encodings, so every array has one byte string.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_BYTES", "encode", "decode"]

#: the longest varint written or read: 5 bytes of 7 bits (values below 2**35)
MAX_BYTES = 5


def encode(values: np.ndarray) -> bytes:
    """The varints of the non-negative integers ``values`` (each below ``2**35``), in order.

    >>> encode(np.array([0, 1, 200])).hex()
    '0001c801'
    """
    d = np.asarray(values, np.int64).reshape(-1)
    if d.size and (d.min() < 0 or d.max() >= 1 << (7 * MAX_BYTES)):
        raise ValueError(f"varints hold integers in [0, 2**{7 * MAX_BYTES}).")
    d = d.astype(np.uint64)
    n = 1 + sum((d >= np.uint64(1 << (7 * j))).astype(np.int64) for j in range(1, MAX_BYTES))
    out = np.empty((d.size, MAX_BYTES), np.uint8)
    for j in range(MAX_BYTES):
        more = np.where(j < n - 1, 0x80, 0).astype(np.uint64)
        out[:, j] = ((d >> np.uint64(7 * j)) & np.uint64(0x7F)) | more
    return out[np.arange(MAX_BYTES)[None, :] < n[:, None]].tobytes()


def decode(raw: bytes, count: int) -> np.ndarray | None:
    """The ``count`` integers (int64) that :func:`encode` wrote as exactly ``raw``; ``None``
    when ``raw`` is not that: another number of varints, a varint cut off at the end,
    longer than :data:`MAX_BYTES` or not minimal. Callers turn ``None`` into the error
    that names what they were reading.

    >>> decode(bytes.fromhex('0001c801'), 3).tolist()
    [0, 1, 200]
    >>> decode(bytes.fromhex('0001c8'), 3) is None
    True
    """
    b = np.frombuffer(raw, np.uint8)
    last = b < 0x80
    ends = np.flatnonzero(last)
    if ends.size != count or (b.size and not last[-1]):
        return None
    if count == 0:
        return np.zeros(0, np.int64)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    lengths = ends - starts + 1
    if lengths.max() > MAX_BYTES or np.any((b[ends] == 0) & (lengths > 1)):  # overlong / non-minimal
        return None
    shift = 7 * (np.arange(b.size) - np.repeat(starts, lengths))
    vals = np.zeros(count, np.int64)
    np.add.at(vals, np.repeat(np.arange(count), lengths), (b & 0x7F).astype(np.int64) << shift)
    return vals
