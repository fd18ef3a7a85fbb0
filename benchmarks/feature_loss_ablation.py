"""Feature-domain against index-domain distortion (issue 15): fine-tune the shipped
hyperprior from the same weights, data, seed and steps with each loss, then measure the
feature-domain error and the estimated rate on held-out inputs of the families it was
tuned on and of one it never saw.

    PYTHONPATH=$PWD python benchmarks/feature_loss_ablation.py --train-corpus /work/corpus_train \\
        --test-corpus /work/corpus --steps 1000 --out /work/ablate \\
        --runs index:0.15,index:0.6,feature:0.15,feature:0.6 [--markdown]

Training: ``featcodec.codecs.learned.train.train`` from the shipped ``hyperprior`` quality
``--quality`` (its own lambda; ``shipped_checkpoint``: its hyper-latent density fitted
again first, which the session-8 runs of docs/learned.md did not do), on the train split of
``--train-corpus`` restricted to ``--families`` (default cnn, latent, vit: the LLM is left
out), each ``--runs`` entry
(``distortion:lambda``; default index and feature at the quality's own lambda), resumable
(each run is a run directory under ``--out``). The corpora: ``python -m featcodec.features
extract --out /work/corpus_train --families cnn latent vit --n-train 16 --n-val 0 --n-test 0``
and the 256-input test split of docs/corpus.md.

Evaluation, per tap of ``--test-corpus`` (vit layer9, cnn features13, latent latent256,
llm hidden15): a 256-level Lloyd-Max transform fitted on its first 4 test features, then
the next ``--n-eval`` features: plane of indices, edge-padded to a multiple of 64, the
network's forward pass in eval mode (rounded latents), the output rounded to indices and
mapped back through the levels. Reported: MSE in the feature domain as a fraction of each
tensor's variance (mean over inputs) and the rate estimated from the likelihoods (bits
per value). These are the network's own estimates, not coded streams.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TAPS = {"vit": "layer9", "cnn": "features13", "latent": "latent256", "llm": "hidden15"}


def evaluate(net, test_corpus: str, n_eval: int) -> dict[str, tuple[float, float]]:
    """family -> (mean MSE / variance, mean estimated bits per value)."""
    import torch

    from featcodec.codecs.learned.data import TapTransform, load_manifest, to_plane

    entries = load_manifest(test_corpus)
    out = {}
    net.eval()
    for fam, tap in TAPS.items():
        es = sorted((e for e in entries if e["family"] == fam and e["tap"] == tap and e["split"] == "test"),
                    key=lambda e: str(e["input_id"]))
        if len(es) < 4 + n_eval:
            continue
        tr = TapTransform.fit("dtufc", np.concatenate([np.load(e["abspath"]).ravel() for e in es[:4]]))
        rel, bpv = [], []
        for e in es[4:4 + n_eval]:
            plane = to_plane(np.load(e["abspath"]).astype(np.float32), fam)
            u = tr.to_unit(plane)
            H, W = u.shape
            padded = np.pad(u, ((0, -H % 64), (0, -W % 64)), mode="edge")
            with torch.no_grad():
                res = net(torch.from_numpy(padded)[None, None])
            x_hat = res["x_hat"][0, 0, :H, :W].numpy()
            y = tr.from_unit(np.clip(x_hat, 0, 1))
            var = float(np.var(plane.astype(np.float64)))
            rel.append(float(np.mean((y.astype(np.float64) - plane) ** 2)) / var)
            bits = sum(float(-torch.log2(l).sum()) for l in res["likelihoods"].values())
            bpv.append(bits / padded.size)
        out[fam] = (float(np.mean(rel)), float(np.mean(bpv)))
    return out


def error_by_band(net, test_corpus: str, family: str = "vit", n: int = 3) -> list[str]:
    """Where the feature-domain error of ``net`` lies on ``n`` held-out inputs of
    ``family``: per band of indices (the bottom 8, the bulk, the top 8), its share of the
    values, its share of the squared error and its mean index error."""
    import torch

    from featcodec.codecs.learned.data import TapTransform, load_manifest, to_plane

    es = sorted((e for e in load_manifest(test_corpus) if e["family"] == family and e["tap"] == TAPS[family]
                 and e["split"] == "test"), key=lambda e: str(e["input_id"]))
    tr = TapTransform.fit("dtufc", np.concatenate([np.load(e["abspath"]).ravel() for e in es[:4]]))
    lines = []
    net.eval()
    for e in es[4:4 + n]:
        plane = to_plane(np.load(e["abspath"]).astype(np.float32), family)
        u = tr.to_unit(plane)
        H, W = u.shape
        with torch.no_grad():
            x_hat = net(torch.from_numpy(np.pad(u, ((0, -H % 64), (0, -W % 64)), mode="edge"))[None, None])
        got = np.clip(np.rint(x_hat["x_hat"][0, 0, :H, :W].numpy() * 255), 0, 255).astype(int)
        idx = np.rint(u * 255).astype(int)
        err = (tr.levels[got].astype(np.float64) - plane) ** 2
        for lo, hi in ((0, 8), (8, 248), (248, 256)):
            m = (idx >= lo) & (idx < hi)
            lines.append(f"{e['input_id']} indices {lo}-{hi - 1}: {100 * m.mean():.2f}% of the values, "
                         f"{100 * err[m].sum() / err.sum():.1f}% of the error, mean index error "
                         f"{np.abs(got - idx)[m].mean() if m.any() else 0:.1f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-corpus", required=True)
    ap.add_argument("--test-corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--quality", type=int, default=6)
    ap.add_argument("--families", default="cnn,latent,vit")
    ap.add_argument("--n-eval", type=int, default=12)
    ap.add_argument("--runs", default=None,
                    help="comma list of distortion:lambda (default: index and feature at the quality's lambda)")
    ap.add_argument("--bands", action="store_true",
                    help="only print where the shipped model's error lies on 3 held-out ViT inputs")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    from featcodec.codecs.learned import codec as lc
    from featcodec.codecs.learned.models import build_model
    from featcodec.codecs.learned.train import shipped_checkpoint, train

    if a.bands:
        print("\n".join(error_by_band(lc.load_model("hyperprior", a.quality).net, a.test_corpus)))
        return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    lmbda = shipped_checkpoint("hyperprior", a.quality, out / "init.pt", a.train_corpus,
                               [f for f in a.families.split(",") if f])
    results = {"shipped": evaluate(lc.load_model("hyperprior", a.quality).net, a.test_corpus, a.n_eval)}
    runs = [r.split(":") for r in a.runs.split(",")] if a.runs else [("index", lmbda), ("feature", lmbda)]
    for distortion, lam in runs:
        lam = float(lam)
        run = out / f"{distortion}_{lam:g}"
        train(a.train_corpus, str(run), lmbda=lam, steps=a.steps, init=str(out / "init.pt"),
              families=[f for f in a.families.split(",") if f], distortion=distortion, progress=False,
              save_every=50, log_every=25)
        import torch

        net = build_model({"arch": "hyperprior", "N": 48, "M": 192})
        net.load_state_dict(torch.load(run / "ckpt.pt", map_location="cpu", weights_only=False)["model"])
        net.update(force=True)
        results[f"{distortion} loss, lambda {lam:g}, {a.steps} steps"] = evaluate(net, a.test_corpus, a.n_eval)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    for k, v in results.items():
        print(k, {f: f"{m:.4f} MSE/var, {b:.3f} bpv" for f, (m, b) in v.items()})
    if a.markdown:
        fams = list(TAPS)
        print("\n| model | " + " | ".join(f"{f} MSE/var | {f} bpv" for f in fams) + " |")
        print("|---|" + "---:|---:|" * len(fams))
        for k, v in results.items():
            print(f"| {k} | " + " | ".join(f"{v[f][0]:.4f} | {v[f][1]:.3f}" if f in v else "- | -" for f in fams) + " |")


if __name__ == "__main__":
    main()
