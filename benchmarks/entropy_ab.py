"""A/B timing of several builds of featcodec._core in ONE process (static 8-bit rANS).

Run:  PYTHONPATH=$PWD python benchmarks/entropy_ab.py OLD.so NEW.so [--rounds 5] [--reps 5]

On a shared machine whole-run speeds swing by +-30% from one minute to the next, so two
builds timed in separate runs cannot be compared. This loads every given build of the
extension (copies of ``featcodec/_core*.so``, e.g. one built from the old commit) side by
side, and times them alternately on the benchmark's symbols (``benchmarks/entropy.py``'s
sources): each round times every build (best of --reps calls, thread CPU time, one thread,
through ``_core`` directly), and the table reports the median and best over the rounds.
It also checks that every build writes the same bytes and decodes them back; with
--any-bytes (builds that choose another table precision, say) each build decodes its own
stream and the sizes are reported against the empirical entropy instead.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import featcodec  # noqa: E402,F401  (the error classes the builds translate to)
from entropy import entropy_bytes, sources  # noqa: E402


def load(path: str, index: int):
    """Load one build of the extension module from `path`, as module `_abN._core`.

    The name must differ per build: pybind11 (3.x) caches the module objects it creates
    by their full name (in the interpreter's state dict), so loading a second build under
    the same name returns the first build's module. The init function is found from the
    last component (`PyInit__core`), so any package prefix works without a package.
    """
    name = f"_ab{index}._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    if os.path.realpath(mod.__file__) != os.path.realpath(path):
        raise SystemExit(f"{path}: got the module of {mod.__file__} instead")
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help="paths of _core*.so builds to compare")
    ap.add_argument("--n", type=int, default=4_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--any-bytes", action="store_true",
                    help="allow the builds to write different bytes (report their sizes)")
    args = ap.parse_args()
    mods = [load(p, i) for i, p in enumerate(args.builds)]
    if len({id(m) for m in mods}) != len(mods):
        raise SystemExit("two builds resolved to the same module object")
    names = [os.path.basename(p) for p in args.builds]
    src = sources(args.n, np.random.default_rng(0))
    clock, mb = time.thread_time, args.n / 1e6
    res = {(b, s, op): [] for b in range(len(mods)) for s in src for op in ("encode", "decode")}
    sizes = {}
    for _ in range(args.rounds):
        for name, x in src.items():
            ref = None
            for b, mod in enumerate(mods):
                best = float("inf")
                for _ in range(args.reps):
                    t = clock()
                    data = mod.rans_encode_static(x, 1)
                    best = min(best, clock() - t)
                res[(b, name, "encode")].append(mb / best)
                sizes[(b, name)] = len(data)
                if ref is None:
                    ref = data
                elif data != ref and not args.any_bytes:
                    raise SystemExit(f"{names[b]} writes other bytes than {names[0]} on {name}")
                best = float("inf")
                for _ in range(args.reps):
                    t = clock()
                    y = mod.rans_decode_static(data, x.size, 1, None)
                    best = min(best, clock() - t)
                res[(b, name, "decode")].append(mb / best)
                if not np.array_equal(y, x):
                    raise SystemExit(f"{names[b]} does not round-trip {name}")
    print(f"{args.n:,} uint8 symbols, one thread, thread CPU time; MB/s median (best) of "
          f"{args.rounds} rounds, each best of {args.reps}\n")
    print("| source | op | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for name in src:
        for op in ("encode", "decode"):
            cells = [f"{np.median(res[(b, name, op)]):.0f} ({max(res[(b, name, op)]):.0f})"
                     for b in range(len(mods))]
            print(f"| {name} | {op} | " + " | ".join(cells) + " |")
        if args.any_bytes:
            h = entropy_bytes(src[name])
            cells = [f"{100 * (sizes[(b, name)] / h - 1):+.3f}%" for b in range(len(mods))]
            print(f"| {name} | size vs entropy | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
