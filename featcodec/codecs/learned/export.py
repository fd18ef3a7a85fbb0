"""Turn training checkpoints into the weights shipped inside the package.

Each model becomes ``<codec>_q<quality>.safetensors`` holding the network (4-D conv
weights in float16, or with ``weights="int8"`` as int8 with a float32 scale per slice of
dim 0 under ``scale.<name>``; everything else float32; masks of masked convolutions are
not stored, the architecture rebuilds them) *and* its ready entropy tables (integer
CDFs, lengths, offsets, the bottleneck medians and the scale table), so loading never
calls CompressAI's ``update()`` and never touches the network. Encoder and decoder load
the same stored numbers, so the int8 weights change the rate-distortion, never the
determinism. ``manifest.json`` lists
every file with its sha256, which :mod:`featcodec.codecs.learned.codec` checks at load.

Example (CLI)::

    python -m featcodec.codecs.learned.export --codec hyperprior \
        runs/hp_0.0005/ckpt.pt runs/hp_0.001/ckpt.pt ... --out featcodec/codecs/learned/weights
    python -m featcodec.codecs.learned.export --codec elic --weights int8 runs/elic_*/ckpt.pt ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["export_checkpoint", "write_manifest", "main", "WEIGHT_FORMATS"]

WEIGHT_FORMATS = ("float16", "int8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _int8(w):
    """Symmetric int8 with one float32 scale per slice of dim 0."""
    import torch

    scale = (w.abs().amax(dim=tuple(range(1, w.ndim))) / 127.0).clamp_min(1e-30).float()
    q = torch.round(w / scale.view(-1, *[1] * (w.ndim - 1))).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.contiguous()


def _canonical_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header with sorted keys (safetensors writes its
    metadata in hash-map order, different on every run), so the same checkpoint always
    exports to the same bytes, hence the same sha256 and model id. The header stays
    8-byte aligned (space padding, as the format allows); data offsets are relative to
    the end of the header, so they do not move."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":"))
    header += " " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode() + raw[8 + n:])


def export_checkpoint(ckpt: str | Path, out: str | Path, codec: str, quality: int,
                      weights: str = "float16") -> dict:
    """Write one model file (conv weights stored as ``weights``); returns its manifest entry."""
    import torch
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from safetensors.torch import save_file

    from .models import build_model

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    net = build_model(cfg)
    net.load_state_dict(ck["model"])
    net.update(force=True)
    tensors: dict[str, torch.Tensor] = {}
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights must be one of {WEIGHT_FORMATS}")
    masks = {n + ".weight": m.mask for n, m in net.named_modules() if hasattr(m, "mask")}
    for k, v in net.state_dict().items():
        if {"entropy_bottleneck", "gaussian_conditional"} & set(k.split(".")) or k.endswith(".mask"):
            continue
        v = v.detach().contiguous()
        if k.endswith(".weight") and v.ndim == 4:
            if k in masks:  # what the masked convolution computes with
                v = v * masks[k]
            if weights == "int8":
                v, tensors["scale." + k] = _int8(v.float())
            else:
                v = v.to(torch.float16)
        tensors["net." + k] = v
    (eb,) = [m for m in net.modules() if isinstance(m, EntropyBottleneck)]
    gc, *others = [m for m in net.modules() if isinstance(m, GaussianConditional)]
    for o in others:  # ELIC has one per channel group: the same fixed scale table
        if not (torch.equal(o._quantized_cdf, gc._quantized_cdf)
                and torch.equal(o.scale_table, gc.scale_table)):
            raise ValueError(f"{ckpt}: the Gaussian conditionals' tables differ")
    tensors["eb.cdf"] = eb._quantized_cdf.to(torch.int32).contiguous()
    tensors["eb.cdf_length"] = eb._cdf_length.to(torch.int32).reshape(-1).contiguous()
    tensors["eb.offset"] = eb._offset.to(torch.int32).reshape(-1).contiguous()
    tensors["eb.medians"] = eb._get_medians().detach().reshape(-1).to(torch.float32).contiguous()
    tensors["gc.cdf"] = gc._quantized_cdf.to(torch.int32).contiguous()
    tensors["gc.cdf_length"] = gc._cdf_length.to(torch.int32).reshape(-1).contiguous()
    tensors["gc.offset"] = gc._offset.to(torch.int32).reshape(-1).contiguous()
    tensors["gc.scale_table"] = gc.scale_table.to(torch.float32).contiguous()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{codec}_q{quality}.safetensors"
    meta = {"codec": codec, "quality": str(quality), "config": json.dumps(cfg),
            "lmbda": str(cfg["lmbda"]), "steps": str(ck["step"]), "weights": weights}
    save_file(tensors, str(out / name), metadata=meta)
    _canonical_header(out / name)
    (out / name).chmod(0o644)
    return {"codec": codec, "quality": quality, "file": name, "lmbda": cfg["lmbda"],
            "steps": ck["step"], "input": cfg["input"], "distortion": cfg.get("distortion", "index"),
            "weights": weights, "config": {k: cfg[k] for k in ("arch", "N", "M")}}


def write_manifest(out: str | Path, models: list[dict]) -> Path:
    """``manifest.json``: the models and the sha256 of every file."""
    out = Path(out)
    files = sorted({m["file"] for m in models})
    manifest = {"format": 1, "models": models,
                "sha256": {f: _sha256(out / f) for f in files}}
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m featcodec.codecs.learned.export")
    p.add_argument("--codec", default="hyperprior")
    p.add_argument("--out", required=True)
    p.add_argument("--weights", choices=WEIGHT_FORMATS, default="float16",
                   help="storage of the conv weights (int8: half the size)")
    p.add_argument("ckpts", nargs="+", help="checkpoints in increasing-rate order")
    a = p.parse_args(argv)
    out = Path(a.out)
    old = []
    if (out / "manifest.json").exists():
        old = [m for m in json.loads((out / "manifest.json").read_text())["models"]
               if m["codec"] != a.codec]
    models = old + [export_checkpoint(c, out, a.codec, q, a.weights)
                    for q, c in enumerate(a.ckpts, start=1)]
    print(write_manifest(out, models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
