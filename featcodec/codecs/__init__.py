"""The codec registry: codecs turn a 2-D index plane into payload bytes and back.

A codec is a class whose instances have

- ``encode_plane(plane, bits, **params) -> (payload: bytes, params_dict: dict)``:
  ``plane`` is a C-contiguous 2-D uint8 (``bits <= 8``) or uint16 array of indices in
  ``0 .. 2**bits - 1``; ``params_dict`` (JSON-serialisable) is stored in the stream
  header and handed back to the decoder;
- ``decode_plane(payload, shape, bits, params_dict) -> plane``: the exact plane (lossless
  codecs) or its reconstruction (lossy ones), of ``shape`` and dtype uint8/uint16. The
  payload comes from an untrusted stream: raise :class:`featcodec.FormatError` on
  anything malformed, never crash or allocate beyond ``shape``;
- optionally ``format_version(params_dict) -> int``: the lowest stream format version
  whose readers understand these parameters (streams are written at least at that
  version, and a stream of a lower version claiming them is rejected as corrupt).

Register it by name, and ``featcodec.encode(x, codec=name)`` uses it:

Example:
    >>> import featcodec
    >>> from featcodec.codecs import register_codec
    >>> class Raw:
    ...     def encode_plane(self, plane, bits):
    ...         return plane.tobytes(), {}
    ...     def decode_plane(self, payload, shape, bits, params):
    ...         import numpy as np
    ...         dtype = np.uint8 if bits <= 8 else np.uint16
    ...         if len(payload) != shape[0] * shape[1] * np.dtype(dtype).itemsize:
    ...             raise featcodec.FormatError("raw payload has the wrong length")
    ...         return np.frombuffer(payload, dtype).reshape(shape)
    >>> register_codec("raw-demo", Raw)
    >>> "raw-demo" in featcodec.available_codecs()
    True
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import InputError, UnknownCodecError

__all__ = ["Codec", "register_codec", "get_codec", "available_codecs"]


class Codec(Protocol):
    """What a registered codec provides (see the module docstring)."""

    def encode_plane(self, plane: np.ndarray, bits: int, **params: Any) -> tuple[bytes, dict]: ...

    def decode_plane(self, payload: bytes, shape: tuple[int, int], bits: int, params: dict) -> np.ndarray: ...


_FACTORIES: dict[str, Callable[[], Codec]] = {}
_INSTANCES: dict[str, Codec] = {}
_LOCK = threading.Lock()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def register_codec(name: str, cls: Callable[[], Codec], *, replace: bool = False) -> None:
    """Register codec class (or zero-argument factory) ``cls`` under ``name``.

    The instance is created on first use and reused. Re-registering a name raises
    :class:`featcodec.InputError` unless ``replace=True``.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"codec name {name!r} must be 1-64 letters, digits or _.+- characters.")
    if name == "auto":
        raise InputError("codec name 'auto' is reserved: featcodec.encode(codec='auto') chooses a codec.")
    if not callable(cls):
        raise InputError("register_codec takes a codec class (or a zero-argument factory).")
    with _LOCK:
        if name in _FACTORIES and not replace and _FACTORIES[name] is not cls:
            raise InputError(f"codec {name!r} is already registered; pass replace=True to override it.")
        _FACTORIES[name] = cls
        _INSTANCES.pop(name, None)


def get_codec(name: str) -> Codec:
    """The (shared) instance of codec ``name``; :class:`featcodec.UnknownCodecError` if none."""
    with _LOCK:
        inst = _INSTANCES.get(name)
        if inst is None:
            factory = _FACTORIES.get(name) if isinstance(name, str) else None
            if factory is None:
                raise UnknownCodecError(
                    f"unknown codec {name!r:.80}; available: {', '.join(sorted(_FACTORIES))}. "
                    "A stream naming it needs the package that registers it."
                )
            inst = _INSTANCES[name] = factory()
        return inst


def available_codecs() -> list[str]:
    """Names of the registered codecs, sorted.

    Example:
        >>> import featcodec
        >>> "index" in featcodec.available_codecs()
        True
    """
    with _LOCK:
        return sorted(_FACTORIES)


from .index import IndexCodec  # noqa: E402  (registers the built-in codec)

register_codec("index", IndexCodec)
