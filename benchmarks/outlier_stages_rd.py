"""Ablation of the values -> values stages on the bundled real features: plain, outliers,
per-token and per-channel scales, the Hadamard rotation and their combinations, with the
index codec, in the feature domain (whole streams).

Every tensor is coded in its token layout (last axis = hidden size): LLM hidden states
and ViT tokens as they are; keys and values ``(1, heads, tokens, head_dim)`` as ``(1,
tokens, heads * head_dim)``, so that a channel is one head's dimension and the rotation's
blocks are the heads; CNN maps and latents ``(1, C, H, W)`` channels last, ``(1, H, W,
C)``. Plain coding of that layout is the baseline.

Outputs (``--markdown``): at 2, 3 and 4 bits, bits per value and SNR (dB) of each setting;
the mean change of the feature-domain MSE at equal rate over 1-8 bits (log-MSE
interpolated linearly in bits per value over the rate range both curves cover; negative:
better than plain); ``max_error`` rows (plain and outliers: the only settings that keep
the bound); the same equal-rate change of the token-relative error (each token's squared
error over its squared norm, averaged over tokens). ``--plot PATH``: rate-distortion curves of the SmolLM2 tensors and a ViT layer.

    PYTHONPATH=$PWD python benchmarks/outlier_stages_rd.py --markdown [--plot docs/img/outlier_stages_rd.png]
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import featcodec  # noqa: E402
from outliers_rd import mean_db_change  # noqa: E402

K = 8  # outliers: the SmolLM2 hidden state has a handful of massive activations
SETTINGS: dict[str, dict] = {
    "plain": {},
    f"outliers={K}": {"outliers": K},
    "scales=token": {"scales": "token"},
    "scales=channel": {"scales": "channel"},
    "rotation": {"rotation": True},
    "outliers+rotation": {"outliers": K, "rotation": True},
    "rotation+scales=token": {"rotation": True, "scales": "token"},
    "outliers+scales=channel": {"outliers": K, "scales": "channel"},
    "outliers+rotation+scales=token": {"outliers": K, "rotation": True, "scales": "token"},
}


def token_layout(name: str, x: np.ndarray) -> np.ndarray:
    """The tensor with its hidden axis last (see the module docstring)."""
    if name.startswith(("llm__key", "llm__value")):
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1))
    if name.startswith(("cnn__", "latent__")):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def point(x: np.ndarray, **kw) -> tuple[float, float, float]:
    """(bits per value of the whole stream, feature-domain MSE, token-relative MSE: the
    mean over tokens of |error|^2 / |token|^2, what a consumer that normalises each token
    first, as an LLM's next RMSNorm does, sees)."""
    blob = featcodec.encode(x, **kw)
    y = featcodec.decode(blob).astype(np.float64)
    e = ((y - x) ** 2).reshape(-1, x.shape[-1]).sum(1)
    n = (x.astype(np.float64) ** 2).reshape(-1, x.shape[-1]).sum(1)
    return 8 * len(blob) / x.size, float(np.mean((y - x) ** 2)), float(np.mean(e[n > 0] / n[n > 0]))


def snr(x: np.ndarray, mse: float) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / max(mse, 1e-300)))


def run(names: list[str] | None = None) -> dict:
    out = {}
    for path in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / "*.npy"))):
        name = Path(path).stem
        if names and name not in names:
            continue
        x = token_layout(name, np.load(path).astype(np.float32))
        rec = {"shape": list(x.shape), "curves": {}, "token_curves": {}, "max_error": {}}
        for label, kw in SETTINGS.items():
            pts = [point(x, bits=b, **kw) for b in range(1, 9)]
            rec["curves"][label] = [[r, m] for r, m, _ in pts]
            rec["token_curves"][label] = [[r, t] for r, _, t in pts]
        e = float(0.1 * np.std(x))
        rec["max_error_value"] = e
        for label, kw in (("plain", {}), (f"outliers={K}", {"outliers": K})):
            rec["max_error"][label] = point(x, max_error=e, **kw)[:2]
        out[name] = rec
        print(f"{name}: done", file=sys.stderr)
    return out


def markdown(res: dict) -> str:
    labels = list(SETTINGS)
    lines = ["### Bits per value / SNR (dB) at 2, 3, 4 bits", "",
             "| tensor | bits | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for name, rec in res.items():
        for b in (2, 3, 4):
            cells = []
            for label in labels:
                r = rec["curves"][label][b - 1][0]
                cells.append(f"{r:.2f} / {rec['snr'][label][b - 1]:.1f}")
            lines.append(f"| {name} | {b} | " + " | ".join(cells) + " |")
    lines += ["", "### Mean MSE change at equal rate (1-8 bits), dB; negative = better than plain", "",
              "| tensor | shape (token layout) | " + " | ".join(labels[1:]) + " |", "|---|---|" + "---|" * (len(labels) - 1)]
    for name, rec in res.items():
        c = {k: (np.array([p[0] for p in v]), np.array([p[1] for p in v])) for k, v in rec["curves"].items()}
        lines.append(f"| {name} | {tuple(rec['shape'])} | "
                     + " | ".join(f"{mean_db_change(c['plain'], c[k]):+.2f}" for k in labels[1:]) + " |")
    lines += ["", "### Mean token-relative error change at equal rate (1-8 bits), dB; negative = better than plain", "",
              "| tensor | " + " | ".join(labels[1:]) + " |", "|---|" + "---|" * (len(labels) - 1)]
    for name, rec in res.items():
        c = {k: (np.array([p[0] for p in v]), np.array([p[1] for p in v])) for k, v in rec["token_curves"].items()}
        lines.append(f"| {name} | " + " | ".join(f"{mean_db_change(c['plain'], c[k]):+.2f}" for k in labels[1:]) + " |")
    lines += ["", "### max_error = 0.1 x std(x): bits per value / SNR (dB)", "",
              f"| tensor | plain | outliers={K} |", "|---|---|---|"]
    for name, rec in res.items():
        lines.append(f"| {name} | " + " | ".join(f"{rec['max_error'][k][0]:.2f} / {rec['max_error_snr'][k]:.1f}"
                                                  for k in ("plain", f"outliers={K}")) + " |")
    return "\n".join(lines)


def add_snr(res: dict) -> None:
    for name, rec in res.items():
        path = ROOT / "tests" / "data" / "features" / f"{name}.npy"
        x = token_layout(name, np.load(path).astype(np.float32))
        rec["snr"] = {k: [snr(x, m) for _, m in v] for k, v in rec["curves"].items()}
        rec["max_error_snr"] = {k: snr(x, v[1]) for k, v in rec["max_error"].items()}


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("llm__hidden15", "llm__key15", "llm__value15", "vit__layer11") if n in res]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6))
    for ax, name in zip(np.atleast_1d(axes), names):
        for label in SETTINGS:
            rate = [p[0] for p in res[name]["curves"][label]]
            ax.plot(rate, res[name]["snr"][label], marker=".", label=label, lw=1)
        ax.set_xlim(0, 5)
        ax.set_title(name)
        ax.set_xlabel("bits per value (whole stream)")
        ax.set_ylabel("SNR (dB)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", help="also write the measurements here")
    ap.add_argument("--plot", help="write rate-distortion curves (PNG) here")
    ap.add_argument("--only", nargs="*", help="tensor names (default: all)")
    a = ap.parse_args()
    res = run(a.only)
    add_snr(res)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    if a.plot:
        plot(res, a.plot)
    if a.markdown:
        print(markdown(res))
    else:
        for name, rec in res.items():
            print(name, {k: [round(s, 1) for s in v[1:4]] for k, v in rec["snr"].items()})


if __name__ == "__main__":
    main()
