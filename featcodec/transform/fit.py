"""Fitting a :class:`~featcodec.transform.table.Transform` to features.

- :func:`fit_transform`: the DT-UFC "peaky-to-balanced" transform (Lloyd-Max levels, the
  solver in :mod:`featcodec.transform.lloydmax`).
- :func:`fit_uniform` / :func:`uniform_transform`: the CAUFC value alignment (uniform
  levels over a truncated range).
- :func:`fit_max_error` / :class:`MaxErrorFitter`: error-bounded uniform levels.

Example:
    >>> import numpy as np
    >>> from featcodec.transform import fit_transform
    >>> fit_transform(np.arange(8, dtype=np.float32), bits=2).bits
    2
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import lloydmax
from .table import _F32_MAX, MAX_BITS, Transform, _check_axis, _check_bits
from .._arrays import float_view, is_torch, to_float32
from ..errors import FitError, InputError

try:
    import torch
except Exception:  # pragma: no cover
    torch = None  # type: ignore[assignment]

__all__ = ["fit_transform", "fit_uniform", "uniform_transform", "fit_max_error", "MaxErrorFitter", "bound_targets",
           "half_spacing", "as_float64", "STEP_MARGIN"]


def _samples(samples: Any) -> list[Any]:
    if samples is None:
        raise FitError("samples is None; pass a tensor, an array, or a list of them.")
    if is_torch(samples) or isinstance(samples, np.ndarray) or np.isscalar(samples):
        return [samples]
    if isinstance(samples, (str, bytes, dict)) or not isinstance(samples, Iterable):
        raise FitError(
            f"samples is a {type(samples).__name__}; pass a tensor, an array, or an iterable of them."
        )
    return list(samples)


def _range_pair(v: Any, what: str, C: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        lo, hi = v
        lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (C,))
        hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (C,))
    except (TypeError, ValueError):
        raise InputError(
            f"{what} must be a pair (low, high) of numbers, or with channel_axis a pair of "
            f"per-channel arrays (here of length {C})."
        ) from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InputError(f"{what} bounds must be finite.")
    if np.any(lo >= hi):
        raise InputError(f"{what} needs low < high; got {v!r}.")
    return lo, hi


def _collect(
    samples: Any, channel_axis: int | None, clip: Any
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """All sample values as float32 (C, n), clamped to ``clip``; checks NaN/Inf/range."""
    items = _samples(samples)
    if not items:
        raise FitError("samples is empty; pass at least one tensor with values.")
    parts: list[np.ndarray] = []
    C: int | None = None
    bounds = None
    for i, s in enumerate(items):
        a, origin = float_view(s, f"samples[{i}]")
        if channel_axis is None:
            a2 = a.reshape(1, -1)
        else:
            if a.ndim == 0 or not -a.ndim <= channel_axis < a.ndim:
                raise FitError(
                    f"samples[{i}] has shape {a.shape}; channel_axis={channel_axis} is not one of its axes."
                )
            a2 = np.moveaxis(a, channel_axis, 0).reshape(a.shape[channel_axis], -1)
        if C is None:
            C = a2.shape[0]
            if clip is not None:
                bounds = _range_pair(clip, "clip", C)
        elif a2.shape[0] != C:
            raise FitError(f"samples[{i}] has {a2.shape[0]} channels on axis {channel_axis}; the first had {C}.")
        if origin.dtype == "bfloat16":
            f = to_float32(a2, "bfloat16")
        elif origin.dtype == "float64":
            f = a2
        else:
            f = a2.astype(np.float32, copy=False)
        if not np.all(np.isfinite(f)):
            raise FitError(
                f"samples[{i}] contains NaN or Inf; remove or replace them (e.g. "
                "torch.nan_to_num) before fitting a transform."
            )
        if bounds is not None:
            f = np.clip(f, bounds[0][:, None].astype(f.dtype), bounds[1][:, None].astype(f.dtype))
        if f.dtype == np.float64:
            if f.size and np.max(np.abs(f)) > _F32_MAX:
                raise FitError(
                    f"samples[{i}] has values beyond the float32 range; transforms are float32. "
                    "Pass clip=(low, high) to truncate them."
                )
            f = f.astype(np.float32)
        parts.append(np.ascontiguousarray(f, dtype=np.float32))
    x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    if x.size == 0:
        raise FitError("samples hold no values (empty tensors); pass features with values.")
    return x, bounds


def _percentile_bounds(x: np.ndarray, percentiles: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        plo, phi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise InputError("percentiles must be a pair (low, high) of numbers in [0, 100].") from None
    if not (0.0 <= plo < phi <= 100.0):
        raise InputError(f"percentiles need 0 <= low < high <= 100; got {percentiles!r}.")
    lo = np.percentile(x, plo, axis=1, method="lower")
    hi = np.percentile(x, phi, axis=1, method="higher")
    return lo.astype(np.float64), hi.astype(np.float64)


def _prepare(
    samples: Any, channel_axis: Any, clip: Any, percentiles: Any
) -> tuple[np.ndarray, dict, int | None]:
    axis = _check_axis(channel_axis)
    if clip is not None and percentiles is not None:
        raise InputError("pass either clip=(low, high) or percentiles=(low, high), not both.")
    x, bounds = _collect(samples, axis, clip)
    meta: dict = {}
    if percentiles is not None:
        lo, hi = _percentile_bounds(x, percentiles)
        x = np.clip(x, lo[:, None].astype(np.float32), hi[:, None].astype(np.float32))
        meta["percentiles"] = [float(p) for p in percentiles]
        bounds = (lo, hi)
    if bounds is not None:
        lo, hi = bounds
        meta["clip"] = [float(lo[0]), float(hi[0])] if axis is None else [lo.tolist(), hi.tolist()]
    return x, meta, axis


def _finish(levels: np.ndarray, bits: int, axis: int | None, kind: str, meta: dict) -> Transform:
    lv = lloydmax.strictly_ascending(levels)
    if not np.all(np.isfinite(lv)):
        raise FitError(
            "the fitted levels overflow float32 (values too close to the float32 limit); "
            "pass clip=(low, high) with a narrower range."
        )
    # nearest-level thresholds, derived by the Transform (which then knows they need not be stored)
    return Transform(lv[0] if axis is None else lv, channel_axis=axis, kind=kind, meta=meta, _err=FitError)


def fit_transform(
    samples: Any,
    bits: int = 8,
    *,
    clip: Any = None,
    percentiles: Any = None,
    channel_axis: int | None = None,
    max_iter: int = 600,
    method: str = "exact",
) -> Transform:
    """Fit the Lloyd-Max transform: ``2**bits`` levels minimising the mean squared
    reconstruction error of nearest-level quantization of ``samples``.

    Args:
        samples: a tensor/array (any shape, float16/bfloat16/float32/float64, torch or
            numpy) or an iterable of them; all values are pooled (per channel with
            ``channel_axis``).
        bits: 1 to 16.
        clip: optional truncation ``(low, high)`` (numbers, or per-channel arrays): values
            are clamped to the range before fitting, so the outer levels sit at or inside it.
        percentiles: optional truncation by percentiles ``(low, high)`` in [0, 100] of the
            data (per channel with ``channel_axis``), e.g. ``(0.1, 99.9)``.
        channel_axis: fit one transform per channel along this axis (models with outlier
            channels); forward/inverse then need the same axis layout.
        max_iter: cap on Lloyd iterations (of the exact method).
        method: ``"exact"`` (default: greedy atoms, the full DP, Lloyd to convergence;
            :func:`featcodec.transform.lloydmax.fit_levels`) or ``"fast"`` (compander
            atoms, a windowed DP, 30 Lloyd iterations, all compiled:
            :func:`~featcodec.transform.lloydmax.fit_levels_fast`; 3-10x faster, within
            0.5% of the exact MSE on the fixtures; what ``featcodec.encode`` fits per call).
            Channels the fast method does not serve get the exact fit.

    Deterministic: the same samples give the same transform (same ``id``) in any process.
    With fewer distinct values than levels, every distinct value becomes a level (exact
    reconstruction) and the spare levels fill the gaps (see
    :func:`featcodec.lloydmax.fill_levels`).

    >>> import numpy as np
    >>> t = fit_transform(np.array([0.0, 0.0, 1.0, 5.0, 6.0], np.float32), bits=1)
    >>> t.levels.tolist()
    [0.3333333432674408, 5.5]
    """
    bits = _check_bits(bits)
    if method not in ("exact", "fast"):
        raise InputError(f"method must be 'exact' or 'fast', not {method!r:.40}.")
    x, meta, axis = _prepare(samples, channel_axis, clip, percentiles)
    K = 2**bits
    levels = np.empty((x.shape[0], K), np.float64)
    rest = np.arange(x.shape[0])
    if method == "fast":
        fast = [lloydmax.fit_levels_fast(row, K) for row in x]
        rest = np.array([c for c, lv in enumerate(fast) if lv is None], np.int64)
        for c, lv in enumerate(fast):
            if lv is not None:
                levels[c] = lv
    if len(rest):
        levels[rest] = _exact_levels(x if len(rest) == len(x) else x[rest], K, max_iter)
    return _finish(levels, bits, axis, "lloyd-max", meta)


def _exact_levels(x: np.ndarray, K: int, max_iter: int) -> np.ndarray:
    """The exact fit's ``K`` levels for each row of float32 ``x`` (C, n)."""
    points = lloydmax.points_from_values(x)
    distinct = points.distinct()
    levels = np.empty((points.channels, K), np.float64)
    for c in np.flatnonzero(distinct <= K):
        vals = points.values[points.offsets[c] : points.offsets[c + 1]].astype(np.float32)
        levels[c] = lloydmax.fill_levels(vals, K)
    many = np.flatnonzero(distinct > K)
    if len(many):
        levels[many] = lloydmax.fit_levels(lloydmax.select_channels(points, many), K, max_iter=max_iter)
    return levels


def fit_uniform(
    samples: Any,
    bits: int = 8,
    *,
    clip: Any = None,
    percentiles: Any = None,
    channel_axis: int | None = None,
) -> Transform:
    """The CAUFC value alignment as a :class:`Transform`: ``2**bits`` uniform levels over
    the truncation range (``clip``, ``percentiles``, or the data's min and max), with
    nearest-level thresholds, i.e. ``round((clamp(x) - low) / (high - low) * (2**bits - 1))``.

    >>> fit_uniform(np.zeros(3, np.float32), bits=2, clip=(-1, 2)).levels.tolist()
    [-1.0, 0.0, 1.0, 2.0]
    """
    bits = _check_bits(bits)
    x, meta, axis = _prepare(samples, channel_axis, clip, percentiles)
    if "clip" in meta:
        lo, hi = (np.broadcast_to(np.asarray(v, np.float64), (x.shape[0],)) for v in meta["clip"])
    else:
        lo, hi = x.min(axis=1).astype(np.float64), x.max(axis=1).astype(np.float64)
        meta["clip"] = [float(lo[0]), float(hi[0])] if axis is None else [lo.tolist(), hi.tolist()]
    return uniform_transform(lo, hi, bits, channel_axis=axis, meta=meta)


def uniform_transform(low: Any, high: Any, bits: int, *, channel_axis: int | None = None,
                      meta: dict | None = None) -> Transform:
    """``2**bits`` evenly spaced levels from ``low`` to ``high`` (numbers, or one per
    channel with ``channel_axis``), nearest-level thresholds: ``low + (high - low) * k /
    (2**bits - 1)`` computed in float64, then rounded to float32. A channel with ``low ==
    high`` gets that value as a level and the spare levels around it.

    The same arguments give the same transform (same ``id``) on every platform, which lets
    a stream store a uniform transform as its two ends (docs/format.md, version 3).

    >>> uniform_transform(-1.0, 2.0, bits=2).levels.tolist()
    [-1.0, 0.0, 1.0, 2.0]
    """
    bits = _check_bits(bits)
    lo = np.atleast_1d(np.asarray(low, np.float64))
    hi = np.atleast_1d(np.asarray(high, np.float64))
    if lo.shape != hi.shape or lo.ndim != 1 or (channel_axis is None and lo.size != 1):
        raise InputError("low and high must be numbers, or equal-length 1-D arrays with channel_axis.")
    if not (np.all(np.abs(lo) <= _F32_MAX) and np.all(np.abs(hi) <= _F32_MAX) and np.all(lo <= hi)):
        raise InputError("uniform levels need ends within the float32 range with low <= high.")
    if channel_axis is None and not meta:  # error-bounded encodes build it twice (fit, header)
        return _uniform_one(lo.tobytes(), hi.tobytes(), bits)
    return _uniform(lo, hi, bits, channel_axis, dict(meta or {}))


@functools.lru_cache(maxsize=8)
def _uniform_one(lo: bytes, hi: bytes, bits: int) -> Transform:
    """:func:`uniform_transform` of one channel, remembered (transforms are immutable); the
    ends come as float64 bytes, so that -0.0 and 0.0 stay apart."""
    return _uniform(np.frombuffer(lo, np.float64), np.frombuffer(hi, np.float64), bits, None, {})


def _uniform(lo: np.ndarray, hi: np.ndarray, bits: int, channel_axis: int | None, meta: dict) -> Transform:
    K = 2**bits
    levels = np.empty((lo.size, K), np.float64)
    for c in range(lo.size):
        if lo[c] == hi[c]:
            levels[c] = lloydmax.fill_levels(np.array([lo[c]], np.float32), K)
        else:
            levels[c] = lo[c] + (hi[c] - lo[c]) * (np.arange(K) / (K - 1))
    return _finish(levels, bits, channel_axis, "uniform", meta)


def fit_max_error(x: Any, max_error: float) -> Transform:
    """Error-bounded coding: uniform levels spaced just under ``2 * max_error`` over the
    range of ``x``, with the fewest bits (at most 16) that cover it, so that decoding
    gives back every value of ``x`` within ``max_error`` (absolute), counting the rounding
    to ``x``'s dtype on decode. The guarantee is checked on ``x`` itself, not estimated.
    The levels are evenly spaced, so a stream stores only the two ends (docs/format.md).

    Within the slack the range leaves, the grid is shifted to put a level on the median of
    ``x`` (a "mid-tread" quantizer): features crowd around their centre, and at coarse
    bounds a level there, rather than a threshold between two, cuts both the rate and the
    error (figures in docs/error_bound.md). :class:`MaxErrorFitter` fits one tensor at
    many bounds.

    Raises :class:`featcodec.InputError` when ``max_error`` is not a positive number, or
    when 16 bits cannot meet it over the tensor's range (the message gives the smallest
    bound that can be met).

    >>> x = np.array([0.0, 0.3, 1.0, 2.5], np.float32)
    >>> t = fit_max_error(x, 0.05)
    >>> t.bits, bool(np.abs(t.inverse(t.forward(x)) - x).max() <= 0.05)
    (5, True)
    """
    return MaxErrorFitter(x)(max_error)


class MaxErrorFitter:
    """:func:`fit_max_error` for one tensor at many bounds: the float64 copy, range and
    median of ``x`` are taken once (``featcodec.encode(codec="auto")`` bisects on the
    bound this way).

    >>> fit = MaxErrorFitter(np.array([0.0, 0.3, 1.0, 2.5], np.float32))
    >>> [fit(e).bits for e in (1.0, 0.05)], fit.span
    ([2, 5], 2.5)
    """

    def __init__(self, x: Any) -> None:
        a, origin = float_view(x, "x")
        if a.size == 0:
            raise InputError("x is empty; featcodec needs at least one value.")
        self._x, self._dtype = x, origin.dtype
        # x's own values where they are float32 or float64 (compared without a float64 copy)
        self._native = np.ascontiguousarray(a) if origin.dtype in ("float32", "float64") else None
        self._ref = as_float64(x) if self._native is None else self._native
        self.lo, self.hi = float(self._ref.min()), float(self._ref.max())  # NaN and Inf show here
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise InputError("x contains NaN or Inf; featcodec codes finite values only.")
        self.span = self.hi - self.lo  #: the range of ``x``
        # np.median(x) in float64, partitioning x's own (narrower) values (not bfloat16 bits)
        flat = (self._ref if origin.dtype == "bfloat16" else np.asarray(a)).reshape(-1)
        if flat.dtype == np.float32 and flat.size >= 1 << 15:  # compiled radix select, the same two values
            from .. import _core

            lower, upper = _core.median_pair(np.ascontiguousarray(flat))
        else:
            mid = np.partition(flat, [(flat.size - 1) // 2, flat.size // 2])
            lower, upper = float(mid[(flat.size - 1) // 2]), float(mid[flat.size // 2])
        self._centre = (lower + upper) / 2

    def __call__(self, max_error: float) -> Transform:
        """The transform of :func:`fit_max_error` for this bound."""
        return self.fit(max_error)[0]

    def fit(self, max_error: float) -> tuple[Transform, Any]:
        """``(transform, indices)``: the transform of :func:`fit_max_error` for this bound
        and its indices of ``x`` (``transform.forward(x)``, computed to check the bound;
        ``featcodec.encode`` codes them rather than quantise ``x`` again)."""
        if isinstance(max_error, bool) or not isinstance(max_error, (int, float, np.floating, np.integer)):
            raise InputError(f"max_error must be a positive number, not {max_error!r:.40}.")
        e = float(max_error)
        if not (math.isfinite(e) and e > 0):
            raise InputError(f"max_error must be a positive finite number, not {e}.")
        lo, hi = self.lo, self.hi
        # the levels and thresholds are rounded to float32, the decoded values to x's dtype
        half = half_spacing(max(abs(lo), abs(hi)), self._dtype)
        for target in bound_targets(e, half, halvings=3):
            step = 2 * target / STEP_MARGIN  # the level spacing
            bits = max(1, math.ceil(math.log2((hi - lo) / step + 1)))
            if bits > MAX_BITS:
                break
            low = _mid_tread_low(lo, hi, self._centre, step, 2**bits)
            # the last level at or above the maximum; both ends float32 numbers, so the
            # stream can store them exactly
            t = uniform_transform(_f32(low, -np.inf), _f32(low + step * (2**bits - 1), np.inf), bits)
            idx = t.forward(self._x)
            if self._error(t.inverse(idx, dtype=self._dtype)) <= e:
                return t, idx
        finest = (hi - lo) / (2 * (2**MAX_BITS - 1))
        raise InputError(
            f"max_error={e:g} cannot be met over this tensor's range [{lo:g}, {hi:g}]: {MAX_BITS}-bit "
            f"indices reach about {finest:g}, and {self._dtype} steps by {2 * half:g} at its largest "
            f"values. Raise max_error, or move the values of largest magnitude out exactly: "
            f"featcodec.encode(x, max_error=...) does that itself unless outliers= or stages= is given."
        )

    def _error(self, y: Any) -> float:
        """max |y - x| in float64 (``y`` decoded in x's dtype and framework)."""
        if self._native is not None:
            from .. import _core

            yn = y.detach().cpu().numpy() if is_torch(y) else y
            return float(_core.max_abs_diff(np.ascontiguousarray(yn, self._native.dtype).reshape(-1),
                                            self._native.reshape(-1)))
        d = as_float64(y)
        d -= self._ref
        return max(float(d.max()), -float(d.min()))


def _mid_tread_low(lo: float, hi: float, centre: float, step: float, k: int) -> float:
    """The lowest of ``k`` levels ``step`` apart that cover ``[lo, hi]``, placed so that a
    level falls on ``centre`` when the slack allows, else as near it as the slack lets."""
    floor = hi - step * (k - 1)  # the lowest start that still reaches hi (<= lo)
    on_centre = centre - step * math.ceil((centre - lo) / step)  # in (lo - step, lo]
    if on_centre >= floor:
        return on_centre
    # not enough slack: of the two extreme starts, the one with a level nearer the centre
    off = [abs((centre - s) - step * round((centre - s) / step)) for s in (floor, lo)]
    return floor if off[0] < off[1] else lo


def _f32(v: float, toward: float) -> float:
    """``v`` as a float32 number, rounded toward ``toward`` when it is not one."""
    r = np.float32(v)
    if (toward < 0 and float(r) > v) or (toward > 0 and float(r) < v):
        r = np.nextafter(r, np.float32(toward))
    return float(r)


#: an error bound ``e`` is kept with uniform steps of ``2 * e / STEP_MARGIN`` (strictly under
#: ``2 e``, so that rounding the step does not reach the bound)
STEP_MARGIN = 1 + 2.0**-12


def bound_targets(e: float, half: float, halvings: int) -> list[float]:
    """The bounds to aim at, in turn, for a promise of ``e`` on values whose dtype is
    ``half`` (:func:`half_spacing`) apart at their largest: rounding the levels and the
    decoded values to the dtype can push the error past the bound by about a step of it,
    so ``e`` itself, then with room for one, two and four half steps, then ``e`` halved
    ``halvings`` times; the positive ones only."""
    out = [e, e - half, e - 2 * half, e - 4 * half] + [e / 2**k for k in range(1, halvings + 1)]
    return [t for t in out if t > 0]


def half_spacing(m: Any, dtype: str) -> Any:
    """Half the gap between neighbouring numbers of ``dtype`` at magnitude ``m`` (a float,
    or a float64 array of them element by element)."""
    if isinstance(m, np.ndarray):
        if dtype == "bfloat16":
            with np.errstate(divide="ignore"):
                return np.where(m > 0, np.exp2(np.floor(np.log2(np.maximum(m, 1e-300))) - 8), 0.0)
        return np.spacing(m.astype(dtype)).astype(np.float64) / 2
    if dtype == "bfloat16":
        return 2.0 ** (math.floor(math.log2(m)) - 8) if m > 0 else 0.0
    return float(np.spacing(getattr(np, dtype)(m))) / 2


def as_float64(a: Any) -> np.ndarray:
    """A float64 numpy copy of a float tensor or array (bfloat16 included)."""
    if is_torch(a):
        return a.detach().to("cpu", torch.float64).numpy()
    return np.asarray(a, np.float64)
