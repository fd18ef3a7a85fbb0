"""Where one encode of a small tensor spends its time: the compiled calls, timed by
wrapping them, and the Python around them (the rest), per call.

    PYTHONPATH=$PWD python benchmarks/encode_breakdown.py [--shape 1,32,512] [--calls 300]

A Student-t(4) float32 tensor (default 1 x 32 x 512 = 64 KB), an 8-bit transform fitted on
it and registered, one thread, the calling thread's CPU time: ``featcodec.encode(x,
transform=t.id, embed_transform=False)`` (the index codec's default tables search), then
the same with ``tables="single"``. The wrapped calls are the ``featcodec._core``
functions an encode makes (those a build does not have are skipped, so the script also
runs on older commits); wrapping adds a little to the first total, so the unwrapped
totals are printed too. docs/encode.md has the table it gives.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import featcodec  # noqa: E402
from featcodec import _core  # noqa: E402

CALLS = ("quantize_into", "unit_residuals", "group_information", "rans_encode_static", "rans_encode_groups", "rans_grouped_payload",
         "transpose")


def per_call_us(fn, calls: int) -> float:
    """Thread CPU time of ``fn`` per call, microseconds (after 20 warm-up calls)."""
    for _ in range(20):
        fn()
    t0 = time.thread_time_ns()
    for _ in range(calls):
        fn()
    return (time.thread_time_ns() - t0) / calls / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="1,32,512")
    ap.add_argument("--calls", type=int, default=300)
    a = ap.parse_args()
    featcodec.set_num_threads(1)
    x = np.random.default_rng(0).standard_t(4, tuple(int(s) for s in a.shape.split(","))).astype(np.float32)
    t = featcodec.fit_transform(x, bits=8)
    featcodec.register_transform(t)

    def encode(**kw):
        return lambda: featcodec.encode(x, transform=t.id, embed_transform=False, **kw)

    plain = per_call_us(encode(), a.calls)
    try:
        single = per_call_us(encode(tables="single"), a.calls)
    except featcodec.InputError:  # a build before the option
        single = float("nan")
    spent = dict.fromkeys(CALLS, 0)
    for name in CALLS:
        if hasattr(_core, name):
            f = getattr(_core, name)

            def timed(*args, _f=f, _name=name, **kw):
                t0 = time.thread_time_ns()
                try:
                    return _f(*args, **kw)
                finally:
                    spent[_name] += time.thread_time_ns() - t0

            setattr(_core, name, timed)
    wrapped = per_call_us(encode(), a.calls)
    spent = {k: v / (a.calls + 20) / 1e3 for k, v in spent.items() if hasattr(_core, k)}
    print(f"{x.nbytes / 1024:.0f} KB tensor, {a.calls} calls, us per call (thread CPU time):")
    for k, v in spent.items():
        print(f"  {k:22s} {v:8.1f}")
    print(f"  {'Python, the rest':22s} {wrapped - sum(spent.values()):8.1f}")
    print(f"  {'total (wrapped)':22s} {wrapped:8.1f}")
    print(f"  {'total':22s} {plain:8.1f}")
    print(f"  {'total, tables=single':22s} {single:8.1f}")


if __name__ == "__main__":
    main()
