"""Conversions between user tensors (torch or numpy, any float dtype) and the numpy
arrays the compiled core works on, without copies where the memory allows it.

bfloat16 has no numpy dtype: it travels as its raw 16 bits in a ``uint16`` array,
tagged ``"bfloat16"``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .errors import InputError

try:  # torch is a dependency, but keep numpy-only use working if it is broken
    import torch
except Exception:  # pragma: no cover
    torch = None  # type: ignore[assignment]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

_TORCH_NAME = {}
if torch is not None:
    _TORCH_NAME = {
        torch.float16: "float16",
        torch.bfloat16: "bfloat16",
        torch.float32: "float32",
        torch.float64: "float64",
    }


@dataclass(frozen=True)
class Origin:
    """Where a tensor came from, so results can go back in the same form."""

    framework: str  # "torch" or "numpy"
    dtype: str  # one of FLOAT_DTYPES (or an integer dtype name for index arrays)
    device: str = "cpu"


#: arrays of at least this many bytes come from the compiled core's block cache
POOLED_BYTES = 1 << 16


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.empty(shape, dtype)``; from :data:`POOLED_BYTES` on, its memory comes from the
    compiled core's block cache (``featcodec._core.empty``, csrc/pool.h), which keeps the
    blocks of freed arrays for the next ones: repeated encodes of large tensors then touch
    no fresh pages (the kernel zeroes each on first touch, in the caller's CPU time).

    >>> a = empty((512, 512), np.uint8)
    >>> a.shape, a.dtype, a.flags.c_contiguous, a.flags.writeable
    ((512, 512), dtype('uint8'), True, True)
    """
    dt = np.dtype(dtype)
    if math.prod(shape) * dt.itemsize < POOLED_BYTES:
        return np.empty(shape, dt)
    return _core.empty([int(s) for s in shape], dt)


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, remembered: numpy computes it in Python (a few microseconds, several
    times per encode).

    >>> dtype_name(np.dtype(np.float32))
    'float32'
    """
    return dtype.name


def is_torch(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def float_view(x: Any, name: str = "x") -> tuple[np.ndarray, Origin]:
    """Return ``(array, origin)`` for a float tensor or array.

    ``array`` is a numpy view of ``x`` where possible (CPU torch tensors and numpy arrays
    are not copied; CUDA tensors are copied to the host). Its dtype is float16, float32 or
    float64, or uint16 holding raw bfloat16 bits when ``origin.dtype == "bfloat16"``.
    """
    if is_torch(x):
        name_ = _TORCH_NAME.get(x.dtype)
        if name_ is None:
            raise InputError(
                f"{name} has dtype {x.dtype}; featcodec takes float16, bfloat16, float32 or "
                f"float64 tensors. Convert it first, e.g. {name}.float()."
            )
        origin = Origin("torch", name_, str(x.device))
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if name_ == "bfloat16":
            return t.view(torch.int16).numpy().view(np.uint16), origin
        return t.numpy(), origin
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        a = np.asarray(x)
        if a.dtype.kind != "f" or dtype_name(a.dtype) not in FLOAT_DTYPES:
            raise InputError(
                f"{name} has dtype {a.dtype}; featcodec takes float16, float32 or float64 "
                f"arrays (or bfloat16 torch tensors). Convert it first, e.g. "
                f"{name}.astype(np.float32)."
            )
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        return a, Origin("numpy", dtype_name(a.dtype), "cpu")
    raise InputError(
        f"{name} is a {type(x).__name__}; featcodec takes a torch.Tensor or a numpy.ndarray."
    )


def to_float32(a: np.ndarray, dtype: str) -> np.ndarray:
    """Widen a float view from :func:`float_view` to float32 (exact for 16-bit formats)."""
    if dtype == "bfloat16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32, copy=False)


def from_float32(a: np.ndarray, origin: Origin, dtype: str | None = None, device: Any = None) -> Any:
    """Return float32 values ``a`` as ``origin``'s framework, in ``dtype`` (default float32)."""
    dtype = dtype or "float32"
    if dtype not in FLOAT_DTYPES:
        raise InputError(f"dtype must be one of {', '.join(FLOAT_DTYPES)}, not {dtype!r}.")
    if origin.framework == "torch":
        t = torch.from_numpy(np.ascontiguousarray(a))
        t = t.to(getattr(torch, dtype))
        dev = device if device is not None else origin.device
        return t.to(dev) if str(dev) != "cpu" else t
    if dtype == "bfloat16":
        raise InputError("numpy has no bfloat16; ask for float32 or float16, or pass a torch tensor.")
    return a.astype(dtype, copy=False)
