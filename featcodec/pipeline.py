"""The encode pipeline: stages (:mod:`featcodec.stages`), then a codec
(:mod:`featcodec.codecs`), then the stream (:mod:`featcodec.stream.container`); decode
runs it backwards. :func:`featcodec.encode` and :func:`featcodec.decode` check their
arguments and call :func:`encode` / :func:`decode` here; rate control
(:mod:`featcodec.ratecontrol`) calls them too.

The stream's header holds the common fields (codec, shape, dtype, ...), each stage's own
fields, and ``stages`` (the stage names in order) when they are not
:data:`~featcodec.stages.DEFAULT_STAGES`; its sections are the codec's ``payload`` and
then the stages' sections in stage order. The stream is written at the lowest format
version that holds all of it (docs/format.md).

Example:
    >>> import numpy as np
    >>> from featcodec import pipeline
    >>> x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    >>> blob = pipeline.encode(x, "index", {"bits": 4})
    >>> h = pipeline.read_header(blob)
    >>> h["codec"], h["bits"], h["pack"]["layout"], "stages" in h  # the default stages
    ('index', 4, 'plane', False)
    >>> float(np.abs(pipeline.decode(blob, {"dtype": "float32"}) - x).max()) < 0.1
    True
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Sequence

import numpy as np

from ._arrays import _TORCH_NAME, Origin, float_view, is_torch
from .codecs import get_codec
from .errors import FeatcodecError, FormatError, InputError
from .stages import DEFAULT_STAGES, DecodeContext, EncodeContext, Stage, chain
from .stream import container

__all__ = ["encode", "encode_context", "values_for_transform", "decode", "read_header", "stages_of"]

_DTYPES = ("float16", "bfloat16", "float32", "float64")


def encode(x: Any, codec: str, options: dict[str, Any], codec_params: dict[str, Any] | None = None,
           stages: Sequence[str] | None = None) -> bytes:
    """One stream of ``x``: the ``stages`` (default :data:`~featcodec.stages.DEFAULT_STAGES`)
    with their ``options``, then ``codec`` with ``codec_params``. A ``target_bpfp`` among
    the codec's parameters counts the whole stream (the codec gets ``stream_size``)."""
    return encode_context(x, codec, options, codec_params, stages)[0]


def encode_context(x: Any, codec: str, options: dict[str, Any], codec_params: dict[str, Any] | None = None,
                   stages: Sequence[str] | None = None) -> tuple[bytes, EncodeContext]:
    """:func:`encode`, and the context its stages filled (``ctx.state["transform"]``: the
    Transform the stream was made with)."""
    steps = chain(DEFAULT_STAGES if stages is None else stages, InputError)
    names = tuple(st.name for st in steps)
    codec_obj = get_codec(codec)  # UnknownCodecError before the work
    origin, shape = _origin(x)
    ctx = EncodeContext(x, options)
    data = x
    for st in steps:
        data = st.encode(data, ctx)
    _check_written(steps, ctx)
    head = {
        "codec": codec,
        "codec_params": {},
        "bits": ctx.bits,
        **ctx.header,
        "dtype": origin.dtype,
        "shape": list(shape),
        "framework": origin.framework,
        "sections": ["payload", *ctx.sections],
    }
    if names != DEFAULT_STAGES:
        head["stages"] = list(names)
    params = dict(codec_params or {})
    if params.get("target_bpfp") is not None:  # the rate target counts the whole stream
        lengths = [len(sec) for sec in ctx.sections.values()]
        params["stream_size"] = lambda n, cparams: container.stream_size(
            {**head, "codec_params": cparams}, [n, *lengths])
    if ctx.tile is not None and _takes_tile(codec_obj.encode_plane):
        params["tile"] = ctx.tile  # codecs that model channel tiles get their size
    reconstruction: list = []
    if ctx.codec_params:  # what stages ask of the codec; it hands back the plane it decodes
        params.update(ctx.codec_params, reconstruction=reconstruction)
    try:
        payload, head["codec_params"] = codec_obj.encode_plane(data, ctx.bits, **params)
    except TypeError as e:
        params.pop("stream_size", None)
        params.pop("reconstruction", None)
        raise InputError(f"codec {codec!r} rejected its parameters {sorted(params)}: {e}") from None
    for i, st in enumerate(steps):
        if type(st).after_codec is not Stage.after_codec:
            st.after_codec(ctx, lambda i=i: _reconstruct(steps[i + 1:], head, ctx, codec_obj, payload,
                                                         reconstruction))
            head.update(ctx.header)
    version = max(container.BASE_VERSION, _codec_version(codec_obj, head["codec_params"]),
                  container.STAGES_VERSION if "stages" in head else 1,
                  *(st.format_version(head) for st in steps))
    return container.write_stream(head, [bytes(payload), *ctx.sections.values()], version), ctx


def _takes_tile(encode_plane: Any) -> bool:
    """A codec's ``encode_plane`` takes ``tile=`` (remembered per function: inspecting a
    signature costs more than a small encode's Python)."""
    fn = getattr(encode_plane, "__func__", encode_plane)
    try:
        return _has_parameter(fn, "tile")
    except TypeError:  # an unhashable callable
        return "tile" in inspect.signature(encode_plane).parameters


@functools.lru_cache(maxsize=64)
def _has_parameter(fn: Any, name: str) -> bool:
    return name in inspect.signature(fn).parameters


def values_for_transform(x: Any, options: dict[str, Any], stages: Sequence[str] | None = None) -> Any:
    """What the value transform of an encode of ``x`` sees: ``x`` after the values ->
    values stages in front of it (``outliers``, ``rotation``, ``scales``, ...), run with
    these ``options``. A transform fitted once for many encodes through those stages
    should be fitted on this."""
    steps = chain(DEFAULT_STAGES if stages is None else stages, InputError)
    ctx = EncodeContext(x, options)
    data = x
    for st in steps:
        if st.gives != "values":
            break
        data = st.encode(data, ctx)
    return data


def _reconstruct(steps: Sequence[Stage], head: dict[str, Any], ctx: EncodeContext, codec_obj: Any,
                 payload: bytes, planes: list) -> Any:
    """What a decoder reconstructs from ``payload`` through ``steps`` (the stages after the
    one asking), in float64 on the CPU: the plane the codec handed back in ``planes``, or
    the codec's decode of ``payload``."""
    sections = {"payload": payload, **ctx.sections}
    dctx = DecodeContext(head, sections, container.FORMAT_VERSION,
                         {"transform": ctx.state.get("transform"), "dtype": "float64", "device": None})
    for st in steps:
        st.prepare(dctx)
    data = planes[-1] if planes else codec_obj.decode_plane(payload, dctx.plane_shape, head["bits"],
                                                            head["codec_params"])
    for st in reversed(steps):
        data = st.decode(data, dctx)
    return data


def _check_written(steps: Sequence[Stage], ctx: EncodeContext) -> None:
    """The stages wrote only the fields and sections they own, and gave the bits, so that
    the stream they make reads back (a stage's bug, caught where it is made)."""
    stray = set(ctx.header) - {f for st in steps for f in st.fields}
    extra = set(ctx.sections) - {n for st in steps for n in st.sections}
    if stray or extra or ctx.bits is None:
        raise FeatcodecError(f"the stages {[st.name for st in steps]} wrote header fields {sorted(stray)} / "
                             f"sections {sorted(extra)} that none of them owns, or no bits "
                             f"(bits={ctx.bits}); fix the stage's fields/sections.")


def _origin(x: Any) -> tuple[Origin, tuple[int, ...]]:
    """Framework, dtype and device of ``x``, and its shape (checked non-empty)."""
    if is_torch(x) and x.device.type != "cpu":  # no host copy just to read the metadata
        if x.dtype not in _TORCH_NAME:
            raise InputError(f"x has dtype {x.dtype}; featcodec takes float16, bfloat16, float32 or float64 tensors.")
        origin, shape = Origin("torch", _TORCH_NAME[x.dtype], str(x.device)), tuple(x.shape)
    else:
        a, origin = float_view(x)
        shape = a.shape
    if len(shape) == 0 or 0 in shape:
        raise InputError(f"x has shape {tuple(shape)}; featcodec needs a tensor with at least one value and one dimension.")
    return origin, tuple(shape)


def _codec_version(codec_obj: Any, codec_params: dict) -> int:
    """The lowest format version the codec says its ``codec_params`` need (1: any)."""
    needs = getattr(codec_obj, "format_version", None)
    return 1 if needs is None else int(needs(codec_params))


def stages_of(h: dict[str, Any]) -> tuple[Stage, ...]:
    """The stages of a stream with (commonly validated) header ``h``."""
    return chain(h.get("stages", DEFAULT_STAGES), FormatError)


def _validate(h: Any, nsections: int, version: int) -> tuple[dict[str, Any], tuple[Stage, ...]]:
    """The header checked field by field, each stage's fields by that stage, and its stages."""
    h = container.validate_header(h, nsections, version)
    steps = stages_of(h)
    owned = {f for st in steps for f in st.fields}
    known = set(container.COMMON_FIELDS) | owned | ({"stages"} if "stages" in h else set())
    missing, extra = owned - set(h), set(h) - known
    if missing or extra:
        raise FormatError(
            f"featcodec stream header has missing {sorted(missing)} / unknown {sorted(extra)} fields."
        )
    want = {"payload"}
    for st in steps:
        secs = st.check(h, version)
        if st.format_version(h) > version:
            raise FormatError(f"featcodec stream of format version {version} has {st.name!r} fields of a newer "
                              f"version: corrupt.")
        want |= secs
    if set(h["sections"]) != want:
        raise FormatError(f"featcodec stream sections {h['sections']} do not match its header fields "
                          f"(expected {sorted(want)}).")
    shape = tuple(h["shape"])  # what the values -> values stages make of the tensor's shape
    for st in steps:
        if (st.takes, st.gives) == ("values", "values"):
            shape = tuple(st.gives_shape(h, shape))
    if "pack" in h and tuple(h["pack"].get("shape", ())) != shape:
        raise FormatError("featcodec stream header: pack shape and tensor shape differ.")
    return h, steps


def _output_options(h: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``dtype`` and ``device`` checked against the stream's framework:
    the dtype name to decode to, and a ``torch.device`` or ``None``."""
    framework = h["framework"]
    want = options.get("dtype") or h["dtype"]
    if want not in _DTYPES or (want == "bfloat16" and framework != "torch"):
        raise InputError(
            f"dtype must be one of {', '.join(_DTYPES)} (bfloat16 only for torch streams), not {want!r}."
        )
    device = options.get("device")
    if device is not None and framework != "torch" and str(device) != "cpu":
        raise InputError("this stream holds a numpy array; device= applies to torch tensors only.")
    if device is not None:
        import torch

        try:
            device = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise InputError(f"device must be a torch device such as 'cpu' or 'cuda:0', not {device!r}.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device={str(device)!r}, but torch sees no CUDA device here; decode to 'cpu'.")
    return {**options, "dtype": want, "device": device}


def read_header(blob: Any) -> dict[str, Any]:
    """The validated header of a stream, plus ``format_version``, ``section_lengths`` (by
    name) and ``size`` (bytes). Checks the checksum, so a corrupt stream raises here too."""
    s = container.read_stream(blob)
    h, _ = _validate(s.header, len(s.sections), s.version)
    h = dict(h)
    h["format_version"] = s.version
    h["section_lengths"] = {name: len(sec) for name, sec in zip(h["sections"], s.sections)}
    h["size"] = memoryview(blob).nbytes
    return h


def decode(blob: Any, options: dict[str, Any], max_values: int | None = None) -> Any:
    """The tensor of stream ``blob``; ``options`` for the stages: ``dtype`` (the output
    dtype name; default the encoded one), ``device`` (a torch device, name or ``None``),
    ``transform`` (one the stream references). ``max_values`` caps the values the stream
    may declare."""
    s = container.read_stream(blob)
    h, steps = _validate(s.header, len(s.sections), s.version)
    if max_values is not None and math.prod(h["shape"]) > max_values:
        raise FormatError(
            f"this stream declares {math.prod(h['shape'])} values, more than max_values={max_values}."
        )
    options = _output_options(h, options)
    codec_obj = get_codec(h["codec"])
    if _codec_version(codec_obj, h["codec_params"]) > s.version:
        raise FormatError(f"featcodec stream of format version {s.version} has codec parameters of a newer "
                          f"version: corrupt.")
    ctx = DecodeContext(h, dict(zip(h["sections"], s.sections)), s.version, options)
    for st in steps:
        st.prepare(ctx)
    if ctx.plane_shape is None:  # pragma: no cover - the stage giving the plane sets it
        raise FormatError("featcodec stream's stages give no plane shape.")
    try:
        plane = codec_obj.decode_plane(bytes(ctx.sections["payload"]), ctx.plane_shape, h["bits"],
                                       h["codec_params"])
    except FeatcodecError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, MemoryError) as e:
        raise FormatError(f"featcodec stream payload is corrupt ({type(e).__name__}: {e}).") from None
    data = np.asarray(plane)
    if data.shape != ctx.plane_shape or data.dtype not in (np.uint8, np.uint16):
        raise FormatError(f"codec {h['codec']!r} returned a plane of the wrong shape or dtype.")
    for st in reversed(steps):
        data = st.decode(data, ctx)
    return data
