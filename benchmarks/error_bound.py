"""Error-bounded coding on real features: featcodec ``encode(x, max_error=e)`` against zfp's
fixed-accuracy mode (``zfpy.compress_numpy(x, tolerance=e)``), the peer that makes the
same promise (every decoded value within ``e`` of the original).

For each family's task tap (``task_fidelity.TAPS``) and its first ``--n-inputs`` TEST
tensors of the corpus, and each bound ``e = r * s`` with ``r`` in ``--relative`` and ``s``
the tensor's robust scale (1.4826 x the median absolute deviation, so the LLM's massive
activation does not set it): stream bytes (whole stream, header included) of both, the
largest error and the MSE of both (checked against the bound), encode + decode time (one
thread, best of ``--repeat``), and with ``--task`` the task metric of both decodes
against the uncompressed output (``task_fidelity.Task``; needs the model packages).

    PYTHONPATH=$PWD python benchmarks/error_bound.py --task --out docs/error_bound
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import best_time  # noqa: E402
from peers import zfp_array  # noqa: E402
from task_fidelity import CORPUS, METRIC_NAMES, TAPS, Task  # noqa: E402

from featcodec.metrics import robust_scale  # noqa: E402

RELATIVE = (4.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.025)


def measure(x: np.ndarray, e: float, repeat: int) -> dict:
    import zfpy

    import featcodec

    ref = x.astype(np.float64)
    te, blob = best_time(lambda: featcodec.encode(x, max_error=e), repeat)
    td, y = best_time(lambda: featcodec.decode(blob), repeat)
    xz = zfp_array(x)
    tze, zf = best_time(lambda: zfpy.compress_numpy(xz, tolerance=e), repeat)
    tzd, yz = best_time(lambda: zfpy.decompress_numpy(zf), repeat)
    yz = yz.reshape(x.shape)
    out = {"bound": e, "bits": featcodec.header(blob)["bits"]}
    for name, yy, size, t in (("featcodec", y, len(blob), te + td), ("zfpy", yz, len(zf), tze + tzd)):
        err = np.abs(yy.astype(np.float64) - ref)
        out[name] = {"bytes": size, "bpfp": size * 8 / x.size, "max_error": float(err.max()),
                     "mse": float(np.mean(err**2)), "ms": 1e3 * t, "decoded": yy}
        assert err.max() <= e, f"{name} broke its bound"
    return out


def run(args: argparse.Namespace) -> list[dict]:
    import featcodec
    from featcodec.features.extract import load_manifest

    featcodec.set_num_threads(1)
    rows = []
    for family in args.families:
        tap = TAPS[family]
        es = sorted(load_manifest(CORPUS, family=family, tap=tap, split="test"), key=lambda e: e["input_id"])
        model = None
        if args.task:
            import torch

            from featcodec.features.models import load_model

            torch.set_num_threads(1)
            model = load_model(family)
        for e in es[: args.n_inputs]:
            x = np.load(e["path"])
            task = Task(family, model, tap, int(e["input_id"]), x) if model is not None else None
            s = robust_scale(x)
            for r in args.relative:
                try:
                    m = measure(x, r * s, args.repeat)
                except featcodec.InputError as exc:  # 16 bits cannot span the range at this bound
                    print(f"{family} {e['input_id']} r={r}: {exc}", file=sys.stderr)
                    rows.append({"family": family, "tap": tap, "input_id": int(e["input_id"]),
                                 "relative": r, "bound": r * s, "unreachable": str(exc)})
                    continue
                row = {"family": family, "tap": tap, "input_id": int(e["input_id"]), "numel": int(x.size),
                       "relative": r, "bound": m["bound"], "bits": m["bits"]}
                for name in ("featcodec", "zfpy"):
                    d = m[name]
                    y = d.pop("decoded")
                    if task is not None:
                        d["metric"] = task.metrics(y)[0]
                    row[name] = d
                rows.append(row)
                print(f"{family} {e['input_id']} r={r}: ours {row['featcodec']['bpfp']:.3f} BPFP, "
                      f"zfpy {row['zfpy']['bpfp']:.3f}", file=sys.stderr)
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Means over inputs per (family, relative bound), over the inputs where it was reachable."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if "unreachable" not in r:
            groups.setdefault((r["family"], r["relative"]), []).append(r)
    out = []
    for (fam, rel), rs in groups.items():
        def mean(name: str, key: str) -> float:
            vals = [r[name][key] for r in rs if key in r[name]]
            return float(np.mean(vals)) if vals else float("nan")

        out.append({"family": fam, "relative": rel, "n": len(rs), "bits": [r["bits"] for r in rs],
                    **{f"{n}_{k}": mean(n, k) for n in ("featcodec", "zfpy")
                       for k in ("bpfp", "max_error", "mse", "ms", "metric")},
                    "size_ratio": float(np.mean([r["zfpy"]["bytes"] / r["featcodec"]["bytes"] for r in rs]))})
    return out


def markdown(summ: list[dict], command: str) -> str:
    lines = [
        "# Error-bounded coding against zfp (fixed accuracy)",
        "",
        f"Made by `{command}` (benchmarks/error_bound.py: method in its docstring). Both codecs",
        "promise every decoded value within the bound; both kept it on every tensor (checked).",
        "The bound is r x the tensor's robust scale (1.4826 x MAD). BPFP counts whole streams.",
        "Times: encode + decode, one thread, best of the repeats. Means over the inputs.",
        "",
        "| family | r | featcodec BPFP | zfpy BPFP | zfpy / featcodec bytes | featcodec MSE | zfpy MSE "
        "| featcodec ms | zfpy ms | task metric featcodec / zfpy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summ:
        metric = (f"{s['featcodec_metric']:.4f} / {s['zfpy_metric']:.4f}"
                  if s["featcodec_metric"] == s["featcodec_metric"] else "-")
        lines.append(
            f"| {s['family']} | {s['relative']:g} | {s['featcodec_bpfp']:.3f} | {s['zfpy_bpfp']:.3f} | "
            f"{s['size_ratio']:.2f}x | {s['featcodec_mse']:.3g} | {s['zfpy_mse']:.3g} | "
            f"{s['featcodec_ms']:.1f} | {s['zfpy_ms']:.1f} | {metric} |")
    fams = sorted({s["family"] for s in summ})
    lines += ["", "zfp's fixed-accuracy mode keeps far inside the bound (compare the MSE columns), so at "
              "equal MSE the two are closer: docs/results.md compares them that way. featcodec's time "
              "includes checking the bound on every value and trying both entropy models of the index "
              "codec (one table, and one per group of columns). featcodec's levels are mid-tread "
              "(one on the tensor's median): at the coarse bounds most values sit on that one level, "
              "which is what makes those streams so small, and what the task metric pays for."]
    lines += ["", "Where 16-bit indices cannot span a tensor's range at the bound (the LLM's massive "
              "activation, ~2e4, below about 0.19), featcodec moves the fewest values of largest "
              "magnitude into its exact outliers section (docs/outliers.md); a row would be missing "
              "only where that took more than 1% of the values."]
    lines += ["", "Task metrics (against the uncompressed feature's output): "
              + "; ".join(f"{f}: {METRIC_NAMES[f][0]}" for f in fams) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", nargs="+", default=list(TAPS), choices=list(TAPS))
    p.add_argument("--n-inputs", type=int, default=4, help="test tensors per family (default 4)")
    p.add_argument("--relative", type=float, nargs="+", default=list(RELATIVE),
                   help="bounds as multiples of each tensor's robust scale")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--task", action="store_true", help="also measure the task metric (model packages)")
    p.add_argument("--out", help="write <out>.json and <out>.md")
    args = p.parse_args(argv)
    rows = run(args)
    summ = summarize(rows)
    md = markdown(summ, "python benchmarks/error_bound.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(md)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps({"rows": rows, "summary": summ}, indent=1) + "\n")
        Path(args.out + ".md").write_text(md)


if __name__ == "__main__":
    main()
