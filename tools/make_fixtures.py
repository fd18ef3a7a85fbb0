#!/usr/bin/env python
"""Copy real features from a corpus's TEST split into the committed fixtures and demo data.

    python tools/make_fixtures.py --corpus /work/corpus

- tests/data/features/<family>__<tap>.npy: every tap of input 200000 (the first test input),
  float32, exactly as extracted (<= 5 MB in all);
- featcodec/data/<family>__<tap>.npy + demo.json: the DEMO taps below, float32, with their
  provenance (model, input id, split, shape); read by featcodec.datasets.load_demo().
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
INPUT_ID = "200000"
DEMO = ("llm/hidden15", "vit/layer9", "cnn/features13", "cnn/features18", "latent/latent256")
FIXTURE_LIMIT = 5 * 2**20
DEMO_LIMIT = 1.5 * 2**20


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", default="/work/corpus")
    args = p.parse_args()
    root = Path(args.corpus)
    manifest = json.loads((root / "manifest.json").read_text())
    chosen = [e for e in manifest if e["split"] == "test" and e["input_id"] == INPUT_ID]
    fix_dir = REPO / "tests" / "data" / "features"
    demo_dir = REPO / "featcodec" / "data"
    fix_dir.mkdir(parents=True, exist_ok=True)
    demo_dir.mkdir(parents=True, exist_ok=True)
    info = {}
    for e in sorted(chosen, key=lambda e: (e["family"], e["tap"])):
        arr = np.load(root / e["path"])
        assert arr.dtype == np.float32
        name = f"{e['family']}/{e['tap']}"
        np.save(fix_dir / f"{e['family']}__{e['tap']}.npy", arr)
        if name in DEMO:
            np.save(demo_dir / f"{e['family']}__{e['tap']}.npy", arr)
            info[name] = {"file": f"{e['family']}__{e['tap']}.npy", "family": e["family"],
                          "model": e["model"], "tap": e["tap"], "split": e["split"],
                          "input_id": e["input_id"], "shape": list(arr.shape),
                          "dtype": "float32"}
    (demo_dir / "demo.json").write_text(json.dumps(info, indent=1) + "\n")
    fix = sum(f.stat().st_size for f in fix_dir.glob("*.npy"))
    demo = sum(f.stat().st_size for f in demo_dir.glob("*.npy"))
    print(f"fixtures {fix / 2**20:.2f} MB, demo {demo / 2**20:.2f} MB, demo taps {sorted(info)}")
    assert fix <= FIXTURE_LIMIT and demo <= DEMO_LIMIT


if __name__ == "__main__":
    main()
