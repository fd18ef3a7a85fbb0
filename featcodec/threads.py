"""The library-wide thread count of the compiled core (quantization kernels, rANS coding,
grouped tables). Results never depend on it: every stream and every index is the same for
any thread count.

Example:
    >>> import featcodec
    >>> featcodec.set_num_threads(1); featcodec.get_num_threads()
    1
"""

from __future__ import annotations

import os

import numpy as np

from .errors import InputError

__all__ = ["set_num_threads", "get_num_threads"]

_num_threads: int = max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Set how many threads the compiled core uses (results do not depend on it)."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"set_num_threads takes a positive integer, not {n!r}.")
    _num_threads = int(n)


def get_num_threads() -> int:
    """The number of threads the compiled core uses (default: ``os.cpu_count()``)."""
    return _num_threads
