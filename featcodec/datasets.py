"""Small real features shipped inside the package, for demos, docs and quick experiments.

``featcodec/data/`` holds one or two real tapped features per family, copied unchanged
(float32) from the TEST split of the project's corpus (see docs/corpus.md):

==================  ================  =====================================================
name                shape             what it is
==================  ================  =====================================================
llm/hidden15        (1, T, 576)       SmolLM2-135M ``hidden_states[15]`` of a paragraph;
                                      token 0 carries a massive activation (~2e4)
vit/layer9          (1, 257, 384)     DINOv2-style ViT-S/14 layer-9 output at 224x224
cnn/features13      (1, 96, 14, 14)   MobileNetV2 ``features[13]`` at 224x224
cnn/features18      (1, 1280, 7, 7)   MobileNetV2 ``features[18]`` (ReLU6, many zeros)
latent/latent256    (1, 32, 32, 32)   TAEF2 (FLUX.2 latent space) encoder output of a
                                      256x256 image
==================  ================  =====================================================

Example:
    >>> from featcodec.datasets import load_demo
    >>> demo = load_demo()
    >>> demo["vit/layer9"].shape
    (1, 257, 384)
    >>> sorted(demo)[:2]
    ['cnn/features13', 'cnn/features18']
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["load_demo", "demo_info", "DATA_DIR"]

#: Folder of the packaged demo features.
DATA_DIR = Path(__file__).resolve().parent / "data"


def demo_info() -> dict[str, dict]:
    """Provenance of each demo feature: file, family, model, tap, split, input_id, shape."""
    return json.loads((DATA_DIR / "demo.json").read_text())


def load_demo(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The demo features as ``{"<family>/<tap>": float32 ndarray}`` (fresh, writable copies).

    ``names`` selects a subset; an unknown name raises ``KeyError`` listing the known ones.
    """
    info = demo_info()
    wanted = list(info) if names is None else list(names)
    unknown = [n for n in wanted if n not in info]
    if unknown:
        raise KeyError(f"unknown demo feature(s) {unknown}; available: {sorted(info)}")
    return {n: np.load(DATA_DIR / info[n]["file"]) for n in wanted}
