"""featcodec.integrations.distributed over a real gloo process group: two processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import featcodec
from featcodec import distributed as fcd

WORKER = Path(__file__).with_name("dist_worker.py")
TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(scenario: str, tmp_path: Path, env: dict | None = None) -> list[dict]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    try:
        return _run_once(scenario, tmp_path, env)
    except _PortTaken:  # another process took the free port between probe and bind
        return _run_once(scenario, tmp_path, env)


class _PortTaken(Exception):
    pass


def _run_once(scenario: str, tmp_path: Path, env: dict | None) -> list[dict]:
    port = _free_port()
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    e = {**os.environ, **(env or {})}
    # the workers import featcodec exactly as this test process does
    e["PYTHONPATH"] = os.pathsep.join([str(Path(featcodec.__file__).parents[1]), e.get("PYTHONPATH", "")])
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), scenario, str(r), str(port), str(outs[r])],
            env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for r in range(2)
    ]
    logs = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=TIMEOUT)
            logs.append(err)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = [p.returncode for p in procs]
    if codes != [0, 0] and any("Address already in use" in log for log in logs):
        raise _PortTaken()
    assert codes == [0, 0], "\n".join(f"rank {r} exit {c}:\n{logs[r][-2500:]}" for r, c in enumerate(codes))
    return [json.loads(o.read_text()) for o in outs]


def test_send_recv_exact_over_gloo(tmp_path):
    r0, r1 = _run("exact", tmp_path)
    assert r1["exact"] == [True] * 8
    assert r1["foreign"] == "FormatError"
    raw = [1 * 96 * 14 * 14 * 4, 2 * 64 * 96 * 2, 3 * 7 * 2, 17 * 33 * 8]
    # 6-bit and 4-bit codes of float tensors are smaller than the raw bytes, header included,
    # for every tensor big enough to amortise the stream header
    assert all(s < r for s, r in zip(r0["sent"][:2], raw[:2]))
    assert all(s < r for s, r in zip(r0["isent"][:2], raw[:2]))


def _taef2_or_skip():
    try:
        from featcodec.features.latent import taef2_dir

        taef2_dir()
    except Exception as e:  # the loader or the weights are missing
        pytest.skip(f"TAEF2 not available: {e}")


def test_taef2_pipeline_over_gloo(tmp_path):
    _taef2_or_skip()
    r0, r1 = _run("pipeline", tmp_path)
    assert r0["transform_id"] == r1["transform_id"]  # the fit is deterministic across processes
    raw, sent = r0["raw_bytes"], r0["bytes_sent"]
    assert raw == 2 * 32 * 16 * 16 * 4
    assert sent < raw / 4.5  # 6-bit indices, entropy coded, plus headers
    # the decoded image agrees with the uncut model's output
    assert min(r1["psnr"]) > 30, r1
    print(f"\nTAEF2 pipeline: {raw} raw bytes -> {sent} sent ({raw / sent:.2f}x), PSNR vs uncut {r1['psnr']}")


def test_not_initialised_is_a_clear_error():
    if dist.is_available() and dist.is_initialized():
        pytest.skip("a process group is already initialised here")
    with pytest.raises(featcodec.InputError, match="init_process_group"):
        fcd.send(torch.ones(4), 1)
    with pytest.raises(featcodec.InputError, match="init_process_group"):
        fcd.recv(0)


def test_raw_nbytes():
    assert fcd.raw_nbytes(torch.ones(3, 5, dtype=torch.bfloat16)) == 30
    import numpy as np

    assert fcd.raw_nbytes(np.ones((2, 2), np.float64)) == 32
