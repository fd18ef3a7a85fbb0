"""Held-out rate-distortion of the learned codecs (issue 15): tensors of kinds training never
saw, coded the way a new user codes them, measured where the user measures.

Families (``--n`` tensors each, every one seeded):

* ``t2``: Student-t with 2 degrees of freedom, (1, 256, 384) tokens x channels;
* ``t3-channels``: Student-t(3) with 4 of the 384 channels scaled 30-100x;
* ``sink``: Gaussian tokens whose first token is scaled 60x and 2 channels 40x (an
  attention sink and massive activations);
* ``taef2-decoder``: the TAEF2 *decoder*'s feature map after its first upsampling block,
  (1, 64, 64, 64) from rendered 256x256 images (training only saw the encoder's latents);
* ``mobilenet-features4``: MobileNetV2 ``features[4]`` at 448x448, (1, 32, 56, 56) (training
  saw ``features13`` and ``features18``);
* ``llm``: SmolLM2 ``hidden15`` test tensors of ``--corpus`` (no fine-tune with the
  feature-domain loss saw an LLM; the base training did), when the corpus is there.

Methods, each a whole ``featcodec.encode`` stream (header and embedded transform
included) decoded with ``featcodec.decode``: the learned codecs at every shipped quality
(``encode(x, codec=c, quality=q)``, the transform fitted on ``x``), the ``index`` codec at
2..8 bits (``encode(x, bits=b)``), and three alternatives: uniform b-bit quantization over
[min, max] + zstd-19 (8 bytes for the ends), the same per channel (8 bytes a channel) and
zfpy's fixed-accuracy mode. Distortion: MSE in the feature domain as a fraction of the
tensor's variance; rate: bits per value.

Reported per family: the learned codecs' MSE / variance at each quality and whether it
falls with quality on every tensor; BD-rate against the index codec (on SNR = 10 log10
(variance / MSE)); and the best alternative's bits over the learned codec's at equal MSE.
The JSON's ``points`` are in ``learned_rd.py``'s form, so ``compare_rd.py`` compares two
runs (for example the shipped weights against ``FEATCODEC_LEARNED_WEIGHTS=dir``)::

    PYTHONPATH=$PWD python benchmarks/heldout_rd.py --n 4 --out /tmp/heldout_shipped
    FEATCODEC_LEARNED_WEIGHTS=/work/ft15/weights PYTHONPATH=$PWD python \\
        benchmarks/heldout_rd.py --n 4 --out /tmp/heldout_new
    PYTHONPATH=$PWD python benchmarks/compare_rd.py /tmp/heldout_shipped.json \\
        /tmp/heldout_new.json hyperprior --families t2,t3-channels,sink,taef2-decoder,mobilenet-features4,llm
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import bd_rate, rate_at_mse  # noqa: E402
from peers import zfp_array  # noqa: E402

FAMILIES = ("t2", "t3-channels", "sink", "taef2-decoder", "mobilenet-features4", "llm")
LEARNED = ("hyperprior", "elic")
INDEX = "index"
ALTERNATIVES = ("uniform+zstd", "uniform per channel+zstd", "zfpy")


def synthetic(family: str, i: int) -> np.ndarray:
    """Seeded heavy-tailed token tensors, (1, 256, 384) float32."""
    rng = np.random.default_rng(1000 * FAMILIES.index(family) + i)
    shape = (1, 256, 384)
    if family == "t2":
        return rng.standard_t(2, size=shape).astype(np.float32)
    if family == "t3-channels":
        x = rng.standard_t(3, size=shape)
        ch = rng.choice(shape[-1], 4, replace=False)
        x[..., ch] *= rng.uniform(30, 100, size=4)
        return x.astype(np.float32)
    x = rng.standard_normal(shape)  # sink
    x[:, 0] *= 60
    x[..., rng.choice(shape[-1], 2, replace=False)] *= 40
    return x.astype(np.float32)


def model_features(family: str, n: int) -> list[np.ndarray]:
    """Real features of networks (or layers) training never saw."""
    import torch

    out = []
    with torch.no_grad():
        if family == "taef2-decoder":
            from featcodec.features.latent import TAEF2

            m = TAEF2.load()
            for i in range(n):
                z = m.encode(m.image_tensor(5000 + i, 256))
                out.append(m.decoder[:9](z).numpy().astype(np.float32))
        else:
            from featcodec.features.cnn import MobileNetV2, imagenet_tensor

            m = MobileNetV2.load()
            for i in range(n):
                out.append(m.net.features[:5](imagenet_tensor(5000 + i, 448)).numpy().astype(np.float32))
    return out


def tensors(family: str, n: int, corpus: str) -> list[np.ndarray]:
    if family in ("t2", "t3-channels", "sink"):
        return [synthetic(family, i) for i in range(n)]
    if family == "llm":
        from featcodec.codecs.learned.data import load_manifest

        if not (Path(corpus) / "manifest.json").exists():
            return []
        es = sorted((e for e in load_manifest(corpus) if e["family"] == "llm" and e["tap"] == "hidden15"
                     and e["split"] == "test"), key=lambda e: str(e["input_id"]))
        return [np.load(e["abspath"]).astype(np.float32) for e in es[:n]]
    return model_features(family, n)


def uniform_zstd(x: np.ndarray, bits: int, axis: int | None, zc) -> tuple[int, np.ndarray]:
    """Uniform ``bits``-bit quantization over [min, max] (per channel along ``axis``) +
    zstd-19: (stream bits, reconstruction)."""
    red = None if axis is None else tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    lo = x.min(axis=red, keepdims=True).astype(np.float64)
    hi = x.max(axis=red, keepdims=True).astype(np.float64)
    L = (1 << bits) - 1
    q = np.rint((x - lo) / np.maximum(hi - lo, 1e-30) * L).astype(np.uint8)
    return 8 * (len(zc.compress(q.tobytes())) + 8 * lo.size), lo + q / L * (hi - lo)


def channel_axis(x: np.ndarray) -> int:
    return 1 if x.ndim == 4 else -1


def measure(x: np.ndarray, qualities: dict[str, list[int]], zc) -> list[dict]:
    """Every method's points on one tensor: method, point, bits, mse (absolute)."""
    import zfpy

    import featcodec

    pts = []

    def add(method, point, nbits, xr):
        pts.append(dict(method=method, point=point, bits=int(nbits),
                        mse=float(np.mean((np.asarray(xr, np.float64) - x) ** 2))))

    for codec, qs in qualities.items():
        for q in qs:
            blob = featcodec.encode(x, codec=codec, quality=q, check_quality=False)
            add(codec, q, 8 * len(blob), featcodec.decode(blob))
    for b in range(2, 9):
        blob = featcodec.encode(x, bits=b)
        add(INDEX, b, 8 * len(blob), featcodec.decode(blob))
    for b in range(2, 9):
        add("uniform+zstd", b, *uniform_zstd(x, b, None, zc))
        add("uniform per channel+zstd", b, *uniform_zstd(x, b, channel_axis(x), zc))
    xz = zfp_array(x)
    sd = float(x.std()) or 1.0
    for k in range(-8, 3):
        c = zfpy.compress_numpy(xz, tolerance=sd * 2.0**k)
        pts.append(dict(method="zfpy", point=k, bits=8 * len(c),
                        mse=float(np.mean((zfpy.decompress_numpy(c).astype(np.float64) - xz) ** 2))))
    return pts


def family_curve(pts: list[dict], family: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(bits per value, MSE / variance) per point, each the mean over the family's tensors."""
    by = defaultdict(list)
    for p in pts:
        if p["family"] == family and p["method"] == method:
            by[p["point"]].append((p["bits"] / p["n"], p["mse"] / p["var"]))
    keys = sorted(by)
    return (np.array([np.mean([r for r, _ in by[k]]) for k in keys]),
            np.array([np.mean([d for _, d in by[k]]) for k in keys]))


def report(pts: list[dict], families: list[str], learned: list[str]) -> str:
    lines = ["| family | codec | MSE / variance by quality | falls on every tensor | "
             "BD-rate vs index codec | best alternative's bits / learned bits at equal MSE |",
             "|---|---|---|---|---:|---|"]
    for fam in families:
        if not any(p["family"] == fam for p in pts):
            continue
        ir, id_ = family_curve(pts, fam, INDEX)
        for codec in learned:
            r, d = family_curve(pts, fam, codec)
            if not len(r):
                continue
            falls = all(
                np.all(np.diff([p["mse"] for p in sorted((p for p in pts if p["family"] == fam
                                                          and p["method"] == codec and p["input"] == t),
                                                         key=lambda p: p["point"])]) < 0)
                for t in {p["input"] for p in pts if p["family"] == fam})
            bd = bd_rate(ir, -10 * np.log10(id_), r, -10 * np.log10(d))
            ratios = []
            for ri, di in zip(r, d):
                alts = [rate_at_mse(*family_curve(pts, fam, a), di) for a in ALTERNATIVES]
                alts = [a for a in alts if a is not None]
                ratios.append(f"{min(alts) / ri:.2f}x" if alts else "-")
            lines.append(f"| {fam} | {codec} | " + ", ".join(f"{v:.3g}" for v in d)
                         + f" | {'yes' if falls else 'no'} | {bd:+.1f}% | " + ", ".join(ratios) + " |")
    return "\n".join(lines)


def plot(pts: list[dict], families: list[str], learned: list[str], path: Path) -> None:
    """One panel per family: MSE / variance against bits per value, every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = [f for f in families if any(p["family"] == f for p in pts)]
    fig, axes = plt.subplots(2, math.ceil(len(fams) / 2), figsize=(5 * math.ceil(len(fams) / 2), 8),
                             squeeze=False)
    for ax, fam in zip(axes.T.ravel(), fams):
        for m in (*learned, INDEX, *ALTERNATIVES):
            r, d = family_curve(pts, fam, m)
            keep = r <= 4
            if keep.any():
                ax.plot(r[keep], d[keep], "o-" if m in learned else ".--", label=m, lw=2 if m in learned else 1)
        ax.set_yscale("log")
        ax.set_title(fam)
        ax.set_xlabel("bits per value (whole stream)")
        ax.set_ylabel("MSE / variance")
        ax.grid(alpha=0.3)
    axes.T.ravel()[0].legend(fontsize=8)
    for ax in axes.T.ravel()[len(fams):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="tensors per family")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--codecs", default=",".join(LEARNED))
    ap.add_argument("--corpus", default="/work/corpus", help="for the llm family's test tensors")
    ap.add_argument("--out", required=True, help="writes <out>.json, <out>.md and <out>.png")
    a = ap.parse_args()

    import zstandard

    from featcodec.codecs.learned.codec import WEIGHTS_DIR, available_qualities

    warnings.simplefilter("ignore")
    families = [f for f in a.families.split(",") if f]
    learned = [c for c in a.codecs.split(",") if c]
    qualities = {c: available_qualities(c) for c in learned}
    zc = zstandard.ZstdCompressor(level=19)
    pts, t0 = [], time.time()
    for fam in families:
        xs = tensors(fam, a.n, a.corpus)
        for i, x in enumerate(xs):
            rec = dict(family=fam, input=i, n=int(x.size), var=float(np.var(x.astype(np.float64))))
            rng = float(x.max() - x.min()) or 1.0
            for p in measure(x, qualities, zc):
                pts.append(dict(rec, **p, psnr=10 * math.log10(rng * rng / max(p["mse"], 1e-30))))
        print(f"{fam}: {len(xs)} tensors, {time.time() - t0:.0f} s", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"weights": str(WEIGHTS_DIR), "points": pts}))
    md = report(pts, families, learned)
    out.with_suffix(".md").write_text(f"Weights: `{WEIGHTS_DIR}`\n\n{md}\n")
    plot(pts, families, learned, out.with_suffix(".png"))
    print(md)


if __name__ == "__main__":
    main()
