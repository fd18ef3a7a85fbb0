"""Training data for the learned codecs: corpus features -> 2-D planes in [0, 1] -> crops.

Two inputs are built from the same features so the transform's value is measured:

* ``"dtufc"``: a 256-level Lloyd-Max (nearest-centre) transform fitted on the first
  ``fit_samples`` train features of each tap; the network sees ``index / 255``.
* ``"caufc"``: the CAUFC baseline, truncation to a range fitted on the same samples
  followed by min-max normalisation to [0, 1] (kept in floating point).

Planes follow the CAUFC format alignment (tokens x width for LLM/ViT, a channel mosaic
for CNN maps and diffusion latents). Batches mix the four families uniformly.

Example:
    >>> import numpy as np
    >>> from featcodec.codecs.learned.data import to_plane
    >>> to_plane(np.zeros((1, 96, 14, 14), np.float32), "cnn").shape
    (112, 168)
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = [
    "to_plane",
    "fit_lloyd_max",
    "fit_clip_range",
    "TapTransform",
    "load_manifest",
    "PlaneSet",
    "build_planes",
    "CropSampler",
    "INPUTS",
]

INPUTS = ("dtufc", "caufc")
FAMILIES = ("llm", "vit", "cnn", "latent")


def _mosaic_factors(c: int) -> tuple[int, int]:
    a = int(math.isqrt(c))
    while c % a:
        a -= 1
    return a, c // a


def to_plane(x: np.ndarray, family: str) -> np.ndarray:
    """Arrange one feature tensor as a 2-D plane (CAUFC format alignment).

    CNN maps and latents ``(..., C, H, W)`` become an ``a x b`` mosaic of ``H x W``
    channel tiles with ``a * b = C`` and ``a`` the largest divisor of C not above
    sqrt(C); token tensors ``(..., T, D)`` become ``(rows, D)``.
    """
    x = np.asarray(x)
    if family in ("cnn", "latent") and x.ndim >= 3:
        c, h, w = x.shape[-3:]
        x = x.reshape(-1, c, h, w)[0] if x.ndim > 3 else x
        a, b = _mosaic_factors(c)
        return x.reshape(a, b, h, w).transpose(0, 2, 1, 3).reshape(a * h, b * w)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x.reshape(-1, x.shape[-1])


def fit_lloyd_max(samples: np.ndarray, levels: int = 256, iters: int = 60,
                  max_values: int = 2_000_000, seed: int = 0) -> np.ndarray:
    """Lloyd-Max reconstruction levels (ascending, float32, duplicates removed).

    Used only when ``featcodec.transform`` is not available.
    """
    v = np.asarray(samples, np.float64).ravel()
    if v.size > max_values:
        v = np.random.default_rng(seed).choice(v, max_values, replace=False)
    s = np.sort(v)
    cs = np.concatenate([[0.0], np.cumsum(s)])
    lv = np.quantile(s, (np.arange(levels) + 0.5) / levels)
    for _ in range(iters):
        t = 0.5 * (lv[1:] + lv[:-1])
        b = np.concatenate([[0], np.searchsorted(s, t, side="right"), [s.size]])
        cnt = np.diff(b)
        sums = cs[b[1:]] - cs[b[:-1]]
        nz = cnt > 0
        new = lv.copy()
        new[nz] = sums[nz] / cnt[nz]
        new.sort()
        if np.allclose(new, lv, rtol=0, atol=1e-12):
            break
        lv = new
    return np.unique(lv.astype(np.float32))


def fit_clip_range(samples: np.ndarray, tail: float = 1e-4) -> tuple[float, float]:
    """Truncation range for the CAUFC baseline: the ``tail`` and ``1 - tail`` quantiles."""
    v = np.asarray(samples, np.float64).ravel()
    lo, hi = np.quantile(v, [tail, 1.0 - tail])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


@dataclass
class TapTransform:
    """Maps one tap's features to [0, 1] and back (``kind`` is "dtufc" or "caufc")."""

    kind: str
    levels: np.ndarray | None = None      # dtufc: ascending reconstruction levels
    lo: float = 0.0                       # caufc: truncation range
    hi: float = 1.0

    @classmethod
    def fit(cls, kind: str, samples: np.ndarray) -> "TapTransform":
        if kind == "dtufc":
            return cls(kind, levels=_fit_levels(samples))
        lo, hi = fit_clip_range(samples)
        return cls(kind, lo=lo, hi=hi)

    def indices(self, x: np.ndarray) -> np.ndarray:
        """dtufc only: nearest-level indices (uint8)."""
        assert self.levels is not None
        t = 0.5 * (self.levels[1:] + self.levels[:-1])
        return np.searchsorted(t, np.asarray(x, np.float32), side="right").astype(np.uint8)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Features -> values in [0, 1] as the network sees them (float32)."""
        if self.kind == "dtufc":
            return self.indices(x).astype(np.float32) / 255.0
        y = (np.clip(x, self.lo, self.hi) - self.lo) / (self.hi - self.lo)
        return y.astype(np.float32)

    def from_unit(self, y: np.ndarray) -> np.ndarray:
        """Network output in [0, 1] -> features (float32)."""
        y = np.asarray(y, np.float64)
        if self.kind == "dtufc":
            assert self.levels is not None
            idx = np.clip(np.rint(y * 255.0), 0, len(self.levels) - 1).astype(np.int64)
            return self.levels[idx]
        return (self.lo + np.clip(y, 0.0, 1.0) * (self.hi - self.lo)).astype(np.float32)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "lo": self.lo, "hi": self.hi}
        if self.levels is not None:
            d["levels"] = [float(v) for v in self.levels]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TapTransform":
        lv = d.get("levels")
        return cls(d["kind"], None if lv is None else np.asarray(lv, np.float32),
                   float(d["lo"]), float(d["hi"]))


def _fit_levels(samples: np.ndarray) -> np.ndarray:
    try:  # the library's transform when it is there
        from featcodec.transform import fit_transform  # type: ignore

        return np.asarray(fit_transform(samples, bits=8).levels, np.float32)
    except ImportError:
        return fit_lloyd_max(samples)


def load_manifest(root: str | os.PathLike) -> list[dict]:
    """The corpus manifest: a list of {path, family, model, tap, split, input_id, shape}."""
    root = Path(root)
    entries = json.loads((root / "manifest.json").read_text())
    for e in entries:
        p = Path(e["path"])
        e["abspath"] = str(p if p.is_absolute() else root / p)
    return entries


def tap_key(e: dict) -> str:
    return f"{e['family']}/{e.get('model', '')}/{e['tap']}"


@dataclass
class PlaneSet:
    """Training planes (values in [0, 1]) grouped by family, plus the fitted transforms."""

    kind: str
    planes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    transforms: dict[str, TapTransform] = field(default_factory=dict)
    #: per plane (parallel to ``planes``), DT-UFC only: its tap's levels divided by the
    #: plane's own feature-domain standard deviation (what a feature-domain distortion
    #: maps indices through: one scale for every model)
    levels: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{f}: {len(p)} planes" for f, p in sorted(self.planes.items()))


def build_planes(root: str | os.PathLike, kind: str, *, split: str = "train",
                 families: Iterable[str] = FAMILIES, fit_samples: int = 10,
                 max_per_tap: int | None = None,
                 transforms: dict[str, TapTransform] | None = None,
                 min_fit: int = 1) -> PlaneSet:
    """Read ``split`` of the corpus, fit a transform per tap on its first ``fit_samples``
    train features (or reuse ``transforms``) and return the planes in [0, 1]. Taps with
    fewer than ``min_fit`` train features (still being extracted) are skipped.

    DT-UFC planes are stored as uint8 indices, CAUFC planes as float16.
    """
    if kind not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, not {kind!r}")
    entries = load_manifest(root)
    fams = set(families)
    by_tap: dict[str, list[dict]] = defaultdict(list)
    for e in sorted(entries, key=lambda e: (tap_key(e), str(e["input_id"]))):
        if e["family"] in fams:
            by_tap[tap_key(e)].append(e)
    out = PlaneSet(kind)
    transforms = dict(transforms or {})
    for key, es in sorted(by_tap.items()):
        if key not in transforms:
            fit = [e for e in es if e["split"] == "train"][:fit_samples]
            if not fit or len(fit) < min_fit:
                continue
            transforms[key] = TapTransform.fit(
                kind, np.concatenate([np.load(e["abspath"]).ravel() for e in fit]))
        tr = transforms[key]
        chosen = [e for e in es if e["split"] == split][:max_per_tap]
        for e in chosen:
            x = np.load(e["abspath"]).astype(np.float32)
            plane = to_plane(x, e["family"])
            if kind == "dtufc":
                stored = tr.indices(plane)
                values = tr.levels[stored].astype(np.float64)
                std = float(values.std()) or 1.0
                out.levels.setdefault(e["family"], []).append((tr.levels / std).astype(np.float32))
            else:
                stored = tr.to_unit(plane).astype(np.float16)
            out.planes.setdefault(e["family"], []).append(stored)
    out.transforms = transforms
    return out


def _as_unit(p: np.ndarray) -> np.ndarray:
    if p.dtype == np.uint8:
        return p.astype(np.float32) / 255.0
    return p.astype(np.float32)


class CropSampler:
    """Random ``crop x crop`` patches, families mixed uniformly, fixed seed.

    Planes smaller than the crop are edge-replicated (never zero-padded).
    """

    def __init__(self, planes: PlaneSet, crop: int = 128, seed: int = 0):
        self.fams = sorted(f for f, p in planes.planes.items() if p)
        if not self.fams:
            raise ValueError("no training planes")
        self.planes = planes.planes
        self.levels = planes.levels
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.last = ("", 0)  # (family, plane index) of the last crop

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, s: dict) -> None:
        self.rng.bit_generator.state = s

    def one(self) -> np.ndarray:
        f = self.fams[self.rng.integers(len(self.fams))]
        ps = self.planes[f]
        k = int(self.rng.integers(len(ps)))
        p = ps[k]
        self.last = (f, k)
        c = self.crop
        h, w = p.shape
        if h < c or w < c:
            p = np.pad(p, ((0, max(0, c - h)), (0, max(0, c - w))), mode="edge")
            h, w = p.shape
        i = self.rng.integers(h - c + 1)
        j = self.rng.integers(w - c + 1)
        out = _as_unit(p[i:i + c, j:j + c])
        if self.rng.integers(2):  # flips are cheap augmentation
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def batch(self, n: int) -> np.ndarray:
        return np.stack([self.one() for _ in range(n)])[:, None]

    def batch_with_levels(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`batch` (the same random draws) and each crop's normalised levels
        (``PlaneSet.levels``, shape ``(n, 256)``): DT-UFC planes only."""
        crops, levels = [], []
        for _ in range(n):
            crops.append(self.one())
            f, k = self.last
            if f not in self.levels:
                raise ValueError("feature-domain distortion needs DT-UFC planes (input='dtufc')")
            levels.append(self.levels[f][k])
        return np.stack(crops)[:, None], np.stack(levels)
