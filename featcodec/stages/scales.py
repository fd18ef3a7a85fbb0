"""The ``"scales"`` stage: per-token or per-channel scales (KIVI, KVQuant). Each token
(a row of the token view, :mod:`.hidden`) or each channel (a column: the last axis) is
divided by a robust scale before the value transform and multiplied back on decode, so
that one token or channel of large magnitude no longer sets the levels of all the others.
KIVI's rule for a KV cache: keys per channel, values per token.

``featcodec.encode(x, scales="token")`` or ``scales="channel"`` adds this stage in front of
``"transform"`` (after ``"outliers"`` and ``"rotation"`` when those are asked for too). It
owns the header field ``scales`` (``{"axis": "token"|"channel", "count": n, "exponent":
E}``; format version 7) and the section ``scales``: ``n`` bytes, one code ``c`` per scale, the scale being
``2**(E + c/8)`` (log-quantized in steps of 2**(1/8), 9%; computed exactly as the float32
``2**((c % 8)/8)`` of :data:`MANTISSAS` times ``2**(E + c // 8)``). Every code gives a finite
positive float32 scale; the encoder divides by exactly the scale the decoder multiplies
by. The robust scale of a token or channel is its magnitude at rank ``99 (m - 1) // 100``
(ascending, ``m`` values): the 99th percentile, so that a massive activation does not
flatten the rest of its token (but at least its largest magnitude times 2**-64, so that no
quotient overflows); if that is 0, its largest magnitude; if that is 0 too (an
all-zero token or channel), any code serves, and the encoder writes 0.

Example:
    >>> import numpy as np, featcodec
    >>> rng = np.random.default_rng(0)
    >>> k = rng.normal(size=(64, 32)) * np.geomspace(0.01, 30, 32)  # keys: channels of every size
    >>> k = k.astype(np.float32)
    >>> blob = featcodec.encode(k, bits=2, scales="channel")
    >>> featcodec.header(blob)["scales"]["axis"], featcodec.header(blob)["stages"]
    ('channel', ['scales', 'transform', 'pack'])
    >>> plain = featcodec.decode(featcodec.encode(k, bits=2))
    >>> bool(np.mean((featcodec.decode(blob) - k) ** 2) < np.mean((plain - k) ** 2))
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import FormatError, InputError
from ..stream.container import VALUE_STAGES_VERSION
from .base import DecodeContext, EncodeContext, Stage
from .hidden import give_back, host_array, keep_precision, no_bound, token_matrix, work_dtype

__all__ = ["Scales", "AXES", "MANTISSAS", "robust_scales", "quantize_scales", "scale_values"]

#: the scale axes: one scale per token (row of the token view) or per channel (last axis)
AXES = ("token", "channel")
#: the float32 bit patterns of 2**(r/8), r = 0..7 (the nearest float32 to each)
_MANTISSA_BITS = (0x3F800000, 0x3F8B95C2, 0x3F9837F0, 0x3FA5FED7, 0x3FB504F3, 0x3FC5672A, 0x3FD744FD, 0x3FEAC0C7)
MANTISSAS = np.array(_MANTISSA_BITS, np.uint32).view(np.float32)
#: the range of the header's exponent E: every 2**(E + c/8), c in 0..255, a normal float32
EXPONENTS = (-126, 95)


def robust_scales(a: np.ndarray, axis: str) -> np.ndarray:
    """The robust scale of each token (``axis="token"``: each row of the ``(tokens,
    hidden)`` array ``a``) or channel (each column), float64, 0 for an all-zero one.

    >>> robust_scales(np.array([[1.0, -2.0, 0.0], [0.0, 0.0, 0.0]]), "token").tolist()
    [1.0, 0.0]
    """
    mag = np.abs(a if axis == "token" else a.T).astype(np.float64)
    m = mag.shape[1]
    s, top = np.partition(mag, 99 * (m - 1) // 100, axis=1)[:, 99 * (m - 1) // 100], mag.max(axis=1)
    return np.where(s > 0, np.maximum(s, np.ldexp(top, -64)), top)  # x / s stays below 2**64


def quantize_scales(s: np.ndarray) -> tuple[int, np.ndarray]:
    """``(E, codes)``: the header exponent and the uint8 codes of scales ``s`` (>= 0) on the
    log grid ``2**(E + c/8)`` (each the nearest step); the grid spans 32 octaves up to the
    largest scale, smaller scales (and zeros) are clipped up to its lowest.

    >>> E, c = quantize_scales(np.array([1.0, 2.0, 0.0]))
    >>> E, c.tolist(), scale_values(E, c).tolist()
    (0, [0, 8, 0], [1.0, 2.0, 1.0])
    """
    pos = s[s > 0]
    r = np.zeros(s.shape, np.int64)
    r[s > 0] = np.rint(8 * np.log2(pos)).astype(np.int64)
    # the lowest exponent that still holds the largest scale: scales more than 32 octaves
    # below it are clipped up (dividing by more never overflows)
    E = int(np.clip(max(r[s > 0].min() // 8, -((255 - r[s > 0].max()) // 8)), *EXPONENTS)) if pos.size else 0
    return E, np.clip(np.where(s > 0, r - 8 * E, 0), 0, 255).astype(np.uint8)


def scale_values(E: int, codes: np.ndarray) -> np.ndarray:
    """The float32 scales ``2**(E + c/8)`` of the codes (exact: a mantissa times a power of two).

    >>> scale_values(-3, np.array([0, 4, 8], np.uint8)).tolist()
    [0.125, 0.1767766922712326, 0.25]
    """
    c = np.asarray(codes, np.int64)
    return np.ldexp(MANTISSAS[c % 8], E + c // 8).astype(np.float32)


def _axis(v: Any) -> str:
    if v not in AXES:
        raise InputError(f"scales must be 'token' (one scale per token: each row of the last axis) or "
                         f"'channel' (one per last-axis channel), not {v!r:.40}.")
    return v


class Scales(Stage):
    """The ``"scales"`` stage (see the module docstring); encode option ``scales``."""

    name, takes, gives = "scales", "values", "values"
    fields, sections = ("scales",), ("scales",)

    def encode(self, x: Any, ctx: EncodeContext) -> np.ndarray:
        axis = _axis(ctx.options.get("scales"))
        no_bound(ctx, self.name, "the bound would hold on the scaled values, so every token or channel would need "
                  "the step of the largest scale, which gains nothing.")
        a, _, shape = token_matrix(x, self.name)
        E, codes = quantize_scales(robust_scales(a, axis))
        s = scale_values(E, codes).astype(a.dtype)
        ctx.header["scales"] = {"axis": axis, "count": int(codes.size), "exponent": E}
        ctx.sections["scales"] = codes.tobytes()
        out = a / (s[:, None] if axis == "token" else s[None, :])
        return out.reshape(shape)

    def check(self, header: dict[str, Any], version: int) -> set[str]:
        f, shape = header["scales"], header["shape"]
        if not (isinstance(f, dict) and set(f) == {"axis", "count", "exponent"} and f["axis"] in AXES
                and type(f["count"]) is int and type(f["exponent"]) is int
                and EXPONENTS[0] <= f["exponent"] <= EXPONENTS[1] and len(shape) >= 2
                and f["count"] == (math.prod(shape[:-1]) if f["axis"] == "token" else shape[-1])):
            raise FormatError("featcodec stream header field 'scales' is malformed (axis, count or exponent).")
        return {"scales"}

    def format_version(self, header: dict[str, Any]) -> int:
        return VALUE_STAGES_VERSION

    def prepare(self, ctx: DecodeContext) -> None:
        f = ctx.header["scales"]
        raw = ctx.sections["scales"]
        if len(raw) != f["count"]:
            raise FormatError(f"featcodec stream's scales section has {len(raw)} bytes, not {f['count']}.")
        s = scale_values(f["exponent"], np.frombuffer(raw, np.uint8))
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):  # pragma: no cover - every code is one
            raise FormatError("featcodec stream's scales are not finite and positive: corrupt.")
        keep_precision(ctx, self.name)
        ctx.state[self.name] = s.astype(work_dtype(ctx.header["dtype"]))

    def decode(self, y: Any, ctx: DecodeContext) -> Any:
        s, shape = ctx.state[self.name], ctx.header["shape"]
        a = host_array(y).reshape(-1, shape[-1])
        out = a * (s[:, None] if ctx.header["scales"]["axis"] == "token" else s[None, :])
        return give_back(out, shape, ctx, self.name)
