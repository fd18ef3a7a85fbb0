"""Compiled interval quantization and inverse lookup.

:func:`quantize` maps every value to the index of its interval among sorted thresholds,
exactly ``np.searchsorted(thresholds, x, side="right")``; :func:`dequantize` maps indices
back to levels, exactly ``levels[idx]``. Both run in the compiled core on any array layout
without copying, release the GIL, and give identical results for any thread count
(:func:`set_num_threads`).

Example:
    >>> import numpy as np
    >>> from featcodec import kernels
    >>> t = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    >>> kernels.quantize(np.array([-2.0, 0.0, 0.5, 3.0], dtype=np.float32), t)
    array([0, 2, 2, 3], dtype=uint8)
    >>> kernels.dequantize(np.array([0, 3], dtype=np.uint8), np.arange(4, dtype=np.float32))
    array([0., 3.], dtype=float32)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _core
from .errors import InputError

__all__ = ["quantize", "dequantize", "set_num_threads", "get_num_threads"]

_num_threads: int = max(1, os.cpu_count() or 1)

_X_KINDS = {"float16": "float16", "float32": "float32", "float64": "float64"}
_IDX_DTYPES = (np.uint8, np.uint16, np.uint32, np.int32, np.int64)
_OUT_DTYPES = ("float32", "float16", "bfloat16")
MAX_THRESHOLDS = 65535  # a uint16 index addresses at most 65536 intervals


def set_num_threads(n: int) -> None:
    """Set how many threads the kernels use (results do not depend on it).

    Example:
        >>> from featcodec import kernels
        >>> kernels.set_num_threads(1); kernels.get_num_threads()
        1
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"set_num_threads takes a positive integer, not {n!r}.")
    _num_threads = int(n)


def get_num_threads() -> int:
    """The number of threads the kernels use (default: ``os.cpu_count()``)."""
    return _num_threads


# --------------------------------------------------------------------------------------
# validation helpers


def _is_torch(x: Any) -> bool:
    try:
        import torch
    except Exception:  # pragma: no cover
        return False
    return isinstance(x, torch.Tensor)


def _native(a: np.ndarray) -> np.ndarray:
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


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


def _as_float32_rows(values: Any, name: str, axis: int | None, shape: tuple, exact: bool) -> np.ndarray:
    """``values`` as a C-contiguous (C, N) float32 array matching the channel axis."""
    if _is_torch(values):
        values = values.detach().cpu()
        if str(values.dtype) == "torch.bfloat16":
            values = values.float()
        values = values.numpy()
    v = np.asarray(values)
    if v.dtype.kind not in "fiu" or v.dtype.kind == "b":
        raise InputError(f"{name} has dtype {v.dtype}; pass a float32 array.")
    v32 = v.astype(np.float32)
    if exact and v.dtype != np.float32:
        with np.errstate(invalid="ignore", over="ignore"):
            same = np.array_equal(v32.astype(np.float64), v.astype(np.float64))
        if not same:
            raise InputError(
                f"{name} ({v.dtype}) holds values that are not exactly representable as "
                f"float32; round them first with {name}.astype(np.float32)."
            )
    if not np.all(np.isfinite(v32)):
        raise InputError(f"{name} contains NaN or Inf; every {name[:-1]} must be finite.")
    if axis is None:
        if v32.ndim != 1:
            raise InputError(
                f"{name} has shape {v32.shape}; without channel_axis it must be 1-D. "
                f"For per-channel {name} of shape (C, N) pass channel_axis."
            )
        return np.ascontiguousarray(v32.reshape(1, -1))
    if v32.ndim == 1:  # the same values for every channel
        return np.ascontiguousarray(v32.reshape(1, -1))
    if v32.ndim != 2 or v32.shape[0] != shape[axis]:
        raise InputError(
            f"per-channel {name} must have shape (C, N) with C = size of axis {axis} "
            f"({shape[axis]}); got {v32.shape}."
        )
    return np.ascontiguousarray(v32)


def _check_out(out: Any, shape: tuple, dtype: np.dtype, src: np.ndarray) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise InputError(f"out must be a numpy array, not {type(out).__name__}.")
    if out.shape != shape or out.dtype != dtype:
        raise InputError(
            f"out must have shape {shape} and dtype {dtype}; got {out.shape} {out.dtype}."
        )
    if not out.flags.writeable:
        raise InputError("out is read-only.")
    if out.size > 1 and any(s == 0 and n > 1 for s, n in zip(out.strides, out.shape)):
        raise InputError("out has a zero stride (a broadcast view); pass a real array.")
    if np.may_share_memory(out, src):
        raise InputError("out overlaps the input; pass a separate array.")
    return out


def _position(flat: int, shape: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def prepare_thresholds(thresholds: Any, axis: int | None, shape: tuple) -> tuple[np.ndarray, int | None]:
    """Validated (C, T) float32 thresholds and the channel axis (None when C == 1)."""
    thr = _as_float32_rows(thresholds, "thresholds", axis, shape, exact=True)
    if thr.shape[0] == 1:
        axis = None
    T = thr.shape[1]
    if T > MAX_THRESHOLDS:
        raise InputError(
            f"{T} thresholds make {T + 1} intervals; uint16 indices allow at most "
            f"{MAX_THRESHOLDS + 1}."
        )
    if T > 1 and not np.all(thr[:, 1:] >= thr[:, :-1]):
        r, j = np.argwhere(~(thr[:, 1:] >= thr[:, :-1]))[0]
        where = f"row {r}, " if thr.shape[0] > 1 else ""
        raise InputError(
            f"thresholds must be ascending; {where}position {j + 1} ({thr[r, j + 1]!r}) is "
            f"below the one before ({thr[r, j]!r}). Sort them, e.g. np.sort(thresholds)."
        )
    return thr, axis


def prepare_levels(levels: Any, axis: int | None, shape: tuple, dtype: str) -> tuple[np.ndarray, int | None]:
    """Validated (C, L) levels converted to ``dtype`` (bfloat16 as uint16 bits), and the
    channel axis (None when C == 1)."""
    lv32 = _as_float32_rows(levels, "levels", axis, shape, exact=False)
    if lv32.shape[1] == 0:
        raise InputError("levels is empty; it needs at least one level.")
    if lv32.shape[0] == 1:
        axis = None
    return _levels_as(lv32, dtype), axis


def index_dtype(T: int) -> np.dtype:
    """uint8 when T thresholds make at most 256 intervals, else uint16."""
    return np.dtype(np.uint8 if T + 1 <= 256 else np.uint16)


# --------------------------------------------------------------------------------------
# public kernels


def quantize(
    x: Any,
    thresholds: Any,
    *,
    bfloat16: bool = False,
    channel_axis: int | None = None,
    out: np.ndarray | None = None,
) -> Any:
    """Index of each value's interval: ``np.searchsorted(thresholds, x, side="right")``.

    Args:
        x: numpy float16/float32/float64 array of any shape and strides, or uint16 raw
            bfloat16 bits with ``bfloat16=True``. A torch tensor works too (CPU tensors
            without a copy; CUDA tensors run on the device and return a CUDA tensor).
        thresholds: float32 ascending (duplicates allowed), shape (T,), or (C, T) with
            ``channel_axis`` giving the axis of ``x`` of length C.
        bfloat16: ``x`` holds bfloat16 bit patterns as uint16.
        channel_axis: axis of ``x`` whose index selects the row of 2-D thresholds.
        out: optional array to write into (uint8 or uint16 as below, same shape).

    Returns:
        uint8 indices when T + 1 <= 256, else uint16, C-ordered with ``x``'s shape.
        Comparisons are in float32 (float64 for float64 ``x``), so the result equals
        ``np.searchsorted(thresholds.astype(wide), x.astype(wide), side="right")``.

    Raises:
        InputError: NaN/Inf in ``x``, wrong dtypes, unsorted or non-finite thresholds,
            shapes that do not match.

    Example:
        >>> import numpy as np
        >>> quantize(np.float32([0.25, 1.0, 7.0]), np.float32([0.0, 1.0, 2.0]))
        array([1, 2, 3], dtype=uint8)
    """
    if _is_torch(x):
        if x.device.type == "cuda":
            from . import cuda

            return cuda.quantize(x, thresholds, bfloat16=bfloat16, channel_axis=channel_axis, out=out)
        if bfloat16 and str(x.dtype) == "torch.uint16":  # raw bfloat16 bits
            a = x.detach().numpy()
        else:
            from ._arrays import float_view

            a, origin = float_view(x, "x")
            bfloat16 = bfloat16 or origin.dtype == "bfloat16"
    elif isinstance(x, np.ndarray):
        a = x
    else:
        a = np.asarray(x)
        if a.dtype.kind not in "fu":
            raise InputError(
                f"x is a {type(x).__name__} of dtype {a.dtype}; pass a float numpy array."
            )
    a = _native(a)
    if bfloat16:
        if a.dtype != np.uint16:
            raise InputError(
                f"bfloat16=True expects uint16 bit patterns, but x has dtype {a.dtype}. "
                f"Pass x.view(np.uint16) of bfloat16 data, or a torch.bfloat16 tensor."
            )
        kind = "bfloat16"
    else:
        kind = _X_KINDS.get(a.dtype.name)
        if kind is None:
            hint = (
                " For raw bfloat16 bits pass bfloat16=True." if a.dtype == np.uint16 else ""
            )
            raise InputError(
                f"x has dtype {a.dtype}; quantize takes float16, float32 or float64 arrays."
                f"{hint} Convert it first, e.g. x.astype(np.float32)."
            )
    axis = channel_axis_index(channel_axis, a.ndim, "x")
    thr, axis = prepare_thresholds(thresholds, axis, a.shape)
    T = thr.shape[1]
    odt = index_dtype(T)
    if out is None:
        out = np.empty(a.shape, dtype=odt)
    else:
        out = _check_out(out, a.shape, odt, a)
    bad = _core.quantize_into(a, kind, thr, out, -1 if axis is None else axis, _num_threads)
    if bad >= 0:
        pos = _position(bad, a.shape)
        raise InputError(
            f"x contains NaN or Inf (first at index {pos}); quantize takes finite values "
            f"only. Replace or clip them first, e.g. np.nan_to_num(x)."
        )
    return out


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


def dequantize(
    idx: Any,
    levels: Any,
    *,
    channel_axis: int | None = None,
    dtype: str = "float32",
    out: np.ndarray | None = None,
) -> Any:
    """Levels of indices: ``levels[idx]`` (per channel ``levels[c, idx]``).

    Args:
        idx: integer array (uint8, uint16, uint32, int32, int64; other integer types are
            widened), any shape and strides. A torch tensor works too (CUDA on the device).
        levels: float32 values, shape (L,), or (C, L) with ``channel_axis``.
        channel_axis: axis of ``idx`` whose index selects the row of 2-D levels.
        dtype: "float32", "float16", or "bfloat16" (returned as uint16 bit patterns for
            numpy input, as a torch.bfloat16 tensor for CUDA input).
        out: optional array to write into (that dtype, same shape).

    Raises:
        InputError: an index < 0 or >= L, wrong dtypes or shapes.

    Example:
        >>> import numpy as np
        >>> dequantize(np.uint8([[2, 0]]), np.float32([-1.5, 0.0, 1.5]))
        array([[ 1.5, -1.5]], dtype=float32)
    """
    dtype = out_dtype_name(dtype)
    if _is_torch(idx):
        if idx.device.type == "cuda":
            from . import cuda

            return cuda.dequantize(idx, levels, channel_axis=channel_axis, dtype=dtype, out=out)
        idx = idx.detach().numpy()
    a = np.asarray(idx)
    if a.dtype.kind not in "iu":
        raise InputError(
            f"idx has dtype {a.dtype}; dequantize takes integer indices (uint8/uint16)."
        )
    a = _native(a)
    if not any(a.dtype == d for d in _IDX_DTYPES):
        a = a.astype(np.int64)
    axis = channel_axis_index(channel_axis, a.ndim, "idx")
    lv, axis = prepare_levels(levels, axis, a.shape, dtype)
    odt = np.dtype(np.uint16 if dtype == "bfloat16" else dtype)
    if out is None:
        out = np.empty(a.shape, dtype=odt)
    else:
        out = _check_out(out, a.shape, odt, a)
    bad = _core.dequantize_into(a, lv, out, -1 if axis is None else axis, _num_threads)
    if bad >= 0:
        pos = _position(bad, a.shape)
        raise InputError(
            f"idx holds {int(a[pos])} at index {pos}, outside [0, {lv.shape[1]}) for "
            f"{lv.shape[1]} levels; the indices do not belong to these levels."
        )
    return out


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
