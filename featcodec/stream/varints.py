"""Unsigned LEB128 varints of whole arrays: the outlier positions
(:mod:`featcodec.stages.outliers`) and the packed transform levels
(:mod:`featcodec.stages.value_transform`) store their integers this way.

A varint holds 7 bits per byte, low bits first, the high bit set on every byte but the
last. Values here are below ``2**35`` (at most :data:`MAX_BYTES` bytes), and the reader
takes only minimal encodings, so every array has one byte string. The work is one pass in
the compiled core (csrc/varints.cpp).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_BYTES", "encode", "decode"]

#: the longest varint written or read: 5 bytes of 7 bits (values below 2**35)
MAX_BYTES = 5


def encode(values: np.ndarray) -> bytes:
    """The varints of the non-negative integers ``values`` (each below ``2**35``), in order
    (compiled: ``featcodec._core.varints_encode``).

    >>> encode(np.array([0, 1, 200])).hex()
    '0001c801'
    """
    from .. import _core

    return _core.varints_encode(np.asarray(values, np.int64).reshape(-1))


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
    from .. import _core

    return _core.varints_decode(raw, count)
