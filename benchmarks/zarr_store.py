"""Feature data sets stored in Zarr v3 through featcodec: size on disk and error.

For each feature set (one tap of the corpus test split, all its items stacked in one Zarr
array, one chunk per item), write it with

* Zarr's default (lossless ``bytes`` + ``zstd``), the baseline,
* featcodec with a transform fitted on the corpus TRAIN split and stored by id (4, 6, 8 bits),
* featcodec with ``transform="auto"`` (fitted per chunk, levels in every chunk, 8 bits),

read it back, and report bytes on disk, ratio to raw float32, bits per value, MSE and PSNR
(peak = value range of the data set).

Usage:
    python benchmarks/zarr_store.py [--corpus /work/corpus] [--max-items 24]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

import featcodec
from featcodec.integrations.zarr_codec import FeatcodecZarrCodec

SETS = [("cnn", "features13"), ("cnn", "features18"), ("vit", "layer9"), ("latent", "latent256")]


def load(corpus: Path, family: str, tap: str, split: str, limit: int) -> list[np.ndarray]:
    man = json.loads((corpus / "manifest.json").read_text())
    rows = [r for r in man if r["family"] == family and r["tap"] == tap and r["split"] == split]
    rows.sort(key=lambda r: r["input_id"])
    return [np.load(corpus / r["path"]) for r in rows[:limit]]


def stored_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name != "zarr.json")


def write_read(x: np.ndarray, path: Path, **kw) -> tuple[np.ndarray, int, float]:
    t0 = time.perf_counter()
    z = zarr.create_array(store=str(path), shape=x.shape, chunks=(1,) + x.shape[1:], dtype="float32", **kw)
    z[:] = x
    y = zarr.open_array(str(path), mode="r")[:]
    return y, stored_bytes(path), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--max-items", type=int, default=24)
    ap.add_argument("--train-items", type=int, default=16)
    args = ap.parse_args()
    corpus = Path(args.corpus)
    print("| feature set | items x shape | storage | bytes on disk | ratio | bits/value | MSE | PSNR dB | write+read s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for family, tap in SETS:
            test = load(corpus, family, tap, "test", args.max_items)
            train = load(corpus, family, tap, "train", args.train_items)
            if not test or not train:
                print(f"| {family}/{tap} | (not in the corpus) | | | | | | | |")
                continue
            x = np.stack([a.reshape(a.shape[1:]) if a.shape[0] == 1 else a for a in test]).astype(np.float32)
            samples = np.concatenate([a.ravel() for a in train])
            peak = float(x.max() - x.min())
            configs = [("zarr default (zstd, lossless)", {})]
            for bits in (4, 6, 8):
                t = featcodec.fit_transform(samples, bits=bits)
                configs.append((f"featcodec {bits}-bit, train-fitted transform by id",
                                {"serializer": FeatcodecZarrCodec(transform=t, embed_transform=False),
                                 "compressors": None}))
            configs.append(("featcodec 8-bit, auto (fitted per chunk)",
                            {"serializer": FeatcodecZarrCodec(bits=8), "compressors": None}))
            for i, (name, kw) in enumerate(configs):
                y, nbytes, secs = write_read(x, Path(tmp) / f"{family}_{tap}_{i}.zarr", **kw)
                mse = float(np.mean((x.astype(np.float64) - y) ** 2))
                psnr = float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)
                shape = "x".join(map(str, x.shape[1:]))
                print(f"| {family}/{tap} | {x.shape[0]} x {shape} | {name} | {nbytes:,} | "
                      f"{x.nbytes / nbytes:.2f} | {8 * nbytes / x.size:.3f} | {mse:.3e} | {psnr:.2f} | {secs:.2f} |")


if __name__ == "__main__":
    main()
