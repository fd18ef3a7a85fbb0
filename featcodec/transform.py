"""The feature-value transform: a scalar quantizer with ``2**bits`` levels.

:func:`fit_transform` fits the DT-UFC "peaky-to-balanced" transform (Lloyd-Max: the levels
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
import functools
import hashlib
import json
import math
import os
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import kernels, lloydmax
from ._arrays import float_view, is_torch, to_float32
from .errors import FitError, FormatError, InputError, VersionError

try:
    import torch
except Exception:  # pragma: no cover
    torch = None  # type: ignore[assignment]

__all__ = ["Transform", "fit_transform", "fit_uniform", "fit_max_error", "load_transform"]

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


def _validate_tables(levels: np.ndarray, thresholds: np.ndarray, err: type[Exception]) -> None:
    """Levels finite and strictly ascending; ``levels[k] < thresholds[k] <= levels[k+1]``."""
    if not (np.all(np.isfinite(levels)) and np.all(np.isfinite(thresholds))):
        raise err("transform levels and thresholds must be finite numbers.")
    if np.any(np.diff(levels, axis=-1) <= 0):
        raise err("transform levels must be strictly ascending.")
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

    __slots__ = ("_levels", "_thresholds", "_bits", "_axis", "_kind", "_id", "_meta")

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
        if np.array_equal(self._thresholds, lloydmax.midpoint_thresholds(self._levels)):
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


# --------------------------------------------------------------------------- fitting
def _samples(samples: Any) -> list[Any]:
    if samples is None:
        raise FitError("samples is None; pass a tensor, an array, or a list of them.")
    if is_torch(samples) or isinstance(samples, np.ndarray) or np.isscalar(samples):
        return [samples]
    if isinstance(samples, (str, bytes, dict)) or not isinstance(samples, Iterable):
        raise FitError(
            f"samples is a {type(samples).__name__}; pass a tensor, an array, or an iterable of them."
        )
    return list(samples)


def _range_pair(v: Any, what: str, C: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        lo, hi = v
        lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (C,))
        hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (C,))
    except (TypeError, ValueError):
        raise InputError(
            f"{what} must be a pair (low, high) of numbers, or with channel_axis a pair of "
            f"per-channel arrays (here of length {C})."
        ) from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InputError(f"{what} bounds must be finite.")
    if np.any(lo >= hi):
        raise InputError(f"{what} needs low < high; got {v!r}.")
    return lo, hi


def _collect(
    samples: Any, channel_axis: int | None, clip: Any
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """All sample values as float32 (C, n), clamped to ``clip``; checks NaN/Inf/range."""
    items = _samples(samples)
    if not items:
        raise FitError("samples is empty; pass at least one tensor with values.")
    parts: list[np.ndarray] = []
    C: int | None = None
    bounds = None
    for i, s in enumerate(items):
        a, origin = float_view(s, f"samples[{i}]")
        if channel_axis is None:
            a2 = a.reshape(1, -1)
        else:
            if a.ndim == 0 or not -a.ndim <= channel_axis < a.ndim:
                raise FitError(
                    f"samples[{i}] has shape {a.shape}; channel_axis={channel_axis} is not one of its axes."
                )
            a2 = np.moveaxis(a, channel_axis, 0).reshape(a.shape[channel_axis], -1)
        if C is None:
            C = a2.shape[0]
            if clip is not None:
                bounds = _range_pair(clip, "clip", C)
        elif a2.shape[0] != C:
            raise FitError(f"samples[{i}] has {a2.shape[0]} channels on axis {channel_axis}; the first had {C}.")
        if origin.dtype == "bfloat16":
            f = to_float32(a2, "bfloat16")
        elif origin.dtype == "float64":
            f = a2
        else:
            f = a2.astype(np.float32, copy=False)
        if not np.all(np.isfinite(f)):
            raise FitError(
                f"samples[{i}] contains NaN or Inf; remove or replace them (e.g. "
                "torch.nan_to_num) before fitting a transform."
            )
        if bounds is not None:
            f = np.clip(f, bounds[0][:, None].astype(f.dtype), bounds[1][:, None].astype(f.dtype))
        if f.dtype == np.float64:
            if f.size and np.max(np.abs(f)) > _F32_MAX:
                raise FitError(
                    f"samples[{i}] has values beyond the float32 range; transforms are float32. "
                    "Pass clip=(low, high) to truncate them."
                )
            f = f.astype(np.float32)
        parts.append(np.ascontiguousarray(f, dtype=np.float32))
    x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    if x.size == 0:
        raise FitError("samples hold no values (empty tensors); pass features with values.")
    return x, bounds


def _percentile_bounds(x: np.ndarray, percentiles: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        plo, phi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise InputError("percentiles must be a pair (low, high) of numbers in [0, 100].") from None
    if not (0.0 <= plo < phi <= 100.0):
        raise InputError(f"percentiles need 0 <= low < high <= 100; got {percentiles!r}.")
    lo = np.percentile(x, plo, axis=1, method="lower")
    hi = np.percentile(x, phi, axis=1, method="higher")
    return lo.astype(np.float64), hi.astype(np.float64)


def _prepare(
    samples: Any, channel_axis: Any, clip: Any, percentiles: Any
) -> tuple[np.ndarray, dict, int | None]:
    axis = _check_axis(channel_axis)
    if clip is not None and percentiles is not None:
        raise InputError("pass either clip=(low, high) or percentiles=(low, high), not both.")
    x, bounds = _collect(samples, axis, clip)
    meta: dict = {}
    if percentiles is not None:
        lo, hi = _percentile_bounds(x, percentiles)
        x = np.clip(x, lo[:, None].astype(np.float32), hi[:, None].astype(np.float32))
        meta["percentiles"] = [float(p) for p in percentiles]
        bounds = (lo, hi)
    if bounds is not None:
        lo, hi = bounds
        meta["clip"] = [float(lo[0]), float(hi[0])] if axis is None else [lo.tolist(), hi.tolist()]
    return x, meta, axis


def _finish(levels: np.ndarray, bits: int, axis: int | None, kind: str, meta: dict) -> Transform:
    lv = lloydmax.strictly_ascending(levels)
    if not np.all(np.isfinite(lv)):
        raise FitError(
            "the fitted levels overflow float32 (values too close to the float32 limit); "
            "pass clip=(low, high) with a narrower range."
        )
    th = lloydmax.midpoint_thresholds(lv)
    if axis is None:
        lv, th = lv[0], th[0]
    return Transform(lv, th, channel_axis=axis, kind=kind, meta=meta, _err=FitError)


def fit_transform(
    samples: Any,
    bits: int = 8,
    *,
    clip: Any = None,
    percentiles: Any = None,
    channel_axis: int | None = None,
    max_iter: int = 600,
) -> Transform:
    """Fit the Lloyd-Max transform: ``2**bits`` levels minimising the mean squared
    reconstruction error of nearest-level quantization of ``samples``.

    Args:
        samples: a tensor/array (any shape, float16/bfloat16/float32/float64, torch or
            numpy) or an iterable of them; all values are pooled (per channel with
            ``channel_axis``).
        bits: 1 to 16.
        clip: optional truncation ``(low, high)`` (numbers, or per-channel arrays): values
            are clamped to the range before fitting, so the outer levels sit at or inside it.
        percentiles: optional truncation by percentiles ``(low, high)`` in [0, 100] of the
            data (per channel with ``channel_axis``), e.g. ``(0.1, 99.9)``.
        channel_axis: fit one transform per channel along this axis (models with outlier
            channels); forward/inverse then need the same axis layout.
        max_iter: cap on Lloyd iterations.

    Deterministic: the same samples give the same transform (same ``id``) in any process.
    With fewer distinct values than levels, every distinct value becomes a level (exact
    reconstruction) and the spare levels fill the gaps (see
    :func:`featcodec.lloydmax.fill_levels`).

    >>> import numpy as np
    >>> t = fit_transform(np.array([0.0, 0.0, 1.0, 5.0, 6.0], np.float32), bits=1)
    >>> t.levels.tolist()
    [0.3333333432674408, 5.5]
    """
    bits = _check_bits(bits)
    x, meta, axis = _prepare(samples, channel_axis, clip, percentiles)
    K = 2**bits
    points = lloydmax.points_from_values(x)
    del x
    distinct = points.distinct()
    C = points.channels
    levels = np.empty((C, K), np.float64)
    few = np.flatnonzero(distinct <= K)
    for c in few:
        vals = points.values[points.offsets[c] : points.offsets[c + 1]].astype(np.float32)
        levels[c] = lloydmax.fill_levels(vals, K)
    many = np.flatnonzero(distinct > K)
    if len(many):
        sub = lloydmax.select_channels(points, many)
        levels[many] = lloydmax.fit_levels(sub, K, max_iter=max_iter)
    return _finish(levels, bits, axis, "lloyd-max", meta)


def fit_uniform(
    samples: Any,
    bits: int = 8,
    *,
    clip: Any = None,
    percentiles: Any = None,
    channel_axis: int | None = None,
) -> Transform:
    """The CAUFC value alignment as a :class:`Transform`: ``2**bits`` uniform levels over
    the truncation range (``clip``, ``percentiles``, or the data's min and max), with
    nearest-level thresholds, i.e. ``round((clamp(x) - low) / (high - low) * (2**bits - 1))``.

    >>> fit_uniform(np.zeros(3, np.float32), bits=2, clip=(-1, 2)).levels.tolist()
    [-1.0, 0.0, 1.0, 2.0]
    """
    bits = _check_bits(bits)
    x, meta, axis = _prepare(samples, channel_axis, clip, percentiles)
    if "clip" in meta:
        lo, hi = (np.broadcast_to(np.asarray(v, np.float64), (x.shape[0],)) for v in meta["clip"])
    else:
        lo, hi = x.min(axis=1).astype(np.float64), x.max(axis=1).astype(np.float64)
        meta["clip"] = [float(lo[0]), float(hi[0])] if axis is None else [lo.tolist(), hi.tolist()]
    return uniform_transform(lo, hi, bits, channel_axis=axis, meta=meta)


def uniform_transform(low: Any, high: Any, bits: int, *, channel_axis: int | None = None,
                      meta: dict | None = None) -> Transform:
    """``2**bits`` evenly spaced levels from ``low`` to ``high`` (numbers, or one per
    channel with ``channel_axis``), nearest-level thresholds: ``low + (high - low) * k /
    (2**bits - 1)`` computed in float64, then rounded to float32. A channel with ``low ==
    high`` gets that value as a level and the spare levels around it.

    The same arguments give the same transform (same ``id``) on every platform, which lets
    a stream store a uniform transform as its two ends (docs/format.md, version 3).

    >>> uniform_transform(-1.0, 2.0, bits=2).levels.tolist()
    [-1.0, 0.0, 1.0, 2.0]
    """
    bits = _check_bits(bits)
    lo = np.atleast_1d(np.asarray(low, np.float64))
    hi = np.atleast_1d(np.asarray(high, np.float64))
    if lo.shape != hi.shape or lo.ndim != 1 or (channel_axis is None and lo.size != 1):
        raise InputError("low and high must be numbers, or equal-length 1-D arrays with channel_axis.")
    if not (np.all(np.abs(lo) <= _F32_MAX) and np.all(np.abs(hi) <= _F32_MAX) and np.all(lo <= hi)):
        raise InputError("uniform levels need ends within the float32 range with low <= high.")
    if channel_axis is None and not meta:  # error-bounded encodes build it twice (fit, header)
        return _uniform_one(lo.tobytes(), hi.tobytes(), bits)
    return _uniform(lo, hi, bits, channel_axis, dict(meta or {}))


@functools.lru_cache(maxsize=8)
def _uniform_one(lo: bytes, hi: bytes, bits: int) -> Transform:
    """:func:`uniform_transform` of one channel, remembered (transforms are immutable); the
    ends come as float64 bytes, so that -0.0 and 0.0 stay apart."""
    return _uniform(np.frombuffer(lo, np.float64), np.frombuffer(hi, np.float64), bits, None, {})


def _uniform(lo: np.ndarray, hi: np.ndarray, bits: int, channel_axis: int | None, meta: dict) -> Transform:
    K = 2**bits
    levels = np.empty((lo.size, K), np.float64)
    for c in range(lo.size):
        if lo[c] == hi[c]:
            levels[c] = lloydmax.fill_levels(np.array([lo[c]], np.float32), K)
        else:
            levels[c] = lo[c] + (hi[c] - lo[c]) * (np.arange(K) / (K - 1))
    return _finish(levels, bits, channel_axis, "uniform", meta)


def fit_max_error(x: Any, max_error: float) -> Transform:
    """Error-bounded coding: uniform levels spaced just under ``2 * max_error`` over the
    range of ``x``, with the fewest bits (at most 16) that cover it, so that decoding
    gives back every value of ``x`` within ``max_error`` (absolute), counting the rounding
    to ``x``'s dtype on decode. The guarantee is checked on ``x`` itself, not estimated.
    The levels are evenly spaced, so a stream stores only the two ends (docs/format.md).

    Within the slack the range leaves, the grid is shifted to put a level on the median of
    ``x`` (a "mid-tread" quantizer): features crowd around their centre, and at coarse
    bounds a level there, rather than a threshold between two, cuts both the rate and the
    error (figures in docs/error_bound.md). :class:`MaxErrorFitter` fits one tensor at
    many bounds.

    Raises :class:`featcodec.InputError` when ``max_error`` is not a positive number, or
    when 16 bits cannot meet it over the tensor's range (the message gives the smallest
    bound that can be met).

    >>> x = np.array([0.0, 0.3, 1.0, 2.5], np.float32)
    >>> t = fit_max_error(x, 0.05)
    >>> t.bits, bool(np.abs(t.inverse(t.forward(x)) - x).max() <= 0.05)
    (5, True)
    """
    return MaxErrorFitter(x)(max_error)


class MaxErrorFitter:
    """:func:`fit_max_error` for one tensor at many bounds: the float64 copy, range and
    median of ``x`` are taken once (``featcodec.encode(codec="auto")`` bisects on the
    bound this way).

    >>> fit = MaxErrorFitter(np.array([0.0, 0.3, 1.0, 2.5], np.float32))
    >>> [fit(e).bits for e in (1.0, 0.05)], fit.span
    ([2, 5], 2.5)
    """

    def __init__(self, x: Any) -> None:
        a, origin = float_view(x, "x")
        if a.size == 0:
            raise InputError("x is empty; featcodec needs at least one value.")
        self._x, self._dtype = x, origin.dtype
        self._ref = _as_float64(x)
        if not np.all(np.isfinite(self._ref)):
            raise InputError("x contains NaN or Inf; featcodec codes finite values only.")
        self.lo, self.hi = float(self._ref.min()), float(self._ref.max())
        self.span = self.hi - self.lo  #: the range of ``x``
        # np.median(x) in float64, partitioning x's own (narrower) values (not bfloat16 bits)
        flat = (self._ref if origin.dtype == "bfloat16" else np.asarray(a)).reshape(-1)
        mid = np.partition(flat, [(flat.size - 1) // 2, flat.size // 2])
        self._centre = (float(mid[(flat.size - 1) // 2]) + float(mid[flat.size // 2])) / 2

    def __call__(self, max_error: float) -> Transform:
        """The transform of :func:`fit_max_error` for this bound."""
        return self.fit(max_error)[0]

    def fit(self, max_error: float) -> tuple[Transform, Any]:
        """``(transform, indices)``: the transform of :func:`fit_max_error` for this bound
        and its indices of ``x`` (``transform.forward(x)``, computed to check the bound;
        ``featcodec.encode`` codes them rather than quantise ``x`` again)."""
        if isinstance(max_error, bool) or not isinstance(max_error, (int, float, np.floating, np.integer)):
            raise InputError(f"max_error must be a positive number, not {max_error!r:.40}.")
        e = float(max_error)
        if not (math.isfinite(e) and e > 0):
            raise InputError(f"max_error must be a positive finite number, not {e}.")
        lo, hi = self.lo, self.hi
        # Rounding the levels and thresholds to float32 and the decoded values to x's dtype
        # can push the error past the bound by about a step of that dtype: try the bound
        # itself first, then with room for one, two and four half steps, then halved bounds.
        half = _half_spacing(max(abs(lo), abs(hi)), self._dtype)
        for target in (e, e - half, e - 2 * half, e - 4 * half, e / 2, e / 4, e / 8):
            if target <= 0:
                continue
            step = 2 * target / (1 + 2.0**-12)  # the level spacing
            bits = max(1, math.ceil(math.log2((hi - lo) / step + 1)))
            if bits > MAX_BITS:
                break
            low = _mid_tread_low(lo, hi, self._centre, step, 2**bits)
            # the last level at or above the maximum; both ends float32 numbers, so the
            # stream can store them exactly
            t = uniform_transform(_f32(low, -np.inf), _f32(low + step * (2**bits - 1), np.inf), bits)
            idx = t.forward(self._x)
            y = _as_float64(t.inverse(idx, dtype=self._dtype))
            y -= self._ref
            if max(float(y.max()), -float(y.min())) <= e:
                return t, idx
        finest = (hi - lo) / (2 * (2**MAX_BITS - 1))
        raise InputError(
            f"max_error={e:g} cannot be met over this tensor's range [{lo:g}, {hi:g}]: {MAX_BITS}-bit "
            f"indices reach about {finest:g}, and {self._dtype} steps by {2 * half:g} at its largest "
            f"values. Raise max_error, or code parts of the tensor with narrower ranges separately."
        )


def _mid_tread_low(lo: float, hi: float, centre: float, step: float, k: int) -> float:
    """The lowest of ``k`` levels ``step`` apart that cover ``[lo, hi]``, placed so that a
    level falls on ``centre`` when the slack allows, else as near it as the slack lets."""
    floor = hi - step * (k - 1)  # the lowest start that still reaches hi (<= lo)
    on_centre = centre - step * math.ceil((centre - lo) / step)  # in (lo - step, lo]
    if on_centre >= floor:
        return on_centre
    # not enough slack: of the two extreme starts, the one with a level nearer the centre
    off = [abs((centre - s) - step * round((centre - s) / step)) for s in (floor, lo)]
    return floor if off[0] < off[1] else lo


def _f32(v: float, toward: float) -> float:
    """``v`` as a float32 number, rounded toward ``toward`` when it is not one."""
    r = np.float32(v)
    if (toward < 0 and float(r) > v) or (toward > 0 and float(r) < v):
        r = np.nextafter(r, np.float32(toward))
    return float(r)


def _half_spacing(m: float, dtype: str) -> float:
    """Half the gap between neighbouring numbers of ``dtype`` at magnitude ``m``."""
    if dtype == "bfloat16":
        return 2.0 ** (math.floor(math.log2(m)) - 8) if m > 0 else 0.0
    return float(np.spacing(getattr(np, dtype)(m))) / 2


def _as_float64(a: Any) -> np.ndarray:
    """A float64 numpy copy of a float tensor or array (bfloat16 included)."""
    if is_torch(a):
        return a.detach().to("cpu", torch.float64).numpy()
    return np.asarray(a, np.float64)
