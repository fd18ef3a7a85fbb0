"""Compiled interval quantization and inverse lookup.

:func:`quantize` maps every value to the index of its interval among sorted thresholds,
exactly ``np.searchsorted(thresholds, x, side="right")``; :func:`dequantize` maps indices
back to levels, exactly ``levels[idx]``. Both run in the compiled core on any array layout
without copying, release the GIL, and give identical results for any thread count
(:func:`set_num_threads`).

Example:
    >>> import numpy as np
    >>> from featcodec.transform import kernels
    >>> t = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    >>> kernels.quantize(np.array([-2.0, 0.0, 0.5, 3.0], dtype=np.float32), t)
    array([0, 2, 2, 3], dtype=uint8)
    >>> kernels.dequantize(np.array([0, 3], dtype=np.uint8), np.arange(4, dtype=np.float32))
    array([0., 3.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._arrays import dtype_name, empty
from ..errors import InputError
from ..threads import get_num_threads, set_num_threads
from .kernel_args import (
    MAX_THRESHOLDS,
    _is_torch,
    channel_axis_index,
    index_dtype,
    out_dtype_name,
    prepare_levels,
    prepare_thresholds,
)

__all__ = ["quantize", "dequantize", "set_num_threads", "get_num_threads"]

_X_KINDS = {"float16": "float16", "float32": "float32", "float64": "float64"}
_IDX_DTYPES = (np.uint8, np.uint16, np.uint32, np.int32, np.int64)


# --------------------------------------------------------------------------------------
# validation helpers


def _native(a: np.ndarray) -> np.ndarray:
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


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
            from .._arrays import float_view

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
        kind = _X_KINDS.get(dtype_name(a.dtype))
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
        out = empty(a.shape, odt)
    else:
        out = _check_out(out, a.shape, odt, a)
    bad = _core.quantize_into(a, kind, thr, out, -1 if axis is None else axis, get_num_threads())
    if bad >= 0:
        pos = _position(bad, a.shape)
        raise InputError(
            f"x contains NaN or Inf (first at index {pos}); quantize takes finite values "
            f"only. Replace or clip them first, e.g. np.nan_to_num(x)."
        )
    return out


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
        out = empty(a.shape, odt)
    else:
        out = _check_out(out, a.shape, odt, a)
    bad = _core.dequantize_into(a, lv, out, -1 if axis is None else axis, get_num_threads())
    if bad >= 0:
        pos = _position(bad, a.shape)
        raise InputError(
            f"idx holds {int(a[pos])} at index {pos}, outside [0, {lv.shape[1]}) for "
            f"{lv.shape[1]} levels; the indices do not belong to these levels."
        )
    return out

