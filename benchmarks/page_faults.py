"""Where an encode touches fresh memory: minor page faults (the kernel zeroing a page on its
first touch, in the calling thread's CPU time) per ``featcodec.encode`` call, in total and
inside each compiled call, for the default encode and the session form, on one family's
``encode_speed.sized`` tensor. A diagnostic beside benchmarks/encode_speed.py, which gives
the speeds against zfpy and int8 + zstd (docs/encode.md, session 14).

    PYTHONPATH=$PWD python benchmarks/page_faults.py [--family latent] [--mb 16] [--calls 4]

Counts come from ``resource.getrusage`` (the process's minor faults) around each call of
every ``featcodec._core`` function (wrapped, so the times per call include a little of the
wrapping); what is left is Python's own arrays and bytes. ``FEATCODEC_POOL_MB=0`` shows the
counts without the core's block cache (csrc/pool.h).
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import featcodec  # noqa: E402
from featcodec import _core  # noqa: E402
from encode_speed import FAMILIES, FEATURES, sized  # noqa: E402

FAULTS: collections.Counter = collections.Counter()
SECONDS: collections.Counter = collections.Counter()


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _wrap(name: str, fn):
    def call(*args, **kwargs):
        f0, t0 = _faults(), time.thread_time()
        out = fn(*args, **kwargs)
        FAULTS[name] += _faults() - f0
        SECONDS[name] += time.thread_time() - t0
        return out
    return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="latent", choices=sorted(FAMILIES))
    ap.add_argument("--mb", type=float, default=16, help="tensor size in MiB of float32 (default 16)")
    ap.add_argument("--calls", type=int, default=4, help="encodes counted, after two uncounted ones")
    a = ap.parse_args()
    for name in dir(_core):
        fn = getattr(_core, name)
        if callable(fn) and not name.startswith("_") and not isinstance(fn, type):
            setattr(_core, name, _wrap(name, fn))
    full = np.load(FEATURES / f"{FAMILIES[a.family]}.npy").astype(np.float32)
    x = sized(full, int(a.mb * (1 << 20)))
    session = featcodec.Encoder(featcodec.fit_transform(full, bits=8))
    for form, encode in (("default", lambda: featcodec.encode(x)), ("session", lambda: session.encode(x))):
        for _ in range(2):
            encode()
        FAULTS.clear()
        SECONDS.clear()
        f0, t0 = _faults(), time.thread_time()
        for _ in range(a.calls):
            encode()
        total, seconds = (_faults() - f0) / a.calls, (time.thread_time() - t0) / a.calls
        print(f"{a.family} {x.shape} {form}: {total:.0f} faults a call, {seconds * 1e3:.1f} ms")
        for name, n in FAULTS.most_common():
            if n:
                print(f"  {name:28s} {n / a.calls:7.0f} faults  {SECONDS[name] / a.calls * 1e3:7.2f} ms")
        print(f"  {'outside the compiled calls':28s} {total - sum(FAULTS.values()) / a.calls:7.0f} faults")


if __name__ == "__main__":
    main()
