"""Shared test fixtures."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import featcodec


@pytest.fixture
def run_python(tmp_path_factory):
    """Run ``python *argv`` (e.g. ``"-c", code, arg``) in a fresh process that imports the same featcodec as
    this one (the installed package in CI, the work tree in development).

    The child starts in an empty folder: ``python -c`` puts the current folder first on
    sys.path (so does ``-m``), and from the repository root that would be the uncompiled source tree.
    """
    cwd = tmp_path_factory.mktemp("child")
    pkg_parent = str(Path(featcodec.__file__).resolve().parents[1])

    def run(*argv: object, text: bool = False, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_parent, os.environ.get("PYTHONPATH", "")]))
        return subprocess.run(
            [sys.executable, *map(str, argv)],
            capture_output=True, text=text, env=env, cwd=cwd, check=check, timeout=timeout,
        )

    return run


def on_threads(fn, *counts):
    """``[fn() with featcodec on t threads for t in counts]``, the thread count restored."""
    n = featcodec.get_num_threads()
    try:
        out = []
        for t in counts:
            featcodec.set_num_threads(t)
            out.append(fn())
        return out
    finally:
        featcodec.set_num_threads(n)


def digest(y) -> str:
    """sha256 of a decoded numpy array's bytes (C order)."""
    import hashlib

    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()


@pytest.fixture
def digest_elsewhere(run_python, tmp_path):
    """``digest(blob)``: :func:`digest` of what ``featcodec.decode`` gives for the stream in a
    fresh process, on one featcodec and one torch thread (numpy streams)."""
    def run(blob: bytes) -> str:
        path = tmp_path / "elsewhere.fcs"
        path.write_bytes(blob)
        code = ("import sys, hashlib, pathlib, numpy as np, torch, featcodec\n"
                "torch.set_num_threads(1); featcodec.set_num_threads(1)\n"
                "y = featcodec.decode(pathlib.Path(sys.argv[1]).read_bytes())\n"
                "print(hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest())\n")
        return run_python("-c", code, path, text=True).stdout.split()[-1]

    return run


#: golden streams of the value stages (written by each stage's test file when run as a script)
GOLDEN_STAGES = Path(__file__).resolve().parent / "data" / "golden_stages"


def check_golden_stage(name: str, make_input: Callable[[], Any], encode: dict) -> None:
    """tests/data/golden_stages/<name>.fcs against <name>.json: the options it records are
    ``encode``, the stream's sha256, the bytes a fresh ``featcodec.encode(make_input(),
    **encode)`` gives, and the digest of its decode."""
    want = json.loads((GOLDEN_STAGES / f"{name}.json").read_text())
    blob = (GOLDEN_STAGES / f"{name}.fcs").read_bytes()
    assert want["encode"] == encode
    assert hashlib.sha256(blob).hexdigest() == want["stream_sha256"]
    assert featcodec.encode(make_input(), **encode) == blob
    assert digest(featcodec.decode(blob)) == want["decoded_sha256"]


def write_golden_stage(name: str, make_input: Callable[[], Any], encode: dict, source: str) -> None:
    """Write the golden stream <name> that :func:`check_golden_stage` checks (only when the
    format changes on purpose); ``source`` names ``make_input`` in the .json."""
    stream = featcodec.encode(make_input(), **encode)
    (GOLDEN_STAGES / f"{name}.fcs").write_bytes(stream)
    (GOLDEN_STAGES / f"{name}.json").write_text(json.dumps({
        "encode": encode, "input": source,
        "stream_sha256": hashlib.sha256(stream).hexdigest(),
        "decoded_sha256": digest(featcodec.decode(stream)),
    }, indent=2) + "\n")
    print(f"wrote {GOLDEN_STAGES / name}.fcs")
