"""Two work trees side by side: what a change to the encoder does to whole-stream sizes,
feature-domain MSE (after decode) and default encode time, on the same tensors.

    git worktree add /tmp/old <commit>
    cp featcodec/_core*.so /tmp/old/featcodec/   # or build that tree: (cd /tmp/old && tools/devbuild.sh)
    PYTHONPATH=$PWD python benchmarks/tree_compare.py /tmp/old . [--n-test 64] [--rounds 3]

(Copying this tree's compiled core into the old one is right when the change only added
functions to it; if it changed one, build the old tree.) Each tree runs in processes of
its own, with the tree first on ``sys.path``:

- **sizes and MSE**: ``encode(x)`` (and ``bits=6``, ``codec="hyperprior", quality=1``)
  of the ``encode_speed.sized`` tensors at 4 KB, 64 KB and 1 MB, of one and four SmolLM2
  tokens and one ViT token, and
  of the first ``--n-test`` TEST inputs of each family in the corpus
  (``FEATCODEC_CORPUS``, default /work/corpus; docs/corpus.md), decoded and compared with
  the input; printed as new / old ratios (geometric mean and range per group);
- **time**: the default ``encode(x)`` and the session form (``featcodec.Encoder`` with an
  8-bit transform fitted on ``x`` beforehand) of the 64 KB and 1 MB tensors of each family,
  of one and four SmolLM2 tokens and one ViT token (what split inference sends per step),
  and of a 1 KB tensor (the fixed cost), thread CPU time per call, best of ``--reps``
  calls; the two trees' processes alternate ``--rounds`` times and each row keeps its best.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TEST = {"cnn": "cnn/test/features13__*.npy", "latent": "latent/test/latent256__*.npy",
        "llm": "llm/test/hidden15__*.npy", "vit": "vit/test/layer9__*.npy"}
SETTINGS = {"default": {}, "bits=6": {"bits": 6},
            "hyperprior q1": {"codec": "hyperprior", "quality": 1, "check_quality": False}}


def _inputs(n_test: int) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (group, float32 tensor), the same in every process."""
    from encode_speed import FAMILIES, FEATURES, sized

    out = {}
    for fam, name in FAMILIES.items():
        x = np.load(FEATURES / f"{name}.npy").astype(np.float32)
        for size in (4 << 10, 64 << 10, 1 << 20):
            out[f"{fam} {size >> 10} KB"] = (f"{size >> 10} KB", sized(x, size))
    llm = np.load(FEATURES / f"{FAMILIES['llm']}.npy").astype(np.float32)
    vit = np.load(FEATURES / f"{FAMILIES['vit']}.npy").astype(np.float32)
    out["llm one token"] = ("one SmolLM2 token", np.ascontiguousarray(llm[:, :1]))
    out["llm 4 tokens"] = ("4 SmolLM2 tokens", np.ascontiguousarray(llm[:, 40:44]))
    out["vit one token"] = ("one ViT token", np.ascontiguousarray(vit[:, 100:101]))
    corpus = Path(os.environ.get("FEATCODEC_CORPUS", "/work/corpus"))
    for fam, pattern in TEST.items():
        for f in sorted(glob.glob(str(corpus / pattern)))[:n_test]:
            out[f"test {Path(f).stem}"] = (f"test split, {fam}", np.load(f).astype(np.float32))
    return out


def _child(tree: str, job: str, n_test: int, reps: int) -> dict:
    sys.path.insert(0, tree)
    import featcodec

    assert Path(featcodec.__file__).resolve().is_relative_to(Path(tree).resolve()), featcodec.__file__
    sys.path.insert(1, str(HERE))
    inputs = _inputs(n_test)
    out: dict = {}
    if job == "sizes":
        for name, (group, x) in inputs.items():
            for setting, kw in SETTINGS.items():
                if name.startswith("test") and setting != "default":
                    continue
                blob = featcodec.encode(x, **kw)
                y = np.asarray(featcodec.decode(blob), np.float64)
                out[f"{name}|{setting}"] = [group, setting, len(blob), float(np.mean((y - x) ** 2))]
        return out
    timed = {k: v[1] for k, v in inputs.items() if k.endswith(("64 KB", "1024 KB", "token", "tokens"))}
    timed["1 KB"] = np.random.default_rng(0).standard_t(3, (1, 256)).astype(np.float32)
    for name, x in timed.items():
        enc = featcodec.Encoder(featcodec.fit_transform(x, bits=8))  # the session form, fitted on x
        for form, fn in (("default", lambda: featcodec.encode(x)), ("session", lambda: enc.encode(x))):
            fn()
            best = float("inf")
            for _ in range(reps):
                t0 = time.thread_time()
                fn()
                best = min(best, time.thread_time() - t0)
            out[f"{name}|{form}"] = best
    return out


def _run(tree: str, job: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", tree, job, "--n-test", str(args.n_test), "--reps", str(args.reps)]
    env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{tree} ({job}) failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", nargs="?", help="the tree before the change")
    p.add_argument("new", nargs="?", help="the tree after it")
    p.add_argument("--n-test", type=int, default=64, help="TEST inputs per family (default 64)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the timing processes")
    p.add_argument("--reps", type=int, default=20, help="calls per timing, the best kept")
    p.add_argument("--child", nargs=2, metavar=("TREE", "JOB"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.n_test, args.reps)))
        return
    if not (args.old and args.new):
        p.error("give the two trees: OLD NEW")
    old, new = (str(Path(t).resolve()) for t in (args.old, args.new))
    a, b = _run(old, "sizes", args), _run(new, "sizes", args)
    groups: dict[tuple[str, str], list] = {}
    for k, (group, setting, size, mse) in a.items():
        _, _, size2, mse2 = b[k]
        groups.setdefault((group, setting), []).append((size2 / size, mse2 / mse if mse > 0 else 1.0))
    print("| tensors | setting | n | bytes new / old: geomean [min, max] | MSE new / old: geomean [max] |")
    print("|---|---|---:|---|---|")
    for (group, setting), rows in groups.items():
        r = np.array(rows)
        g = np.exp(np.log(r).mean(axis=0))
        print(f"| {group} | {setting} | {len(r)} | {g[0]:.4f} [{r[:, 0].min():.4f}, {r[:, 0].max():.4f}] "
              f"| {g[1]:.5f} [{r[:, 1].max():.5f}] |")
    times: dict[str, dict[str, float]] = {old: {}, new: {}}
    for _ in range(args.rounds):
        for tree in (old, new):
            for k, t in _run(tree, "time", args).items():
                times[tree][k] = min(times[tree].get(k, float("inf")), t)
    print("\n| tensor | encode (thread CPU time, best) | old | new | new / old |")
    print("|---|---|---:|---:|---:|")
    for k in times[old]:
        name, form = k.split("|")
        print(f"| {name} | {form} | {times[old][k] * 1e3:.3f} ms | {times[new][k] * 1e3:.3f} ms "
              f"| {times[new][k] / times[old][k]:.3f} |")


if __name__ == "__main__":
    main()
