"""The stages of an encode: each turns the data one step closer to the 2-D integer plane a
codec codes, and back on decode (docs/architecture.md).

A stage owns some header fields and sections of the stream. It writes them on encode,
validates them when a stream is read (a hostile header is rejected by the stage that owns
it), and reads them back on decode. The data a stage takes and gives is one of three
kinds, and a pipeline is a chain from ``"values"`` to ``"plane"``:

- ``"values"``: a float tensor shaped like the input (numpy or torch);
- ``"indices"``: integer indices of the value transform (numpy uint8/uint16), same shape;
- ``"plane"``: the C-contiguous 2-D uint8/uint16 plane the codec codes.

The built-in stages are :mod:`.value_transform` (``"transform"``: values -> indices),
:mod:`.alignment` (``"pack"``: indices -> plane), the values -> values stages
:mod:`.outliers` (``"outliers"``: the largest values moved to a sparse section),
:mod:`.rotation` (``"rotation"``: a randomised Hadamard rotation along the hidden axis)
and :mod:`.scales` (``"scales"``: per-token or per-channel scales), :mod:`.spatial`
(``"spatial"``: a blockwise 2-D Walsh-Hadamard transform of channels-first maps), and
:mod:`.residual` (``"residual"``: first of all, an error bound on a lossy codec's
reconstruction); a stream that names no stages uses exactly the first two
(:data:`DEFAULT_STAGES`). Stages that work on values come before ``"transform"``;
:func:`featcodec.encode`'s ``outliers=``, ``rotation=``, ``scales=`` and ``spatial=`` put
them in that order (:data:`VALUE_STAGES`).

How to write and register a stage, with a worked example that the tests run:
docs/architecture.md.

Example:
    >>> import numpy as np, featcodec
    >>> from featcodec.stages import DEFAULT_STAGES, chain
    >>> [st.takes + "->" + st.gives for st in chain(DEFAULT_STAGES, featcodec.InputError)]
    ['values->indices', 'indices->plane']
    >>> blob = featcodec.encode(np.ones((4, 4), np.float32), stages=["transform", "pack"])
    >>> blob == featcodec.encode(np.ones((4, 4), np.float32))  # the default, the same bytes
    True
"""

from __future__ import annotations

import re
import threading
from typing import Any

from ..errors import InputError
from ..stream.container import COMMON_FIELDS as _COMMON
from .base import DEFAULT_STAGES, KINDS, DecodeContext, EncodeContext, Stage

__all__ = ["Stage", "EncodeContext", "DecodeContext", "register_stage", "get_stage", "available_stages",
           "with_value_stages",
           "chain", "DEFAULT_STAGES", "KINDS", "VALUE_STAGES"]

#: the built-in values -> values stages in the order :func:`featcodec.encode` puts those it
#: is asked for (``outliers=``, ``rotation=``, ``scales=``) in front of ``"transform"``: the
#: massive values leave first (exactly), the rest is rotated, then scaled, then (maps)
#: transformed blockwise
VALUE_STAGES = ("outliers", "rotation", "scales", "spatial")

_STAGES: dict[str, Stage] = {}
_LOCK = threading.Lock()
_CHAINS: dict[tuple, tuple[Stage, ...]] = {}  # chain() of valid name tuples; cleared on registration
_VERSION = [0]  # registrations so far (a chain computed before one is not remembered)


def with_value_stages(stages: Any, values: dict[str, Any]) -> Any:
    """The stage names of an encode given its value-stage options ``values`` (name ->
    option, e.g. ``{"outliers": 8, "rotation": None}``; ``None`` and ``False`` are not
    asked for): ``stages`` as given, or, when it is ``None`` and some are asked for, those
    in the order of :data:`VALUE_STAGES` before :data:`DEFAULT_STAGES`.
    :class:`featcodec.InputError` when a given ``stages`` lacks one asked for.

    Example:
        >>> with_value_stages(None, {"rotation": True, "outliers": 8, "scales": None})
        ['outliers', 'rotation', 'transform', 'pack']
    """
    asked = {n: v for n, v in values.items() if v is not None and v is not False}
    if not asked:
        return stages
    if stages is None:
        return [n for n in VALUE_STAGES if n in asked] + list(DEFAULT_STAGES)
    for n, v in asked.items():
        if isinstance(stages, (str, bytes)) or n not in stages:
            raise InputError(f"{n}={v!r:.40} needs the {n!r} stage in stages={stages!r:.80}; "
                             "omit stages, or name it before 'transform'.")
    return stages
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def register_stage(stage: Stage, *, replace: bool = False) -> None:
    """Make ``stage`` usable by name in ``featcodec.encode(x, stages=[...])`` and in the
    streams that name it. Re-registering a name raises :class:`featcodec.InputError`
    unless ``replace=True``."""
    if not isinstance(stage, Stage):
        raise InputError(f"register_stage takes a featcodec.stages.Stage instance, not {type(stage).__name__}.")
    if not isinstance(stage.name, str) or not _NAME.match(stage.name):
        raise InputError(f"stage name {stage.name!r} must be 1-64 letters, digits or _.+- characters.")
    reserved = set(stage.fields) & (set(_COMMON) | {"stages"})
    if reserved or len(set(stage.sections)) != len(stage.sections) or "payload" in stage.sections:
        raise InputError(f"stage {stage.name!r} claims the stream's common fields {sorted(reserved)} or the "
                         f"codec's 'payload' section (or a section twice); choose other names.")
    if stage.takes not in KINDS or stage.gives not in KINDS or KINDS.index(stage.gives) < KINDS.index(stage.takes):
        raise InputError(f"stage {stage.name!r} maps {stage.takes!r} to {stage.gives!r}; kinds go "
                         f"forward along {' -> '.join(KINDS)}.")
    with _LOCK:
        old = _STAGES.get(stage.name)
        if old is not None and not replace and type(old) is not type(stage):
            raise InputError(f"stage {stage.name!r} is already registered; pass replace=True to override it.")
        _STAGES[stage.name] = stage
        _CHAINS.clear()
        _VERSION[0] += 1


def get_stage(name: str) -> Stage:
    """The registered stage ``name``; :class:`featcodec.InputError` if none."""
    with _LOCK:
        st = _STAGES.get(name) if isinstance(name, str) else None
        if st is None:
            raise InputError(f"unknown stage {name!r:.80}; available: {', '.join(sorted(_STAGES))}.")
        return st


def available_stages() -> list[str]:
    """Names of the registered stages, sorted.

    Example:
        >>> from featcodec.stages import available_stages
        >>> {"transform", "pack"} <= set(available_stages())
        True
    """
    with _LOCK:
        return sorted(_STAGES)


def chain(names: Any, err: type[Exception]) -> tuple[Stage, ...]:
    """The stages named by ``names``, checked to form a chain from ``"values"`` to
    ``"plane"`` with no name twice; ``err`` (InputError for encode's argument,
    FormatError for a stream's header) otherwise. Valid tuples of names are remembered
    (every encode and decode asks for one) until a stage is registered."""
    if type(names) is tuple and all(type(n) is str for n in names):  # hashable, and a key
        found = _CHAINS.get(names)
        if found is not None:
            return found
        version = _VERSION[0]
        stages = _chain(names, err)
        with _LOCK:
            if version == _VERSION[0] and len(_CHAINS) < 256:
                _CHAINS[names] = stages
        return stages
    return _chain(names, err)


def _chain(names: Any, err: type[Exception]) -> tuple[Stage, ...]:
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise err(f"stages must be a list of stage names, not {names!r:.80}.")
    names = list(names)
    if not names or len(names) > 16 or any(not isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise err(f"stages must be 1-16 distinct stage names, not {names!r:.200}.")
    try:
        stages = tuple(get_stage(n) for n in names)
    except InputError as e:
        raise err(f"{e} A stream naming it needs the package that registers it.") from None
    fields = [f for st in stages for f in st.fields]
    sections = [n for st in stages for n in st.sections]
    if len(set(fields)) != len(fields) or len(set(sections)) != len(sections):
        raise err(f"stages {names} claim the same header field or section twice.")
    kind = "values"
    for st in stages:
        if st.takes != kind:
            raise err(f"stage {st.name!r} takes {st.takes}, but gets {kind}: stages must chain "
                      f"{' -> '.join(KINDS)} (e.g. {list(DEFAULT_STAGES)}).")
        kind = st.gives
    if kind != "plane":
        raise err(f"stages {names} end with {kind}; the last must give the plane (end with 'pack').")
    return stages


def _register_builtin() -> None:
    from .alignment import Alignment
    from .outliers import Outliers
    from .residual import Residual
    from .rotation import Rotation
    from .scales import Scales
    from .spatial import Spatial
    from .value_transform import ValueTransform

    register_stage(Outliers())
    register_stage(Residual())
    register_stage(Rotation())
    register_stage(Scales())
    register_stage(Spatial())
    register_stage(ValueTransform())
    register_stage(Alignment())


_register_builtin()
