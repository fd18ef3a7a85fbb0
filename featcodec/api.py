"""The public API: ``encode`` a feature tensor to one self-describing stream, ``decode`` it
back to a tensor like the input (framework, dtype, shape), read its ``header``.

Pipeline of ``encode``: transform (peaky-to-balanced, fitted on ``x`` by default) -> indices
-> :func:`featcodec.pack` into a 2-D plane -> codec (``"index"``: rANS) -> stream
(docs/format.md). ``decode`` runs it backwards.

Example:
    >>> import numpy as np, featcodec
    >>> x = np.random.default_rng(0).standard_t(3, size=(1, 16, 64)).astype(np.float32)
    >>> blob = featcodec.encode(x, bits=8)
    >>> y = featcodec.decode(blob)
    >>> y.shape, y.dtype, float(np.abs(y - x).max()) < float(np.abs(x).max()) / 10
    ((1, 16, 64), dtype('float32'), True)
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from typing import Any

import numpy as np

from .stream import container as bitstream
from ._arrays import _TORCH_NAME, Origin, float_view, is_torch
from .codecs import get_codec
from .errors import FeatcodecError, FormatError, InputError, MissingTransformError
from .stages.alignment import PackInfo, pack, unpack
from .transform.registry import register_transform, registered_transforms

__all__ = ["encode", "decode", "header", "register_transform", "registered_transforms"]

_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (1 <= bits <= 16):
        raise InputError(f"bits must be an integer from 1 to 16, not {bits!r}.")
    return int(bits)


def _resolve_encode_transform(transform: Any, bits: int | None, x: Any) -> Any:
    from .transform import Transform, fit_transform, fit_uniform

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
            return fit_transform(x, bits=b)
        if transform == "uniform":
            return fit_uniform(x, bits=b)
        t = registered_transforms().get(transform)
        if t is not None:
            return _resolve_encode_transform(t, bits, x)
    raise InputError(
        f"transform must be 'auto', 'uniform', a Transform or a registered transform id, not {transform!r:.80}."
    )


def encode(
    x: Any,
    codec: str = "index",
    *,
    transform: Any = "auto",
    bits: int | None = None,
    quality: Any = None,
    target_bpfp: float | None = None,
    layout: str = "auto",
    embed_transform: bool = True,
    max_error: float | None = None,
    **params: Any,
) -> bytes:
    """Compress a feature tensor into one self-describing stream (see docs/format.md).

    Args:
        x: torch tensor (any device) or numpy array, float16/bfloat16/float32/float64,
            finite, not empty.
        codec: a name from :func:`featcodec.available_codecs` (``"index"``: rANS over the
            transform's indices, lossless on them), or ``"auto"`` (below).
        transform: ``"auto"`` (fit the peaky-to-balanced transform on ``x``), ``"uniform"``,
            a fitted :class:`featcodec.Transform`, or the id of a registered one.
        bits: the transform's bits when fitting (default 8; lower is smaller and lossier).
        quality, target_bpfp: rate knobs of learned codecs (passed to the codec).
        layout: how to pack ``x`` into a plane (:func:`featcodec.pack`).
        embed_transform: store the transform's levels in the stream (default). With
            ``False`` only its id is stored, and the decoder needs it registered or passed.
        max_error: error-bounded coding with the index codec: every decoded value is
            within this absolute error of ``x`` (uniform levels with the fewest bits that
            guarantee it, checked on ``x``; :func:`featcodec.fit_max_error`). Replaces
            ``transform`` and ``bits``.
        **params: further codec parameters.

    Returns:
        bytes that :func:`decode` turns back into a tensor like ``x``.

    ``codec="auto"`` with ``target_bpfp``: the stream with the lowest MSE within that many
    bits per value among the index codec and the learned codecs (:mod:`featcodec.ratecontrol`).

    Example (error-bounded):
        >>> import numpy as np, featcodec
        >>> x = np.random.default_rng(0).normal(size=(64, 96)).astype(np.float32)
        >>> y = featcodec.decode(featcodec.encode(x, max_error=0.01))
        >>> bool(np.abs(y - x).max() <= 0.01)
        True
    """
    if max_error is not None:
        if codec != "index":
            raise InputError(
                f"max_error bounds the index codec's error; codec={codec!r} cannot guarantee a "
                "bound. Use codec='index' (the default) with max_error."
            )
        if transform != "auto" or bits is not None or target_bpfp is not None or quality is not None:
            raise InputError("max_error picks the transform and its bits itself; omit transform, bits, "
                             "quality and target_bpfp.")
        from .transform import MaxErrorFitter

        transform, idx = MaxErrorFitter(x).fit(max_error)  # the indices it checked
    else:
        idx = None
    if codec == "auto":
        from .ratecontrol import encode_within

        if quality is not None or bits is not None or params:
            raise InputError("codec='auto' chooses the codec, bits and quality itself: pass only "
                             "target_bpfp (and transform, layout, embed_transform).")
        return encode_within(x, target_bpfp, transform=transform, embed_transform=embed_transform,
                             layout=layout, encode=encode, decode=decode)
    if is_torch(x) and x.device.type != "cpu":  # no host copy just to read the metadata
        if x.dtype not in _TORCH_NAME:
            raise InputError(f"x has dtype {x.dtype}; featcodec takes float16, bfloat16, float32 or float64 tensors.")
        origin, shape = Origin("torch", _TORCH_NAME[x.dtype], str(x.device)), tuple(x.shape)
    else:
        a, origin = float_view(x)
        shape = a.shape
    if len(shape) == 0 or 0 in shape:
        raise InputError(f"x has shape {tuple(shape)}; featcodec needs a tensor with at least one value and one dimension.")
    t = _resolve_encode_transform(transform, bits, x)
    codec_obj = get_codec(codec)  # UnknownCodecError before the work
    if idx is None:
        idx = t.forward(x)  # NaN/Inf -> InputError
    if not isinstance(idx, np.ndarray):
        idx = idx.cpu().numpy()
    plane, info = pack(idx, layout)
    plane = np.ascontiguousarray(plane)
    tinfo, tsections = _transform_fields(t, bool(embed_transform))
    head = {
        "codec": codec,
        "codec_params": {},
        "bits": t.bits,
        "transform": tinfo,
        "pack": info.to_dict(),
        "dtype": origin.dtype,
        "shape": list(info.shape),
        "framework": origin.framework,
        "sections": ["payload", *tsections],
    }
    for k, v in (("quality", quality), ("target_bpfp", target_bpfp)):
        if v is not None:
            params[k] = v
    if target_bpfp is not None:  # the rate target counts the whole stream, not the payload
        lengths = [len(sec) for sec in tsections.values()]
        params["stream_size"] = lambda n, cparams: bitstream.stream_size(
            {**head, "codec_params": cparams}, [n, *lengths])
    if info.tile is not None and "tile" in inspect.signature(codec_obj.encode_plane).parameters:
        params["tile"] = info.tile  # codecs that model channel tiles get their size
    try:
        payload, head["codec_params"] = codec_obj.encode_plane(plane, t.bits, **params)
    except TypeError as e:
        params.pop("stream_size", None)
        raise InputError(f"codec {codec!r} rejected its parameters {sorted(params)}: {e}") from None
    sections = {"payload": bytes(payload), **tsections}
    return bitstream.write_stream(head, list(sections.values()), _stream_version(tinfo, codec_obj, head["codec_params"]))


def _transform_fields(t: Any, embed: bool) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header's ``transform`` object and the sections that embed it.

    Embedded: the levels, plus the thresholds only when they are not the midpoints the
    decoder would derive from the levels (Lloyd-Max and uniform transforms need none).
    """
    info = {"id": t.id, "embedded": embed, "channel_axis": t.channel_axis, "channels": t.channels,
            "thresholds": False}
    if not embed:
        return info, {}
    ends = _uniform_ends(t)
    if ends is not None:  # evenly spaced levels: their two ends stand for them (version 3)
        info["uniform"] = ends
        return info, {}
    secs = {"levels": np.ascontiguousarray(t.levels, dtype="<f4").tobytes()}
    if _rebuild(secs["levels"], None, t.channel_axis, t.channels, t.bits).id != t.id:
        info["thresholds"] = True
        secs["thresholds"] = np.ascontiguousarray(t.thresholds, dtype="<f4").tobytes()
    return info, secs


def _uniform_ends(t: Any) -> list | None:
    """``[low, high]`` (per channel: two lists) when ``t`` is exactly the uniform transform
    between its first and last levels (:func:`featcodec.transform.uniform_transform`), so a
    stream can store those two numbers instead of ``2**bits`` levels; else ``None``."""
    from .transform import uniform_transform

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


def _stream_version(tinfo: dict, codec_obj: Any, codec_params: dict) -> int:
    """The lowest format version that holds these header fields: version 3 for uniform
    ends, or what the codec says its parameters need (its ``format_version``)."""
    v = bitstream.UNIFORM_VERSION if "uniform" in tinfo else bitstream.BASE_VERSION
    return max(v, _codec_version(codec_obj, codec_params))


def _codec_version(codec_obj: Any, codec_params: dict) -> int:
    """The lowest format version the codec says its ``codec_params`` need (1: any)."""
    needs = getattr(codec_obj, "format_version", None)
    return 1 if needs is None else int(needs(codec_params))


def header(blob: Any) -> dict[str, Any]:
    """Read a stream's header without decoding it (validated; see docs/format.md).

    Example:
        >>> import numpy as np, featcodec
        >>> h = featcodec.header(featcodec.encode(np.ones((4, 8), np.float32), bits=4))
        >>> h["codec"], h["shape"], h["dtype"], h["bits"]
        ('index', [4, 8], 'float32', 4)
    """
    h = bitstream.header(blob)
    _check_transform_fields(h, h["format_version"])
    return h


_TRANSFORM_KEYS = {"id", "embedded", "channel_axis", "channels", "thresholds"}


def _check_transform_fields(h: dict, version: int) -> None:
    t = h["transform"]
    bad = FormatError("featcodec stream header field 'transform' is malformed.")
    if not isinstance(t, dict):
        raise bad
    compact = version >= bitstream.UNIFORM_VERSION and "uniform" in t
    if set(t) != _TRANSFORM_KEYS | ({"uniform"} if compact else set()):
        raise bad
    if not isinstance(t["id"], str) or not (1 <= len(t["id"]) <= 64):
        raise bad
    if not isinstance(t["embedded"], bool) or not isinstance(t["thresholds"], bool):
        raise bad
    ndim = len(h["shape"])
    ax, ch = t["channel_axis"], t["channels"]
    if ax is None:
        if ch is not None:
            raise bad
    elif (
        isinstance(ax, bool) or not isinstance(ax, int) or not (-ndim <= ax < ndim)
        or isinstance(ch, bool) or not isinstance(ch, int) or ch != h["shape"][ax]
    ):
        raise FormatError("featcodec stream header: transform channel_axis/channels do not fit the shape.")
    if compact:
        _check_uniform_ends(t, bad)
    tables = t["embedded"] and not compact
    want = {"payload"} | ({"levels"} if tables else set()) | ({"thresholds"} if t["thresholds"] else set())
    if set(h["sections"]) != want or (t["thresholds"] and not tables):
        raise FormatError(f"featcodec stream sections {h['sections']} do not match its transform fields.")


def _check_uniform_ends(t: dict, bad: FormatError) -> None:
    """``uniform``: ``[low, high]`` numbers, or two lists of ``channels`` numbers."""
    def numbers(v: Any, n: int | None) -> bool:
        if n is None:
            return isinstance(v, (int, float)) and not isinstance(v, bool)
        return isinstance(v, list) and len(v) == n and all(numbers(e, None) for e in v)

    u, n = t["uniform"], t["channels"]
    if not (t["embedded"] and isinstance(u, list) and len(u) == 2 and all(numbers(v, n) for v in u)):
        raise bad


@functools.lru_cache(maxsize=64)
def _rebuild(levels: bytes, thresholds: bytes | None, channel_axis: int | None, channels: int | None,
             bits: int) -> Any:
    """A Transform from raw little-endian float32 tables (lengths already checked), cached
    so a series of streams with the same embedded transform rebuilds it once."""
    from .transform import Transform

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
def _rebuild_uniform(ends: str, channel_axis: int | None, bits: int) -> Any:
    """The uniform transform between the stream's ends (JSON text, for the cache)."""
    from .transform import uniform_transform

    lo, hi = json.loads(ends)
    try:
        return uniform_transform(lo, hi, bits, channel_axis=channel_axis)
    except FeatcodecError as e:
        raise FormatError(f"featcodec stream's uniform transform is invalid: {e}") from None


def _transform_from_stream(h: dict, sections: dict[str, memoryview], given: Any) -> Any:
    """The stream's transform: rebuilt from its embedded tables (checked against the id),
    or the one passed / registered under the referenced id."""
    t = h["transform"]
    if not t["embedded"]:
        tr = given if given is not None else registered_transforms().get(t["id"])
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
        if given is not None and given.id != tr.id:
            raise InputError(f"the stream embeds transform {tr.id}, but transform={given.id} was passed.")
        return tr
    C = 1 if t["channels"] is None else t["channels"]
    K = 2 ** h["bits"]
    for name, count in (("levels", C * K), ("thresholds", C * (K - 1))):
        if name in sections and len(sections[name]) != 4 * count:
            raise FormatError(f"featcodec stream's {name} section has {len(sections[name])} bytes, not {4 * count}.")
    thr = sections.get("thresholds")
    try:
        tr = _rebuild(bytes(sections["levels"]), None if thr is None else bytes(thr), t["channel_axis"],
                      t["channels"], h["bits"])
    except InputError as e:
        raise FormatError(f"featcodec stream's embedded transform is invalid: {e}") from None
    if tr.id != t["id"]:
        raise FormatError("featcodec stream's embedded transform does not match its id: corrupt.")
    if given is not None and given.id != tr.id:
        raise InputError(f"the stream embeds transform {tr.id}, but transform={given.id} was passed.")
    return tr


def decode(
    blob: Any,
    *,
    transform: Any = None,
    device: Any = None,
    dtype: str | None = None,
    max_values: int | None = None,
) -> Any:
    """Decode a stream from :func:`encode` into a tensor like the one encoded.

    Returns a torch tensor (on ``device``, default CPU) if a torch tensor was encoded, a
    numpy array if a numpy array was, with the original shape and dtype (``dtype``
    overrides it, e.g. ``"float32"``). ``transform`` supplies a transform the stream only
    references by id (see :func:`register_transform`). ``max_values`` caps the values a
    stream may declare (default: ``featcodec.limits.MAX_ELEMENTS``, 2**31), for services
    that decode untrusted streams and cannot afford a large allocation; a stream above it
    raises :class:`featcodec.FormatError` before anything is allocated.

    Raises a :class:`featcodec.FormatError` subclass for corrupt, truncated or foreign
    bytes, :class:`featcodec.MissingTransformError` for an unknown referenced transform,
    :class:`featcodec.UnknownCodecError` for an unregistered codec.
    """
    from .transform import Transform

    if transform is not None and not isinstance(transform, Transform):
        raise InputError(f"transform must be a featcodec Transform, not {type(transform).__name__}.")
    s = bitstream.read_stream(blob)
    h = bitstream.validate_header(s.header, len(s.sections))
    _check_transform_fields(h, s.version)
    if max_values is not None and math.prod(h["shape"]) > max_values:
        raise FormatError(
            f"this stream declares {math.prod(h['shape'])} values, more than max_values={max_values}."
        )
    sections = dict(zip(h["sections"], s.sections))
    if "payload" not in sections:
        raise FormatError("featcodec stream has no payload section.")
    origin = Origin(h["framework"], h["dtype"])
    want = dtype or origin.dtype
    if want not in _DTYPES or (want == "bfloat16" and origin.framework != "torch"):
        raise InputError(
            f"dtype must be one of {', '.join(_DTYPES)} (bfloat16 only for torch streams), not {want!r}."
        )
    if device is not None and origin.framework != "torch" and str(device) != "cpu":
        raise InputError("this stream holds a numpy array; device= applies to torch tensors only.")
    if device is not None:
        import torch

        try:
            device = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise InputError(f"device must be a torch device such as 'cpu' or 'cuda:0', not {device!r}.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device={str(device)!r}, but torch sees no CUDA device here; decode to 'cpu'.")
    info = PackInfo.from_dict(h["pack"])
    codec_obj = get_codec(h["codec"])
    if _codec_version(codec_obj, h["codec_params"]) > s.version:
        raise FormatError(f"featcodec stream of format version {s.version} has codec parameters of a newer "
                          f"version: corrupt.")
    tr = _transform_from_stream(h, sections, transform)
    bits = h["bits"]
    try:
        plane = codec_obj.decode_plane(bytes(sections["payload"]), info.plane_shape, bits, h["codec_params"])
    except FeatcodecError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, MemoryError) as e:
        raise FormatError(f"featcodec stream payload is corrupt ({type(e).__name__}: {e}).") from None
    plane = np.asarray(plane)
    if plane.shape != info.plane_shape or plane.dtype not in (np.uint8, np.uint16):
        raise FormatError(f"codec {h['codec']!r} returned a plane of the wrong shape or dtype.")
    idx = unpack(plane, info)
    if origin.framework == "torch":
        import torch

        idx = torch.from_numpy(np.ascontiguousarray(idx))
        if device is not None and device.type == "cuda":
            idx = idx.to(device)  # only indices cross; the inverse runs on the device
    try:
        out = tr.inverse(idx, dtype=want)
    except InputError as e:  # arguments were checked: only an index beyond the levels is left
        raise FormatError(f"featcodec stream payload is corrupt: {e}") from None
    return out.to(device) if device is not None and device.type != "cpu" else out
