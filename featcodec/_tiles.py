"""The tiles of a 2-D plane as rows, and back: the permutation behind the mosaic layout
(channel maps side by side, :mod:`featcodec.stages.alignment`) and the index codec's tile
units (:mod:`featcodec.codecs.grouped_tables`). Tile ``(I, J)`` (row ``I`` of tiles,
column ``J``) of an ``(R, C)`` plane, ``h x w`` values, is row ``I * (C // w) + J`` of the
``(R // h * C // w, h * w)`` rows, row-major.

numpy uint8/uint16 arrays (index planes) take the compiled copy (``featcodec._core``:
whole tile rows moved by words, a band of tiles at a time; about 3x numpy's strided
copy); any other array or a torch tensor the framework's own permute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core


def _compiled(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype in (np.uint8, np.uint16)


def tiles_of(plane: Any, h: int, w: int) -> Any:
    """The ``h x w`` tiles of the 2-D ``plane`` (sides multiples of ``h`` and ``w``) as the
    rows of a new contiguous ``(R // h * C // w, h * w)`` array of the same kind.

    >>> plane = np.arange(24, dtype=np.uint8).reshape(4, 6)
    >>> tiles_of(plane, 2, 3)[1].tolist()   # the tile right of the first
    [3, 4, 5, 9, 10, 11]
    """
    R, C = plane.shape
    if _compiled(plane):
        return _core.tiles_of(np.ascontiguousarray(plane), h, w)
    t = plane.reshape(R // h, h, C // w, w)
    t = t.permute(0, 2, 1, 3) if not isinstance(t, np.ndarray) else t.transpose(0, 2, 1, 3)
    t = t.reshape(-1, h * w)
    return t.contiguous() if not isinstance(t, np.ndarray) else np.ascontiguousarray(t)


def plane_of_tiles(rows: Any, shape: tuple[int, int], h: int, w: int) -> Any:
    """The inverse of :func:`tiles_of`: the contiguous plane of ``shape`` these tile rows make.

    >>> plane = np.arange(24, dtype=np.uint8).reshape(4, 6)
    >>> bool((plane_of_tiles(tiles_of(plane, 2, 3), (4, 6), 2, 3) == plane).all())
    True
    """
    R, C = shape
    if _compiled(rows):
        return _core.plane_of_tiles(np.ascontiguousarray(rows), R, C, h, w)
    p = rows.reshape(R // h, C // w, h, w)
    p = p.permute(0, 2, 1, 3) if not isinstance(p, np.ndarray) else p.transpose(0, 2, 1, 3)
    p = p.reshape(R, C)
    return p.contiguous() if not isinstance(p, np.ndarray) else np.ascontiguousarray(p)
