"""The ``"transform"`` stage: feature values -> integer indices by the value transform
(DT-UFC's peaky-to-balanced transform, CAUFC's uniform alignment or error-bounded uniform
levels; :mod:`featcodec.transform`), and back by its inverse lookup.

It owns the header field ``transform`` and the sections ``levels`` and ``thresholds``
(docs/format.md): an embedded transform is stored as its levels (plus its thresholds only
when they are not the midpoints the decoder derives), packed as varints of their gaps
(format version 10; float32 before), as the two ends of evenly spaced levels (format
version 3), or, not embedded, only by its id.

Encode options it reads: ``transform`` (``"auto"``, ``"uniform"``, a Transform or a
registered id), ``bits``, ``max_error``, ``embed_transform``, ``fit_cache`` (a dict shared
across encodes of one tensor, so fits are not repeated). Decode options: ``transform``
(one the stream references), ``dtype``, ``device``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from ..errors import FeatcodecError, FormatError, InputError, MissingTransformError
from ..stream.container import PACKED_VERSION, UNIFORM_VERSION
from ..transform import MaxErrorFitter, Transform, fit_transform, fit_uniform, uniform_transform
from ..transform.registry import lookup
from ..transform.table import _check_bits
from .base import DecodeContext, EncodeContext, Stage

__all__ = ["ValueTransform", "resolve"]

_KEYS = {"id", "embedded", "channel_axis", "channels", "thresholds"}


def resolve(transform: Any, bits: int | None, x: Any) -> Transform:
    """The transform an encode of ``x`` uses for these arguments: ``transform`` as given
    (``bits``, if given, must match), ``"auto"`` (Lloyd-Max fitted on ``x`` by the fast
    method of :func:`featcodec.fit_transform`) or
    ``"uniform"`` at ``bits`` (default 8), or the registered transform of that id."""
    if isinstance(transform, Transform):
        if bits is not None and _check_bits(bits) != transform.bits:
            raise InputError(
                f"bits={bits} but the given transform has {transform.bits} bits; omit bits "
                "or fit a transform with the bits you want."
            )
        return transform
    b = 8 if bits is None else _check_bits(bits)
    if isinstance(transform, str):
        if transform == "auto":
            return fit_transform(x, bits=b, method="fast")
        if transform == "uniform":
            return fit_uniform(x, bits=b)
        t = lookup(transform)
        if t is not None:
            return resolve(t, bits, x)
    raise InputError(
        f"transform must be 'auto', 'uniform', a Transform or a registered transform id, not {transform!r:.80}."
    )


class ValueTransform(Stage):
    """The ``"transform"`` stage (see the module docstring)."""

    name, takes, gives = "transform", "values", "indices"
    fields, sections = ("transform",), ("levels", "thresholds")

    # ------------------------------------------------------------------ encode
    def encode(self, x: Any, ctx: EncodeContext) -> np.ndarray:
        o = ctx.options
        transform = o.get("transform", "auto")
        if o.get("max_error") is not None:
            fitter = _cached(o, x, ("max_error",), lambda: MaxErrorFitter(x))
            t, idx = fitter.fit(o["max_error"])  # the indices it checked
        else:
            if isinstance(transform, str) and transform in ("auto", "uniform"):
                t = _cached(o, x, (transform, o.get("bits")), lambda: resolve(transform, o.get("bits"), x))
            else:
                t = resolve(transform, o.get("bits"), x)
            idx = t.forward(x)  # NaN/Inf -> InputError
        if not isinstance(idx, np.ndarray):
            idx = idx.cpu().numpy()
        ctx.header["transform"], secs = _fields(t, bool(o.get("embed_transform", True)))
        ctx.sections.update(secs)
        ctx.bits = t.bits
        ctx.state[self.name] = t
        return idx

    # ------------------------------------------------------------------ read
    def check(self, header: dict[str, Any], version: int) -> set[str]:
        t = header["transform"]
        bad = FormatError("featcodec stream header field 'transform' is malformed.")
        if not isinstance(t, dict):
            raise bad
        compact = version >= UNIFORM_VERSION and "uniform" in t
        packed = version >= PACKED_VERSION and "packed" in t
        if set(t) != _KEYS | ({"uniform"} if compact else set()) | ({"packed"} if packed else set()):
            raise bad
        if packed and (compact or not t["embedded"] or isinstance(t["packed"], bool)
                       or not isinstance(t["packed"], int) or not 0 <= t["packed"] <= 23):
            raise bad
        if not isinstance(t["id"], str) or not (1 <= len(t["id"]) <= 64):
            raise bad
        if not isinstance(t["embedded"], bool) or not isinstance(t["thresholds"], bool):
            raise bad
        ndim = len(header["shape"])
        ax, ch = t["channel_axis"], t["channels"]
        if ax is None:
            if ch is not None:
                raise bad
        elif (
            isinstance(ax, bool) or not isinstance(ax, int) or not (-ndim <= ax < ndim)
            or isinstance(ch, bool) or not isinstance(ch, int) or ch != header["shape"][ax]
        ):
            raise FormatError("featcodec stream header: transform channel_axis/channels do not fit the shape.")
        if compact:
            _check_uniform_ends(t, bad)
        tables = t["embedded"] and not compact
        if t["thresholds"] and not tables:
            raise FormatError("featcodec stream header: transform thresholds without embedded levels.")
        return ({"levels"} if tables else set()) | ({"thresholds"} if t["thresholds"] else set())

    def format_version(self, header: dict[str, Any]) -> int:
        t = header["transform"]
        return PACKED_VERSION if "packed" in t else UNIFORM_VERSION if "uniform" in t else 1

    # ------------------------------------------------------------------ decode
    def prepare(self, ctx: DecodeContext) -> None:
        ctx.state[self.name] = _from_stream(ctx.header, ctx.sections, ctx.options.get("transform"))

    def decode(self, idx: np.ndarray, ctx: DecodeContext) -> Any:
        device = ctx.options.get("device")
        if ctx.header["framework"] == "torch":
            import torch

            idx = torch.from_numpy(np.ascontiguousarray(idx))
            if device is not None and device.type == "cuda":
                idx = idx.to(device)  # only indices cross; the inverse runs on the device
        try:
            out = ctx.state[self.name].inverse(idx, dtype=ctx.options["dtype"])
        except InputError as e:  # arguments were checked: only an index beyond the levels is left
            raise FormatError(f"featcodec stream payload is corrupt: {e}") from None
        return out.to(device) if device is not None and device.type != "cpu" else out


def _cached(options: dict[str, Any], x: Any, key: tuple, make: Any) -> Any:
    """``make()``, remembered in ``options["fit_cache"]`` (a dict a caller shares across
    encodes of one tensor, as rate control does) for this very ``x`` and ``key``."""
    cache = options.get("fit_cache")
    if cache is None:
        return make()
    hit = cache.get((id(x), *key))
    if hit is None or hit[0] is not x:  # held with its input, so the id cannot be reused
        hit = cache[(id(x), *key)] = (x, make())
    return hit[1]


# ---------------------------------------------------------------------- the header fields
def _fields(t: Transform, embed: bool) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header's ``transform`` object and the sections that embed it.

    Embedded: the levels (packed, :func:`pack_levels`), plus the thresholds only when they
    are not the midpoints the decoder would derive from the levels (Lloyd-Max and uniform
    transforms need none).
    """
    info = {"id": t.id, "embedded": embed, "channel_axis": t.channel_axis, "channels": t.channels,
            "thresholds": False}
    if not embed:
        return info, {}
    ends = _uniform_ends(t)
    if ends is not None:  # evenly spaced levels: their two ends stand for them (version 3)
        info["uniform"] = ends
        return info, {}
    info["packed"], packed = pack_levels(t.levels)
    secs = {"levels": packed}
    if not t.thresholds_are_midpoints:  # what the decoder derives from the levels
        info["thresholds"] = True
        secs["thresholds"] = np.ascontiguousarray(t.thresholds, dtype="<f4").tobytes()
    return info, secs


def pack_levels(levels: np.ndarray) -> tuple[int, bytes]:
    """``(shift, section)``: the ``levels`` section of format version 10 for strictly
    ascending, finite float32 ``levels`` (one row, or one per channel).

    Each level's float32 bits map to a key that ascends with the value (sign bit flipped
    on positives, all bits on negatives); ``shift`` is the number of low mantissa bits that
    are zero in every level (0 to 23), which the keys drop. Each row is then its first
    key, its first step to the next key less one, and each later step's change from the
    step before (zigzag), as LEB128 varints (docs/format.md; compiled:
    csrc/packed_levels.cpp). Lossless; levels with few significant bits (the fast fit
    rounds them so, :func:`featcodec.transform.lloydmax.round_levels`) take about 1.4
    bytes each instead of 4.

    >>> shift, raw = pack_levels(np.array([-1.5, 0.0, 0.25, 3.0], np.float32))
    >>> shift, len(raw), unpack_levels(raw, shift, 1, 4).tolist()
    (22, 7, [[-1.5, 0.0, 0.25, 3.0]])
    """
    from .. import _core

    return _core.pack_levels(np.ascontiguousarray(levels, dtype=np.float32))


def unpack_levels(raw: bytes, shift: int, rows: int, count: int) -> np.ndarray:
    """The float32 levels ``(rows, count)`` of a packed ``levels`` section
    (:func:`pack_levels`); FormatError when ``raw`` is not exactly that many varints, the
    keys do not ascend or one leaves the 32 bits. (Whether they are finite, the Transform
    checks.)"""
    from .. import _core

    out = _core.unpack_levels(raw, shift, rows, count)
    if out is None:
        raise FormatError("featcodec stream's levels section is corrupt: not the packed levels its header "
                          "announces (another number of varints, a cut or overlong one, keys that do not "
                          "ascend, or one beyond 32 bits).")
    return out


def _uniform_ends(t: Transform) -> list | None:
    """``[low, high]`` (per channel: two lists) when ``t`` is exactly the uniform transform
    between its first and last levels (:func:`featcodec.transform.uniform_transform`), so a
    stream can store those two numbers instead of ``2**bits`` levels; else ``None``."""
    gaps = np.diff(t.levels.astype(np.float64), axis=-1)
    if gaps.size and np.any(np.ptp(gaps, axis=-1) > 0.5 * gaps.max(axis=-1)):  # clearly uneven: no rebuild
        return None
    lo, hi = t.levels[..., 0].astype(np.float64), t.levels[..., -1].astype(np.float64)
    try:
        same = uniform_transform(lo, hi, t.bits, channel_axis=t.channel_axis).id == t.id
    except FeatcodecError:
        return None
    if not same:
        return None
    return [lo.tolist(), hi.tolist()]  # numbers, or per-channel lists


def _check_uniform_ends(t: dict, bad: FormatError) -> None:
    """``uniform``: ``[low, high]`` numbers, or two lists of ``channels`` numbers."""
    def numbers(v: Any, n: int | None) -> bool:
        if n is None:
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        return isinstance(v, list) and len(v) == n and all(numbers(e, None) for e in v)

    u, n = t["uniform"], t["channels"]
    if not (t["embedded"] and isinstance(u, list) and len(u) == 2 and all(numbers(v, n) for v in u)):
        raise bad


# ---------------------------------------------------------------------- rebuilding
@functools.lru_cache(maxsize=64)
def _rebuild(levels: bytes, thresholds: bytes | None, channel_axis: int | None, channels: int | None,
             bits: int) -> Transform:
    """A Transform from raw little-endian float32 tables (lengths already checked), cached
    so a series of streams with the same embedded transform rebuilds it once."""
    tables = []
    for name, raw in (("levels", levels), ("thresholds", thresholds)):
        if raw is None:
            continue
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"its {name} are not finite")
        tables.append(a if channels is None else a.reshape(channels, -1))
    return Transform(*tables, channel_axis=channel_axis, kind="embedded")


@functools.lru_cache(maxsize=64)
def _unpacked(raw: bytes, shift: int, rows: int, count: int) -> bytes:
    """:func:`unpack_levels` as raw little-endian float32 (for :func:`_rebuild`), cached as
    it is: a series of streams repeats its levels."""
    return unpack_levels(raw, shift, rows, count).tobytes()


@functools.lru_cache(maxsize=64)
def _rebuild_uniform(ends: str, channel_axis: int | None, bits: int) -> Transform:
    """The uniform transform between the stream's ends (JSON text, for the cache)."""
    lo, hi = json.loads(ends)
    try:
        return uniform_transform(lo, hi, bits, channel_axis=channel_axis)
    except FeatcodecError as e:
        raise FormatError(f"featcodec stream's uniform transform is invalid: {e}") from None


def _from_stream(h: dict, sections: dict[str, Any], given: Transform | None) -> Transform:
    """The stream's transform: rebuilt from its embedded tables (checked against the id),
    or the one passed / registered under the referenced id."""
    t = h["transform"]
    if not t["embedded"]:
        tr = given if given is not None else lookup(t["id"])
        if tr is None:
            raise MissingTransformError(
                f"this stream references transform {t['id']!r}, which is not embedded; pass it as "
                f"decode(blob, transform=t) or call featcodec.register_transform(t) first."
            )
        if tr.id != t["id"]:
            raise InputError(f"the stream needs transform {t['id']}, but transform={tr.id} was passed.")
        return tr
    if "uniform" in t:
        tr = _rebuild_uniform(json.dumps(t["uniform"]), t["channel_axis"], h["bits"])
        if tr.id != t["id"]:
            raise FormatError("featcodec stream's uniform transform does not match its id: corrupt.")
    else:
        C = 1 if t["channels"] is None else t["channels"]
        K = 2 ** h["bits"]
        levels = bytes(sections["levels"])
        if "packed" in t:
            levels = _unpacked(levels, t["packed"], C, K)
        for name, raw in (("levels", levels), ("thresholds", sections.get("thresholds"))):
            count = C * K - (C if name == "thresholds" else 0)
            if raw is not None and len(raw) != 4 * count:
                raise FormatError(f"featcodec stream's {name} section has {len(raw)} bytes, not {4 * count}.")
        thr = sections.get("thresholds")
        try:
            tr = _rebuild(levels, None if thr is None else bytes(thr), t["channel_axis"],
                          t["channels"], h["bits"])
        except InputError as e:
            raise FormatError(f"featcodec stream's embedded transform is invalid: {e}") from None
        if tr.id != t["id"]:
            raise FormatError("featcodec stream's embedded transform does not match its id: corrupt.")
    if given is not None and given.id != tr.id:
        raise InputError(f"the stream embeds transform {tr.id}, but transform={given.id} was passed.")
    return tr
