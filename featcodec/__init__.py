"""featcodec: one universal codec for the intermediate features of neural networks.

It implements the DT-UFC peaky-to-balanced transform and CAUFC format/value alignment,
a compiled rANS entropy coder and a self-describing bitstream.
"""

from __future__ import annotations

from . import _core, datasets, entropy
from .kernels import get_num_threads, set_num_threads
from .errors import (
    ChecksumError,
    FeatcodecError,
    FitError,
    FormatError,
    InputError,
    MissingTransformError,
    TruncatedError,
    UnknownCodecError,
    VersionError,
)

from . import metrics
from .transform import Transform, fit_max_error, fit_transform, fit_uniform, load_transform
from .packing import PackInfo, pack, unpack
from .api import decode, encode, header, register_transform
from .codecs import available_codecs
from .learned.codec import register as _register_learned_codecs

_register_learned_codecs()  # "hyperprior" (and "elic") when their weights are shipped

__version__ = "0.1.0"

# Integrations load on first use (featcodec.io, featcodec.split, featcodec.distributed, ...),
# so `import featcodec` does not pull in torch.distributed, numcodecs or zarr.
_LAZY_SUBMODULES = ("io", "split", "distributed", "numcodecs_codec", "zarr_codec", "cli")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'featcodec' has no attribute {name!r}")
