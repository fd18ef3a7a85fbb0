"""How much a learned codec could gain on the planes it codes (issue 15): the redundancy
of the 8-bit DT-UFC index planes of real features, and the learned codec against plain
entropy-coded scalar quantization of the same planes, in the index domain.

    PYTHONPATH=$PWD python benchmarks/plane_redundancy.py --corpus /work/corpus [--n 8] [--markdown]
    PYTHONPATH=$PWD python benchmarks/plane_redundancy.py --corpus /work/corpus --n 4 --autoencoder

Planes: per family tap (vit layer9, cnn features13, latent latent256, llm hidden15), a
256-level Lloyd-Max transform fitted on the first 4 test features, then the next ``--n``
test features as the learned codecs' input planes (``featcodec.codecs.learned.data``:
``to_plane``, ``TapTransform``), indices 0..255.

Redundancy, pooled over the family's planes (bits per value, empirical):

* ``H0``: the entropy of the indices (8 when the transform balances them perfectly);
* ``H col``: the mean entropy of each plane column on its own (what one static table per
  column reaches, table costs left out);
* ``H|left``, ``H|up``: the conditional entropy of an index given its left / upper
  neighbour (a 256 x 256 joint histogram; what a first-order context model reaches);
* ``rho h``, ``rho v``: the lag-1 correlation of the indices along rows / columns, and the
  high-rate coding gain a transform could get on a separable Gauss-Markov source with those
  correlations, ``0.5 log2(1 / ((1 - rho_h^2)(1 - rho_v^2)))`` bits per value.

Index-domain rate-distortion on the same planes (RMSE in index steps): the shipped
``hyperprior`` at every quality (rounded output, the network's own rate estimate, as
benchmarks/feature_loss_ablation.py measures it), against uniform scalar quantization of
the indices with step 2..256 (mid-point reconstruction) at the empirical entropy of the
quantized indices with one table per column (a lower bound on a static-table coder).
The learned codec gains over scalar quantization only where it needs fewer bits at the
same RMSE.

``--autoencoder``: the shipped hyperprior's error without quantization (``g_s(g_a(x))``)
and with rounded latents but no entropy model, at qualities 3 and 6: what no lambda can
remove.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TAPS = {"vit": "layer9", "cnn": "features13", "latent": "latent256", "llm": "hidden15"}
STEPS = (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def entropy(counts: np.ndarray) -> float:
    """Bits per symbol of the empirical distribution ``counts`` (any shape, summed over all)."""
    c = counts[counts > 0].astype(np.float64)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def conditional_entropy(a: np.ndarray, b: np.ndarray) -> float:
    """H(a | b) of paired index arrays (values 0..255), empirical."""
    joint = np.bincount(a.astype(np.int64) * 256 + b, minlength=65536).reshape(256, 256)
    return entropy(joint) - entropy(joint.sum(axis=0))


def column_entropy(planes: list[np.ndarray]) -> float:
    """Mean over all columns of all planes of the column's own entropy, weighted by values."""
    bits = n = 0.0
    for p in planes:
        for col in p.T:
            bits += entropy(np.bincount(col, minlength=256)) * col.size
            n += col.size
    return bits / n


def lag_correlation(planes: list[np.ndarray], axis: int) -> float:
    a = np.concatenate([(p[:, :-1] if axis == 1 else p[:-1]).ravel() for p in planes]).astype(np.float64)
    b = np.concatenate([(p[:, 1:] if axis == 1 else p[1:]).ravel() for p in planes]).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def planes_of(corpus: str, family: str, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(index planes, their unit planes) of ``n`` test features of the family's tap."""
    from featcodec.codecs.learned.data import TapTransform, load_manifest, to_plane

    es = sorted((e for e in load_manifest(corpus) if e["family"] == family and e["tap"] == TAPS[family]
                 and e["split"] == "test"), key=lambda e: str(e["input_id"]))
    tr = TapTransform.fit("dtufc", np.concatenate([np.load(e["abspath"]).ravel() for e in es[:4]]))
    units = [tr.to_unit(to_plane(np.load(e["abspath"]).astype(np.float32), family)) for e in es[4:4 + n]]
    return [np.rint(u * 255).astype(np.int64) for u in units], units


def net_point(net, units: list[np.ndarray]) -> tuple[float, float]:
    """(estimated bits per value, index RMSE) of a hyperprior network on these unit planes
    (edge-padded to multiples of 64, rounded output)."""
    import torch

    net.eval()
    bits = sq = n = 0.0
    for u in units:
        H, W = u.shape
        padded = np.pad(u, ((0, -H % 64), (0, -W % 64)), mode="edge")
        with torch.no_grad():
            res = net(torch.from_numpy(padded.astype(np.float32))[None, None])
        got = np.clip(np.rint(res["x_hat"][0, 0, :H, :W].numpy() * 255), 0, 255)
        sq += float(((got - np.rint(u * 255)) ** 2).sum())
        n += u.size
        bits += sum(float(-torch.log2(l).sum()) for l in res["likelihoods"].values()) * u.size / padded.size
    return bits / n, (sq / n) ** 0.5


def shipped(quality: int):
    """The shipped hyperprior network at ``quality``."""
    from featcodec.codecs.learned import codec as lc

    return lc.load_model("hyperprior", quality).net


def learned_points(units: list[np.ndarray]) -> list[tuple[int, float, float]]:
    """(quality, estimated bits per value, index RMSE) of the shipped hyperprior."""
    from featcodec.codecs.learned import codec as lc

    qualities = sorted(e["quality"] for e in lc.manifest()["models"] if e["codec"] == "hyperprior")
    return [(q, *net_point(shipped(q), units)) for q in qualities]


def autoencoder_floor(net, units: list[np.ndarray]) -> tuple[float, float]:
    """Index RMSE of a hyperprior network with no quantization at all, ``g_s(g_a(x))``, and
    with rounded latents only, ``g_s(round(g_a(x)))``."""
    import torch

    net.eval()
    sq = [0.0, 0.0]
    n = 0
    for u in units:
        H, W = u.shape
        x = torch.from_numpy(np.pad(u, ((0, -H % 64), (0, -W % 64)), mode="edge").astype(np.float32))[None, None]
        ref = np.rint(u * 255)
        with torch.no_grad():
            y = net.g_a(x)
            for i, lat in enumerate((y, torch.round(y))):
                got = np.clip(np.rint(net.g_s(lat)[0, 0, :H, :W].numpy() * 255), 0, 255)
                sq[i] += float(((got - ref) ** 2).sum())
        n += u.size
    return (sq[0] / n) ** 0.5, (sq[1] / n) ** 0.5


def scalar_points(planes: list[np.ndarray]) -> list[tuple[int, float, float]]:
    """(step, bits per value with a table per column, index RMSE) of uniform scalar quantization."""
    out = []
    for step in STEPS:
        q = [p // step for p in planes]
        rec = [np.minimum(qq * step + (step - 1) / 2, 255) for qq in q]
        rmse = float(np.sqrt(np.mean(np.concatenate([(r - p).ravel() ** 2 for r, p in zip(rec, planes)]))))
        out.append((step, column_entropy([qq.astype(np.int64) for qq in q]), rmse))
    return out


def bits_at(points: list[tuple[int, float, float]], rmse: float) -> float:
    """Bits per value of a (., bits, rmse) curve at this RMSE (log-RMSE interpolated linearly;
    NaN outside the curve)."""
    pts = sorted(points, key=lambda p: p[2])
    r = np.log([p[2] for p in pts])
    b = np.array([p[1] for p in pts])
    x = np.log(rmse)
    return float(np.interp(x, r, b)) if r[0] <= x <= r[-1] else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--n", type=int, default=8, help="test features per family (after the 4 fitted on)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--autoencoder", action="store_true",
                    help="only the autoencoder's own error: index RMSE of g_s(g_a(x)) and g_s(round(g_a(x))) "
                         "at qualities 3 and 6")
    a = ap.parse_args()
    if a.autoencoder:
        print("| family | quality | unquantized latents, index RMSE | rounded latents, index RMSE |")
        print("|---|---:|---:|---:|")
        for fam in TAPS:
            units = planes_of(a.corpus, fam, a.n)[1]
            for q in (3, 6):
                free, rounded = autoencoder_floor(shipped(q), units)
                print(f"| {fam} | {q} | {free:.2f} | {rounded:.2f} |", flush=True)
        return
    red, rd = [], []
    for fam in TAPS:
        planes, units = planes_of(a.corpus, fam, a.n)
        if not planes:
            continue
        flat = np.concatenate([p.ravel() for p in planes])
        left = np.concatenate([p[:, 1:].ravel() for p in planes]), np.concatenate([p[:, :-1].ravel() for p in planes])
        up = np.concatenate([p[1:].ravel() for p in planes]), np.concatenate([p[:-1].ravel() for p in planes])
        rh, rv = lag_correlation(planes, 1), lag_correlation(planes, 0)
        gain = 0.5 * np.log2(1 / ((1 - rh ** 2) * (1 - rv ** 2)))
        red.append((fam, planes[0].shape, flat.size, entropy(np.bincount(flat, minlength=256)), column_entropy(planes),
                    conditional_entropy(*left), conditional_entropy(*up), rh, rv, gain))
        sp, lp = scalar_points(planes), learned_points(units)
        for q, bits, rmse in lp:
            rd.append((fam, q, bits, rmse, bits_at(sp, rmse)))
        print(fam, "done", file=sys.stderr, flush=True)
    if a.markdown:
        print("| family | plane | values | H0 | H col | H given left | H given up | rho h | rho v | Gauss-Markov gain, bits |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for f, shape, n, h0, hc, hl, hu, rh, rv, g in red:
            print(f"| {f} | {shape[0]}x{shape[1]} | {n} | {h0:.3f} | {hc:.3f} | {hl:.3f} | {hu:.3f} | {rh:.3f} | {rv:.3f} | {g:.3f} |")
        print()
        print("| family | hyperprior quality | its bits/value | its index RMSE | scalar quantization, bits/value at that RMSE | learned / scalar |")
        print("|---|---:|---:|---:|---:|---:|")
        for f, q, bits, rmse, sb in rd:
            print(f"| {f} | {q} | {bits:.3f} | {rmse:.2f} | {sb:.3f} | {bits / sb:.2f}x |")
    else:
        for row in red + rd:
            print(row)


if __name__ == "__main__":
    main()
