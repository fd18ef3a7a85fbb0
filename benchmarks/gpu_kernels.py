"""Device throughput of featcodec's CUDA kernels against torch doing the same work on the GPU.

Run (needs a CUDA GPU):  PYTHONPATH=$PWD python benchmarks/gpu_kernels.py [--n 67108864]

Data: n heavy-tailed float32 values (student-t df=2 x 0.5) on the device, thresholds at the
255 inner quantiles. Peers: torch.bucketize(x, thresholds, right=True) (== searchsorted
side="right"), and for the inverse levels[idx.long()] and torch.take. Times from CUDA events,
median of --repeat runs; each call of ours includes its uploads of the thresholds/levels and
the 8-byte error-flag read (a synchronisation), as a user would see it. Results are checked
equal to the peer's before timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Callable

import numpy as np
import torch

from featcodec.transform import cuda, kernels


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(repeat):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        runs.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 26)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    if not cuda.available():
        print("No CUDA device (or featcodec was built without its CUDA kernels): nothing measured.")
        return 0
    rng = np.random.default_rng(0)
    xh = (rng.standard_t(2, args.n) * 0.5).astype(np.float32)
    t = np.quantile(xh[: 1 << 22], np.linspace(0, 1, 257)[1:-1]).astype(np.float32)
    x = torch.from_numpy(xh).cuda()
    tt = torch.from_numpy(t).cuda()
    levels = np.sort(rng.standard_normal(256)).astype(np.float32)
    lt = torch.from_numpy(levels).cuda()
    rows = []

    def row(case: str, who: str, fn: Callable[[], object], nbytes: int, ref: float | None = None) -> float:
        s = timed(fn, args.repeat)
        rows.append((case, who, s, nbytes, ref))
        return s

    idx = kernels.quantize(x, t)
    assert torch.equal(idx.long(), torch.bucketize(x, tt, right=True))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xd = x.to(dtype)
        case = f"forward {str(dtype)[6:]}, 255 thr"
        ours = row(case, "featcodec", lambda: kernels.quantize(xd, t), xd.nbytes)
        row(case, "torch.bucketize", lambda: torch.bucketize(xd, tt.to(dtype), right=True), xd.nbytes, ours)
    idx_long = idx.long()
    assert torch.equal(kernels.dequantize(idx, levels), lt[idx_long])
    case = "inverse uint8 -> float32"
    ours = row(case, "featcodec", lambda: kernels.dequantize(idx, levels), idx.nbytes)
    row(case, "levels[idx.long()]", lambda: lt[idx.long()], idx.nbytes, ours)
    row(case, "torch.take (int64 idx ready)", lambda: torch.take(lt, idx_long), idx.nbytes, ours)

    print(f"{torch.cuda.get_device_name()}  n = {args.n:,}  median of {args.repeat}\n")
    print(f"| {'case':28s} | {'implementation':30s} | {'ms':>8s} | {'GB/s in':>8s} | {'featcodec speed-up':>18s} |")
    print(f"|{'-' * 30}|{'-' * 32}|{'-' * 10}|{'-' * 10}|{'-' * 20}|")
    for case, who, s, nbytes, ref in rows:
        ratio = "" if ref is None else f"{s / ref:.2f}x"
        print(f"| {case:28s} | {who:30s} | {s * 1e3:8.3f} | {nbytes / s / 1e9:8.1f} | {ratio:>18s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
