"""The :class:`Transform` object: a scalar quantizer with ``2**bits`` levels, its
serialisation (:meth:`Transform.save`, :func:`load_transform`) and its kernels.

The fitting methods live in :mod:`featcodec.transform.fit`: :func:`fit_transform` fits the DT-UFC "peaky-to-balanced" transform (Lloyd-Max: the levels
that minimise the mean squared reconstruction error, with nearest-level decision
thresholds); :func:`fit_uniform` gives the CAUFC value alignment (uniform levels over a
truncated range) behind the same :class:`Transform` interface; :meth:`Transform.from_points`
imports the reference implementations' transform files (a bare JSON array of centres).

``forward`` maps values to integer indices (uint8 up to 8 bits, uint16 above) and
``inverse`` maps indices back to the levels, both through the compiled kernels.

Example:
    >>> import numpy as np, featcodec
    >>> x = np.random.default_rng(0).standard_t(3, 10_000).astype(np.float32)
    >>> t = featcodec.fit_transform(x, bits=4)
    >>> idx = t.forward(x)
    >>> idx.dtype, idx.shape, int(idx.max())
    (dtype('uint8'), (10000,), 15)
    >>> y = t.inverse(idx)
    >>> bool(np.all(np.abs(y - x) <= np.abs(t.levels[idx] - x)))
    True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import struct
from typing import Any

import numpy as np

from . import kernels, lloydmax
from .._arrays import float_view, is_torch
from ..errors import FormatError, InputError, VersionError

try:
    import torch
except Exception:  # pragma: no cover
    torch = None  # type: ignore[assignment]

__all__ = ["Transform", "load_transform", "MAX_BITS"]

FORMAT_NAME = "featcodec-transform"
FORMAT_VERSION = 1
MAX_BITS = 16
_F32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- validation
def _check_bits(bits: Any, err: type[Exception] = InputError) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise err(f"bits must be an integer from 1 to {MAX_BITS}, not {bits!r}.")
    return int(bits)


def _check_axis(axis: Any, err: type[Exception] = InputError) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise err(f"channel_axis must be None or an integer, not {axis!r}.")
    return int(axis)


def _validate_tables(levels: np.ndarray, thresholds: np.ndarray | None, err: type[Exception]) -> None:
    """Levels finite and strictly ascending; ``levels[k] < thresholds[k] <= levels[k+1]``
    (``thresholds=None``: the midpoints the levels imply, which keep it by construction)."""
    if not (np.all(np.isfinite(levels)) and (thresholds is None or np.all(np.isfinite(thresholds)))):
        raise err("transform levels and thresholds must be finite numbers.")
    if np.any(np.diff(levels, axis=-1) <= 0):
        raise err("transform levels must be strictly ascending.")
    if thresholds is None:
        return
    lo, hi = levels[..., :-1], levels[..., 1:]
    if np.any(thresholds <= lo) or np.any(thresholds > hi):
        raise err(
            "each transform threshold must lie above its level and at or below the next "
            "one (levels[k] < thresholds[k] <= levels[k+1])."
        )


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _unb64(s: Any, count: int, what: str) -> np.ndarray:
    if not isinstance(s, str):
        raise FormatError(f"transform field {what!r} must be a base64 string.")
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise FormatError(f"transform field {what!r} is not valid base64: {e}.") from None
    if len(raw) != 4 * count:
        raise FormatError(
            f"transform field {what!r} holds {len(raw)} bytes; {4 * count} expected "
            f"({count} float32 values)."
        )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


# --------------------------------------------------------------------------- Transform
class Transform:
    """A scalar quantizer with ``2**bits`` levels: values -> indices -> levels.

    Attributes:
        bits: index width; there are ``2**bits`` levels.
        levels: float32 reconstruction values, ascending, shape ``(2**bits,)``, or
            ``(C, 2**bits)`` for a per-channel transform.
        thresholds: float32 decision thresholds, shape ``(2**bits - 1,)`` or ``(C, ...)``.
            A value ``v`` gets index ``k`` = the number of thresholds ``<= v``.
            ``levels[k] < thresholds[k] <= levels[k+1]`` always holds, so each level maps
            back to its own index.
        channel_axis: ``None``, or the axis of the input that indexes the ``C`` channels
            of a per-channel transform.
        kind: how it was made: ``"lloyd-max"``, ``"uniform"``, ``"points"`` (imported,
            nearest-level thresholds), ``"points-round-down"`` or ``"custom"``.
        id: 16 hex digits of SHA-256 over bits, channel axis, levels and thresholds.

    ``Transform(levels)`` builds one from explicit levels (nearest-level thresholds unless
    ``thresholds`` is given).

    >>> t = Transform(np.array([0.0, 1.0, 2.0, 4.0], np.float32))
    >>> t.bits, t.thresholds.tolist()
    (2, [0.5, 1.5, 3.0])
    >>> t.forward(np.array([0.2, 2.9, 3.1], np.float32)).tolist()
    [0, 2, 3]
    """

    __slots__ = ("_levels", "_thresholds", "_bits", "_axis", "_kind", "_id", "_meta", "_midpoints")

    def __init__(
        self,
        levels: Any,
        thresholds: Any = None,
        *,
        channel_axis: int | None = None,
        kind: str = "custom",
        meta: dict | None = None,
        _err: type[Exception] = InputError,
    ) -> None:
        axis = _check_axis(channel_axis, _err)
        try:
            lv = np.array(levels, dtype=np.float64)
        except (TypeError, ValueError):
            raise _err("levels must be a sequence of numbers.") from None
        want_ndim = 1 if axis is None else 2
        if lv.ndim != want_ndim:
            raise _err(
                f"levels must be {'1-D' if axis is None else '2-D (channels, levels)'} "
                f"for channel_axis={axis}; got shape {lv.shape}."
            )
        n = lv.shape[-1]
        bits = int(round(math.log2(n))) if n >= 2 else 0
        if n < 2 or 2**bits != n or bits > MAX_BITS:
            raise _err(f"the number of levels must be a power of two from 2 to 65536, not {n}.")
        if axis is not None and lv.shape[0] < 1:
            raise _err("a per-channel transform needs at least one channel.")
        if np.any(np.abs(lv[np.isfinite(lv)]) > _F32_MAX):
            raise _err("levels must be within the float32 range.")
        lv32 = lv.astype(np.float32) + np.float32(0.0)
        if thresholds is None:
            _validate_tables(lv32, None, _err)
            th32 = lloydmax.midpoint_thresholds(lv32)
        else:
            try:
                th = np.array(thresholds, dtype=np.float64)
            except (TypeError, ValueError):
                raise _err("thresholds must be a sequence of numbers.") from None
            if th.shape != lv.shape[:-1] + (n - 1,):
                raise _err(f"thresholds must have shape {lv.shape[:-1] + (n - 1,)}, not {th.shape}.")
            th32 = th.astype(np.float32) + np.float32(0.0)
            _validate_tables(lv32, th32, _err)
        lv32.setflags(write=False)
        th32.setflags(write=False)
        self._levels, self._thresholds, self._bits, self._axis = lv32, th32, bits, axis
        self._midpoints = True if thresholds is None else None  # None: not known yet
        self._kind = str(kind)
        self._meta = dict(meta or {})
        h = hashlib.sha256()
        h.update(b"featcodec-transform\0")
        h.update(struct.pack("<Bq", bits, -(2**62) if axis is None else axis))
        h.update(struct.pack("<q", 0 if axis is None else lv.shape[0]))
        h.update(lv32.astype("<f4").tobytes())
        h.update(th32.astype("<f4").tobytes())
        self._id = h.hexdigest()[:16]

    # ---- properties
    @property
    def levels(self) -> np.ndarray:
        return self._levels

    @property
    def thresholds(self) -> np.ndarray:
        return self._thresholds

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def channel_axis(self) -> int | None:
        return self._axis

    @property
    def channels(self) -> int | None:
        """Number of channels of a per-channel transform, else ``None``."""
        return None if self._axis is None else int(self._levels.shape[0])

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def id(self) -> str:
        return self._id

    @property
    def thresholds_are_midpoints(self) -> bool:
        """Whether the thresholds are the midpoints the levels imply
        (:func:`featcodec.transform.lloydmax.midpoint_thresholds`), so that a stream or a
        file need not carry them: true of Lloyd-Max and uniform transforms.

        >>> Transform([0.0, 1.0]).thresholds_are_midpoints
        True
        >>> Transform([0.0, 1.0], thresholds=[0.25]).thresholds_are_midpoints
        False
        """
        if self._midpoints is None:
            self._midpoints = bool(np.array_equal(self._thresholds, lloydmax.midpoint_thresholds(self._levels)))
        return self._midpoints

    @property
    def meta(self) -> dict:
        """Informational fit parameters (e.g. the truncation range); not part of the id."""
        return dict(self._meta)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        lo, hi = float(self._levels.min()), float(self._levels.max())
        ch = "" if self._axis is None else f", channel_axis={self._axis}, channels={self.channels}"
        return f"Transform(bits={self._bits}, kind={self._kind!r}{ch}, range=[{lo:.6g}, {hi:.6g}], id={self._id!r})"

    # ---- mapping
    def forward(self, x: Any) -> Any:
        """Indices of the levels each value decides to; same shape as ``x``.

        ``x``: a torch tensor or numpy array of float16/bfloat16/float32/float64 (torch in,
        torch out on the same device). Indices are uint8 for up to 8 bits, else uint16.
        NaN/Inf raise :class:`featcodec.InputError`.

        >>> t = Transform([-1.0, 0.0, 1.0, 2.0])
        >>> t.forward(np.array([[-5.0, 0.4], [0.6, 9.0]])).tolist()
        [[0, 1], [2, 3]]
        """
        if is_torch(x) and x.device.type == "cuda":  # stays on the device (featcodec.cuda)
            self._check_channels(tuple(x.shape))
            return kernels.quantize(x.detach(), self._thresholds, channel_axis=self._axis)
        a, origin = float_view(x, "x")
        self._check_channels(a.shape)
        idx = kernels.quantize(
            a, self._thresholds, bfloat16=origin.dtype == "bfloat16", channel_axis=self._axis
        )
        if origin.framework == "torch":
            t = torch.from_numpy(np.ascontiguousarray(idx))
            return t if origin.device == "cpu" else t.to(origin.device)
        return idx

    def inverse(self, idx: Any, dtype: Any = None) -> Any:
        """The levels at integer indices ``idx``: float32 by default, or ``dtype``
        (float16, bfloat16 (torch only), float32, float64). Torch in, torch out.

        >>> Transform([-1.0, 0.0, 1.0, 2.0]).inverse(np.array([3, 0], np.uint8)).tolist()
        [2.0, -1.0]
        """
        name = _dtype_name(dtype)
        if is_torch(idx) and idx.device.type == "cuda" and name != "float64":  # on the device
            self._check_channels(tuple(idx.shape))
            return kernels.dequantize(idx.detach(), self._levels, channel_axis=self._axis, dtype=name)
        a, framework, device = _index_view(idx, 2**self._bits)
        self._check_channels(a.shape)
        if name == "bfloat16" and framework != "torch":
            raise InputError("numpy has no bfloat16; ask for float32 or float16, or pass a torch tensor.")
        kdtype = "float32" if name == "float64" else name
        out = kernels.dequantize(a, self._levels, channel_axis=self._axis, dtype=kdtype)
        if name == "float64":
            out = out.astype(np.float64)
        if framework == "torch":
            t = torch.from_numpy(np.ascontiguousarray(out))
            if name == "bfloat16":
                t = t.view(torch.bfloat16)
            return t if device == "cpu" else t.to(device)
        return out

    def _check_channels(self, shape: tuple) -> None:
        if self._axis is None:
            return
        nd = len(shape)
        if not -nd <= self._axis < nd:
            raise InputError(
                f"this per-channel transform has channel_axis={self._axis}, but the input has "
                f"only {nd} dimension(s)."
            )
        if shape[self._axis] != self.channels:
            raise InputError(
                f"the input has {shape[self._axis]} channels on axis {self._axis}; this "
                f"transform was fitted for {self.channels}."
            )

    # ---- serialisation
    def to_dict(self) -> dict:
        """A compact JSON-friendly description: levels as base64 of little-endian float32;
        thresholds as ``"midpoint"`` / ``"round_down"`` when they follow from the levels,
        else base64 too.

        >>> d = Transform([0.0, 1.0]).to_dict()
        >>> d["bits"], d["levels"]
        (1, 'AAAAAAAAgD8=')
        >>> d["thresholds"]  # derived from the levels, so not stored
        'midpoint'
        """
        d = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "kind": self._kind,
            "bits": self._bits,
            "channel_axis": self._axis,
            "channels": self.channels,
            "levels": _b64(self._levels),
            "thresholds": self._thresholds_field(),
            "id": self._id,
        }
        if self._meta:
            d["meta"] = self._meta
        return d

    def _thresholds_field(self) -> str:
        """"midpoint" or "round_down" when the thresholds follow from the levels (they are
        recomputed bit-exactly on load), else their base64."""
        if self.thresholds_are_midpoints:
            return "midpoint"
        if np.array_equal(self._thresholds, self._levels[..., 1:]):
            return "round_down"
        return _b64(self._thresholds)

    @classmethod
    def from_dict(cls, d: Any) -> Transform:
        """Rebuild a transform from :meth:`to_dict` output, validating it as untrusted input
        (raises :class:`featcodec.FormatError`, or :class:`featcodec.VersionError` for a
        newer format)."""
        if not isinstance(d, dict):
            raise FormatError("a transform description must be a JSON object (dict).")
        if d.get("format") != FORMAT_NAME:
            raise FormatError(f"not a featcodec transform: 'format' is {d.get('format')!r}, not {FORMAT_NAME!r}.")
        ver = d.get("version")
        if isinstance(ver, bool) or not isinstance(ver, int) or ver < 1:
            raise FormatError(f"transform 'version' must be a positive integer, not {ver!r}.")
        if ver > FORMAT_VERSION:
            raise VersionError(
                f"this transform was written by a newer featcodec (format version {ver}); this "
                f"one reads version {FORMAT_VERSION}. Upgrade featcodec."
            )
        bits = _check_bits(d.get("bits"), FormatError)
        axis = _check_axis(d.get("channel_axis"), FormatError)
        ch = d.get("channels")
        if axis is None:
            if ch is not None:
                raise FormatError("transform 'channels' must be null when 'channel_axis' is null.")
            C = 1
        else:
            if isinstance(ch, bool) or not isinstance(ch, int) or not 1 <= ch <= 1 << 20:
                raise FormatError(f"transform 'channels' must be an integer from 1 to 2**20, not {ch!r}.")
            C = ch
        K = 2**bits
        kind = d.get("kind", "custom")
        if not isinstance(kind, str) or len(kind) > 64:
            raise FormatError("transform 'kind' must be a short string.")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise FormatError("transform 'meta' must be an object.")
        lv = _unb64(d.get("levels"), C * K, "levels")
        tf = d.get("thresholds")
        if axis is not None:
            lv = lv.reshape(C, K)
        if tf == "midpoint":
            th = None
        elif tf == "round_down":
            th = lv[..., 1:]
        else:
            th = _unb64(tf, C * (K - 1), "thresholds")
            if axis is not None:
                th = th.reshape(C, K - 1)
        t = cls(lv, th, channel_axis=axis, kind=kind, meta=meta, _err=FormatError)
        if "id" in d and d["id"] != t.id:
            raise FormatError(
                f"transform id {d['id']!r} does not match its content ({t.id!r}): the "
                "description was altered or corrupted."
            )
        return t

    def save(self, path: str | os.PathLike) -> None:
        """Write the transform as JSON (read it back with :func:`featcodec.load_transform`)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")

    @classmethod
    def from_points(cls, points: Any, *, assignment: str = "nearest") -> Transform:
        """Import the reference implementations' transform: ascending centres.

        ``points``: a path to their JSON file (a bare array of ``2**bits`` ascending
        numbers), or the numbers themselves. ``assignment="nearest"`` (default) decides
        each value to the nearest centre (midpoint thresholds, lower error);
        ``assignment="round_down"`` reproduces the reference forward transform
        ``clip(digitize(x, centres) - 1, 0, K - 1)`` bit for bit (thresholds = the centres
        above the first), for features they produced.

        >>> t = Transform.from_points([0.0, 1.0, 2.0, 3.0], assignment="round_down")
        >>> t.forward(np.array([0.9, 1.0, 2.99], np.float32)).tolist()
        [0, 1, 2]
        """
        if assignment not in ("nearest", "round_down"):
            raise InputError(f"assignment must be 'nearest' or 'round_down', not {assignment!r}.")
        if isinstance(points, (str, os.PathLike)):
            points = _read_json(points)
        if is_torch(points):
            points = points.detach().cpu().double().numpy()
        try:
            p = np.array(points, dtype=np.float64)
        except (TypeError, ValueError):
            raise FormatError("transform points must be a flat array of numbers.") from None
        if p.ndim != 1:
            raise FormatError(f"transform points must be a flat array; got shape {p.shape}.")
        n = len(p)
        if n < 2 or n & (n - 1) or n > 2**MAX_BITS:
            raise FormatError(f"the number of transform points must be a power of two from 2 to 65536, not {n}.")
        if not np.all(np.isfinite(p)) or np.any(np.abs(p) > _F32_MAX):
            raise FormatError("transform points must be finite float32 numbers.")
        p32 = p.astype(np.float32) + np.float32(0.0)
        if np.any(np.diff(p32) <= 0):
            raise FormatError("transform points must be strictly ascending (as float32).")
        if assignment == "nearest":
            return cls(p32, kind="points", _err=FormatError)
        return cls(p32, p32[1:], kind="points-round-down", _err=FormatError)


def _read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{os.fspath(path)!s} is not a JSON transform file: {e}.") from None


def load_transform(path: str | os.PathLike, *, assignment: str = "nearest") -> Transform:
    """Read a transform written by :meth:`Transform.save`, or a reference-format file (a
    bare JSON array of centres, imported with :meth:`Transform.from_points` and
    ``assignment``)."""
    d = _read_json(path)
    if isinstance(d, list):
        return Transform.from_points(d, assignment=assignment)
    return Transform.from_dict(d)


def _index_view(idx: Any, n_levels: int) -> tuple[np.ndarray, str, str]:
    """Integer indices as a uint8/uint16 numpy array (no copy when already so)."""
    if is_torch(idx):
        framework, device = "torch", str(idx.device)
        t = idx.detach().cpu()
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise InputError(f"indices must be an integer tensor, not {t.dtype}.")
        a = t.numpy()
    elif isinstance(idx, np.ndarray) or isinstance(idx, (list, tuple)) or np.isscalar(idx):
        framework, device = "numpy", "cpu"
        a = np.asarray(idx)
        if a.dtype.kind not in "ui":
            raise InputError(f"indices must be an integer array, not {a.dtype}.")
    else:
        raise InputError(f"indices must be a torch.Tensor or numpy.ndarray, not {type(idx).__name__}.")
    if a.dtype not in (np.uint8, np.uint16):
        if a.size and (a.min() < 0 or a.max() >= n_levels):
            raise InputError(f"indices must be in [0, {n_levels - 1}] for this transform.")
        a = a.astype(np.uint16 if n_levels > 256 else np.uint8)
    return a, framework, device


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    if torch is not None and isinstance(dtype, torch.dtype):
        name = str(dtype).replace("torch.", "")
    elif isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype)
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise InputError(f"dtype must be float16, bfloat16, float32 or float64, not {dtype!r}.")
    return name
