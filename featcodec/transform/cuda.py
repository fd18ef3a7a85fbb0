"""The CUDA path of :mod:`featcodec.transform.kernels`: quantize and dequantize CUDA torch tensors on
their own device, with the same results as the CPU kernels (the per-element code is shared).

``featcodec.transform.kernels.quantize``/``dequantize`` send CUDA tensors here; the compiled module
``featcodec._cuda`` is imported only then. Kernels run on the tensor's device and on torch's
current stream; the data never goes through the host. Only the thresholds/levels (a few
KB) are uploaded, and one 8-byte error flag is read back, which waits for the kernel.

Example (on a machine with a GPU):
    >>> import torch, numpy as np
    >>> from featcodec.transform import kernels
    >>> x = torch.randn(1000, device="cuda")  # doctest: +SKIP
    >>> idx = kernels.quantize(x, np.float32([-1, 0, 1]))  # doctest: +SKIP
    >>> idx.dtype, idx.device.type  # doctest: +SKIP
    (torch.uint8, 'cuda')
    >>> y = kernels.dequantize(idx, np.float32([-2, -0.5, 0.5, 2]))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .kernel_args import (
    channel_axis_index,
    index_dtype,
    out_dtype_name,
    prepare_levels,
    prepare_thresholds,
)

__all__ = ["available", "quantize", "dequantize"]

_NONE = 2**63 - 1  # "no bad element" in the error flag
_MAX_DIMS = 8
_IN_KIND = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}
_IDX_KIND = {torch.uint8: 0, torch.uint16: 1, torch.int32: 2, torch.int64: 3}
_OUT_TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _module() -> Any:
    try:
        from .. import _cuda
    except ImportError as e:
        raise InputError(
            "got a CUDA tensor, but this featcodec build has no CUDA kernels (it was built "
            "without a CUDA toolkit). Reinstall featcodec with nvcc on PATH, or pass "
            "x.cpu()."
        ) from e
    return _cuda


def available() -> bool:
    """True when the CUDA kernels are built and torch sees a GPU."""
    try:
        _module()
    except InputError:
        return False
    return torch.cuda.is_available()


def _target(t: torch.Tensor, host_twin: bool) -> tuple[int, int]:
    """(device index, stream handle) for a launch; (-1, 0) runs the host twin of the
    kernels on CPU tensors (the same per-element code, for tests without a GPU)."""
    if t.dim() > _MAX_DIMS:
        raise InputError(f"CUDA tensors may have at most {_MAX_DIMS} dimensions, not {t.dim()}.")
    if host_twin:
        return -1, 0
    dev = t.device.index if t.device.index is not None else torch.cuda.current_device()
    return dev, torch.cuda.current_stream(dev).cuda_stream


def _on(dev: int) -> Any:
    return torch.cuda.device(dev) if dev >= 0 else contextlib.nullcontext()


def _check_out(out: Any, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise InputError(f"out must be a torch tensor for CUDA input, not {type(out).__name__}.")
    if out.device != like.device or out.dtype != dtype or out.shape != like.shape:
        raise InputError(
            f"out must be a {dtype} tensor of shape {tuple(like.shape)} on {like.device}; got "
            f"{out.dtype} {tuple(out.shape)} on {out.device}."
        )
    if not out.is_contiguous():
        raise InputError("out must be contiguous for CUDA input.")
    return out


def _channel_div(shape: tuple, axis: int | None) -> int:
    return 1 if axis is None else max(1, math.prod(shape[axis + 1 :]))


def quantize(
    x: torch.Tensor,
    thresholds: Any,
    *,
    bfloat16: bool = False,
    channel_axis: int | None = None,
    out: torch.Tensor | None = None,
    _host_twin: bool = False,
) -> torch.Tensor:
    """:func:`featcodec.transform.kernels.quantize` for a CUDA tensor; returns a CUDA uint8/uint16 tensor.

    ``_host_twin=True`` (tests only) runs the kernels' per-element code on the CPU for a CPU
    tensor instead of launching it.
    """
    mod = _module()
    if x.dtype == torch.uint16 and bfloat16:
        kind = _IN_KIND[torch.bfloat16]
    elif x.dtype in _IN_KIND and not (bfloat16 and x.dtype != torch.bfloat16):
        kind = _IN_KIND[x.dtype]
    else:
        raise InputError(
            f"x has dtype {x.dtype}; quantize takes float16, bfloat16, float32 or float64 "
            f"tensors (or uint16 bfloat16 bits with bfloat16=True)."
        )
    shape = tuple(x.shape)
    axis = channel_axis_index(channel_axis, x.dim(), "x")
    thr, axis = prepare_thresholds(thresholds, axis, shape)
    C, T = thr.shape
    odt = torch.uint8 if index_dtype(T) == np.uint8 else torch.uint16
    out = torch.empty(shape, dtype=odt, device=x.device) if out is None else _check_out(out, x, odt)
    if x.numel() == 0:
        return out
    dev, stream = _target(x, _host_twin)
    sizes, strides = list(x.shape), list(x.stride())
    with _on(dev):
        thr_d = torch.from_numpy(thr).to(x.device)
        keys = torch.empty_like(thr_d)  # float32 storage, filled with uint32 keys
        bad = torch.full((1,), _NONE, dtype=torch.int64, device=x.device)
        mod.threshold_keys(thr_d.data_ptr(), keys.data_ptr(), thr_d.numel(), dev, stream)
        mod.quantize(x.data_ptr(), kind, sizes, strides, keys.data_ptr(), C, T,
                     _channel_div(shape, axis), out.data_ptr(), out.element_size(),
                     bad.data_ptr(), dev, stream)
        first = int(bad.item())
    if first != _NONE:
        pos = tuple(int(i) for i in np.unravel_index(first, shape)) if shape else ()
        raise InputError(
            f"x contains NaN or Inf (first at index {pos}); quantize takes finite values "
            f"only. Replace or clip them first, e.g. torch.nan_to_num(x)."
        )
    return out


def dequantize(
    idx: torch.Tensor,
    levels: Any,
    *,
    channel_axis: int | None = None,
    dtype: Any = "float32",
    out: torch.Tensor | None = None,
    _host_twin: bool = False,
) -> torch.Tensor:
    """:func:`featcodec.transform.kernels.dequantize` for a CUDA tensor; returns a CUDA float tensor
    (torch.bfloat16 for ``dtype="bfloat16"``). ``_host_twin`` as in :func:`quantize`."""
    mod = _module()
    dtype = out_dtype_name(dtype)
    if idx.dtype not in _IDX_KIND:
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.dtype.is_complex:
            raise InputError(f"idx has dtype {idx.dtype}; dequantize takes integer indices.")
        idx = idx.to(torch.int64)  # int8 / int16 / uint32 / uint64: widened on the device
    shape = tuple(idx.shape)
    axis = channel_axis_index(channel_axis, idx.dim(), "idx")
    lv, axis = prepare_levels(levels, axis, shape, dtype)
    C, L = lv.shape
    odt = _OUT_TORCH[dtype]
    out = torch.empty(shape, dtype=odt, device=idx.device) if out is None else _check_out(out, idx, odt)
    if idx.numel() == 0:
        return out
    dev, stream = _target(idx, _host_twin)
    sizes, strides = list(idx.shape), list(idx.stride())
    with _on(dev):
        lv_d = torch.from_numpy(lv).to(idx.device)
        bad = torch.full((1,), _NONE, dtype=torch.int64, device=idx.device)
        mod.dequantize(idx.data_ptr(), _IDX_KIND[idx.dtype], sizes, strides, lv_d.data_ptr(),
                       lv.dtype.itemsize, C, L, _channel_div(shape, axis), out.data_ptr(),
                       bad.data_ptr(), dev, stream)
        first = int(bad.item())
    if first != _NONE:
        pos = tuple(int(i) for i in np.unravel_index(first, shape)) if shape else ()
        raise InputError(
            f"idx holds {int(idx[pos])} at index {pos}, outside [0, {L}) for {L} levels; "
            f"the indices do not belong to these levels."
        )
    return out
