"""The ``"outliers"`` stage (dense + sparse): the ``k`` values of largest magnitude leave
the tensor before the value transform and travel exactly, in the input's dtype, in a
sparse section; the dense rest is fitted and coded without them, so a handful of massive
activations (LLM hidden states reach 2e4 at the first token) no longer sets the spacing of
every level. Decode writes them back bit-exactly.

``featcodec.encode(x, outliers=k)`` adds this stage in front of ``"transform"``. It owns
the header field ``outliers`` (``{"count": k, "position_bytes": n}``) and the section
``outliers``: the positions (in the tensor's row-major order, ascending) as LEB128
varints of their gaps (the first: position + 1), ``n`` bytes, then the ``k`` values as
little-endian numbers of the stream's dtype (bfloat16: its 16 bits). The outliers are the
``k`` largest magnitudes (among equal ones, the first positions, so the choice is
deterministic); in the dense rest each is replaced by the nearest end of the rest's range
(a value of the tensor, so exactly representable), which keeps the rest's range and adds
nothing new to fit.

Example:
    >>> import numpy as np, featcodec
    >>> x = np.random.default_rng(0).normal(size=(16, 64)).astype(np.float32)
    >>> x[0, 3] = 2e4  # a massive activation
    >>> blob = featcodec.encode(x, bits=2, outliers=1)
    >>> y = featcodec.decode(blob)
    >>> float(y[0, 3]), featcodec.header(blob)["outliers"], featcodec.header(blob)["stages"]
    (20000.0, {'count': 1, 'position_bytes': 1}, ['outliers', 'transform', 'pack'])
    >>> y0 = featcodec.decode(featcodec.encode(x, bits=2))  # a level is spent on the outlier
    >>> bool(np.mean((y - x) ** 2) < 0.7 * np.mean((y0 - x) ** 2))
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._arrays import float_view, is_torch, to_float32
from ..errors import FormatError, InputError
from ..stream import varints
from .base import DecodeContext, EncodeContext, Stage

__all__ = ["Outliers", "encode_positions", "decode_positions", "count_for_bound", "count_for_peaks",
           "largest", "PEAK_RATIO"]

_ITEM = {"float16": ("<f2", 2), "bfloat16": ("<u2", 2), "float32": ("<f4", 4), "float64": ("<f8", 8)}


def encode_positions(pos: np.ndarray) -> bytes:
    """Ascending distinct positions as LEB128 varints of their gaps (the first: pos + 1).

    >>> encode_positions(np.array([0, 1, 200])).hex()
    '0101c701'
    """
    return varints.encode(np.diff(np.asarray(pos, np.int64), prepend=-1))


def decode_positions(raw: bytes, count: int, size: int) -> np.ndarray:
    """The inverse of :func:`encode_positions`, checked: exactly ``count`` minimal varints
    of at most 5 bytes, positions ascending and below ``size``; else FormatError."""
    vals = varints.decode(raw, count)
    bad = FormatError("featcodec stream's outlier positions are corrupt.")
    if vals is None or np.any(vals < 1):
        raise bad
    pos = np.cumsum(vals) - 1
    if count and pos[-1] >= size:
        raise bad
    return pos


def count_for_bound(x: Any, max_error: float) -> int:
    """The fewest values of largest magnitude that must leave ``x`` (as ``outliers=k`` takes
    them) for error-bounded coding at ``max_error`` to span the rest with 16-bit indices
    (:func:`featcodec.transform.fit_max_error`); 0 when it spans all of ``x``, or when
    more than 1% of the values (at least one) would have to go: then the bound is too fine
    for the tensor, not for a few of its values, and the fit says what bound can be met.

    ``featcodec.encode(x, max_error=e)`` moves this many when it is not 0: a few massive
    activations (SmolLM2's reach 2e4 where the robust scale is 2.8) would otherwise need
    more than 2**16 levels at fine bounds. The count is computed for the bound less four
    half-steps of the dtype at the rest's largest magnitude (the fit's own margin for
    rounding), so the fit that follows finds the rest within reach.

    Example:
        >>> x = np.zeros(1000, np.float32); x[:3] = [5e4, -3e4, 1.0]
        >>> count_for_bound(x, 0.01), count_for_bound(x, 1.0)
        (2, 0)
    """
    from ..transform.fit import STEP_MARGIN, half_spacing
    from ..transform.table import MAX_BITS

    a, origin = float_view(x)
    flat = np.asarray(to_float32(a, origin.dtype) if origin.dtype == "bfloat16" else a).reshape(-1)
    if flat.size < 2:
        return 0
    lo, hi = float(flat.min()), float(flat.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0  # the encode's own checks say what is wrong

    def reach(m: Any) -> Any:  # the widest span 16 bits serve, the rest's magnitude at most m
        target = float(max_error) - 4 * half_spacing(m, origin.dtype)
        return np.maximum(target, 0) * (2**MAX_BITS - 1) * 2 / STEP_MARGIN * (1 - 2.0**-20)

    if hi - lo <= reach(max(abs(lo), abs(hi))):
        return 0
    mag = np.abs(flat)
    kmax = min(flat.size - 1, max(1, flat.size // 100))
    top = largest(mag, kmax)
    top = top[np.lexsort((top, -mag[top]))]  # in the order the stage takes them
    rest = np.ones(flat.size, bool)
    rest[top] = False
    v = flat[top].astype(np.float64)
    # the rest's ends once the first k of them are gone: the later ones and the others
    r_hi = np.append(np.maximum.accumulate(v[::-1])[::-1], -np.inf)
    r_lo = np.append(np.minimum.accumulate(v[::-1])[::-1], np.inf)
    r_hi = np.maximum(r_hi, float(flat.max(where=rest, initial=-np.inf)))
    r_lo = np.minimum(r_lo, float(flat.min(where=rest, initial=np.inf)))
    ok = np.flatnonzero(r_hi - r_lo <= reach(np.maximum(np.abs(r_hi), np.abs(r_lo))))
    return int(ok[0]) if ok.size else 0


#: :func:`count_for_peaks`: a value is a peak when it is this many times the RMS of the rest
PEAK_RATIO = 8.0


def count_for_peaks(x: Any, ratio: float = PEAK_RATIO) -> int:
    """The fewest values of largest magnitude that must leave ``x`` (as ``outliers=k`` takes
    them) for the largest magnitude left to be at most ``ratio`` times the root mean square
    of what is left, at most 1% of the values (at least one): 0 when ``x`` already is.

    The learned codecs take these out by default: their reconstruction is off by several of
    the transform's levels, and the levels of a few massive activations lie so far apart
    that those few values then carry nearly all of the error (a SmolLM2 hidden state: 99%
    of its variance as error at every quality; with its 0.1% largest values exact, 0.3%).
    A Gaussian tensor of a million values reaches about 5 RMS, so it loses none.

    Example:
        >>> x = np.random.default_rng(0).normal(size=10000).astype(np.float32)
        >>> count_for_peaks(x)
        0
        >>> x[:3] = [2e4, -900.0, 7.0]  # two massive activations
        >>> count_for_peaks(x)
        2
    """
    a, origin = float_view(x)
    flat = np.asarray(to_float32(a, origin.dtype) if origin.dtype == "bfloat16" else a).reshape(-1)
    n = flat.size
    if n < 2:
        return 0
    kmax = min(n - 1, max(1, n // 100))
    mag = np.abs(flat)  # in x's own float type: exact
    if not np.isfinite(mag.max()):
        return 0  # the encode's own checks say what is wrong
    top = largest(mag, kmax + 1)
    top = np.sort(mag[top].astype(np.float64))[::-1]  # the kmax + 1 largest magnitudes, descending
    step = 1 << 20  # squares summed in float64 a block at a time: no tensor-sized float64 copy
    total = sum(float(np.sum(np.square(mag[i:i + step], dtype=np.float64))) for i in range(0, n, step))
    energy = total - np.concatenate(([0.0], np.cumsum(top[:-1] ** 2)))
    left = n - np.arange(kmax + 1)  # after taking k = 0..kmax out: the count left ...
    ok = np.flatnonzero(top ** 2 <= ratio**2 * np.maximum(energy, 0) / left)  # ... its peak vs its RMS
    return int(ok[0]) if ok.size else kmax


def largest(mag: np.ndarray, k: int) -> np.ndarray:
    """The positions (ascending) of the ``k`` largest of the 1-D ``mag``; among equal ones
    at the ``k``-th largest, the lowest positions: the values ``outliers=k`` takes.

    The k-th largest is selected among the values at or above a guess from a stride
    sample of 8,192 to 16,383 values (one comparison over ``mag``, then a selection over
    the few candidates), or among all when fewer than ``k`` reach the guess: exact either
    way. (Below 131,072 values a sample of ``n // 65536`` was the whole tensor, and one
    selection over it cost more than the rest of :func:`count_for_peaks`: docs/encode.md.)

    >>> largest(np.array([1.0, 5.0, 3.0, 5.0, 0.0]), 2).tolist(), largest(np.array([2.0, 2.0, 2.0]), 2).tolist()
    ([1, 3], [0, 1])
    """
    n = mag.size
    if k >= n:
        return np.arange(n)
    sample = mag[:: max(1, n // 8192)]
    q = max(0, sample.size - 1 - (2 * k * sample.size) // n - 8)  # a little below the k-th largest's rank
    cand = np.flatnonzero(mag >= np.partition(sample, q)[q])
    if cand.size < k:  # the guess was too high
        cand = np.arange(n)
    cm = mag[cand]
    cut = np.partition(cm, cm.size - k)[cm.size - k]  # the k-th largest
    above = cand[cm > cut]
    return np.union1d(above, cand[cm == cut][: k - above.size])


def _count(k: Any, size: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= size:
        raise InputError(f"outliers must be a count from 1 to the tensor's size ({size}), not {k!r:.40}.")
    return int(k)


class Outliers(Stage):
    """The ``"outliers"`` stage (see the module docstring); encode option ``outliers``."""

    name, takes, gives = "outliers", "values", "values"
    fields, sections = ("outliers",), ("outliers",)

    def encode(self, x: Any, ctx: EncodeContext) -> Any:
        a, origin = float_view(x)
        f = to_float32(a, origin.dtype) if origin.dtype == "bfloat16" else a
        flat = f.reshape(-1)
        k = _count(ctx.options.get("outliers"), flat.size)
        if not np.all(np.isfinite(flat)):
            raise InputError("x contains NaN or Inf; featcodec codes finite values only.")
        pos = largest(np.abs(flat), k)
        rest = np.ones(flat.size, bool)
        rest[pos] = False
        fill = (np.clip(flat[pos], flat.min(where=rest, initial=np.inf), flat.max(where=rest, initial=-np.inf))
                if k < flat.size else np.zeros(k, f.dtype))
        raw = a.reshape(-1)[pos].astype(_ITEM[origin.dtype][0])
        positions = encode_positions(pos)
        ctx.header["outliers"] = {"count": k, "position_bytes": len(positions)}
        ctx.sections["outliers"] = positions + raw.tobytes()
        return _put(x, pos, fill)

    def check(self, header: dict[str, Any], version: int) -> set[str]:
        f = header["outliers"]
        size = math.prod(header["shape"])
        if not (isinstance(f, dict) and set(f) == {"count", "position_bytes"}
                and all(type(v) is int for v in f.values())
                and 1 <= f["count"] <= size and f["count"] <= f["position_bytes"] <= varints.MAX_BYTES * f["count"]):
            raise FormatError("featcodec stream header field 'outliers' is malformed.")
        return {"outliers"}

    def prepare(self, ctx: DecodeContext) -> None:
        f, h = ctx.header["outliers"], ctx.header
        raw = bytes(ctx.sections["outliers"])
        code, item = _ITEM[h["dtype"]]
        if len(raw) != f["position_bytes"] + item * f["count"]:
            raise FormatError(f"featcodec stream's outliers section has {len(raw)} bytes, not "
                              f"{f['position_bytes'] + item * f['count']}.")
        pos = decode_positions(raw[: f["position_bytes"]], f["count"], math.prod(h["shape"]))
        vals = np.frombuffer(raw, code, offset=f["position_bytes"])
        vals = to_float32(vals, "bfloat16") if h["dtype"] == "bfloat16" else vals
        if not np.all(np.isfinite(vals)):
            raise FormatError("featcodec stream's outlier values are not finite: corrupt.")
        ctx.state[self.name] = (pos, vals)

    def decode(self, y: Any, ctx: DecodeContext) -> Any:
        pos, vals = ctx.state[self.name]
        return _put(y, pos, vals, inplace=True)


def _put(x: Any, pos: np.ndarray, values: np.ndarray, inplace: bool = False) -> Any:
    """``x`` (a copy unless ``inplace``) with ``values`` at the flat positions ``pos``, in
    ``x``'s framework, device and dtype."""
    if is_torch(x):
        import torch

        out = x if inplace and x.is_contiguous() else x.detach().clone(memory_format=torch.contiguous_format)
        v = torch.from_numpy(np.asarray(values, np.float64)).to(out.dtype)
        out.view(-1)[torch.from_numpy(pos).to(out.device)] = v.to(out.device)
        return out
    out = np.asarray(x) if inplace and x.flags.c_contiguous else np.array(x, order="C")
    out.reshape(-1)[pos] = values.astype(out.dtype)
    return out
