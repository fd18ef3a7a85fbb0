"""Record the sha256 of the streams featcodec writes for the fixture set
(tests/data/features/*.npy, real features of the corpus models) under a fixed list of
encode settings, in tests/data/fixture_streams/manifest.json.

tests/test_fixture_streams.py encodes the same fixtures with the same settings and
compares with these digests, so a refactor of the encode pipeline that changes a single
byte fails a test. Run this only when the encoder is meant to change its output (and say
so in the commit), never to make that test pass after a refactor:

    PYTHONPATH=$PWD python tools/make_fixture_streams.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ROOT / "tests" / "data" / "features"
OUT = ROOT / "tests" / "data" / "fixture_streams" / "manifest.json"

#: name -> encode() keyword arguments; "max_error_std" is a bound in units of the
#: fixture's standard deviation, "registered" encodes with a transform fitted at 6 bits
#: that the stream only references by id.
SETTINGS: dict[str, dict] = {
    "default": {},
    "bits4": {"bits": 4},
    "uniform6": {"transform": "uniform", "bits": 6},
    "max_error": {"max_error_std": 0.1},
    "registered6": {"registered": 6},
    "hyperprior_q1": {"codec": "hyperprior", "quality": 1},
}
#: the learned setting runs on the small fixtures only (it is the slow one)
LEARNED_FIXTURES = ("cnn__features13", "llm__key15", "latent__latent256")


def cases() -> list[tuple[str, str]]:
    """(fixture, setting) pairs, in a fixed order."""
    out = []
    for f in sorted(p.stem for p in FEATURES.glob("*.npy")):
        for s in SETTINGS:
            if SETTINGS[s].get("codec") and f not in LEARNED_FIXTURES:
                continue
            out.append((f, s))
    return out


def encode_case(fixture: str, setting: str) -> bytes:
    """The stream of ``fixture`` under ``setting``."""
    import featcodec

    x = np.load(FEATURES / f"{fixture}.npy")
    kw = dict(SETTINGS[setting])
    if "max_error_std" in kw:
        kw["max_error"] = float(kw.pop("max_error_std") * np.std(x.astype(np.float64)))
    if "registered" in kw:
        kw["transform"] = featcodec.fit_transform(x, bits=kw.pop("registered"))
        kw["embed_transform"] = False
    return featcodec.encode(x, **kw)


def main() -> None:
    manifest = {}
    for f, s in cases():
        blob = encode_case(f, s)
        manifest[f"{f}/{s}"] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        print(f, s, len(blob), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the work tree's featcodec
    main()
