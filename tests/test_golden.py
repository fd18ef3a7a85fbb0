"""The format cannot drift silently: committed streams decode bit-exactly, re-encoding
their inputs reproduces them byte for byte, and encoding does not depend on the thread
count or the process."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import featcodec

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())

_spec = importlib.util.spec_from_file_location("make_golden", ROOT / "tools" / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_golden_stream_decodes_bit_exactly(name):
    blob = (GOLDEN / f"{name}.fcs").read_bytes()
    case = MANIFEST[name]
    assert hashlib.sha256(blob).hexdigest() == case["stream_sha256"], "the golden file itself changed"
    y = featcodec.decode(blob)
    assert hashlib.sha256(make_golden.decoded_bytes(y)).hexdigest() == case["decoded_sha256"]
    x = np.load(GOLDEN / f"{name}.input.npy")
    assert tuple(y.shape) == x.shape


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reencoding_reproduces_the_golden_stream(name):
    x = np.load(GOLDEN / f"{name}.input.npy")
    t, kw = make_golden.prepare(x, MANIFEST[name]["encode"])
    assert featcodec.encode(t, **kw) == (GOLDEN / f"{name}.fcs").read_bytes()


_CHILD = """
import sys, numpy as np, featcodec
featcodec.set_num_threads(int(sys.argv[3]))
x = np.load(sys.argv[1])
t = featcodec.load_transform(sys.argv[2])
sys.stdout.buffer.write(featcodec.encode(x, transform=t))
"""


def test_stream_from_another_process_and_thread_count_is_identical(tmp_path):
    # > 2**20 values, so the rANS coder and the kernels split the work between threads
    rng = np.random.default_rng(5)
    x = rng.standard_t(4, size=(1, 8, 384, 384)).astype(np.float32)
    t = featcodec.fit_transform(x[0, 0], bits=8)
    np.save(tmp_path / "x.npy", x)
    t.save(tmp_path / "t.json")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(featcodec.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "x.npy"), str(tmp_path / "t.json"), "1"],
        capture_output=True, env=env, check=True,
    ).stdout
    before = featcodec.get_num_threads()
    try:
        featcodec.set_num_threads(2)
        here = featcodec.encode(x, transform=t)
        featcodec.set_num_threads(3)
        assert featcodec.encode(x, transform=t) == here
        y3 = featcodec.decode(child)
        featcodec.set_num_threads(1)
        y1 = featcodec.decode(here)
    finally:
        featcodec.set_num_threads(before)
    assert child == here
    np.testing.assert_array_equal(y1, y3)
