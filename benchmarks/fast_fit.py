"""The fast fit (what ``featcodec.encode`` fits per call) against the exact fit, on the
same tensors: MSE after the inverse transform, whole-stream bytes and fit time.

    PYTHONPATH=$PWD python benchmarks/fast_fit.py [--bits 2,4,6,8] [--repeat 3] [--markdown] [--slices]

Tensors: every real feature under tests/data/features (MobileNetV2, SmolLM2, the TAEF2
latent, the ViT) and seeded synthetic ones heavier-tailed than any of them (Student-t
with 2 degrees of freedom, a few channels scaled 60x, a sink token of 2e4; 4M values with a
dozen massive ones, which the fast fit summarises; and four isolated massive values far
apart). For each
tensor and bits: ``fit_transform(x, bits, method="exact")`` and ``method="fast"``, each
coded by ``featcodec.encode(x, transform=t)``; ratios are fast / exact (below 1: the fast
fit is better). Fit time is the calling thread's CPU time, best of ``--repeat``.
``--slices``: instead, 2-16 tokens or channels of each real feature (:func:`slices`).
``--corpus DIR --family F``: instead, the first ``--n`` test-split features of family F's
first tap in a feature corpus (docs/corpus.md) with more than ``--min-values`` values.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402


def tensors() -> dict[str, np.ndarray]:
    out = {Path(p).stem: np.load(p).astype(np.float32)
           for p in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / "*.npy")))}
    rng = np.random.default_rng(2026)
    t2 = rng.standard_t(2, size=(1, 128, 384)).astype(np.float32)
    out["synthetic__student_t2"] = t2
    hot = rng.standard_t(3, size=(1, 128, 384)).astype(np.float32)
    hot[..., rng.choice(384, 4, replace=False)] *= 60
    hot[0, 0, :8] = 2e4  # a sink token's massive activations
    out["synthetic__t3_hot_channels_sink"] = hot
    # 4M values: above lloydmax.FAST_SAMPLE, so the fast fit sees a weighted bulk sample
    # and the exact tails; a dozen massive values scattered through it
    big = rng.standard_t(3, size=(16, 512, 512)).astype(np.float32)
    big[..., rng.choice(512, 4, replace=False)] *= 50
    big.reshape(-1)[rng.choice(big.size, 12, replace=False)] = rng.uniform(1e3, 2e4, 12)
    out["synthetic__t3_4M_hot_channels_massive"] = big
    # a few massive values far apart above the bulk (an LLM hidden state after per-channel
    # scales looks like this): the atoms must not merge two of them (its own generator, so
    # the tensors above stay those of earlier runs)
    rng = np.random.default_rng(20261207)
    iso = rng.standard_t(3, size=(1, 107, 576)).astype(np.float32)
    iso.reshape(-1)[rng.choice(iso.size, 4, replace=False)] = [35.2, 49.3, 110.0, 205.0]
    out["synthetic__t3_isolated_tail_values"] = iso
    return out


def slices() -> dict[str, np.ndarray]:
    """A few tokens or channels of each real feature (axis 1 of its first item: 2, 4, 8 and 16
    of them at eight offsets): the small tensors split inference sends, 0.5-6K values, where
    the compander's atoms hold two or three values each."""
    out = {}
    for p in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / "*.npy"))):
        x = np.load(p).astype(np.float32)[0]
        for w in (2, 4, 8, 16):
            for o in range(0, x.shape[0] - w + 1, max(1, (x.shape[0] - w) // 7)):
                part = np.ascontiguousarray(x[o : o + w])
                if np.unique(part).size > 256:  # fewer distinct values: both fits reproduce them
                    out[f"{Path(p).stem}[{o}:{o + w}]"] = part
    return out


def corpus_tensors(corpus: Path, family: str, n: int, min_values: int) -> dict[str, np.ndarray]:
    """The first ``n`` test-split features of ``family``'s first tap in a corpus with more
    than ``min_values`` values."""
    from encode_speed import corpus_paths

    out = {}
    for p in corpus_paths(corpus, family, "test")[:n]:
        x = np.load(p).astype(np.float32)
        if x.size > min_values:
            out[p.stem] = x
    return out


def best_time(fn, repeat: int):
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.thread_time()
        res = fn()
        best = min(best, time.thread_time() - t0)
    return best, res


def run(bits_list: list[int], repeat: int, inputs: dict[str, np.ndarray]) -> list[dict]:
    featcodec.set_num_threads(1)
    rows = []
    for name, x in inputs.items():
        for bits in bits_list:
            r = {"tensor": name, "shape": list(x.shape), "bits": bits}
            for method in ("exact", "fast"):
                sec, t = best_time(lambda: featcodec.fit_transform(x, bits=bits, method=method), repeat)
                blob = featcodec.encode(x, transform=t)
                y = featcodec.decode(blob)
                r[method] = {"fit_ms": 1e3 * sec, "bytes": len(blob),
                             "mse": float(np.mean((y.astype(np.float64) - x) ** 2))}
            r["mse_ratio"] = r["fast"]["mse"] / max(r["exact"]["mse"], 1e-300)
            r["bytes_ratio"] = r["fast"]["bytes"] / r["exact"]["bytes"]
            r["speedup"] = r["exact"]["fit_ms"] / r["fast"]["fit_ms"]
            rows.append(r)
            print(f"{name:34s} b{bits}  MSE x{r['mse_ratio']:.4f}  bytes x{r['bytes_ratio']:.4f}  "
                  f"fit {r['exact']['fit_ms']:.2f} -> {r['fast']['fit_ms']:.2f} ms", flush=True)
    return rows


def summary(rows: list[dict]) -> str:
    lines = ["| bits | tensors | MSE fast/exact: geomean (worst) | MSE over 1.01 | bytes fast/exact: geomean (worst) | fit speed-up: geomean (least) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for b in sorted({r["bits"] for r in rows}):
        rs = [r for r in rows if r["bits"] == b]
        g = lambda k: float(np.exp(np.mean([np.log(r[k]) for r in rs])))  # noqa: E731
        lines.append(f"| {b} | {len(rs)} | {g('mse_ratio'):.4f} ({max(r['mse_ratio'] for r in rs):.4f}) | "
                     f"{sum(r['mse_ratio'] > 1.01 for r in rs)} | "
                     f"{g('bytes_ratio'):.4f} ({max(r['bytes_ratio'] for r in rs):.4f}) | "
                     f"{g('speedup'):.1f}x ({min(r['speedup'] for r in rs):.1f}x) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", default="2,4,6,8", help="comma-separated bits (default 2,4,6,8)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats, best taken (default 3)")
    ap.add_argument("--markdown", action="store_true", help="print the summary table as markdown")
    ap.add_argument("--slices", action="store_true",
                    help="a few tokens or channels of each real feature instead (small tensors)")
    ap.add_argument("--corpus", type=Path, help="a feature corpus (docs/corpus.md): its test split instead")
    ap.add_argument("--family", default="llm", help="with --corpus: the family (default llm)")
    ap.add_argument("--n", type=int, default=48, help="with --corpus: the first n test inputs (default 48)")
    ap.add_argument("--min-values", type=int, default=0, help="with --corpus: only those with more values")
    a = ap.parse_args()
    inputs = (corpus_tensors(a.corpus, a.family, a.n, a.min_values) if a.corpus else
              slices() if a.slices else tensors())
    rows = run([int(b) for b in a.bits.split(",")], a.repeat, inputs)
    print(summary(rows))


if __name__ == "__main__":
    main()
