"""Padding planes to a multiple of 16 (featcodec) against 64 (what CompressAI's hyperprior
needs): rate and feature-domain PSNR of the shipped ``hyperprior`` on the corpus test split.

Per tap: the 8-bit DT-UFC transform fitted on ``--fit-samples`` train features, the first
``--per-tap`` test tensors packed to a plane, coded by the shipped model at each quality
in ``--qualities`` with the plane edge-padded to 16 and to 64 (payload bits; the
container is the same for both). PSNR = 10 log10((max - min)^2 / MSE) per tensor.

Usage::

    PYTHONPATH=. python benchmarks/learned_padding.py --corpus /work/corpus
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import _psnr  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    import torch

    import featcodec
    from featcodec.codecs.learned.codec import _pad, load_model
    from featcodec.codecs.learned.data import TapTransform, load_manifest, tap_key

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--per-tap", type=int, default=3)
    ap.add_argument("--fit-samples", type=int, default=10)
    ap.add_argument("--qualities", type=int, nargs="+", default=[2, 5])
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    taps = defaultdict(list)
    for e in sorted(load_manifest(a.corpus), key=lambda e: (tap_key(e), str(e["input_id"]))):
        taps[tap_key(e)].append(e)
    print("| tap | plane | quality | pad 64: BPFP, PSNR | pad 16: BPFP, PSNR | rate change |")
    print("|---|---|---|---|---|---|")
    for key, es in sorted(taps.items()):
        train = [e for e in es if e["split"] == "train"][: a.fit_samples]
        test = [e for e in es if e["split"] == "test"][: a.per_tap]
        if not train or not test:
            continue
        tt = TapTransform.fit("dtufc", np.concatenate([np.load(e["abspath"]).ravel() for e in train]))
        for q in a.qualities:
            model = load_model("hyperprior", q)
            res = {16: [], 64: []}
            for e in test:
                x = np.load(e["abspath"]).astype(np.float32)
                plane, _ = featcodec.pack(x)
                h, w = plane.shape
                unit = torch.from_numpy(tt.to_unit(plane))[None, None]
                for pad in res:
                    xp = _pad(unit, pad)
                    strings = model.compress(xp)
                    x_hat = model.decompress(strings, tuple(xp.shape[-2:]))[0, 0, :h, :w].clamp(0, 1)
                    rec = tt.from_unit(x_hat.numpy())
                    mse = float(np.mean((rec - plane.astype(np.float64)) ** 2))
                    res[pad].append((8 * sum(map(len, strings)) / x.size, _psnr(x, mse)))
            (r64, p64), (r16, p16) = (np.mean(res[p], axis=0) for p in (64, 16))
            print(f"| {key} | {h}x{w} | q{q} | {r64:.3f}, {p64:.2f} | {r16:.3f}, {p16:.2f} | "
                  f"{100 * (r16 / r64 - 1):+.1f}% |", flush=True)


if __name__ == "__main__":
    main()
