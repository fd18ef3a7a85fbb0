"""The exceptions featcodec raises.

Every error featcodec raises on bad input is a :class:`FeatcodecError`, so one
``except featcodec.FeatcodecError`` catches them all. The subclasses say what went wrong;
the message says what to do about it.

Example:
    >>> import featcodec
    >>> try:
    ...     featcodec.decode(b"not a featcodec stream")
    ... except featcodec.FeatcodecError as e:
    ...     print(type(e).__name__)
    FormatError
"""

from __future__ import annotations

__all__ = [
    "FeatcodecError",
    "InputError",
    "FitError",
    "FormatError",
    "TruncatedError",
    "ChecksumError",
    "VersionError",
    "UnknownCodecError",
    "MissingTransformError",
    "QualityWarning",
]


class FeatcodecError(Exception):
    """Base class of every error featcodec raises on bad input or a bad stream."""


class InputError(FeatcodecError, ValueError):
    """A tensor or argument featcodec cannot work with (dtype, NaN/Inf, empty, shape, option)."""


class FitError(InputError):
    """A transform cannot be fitted to the given samples."""


class FormatError(FeatcodecError, ValueError):
    """Bytes that are not a valid featcodec stream or transform file."""


class TruncatedError(FormatError):
    """A stream that ends before its header says it should."""


class ChecksumError(FormatError):
    """A stream whose checksum does not match its content: it was corrupted."""


class VersionError(FormatError):
    """A stream written by a newer featcodec format version than this one reads."""


class UnknownCodecError(FeatcodecError, KeyError):
    """A codec name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingTransformError(FeatcodecError, LookupError):
    """A stream names a transform by id that is neither registered nor passed to decode."""


class QualityWarning(UserWarning):
    """A requested codec reconstructed this tensor worse than the index codec does at the
    same or a smaller stream size (measured by the encoder; :mod:`featcodec.bounded`).

    Silence it with ``warnings.filterwarnings("ignore", category=featcodec.QualityWarning)``
    or skip the measurement with ``featcodec.encode(..., check_quality=False)``."""
