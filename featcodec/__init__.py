"""featcodec: one universal codec for the intermediate features of neural networks.

It implements the DT-UFC peaky-to-balanced transform and CAUFC format/value alignment,
a compiled rANS entropy coder and a self-describing bitstream.
"""

from __future__ import annotations

from . import _core, entropy
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

__version__ = "0.1.0"
