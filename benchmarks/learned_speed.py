"""Encode + decode time of a shipped learned codec ("hyperprior" or "elic") against CompressAI's own
``compress()``/``decompress()`` of the same network (same weights, same entropy tables)
on the same input plane, one thread each, best of ``--repeat`` rounds (each round times all
four calls in turn: ours encode, ours decode, CompressAI compress, decompress).

CompressAI gets the float tensor ready-made, edge-padded to the multiple of 64 its
networks need (the padding is not timed); ours is timed from the uint8 index plane
to the payload and back, padding to a multiple of 16 inside (featcodec.codecs.learned.codec).

Usage::

    PYTHONPATH=. python benchmarks/learned_speed.py --corpus /work/corpus --quality 3
    PYTHONPATH=. python benchmarks/learned_speed.py --codec elic --out docs/learned_speed_elic.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def best(fs: list, repeat: int) -> list[float]:
    """Best time of each of ``fs`` over ``repeat`` rounds; each round runs every function
    once, in turn, so a burst of load from elsewhere hits both sides alike."""
    t = [[] for _ in fs]
    for _ in range(repeat):
        for f, ts in zip(fs, t):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
    return [min(ts) for ts in t]


def _nbytes(strings) -> int:
    """Total length of CompressAI's (nested) lists of strings."""
    return len(strings) if isinstance(strings, bytes) else sum(_nbytes(s) for s in strings)


def main() -> None:
    import torch
    import torch.nn.functional as F

    import featcodec
    from featcodec.codecs import get_codec
    from featcodec.codecs.learned.codec import available_qualities, load_model
    from featcodec.codecs.learned.data import load_manifest

    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--codec", choices=("hyperprior", "elic"), default="hyperprior")
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="docs/learned_speed.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    qs = available_qualities(a.codec)
    q = a.quality or qs[len(qs) // 2]
    model = load_model(a.codec, q)
    ref = model.to_compressai()
    codec = get_codec(a.codec)
    seen, rows = set(), []
    for e in load_manifest(a.corpus):
        if e["split"] != "test" or (e["family"], e["tap"]) in seen:
            continue
        seen.add((e["family"], e["tap"]))
        x = np.load(e["abspath"]).astype(np.float32)
        t = featcodec.fit_transform(x, bits=8)
        plane, _ = featcodec.pack(np.asarray(t.forward(x)))
        plane = np.ascontiguousarray(plane)
        h, w = plane.shape
        xt = torch.from_numpy(plane.astype(np.float32) / 255.0)[None, None]
        xp = F.pad(xt, (0, (-w) % 64, 0, (-h) % 64), mode="replicate")
        payload, params = codec.encode_plane(plane, 8, quality=q)
        with torch.inference_mode():
            c = ref.compress(xp)
            ours_e, ours_d, cai_e, cai_d = best([
                lambda: codec.encode_plane(plane, 8, quality=q),
                lambda: codec.decode_plane(payload, plane.shape, 8, params),
                lambda: ref.compress(xp),
                lambda: ref.decompress(c["strings"], c["shape"])], a.repeat)
        row = dict(codec=a.codec, family=e["family"], tap=e["tap"], plane=[h, w], quality=q,
                   ours_encode_s=ours_e, ours_decode_s=ours_d, compressai_compress_s=cai_e,
                   compressai_decompress_s=cai_d, ours_bytes=len(payload),
                   compressai_bytes=_nbytes(c["strings"]),
                   speedup=(cai_e + cai_d) / (ours_e + ours_d))
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print("| family | tap | plane | ours enc+dec (ms) | CompressAI compress+decompress (ms) | "
          "speed-up | payload ours / CompressAI (bytes) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['tap']} | {r['plane'][0]}x{r['plane'][1]} | "
              f"{1e3 * (r['ours_encode_s'] + r['ours_decode_s']):.0f} | "
              f"{1e3 * (r['compressai_compress_s'] + r['compressai_decompress_s']):.0f} | "
              f"{r['speedup']:.2f}x | {r['ours_bytes']} / {r['compressai_bytes']} |")


if __name__ == "__main__":
    main()
