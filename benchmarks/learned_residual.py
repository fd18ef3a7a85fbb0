"""Error-bounded learned streams (learned codec + residual stage) against the index codec's
``max_error`` alone, on the bundled real features (tests/data/features/*.npy).

For each tensor, bound ``e = r * std(x)`` and learned codec at its lowest and top quality, it makes
the learned + residual stream (``featcodec.pipeline.encode`` with the ``"residual"`` stage,
what ``encode(x, codec=..., max_error=e)`` builds) and the index codec's ``max_error=e``
stream, checks that both decode within ``e`` of every value, and reports bits per value of
each (whole streams), the learned part's share (payload + guard) and the residual's, and
which stream ``featcodec.encode(x, codec=..., max_error=e)`` keeps (the smaller; tests/test_residual.py
checks that encode keeps it).

    PYTHONPATH=$PWD python benchmarks/learned_residual.py [--markdown] [--ratios 0.05,0.1,0.25]

With ``--warnings`` it reports instead, for every tensor and every shipped quality, what
``featcodec.encode(x, codec=..., quality=q)`` measures for its QualityWarning
(:func:`featcodec.bounded.check_quality`): the learned stream's bits per value and MSE, and
the index codec's at the largest bits whose stream is no larger ("W": it warns).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402
from featcodec import pipeline  # noqa: E402
from featcodec.codecs.learned.codec import available_qualities  # noqa: E402

STAGES = ["residual", "transform", "pack"]


def row(x: np.ndarray, e: float, codec: str, quality: int) -> dict:
    """Sizes and checks of both streams of ``x`` at bound ``e``."""
    index = featcodec.encode(x, max_error=e)
    learned = pipeline.encode(x, codec, {"residual": e}, {"quality": quality}, STAGES)
    h = featcodec.header(learned)
    for blob in (index, learned):
        err = float(np.abs(featcodec.decode(blob).astype(np.float64) - x).max())
        assert err <= e, (codec, e, err)
    kept = "index" if len(index) <= len(learned) else codec  # featcodec.bounded.encode_bounded's rule
    bpv = lambda n: 8 * n / x.size  # noqa: E731
    return {"index": bpv(len(index)), "learned": bpv(len(learned)),
            "payload": bpv(h["section_lengths"]["payload"]), "residual": bpv(h["section_lengths"]["residual"]),
            "guard": h["codec_params"]["guard"][0] / x.size, "kept": kept}


def warnings_table(pattern: str) -> None:
    """The QualityWarning on every tensor at every quality (markdown)."""
    import warnings

    from featcodec.bounded import check_quality

    codecs = [(c, q) for c in ("elic", "hyperprior") for q in available_qualities(c)]
    print("| tensor | " + " | ".join(f"{c[0]}{q}" for c, q in codecs) + " |")
    print("|---|" + "---|" * len(codecs))
    for path in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / f"{pattern}.npy"))):
        x = np.load(path).astype(np.float32)
        var = float(x.var())
        cells = []
        for c, q in codecs:
            blob, ctx = pipeline.encode_context(x, c, {}, {"quality": q})
            learned = float(np.mean((featcodec.decode(blob).astype(np.float64) - x) ** 2)) / var
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                index = check_quality(x, blob, ctx.state["transform"], {})
            mark = "W " if seen else ""
            other = "-" if index is None else f"{index / var:.3f}"
            cells.append(f"{mark}{8 * len(blob) / x.size:.2f}: {learned:.3f} / {other}")
        print(f"| {Path(path).stem} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--ratios", default="0.05,0.1,0.25")
    ap.add_argument("--tensors", default="*", help="glob over tests/data/features/ names")
    ap.add_argument("--warnings", action="store_true", help="the QualityWarning table instead")
    a = ap.parse_args()
    if a.warnings:
        return warnings_table(a.tensors)
    ratios = [float(r) for r in a.ratios.split(",")]
    codecs = [(c, q) for c in ("elic", "hyperprior") for q in sorted({min(available_qualities(c)),
                                                                       max(available_qualities(c))})]
    if a.markdown:
        print("| tensor | e / std | index max_error BPV | " + " | ".join(
            f"{c} q{q} + residual BPV (learned + residual) | kept" for c, q in codecs) + " |")
        print("|---|---|---|" + "---|---|" * len(codecs))
    for path in sorted(glob.glob(str(ROOT / "tests" / "data" / "features" / f"{a.tensors}.npy"))):
        x = np.load(path).astype(np.float32)
        std = float(x.std())
        for r in ratios:
            rows = [row(x, r * std, c, q) for c, q in codecs]
            name = Path(path).stem
            if a.markdown:
                cells = " | ".join(f"{d['learned']:.3f} ({d['payload']:.3f} + {d['residual']:.3f}) | {d['kept']}"
                                   for d in rows)
                print(f"| {name} | {r:g} | {rows[0]['index']:.3f} | {cells} |", flush=True)
            else:
                for (c, q), d in zip(codecs, rows):
                    print(f"{name:22s} r={r:<5g} index {d['index']:.3f}  {c} q{q}+residual {d['learned']:.3f} "
                          f"(payload {d['payload']:.3f}, residual {d['residual']:.3f}, guarded "
                          f"{100 * d['guard']:.2f}% of values)  kept {d['kept']}", flush=True)


if __name__ == "__main__":
    main()
