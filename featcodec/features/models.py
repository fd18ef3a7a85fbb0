"""The corpus models, one per family, and the way to run the rest of each from a tap.

============  ===============  ====================================  =========================
family        class            taps (shape)                          ``rest(tap, feature)``
============  ===============  ====================================  =========================
``llm``       SmolLM2          hidden15 (1,T,576), key15/value15     next-token logits
                               (1,3,T,64)                            (1,T,49152) from hidden15
``vit``       ViTFocus         layer6/layer9/layer11 (1,257,384)     {"cls": (1,384),
                                                                     "saliency": (1,1,224,224)}
``cnn``       MobileNetV2      features13 (1,96,14,14), features18   ImageNet logits (1,1000)
                               (1,1280,7,7), the same at 448x448
``latent``    TAEF2            latent256 (1,32,32,32),               decoded RGB image
                               latent512 (1,32,64,64)                (1,3,H,W) about [0,1]
============  ===============  ====================================  =========================

``model.full(input_id, tap)`` computes the same output end to end from the input: feeding
the uncompressed tapped feature to ``rest`` reproduces it (tests/test_features.py); feeding
a decoded feature measures the task fidelity of a codec.

Example (needs the MobileNetV2 weights):
    >>> m = load_model("cnn")                                       # doctest: +SKIP
    >>> feats = m.extract(200000)                                   # doctest: +SKIP
    >>> logits = m.rest("features13", feats["features13"])          # doctest: +SKIP
"""

from __future__ import annotations

from .base import FeatureModel, ModelNotAvailable, package_dir
from .cnn import MobileNetV2
from .latent import TAEF2
from .llm import SmolLM2
from .vit import ViTFocus

__all__ = ["MODELS", "FAMILIES", "load_model", "FeatureModel", "ModelNotAvailable",
           "package_dir", "SmolLM2", "ViTFocus", "MobileNetV2", "TAEF2"]

#: family -> model class
MODELS: dict[str, type[FeatureModel]] = {
    "llm": SmolLM2,
    "vit": ViTFocus,
    "cnn": MobileNetV2,
    "latent": TAEF2,
}
#: Families in the order extraction runs them (quick ones first).
FAMILIES: tuple[str, ...] = ("cnn", "latent", "vit", "llm")


def load_model(family: str) -> FeatureModel:
    """Load the model of ``family`` (raises :class:`ModelNotAvailable` if not installed)."""
    try:
        cls = MODELS[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(MODELS)}") from None
    return cls.load()
