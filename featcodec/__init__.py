"""featcodec: one universal codec for the intermediate features of neural networks.

It implements the DT-UFC peaky-to-balanced transform and CAUFC format/value alignment,
a compiled rANS entropy coder and a self-describing bitstream.
"""

from __future__ import annotations

from . import _core, datasets
from .stream import rans as entropy
from .threads import get_num_threads, set_num_threads
from .errors import (
    ChecksumError,
    FeatcodecError,
    FitError,
    FormatError,
    InputError,
    MissingTransformError,
    QualityWarning,
    TruncatedError,
    UnknownCodecError,
    VersionError,
)

from . import metrics
from .transform import Transform, fit_max_error, fit_transform, fit_uniform, load_transform
from .stages.alignment import PackInfo, pack, unpack
from .api import decode, encode, header, register_transform
from .session import Encoder
from .codecs import available_codecs
from .codecs.learned.codec import register as _register_learned_codecs

_register_learned_codecs()  # "hyperprior" (and "elic") when their weights are shipped

__version__ = "0.1.0"

# Modules reachable as attributes of the package, loaded on first use: the integrations
# (so `import featcodec` does not pull in torch.distributed, numcodecs or zarr) and the
# names modules had before the layout of docs/architecture.md (featcodec.kernels, ...).
_LAZY_SUBMODULES = {
    "io": "integrations.io",
    "split": "integrations.split",
    "distributed": "integrations.distributed",
    "numcodecs_codec": "integrations.numcodecs_codec",
    "zarr_codec": "integrations.zarr_codec",
    "cli": "integrations.cli",
    "compressai_coder": "integrations.compressai_coder",
    "kernels": "transform.kernels",
    "lloydmax": "transform.lloydmax",
    "cuda": "transform.cuda",
    "bitstream": "stream.container",
    "packing": "stages.alignment",
    "learned": "codecs.learned",
}


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f".{_LAZY_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'featcodec' has no attribute {name!r}")
