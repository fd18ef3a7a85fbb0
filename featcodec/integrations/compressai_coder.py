"""CompressAI's entropy-coder interface backed by featcodec's rANS coder.

CompressAI models code their latents through objects with the interface of
``compressai.ans.RansEncoder`` / ``RansDecoder`` / ``BufferedRansEncoder``. This module
provides the same three classes on top of :mod:`featcodec.stream.rans` (compiled, GIL
released, bounds-checked decoding that raises :class:`featcodec.FormatError` instead of
crashing on corrupt strings), and one call to switch CompressAI over to them:

    >>> import featcodec.integrations.compressai_coder as fcc
    >>> fcc.install()                      # new and existing models now code with featcodec
    >>> import compressai
    >>> compressai.get_entropy_coder()
    'featcodec'
    >>> fcc.uninstall()                    # back to CompressAI's own coder
    >>> compressai.get_entropy_coder()
    'ans'

Or only for a block of code: ``with fcc.installed(): strings = model.compress(x)``.

The strings are featcodec rANS streams (not byte-compatible with CompressAI's ``ans``
coder): decode them with the same coder that encoded them.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional

import numpy as np

from .. import _core
from ..stream.rans import _bytes, _int32, decode_with_indexes, encode_with_indexes, prepare_cdfs
from ..errors import FormatError, InputError

__all__ = [
    "NAME",
    "RansEncoder",
    "RansDecoder",
    "BufferedRansEncoder",
    "install",
    "uninstall",
    "installed",
    "use_in",
]

NAME = "featcodec"
"""The entropy-coder name registered with CompressAI (``compressai.set_entropy_coder``)."""


class RansEncoder:
    """``compressai.ans.RansEncoder`` interface: one call codes one string."""

    def encode_with_indexes(
        self, symbols: Any, indexes: Any, cdfs: Any, cdf_lengths: Any, offsets: Any
    ) -> bytes:
        """Code ``symbols`` with the CDF tables named by ``indexes`` (lists or arrays)."""
        return encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets)


class BufferedRansEncoder:
    """``compressai.ans.BufferedRansEncoder`` interface: collect symbols, code at flush.

    Used by CompressAI's autoregressive models, which encode one position at a time;
    the CDF tables must be the same for every call before a flush (as they are there).
    """

    def __init__(self) -> None:
        self._symbols: List[np.ndarray] = []
        self._indexes: List[np.ndarray] = []
        self._tables: Optional[tuple] = None

    def encode_with_indexes(
        self, symbols: Any, indexes: Any, cdfs: Any, cdf_lengths: Any, offsets: Any
    ) -> None:
        """Buffer ``symbols`` with their table ``indexes``."""
        tables = prepare_cdfs(cdfs, cdf_lengths, offsets)
        if self._tables is None:
            self._tables = tables
        elif not all(np.array_equal(a, b) for a, b in zip(self._tables, tables)):
            raise InputError("BufferedRansEncoder: the CDF tables changed before flush()")
        s, ix = _int32(symbols, "symbols"), _int32(indexes, "indexes")
        if s.size != ix.size:
            raise InputError("symbols and indexes must have the same size")
        self._symbols.append(s)
        self._indexes.append(ix)

    def flush(self) -> bytes:
        """Code everything buffered into one string and reset the buffer."""
        if self._tables is None:
            return encode_with_indexes(
                np.zeros(0, np.int32), np.zeros(0, np.int32), [[0, 65536]], [2], [0]
            )
        out = encode_with_indexes(
            np.concatenate(self._symbols), np.concatenate(self._indexes), *self._tables
        )
        self.__init__()
        return out


class RansDecoder:
    """``compressai.ans.RansDecoder`` interface: whole strings or piece by piece."""

    def __init__(self) -> None:
        self._stream: Optional[Any] = None

    def decode_with_indexes(
        self, encoded: Any, indexes: Any, cdfs: Any, cdf_lengths: Any, offsets: Any
    ) -> List[int]:
        """Decode ``len(indexes)`` symbols of one string (a list, as CompressAI returns)."""
        return decode_with_indexes(encoded, indexes, cdfs, cdf_lengths, offsets).tolist()

    def set_stream(self, encoded: Any) -> None:
        """Start decoding ``encoded`` piece by piece with :meth:`decode_stream`."""
        self._stream = _core.RansIndexedStream(bytes(_bytes(encoded)))

    def decode_stream(
        self, indexes: Any, cdfs: Any, cdf_lengths: Any, offsets: Any
    ) -> List[int]:
        """Decode the next ``len(indexes)`` symbols of the stream given to set_stream."""
        if self._stream is None:
            raise FormatError("RansDecoder.decode_stream called before set_stream")
        ix = _int32(indexes, "indexes")
        return self._stream.decode(ix, *prepare_cdfs(cdfs, cdf_lengths, offsets)).tolist()


# ----- switching CompressAI over -----

_saved: dict = {}


def _patched_coder_class(original: type) -> type:
    class _FeatcodecEntropyCoder(original):  # type: ignore[misc, valid-type]
        """CompressAI's _EntropyCoder proxy, also knowing the "featcodec" coder."""

        def __init__(self, method: str) -> None:
            if method == NAME:
                self.name = NAME
                self._encoder = RansEncoder()
                self._decoder = RansDecoder()
            else:
                super().__init__(method)

    _FeatcodecEntropyCoder.__name__ = original.__name__
    _FeatcodecEntropyCoder.__qualname__ = original.__qualname__
    return _FeatcodecEntropyCoder


def _autoregressive_modules() -> list:
    """CompressAI modules that import the ans coder classes by name."""
    import importlib

    mods = []
    for name in ("compressai.models.google", "compressai.latent_codecs.rasterscan",
                 "compressai.models.vbr"):
        try:
            mods.append(importlib.import_module(name))
        except Exception:  # an optional module CompressAI may not ship
            continue
    return mods


def use_in(model: Any) -> Any:
    """Make the entropy models inside ``model`` (an ``nn.Module``) code with featcodec.

    Affects only that model; returns it. :func:`install` does this for every model.
    """
    from compressai.entropy_models import entropy_models as em

    coder_class = _patched_coder_class(em._EntropyCoder) if NAME not in _saved else em._EntropyCoder
    for module in model.modules():
        if isinstance(module, em.EntropyModel):
            module.entropy_coder = coder_class(NAME)
    return model


def install(model: Any = None) -> None:
    """Make CompressAI code with featcodec's rANS by default (idempotent).

    Registers the coder name ``"featcodec"`` with CompressAI, makes it the default
    (``compressai.set_entropy_coder``), lets the autoregressive models' direct uses of
    ``compressai.ans`` classes pick ours, and switches the entropy models already
    inside ``model`` (if given) too. Undo with :func:`uninstall`.
    """
    import compressai
    from compressai.entropy_models import entropy_models as em

    if NAME not in _saved:
        _saved[NAME] = {
            "default": compressai.get_entropy_coder(),
            "coder_class": em._EntropyCoder,
            "modules": [
                (m, {k: getattr(m, k) for k in ("BufferedRansEncoder", "RansDecoder") if hasattr(m, k)})
                for m in _autoregressive_modules()
            ],
        }
        em._EntropyCoder = _patched_coder_class(em._EntropyCoder)
        if NAME not in compressai._available_entropy_coders:
            compressai._available_entropy_coders.append(NAME)
        for module, names in _saved[NAME]["modules"]:
            if "BufferedRansEncoder" in names:
                module.BufferedRansEncoder = BufferedRansEncoder
            if "RansDecoder" in names:
                module.RansDecoder = RansDecoder
    compressai.set_entropy_coder(NAME)
    if model is not None:
        use_in(model)


def uninstall() -> None:
    """Undo :func:`install`: CompressAI's own coder becomes the default again.

    Entropy models created while featcodec was installed keep coding with featcodec.
    """
    import compressai
    from compressai.entropy_models import entropy_models as em

    saved = _saved.pop(NAME, None)
    if saved is None:
        return
    em._EntropyCoder = saved["coder_class"]
    for module, names in saved["modules"]:
        for key, value in names.items():
            setattr(module, key, value)
    compressai.set_entropy_coder(saved["default"] if saved["default"] != NAME else "ans")
    if NAME in compressai._available_entropy_coders:
        compressai._available_entropy_coders.remove(NAME)


@contextlib.contextmanager
def installed(model: Any = None) -> Iterator[None]:
    """Context manager: :func:`install` on entry, :func:`uninstall` on exit."""
    was_installed = NAME in _saved
    install(model)
    try:
        yield
    finally:
        if not was_installed:
            uninstall()
