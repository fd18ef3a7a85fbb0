"""Transform fitting: featcodec.fit_transform against the reference implementations' fit
(scikit-learn KMeans(n_clusters=256, random_state=42) on the flattened values) on the same
data, in the same run.

Reports wall time and the mean squared error of each set of levels applied with
nearest-level thresholds (and, for the reference centres, also with the reference's
round-down assignment), plus the CAUFC uniform alignment as a baseline.

    python benchmarks/bench_fit.py                 # 1M Student-t(3) values, ~30-100 s (KMeans)
    python benchmarks/bench_fit.py --no-sklearn    # ours only
    python benchmarks/bench_fit.py --large         # also 40M values (10 DINOv2-sized features)
    python benchmarks/bench_fit.py --ablation      # also the error after each step of the fit

Timings are single-process wall clock (the median of ``--repeat`` runs for featcodec);
scikit-learn runs once, with its default threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import featcodec  # noqa: E402
from featcodec.transform import lloydmax  # noqa: E402


def heavy_tailed(n: int, seed: int = 0) -> np.ndarray:
    """Student-t with 3 degrees of freedom, float32: infinite kurtosis, isolated outliers."""
    return np.random.default_rng(seed).standard_t(3.0, n).astype(np.float32)


def mse_nearest(x: np.ndarray, levels: np.ndarray) -> float:
    lv = np.asarray(levels, np.float32)
    idx = np.searchsorted(lloydmax.midpoint_thresholds(lv), x, side="right")
    return float(np.mean((lv[idx].astype(np.float64) - x) ** 2))


def mse_round_down(x: np.ndarray, centres: np.ndarray) -> float:
    c = np.asarray(centres, np.float32)
    idx = np.clip(np.digitize(x, c) - 1, 0, len(c) - 1)
    return float(np.mean((c[idx].astype(np.float64) - x) ** 2))


def timed(fn, repeat: int):
    """(result, median wall seconds, all wall seconds, median CPU seconds of this process)."""
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return out, statistics.median(times), times, statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--large", action="store_true", help="also fit 40M values")
    ap.add_argument("--ablation", action="store_true", help="also the error of partial fits")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    x = heavy_tailed(args.n)
    K = 2**args.bits
    res: dict = {
        "data": f"Student-t(3) float32, n={args.n}, seed 0",
        "bits": args.bits,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.python_version()}",
    }
    featcodec.fit_transform(x[:10_000], bits=args.bits)  # warm-up (imports, page faults)
    t, sec, times, cpu = timed(lambda: featcodec.fit_transform(x, bits=args.bits), args.repeat)
    res["featcodec"] = {
        "seconds": sec, "all_seconds": times, "cpu_seconds": cpu, "mse": mse_nearest(x, t.levels), "id": t.id
    }
    u, usec, _, _ = timed(lambda: featcodec.fit_uniform(x, bits=args.bits), args.repeat)
    res["uniform_minmax"] = {"seconds": usec, "mse": mse_nearest(x, u.levels)}
    c5 = featcodec.fit_uniform(x, bits=args.bits, clip=(-5, 5))
    res["uniform_clip5"] = {"mse": mse_nearest(x, c5.levels)}

    if not args.no_sklearn:
        from sklearn.cluster import KMeans

        t0, c0 = time.perf_counter(), time.process_time()
        km = KMeans(n_clusters=K, random_state=42).fit(x.reshape(-1, 1).astype(np.float64))
        ksec, kcpu = time.perf_counter() - t0, time.process_time() - c0
        centres = np.sort(km.cluster_centers_.ravel()).astype(np.float32)
        res["sklearn_kmeans"] = {
            "seconds": ksec,
            "cpu_seconds": kcpu,
            "mse": mse_nearest(x, centres),
            "mse_round_down": mse_round_down(x, centres),
            "iterations": int(km.n_iter_),
        }
        res["speedup"] = ksec / sec
        res["mse_ratio_vs_sklearn"] = res["featcodec"]["mse"] / res["sklearn_kmeans"]["mse"]

    if args.ablation:  # what each step of the fit buys (same data, nearest assignment)
        pts = lloydmax.points_from_values(x[None])
        pre = lloydmax._Prefix(pts)
        W = pre.W
        q = np.searchsorted(W[1:], (np.arange(K) + 0.5) / K * W[-1], side="right")
        quantile = pts.values[q][None]
        abl = {"quantile start, no Lloyd": quantile}
        abl["quantile start + 5000 Lloyd iterations"] = lloydmax._lloyd(pre, quantile, 5000, omega=1.0)
        split = lloydmax._centroids(pre, lloydmax._split_bounds(pre, K), np.zeros((1, K)))
        abl["greedy splitting, no Lloyd"] = split
        abl["greedy splitting + Lloyd (to convergence)"] = lloydmax._lloyd(pre, split, 5000)
        abl["atoms + DP + Lloyd (fit_transform)"] = t.levels[None].astype(np.float64)
        ref = res.get("sklearn_kmeans", {}).get("mse")
        res["ablation"] = {
            name: {"mse": mse_nearest(x, lv[0]), **({"vs_sklearn": mse_nearest(x, lv[0]) / ref} if ref else {})}
            for name, lv in abl.items()
        }

    if args.large:  # 10 DINOv2-sized features: the histogram path, and the exact one
        big = heavy_tailed(40_000_000, seed=1)
        tb, bsec, _, bcpu = timed(lambda: featcodec.fit_transform(big, bits=args.bits), 1)
        res["featcodec_40M_histogram"] = {"seconds": bsec, "cpu_seconds": bcpu, "mse": mse_nearest(big, tb.levels)}
        lloydmax.EXACT_LIMIT = 1 << 40
        te, esec, _, ecpu = timed(lambda: featcodec.fit_transform(big, bits=args.bits), 1)
        res["featcodec_40M_exact"] = {"seconds": esec, "cpu_seconds": ecpu, "mse": mse_nearest(big, te.levels)}

    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
