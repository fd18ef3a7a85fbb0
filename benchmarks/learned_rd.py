"""Rate-distortion evidence for the learned codecs on the held-out corpus test split.

Per family (llm, vit, cnn, latent present in the corpus) and test tensor:

* ``hyperprior`` and ``elic`` (shipped weights, DT-UFC transform fitted per tap on 10
  train features): whole ``featcodec.encode`` stream length (header included; the per-tap
  transform is registered, not embedded) vs MSE / PSNR in the original feature domain;
* ``caufc``: the same architecture trained on the CAUFC baseline input (truncation +
  min-max) from ``--baseline-runs``, coded exactly as the shipped codec codes
  (``LearnedModel.from_checkpoint``); rate = its payload plus the header size our stream
  needed for the same tensor;
* the ``index`` codec (no learning) at 2..8 bits with a Lloyd-Max and with a uniform
  transform, fitted on the same train features and referenced by id;
* ``max-error``: the index codec's error-bounded mode, ``encode(x, max_error=(max - min) *
  2**-k)`` for k = 3..16, each stream embedding its uniform transform (two numbers);
* ``int8+zstd``: uniform b-bit quantisation over [min, max] (b = 2..8) + zstd -19,
  rate includes 8 bytes for min/max;
* ``zfpy``: fixed-accuracy mode over a range of tolerances, on the tensor with singleton
  axes dropped (``peers.zfp_array``: zfp pads partial 4-value blocks).

PSNR of a tensor = 10 log10((max - min)^2 / MSE); a family's point = mean over tensors.
Writes a markdown report, a JSON of all points, and one PNG per family.

Usage::

    PYTHONPATH=. python benchmarks/learned_rd.py --corpus /work/corpus --per-tap 4 \
        --baseline-runs '/work/train/hyperprior_caufc_*' --out docs/learned_rd

``--methods elic --merge docs/learned_rd.json`` measures only the ELIC codec and keeps every
other method's points from an earlier run's JSON (same corpus and options).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from peers import zfp_array  # benchmarks/ is on sys.path when this runs as a script


INDEX_LLOYD = "index codec, Lloyd-Max transform"
INDEX_UNIFORM = "index codec, uniform transform"
INDEX_BITS = (2, 3, 4, 5, 6, 7, 8)
INDEX_BOUNDED = "index codec, error-bounded (max_error)"
#: max_error = (max - min) * 2**-k for these k: every tensor reaches all of them with 16-bit
#: indices (each stream embeds its uniform transform)
BOUND_EXPONENTS = tuple(range(3, 17))
LEARNED = ("hyperprior", "elic")
#: featcodec's own methods, compared with the alternatives at equal MSE
OURS = (*LEARNED, INDEX_LLOYD, INDEX_UNIFORM, INDEX_BOUNDED)
#: what --methods can name
METHOD_GROUPS = (*LEARNED, "index", "max-error", "caufc", "int8+zstd", "zfpy")


def _psnr(x: np.ndarray, mse: float) -> float:
    rng = float(x.max() - x.min()) or 1.0
    return 10 * math.log10(rng * rng / max(mse, 1e-30))


def bd_rate(r1, p1, r2, p2) -> float:
    """Bjontegaard delta rate of curve 2 against curve 1 (percent; negative = fewer bits)."""
    lr1, lr2 = np.log(r1), np.log(r2)
    c1 = np.polyfit(p1, lr1, min(3, len(p1) - 1))
    c2 = np.polyfit(p2, lr2, min(3, len(p2) - 1))
    lo, hi = max(min(p1), min(p2)), min(max(p1), max(p2))
    if hi <= lo:
        return float("nan")
    i1 = np.polyval(np.polyint(c1), hi) - np.polyval(np.polyint(c1), lo)
    i2 = np.polyval(np.polyint(c2), hi) - np.polyval(np.polyint(c2), lo)
    return float((math.exp((i2 - i1) / (hi - lo)) - 1) * 100)


def bd_psnr(r1, p1, r2, p2) -> float:
    """Bjontegaard delta PSNR of curve 2 against curve 1 over their common rate range (dB)."""
    lr1, lr2 = np.log(r1), np.log(r2)
    c1 = np.polyfit(lr1, p1, min(3, len(p1) - 1))
    c2 = np.polyfit(lr2, p2, min(3, len(p2) - 1))
    lo, hi = max(min(lr1), min(lr2)), min(max(lr1), max(lr2))
    if hi <= lo:
        return float("nan")
    i1 = np.polyval(np.polyint(c1), hi) - np.polyval(np.polyint(c1), lo)
    i2 = np.polyval(np.polyint(c2), hi) - np.polyval(np.polyint(c2), lo)
    return float((i2 - i1) / (hi - lo))


def rate_at_mse(rates, mses, mse):
    """log-log interpolation of a curve's rate at ``mse`` (None outside its range)."""
    order = np.argsort(mses)
    lm, lr = np.log(np.asarray(mses)[order]), np.log(np.asarray(rates)[order])
    if not lm[0] <= math.log(mse) <= lm[-1]:
        return None
    return float(math.exp(np.interp(math.log(mse), lm, lr)))


class Baseline:
    """A training run (its ``ckpt.pt``) coded exactly as the shipped codec codes: exported
    weights, planes padded to the codec's multiple, integer table choice, our rANS."""

    def __init__(self, run: Path):
        from featcodec.codecs.learned.codec import LearnedModel

        self.model = LearnedModel.from_checkpoint(run / "ckpt.pt")
        self.config = self.model.config
        self.steps = self.model.steps

    def code(self, unit_plane: np.ndarray) -> tuple[int, np.ndarray]:
        """Plane of values in [0, 1] -> (payload bits, reconstruction in [0, 1])."""
        import torch

        from featcodec.codecs.learned.codec import PAD, _pad, frame

        h, w = unit_plane.shape
        x = _pad(torch.from_numpy(np.ascontiguousarray(unit_plane, np.float32))[None, None], PAD)
        strings = self.model.compress(x)
        x_hat = self.model.decompress(strings, tuple(x.shape[-2:]))
        return 8 * len(frame(strings)), x_hat[0, 0, :h, :w].clamp(0, 1).numpy()


def main() -> None:
    import torch
    import zfpy
    import zstandard

    import featcodec
    from featcodec.codecs.learned.codec import available_qualities
    from featcodec.codecs.learned.data import TapTransform, load_manifest, tap_key

    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--per-tap", type=int, default=4)
    ap.add_argument("--fit-samples", type=int, default=10)
    ap.add_argument("--baseline-runs", default="/work/train/hyperprior_caufc_*")
    ap.add_argument("--out", default="docs/learned_rd")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default=",".join(METHOD_GROUPS),
                    help=f"comma list of what to measure, out of {', '.join(METHOD_GROUPS)}")
    ap.add_argument("--merge", default=None,
                    help="an earlier run's JSON: keep its points of the methods not measured")
    a = ap.parse_args()
    methods = set(a.methods.split(","))
    if methods - set(METHOD_GROUPS):
        ap.error(f"unknown methods {sorted(methods - set(METHOD_GROUPS))}")
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    entries = load_manifest(a.corpus)
    taps = defaultdict(list)
    for e in sorted(entries, key=lambda e: (tap_key(e), str(e["input_id"]))):
        taps[tap_key(e)].append(e)
    qs = {c: available_qualities(c) for c in LEARNED if c in methods or c == "hyperprior"}
    runs = sorted((Path(p) for p in glob.glob(a.baseline_runs) if (Path(p) / "ckpt.pt").exists()),
                  key=lambda p: json.loads((p / "config.json").read_text())["lmbda"])
    runs = runs if "caufc" in methods else []
    baselines = [Baseline(r) for r in runs]
    zc = zstandard.ZstdCompressor(level=19)
    pts = []  # one record per (tensor, method, point)
    t0 = time.time()
    for key, es in sorted(taps.items()):
        train = [e for e in es if e["split"] == "train"][: a.fit_samples]
        test = [e for e in es if e["split"] == "test"][: a.per_tap]
        if not train or not test:
            continue
        fit = np.concatenate([np.load(e["abspath"]).ravel() for e in train])
        t = featcodec.fit_transform(fit, bits=8)
        # the non-learned index codec at 2..8 bits, transforms fitted on the same train
        # features and referenced by id (8-bit Lloyd-Max = lossless on the hyperprior's indices)
        index_transforms = {
            INDEX_LLOYD: {b: t if b == 8 else featcodec.fit_transform(fit, bits=b) for b in INDEX_BITS},
            INDEX_UNIFORM: {b: featcodec.fit_uniform(fit, bits=b) for b in INDEX_BITS},
        }
        for fitted in index_transforms.values():
            for ti in fitted.values():
                featcodec.register_transform(ti)
        cau = TapTransform.fit("caufc", fit)
        for e in test:
            x = np.load(e["abspath"]).astype(np.float32)
            n = x.size
            rec = dict(family=e["family"], tap=key, input=e["input_id"], n=n)
            header = None
            for codec, cqs in qs.items():
                for q in cqs:
                    blob = featcodec.encode(x, codec=codec, transform=t, quality=q,
                                            embed_transform=False)
                    if header is None:  # the container around a learned payload
                        header = len(blob) - _payload_len(blob)
                    if codec not in methods:
                        break
                    xr = np.asarray(featcodec.decode(blob))
                    mse = float(np.mean((xr.astype(np.float64) - x) ** 2))
                    pts.append(dict(rec, method=codec, point=q, bits=8 * len(blob), mse=mse,
                                    psnr=_psnr(x, mse)))
            for name, fitted in (index_transforms if "index" in methods else {}).items():
                for bits, ti in fitted.items():
                    blob = featcodec.encode(x, codec="index", transform=ti, embed_transform=False)
                    xr = np.asarray(featcodec.decode(blob))
                    mse = float(np.mean((xr.astype(np.float64) - x) ** 2))
                    pts.append(dict(rec, method=name, point=bits, bits=8 * len(blob), mse=mse,
                                    psnr=_psnr(x, mse)))
            for k in BOUND_EXPONENTS if "max-error" in methods else ():
                blob = featcodec.encode(x, max_error=float(x.max() - x.min()) * 2.0**-k)
                xr = np.asarray(featcodec.decode(blob))
                mse = float(np.mean((xr.astype(np.float64) - x) ** 2))
                pts.append(dict(rec, method=INDEX_BOUNDED, point=k, bits=8 * len(blob), mse=mse,
                                psnr=_psnr(x, mse)))
            plane, info = featcodec.pack(x)
            for i, b in enumerate(baselines):
                bits, y = b.code(cau.to_unit(plane))
                xr = featcodec.unpack(cau.from_unit(y).astype(np.float32), info)
                mse = float(np.mean((xr.astype(np.float64) - x) ** 2))
                pts.append(dict(rec, method="caufc", point=i + 1, bits=bits + 8 * header,
                                mse=mse, psnr=_psnr(x, mse)))
            lo, hi = float(x.min()), float(x.max())
            for bb in range(1, 9 if "int8+zstd" in methods else 1):
                L = (1 << bb) - 1
                qv = np.rint((x - lo) / max(hi - lo, 1e-30) * L).astype(np.uint8)
                nbytes = len(zc.compress(qv.tobytes())) + 8
                xr = lo + qv.astype(np.float64) / L * (hi - lo)
                mse = float(np.mean((xr - x) ** 2))
                pts.append(dict(rec, method="int8+zstd", point=bb, bits=8 * nbytes, mse=mse,
                                psnr=_psnr(x, mse)))
            sd = float(x.std()) or 1.0
            for k in range(-4, 9 if "zfpy" in methods else -4):
                tol = sd * 2.0 ** k
                xz = zfp_array(x)
                c = zfpy.compress_numpy(xz, tolerance=tol)
                xr = zfpy.decompress_numpy(c)
                mse = float(np.mean((xr.astype(np.float64) - xz) ** 2))
                pts.append(dict(rec, method="zfpy", point=k, bits=8 * len(c), mse=mse,
                                psnr=_psnr(x, mse)))
        print(f"{key}: {len(test)} tensors, {time.time() - t0:.0f} s", flush=True)
    from featcodec.codecs.learned.codec import manifest

    shipped_steps = [m["steps"] for m in manifest()["models"] if m["codec"] == "hyperprior"]
    base_runs = [dict(run=str(r), steps=b.steps, lmbda=b.config["lmbda"])
                 for r, b in zip(runs, baselines)]
    if a.merge:  # the methods not measured now, from the earlier run
        old = json.loads(Path(a.merge).read_text())
        measured = {p["method"] for p in pts}
        pts += [p for p in old["points"] if p["method"] not in measured]
        base_runs = base_runs or old.get("baseline_runs", [])
    (out.parent / (out.name + ".json")).write_text(json.dumps(
        {"points": pts, "qualities": qs["hyperprior"], "hyperprior_steps": shipped_steps,
         "elic_steps": [m["steps"] for m in manifest()["models"] if m["codec"] == "elic"],
         "baseline_runs": base_runs}))
    print(report(pts, out, steps=(shipped_steps, [b["steps"] for b in base_runs])))


def _payload_len(blob: bytes) -> int:
    from featcodec.stream import container as bitstream

    s = bitstream.read_stream(blob)
    return len(s.sections[s.header["sections"].index("payload")])


def curves(pts):
    """family -> method -> list of (point, BPFP, MSE, PSNR) averaged over tensors."""
    acc = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for p in pts:
        acc[p["family"]][p["method"]][p["point"]].append(p)
    res = {}
    for fam, ms in acc.items():
        res[fam] = {}
        for m, by in ms.items():
            rows = []
            for pt, ps in sorted(by.items()):
                rows.append((pt, float(np.mean([p["bits"] / p["n"] for p in ps])),
                             float(np.mean([p["mse"] for p in ps])),
                             float(np.mean([p["psnr"] for p in ps]))))
            res[fam][m] = rows
    return res


def _bd_table(heading: str, rows: list) -> list[str]:
    """Markdown lines: BD-rate / BD-PSNR per family and their means."""
    t = [f"\n### {heading}\n",
         "BD-rate over the common PSNR range (nan: the PSNR ranges do not overlap); "
         "BD-PSNR over the common rate range.\n",
         "| family | BD-rate | BD-PSNR |", "|---|---|---|"]
    t += [f"| {f} | {b:+.1f}% | {d:+.2f} dB |" for f, b, d in rows]
    fin = [b for _, b, _ in rows if math.isfinite(b)]
    fin_d = [d for _, _, d in rows if math.isfinite(d)]
    mean_d = f"**{np.mean(fin_d):+.2f} dB** ({len(fin_d)} families)" if fin_d else "no overlap"
    mean_r = f"**{np.mean(fin):+.1f}%** ({len(fin)} families)" if fin else "no overlap"
    t.append(f"| **mean** | {mean_r} | {mean_d} |")
    return t


def report(pts, out: Path, steps: tuple[list, list] | None = None) -> str:
    """Markdown report + PNGs; ``steps`` = (steps of each shipped model, of each baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv = curves(pts)
    lines = []
    bds, elic_bds = [], []  # (family, BD-rate, BD-PSNR): hyperprior vs CAUFC, ELIC vs hyperprior
    ratios = defaultdict(dict)
    for fam in sorted(cv):
        ms = cv[fam]
        lines.append(f"\n### {fam}\n")
        lines.append("| method | point | BPFP | MSE | PSNR (dB) |")
        lines.append("|---|---|---|---|---|")
        for m, rows in ms.items():
            for pt, r, mse, ps in rows:
                lines.append(f"| {m} | {pt} | {r:.3f} | {mse:.4g} | {ps:.2f} |")
        for (ref, new), acc in ((("caufc", "hyperprior"), bds), (("hyperprior", "elic"), elic_bds)):
            if ref in ms and new in ms and len(ms[ref]) >= 2 and len(ms[new]) >= 2:
                r, c = ms[new], ms[ref]
                args = ([x[1] for x in c], [x[3] for x in c], [x[1] for x in r], [x[3] for x in r])
                acc.append((fam, bd_rate(*args), bd_psnr(*args)))
        for ours in OURS:
            for alt in ("int8+zstd", "zfpy"):
                if alt in ms and ours in ms:
                    rs = []
                    for _, r, mse, _ in ms[ours]:
                        ar = rate_at_mse([x[1] for x in ms[alt]], [x[2] for x in ms[alt]], mse)
                        if ar is not None:
                            rs.append(ar / r)
                    ratios[(fam, ours)][alt] = rs
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for m, rows in ms.items():
            ax.plot([r[1] for r in rows], [r[3] for r in rows], "o-", ms=3, label=m)
        ax.set_xscale("log")
        ax.set_xlabel("BPFP (whole stream)")
        ax.set_ylabel("PSNR (dB, feature domain)")
        ax.set_title(fam)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(f"{out}_{fam}.png", dpi=110)
        plt.close(fig)
    if steps is None or sorted(steps[0]) == sorted(steps[1]):
        title = "same network, same training steps"
    else:
        title = (f"same network, NOT the same training: hyperprior steps {steps[0]}, "
                 f"CAUFC-input steps {steps[1]}")
    summ = []
    for heading, rows in ((f"DT-UFC hyperprior vs CAUFC-input hyperprior ({title})", bds),
                          ("ELIC vs hyperprior (both DT-UFC, shipped weights)", elic_bds)):
        if rows:
            summ += _bd_table(heading, rows)
    summ += ["\n### Bits of the alternative / bits of featcodec at equal MSE\n",
             "(one ratio per featcodec point, low rate first, whose MSE lies inside the "
             "alternative's range; the index codec's points are 2..8 bits)\n",
             "| family | featcodec | int8+zstd | zfpy |", "|---|---|---|---|"]
    for fam, ours in sorted(ratios):
        cell = lambda v: ", ".join(f"{x:.2f}x" for x in v) if v else "no overlap"  # noqa: E731
        summ.append(f"| {fam} | {ours} | {cell(ratios[(fam, ours)].get('int8+zstd', []))} | "
                    f"{cell(ratios[(fam, ours)].get('zfpy', []))} |")
    text = "\n".join(summ + lines) + "\n"
    Path(f"{out}.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
