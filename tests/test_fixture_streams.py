"""The encoder's output on real features cannot drift silently: every fixture under every
setting of tools/make_fixture_streams.py encodes to the bytes recorded in
tests/data/fixture_streams/manifest.json (recorded before the encode pipeline was split
into stages; re-recorded when the per-call default fit became the fast fit, which
changed the "default", "bits4" and "hyperprior_q1" streams and no other, and when that fit
took 4 atoms per level at 8 bits, which changed 12 "default" and 3 "hyperprior_q1"
streams, and when format version 10 packed the embedded levels, which changed every
stream that embeds them, and when the learned codecs began moving the peaks out exactly
(``count_for_peaks``), which changed the one "hyperprior_q1" stream with peaks:
cnn__features13, and when the hyperprior weights were fine-tuned with the feature-domain
loss, which changed all three "hyperprior_q1" streams), and decodes to a tensor of the fixture's shape and dtype."""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import featcodec

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((ROOT / "tests" / "data" / "fixture_streams" / "manifest.json").read_text())

_spec = importlib.util.spec_from_file_location("make_fixture_streams", ROOT / "tools" / "make_fixture_streams.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)


def test_manifest_covers_every_case():
    assert sorted(MANIFEST) == sorted(f"{f}/{s}" for f, s in make.cases())


@pytest.mark.parametrize("fixture,setting", make.cases())
def test_fixture_stream_is_byte_identical(fixture, setting):
    blob = make.encode_case(fixture, setting)
    want = MANIFEST[f"{fixture}/{setting}"]
    assert (len(blob), hashlib.sha256(blob).hexdigest()) == (want["bytes"], want["sha256"]), (
        "the encoder now writes other bytes for this fixture: a refactor must not change them"
    )
    x = np.load(make.FEATURES / f"{fixture}.npy")
    kw = {}
    if make.SETTINGS[setting].get("registered"):
        kw["transform"] = featcodec.fit_transform(x, bits=make.SETTINGS[setting]["registered"])
    y = featcodec.decode(blob, **kw)
    assert y.shape == x.shape and y.dtype == x.dtype
