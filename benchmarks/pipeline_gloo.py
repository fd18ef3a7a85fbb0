"""A real model split into two pipeline stages on two processes (gloo, 127.0.0.1), the
activation crossing with ``featcodec.integrations.distributed``: bytes sent against the raw tensor,
and end-to-end agreement with the uncut model.

Stage 0 (rank 0) runs the head and ``isend``s each activation; stage 1 (rank 1)
``irecv``s, runs the tail, and compares with the uncut model it also holds. Both stages
fit the transform on the same calibration images, so both hold the same transform and
only its id travels.

Models: TAEF2 (cut at the latent; agreement = image PSNR vs uncut) and, if installed,
MobileNetV2 (cut after features.13; agreement = top-1 equal to the uncut model's).

Usage:
    python benchmarks/pipeline_gloo.py [--images 8] [--bits 6]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from featcodec import distributed as fcd
from featcodec.integrations.split import SplitModel


def _models() -> list[tuple[str, nn.Module, str, list, list, str]]:
    out = []
    from featcodec.features.latent import TAEF2

    m = TAEF2.load()
    out.append(("TAEF2 256x256", nn.Sequential(m.encoder, m.decoder).eval(), "0",
                [TAEF2.image_tensor(1000 + i, 256) for i in range(2)],
                lambda n: [TAEF2.image_tensor(i, 256) for i in range(n)], "psnr"))
    try:
        from featcodec.features.cnn import MobileNetV2, imagenet_tensor

        net = MobileNetV2.load().net
        out.append(("MobileNetV2 224x224", net, "features.13",
                    [imagenet_tensor(1000 + i, 224) for i in range(2)],
                    lambda n: [imagenet_tensor(i, 224) for i in range(n)], "top1"))
    except ImportError:
        pass
    return out


def stage(rank: int, port: int, n_images: int, bits: int, out_path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=300))
    results = []
    for name, model, at, calib, images, metric in _models():
        split = SplitModel(model, at, bits=bits)
        split.calibrate(calib)
        xs = images(n_images)
        with torch.no_grad():
            if rank == 0:
                handles, raw = [], 0
                for x in xs:
                    act = split.activation(x)
                    raw += fcd.raw_nbytes(act)
                    handles.append(fcd.isend(act, 1, transform=split.transform, embed_transform=False))
                sent = sum(h.wait() for h in handles)
                results.append({"model": name, "cut": at, "raw": raw, "sent": sent, "tid": split.transform.id})
            else:
                handles = [fcd.irecv(0, transform=split.transform) for _ in xs]
                scores = []
                for x, h in zip(xs, handles):
                    y = split.tail(h.wait())
                    r = model(x)
                    if metric == "psnr":
                        mse = float(((y - r) ** 2).mean())
                        scores.append(10 * math.log10(1.0 / mse) if mse > 0 else math.inf)
                    else:
                        scores.append(int(y.argmax() == r.argmax()))
                results.append({"model": name, "metric": metric, "scores": scores, "tid": split.transform.id})
        dist.barrier()
    dist.destroy_process_group()
    with open(out_path, "w") as f:
        json.dump(results, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rank is not None:
        stage(args.rank, args.port, args.images, args.bits, args.out)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        outs = [os.path.join(tmp, f"r{r}.json") for r in range(2)]
        procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), "--port", str(port),
                                   "--out", outs[r], "--images", str(args.images), "--bits", str(args.bits)])
                 for r in range(2)]
        codes = [p.wait(timeout=1800) for p in procs]
        if codes != [0, 0]:
            sys.exit(f"a stage failed: exit codes {codes}")
        r0, r1 = (json.load(open(o)) for o in outs)
    print("| model | cut | bits | images | raw bytes | bytes sent | saved | agreement with uncut | same transform id on both ranks |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for a, b in zip(r0, r1):
        if b["metric"] == "psnr":
            agree = f"image PSNR mean {sum(b['scores']) / len(b['scores']):.1f} dB, min {min(b['scores']):.1f} dB"
        else:
            agree = f"top-1 {sum(b['scores'])}/{len(b['scores'])}"
        print(f"| {a['model']} | {a['cut']} | {args.bits} | {args.images} | {a['raw']:,} | {a['sent']:,} | "
              f"{100 * (1 - a['sent'] / a['raw']):.1f}% ({a['raw'] / a['sent']:.2f}x) | {agree} | {a['tid'] == b['tid']} |")


if __name__ == "__main__":
    main()
