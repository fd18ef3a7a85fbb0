"""Throughput of featcodec.transform.kernels against numpy and torch doing the same work.

Run:  PYTHONPATH=$PWD python benchmarks/kernels.py [--n 4000000] [--threads 1] [--repeat 7]

Data: n heavy-tailed float32 values (student-t, df=2, scaled by 0.5), thresholds at the
255 (or 1023) inner quantiles, i.e. a balanced 8-bit (10-bit) transform, or evenly spaced
over the range at 12 and 16 bits (uniform and error-bounded transforms). Everything runs
single-threaded by default (featcodec and torch both set to --threads). Each figure is the
median of --repeat runs, timed with the calling thread's CPU time (time.thread_time) when
--threads is 1, so that other processes on a shared machine do not distort the ratios
(--clock wall for wall-clock time; always wall-clock with more threads); MB/s counts bytes of *input* (4 per float32 value, 2 per 16-bit
value, 1 per uint8 index). Results are checked equal to the peer's before timing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from featcodec.transform import kernels
from featcodec.transform import uniform_transform


def timed(fn: Callable[[], object], repeat: int, clock: Callable[[], float]) -> float:
    fn()  # warm-up (and first-touch of output pages)
    runs = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        runs.append(clock() - t0)
    return statistics.median(runs)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = ap.parse_args()
    use_cpu = args.clock == "cpu" and args.threads == 1
    clock = time.thread_time if use_cpu else time.perf_counter
    kernels.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = (rng.standard_t(2, args.n) * 0.5).astype(np.float32)
    rows: list[tuple[str, str, float, int, float | None, int]] = []

    def row(case: str, who: str, fn: Callable[[], object], nbytes: int, ref_s: float | None = None,
            count: int = args.n) -> float:
        s = timed(fn, args.repeat, clock)
        rows.append((case, who, s, nbytes, ref_s, count))
        return s

    for T in (255, 1023):
        t = np.quantile(x, np.linspace(0, 1, T + 2)[1:-1]).astype(np.float32)
        tt = torch.from_numpy(t)
        xt = torch.from_numpy(x)
        want = np.searchsorted(t, x, side="right")
        assert np.array_equal(kernels.quantize(x, t), want)
        assert np.array_equal(torch.bucketize(xt, tt, right=True).numpy(), want)
        case = f"forward float32, {T} thr"
        ours = row(case, "featcodec", lambda: kernels.quantize(x, t), x.nbytes)
        row(case, "np.searchsorted", lambda: np.searchsorted(t, x, side="right"), x.nbytes, ours)
        row(case, "torch.bucketize", lambda: torch.bucketize(xt, tt, right=True), x.nbytes, ours)

    # evenly spaced thresholds over the range (uniform and error-bounded transforms), on
    # all values and on one SmolLM2 hidden state's worth (107 x 576)
    for bits in (12, 16):
        t = uniform_transform(float(x.min()), float(x.max()), bits).thresholds
        tt = torch.from_numpy(t)
        for xs in (x, x[:61_632]):
            xst = torch.from_numpy(xs)
            assert np.array_equal(kernels.quantize(xs, t), np.searchsorted(t, xs, side="right"))
            case = f"forward float32, uniform {bits}-bit, n={xs.size:,}"
            ours = row(case, "featcodec", lambda: kernels.quantize(xs, t), xs.nbytes, count=xs.size)
            row(case, "np.searchsorted", lambda: np.searchsorted(t, xs, side="right"), xs.nbytes, ours, xs.size)
            row(case, "torch.bucketize", lambda: torch.bucketize(xst, tt, right=True), xs.nbytes, ours, xs.size)

    t = np.quantile(x, np.linspace(0, 1, 257)[1:-1]).astype(np.float32)
    tt = torch.from_numpy(t)
    x16 = x.astype(np.float16)
    xb = bf16_bits(x)
    xbt = torch.from_numpy(xb.view(np.int16)).view(torch.bfloat16)
    x64 = x.astype(np.float64)
    assert np.array_equal(kernels.quantize(x16, t), np.searchsorted(t, x16.astype(np.float32), side="right"))
    assert np.array_equal(kernels.quantize(xb, t, bfloat16=True), torch.bucketize(xbt.float(), tt, right=True).numpy())
    case = "forward float16, 255 thr"
    ours = row(case, "featcodec", lambda: kernels.quantize(x16, t), x16.nbytes)
    row(case, "np.searchsorted (f32 cast)", lambda: np.searchsorted(t, x16.astype(np.float32), side="right"), x16.nbytes, ours)
    case = "forward bfloat16, 255 thr"
    ours = row(case, "featcodec", lambda: kernels.quantize(xb, t, bfloat16=True), xb.nbytes)
    row(case, "torch.bucketize (f32 cast)", lambda: torch.bucketize(xbt.float(), tt, right=True), xb.nbytes, ours)
    case = "forward float64, 255 thr"
    ours = row(case, "featcodec", lambda: kernels.quantize(x64, t), x64.nbytes)
    row(case, "np.searchsorted", lambda: np.searchsorted(t.astype(np.float64), x64, side="right"), x64.nbytes, ours)

    C = 512
    xc = x[: x.size // C * C].reshape(-1, C)
    tc = np.sort(np.quantile(xc[:2048], np.linspace(0, 1, 257)[1:-1], axis=0).T.astype(np.float32), axis=1)
    tct = torch.from_numpy(np.ascontiguousarray(tc))
    xct = torch.from_numpy(np.ascontiguousarray(xc.T))
    want = torch.searchsorted(tct, xct, right=True).T.numpy()  # batched: per-row boundaries
    assert np.array_equal(kernels.quantize(xc, tc, channel_axis=1), want)
    case = f"forward per-channel (C={C}, last axis)"
    ours = row(case, "featcodec", lambda: kernels.quantize(xc, tc, channel_axis=1), x.nbytes)
    row(case, "torch.searchsorted batched", lambda: torch.searchsorted(tct, xct, right=True), x.nbytes, ours)

    idx = kernels.quantize(x, t)
    levels = np.sort(rng.standard_normal(256)).astype(np.float32)
    lt, it = torch.from_numpy(levels), torch.from_numpy(idx)
    it64 = it.long()
    assert np.array_equal(kernels.dequantize(idx, levels), levels[idx])
    case = "inverse uint8 -> float32"
    ours = row(case, "featcodec", lambda: kernels.dequantize(idx, levels), idx.nbytes)
    row(case, "numpy levels[idx]", lambda: levels[idx], idx.nbytes, ours)
    row(case, "torch levels[idx]", lambda: lt[it64], idx.nbytes, ours)
    row(case, "torch (incl. long cast)", lambda: lt[it.long()], idx.nbytes, ours)
    case = "inverse uint8 -> bfloat16"
    ltb = lt.bfloat16()
    ours = row(case, "featcodec", lambda: kernels.dequantize(idx, levels, dtype="bfloat16"), idx.nbytes)
    row(case, "torch levels[idx]", lambda: ltb[it64], idx.nbytes, ours)

    what = "thread CPU time" if use_cpu else "wall-clock time"
    print(f"n = {args.n:,} values, threads = {args.threads}, median {what} of {args.repeat} runs\n")
    print(f"| {'case':38s} | {'implementation':28s} | {'ms':>8s} | {'MB/s':>8s} | {'Mval/s':>7s} | {'featcodec speed-up':>18s} |")
    print(f"|{'-' * 40}|{'-' * 30}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 20}|")
    for case, who, s, nbytes, ref_s, count in rows:
        ratio = "" if ref_s is None else f"{s / ref_s:.1f}x"
        print(f"| {case:38s} | {who:28s} | {s * 1e3:8.2f} | {nbytes / s / 1e6:8.0f} | {count / s / 1e6:7.0f} | {ratio:>18s} |")


if __name__ == "__main__":
    main()
