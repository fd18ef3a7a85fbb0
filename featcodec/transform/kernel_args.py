"""The checks and conversions of the kernels' arguments (thresholds, levels, channel
axis, index and output dtypes), shared by the CPU kernels (:mod:`.kernels`) and the CUDA
kernels (:mod:`.cuda`), so that both reject bad arguments with the same messages.

Example:
    >>> import numpy as np
    >>> from featcodec.transform.kernel_args import index_dtype, prepare_thresholds
    >>> index_dtype(255), index_dtype(256)
    (dtype('uint8'), dtype('uint16'))
    >>> prepare_thresholds(np.array([0.0, 1.0], np.float32), None, (4,))[0].shape
    (1, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..errors import InputError

__all__ = ["MAX_THRESHOLDS", "channel_axis_index", "index_dtype", "out_dtype_name",
           "prepare_levels", "prepare_thresholds"]

_OUT_DTYPES = ("float32", "float16", "bfloat16")
MAX_THRESHOLDS = 65535  # a uint16 index addresses at most 65536 intervals


def _is_torch(x: Any) -> bool:
    try:
        import torch
    except Exception:  # pragma: no cover
        return False
    return isinstance(x, torch.Tensor)


def channel_axis_index(axis: Any, ndim: int, name: str) -> int | None:
    """``axis`` as a non-negative axis of an ``ndim``-d array, or None; InputError if bad."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise InputError(f"channel_axis must be an int or None, not {axis!r}.")
    a = int(axis)
    if not -ndim <= a < ndim:
        raise InputError(
            f"channel_axis={axis} is out of range for {name} with {ndim} dimension(s)."
        )
    return a % ndim


def _as_float32_rows(
    values: Any, name: str, axis: int | None, shape: tuple, exact: bool, ascending: bool
) -> np.ndarray:
    """``values`` as a C-contiguous (C, N) float32 array matching the channel axis, checked
    finite (and ascending along each row if asked)."""
    if _is_torch(values):
        values = values.detach().cpu()
        if str(values.dtype) == "torch.bfloat16":
            values = values.float()
        values = values.numpy()
    v = np.asarray(values)
    if v.dtype.kind not in "fiu" or v.dtype.kind == "b":
        raise InputError(f"{name} has dtype {v.dtype}; pass a float32 array.")
    v32 = v.astype(np.float32, copy=False)
    if exact and v.dtype != np.float32:
        with np.errstate(invalid="ignore", over="ignore"):
            same = np.array_equal(v32.astype(np.float64), v.astype(np.float64))
        if not same:
            raise InputError(
                f"{name} ({v.dtype}) holds values that are not exactly representable as "
                f"float32; round them first with {name}.astype(np.float32)."
            )
    if axis is None:
        if v32.ndim != 1:
            raise InputError(
                f"{name} has shape {v32.shape}; without channel_axis it must be 1-D. "
                f"For per-channel {name} of shape (C, N) pass channel_axis."
            )
        rows = v32.reshape(1, -1)
    elif v32.ndim == 1:  # the same values for every channel
        rows = v32.reshape(1, -1)
    elif v32.ndim != 2 or v32.shape[0] != shape[axis]:
        raise InputError(
            f"per-channel {name} must have shape (C, N) with C = size of axis {axis} "
            f"({shape[axis]}); got {v32.shape}."
        )
    else:
        rows = v32
    rows = np.ascontiguousarray(rows)
    bad = _core.check_rows(rows, ascending)  # one pass: finite (and ascending)
    if bad >= 0:
        r, j = divmod(bad, rows.shape[1])
        where = f"row {r}, " if rows.shape[0] > 1 else ""
        if not np.isfinite(rows[r, j]):
            raise InputError(f"{name} contains NaN or Inf ({where}position {j}); every {name[:-1]} must be finite.")
        raise InputError(
            f"{name} must be ascending; {where}position {j} ({rows[r, j]!r}) is below the one "
            f"before ({rows[r, j - 1]!r}). Sort them, e.g. np.sort({name})."
        )
    return rows


def prepare_thresholds(thresholds: Any, axis: int | None, shape: tuple) -> tuple[np.ndarray, int | None]:
    """Validated (C, T) float32 thresholds and the channel axis (None when C == 1)."""
    thr = _as_float32_rows(thresholds, "thresholds", axis, shape, exact=True, ascending=True)
    if thr.shape[0] == 1:
        axis = None
    T = thr.shape[1]
    if T > MAX_THRESHOLDS:
        raise InputError(
            f"{T} thresholds make {T + 1} intervals; uint16 indices allow at most "
            f"{MAX_THRESHOLDS + 1}."
        )
    return thr, axis


def prepare_levels(levels: Any, axis: int | None, shape: tuple, dtype: str) -> tuple[np.ndarray, int | None]:
    """Validated (C, L) levels converted to ``dtype`` (bfloat16 as uint16 bits), and the
    channel axis (None when C == 1)."""
    lv32 = _as_float32_rows(levels, "levels", axis, shape, exact=False, ascending=False)
    if lv32.shape[1] == 0:
        raise InputError("levels is empty; it needs at least one level.")
    if lv32.shape[0] == 1:
        axis = None
    return _levels_as(lv32, dtype), axis


def index_dtype(T: int) -> np.dtype:
    """uint8 when T thresholds make at most 256 intervals, else uint16."""
    return np.dtype(np.uint8 if T + 1 <= 256 else np.uint16)


def _levels_as(levels32: np.ndarray, dtype: str) -> np.ndarray:
    """Levels converted once to the output type (bit patterns for bfloat16)."""
    if dtype == "float32":
        return levels32
    if dtype == "float16":
        with np.errstate(over="ignore"):  # |level| > 65504 becomes +-Inf, as numpy casts
            return levels32.astype(np.float16)
    u = levels32.view(np.uint32).astype(np.uint64)  # round to nearest even, like torch
    bits = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # levels are finite (checked)
    return np.ascontiguousarray(bits.astype(np.uint16))


def out_dtype_name(dtype: Any) -> str:
    """'float32', 'float16' or 'bfloat16' from a name, numpy dtype or torch dtype."""
    name = str(dtype).replace("torch.", "")
    if name not in _OUT_DTYPES:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in _OUT_DTYPES:
        raise InputError(f"dtype must be one of {', '.join(_OUT_DTYPES)}, not {dtype!r}.")
    return name
