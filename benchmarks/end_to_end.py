"""End-to-end throughput and rate of the "index" codec on real features, beside zstd and zfp.

    PYTHONPATH=$PWD python benchmarks/end_to_end.py [--repeat 5] [--threads N] [--markdown]

For each family, its largest feature (tests/data/features/<family>__<tap>.npy or the
/work/corpus test split), on the same float32 tensor:

- featcodec index, bits=8 (transform fitted on x inside encode, and a pre-fitted transform),
- zstd level 3 on the raw float32 bytes (lossless),
- zstd level 3 on uniform int8 indices over [min, max] (the CAUFC value alignment),
- zfpy fixed accuracy, with the largest tolerance (searched in steps of sqrt 2 from
  featcodec's RMS error) whose MSE is at most featcodec's 8-bit MSE.

Throughput is MB/s of float32 input (4 bytes per value), best of --repeat runs (wall clock,
or with --threads 1 --cpu-time the calling thread's CPU time).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402
from peers import zfp_array, zfp_tolerance  # noqa: E402


def find_features() -> dict[str, Path]:
    """Per family, the largest feature available: committed fixtures, else the corpus test split."""
    cands: list[tuple[str, int, Path]] = []
    for p in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / "*.npy"))):
        a = np.load(p, mmap_mode="r")
        cands.append((Path(p).name.split("__")[0], a.size, Path(p)))
    man = Path("/work/corpus/manifest.json")
    if man.exists():
        for e in json.loads(man.read_text()):
            if e["split"] == "test":
                cands.append((e["family"], int(np.prod(e["shape"])), Path("/work/corpus") / e["path"]))
    out: dict[str, tuple[int, Path]] = {}
    for fam, size, path in cands:
        if fam not in out or size > out[fam][0]:
            out[fam] = (size, path)
    return {fam: path for fam, (_, path) in sorted(out.items())}


CLOCK = time.perf_counter  # --cpu-time: time.thread_time


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = CLOCK()
        res = fn()
        best = min(best, CLOCK() - t0)
    return best, res


def layout_for(family: str, x: np.ndarray) -> str:
    return "mosaic" if x.ndim == 4 else "auto"


def run(repeat: int) -> list[dict]:
    import zfpy
    import zstandard

    rows = []
    for fam, path in find_features().items():
        x = np.ascontiguousarray(np.load(path).astype(np.float32))
        n = x.size
        mb = 4 * n / 1e6
        layout = layout_for(fam, x)

        def rec(method, t_enc, t_dec, nbytes, y):
            rows.append({
                "family": fam, "file": path.name, "shape": list(x.shape), "method": method,
                "enc_MBps": mb / t_enc, "dec_MBps": mb / t_dec,
                "bpv": 8 * nbytes / n, "mse": float(np.mean((y.astype(np.float64) - x) ** 2)),
            })

        te, blob = best_time(lambda: featcodec.encode(x, bits=8, layout=layout), repeat)
        td, y = best_time(lambda: featcodec.decode(blob), repeat)
        rec("featcodec index b8 (fit in encode)", te, td, len(blob), y)
        ours_mse = float(np.mean((y.astype(np.float64) - x) ** 2))

        t = featcodec.fit_transform(x, bits=8)
        te, blob = best_time(lambda: featcodec.encode(x, transform=t, layout=layout), repeat)
        td, y = best_time(lambda: featcodec.decode(blob), repeat)
        rec("featcodec index b8 (given transform)", te, td, len(blob), y)

        blob4 = featcodec.encode(x, bits=4, layout=layout)
        td, y = best_time(lambda: featcodec.decode(blob4), repeat)
        te, _ = best_time(lambda: featcodec.encode(x, bits=4, layout=layout), repeat)
        rec("featcodec index b4 (fit in encode)", te, td, len(blob4), y)

        cz, dz = zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()
        te, z = best_time(lambda: cz.compress(x.tobytes()), repeat)
        td, raw = best_time(lambda: dz.decompress(z), repeat)
        rec("zstd-3 raw float32", te, td, len(z), np.frombuffer(raw, np.float32).reshape(x.shape))

        def enc_u8():
            lo, hi = float(x.min()), float(x.max())
            q = np.clip(np.rint((x - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
            return lo, hi, cz.compress(q.tobytes())

        def dec_u8(p):
            lo, hi, zz = p
            q = np.frombuffer(dz.decompress(zz), np.uint8).reshape(x.shape)
            return (q.astype(np.float32) * np.float32((hi - lo) / 255) + np.float32(lo))

        te, p = best_time(enc_u8, repeat)
        td, y = best_time(lambda: dec_u8(p), repeat)
        rec("zstd-3 uniform int8", te, td, len(p[2]) + 8, y)

        # zfp works on <= 4-D blocks of 4 per axis: drop unit axes, merge leading ones into
        # 3-D, and pick the largest tolerance (max abs error) whose MSE is <= ours.
        xz = zfp_array(x)
        tol = zfp_tolerance(x, ours_mse)
        te, zf = best_time(lambda: zfpy.compress_numpy(xz, tolerance=tol), repeat)
        td, y = best_time(lambda: zfpy.decompress_numpy(zf), repeat)
        rec(f"zfpy accuracy tol={tol:.3g}", te, td, len(zf), y.reshape(x.shape))

        # the same promise as zfp's (every value within tol), no transform to fit
        te, blob = best_time(lambda: featcodec.encode(x, max_error=tol, layout=layout), repeat)
        td, y = best_time(lambda: featcodec.decode(blob), repeat)
        rec(f"featcodec max_error={tol:.3g}", te, td, len(blob), y)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the calling thread's CPU time (with --threads 1: every method then runs "
                         "on that thread, and other processes on the machine do not count)")
    a = ap.parse_args()
    if a.cpu_time:
        if a.threads != 1:
            ap.error("--cpu-time needs --threads 1 (other threads' work would not be counted)")
        global CLOCK
        CLOCK = time.thread_time
    if a.threads:
        featcodec.set_num_threads(a.threads)
    rows = run(a.repeat)
    if a.markdown:
        print("| family | shape | method | encode MB/s | decode MB/s | bits/value | MSE |")
        print("|---|---|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['family']} | {tuple(r['shape'])} | {r['method']} | {r['enc_MBps']:.0f} | "
                  f"{r['dec_MBps']:.0f} | {r['bpv']:.3f} | {r['mse']:.3g} |")
    else:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
