"""``featcodec train``: train a one-channel learned codec on feature planes.

Loss ``lambda * 255**2 * MSE + BPFP`` on planes scaled to [0, 1] (MSE on [0, 1], BPFP =
estimated bits per feature value), Adam (lr 1e-4, aux 1e-3), families mixed, fixed seeds.
A run directory holds ``ckpt.pt`` (model, optimisers, step, RNG states: rerunning the
same command resumes), ``log.jsonl`` (losses) and ``config.json``/``transforms.json``.

Example (CLI)::

    featcodec train --corpus /work/corpus --out runs/hp_0.004 --lmbda 0.004 --steps 20000
    featcodec train --corpus /work/corpus --out runs/hp_0.001 --lmbda 0.001 \
        --steps 3000 --init runs/hp_0.004/ckpt.pt          # fine-tune to another rate

Example (Python)::

    from featcodec.codecs.learned.train import train
    train(corpus="/work/corpus", out="runs/hp", lmbda=0.004, steps=100)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["train", "main", "build_parser", "rd_loss", "feature_rd_loss", "FEATURE_WEIGHT", "refit_density",
           "shipped_checkpoint"]

#: ``feature_rd_loss`` weighs its distortion (in units of each tensor's variance) by
#: ``lmbda * FEATURE_WEIGHT``: for levels spread evenly over +-2 standard deviations, an
#: index error of one step costs what ``rd_loss`` charges for it at the same ``lmbda``.
FEATURE_WEIGHT = 255.0**2 / 16.0


def rd_loss(out: dict, x, lmbda: float) -> dict:
    """CompressAI-style rate-distortion loss with the rate in bits per feature value."""
    import torch

    n = x.shape[0] * x.shape[2] * x.shape[3]
    bits = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2))
    bpfp = bits / n
    mse = torch.mean((out["x_hat"] - x) ** 2)
    return {"loss": lmbda * 255.0 ** 2 * mse + bpfp, "mse": mse, "bpfp": bpfp}


def feature_rd_loss(out: dict, x, levels, lmbda: float) -> dict:
    """The rate-distortion loss with the distortion where the user measures it: after the
    inverse transform. ``x`` (N, 1, H, W) are DT-UFC planes (indices / 255), ``levels``
    (N, 256) each crop's levels divided by its tensor's standard deviation
    (``CropSampler.batch_with_levels``). The network output goes through the inverse
    transform made differentiable: linear interpolation between neighbouring levels (at
    integer positions it is the lookup table itself). A level step that is large in the
    feature domain (the tails of a Lloyd-Max transform) then costs what it costs the
    user, where the index-domain loss charges every step alike. ``mse`` is reported in
    units of the variance; the rate term is as in :func:`rd_loss`.

    >>> import torch
    >>> lv = torch.linspace(-2.0, 2.0, 256).repeat(2, 1)
    >>> x = torch.full((2, 1, 4, 4), 100 / 255)
    >>> out = {"x_hat": x + 0.5 / 255, "likelihoods": {"y": torch.ones(2, 8)}}
    >>> round(float(feature_rd_loss(out, x, lv, 0.01)["mse"]) * 255**2, 3)  # half a step of 4/255
    4.0
    """
    import torch

    n = x.shape[0] * x.shape[2] * x.shape[3]
    bits = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2))
    bpfp = bits / n
    K = levels.shape[1]
    lv = levels.to(out["x_hat"].dtype).view(levels.shape[0], 1, 1, K)
    pos = (out["x_hat"] * (K - 1)).clamp(0, K - 1)
    lo = pos.detach().floor().clamp(max=K - 2).long()
    frac = pos - lo
    flat = lv.expand(-1, pos.shape[2], pos.shape[3], -1)
    a = torch.gather(flat, 3, lo.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    b = torch.gather(flat, 3, (lo + 1).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    y_hat = a + frac * (b - a)
    idx = torch.round(x * (K - 1)).long().clamp(0, K - 1)
    y = torch.gather(flat, 3, idx.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    mse = torch.mean((y_hat - y) ** 2)
    return {"loss": lmbda * FEATURE_WEIGHT * mse + bpfp, "mse": mse, "bpfp": bpfp}


def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(corpus: str, out: str, *, lmbda: float = 0.004, steps: int = 20000,
          arch: str = "hyperprior", N: int = 48, M: int = 192, input: str = "dtufc",
          batch: int = 8, crop: int = 128, lr: float = 1e-4, aux_lr: float = 1e-3,
          lr_drop_at: float = 0.9, seed: int = 0, threads: int = 1,
          families: Sequence[str] = ("llm", "vit", "cnn", "latent"),
          init: str | None = None, save_every: int = 250, log_every: int = 25,
          max_per_tap: int | None = None, progress: bool = True,
          refresh_every: int = 0, distortion: str = "index", down: int = 4) -> dict:
    """Train (or resume, or fine-tune from ``init``) one model; returns the last losses.

    ``distortion``: ``"index"`` (:func:`rd_loss`, MSE of the [0, 1] index plane) or
    ``"feature"`` (:func:`feature_rd_loss`, MSE after the inverse transform, in units of
    each tensor's variance; DT-UFC input only).

    ``down``: the hyperprior's downsampling stages (4: 16x, the shipped networks; 3: 8x).

    ``refresh_every > 0`` re-reads the corpus manifest every that many steps and adds
    taps/features that appeared meanwhile (for training while the corpus is extracted;
    such a run depends on the extraction timeline and is logged as such).
    """
    import torch
    from tqdm import tqdm

    from .data import CropSampler, build_planes
    from .models import build_model

    if distortion not in ("index", "feature") or (distortion == "feature" and input != "dtufc"):
        raise ValueError(f"distortion must be 'index' or 'feature' (the latter with input='dtufc'), "
                         f"not {distortion!r} with input={input!r}")
    torch.set_num_threads(threads)
    _seed_all(seed)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    config = {"arch": arch, "N": N, "M": M, **({"down": down} if down != 4 else {}), "input": input, "lmbda": lmbda, "distortion": distortion,
              "batch": batch, "crop": crop, "lr": lr, "aux_lr": aux_lr, "seed": seed,
              "families": list(families), "steps": steps, "lr_drop_at": lr_drop_at,
              "init": init}
    (outdir / "config.json").write_text(json.dumps(config, indent=1))

    min_fit = 10 if refresh_every else 1

    def load_planes(transforms=None):
        ps = build_planes(corpus, input, families=families, max_per_tap=max_per_tap,
                          transforms=transforms, min_fit=min_fit)
        (outdir / "transforms.json").write_text(
            json.dumps({k: t.to_dict() for k, t in ps.transforms.items()}))
        return ps

    planes = load_planes()
    n_planes = sum(len(p) for p in planes.planes.values())
    sampler = CropSampler(planes, crop=crop, seed=seed)

    net = build_model(config)
    params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(params, lr=lr)
    aux_opt = torch.optim.Adam(aux_params, lr=aux_lr)

    step = 0
    ckpt_path = outdir / "ckpt.pt"
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        aux_opt.load_state_dict(ck["aux_opt"])
        step = ck["step"]
        sampler.set_state(ck["sampler"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed {ckpt_path} at step {step}", file=sys.stderr)
    elif init:
        ck = torch.load(init, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        print(f"fine-tuning from {init} (step {ck['step']})", file=sys.stderr)

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(),
                    "aux_opt": aux_opt.state_dict(), "step": step, "config": config,
                    "sampler": sampler.state(), "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt_path)

    log = open(outdir / "log.jsonl", "a")
    net.train()
    bar = tqdm(total=steps, initial=step, disable=not progress, mininterval=30,
               file=sys.stderr, desc=outdir.name)
    acc = {"loss": 0.0, "mse": 0.0, "bpfp": 0.0, "aux": 0.0}
    n_acc = 0
    t0 = time.time()
    last: dict = {}
    log.write(json.dumps({"step": step, "event": "data", "planes": planes.summary()}) + "\n")
    while step < steps:
        if refresh_every and step % refresh_every == 0 and step > 0:
            new = load_planes(planes.transforms)
            n_new = sum(len(p) for p in new.planes.values())
            if n_new != n_planes:
                planes, n_planes = new, n_new
                sampler.fams = sorted(f for f, p in new.planes.items() if p)
                sampler.planes = new.planes
                log.write(json.dumps({"step": step, "event": "data",
                                      "planes": planes.summary()}) + "\n")
        cur_lr = lr if step < lr_drop_at * steps else lr * 0.1
        for g in opt.param_groups:
            g["lr"] = cur_lr
        if distortion == "feature":
            xs, lv = sampler.batch_with_levels(batch)
            x = torch.from_numpy(xs)
        else:
            x = torch.from_numpy(sampler.batch(batch))
        opt.zero_grad()
        aux_opt.zero_grad()
        out = net(x)
        l = rd_loss(out, x, lmbda) if distortion == "index" else feature_rd_loss(out, x, torch.from_numpy(lv), lmbda)
        l["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        aux = net.aux_loss()
        aux.backward()
        aux_opt.step()
        step += 1
        for k in ("loss", "mse", "bpfp"):
            acc[k] += l[k].item()
        acc["aux"] += aux.item()
        n_acc += 1
        bar.update(1)
        if step % log_every == 0 or step == steps:
            last = {k: v / n_acc for k, v in acc.items()}
            last["psnr_unit"] = 10 * math.log10(1.0 / max(last["mse"], 1e-12))
            rec = {"step": step, "lr": cur_lr, "time": round(time.time() - t0, 1), **last}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.set_postfix(bpfp=f"{last['bpfp']:.3f}", psnr=f"{last['psnr_unit']:.2f}")
            acc = dict.fromkeys(acc, 0.0)
            n_acc = 0
        if step % save_every == 0 or step == steps:
            save()
    bar.close()
    log.close()
    return last


def refit_density(net, sampler, crops: int = 512, steps: int = 3000) -> tuple[float, float]:
    """Fit the hyper-latents' factorized density (and its quantiles) of ``net`` again, the
    rest of the network fixed: the shipped files keep only its integer tables, so a
    network loaded from them starts with the density of a fresh model, which would code
    the hyper-latents at several times their cost. The hyper-latents of ``crops``
    training crops (batches of 8) are computed once; Adam then minimises their noisy-rounding bits.
    Returns the bits per hyper-latent before and after."""
    import torch
    from compressai.entropy_models import EntropyBottleneck

    (eb,) = [m for m in net.modules() if isinstance(m, EntropyBottleneck)]
    zs = []
    hook = eb.register_forward_pre_hook(lambda _m, args: zs.append(args[0].detach()))
    net.eval()
    with torch.no_grad():
        for _ in range(max(1, crops // 8)):
            net(torch.from_numpy(sampler.batch(8)))
    hook.remove()
    z = torch.cat(zs)
    density = [p for n, p in eb.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(density, lr=1e-2)
    aux_opt = torch.optim.Adam([eb.quantiles], lr=1e-1)
    eb.train()

    def bits() -> torch.Tensor:
        return -torch.log2(eb(z)[1]).sum() / z.numel()

    with torch.no_grad():
        before = float(bits())
    for i in range(steps):
        if i == int(0.8 * steps):
            for g in opt.param_groups:
                g["lr"] = 1e-3
        opt.zero_grad()
        loss = bits()
        loss.backward()
        opt.step()
        aux_opt.zero_grad()
        eb.loss().backward()
        aux_opt.step()
    with torch.no_grad():
        after = float(bits())
    net.train()
    return before, after


def shipped_checkpoint(codec: str, quality: int, path: str | Path, corpus: str,
                       families: Sequence[str]) -> float:
    """The shipped ``codec`` at ``quality`` saved to ``path`` (unless it exists) as a
    checkpoint to fine-tune from (``train(..., init=path)``), its hyper-latent density
    fitted again on ``families`` of ``corpus`` (:func:`refit_density`); returns the
    quality's lambda."""
    import torch

    from . import codec as lc
    from .data import CropSampler, build_planes
    from .models import build_model

    entry = next(e for e in lc.manifest()["models"] if e["codec"] == codec and e["quality"] == quality)
    if not Path(path).exists():
        shipped = lc.load_model(codec, quality)
        net = build_model(shipped.config)
        net.load_state_dict(shipped.net.state_dict())
        sampler = CropSampler(build_planes(corpus, "dtufc", families=families), seed=1)
        before, after = refit_density(net, sampler)
        print(f"{codec} q{quality}: hyper-latent density refitted, {before:.3f} -> {after:.3f} "
              "bits per hyper-latent", file=sys.stderr, flush=True)
        torch.save({"model": net.state_dict(), "step": 0}, path)
    return float(entry["lmbda"])


def build_parser(p: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``featcodec train`` (added to ``p`` if given, e.g. a subparser)."""
    p = p or argparse.ArgumentParser(prog="featcodec train", description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="corpus root with manifest.json")
    p.add_argument("--out", required=True, help="run directory (resumes if ckpt.pt exists)")
    p.add_argument("--lmbda", type=float, default=0.004)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--arch", choices=("hyperprior", "elic"), default="hyperprior")
    p.add_argument("--N", type=int, default=48, help="hidden width (shipped: 48)")
    p.add_argument("--M", type=int, default=192, help="latent channels (shipped: 192)")
    p.add_argument("--input", choices=("dtufc", "caufc"), default="dtufc",
                   help="dtufc: Lloyd-Max transform indices/255; caufc: clip + min-max")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--aux-lr", type=float, default=1e-3)
    p.add_argument("--lr-drop-at", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--families", default="llm,vit,cnn,latent",
                   help="comma list (leave one out for universality runs)")
    p.add_argument("--init", default=None, help="checkpoint to fine-tune from")
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--max-per-tap", type=int, default=None)
    p.add_argument("--refresh-every", type=int, default=0,
                   help="re-read the manifest every this many steps (corpus still growing)")
    p.add_argument("--distortion", choices=("index", "feature"), default="index",
                   help="index: MSE of the index plane; feature: MSE after the inverse transform, "
                        "in units of each tensor's variance (dtufc input)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_args(a: argparse.Namespace) -> int:
    """Run a parsed ``featcodec train`` namespace (for the main CLI's subcommand)."""
    last = train(a.corpus, a.out, lmbda=a.lmbda, steps=a.steps, arch=a.arch, N=a.N, M=a.M,
                 input=a.input, batch=a.batch, crop=a.crop, lr=a.lr, aux_lr=a.aux_lr,
                 lr_drop_at=a.lr_drop_at, seed=a.seed, threads=a.threads,
                 families=[f for f in a.families.split(",") if f], init=a.init,
                 save_every=a.save_every, log_every=a.log_every,
                 max_per_tap=a.max_per_tap, progress=not a.no_progress,
                 refresh_every=a.refresh_every, distortion=a.distortion)
    print(json.dumps(last))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m featcodec.codecs.learned.train --corpus ... --out ...``."""
    return run_args(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
