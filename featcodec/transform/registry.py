"""Transforms known by id, so that a stream may reference its transform instead of
embedding it (``featcodec.encode(x, transform=t, embed_transform=False)``).

Example:
    >>> import numpy as np, featcodec
    >>> t = featcodec.fit_transform(np.random.default_rng(0).normal(size=4096), bits=4)
    >>> x = np.random.default_rng(1).normal(size=(8, 8)).astype(np.float32)
    >>> blob = featcodec.encode(x, transform=t, embed_transform=False)
    >>> featcodec.register_transform(t) == t.id
    True
    >>> featcodec.decode(blob).shape
    (8, 8)
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import InputError
from .table import Transform

__all__ = ["register_transform", "unregister_transform", "registered_transforms", "lookup"]

_TRANSFORMS: dict[str, Transform] = {}
_LOCK = threading.Lock()


def register_transform(t: Any) -> str:
    """Make transform ``t`` known by its id, so streams that reference it decode.
    Returns ``t.id``."""
    if not isinstance(t, Transform):
        raise InputError(f"register_transform takes a featcodec Transform, not {type(t).__name__}.")
    with _LOCK:
        _TRANSFORMS[t.id] = t
    return t.id


def unregister_transform(tid: str) -> Transform | None:
    """Forget the transform registered as ``tid`` (a service retiring a model); returns it,
    or ``None`` when none was registered. Streams that reference it no longer decode
    without ``decode(blob, transform=t)``."""
    with _LOCK:
        return _TRANSFORMS.pop(tid, None)


def registered_transforms() -> dict[str, Transform]:
    """A copy of the id -> Transform registry."""
    with _LOCK:
        return dict(_TRANSFORMS)


def lookup(tid: str) -> Transform | None:
    """The registered transform with id ``tid``, or ``None``."""
    with _LOCK:
        return _TRANSFORMS.get(tid)
