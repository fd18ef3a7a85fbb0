"""A KIVI-style KV-cache baseline against featcodec on the same SmolLM2 keys and values, in
the feature domain: bits per value at equal MSE.

    PYTHONPATH=$PWD python benchmarks/kivi_baseline.py [--markdown]

KIVI (Liu et al., 2024) quantizes keys per channel and values per token, asymmetric uniform
with a scale and a zero point per group of ``G`` values: keys in groups of ``G`` tokens of
one channel, values in groups of ``G`` channels of one token. Here, at 2, 3 and 4 bits and
``G`` in 32, 64 and 128 (capped at the axis), the indices (one byte each) are compressed
with zstd-19 and the group parameters are float16 (4 bytes a group, counted in the rate);
the values come back as ``zero + scale * q`` in float32.

featcodec on the same tensors (whole streams): the default ``encode(x, bits=b)`` at 1-8
bits, error-bounded ``encode(x, max_error=e)`` at a ladder of bounds, and KIVI's own rule
inside featcodec: ``scales="channel"`` for keys and ``scales="token"`` for values (the
tensor viewed as tokens x (heads * head_dim)) at 1-8 bits. For each KIVI point the bits
featcodec's best curve needs for the same MSE (log-MSE interpolated linearly in bits per
value) and the ratio; below 1: featcodec needs fewer bits.

Tensors: tests/data/features/llm__key15.npy and llm__value15.npy (SmolLM2-135M layer 15,
3 KV heads x 107 tokens x 64). The task metric on these tensors (next-token agreement with
the cache replaced) is not measured here: the task harness (benchmarks/task_fidelity.py)
taps the hidden state, not the cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402
from featcodec.metrics import mse  # noqa: E402


def kivi_quantize(x: np.ndarray, bits: int, group: int, per: str) -> tuple[int, int, np.ndarray]:
    """KIVI-style quantization of ``x`` (..., tokens, channels): ``(payload_bytes,
    param_bytes, reconstruction)``.

    ``per="channel"`` (KIVI's keys) groups ``group`` tokens of one channel, ``per="token"``
    (KIVI's values) groups ``group`` channels of one token; ``group`` is capped at that axis
    and its last group is padded with copies of the axis's last value (coded, counted, then
    dropped). Each group: asymmetric uniform ``bits``-bit levels from its minimum to its
    maximum, zero point and scale as float16 (``param_bytes`` = 4 a group). The indices,
    one byte each, are compressed with zstd-19 (``payload_bytes``, the whole zstd frame).
    The reconstruction ``zero + scale * q`` is float32. Leading axes (a KV cache's batch and
    heads) are independent matrices.
    """
    import zstandard

    if per not in ("channel", "token"):
        raise ValueError(f"per must be 'channel' or 'token', got {per!r}")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be 1..8, got {bits}")
    a = np.asarray(x, np.float64)
    rows = np.swapaxes(a, -1, -2) if per == "channel" else a  # groups along the last axis
    n = rows.shape[-1]
    g = min(group, n)
    pad = (-n) % g
    padded = np.concatenate([rows, np.repeat(rows[..., -1:], pad, axis=-1)], axis=-1) if pad else rows
    grp = padded.reshape(*padded.shape[:-1], -1, g)
    lo = grp.min(axis=-1, keepdims=True).astype(np.float16).astype(np.float64)
    hi = grp.max(axis=-1, keepdims=True)
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).astype(np.float16).astype(np.float64)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.rint((grp - lo) / safe), 0, levels).astype(np.uint8)
    y = (lo + safe * q).reshape(padded.shape)[..., :n]
    y = np.swapaxes(y, -1, -2) if per == "channel" else y
    payload = zstandard.ZstdCompressor(level=19).compress(q.tobytes())
    return len(payload), 4 * lo.size, np.ascontiguousarray(y, np.float32)


def kivi(x: np.ndarray, bits: int, group: int, per: str) -> tuple[float, np.ndarray]:
    """(bits per value, reconstruction) of :func:`kivi_quantize` on ``x`` (1, H, T, D)."""
    payload, params, y = kivi_quantize(x, bits, group, per)
    return 8 * (payload + params) / x.size, y


def featcodec_curves(x: np.ndarray, per: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(bits per value, MSE) curves of featcodec settings on ``x`` (1, H, T, D)."""
    H, T, D = x.shape[1:]
    tokens = np.ascontiguousarray(x[0].transpose(1, 0, 2).reshape(1, T, H * D))  # (1, T, H * D)

    def curve(encode, args, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = []
        for arg in args:
            try:
                blob = encode(view, arg)
            except featcodec.InputError:  # e.g. a bound 16-bit levels cannot reach
                continue
            pts.append((8 * len(blob) / x.size, mse(view, featcodec.decode(blob))))
        pts.sort()
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    robust = float(np.median(np.abs(x - np.median(x)))) * 1.4826
    return {
        "index, bits 1-8": curve(lambda v, b: featcodec.encode(v, bits=b), range(1, 9), x),
        "max_error": curve(lambda v, k: featcodec.encode(v, max_error=robust * 2.0 ** (-k / 2)), range(-4, 13), x),
        f"scales={per}, bits 1-8": curve(lambda v, b: featcodec.encode(v, bits=b, scales=per), range(1, 9), tokens),
    }


def bits_at(curve: tuple[np.ndarray, np.ndarray], target: float) -> float:
    """Bits per value at which ``curve`` reaches MSE ``target`` (log-MSE linear in bits);
    NaN outside its range."""
    r, m = curve
    order = np.argsort(-m)  # MSE falls as bits grow
    lm, rr = np.log(m[order]), r[order]
    t = np.log(target)
    if not lm.min() <= t <= lm.max():
        return float("nan")
    return float(np.interp(-t, -lm, rr))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = []
    for name, per in (("llm__key15", "channel"), ("llm__value15", "token")):
        x = np.load(ROOT / "tests" / "data" / "features" / f"{name}.npy").astype(np.float32)
        curves = featcodec_curves(x, per)
        for bits in (2, 3, 4):
            for group in (32, 64, 128):
                bpv, y = kivi(x, bits, group, per)
                m = mse(x, y)
                ours = {k: bits_at(c, m) for k, c in curves.items()}
                best = min((v, k) for k, v in ours.items() if v == v) if any(v == v for v in ours.values()) else (float("nan"), "-")
                rows.append((name, per, bits, group, bpv, m, best[1], best[0]))
                print(f"{name} KIVI per-{per} {bits} bits G={group}: {bpv:.3f} bpv MSE {m:.4g}; featcodec "
                      f"{best[1]} {best[0]:.3f} bpv (x{best[0] / bpv:.2f})", flush=True)
    if a.markdown:
        print("\n| tensor | KIVI | bits | group | KIVI bits/value | MSE | featcodec at that MSE | bits/value | ratio |")
        print("|---|---|---:|---:|---:|---:|---|---:|---:|")
        for name, per, bits, group, bpv, m, k, v in rows:
            print(f"| {name} | per {per} | {bits} | {group} | {bpv:.3f} | {m:.4g} | {k} | {v:.3f} | {v / bpv:.2f}x |")


if __name__ == "__main__":
    main()
