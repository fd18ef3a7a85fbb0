"""The format cannot drift silently: committed streams decode bit-exactly, re-encoding
their inputs reproduces them byte for byte, and encoding does not depend on the thread
count or the process."""

import hashlib
import importlib.util
import json
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


OLD = {v.name: json.loads((v / "manifest.json").read_text()) for v in sorted(GOLDEN.glob("v*"))}


@pytest.mark.parametrize("version,name", [(v, n) for v, m in OLD.items() for n in sorted(m)])
def test_streams_of_older_format_versions_still_decode(version, name):
    """Streams written by earlier featcodec releases stay readable, bit-exactly."""
    folder = GOLDEN / version
    blob = (folder / f"{name}.fcs").read_bytes()
    case = OLD[version][name]
    assert hashlib.sha256(blob).hexdigest() == case["stream_sha256"], "the golden file itself changed"
    assert featcodec.header(blob)["format_version"] == int(version[1:])
    y = featcodec.decode(blob)
    assert hashlib.sha256(make_golden.decoded_bytes(y)).hexdigest() == case["decoded_sha256"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_reencoding_reproduces_the_golden_stream(name):
    """Format and pipeline: the same input and transform give the same bytes."""
    x = np.load(GOLDEN / f"{name}.input.npy")
    t, kw = make_golden.prepare(x, MANIFEST[name]["encode"])
    kw["transform"] = featcodec.load_transform(GOLDEN / f"{name}.transform.json")
    kw.pop("bits", None)
    kw.pop("max_error", None)  # the stored transform is the one max_error picked
    assert featcodec.encode(t, **kw) == (GOLDEN / f"{name}.fcs").read_bytes(), (
        "the stream format or encoder changed: bump FORMAT_VERSION if the format changed, "
        "then regenerate with tools/make_golden.py"
    )


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fitting_again_gives_the_golden_transform(name):
    """The fit: encode(transform="auto") on the same input fits the same transform."""
    x = np.load(GOLDEN / f"{name}.input.npy")
    t, _ = make_golden.prepare(x, MANIFEST[name]["encode"])
    stored = featcodec.load_transform(GOLDEN / f"{name}.transform.json")
    assert make_golden.fitted_transform(t, MANIFEST[name]["encode"]).id == stored.id, (
        "fit_transform/fit_uniform give another transform for the same data than when the "
        "golden files were made; if intended, regenerate with tools/make_golden.py"
    )


_CHILD = """
import sys, numpy as np, featcodec
featcodec.set_num_threads(int(sys.argv[3]))
x = np.load(sys.argv[1])
t = featcodec.load_transform(sys.argv[2])
sys.stdout.buffer.write(featcodec.encode(x, transform=t))
"""


def test_stream_from_another_process_and_thread_count_is_identical(tmp_path, run_python):
    # > 2**20 values, so the rANS coder and the kernels split the work between threads
    rng = np.random.default_rng(5)
    x = rng.standard_t(4, size=(1, 8, 384, 384)).astype(np.float32)
    t = featcodec.fit_transform(x[0, 0], bits=8)
    np.save(tmp_path / "x.npy", x)
    t.save(tmp_path / "t.json")
    child = run_python("-c", _CHILD, tmp_path / "x.npy", tmp_path / "t.json", "1").stdout
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
