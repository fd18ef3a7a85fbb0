"""One rank of the two-process torch.distributed tests (run by tests/test_distributed.py).

Usage: python dist_worker.py SCENARIO RANK PORT OUT_JSON

Each scenario runs on a gloo group of two processes on 127.0.0.1 and writes its findings
as JSON to OUT_JSON for the test to check.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

import featcodec
from featcodec import distributed as fcd


def _tensors() -> list:
    torch.manual_seed(0)  # the same tensors in both processes
    g = torch.Generator().manual_seed(0)
    heavy = torch.distributions.StudentT(3.0).sample((2, 64, 96))
    return [
        torch.randn(1, 96, 14, 14, generator=g),
        heavy.to(torch.bfloat16),
        torch.randn(3, 7, generator=g).half(),
        np.random.default_rng(1).standard_normal((17, 33)).astype(np.float64),
    ]


def scenario_exact(rank: int) -> dict:
    """Every kind of tensor arrives as featcodec.decode(featcodec.encode(x)) would give it;
    blocking and async forms, tags, any-source receive; a foreign message is refused."""
    out: dict = {}
    xs = _tensors()
    if rank == 0:
        sent = [fcd.send(x, 1, bits=6) for x in xs]
        handles = [fcd.isend(x, 1, tag=7, bits=4) for x in xs]
        out["sent"] = sent
        out["isent"] = [h.wait() for h in handles]
        dist.send(torch.tensor([123, 456], dtype=torch.int64), 1, tag=3)  # not a featcodec message
    else:
        results = []
        for i, x in enumerate(xs):
            got = fcd.recv(src=0 if i % 2 else None)
            want = featcodec.decode(featcodec.encode(x, bits=6))
            results.append(_same(got, want))
        handles = [fcd.irecv(0, tag=7) for _ in xs]
        # waited newest first: each handle still gets the message sent in its position
        for x, h in reversed(list(zip(xs, handles))):
            got = h.wait()
            results.append(_same(got, featcodec.decode(featcodec.encode(x, bits=4))) and h.is_completed())
        out["exact"] = results
        try:
            fcd.recv(src=0, tag=3)
            out["foreign"] = "accepted"
        except featcodec.FormatError as e:
            out["foreign"] = type(e).__name__
    return out


def _same(got, want) -> bool:
    if isinstance(want, torch.Tensor):
        return (
            isinstance(got, torch.Tensor)
            and got.dtype == want.dtype
            and got.shape == want.shape
            and bool(torch.equal(got, want))
        )
    return isinstance(got, np.ndarray) and got.dtype == want.dtype and np.array_equal(got, want)


def scenario_pipeline(rank: int) -> dict:
    """TAEF2 as a two-stage pipeline: encoder on rank 0, decoder on rank 1, the latent
    crossing compressed; rank 1 compares with the uncut model."""
    from featcodec.features.latent import TAEF2
    from featcodec.integrations.split import SplitModel

    m = TAEF2.load()
    model = torch.nn.Sequential(m.encoder, m.decoder).eval()
    images = [TAEF2.image_tensor(i, 128) for i in range(3)]
    split = SplitModel(model, "0", bits=6)
    split.calibrate(images[:1])  # same image, same fit on both ranks: the same transform id
    out: dict = {"transform_id": split.transform.id}
    if rank == 0:
        sent, raw = 0, 0
        handles = []
        with torch.no_grad():
            for img in images[1:]:
                act = split.activation(img)
                raw += fcd.raw_nbytes(act)
                handles.append(fcd.isend(act, 1, transform=split.transform, embed_transform=False))
            sent = sum(h.wait() for h in handles)
        out.update(bytes_sent=sent, raw_bytes=raw)
    else:
        psnrs, maxerr = [], []
        with torch.no_grad():
            for img in images[1:]:
                act = fcd.recv(0, transform=split.transform)
                y = split.tail(act)
                ref = model(img)
                mse = float(((y - ref) ** 2).mean())
                psnrs.append(10 * np.log10(1.0 / mse) if mse > 0 else float("inf"))
                maxerr.append(float((y - ref).abs().max()))
        out.update(psnr=psnrs, max_abs=maxerr)
    return out


def main() -> None:
    scenario, rank, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=timedelta(seconds=60),
    )
    try:
        result = globals()[f"scenario_{scenario}"](rank)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    with open(path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
