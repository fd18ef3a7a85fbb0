"""Indexed-CDF rANS vs CompressAI's RansEncoder/RansDecoder on GaussianConditional tables.

Run:  PYTHONPATH=$PWD python benchmarks/entropy_indexed.py

1M latents with scales uniform in [0.2, 20], symbols ~ N(0, scale), tables from a real
GaussianConditional (update() with the default scale table). Thread CPU time, best of 3
for featcodec, 1 run for CompressAI (its inputs are Python lists prepared beforehand).
"""
import time, numpy as np, torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table
from compressai.ans import RansEncoder, RansDecoder
from featcodec.stream.rans import encode_with_indexes, decode_with_indexes, prepare_cdfs
gc = GaussianConditional(None); gc.update_scale_table(get_scale_table()); gc.update()
rng = np.random.default_rng(0); n = 1_000_000
scales = torch.tensor(rng.uniform(0.2, 20, n), dtype=torch.float32)
idx = gc.build_indexes(scales).int().numpy()
sym = np.round(rng.normal(0, 1, n) * scales.numpy()).astype(np.int32)
cdfs, lengths, offsets = prepare_cdfs(gc._quantized_cdf, gc._cdf_length, gc._offset)
L = (sym.tolist(), idx.tolist(), gc._quantized_cdf.tolist(), gc._cdf_length.tolist(), gc._offset.tolist())
def best(f, r=3):
    b=1e9
    for _ in range(r):
        t=time.thread_time(); o=f(); b=min(b,time.thread_time()-t)
    return b,o
te,d = best(lambda: encode_with_indexes(sym, idx, cdfs, lengths, offsets))
td,y = best(lambda: decode_with_indexes(d, idx, cdfs, lengths, offsets))
assert (y==sym).all()
ce,rd = best(lambda: RansEncoder().encode_with_indexes(*L), 1)
cd,ry = best(lambda: RansDecoder().decode_with_indexes(rd, L[1], L[2], L[3], L[4]), 1)
assert ry == sym.tolist()
print(f"| featcodec | {n/te/1e6:.1f} | {n/td/1e6:.1f} | {len(d):,} |")
print(f"| compressai | {n/ce/1e6:.1f} | {n/cd/1e6:.1f} | {len(rd):,} |")
print(f"ratio enc {ce/te:.1f}x dec {cd/td:.1f}x")
