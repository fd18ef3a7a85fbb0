"""Rate control across codecs: ``featcodec.encode(x, codec="auto", target_bpfp=t)``.

No single codec is best at every rate. On the real features of docs/results.md the
learned codecs win below about 1-1.5 bits per value, and the ``index`` codec at
2-8 bits wins above (it reaches 31-42 dB at 1.2-1.9 bits per value, where the learned codec
is at 25-37 dB). ``codec="auto"`` therefore encodes with each candidate at the highest
setting whose *whole stream* fits the budget, decodes each, and keeps the one with the
lowest mean squared error in the feature domain:

* ``index`` at the largest ``bits`` (1..8) that fits, with the transform fitted at those
  bits (``transform="auto"`` or ``"uniform"``), or at the given (or registered) transform's bits;
* with a fitted transform, also ``index`` on evenly spaced levels at the finest spacing
  that fits (error-bounded coding, ``encode(x, max_error=e)``, the bound found by
  bisection, the massive values moved out exactly where 16 bits cannot span the range, as
  there): entropy-coded uniform steps beat Lloyd-Max levels at high rates, and their
  spacing is not tied to a power of two;
* for a channels-first map ``(N, C, H, W)`` whose H and W 8, 4 or 2 divides, also the same
  bisection on its blockwise 2-D Walsh-Hadamard coefficients (the ``"spatial"`` stage,
  :mod:`featcodec.stages.spatial`): the bound holds on the coefficients, the choice is by
  the decoded feature's MSE like every other; on TAEF2 latents it wins at 1-2.5 bits per
  value (docs/spatial.md);
* every shipped learned codec at its highest fitting quality, on the 8-bit transform
  (with the peaks of :func:`featcodec.stages.outliers.count_for_peaks` moved out exactly
  first, and the transform fitted on the rest, as ``encode(x, codec=...)`` does).

Otherwise the value stages (``outliers``, ``rotation``, ``scales``) are not candidates unless the
caller asks for them (then every candidate runs after them): measured on the 12 real
features at 0.5, 1 and 2 bits per value (``benchmarks/auto_candidates.py``,
docs/guides/choose-codec.md), the index codec after ``outliers`` or ``rotation`` had the
lowest MSE within the rate in 1 of 36 cases, the finest ``max_error`` stream in 29.

The choice is by the feature-domain MSE each candidate's decode measures, never by the
codec's own estimate. The error-bounded learned streams (learned codec + the
``"residual"`` stage, ``encode(x, codec="elic", max_error=e)``) are not candidates: at equal
bound they were smaller than the index codec's ``max_error`` stream on one of the 12 real
features only (the diffusion latent, by 0.6-1.2% at 0.05-0.25 x std, docs/residual.md), and
finding their finest bound within the budget would cost a bisection of learned encodes,
each with a synthesis pass, several times the rest of rate control.

If nothing fits, the smallest stream is returned. The result is an ordinary stream of
the chosen codec (``featcodec.header(blob)["codec"]`` names it). It costs a few encodes
and decodes: use a fixed codec where speed matters more than the last decibel.

Example:
    >>> import numpy as np, featcodec
    >>> x = np.cumsum(np.random.default_rng(0).standard_normal((1, 32, 24, 40)), -1).astype(np.float32)
    >>> blob = featcodec.encode(x, codec="auto", target_bpfp=2.0)
    >>> 8 * len(blob) / x.size <= 2.0
    True
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from . import pipeline
from .codecs.learned.codec import learned_codecs
from ._arrays import is_torch
from .errors import InputError
from .stages import VALUE_STAGES, with_value_stages
from .stages.outliers import count_for_bound, count_for_peaks
from .stages.spatial import COEFFICIENT_BOUND, candidate_block

__all__ = ["encode_within", "candidates"]


def encode_within(x: Any, target_bpfp: float, options: dict[str, Any],
                  stages: Sequence[str] | None = None) -> bytes:
    """The lowest-MSE stream of ``x`` within ``target_bpfp`` bits per value (see module
    docstring) among :func:`candidates`; ``options`` are the stages' options of
    :func:`featcodec.encode` (``transform``, ``layout``, ``embed_transform``, ...)."""
    from .metrics import mse

    streams = list(candidates(x, target_bpfp, options, stages).values())
    budget = _budget(x, target_bpfp)
    fitting = [s for s in streams if len(s[0]) <= budget]
    if not fitting:
        return min((s for s, _ in streams), key=len)

    def error(s: tuple[bytes, Any]) -> float:
        return mse(x, pipeline.decode(s[0], {"transform": s[1]}))

    return min(fitting, key=lambda s: (error(s), len(s[0])))[0]


def candidates(x: Any, target_bpfp: float, options: dict[str, Any],
               stages: Sequence[str] | None = None) -> dict[str, tuple[bytes, Any]]:
    """The streams :func:`encode_within` chooses among, by name ("index (most bits)",
    "index max_error (finest)", "spatial + index max_error (finest)", "<learned codec>
    (highest quality)"; "index" with a given transform): (stream, the Transform it was
    made with). Every candidate is a run of the pipeline, so its stages (and their fits)
    apply to each; fits are shared between the candidates (``fit_cache``)."""
    budget = _budget(x, target_bpfp)
    transform = options.get("transform", "auto")
    fitted = isinstance(transform, str) and transform in ("auto", "uniform")  # one per bits
    shared = {**options, "bits": None, "max_error": None, "fit_cache": {}}

    def encode(codec: str = "index", codec_params: dict | None = None, **opts: Any) -> tuple[bytes, Any]:
        steps = stages
        own = {n: opts.get(n) for n in ("outliers", "spatial") if opts.get(n)}
        if own:  # error-bounded with the massive values moved out exactly, or on spatial coefficients
            steps = with_value_stages(None, own)
        blob, ctx = pipeline.encode_context(x, codec, {**shared, **opts}, codec_params, steps)
        return blob, ctx.state["transform"]

    def bounded(e: float) -> tuple[bytes, Any]:  # as encode(x, max_error=e) does
        k = count_for_bound(x, e) if options.get("outliers") is None and stages is None else 0
        return encode(transform="auto", max_error=e, **({"outliers": k} if k else {}))

    at_bits = functools.lru_cache(maxsize=None)(lambda bits: encode(bits=bits))

    out: dict[str, tuple[bytes, Any]] = {}
    if not fitted:
        out["index"] = encode()
    else:
        out["index (most bits)"] = _most_bits_within(budget, at_bits)
        finest = _finest_bound_within(x, budget, bounded)
        if finest is not None:
            out["index max_error (finest)"] = finest
        block = candidate_block(x)
        if block and stages is None and not any(options.get(n) for n in VALUE_STAGES):
            # a channels-first map or a patch grid: uniform steps on its blockwise Walsh-Hadamard coefficients
            finest = _finest_bound_within(x, budget, lambda e: encode(
                transform="auto", max_error=e, spatial=block, **{COEFFICIENT_BOUND: True}))
            if finest is not None:
                out["spatial + index max_error (finest)"] = finest
    base = at_bits(8) if fitted else out["index"]  # the 8-bit transform the learned codecs code
    if base[1].bits == 8:
        peaks = count_for_peaks(x) if options.get("outliers") is None and stages is None else 0
        for name in learned_codecs():
            if peaks:  # as encode(x, codec=name) does: the peaks exact, an 8-bit fit of the rest
                out[f"{name} (highest quality)"] = encode(name, {"target_bpfp": target_bpfp}, bits=8,
                                                          outliers=peaks, transform="auto" if fitted else base[1])
            else:
                out[f"{name} (highest quality)"] = encode(name, {"target_bpfp": target_bpfp}, transform=base[1])
    return out


def _budget(x: Any, target_bpfp: Any) -> float:
    """The bytes ``target_bpfp`` bits per value allow ``x`` (checked)."""
    if isinstance(target_bpfp, bool) or not isinstance(target_bpfp, (int, float)) or not target_bpfp > 0:
        raise InputError(f"codec='auto' needs target_bpfp, a positive number of bits per value "
                         f"(got {target_bpfp!r:.40}).")
    return target_bpfp * (x.numel() if is_torch(x) else np.size(x)) / 8


def _most_bits_within(budget: float, at_bits: Callable[[int], tuple[bytes, Any]]) -> tuple[bytes, Any]:
    """The stream of the largest ``bits`` (1..8) whose stream fits ``budget`` bytes (the rate
    grows with bits: binary search), else the 1-bit one."""
    lo, hi, best = 1, 8, None
    while lo <= hi:
        mid = (lo + hi) // 2
        s = at_bits(mid)
        if len(s[0]) <= budget:
            best, lo = s, mid + 1
        else:
            hi = mid - 1
    return best if best is not None else at_bits(1)


def _finest_bound_within(x: Any, budget: float, encode_at: Callable[[float], tuple[bytes, Any]],
                         rel_tol: float = 0.01) -> tuple[bytes, Any] | None:
    """(stream, transform) of the smallest ``max_error`` (within ``rel_tol``) whose stream
    fits ``budget`` bytes, by bisection on its logarithm (the rate falls as the bound
    grows); ``None`` if even one level over the range of ``x`` does not fit."""
    span = float(np.ptp(x.detach().cpu().double().numpy() if is_torch(x) else np.asarray(x, np.float64)))
    if span == 0:
        return None  # constant: the index codec's candidates are already exact

    def fits(e: float) -> tuple[bytes, Any] | None:
        try:
            found = encode_at(e)
        except InputError:  # below what 16-bit indices reach over the range
            return None
        return found if len(found[0]) <= budget else None

    # one level apart / below the 16-bit floor over the whole range (a few massive values
    # moved out exactly let finer bounds through)
    hi_e, lo_e = span, span / (2 * (2**16 - 1)) / 2**10
    best = fits(hi_e)
    if best is None:
        return None
    tight = fits(lo_e)
    if tight is not None:
        return tight
    while hi_e / lo_e > 1 + rel_tol:
        mid = float(np.sqrt(hi_e * lo_e))
        found = fits(mid)
        if found is None:
            lo_e = mid
        else:
            best, hi_e = found, mid
    return best
