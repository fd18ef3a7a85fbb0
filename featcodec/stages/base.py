"""The parts every stage is made of: the :class:`Stage` base class, the kinds of data
between stages, and the contexts an encode and a decode share (see
:mod:`featcodec.stages`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Stage", "EncodeContext", "DecodeContext", "KINDS", "DEFAULT_STAGES"]

#: the kinds of data between stages, in pipeline order
KINDS = ("values", "indices", "plane")
#: the stages of a stream whose header has no ``"stages"`` field (format versions <= 4)
DEFAULT_STAGES = ("transform", "pack")


@dataclass
class EncodeContext:
    """What the stages of one encode share.

    Attributes:
        x: the tensor passed to ``encode`` (read-only).
        options: encode's arguments for the stages (``transform``, ``bits``,
            ``max_error``, ``layout``, ``embed_transform``, ...); a stage reads its own.
        header: the header fields the stages write (each only its own ``fields``).
        sections: the sections the stages write, by name, in the order written.
        bits: the bits of the integer alphabet, set by the stage that gives indices.
        tile: the channel tile of the plane, for codecs that model tiles (set by
            ``"pack"`` for the mosaic layout).
        state: what a stage leaves for the caller (by stage name; ``"transform"``: the
            Transform the stream was made with).
        codec_params: parameters a stage asks of the codec (the ``"residual"`` stage:
            ``guard``), added to the encode's codec parameters.
    """

    x: Any
    options: dict[str, Any]
    header: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, bytes] = field(default_factory=dict)
    bits: int | None = None
    tile: tuple[int, int] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    codec_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DecodeContext:
    """What the stages of one decode share.

    Attributes:
        header: the validated stream header.
        sections: the stream's sections by name (zero-copy views).
        version: the stream's format version.
        options: decode's arguments (``transform``, ``dtype``: the output dtype name,
            ``device``: a torch device or ``None``).
        state: what a stage's :meth:`Stage.prepare` leaves for the decode (by stage name).
        plane_shape: the shape of the plane the codec decodes (set by ``"pack"``).
    """

    header: dict[str, Any]
    sections: dict[str, Any]
    version: int
    options: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    plane_shape: tuple[int, int] | None = None


class Stage:
    """One step of the pipeline (subclass it; see the module docstring).

    Class attributes:
        name: its name in the stream's ``"stages"`` header field (1-64 of
            ``[A-Za-z0-9_.+-]``).
        takes, gives: the kinds of data (:data:`KINDS`) it maps on encode.
        fields: the header fields it owns (written on encode, validated by :meth:`check`).
        sections: the section names it may write.
    """

    name: ClassVar[str] = ""
    takes: ClassVar[str] = "values"
    gives: ClassVar[str] = "values"
    fields: ClassVar[tuple[str, ...]] = ()
    sections: ClassVar[tuple[str, ...]] = ()

    def encode(self, data: Any, ctx: EncodeContext) -> Any:
        """The forward step: write the stage's fields and sections into ``ctx``, return
        the data for the next stage."""
        raise NotImplementedError

    def after_codec(self, ctx: EncodeContext, predict: Any) -> None:
        """Optional: called after the codec coded the plane, before the stream is
        written, with ``predict()`` giving what the decoder reconstructs from the stages
        after this one (float64); a stage may still fill its fields and sections here
        (the ``"residual"`` stage codes ``x - predict()``). Default: nothing."""

    def check(self, header: dict[str, Any], version: int) -> set[str]:
        """Validate the stage's fields of a stream being read (raise
        :class:`featcodec.FormatError` on anything malformed: the header is untrusted);
        return the names of the sections those fields say the stream holds for it."""
        return set()

    def format_version(self, header: dict[str, Any]) -> int:
        """The lowest stream format version whose readers understand the stage's fields."""
        return 1

    def gives_shape(self, header: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
        """A values -> values stage: the shape of what it gives for values of ``shape``
        (called on a checked header; default: the same shape)."""
        return shape

    def prepare(self, ctx: DecodeContext) -> None:
        """Decode's work before the payload is decoded (rebuild tables, find a referenced
        transform, give the plane shape), so that such errors come before any payload
        work; results go into ``ctx.state[self.name]`` or ``ctx.plane_shape``."""

    def decode(self, data: Any, ctx: DecodeContext) -> Any:
        """The exact inverse of :meth:`encode` (as far as the stage is lossless)."""
        raise NotImplementedError
