"""The ``"residual"`` stage: an error bound for lossy codecs. The codec's own
reconstruction, decoded back to the feature domain (the inverse transform applied), is a
prediction of ``x``; the residual ``x - prediction`` is quantized mid-tread with a uniform
step (at most twice the bound) and its integer indices travel in the section
``residual``, entropy-coded by the index codec (:class:`featcodec.codecs.index.IndexCodec`,
its grouped rANS tables) on the stream's own plane layout. Decode adds ``step * k`` back to
the prediction, so every decoded value is within the bound of ``x``, checked by the
encoder on ``x`` itself, after rounding to ``x``'s dtype.

``featcodec.encode(x, codec="elic"|"hyperprior", max_error=e)`` puts this stage first
(``stages: ["residual", "transform", "pack"]``) and keeps the smaller of this stream and the
index codec's ``max_error=e`` stream (:func:`featcodec.bounded.encode_bounded`).

Determinism. The prediction must be the same in the encoder and every decoder, or the
bound breaks. The learned codecs' synthesis runs float convolutions that are *not*
bit-identical across thread counts (measured: up to 2.4e-4 index units apart between 1 and
2 torch threads, which flips about one index in 1e5). The stage therefore asks the codec
for a *guarded* payload (codec parameter ``guard``, :data:`featcodec.codecs.learned.codec.GUARD`):
the positions whose network output lies within ``2**-9`` index units of a rounding
boundary are listed and rounded down by every decoder, so any decoder whose network output
is within ``2**-9`` index units of the encoder's decodes the very same index plane. From
there on everything is exact: table lookups of float32 levels, and
``prediction + step * k`` in float64 (numpy, correctly rounded), then the cast to the
dtype.

It owns the header field ``residual``: ``{"max_error": e, "step": s, "low": l, "bits": b,
"index": {...}}`` (the bound promised, the step, the lowest residual index, the bits of the
offset indices ``k - l`` and the index codec's ``codec_params`` for them) and the section
``residual`` (the index codec's payload). Format version 6 (docs/format.md; 10 with the
packed levels of an embedded Lloyd-Max transform).

Example:
    >>> import numpy as np, featcodec
    >>> from featcodec import pipeline
    >>> x = np.random.default_rng(0).normal(size=(1, 32, 64)).astype(np.float32)
    >>> blob = pipeline.encode(x, "hyperprior", {"residual": 0.05}, {"quality": 6},
    ...                        stages=["residual", "transform", "pack"])
    >>> h = featcodec.header(blob)
    >>> h["stages"], h["residual"]["max_error"], h["format_version"]
    (['residual', 'transform', 'pack'], 0.05, 10)
    >>> bool(np.abs(featcodec.decode(blob) - x).max() <= 0.05)
    True
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .._arrays import float_view
from ..errors import FormatError, InputError
from ..stream.container import RESIDUAL_VERSION
from ..transform.fit import STEP_MARGIN, as_float64, bound_targets, half_spacing
from .alignment import PackInfo, pack, unpack
from .base import DecodeContext, EncodeContext, Stage

__all__ = ["Residual", "cast_like"]

_KEYS = {"max_error", "step", "low", "bits", "index"}
_MAX_BITS = 16  # the index codec's widest alphabet


def cast_like(v: np.ndarray, dtype: str, framework: str, device: Any = None) -> Any:
    """float64 values ``v`` as the tensor ``decode`` returns: ``framework`` (``"numpy"``
    or ``"torch"``), ``dtype``, on ``device`` (torch only). The encoder checks its bound
    on exactly this cast."""
    if framework == "torch":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(v)).to(getattr(torch, dtype))
        return t if device is None or str(device) == "cpu" else t.to(device)
    if dtype == "bfloat16":
        raise InputError("numpy has no bfloat16; ask for float32 or float16, or pass a torch tensor.")
    return v.astype(dtype)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Residual(Stage):
    """The ``"residual"`` stage (see the module docstring); encode option ``residual``
    (the bound). It must come first, so that its decode sees the whole reconstruction."""

    name, takes, gives = "residual", "values", "values"
    fields, sections = ("residual",), ("residual",)

    # ------------------------------------------------------------------ encode
    def encode(self, x: Any, ctx: EncodeContext) -> Any:
        e = ctx.options.get("residual")
        if isinstance(e, bool) or not _number(e) or not e > 0:
            raise InputError(f"the 'residual' stage needs residual=<bound>, a positive finite number, "
                             f"not {e!r:.40}; encode(x, codec=..., max_error=e) sets it.")
        if ctx.header or ctx.sections:
            raise InputError("the 'residual' stage must come first in stages=[...].")
        ctx.state[self.name] = x
        ctx.codec_params["guard"] = True  # a reproducible plane (module docstring)
        ctx.header[self.name] = None  # placeholders, in stage order; filled after the codec
        ctx.sections[self.name] = b""
        return x

    def after_codec(self, ctx: EncodeContext, predict: Callable[[], Any]) -> None:
        """Code the residual of ``x`` against ``predict()`` (the decoder's reconstruction
        before this stage, float64) at the finest step that keeps the bound on ``x``."""
        x = ctx.state[self.name]
        e = float(ctx.options["residual"])
        _, origin = float_view(x)
        ref = as_float64(x)
        pred = as_float64(predict())
        info = PackInfo.from_dict(ctx.header["pack"])
        diff = ref - pred
        half = half_spacing(float(np.abs(ref).max()), origin.dtype)
        for target in bound_targets(e, half, halvings=2):
            step = 2 * target / STEP_MARGIN
            k = np.rint(diff / step)
            low, high = float(k.min()), float(k.max())
            bits = max(1, math.ceil(math.log2(high - low + 1)))
            if bits > _MAX_BITS:
                break
            y = pred + step * k
            out = as_float64(cast_like(y, origin.dtype, origin.framework))
            if np.abs(y - ref).max() <= e and np.abs(out - ref).max() <= e:
                break
        else:
            bits = _MAX_BITS + 1
        if bits > _MAX_BITS:
            raise InputError(f"the residual cannot be coded within max_error={e:g} with {_MAX_BITS}-bit "
                             "indices; use the index codec's max_error alone, or raise max_error.")
        from ..codecs.index import IndexCodec

        sym = (k - low).astype(np.uint8 if bits <= 8 else np.uint16)
        plane, _ = pack(sym, info.layout)
        payload, params = IndexCodec().encode_plane(np.ascontiguousarray(plane), bits, tile=info.tile)
        ctx.header[self.name] = {"max_error": e, "step": step, "low": int(low), "bits": bits, "index": params}
        ctx.sections[self.name] = payload

    # ------------------------------------------------------------------ read
    def check(self, header: dict[str, Any], version: int) -> set[str]:
        f = header[self.name]
        if not (isinstance(f, dict) and set(f) == _KEYS and _number(f["max_error"]) and _number(f["step"])
                and 0 < f["step"] <= 2 * f["max_error"] and type(f["low"]) is int and abs(f["low"]) < 2**62
                and type(f["bits"]) is int and 1 <= f["bits"] <= _MAX_BITS and isinstance(f["index"], dict)):
            raise FormatError("featcodec stream header field 'residual' is malformed.")
        if header.get("stages", [None])[0] != self.name:
            raise FormatError("featcodec stream has the 'residual' stage after another: corrupt.")
        from ..codecs.index import IndexCodec

        if IndexCodec.format_version(f["index"]) > version:
            raise FormatError("featcodec stream's residual uses index-codec parameters of a newer version: corrupt.")
        return {self.name}

    def format_version(self, header: dict[str, Any]) -> int:
        return RESIDUAL_VERSION

    # ------------------------------------------------------------------ decode
    def prepare(self, ctx: DecodeContext) -> None:
        from ..codecs.index import IndexCodec

        f = ctx.header[self.name]
        info = PackInfo.from_dict(ctx.header["pack"])
        try:
            plane = IndexCodec().decode_plane(bytes(ctx.sections[self.name]), info.plane_shape, f["bits"],
                                              f["index"])
        except FormatError as err:
            raise FormatError(f"featcodec stream's residual section is corrupt: {err}") from None
        if plane.shape != info.plane_shape or int(plane.max()) >= 1 << f["bits"]:
            raise FormatError("featcodec stream's residual section decodes to indices beyond its bits: corrupt.")
        k = unpack(np.ascontiguousarray(plane), info).astype(np.float64) + f["low"]
        # the stages after this one reconstruct in float64 on the CPU; decode casts at the end
        ctx.state[self.name] = (k, ctx.options["dtype"], ctx.options.get("device"))
        ctx.options["dtype"], ctx.options["device"] = "float64", None

    def decode(self, pred: Any, ctx: DecodeContext) -> Any:
        k, dtype, device = ctx.state[self.name]
        y = as_float64(pred) + ctx.header[self.name]["step"] * k
        return cast_like(y, dtype, ctx.header["framework"], device)
