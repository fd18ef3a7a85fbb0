"""Does the 16x hyperprior's error floor come from its downsampling? (issue 15,
docs/learned.md): train the shipped architecture (16x, ``down=4``) and the same network
with 8x downsampling (``down=3``: M = 192 latents per 8 x 8 values instead of per 16 x 16)
from scratch with one schedule, then measure both on held-out planes in the index domain.

    PYTHONPATH=$PWD python benchmarks/downsampling_ablation.py --train-corpus /work/corpus_train \\
        --test-corpus /work/corpus --out /work/arch8 --steps 3000 --lmbda 0.6 [--markdown]

Training: ``featcodec.codecs.learned.train.train`` from scratch (index-domain loss,
``--lmbda``, lr 3e-4 dropped tenfold at 85%, batch 8, 128 x 128 crops, seed 0, one
thread) on the train split of ``--families`` (default cnn, latent, vit: the LLM stays
unseen); resumable (one run directory per ``down`` under ``--out``).

Evaluation on ``--n`` held-out test planes per family (benchmarks/plane_redundancy.py:
the 8-bit DT-UFC transform fitted on 4 other test features), for each network and for the
shipped quality 6 (21,000 steps of training): estimated bits per value, index RMSE, the
autoencoder's own RMSE without quantization, and the bits entropy-coded scalar
quantization of the same plane needs for that RMSE (one table per column).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sibling(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def trained(run: Path):
    """The network of a finished run directory."""
    import torch

    from featcodec.codecs.learned.models import build_model

    config = json.loads((run / "config.json").read_text())
    net = build_model(config)
    net.load_state_dict(torch.load(run / "ckpt.pt", map_location="cpu", weights_only=False)["model"])
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-corpus", required=True)
    ap.add_argument("--test-corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lmbda", type=float, default=0.6)
    ap.add_argument("--families", default="cnn,latent,vit")
    ap.add_argument("--n", type=int, default=8, help="held-out test planes per family")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    from featcodec.codecs.learned.train import train

    pr = _sibling("plane_redundancy")
    runs = {}
    for down in (4, 3):
        run = Path(a.out) / f"down{down}"
        train(a.train_corpus, str(run), lmbda=a.lmbda, steps=a.steps, lr=3e-4, lr_drop_at=0.85, down=down,
              families=a.families.split(","), progress=False)
        runs[f"{16 if down == 4 else 8}x, {a.steps} steps"] = trained(run)
    runs["shipped q6 (16x, 21,000 steps)"] = pr.shipped(6)
    rows = []
    for fam in pr.TAPS:
        planes, units = pr.planes_of(a.test_corpus, fam, a.n)
        sp = pr.scalar_points(planes)
        for name, net in runs.items():
            bits, rmse = pr.net_point(net, units)
            free, _ = pr.autoencoder_floor(net, units)
            rows.append((fam, name, bits, rmse, free, pr.bits_at(sp, rmse)))
        print(fam, "done", file=sys.stderr, flush=True)
    if a.markdown:
        print("| family | network | bits/value | index RMSE | unquantized RMSE | scalar quantization, bits at that RMSE | learned / scalar |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for fam, name, bits, rmse, free, sb in rows:
            print(f"| {fam} | {name} | {bits:.3f} | {rmse:.2f} | {free:.2f} | {sb:.3f} | {bits / sb:.2f}x |")
    else:
        for r in rows:
            print(r)


if __name__ == "__main__":
    main()
