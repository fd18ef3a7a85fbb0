"""The DT-UFC Fig. 2 / Table 1 analysis on real features of the four model families.

For each family (LLM hidden state, ViT tokens, CNN map, diffusion VAE latent) it fits the
8-bit Lloyd-Max transform on up to 10 training features (as the paper does), then on the
held-out features of the test split:

* draws the paper's four panels per family into ``docs/img/transform_fig2.png``: the value
  histogram (log counts) with its CDF, the learned transform (index against value), the
  log width of every decision interval, and the histogram of the transformed indices;
* prints the KL divergence between the families' value histograms before the transform
  (each family aligned into [0, 1] by its min-max range, 256 bins: the CAUFC uniform
  alignment) and after it (256 index bins), and the reconstruction error of both.

    python benchmarks/transform_figure.py [--corpus /work/corpus] [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import featcodec  # noqa: E402
from featcodec import metrics  # noqa: E402

ROWS = [  # (family, preferred taps in order)
    ("llm", ["hidden15", "hidden_15", "layer15"]),
    ("vit", ["layer9", "layer11", "layer6"]),
    ("cnn", ["features13"]),
    ("cnn", ["features18"]),
    ("latent", ["latent256", "latent512"]),
]
LABEL = {"llm": "LLM (SmolLM2)", "vit": "ViT (DINOv2 arch.)", "cnn": "CNN (MobileNetV2)", "latent": "VAE latent (TAEF2)"}


def pick(manifest: list[dict], family: str, prefer: list[str]) -> tuple[str, list[dict], list[dict]] | None:
    entries = [e for e in manifest if e["family"] == family]
    taps = sorted({e["tap"] for e in entries})
    tap = next((t for t in prefer if t in taps), None)
    if tap is None:
        return None
    by_split = {
        s: sorted((e for e in entries if e["tap"] == tap and e["split"] == s), key=lambda e: e["input_id"])
        for s in ("train", "val", "test")
    }
    fit = by_split["train"] or by_split["val"]
    test = by_split["test"] or by_split["val"]
    return tap, fit[:10], test[:12]


def load(corpus: str, entries: list[dict]) -> list[np.ndarray]:
    out = []
    for e in entries:
        p = e["path"] if os.path.isabs(e["path"]) else os.path.join(corpus, e["path"])
        out.append(np.load(p).astype(np.float32))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "img"))
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    with open(os.path.join(args.corpus, "manifest.json")) as f:
        manifest = json.load(f)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for fam, prefer in ROWS:
        sel = pick(manifest, fam, prefer)
        if sel is None:
            print(f"[skip] no {fam} {prefer[0]} features in {args.corpus}", file=sys.stderr)
            continue
        tap, fit_e, test_e = sel
        fit_x = load(args.corpus, fit_e)
        test_x = np.concatenate([a.ravel() for a in load(args.corpus, test_e)])
        t0 = time.perf_counter()
        tr = featcodec.fit_transform(fit_x, bits=8)
        sec = time.perf_counter() - t0
        un = featcodec.fit_uniform(fit_x, bits=8)
        idx = tr.forward(test_x)
        rows.append(
            dict(
                family=fam,
                tap=tap,
                shape=list(fit_x[0].shape),
                n_fit=int(sum(a.size for a in fit_x)),
                n_fit_features=len(fit_x),
                n_test=int(test_x.size),
                fit_seconds=sec,
                transform=tr,
                x=test_x,
                idx=idx,
                uniform=un,
                mse_lloyd=metrics.mse(test_x, tr.inverse(idx)),
                mse_uniform=metrics.mse(test_x, un.inverse(un.forward(test_x))),
                stats=dict(
                    min=float(test_x.min()), max=float(test_x.max()), std=float(test_x.std()),
                    kurtosis=float(np.mean((test_x - test_x.mean()) ** 4) / test_x.var() ** 2),
                ),
            )
        )

    # ---- figure (the paper's Fig. 2 columns)
    os.makedirs(args.out, exist_ok=True)
    fig, axes = plt.subplots(len(rows), 4, figsize=(16, 3.1 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        x, tr, idx = row["x"], row["transform"], row["idx"]
        ax = axes[r, 0]
        ax.hist(x, bins=256, color="tab:green", log=True)
        ax2 = ax.twinx()
        xs = np.sort(x)
        ax2.plot(xs, np.arange(1, len(xs) + 1) / len(xs), color="tab:red", lw=1)
        ax2.set_ylim(0, 1.02)
        ax.set_title(f"{LABEL[row['family']]} {row['tap']}: original")
        ax.set_xlabel("value")
        ax = axes[r, 1]
        ax.plot(tr.levels, np.arange(256), color="tab:blue", lw=1.2)
        ax.set_title("learned transform (index vs level)")
        ax.set_xlabel("value")
        ax = axes[r, 2]
        widths = np.diff(tr.thresholds.astype(np.float64))
        ax.semilogy(np.arange(1, 255), widths, color="tab:purple", lw=1)
        ax.axhline(widths.mean(), color="tab:red", ls="--", lw=1)
        ax.set_title("interval width (log)")
        ax.set_xlabel("index")
        ax = axes[r, 3]
        counts = np.bincount(idx.ravel(), minlength=256)
        ax.bar(np.arange(256), counts, width=1.0, color="tab:green")
        ax2 = ax.twinx()
        ax2.plot(np.arange(256), np.cumsum(counts) / counts.sum(), color="tab:red", lw=1)
        ax2.set_ylim(0, 1.02)
        ax.set_title("transformed (indices)")
        ax.set_xlabel("index")
    fig.tight_layout()
    png = os.path.join(args.out, "transform_fig2.png")
    fig.savefig(png, dpi=80)
    print(f"wrote {png}")

    # ---- KL tables (the paper's Table 1)
    names = [f"{r['family']} {r['tap']}" for r in rows]
    before = {n: metrics.histogram(r["uniform"].forward(r["x"])) for n, r in zip(names, rows)}
    after = {n: metrics.histogram(r["idx"]) for n, r in zip(names, rows)}

    def table(h: dict) -> list[list[float]]:
        return [[metrics.kl_divergence_from_histograms(h[a], h[b]) for b in names] for a in names]

    kb, ka = table(before), table(after)

    def md(mat: list[list[float]], title: str) -> str:
        head = f"| {title} | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
        return head + "".join(f"| {a} | " + " | ".join(f"{v:.3f}" for v in mat[i]) + " |\n" for i, a in enumerate(names))

    print("\nKL(row || column), nats, 256 bins, before: min-max uniform alignment\n")
    print(md(kb, "before"))
    print("after: 8-bit Lloyd-Max transform indices\n")
    print(md(ka, "after"))
    print("| family | tap | feature shape | fit on | test values | std | kurtosis | min | max | fit time | MSE uniform (min-max) | MSE Lloyd-Max | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["stats"]
        print(
            f"| {r['family']} | {r['tap']} | {tuple(r['shape'])} | {r['n_fit_features']} features, {r['n_fit']:,} values | {r['n_test']:,} | "
            f"{s['std']:.3g} | {s['kurtosis']:.3g} | {s['min']:.4g} | {s['max']:.4g} | {r['fit_seconds']:.2f} s | "
            f"{r['mse_uniform']:.3g} | {r['mse_lloyd']:.3g} | {r['mse_uniform'] / r['mse_lloyd']:.1f}x |"
        )
    if args.json:
        keep = [{k: v for k, v in r.items() if k not in ("transform", "x", "idx", "uniform")} for r in rows]
        with open(args.json, "w") as f:
            json.dump({"families": names, "kl_before": kb, "kl_after": ka, "rows": keep}, f, indent=1)


if __name__ == "__main__":
    main()
