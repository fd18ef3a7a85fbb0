"""Format alignment (CAUFC): lay any feature tensor out as one 2-D plane, and back; the
``"pack"`` stage of the pipeline (:class:`Alignment`, owning the header field ``pack``).

A codec for images wants a 2-D plane; features come as LLM hidden states, KV caches,
ViT token stacks, CNN maps or diffusion latents. :func:`pack` rearranges (never changes)
the values into a plane and returns a small :class:`PackInfo` that :func:`unpack` uses to
restore the exact tensor. Both work on numpy arrays and torch tensors of any dtype.

Layouts (``x`` -> plane):

================  ========================  ========================================
layout            input                     plane
================  ========================  ========================================
``"plane"``       (H, W)                    (H, W), unchanged
``"tokens"``      (B, T, D)                 (B*T, D): one row per token
``"kv"``          (B, heads, T, head_dim)   (B*T, heads*head_dim): one row per token
``"vit"``         (N, L, T, D)              (N*T, L*D): crops x layers x tokens x width
``"mosaic"``      (N, C, H, W) or (C, H, W) N mosaics of a x b channel tiles, stacked
                                            vertically: (N*a*H, b*W)
``"flat"``        any shape (S0, ..., Sk)   (S0*...*S(k-1), Sk); 1-D -> (1, S0)
================  ========================  ========================================

``"kv"`` and ``"vit"`` are the same permutation (the third axis becomes rows, the second
and fourth become columns); both names exist so streams say what they carry.

``layout="auto"`` decides by ``x.ndim``: 2 -> ``"plane"``, 3 -> ``"tokens"``,
4 -> ``"mosaic"``, anything else -> ``"flat"``. A 4-D tensor is ambiguous (KV cache or
NCHW map); auto treats it as NCHW, so name ``"kv"`` or ``"vit"`` yourself for those.

Mosaic grid: channel ``c`` goes to tile row ``c // b``, tile column ``c % b``. Among the
grids ``b = 1..C``, ``a = ceil(C / b)`` (so unused tiles only ever sit at the right end of
the last tile row), :func:`mosaic_grid` picks the one that minimises
``|log2(plane_height / plane_width)| + 8 * unused_tiles / C``: near square, little waste.
Unused tiles are filled by replicating, to the right, the last column of the last real
tile (an edge continuation, as in :func:`pad_plane`), never with zeros, which after a
value transform would be false content (the lowest level) costing rate.

Example:
    >>> import numpy as np
    >>> x = np.arange(2 * 5 * 3 * 4, dtype=np.float32).reshape(2, 5, 3, 4)
    >>> plane, info = pack(x)
    >>> info.layout, info.grid, plane.shape
    ('mosaic', (2, 3), (12, 12))
    >>> bool((unpack(plane, info) == x).all())
    True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .._arrays import empty
from .._tiles import plane_of_tiles, tiles_of
from ..errors import FormatError, InputError
from ..limits import MAX_DIM, MAX_ELEMENTS, MAX_NDIM
from .base import DecodeContext, EncodeContext, Stage

try:
    import torch
except Exception:  # pragma: no cover
    torch = None  # type: ignore[assignment]

__all__ = ["LAYOUTS", "Alignment", "PackInfo", "pack", "unpack", "mosaic_grid", "patch_grid", "pad_plane", "crop_plane",
           "padded_shape"]

LAYOUTS = ("plane", "tokens", "kv", "vit", "mosaic", "flat")
_NDIM = {"plane": (2,), "tokens": (3,), "kv": (4,), "vit": (4,), "mosaic": (3, 4)}
_WASTE_WEIGHT = 8.0


def _is_torch(x: Any) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _permute(x: Any, axes: Sequence[int]) -> Any:
    return x.permute(*axes) if _is_torch(x) else x.transpose(axes)


def _contiguous(x: Any) -> Any:
    return x.contiguous() if _is_torch(x) else np.ascontiguousarray(x)


def _empty_like(x: Any, shape: tuple[int, ...]) -> Any:
    if _is_torch(x):
        return torch.empty(shape, dtype=x.dtype, device=x.device)
    return empty(shape, x.dtype)


@dataclass(frozen=True)
class PackInfo:
    """How a tensor was laid out as a plane: all :func:`unpack` needs to restore it.

    ``layout`` is one of :data:`LAYOUTS`, ``shape`` the original tensor shape, ``grid``
    the mosaic's ``(tile_rows, tile_cols)`` (``None`` for other layouts).

    Example:
        >>> info = PackInfo("tokens", (1, 7, 64))
        >>> info.plane_shape
        (7, 64)
        >>> PackInfo.from_dict(info.to_dict()) == info
        True
    """

    layout: str
    shape: tuple[int, ...]
    grid: tuple[int, int] | None = None

    @property
    def plane_shape(self) -> tuple[int, int]:
        """Shape of the packed plane."""
        s = self.shape
        if self.layout == "plane":
            return (s[0], s[1])
        if self.layout == "tokens":
            return (s[0] * s[1], s[2])
        if self.layout in ("kv", "vit"):
            return (s[0] * s[2], s[1] * s[3])
        if self.layout == "mosaic":
            n, _, h, w = _nchw(s)
            a, b = self.grid  # type: ignore[misc]
            return (n * a * h, b * w)
        lead = math.prod(s[:-1]) if len(s) > 1 else 1
        return (lead, s[-1])

    @property
    def tile(self) -> tuple[int, int] | None:
        """``(h, w)`` of the channel tiles of a mosaic plane; ``None`` for other layouts."""
        if self.layout != "mosaic":
            return None
        _, _, h, w = _nchw(self.shape)
        return (h, w)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (goes into the stream header)."""
        d: dict[str, Any] = {"layout": self.layout, "shape": list(self.shape)}
        if self.grid is not None:
            d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PackInfo":
        """Rebuild from :meth:`to_dict`, validating untrusted input.

        Raises :class:`featcodec.FormatError` for unknown keys or layouts, wrong types,
        dimension counts, sizes outside ``1..MAX_DIM``, or more than ``MAX_ELEMENTS``
        values in the tensor or its plane.
        """
        if not isinstance(d, Mapping):
            raise FormatError(f"pack info must be a mapping, not {type(d).__name__}.")
        extra = set(d) - {"layout", "shape", "grid"}
        if extra:
            raise FormatError(f"pack info has unknown keys {sorted(extra)}.")
        layout = d.get("layout")
        if layout not in LAYOUTS:
            raise FormatError(f"pack info has unknown layout {layout!r}; known: {', '.join(LAYOUTS)}.")
        shape = _int_tuple(d.get("shape"), "shape", 1, MAX_NDIM)
        grid = d.get("grid")
        if layout == "mosaic":
            grid = _int_tuple(grid, "grid", 2, 2)
        elif grid is not None:
            raise FormatError(f"pack info for layout {layout!r} must not have a grid.")
        try:
            info = cls(layout, shape, grid)  # type: ignore[arg-type]
            _validate(info)
        except InputError as e:
            raise FormatError(f"invalid pack info: {e}") from None
        return info


def _int_tuple(v: Any, name: str, min_len: int, max_len: int) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)) or not (min_len <= len(v) <= max_len):
        raise FormatError(f"pack info {name} must be a list of {min_len}..{max_len} integers, got {v!r:.80}.")
    out = []
    for s in v:
        if isinstance(s, bool) or not isinstance(s, int) or not (1 <= s <= MAX_DIM):
            raise FormatError(f"pack info {name} has an invalid size {s!r:.40} (need an integer 1..{MAX_DIM}).")
        out.append(s)
    return tuple(out)


def _nchw(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    return tuple(shape) if len(shape) == 4 else (1, *shape)  # type: ignore[return-value]


def _validate(info: PackInfo) -> None:
    """Check an info's consistency; InputError if not (FormatError when from a stream)."""
    ndims = _NDIM.get(info.layout)
    if ndims is not None and len(info.shape) not in ndims:
        raise InputError(
            f"layout {info.layout!r} takes a {' or '.join(map(str, ndims))}-D tensor, "
            f"got shape {tuple(info.shape)}; choose another layout or layout='flat'."
        )
    if len(info.shape) > MAX_NDIM or any(s < 1 for s in info.shape):
        raise InputError(f"shape {tuple(info.shape)} must have 1..{MAX_NDIM} dimensions, each >= 1.")
    if math.prod(info.shape) > MAX_ELEMENTS:
        raise InputError(
            f"a tensor of shape {tuple(info.shape)} has more than {MAX_ELEMENTS} values; split it first."
        )
    if info.layout == "mosaic":
        _, c, _, _ = _nchw(info.shape)
        if info.grid is None:
            raise InputError("layout 'mosaic' needs a grid.")
        a, b = info.grid
        if a * b < c or a != -(-c // b):
            raise InputError(f"mosaic grid {a}x{b} does not fit {c} channels (need a = ceil(C / b)).")
        h, w = info.plane_shape
        if h * w > 2 * MAX_ELEMENTS:
            raise InputError(f"mosaic plane {h}x{w} is too large.")


@functools.lru_cache(maxsize=1024)
def mosaic_grid(c: int, h: int, w: int, n: int = 1) -> tuple[int, int]:
    """The ``(tile_rows, tile_cols)`` grid for ``n`` mosaics of ``c`` tiles of ``h x w``.

    Minimises ``|log2(n*a*h / (b*w))| + 8 * (a*b - c) / c`` over ``b = 1..c``,
    ``a = ceil(c / b)``; ties go to the smaller ``b``. Remembered per shape (a search over
    ``c`` candidates, about 1 ms for a thousand channels).

    Example:
        >>> mosaic_grid(16, 64, 64), mosaic_grid(2048, 7, 7), mosaic_grid(96, 14, 14)
        ((4, 4), (46, 45), (10, 10))
    """
    if min(c, h, w, n) < 1:
        raise InputError(f"mosaic sizes must be >= 1, got C={c}, H={h}, W={w}, N={n}.")
    best: tuple[float, int, int] | None = None
    for b in range(1, c + 1):
        a = -(-c // b)
        cost = abs(math.log2(n * a * h / (b * w))) + _WASTE_WEIGHT * (a * b - c) / c
        if best is None or cost < best[0] - 1e-12:
            best = (cost, a, b)
    return best[1], best[2]  # type: ignore[index]


#: at most this many leading tokens (a class token, registers) before a ViT's patch grid
MAX_PREFIX_TOKENS = 8


def patch_grid(tokens: int) -> tuple[int, int] | None:
    """``(prefix, side)`` of ``tokens`` ViT-style tokens: the fewest leading ones (at most
    :data:`MAX_PREFIX_TOKENS`: a class token, registers) after which the rest make a
    square grid of patches, ``side x side`` with ``side >= 2``; ``None`` when there is none.

    >>> patch_grid(257), patch_grid(261), patch_grid(196), patch_grid(109)
    ((1, 16), (5, 16), (0, 14), None)
    """
    for prefix in range(min(MAX_PREFIX_TOKENS, tokens - 4) + 1):
        side = math.isqrt(tokens - prefix)
        if side * side == tokens - prefix:
            return prefix, side
    return None


def _auto_layout(ndim: int) -> str:
    return {2: "plane", 3: "tokens", 4: "mosaic"}.get(ndim, "flat")


def pack(x: Any, layout: str = "auto") -> tuple[Any, PackInfo]:
    """Lay ``x`` out as a 2-D plane; returns ``(plane, info)``.

    ``x`` is a numpy array or torch tensor (any dtype); ``plane`` is of the same kind,
    dtype and device. ``layout`` is one of :data:`LAYOUTS` or ``"auto"`` (see the module
    docstring). The plane may be a view of ``x``.

    Example:
        >>> import torch
        >>> kv = torch.randn(1, 4, 10, 8)
        >>> plane, info = pack(kv, layout="kv")
        >>> tuple(plane.shape), torch.equal(unpack(plane, info), kv)
        ((10, 32), True)
    """
    if not (_is_torch(x) or isinstance(x, np.ndarray)):
        raise InputError(f"pack takes a numpy.ndarray or torch.Tensor, not {type(x).__name__}.")
    if layout == "auto":
        layout = _auto_layout(x.ndim)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of 'auto', {', '.join(map(repr, LAYOUTS))}.")
    shape = tuple(int(s) for s in x.shape)
    if x.ndim == 0 or any(s == 0 for s in shape):
        raise InputError(f"cannot pack an empty tensor (shape {shape}); featcodec needs at least one value.")
    grid = None
    if layout == "mosaic" and x.ndim in (3, 4):
        n, c, h, w = _nchw(shape)
        grid = mosaic_grid(c, h, w, n)
    info = PackInfo(layout, shape, grid)
    _validate(info)
    s = shape
    if layout == "plane":
        plane = x
    elif layout == "tokens":
        plane = x.reshape(s[0] * s[1], s[2])
    elif layout in ("kv", "vit"):
        plane = _permute(x, (0, 2, 1, 3)).reshape(s[0] * s[2], s[1] * s[3])
    elif layout == "mosaic":
        plane = _mosaic(x.reshape(_nchw(s)), grid)  # type: ignore[arg-type]
    else:
        plane = x.reshape(info.plane_shape)
    return plane, info


def _mosaic(x: Any, grid: tuple[int, int]) -> Any:
    n, c, h, w = x.shape
    a, b = grid
    if a * b > c:  # edge continuation of the last real tile's last column
        tiles = _empty_like(x, (n, a * b, h, w))
        tiles[:, :c] = x
        tiles[:, c:] = x[:, c - 1 : c, :, w - 1 : w]
    else:
        tiles = x
    return plane_of_tiles(tiles.reshape(n * a * b, h * w), (n * a * h, b * w), h, w)


def unpack(plane: Any, info: PackInfo) -> Any:
    """Restore the tensor :func:`pack` laid out as ``plane`` (exactly, same kind and dtype).

    Raises :class:`featcodec.InputError` if ``plane`` does not have ``info.plane_shape``.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
        >>> bool((unpack(*pack(x)) == x).all())
        True
    """
    if not isinstance(info, PackInfo):
        raise InputError(f"info must be a PackInfo, not {type(info).__name__}.")
    if not (_is_torch(plane) or isinstance(plane, np.ndarray)):
        raise InputError(f"unpack takes a numpy.ndarray or torch.Tensor, not {type(plane).__name__}.")
    _validate(info)
    if tuple(plane.shape) != info.plane_shape:
        raise InputError(
            f"plane has shape {tuple(plane.shape)} but this pack info needs {info.plane_shape}."
        )
    s = info.shape
    if info.layout in ("plane", "tokens", "flat"):
        return _contiguous(plane.reshape(s))
    if info.layout in ("kv", "vit"):
        return _contiguous(_permute(plane.reshape(s[0], s[2], s[1], s[3]), (0, 2, 1, 3)))
    n, c, h, w = _nchw(s)
    a, b = info.grid  # type: ignore[misc]
    tiles = tiles_of(plane, h, w).reshape(n, a * b, h, w)
    return _contiguous(tiles[:, :c].reshape(s))


def _as_pair(multiple: int | Sequence[int]) -> tuple[int, int]:
    m = (multiple, multiple) if isinstance(multiple, (int, np.integer)) else tuple(multiple)
    if len(m) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in m):
        raise InputError(f"multiple must be a positive integer or a pair of them, not {multiple!r}.")
    return int(m[0]), int(m[1])


def padded_shape(shape: Sequence[int], multiple: int | Sequence[int]) -> tuple[int, int]:
    """The smallest ``(H', W') >= shape`` that are multiples of ``multiple``.

    Example:
        >>> padded_shape((7, 130), 64)
        (64, 192)
    """
    mh, mw = _as_pair(multiple)
    h, w = shape
    return (-(-h // mh) * mh, -(-w // mw) * mw)


def pad_plane(plane: Any, multiple: int | Sequence[int]) -> Any:
    """Pad a 2-D plane at the bottom and right to a multiple of ``multiple`` by edge replication.

    Pads no more than needed (nothing if already a multiple; then ``plane`` itself is
    returned). Replicating the edge, not writing zeros, keeps the padding free of false
    content. Undo with :func:`crop_plane` and the original shape.

    Example:
        >>> import numpy as np
        >>> p = pad_plane(np.array([[1, 2], [3, 4]]), (3, 4))
        >>> p.tolist()
        [[1, 2, 2, 2], [3, 4, 4, 4], [3, 4, 4, 4]]
        >>> crop_plane(p, (2, 2)).tolist()
        [[1, 2], [3, 4]]
    """
    if not (_is_torch(plane) or isinstance(plane, np.ndarray)) or plane.ndim != 2:
        raise InputError("pad_plane takes a 2-D numpy.ndarray or torch.Tensor.")
    h, w = plane.shape
    if h == 0 or w == 0:
        raise InputError("cannot pad an empty plane.")
    ph, pw = padded_shape((h, w), multiple)
    if (ph, pw) == (h, w):
        return plane
    if _is_torch(plane):
        rows = torch.arange(ph, device=plane.device).clamp_(max=h - 1)
        cols = torch.arange(pw, device=plane.device).clamp_(max=w - 1)
        return plane[rows][:, cols]
    return np.pad(plane, ((0, ph - h), (0, pw - w)), mode="edge")


def crop_plane(plane: Any, shape: Sequence[int]) -> Any:
    """Undo :func:`pad_plane`: the top-left ``shape`` of ``plane`` (a view)."""
    h, w = (int(v) for v in shape)
    if plane.ndim != 2 or h > plane.shape[0] or w > plane.shape[1] or h < 1 or w < 1:
        raise InputError(f"cannot crop a plane of shape {tuple(plane.shape)} to {(h, w)}.")
    return plane[:h, :w]


class Alignment(Stage):
    """The ``"pack"`` stage: indices -> the 2-D plane (:func:`pack` with the encode's
    ``layout``), and back (:func:`unpack`). Owns the header field ``pack``
    (:meth:`PackInfo.to_dict`)."""

    name, takes, gives, fields = "pack", "indices", "plane", ("pack",)

    def encode(self, idx: Any, ctx: EncodeContext) -> np.ndarray:
        plane, info = pack(idx, ctx.options.get("layout", "auto"))
        ctx.header["pack"] = info.to_dict()
        ctx.tile = info.tile
        return np.ascontiguousarray(plane)

    def check(self, header: dict[str, Any], version: int) -> set[str]:
        PackInfo.from_dict(header["pack"])  # well formed; its shape is checked against what the
        return set()                        # value stages give (featcodec.pipeline)

    def prepare(self, ctx: DecodeContext) -> None:
        info = PackInfo.from_dict(ctx.header["pack"])
        ctx.state[self.name] = info
        ctx.plane_shape = info.plane_shape

    def decode(self, plane: Any, ctx: DecodeContext) -> Any:
        return unpack(plane, ctx.state[self.name])
