"""What the stages that work along the hidden axis share (``"scales"``,
:mod:`.scales`; ``"rotation"``, :mod:`.rotation`): the token view of a tensor, and the
precision their inverse runs in on decode.

A *token layout* is a tensor whose last axis is the hidden dimension (channels) and whose
leading positions are the tokens: an LLM's hidden states ``(batch, tokens, hidden)``, its
keys and values ``(batch, heads, tokens, head_dim)``, a ViT's ``(batch, tokens, dim)``. Its
token view is the C-ordered ``(tokens, hidden)`` matrix. A channels-first CNN map
``(N, C, H, W)`` is not one: move its channels last first (``x.permute(0, 2, 3, 1)``).

Example:
    >>> import numpy as np
    >>> a, origin, shape = token_matrix(np.ones((2, 3, 4), np.float16), "scales")
    >>> a.shape, a.dtype, origin.dtype, shape
    ((6, 4), dtype('float32'), 'float16', (2, 3, 4))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import Origin, float_view, from_float32, is_torch, to_float32
from ..errors import InputError
from .base import DecodeContext, EncodeContext

__all__ = ["token_matrix", "no_bound", "work_dtype", "keep_precision", "give_back", "host_array"]


def token_matrix(x: Any, stage: str) -> tuple[np.ndarray, Origin, tuple[int, ...]]:
    """The ``(tokens, hidden)`` view of ``x`` as a C-contiguous float32 array (float64 for
    float64 input), where ``x`` came from, and its shape; InputError (naming ``stage``)
    for a 1-D tensor, and for non-finite values."""
    a, origin = float_view(x)
    if a.ndim < 2:
        raise InputError(f"the {stage!r} stage needs a token layout (last axis = hidden size, at least 2-D), "
                         f"not shape {tuple(a.shape)}; reshape x to (tokens, hidden) first, e.g. x.reshape(1, -1).")
    w = np.ascontiguousarray(a if a.dtype == np.float64 else to_float32(a, origin.dtype))
    w = w.reshape(-1, a.shape[-1])
    if not np.all(np.isfinite(w)):
        raise InputError("x contains NaN or Inf; featcodec codes finite values only.")
    return w, origin, tuple(a.shape)


def no_bound(ctx: EncodeContext, stage: str, why: str) -> None:
    """InputError when the encode asks for ``max_error``, which ``stage`` cannot keep (``why``)."""
    if ctx.options.get("max_error") is not None:
        raise InputError(f"max_error bounds every decoded value, and the {stage!r} stage cannot keep that bound: "
                         f"{why} Use max_error alone or with outliers=, or bits= with {stage}.")


def work_dtype(dtype: str) -> str:
    """The precision the stages compute in for a tensor of ``dtype``: float64 for float64,
    float32 otherwise (16-bit values are widened exactly)."""
    return "float64" if dtype == "float64" else "float32"


def keep_precision(ctx: DecodeContext, stage: str) -> None:
    """At :meth:`Stage.prepare`: remember the dtype and device decode must return, and
    make the stages after this one (in encode order) give it the working precision on the
    host, so that no 16-bit rounding comes between them and this stage's inverse."""
    ctx.state[stage + ".out"] = (ctx.options["dtype"], ctx.options.get("device"))
    ctx.options["dtype"] = work_dtype(ctx.options["dtype"])
    ctx.options["device"] = None


def give_back(a: np.ndarray, shape: Any, ctx: DecodeContext, stage: str) -> Any:
    """The working-precision result ``a`` of the stage's inverse, in the stream's shape
    and framework, in the dtype and on the device :func:`keep_precision` remembered."""
    dtype, device = ctx.state[stage + ".out"]
    a = a.reshape(tuple(shape))
    framework = ctx.header["framework"]
    if framework == "torch":
        return from_float32(a, Origin("torch", dtype), dtype, device if device is not None else "cpu")
    return a.astype(dtype, copy=False)


def host_array(y: Any) -> np.ndarray:
    """``y`` (a decoded tensor in the working precision: numpy, or torch on the CPU) as a
    numpy array."""
    return y.numpy() if is_torch(y) else np.asarray(y)
