"""Fuzz the static rANS decoder: mutated streams (bit flips, cuts, inserted bytes) must
raise a FeatcodecError or decode to an array of the right size, never crash.

Run:  PYTHONPATH=$PWD python tools/fuzz_entropy.py SEED ITERATIONS
"""
import numpy as np, featcodec, sys
from featcodec.stream.rans import *
rng = np.random.default_rng(int(sys.argv[1]))
cases = []
for dt, n in [(np.uint8, 3_000_000), (np.uint16, 50_000), (np.uint8, 1000), (np.uint16, 2_100_000), (np.uint8, 5)]:
    x = np.clip(np.round(rng.laplace(100, 20, n)), 0, np.iinfo(dt).max).astype(dt)
    cases.append((x, encode_symbols(x)))
bad = 0; silent = 0; N = 0
for it in range(int(sys.argv[2])):
    x, d = cases[it % len(cases)]
    b = bytearray(d)
    k = rng.integers(1, 4)
    for _ in range(k):
        op = rng.integers(0, 3)
        if op == 0 and len(b): b[rng.integers(0, len(b))] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and len(b): del b[rng.integers(0, len(b)):]
        else: b[rng.integers(0, len(b) + 1):rng.integers(0, len(b) + 1)] = rng.bytes(int(rng.integers(0, 9)))
    try:
        y = decode_symbols(bytes(b), x.size, threads=2)
        if not np.array_equal(y, x): silent += 1
    except featcodec.FeatcodecError:
        bad += 1
    N += 1
print("iterations", N, "rejected", bad, "silently different", silent)
