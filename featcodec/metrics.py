"""Quality and rate measures used by the feature-coding papers.

* :func:`mse` and :func:`psnr`: reconstruction error (accumulated in float64).
* :func:`robust_scale`: a spread that a few massive values do not set (the unit of the
  error bounds in docs/fidelity.md and docs/guides/choose-codec.md).
* :func:`bpfp`: bits per feature point, the rate unit of DT-UFC / LaMoFCBench: all bits
  of all streams divided by the number of feature values.
* :func:`kl_divergence`: the Kullback-Leibler divergence between the value histograms of
  two features (DT-UFC, Sec. 3.2 and Table 1), and :func:`histogram`, the discretisation
  it uses.

Every function takes torch tensors or numpy arrays of any float dtype (bfloat16 too).

Example:
    >>> import numpy as np
    >>> from featcodec import metrics
    >>> x = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    >>> metrics.mse(x, x + 0.5)
    0.25
    >>> round(metrics.psnr(x, x + 0.5), 3)  # peak = range of x = 3
    15.563
    >>> metrics.bpfp(b"\\x00" * 3, x)  # 24 bits for 4 values
    6.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._arrays import float_view, is_torch, to_float32
from .errors import InputError

try:
    import torch
except Exception:  # pragma: no cover
    torch = None  # type: ignore[assignment]

__all__ = ["mse", "psnr", "bpfp", "robust_scale", "histogram", "kl_divergence", "kl_divergence_from_histograms"]


def _values(x: Any, name: str, allow_int: bool = False) -> np.ndarray:
    """Finite values of ``x`` as a float64 or integer numpy array."""
    if allow_int:
        if is_torch(x) and not x.dtype.is_floating_point and not x.dtype.is_complex and x.dtype != torch.bool:
            return x.detach().cpu().numpy()
        if isinstance(x, np.ndarray) and x.dtype.kind in "ui":
            return x
    a, origin = float_view(x, name)
    a = to_float32(a, "bfloat16") if origin.dtype == "bfloat16" else a
    a = a.astype(np.float64, copy=False)
    if a.size == 0:
        raise InputError(f"{name} is empty; metrics need at least one value.")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} contains NaN or Inf; metrics need finite values.")
    return a


def _pair(ref: Any, rec: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = _values(ref, "reference"), _values(rec, "reconstruction")
    if a.shape != b.shape:
        raise InputError(f"reference {a.shape} and reconstruction {b.shape} must have the same shape.")
    return a, b


def mse(reference: Any, reconstruction: Any) -> float:
    """Mean squared error, accumulated in float64.

    >>> mse(np.zeros(4, np.float32), np.full(4, 2.0, np.float32))
    4.0
    """
    a, b = _pair(reference, reconstruction)
    d = a - b
    return float(np.mean(d * d))


def psnr(reference: Any, reconstruction: Any, *, peak: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(peak**2 / MSE)``.

    ``peak`` defaults to the value range of the reference (``max - min``), the usual
    convention for features, whose values are not bounded like pixels; pass
    ``peak=1.0`` for features aligned into [0, 1]. Identical inputs give ``inf``.

    >>> psnr(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    inf
    """
    a, b = _pair(reference, reconstruction)
    if peak is None:
        peak = float(a.max() - a.min())
        if peak == 0.0:
            raise InputError("the reference is constant, so its range is 0; pass peak= explicitly.")
    elif not (isinstance(peak, (int, float, np.floating, np.integer)) and math.isfinite(peak) and peak > 0):
        raise InputError(f"peak must be a positive finite number, not {peak!r}.")
    d = a - b
    m = float(np.mean(d * d))
    if m == 0.0:
        return math.inf
    return 10.0 * math.log10(float(peak) ** 2 / m)


def robust_scale(x: Any) -> float:
    """1.4826 times the median absolute deviation of ``x`` (the standard deviation, for a
    Gaussian), a spread that outliers and massive activations do not set: a natural unit
    for ``featcodec.encode(x, max_error=...)``.

    Example:
        >>> import numpy as np
        >>> x = np.array([0.0, 1.0, 2.0, 3.0, 1e4], np.float32)  # one massive value
        >>> round(robust_scale(x), 4), round(float(np.std(x)))
        (1.4826, 3999)
    """
    a = _values(x, "x").ravel()
    return float(1.4826 * np.median(np.abs(a - np.median(a))))


def _nbytes(s: Any) -> int:
    if isinstance(s, (bytes, bytearray)):
        return len(s)
    if isinstance(s, memoryview):
        return s.nbytes
    raise InputError(f"streams must be bytes (or a list of bytes), not {type(s).__name__}.")


def bpfp(streams: Any, values: Any) -> float:
    """Bits per feature point: all bits of ``streams`` over the number of feature values.

    ``streams``: bytes, or an iterable of bytes (e.g. a learned codec's several strings),
    or an int number of bits. ``values``: the feature (tensor/array) or its number of
    values.

    >>> bpfp([b"ab", b"c"], 12)
    2.0
    """
    if isinstance(streams, (int, np.integer)) and not isinstance(streams, bool):
        if streams < 0:
            raise InputError("a number of bits must not be negative.")
        bits = int(streams)
    elif isinstance(streams, (bytes, bytearray, memoryview)):
        bits = 8 * _nbytes(streams)
    elif isinstance(streams, Iterable) and not isinstance(streams, str):
        bits = 8 * sum(_nbytes(s) for s in streams)
    else:
        raise InputError(f"streams must be bytes, a list of bytes or a bit count, not {type(streams).__name__}.")
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        n = int(values)
    elif is_torch(values):
        n = int(values.numel())
    elif isinstance(values, np.ndarray):
        n = int(values.size)
    else:
        raise InputError(f"values must be a tensor/array or a count, not {type(values).__name__}.")
    if n <= 0:
        raise InputError("the number of feature values must be positive.")
    return bits / n


def histogram(x: Any, *, bins: int = 256, range: tuple[float, float] | None = None) -> np.ndarray:
    """Normalised value histogram (probabilities summing to 1) of ``x``.

    Integer arrays (transform indices) get one bin per integer in ``[0, bins)``; float
    arrays get ``bins`` equal-width bins over ``range`` (default: min to max of ``x``), with
    values outside the range counted in the end bins.

    >>> histogram(np.array([0, 1, 1, 3], np.uint8), bins=4).tolist()
    [0.25, 0.5, 0.0, 0.25]
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise InputError(f"bins must be a positive integer, not {bins!r}.")
    a = _values(x, "x", allow_int=True)
    if a.size == 0:
        raise InputError("x is empty; a histogram needs at least one value.")
    if a.dtype.kind in "ui":
        if a.min() < 0 or a.max() >= bins:
            raise InputError(f"integer values must lie in [0, {bins}) for bins={bins}.")
        counts = np.bincount(a.ravel().astype(np.int64), minlength=bins).astype(np.float64)
    else:
        lo, hi = (float(a.min()), float(a.max())) if range is None else (float(range[0]), float(range[1]))
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            raise InputError(f"range must be finite with low <= high, not {range!r}.")
        if hi == lo:
            hi = lo + 1.0  # a constant lands in the first bin
        pos = np.floor((np.clip(a.ravel(), lo, hi) - lo) / (hi - lo) * bins)
        counts = np.bincount(np.minimum(pos.astype(np.int64), bins - 1), minlength=bins).astype(np.float64)
    return counts / counts.sum()


def kl_divergence_from_histograms(p: Any, q: Any, *, eps: float = 1e-10) -> float:
    """``KL(P || Q) = sum_i P_i ln(P_i / Q_i)`` in nats for two histograms of equal length.

    Both are normalised; ``eps`` is added to every bin (then renormalised) so that empty
    bins of ``Q`` give a large but finite divergence.

    >>> kl_divergence_from_histograms([0.5, 0.5], [0.5, 0.5])
    0.0
    """
    P = np.asarray(p, dtype=np.float64)
    Q = np.asarray(q, dtype=np.float64)
    if P.ndim != 1 or P.shape != Q.shape or P.size == 0:
        raise InputError("histograms must be 1-D of the same, non-zero length.")
    if not (np.all(np.isfinite(P)) and np.all(np.isfinite(Q))) or P.min() < 0 or Q.min() < 0:
        raise InputError("histogram counts must be finite and non-negative.")
    if P.sum() <= 0 or Q.sum() <= 0:
        raise InputError("histograms must not be all zero.")
    if not (isinstance(eps, (int, float)) and 0 <= eps < 1):
        raise InputError(f"eps must be in [0, 1), not {eps!r}.")
    P = P / P.sum()
    Q = Q / Q.sum()
    P = (P + eps) / (1.0 + eps * P.size)
    Q = (Q + eps) / (1.0 + eps * Q.size)
    nz = P > 0
    if np.any(Q[nz] == 0):
        return math.inf
    return float(max(0.0, np.sum(P[nz] * np.log(P[nz] / Q[nz]))))


def kl_divergence(
    p: Any,
    q: Any,
    *,
    bins: int = 256,
    range: tuple[float, float] | None = None,
    eps: float = 1e-10,
) -> float:
    """KL divergence (nats) between the value histograms of features ``p`` and ``q``.

    Both are binned the same way by :func:`histogram`: integer inputs (transform indices)
    one bin per index, float inputs ``bins`` bins over ``range`` (default: the union of
    both value ranges). DT-UFC's Table 1 compares features before and after the
    transform this way; ``docs/transform.md`` shows how featcodec reproduces it.

    >>> x = np.arange(8, dtype=np.uint8)
    >>> kl_divergence(x, x, bins=8)
    0.0
    """
    a = _values(p, "p", allow_int=True)
    b = _values(q, "q", allow_int=True)
    if (a.dtype.kind in "ui") != (b.dtype.kind in "ui"):
        raise InputError("p and q must both be indices (integers) or both be values (floats).")
    if range is None and a.dtype.kind == "f":
        range = (float(min(a.min(), b.min())), float(max(a.max(), b.max())))
    return kl_divergence_from_histograms(
        histogram(a, bins=bins, range=range), histogram(b, bins=bins, range=range), eps=eps
    )
