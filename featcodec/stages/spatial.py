"""The ``"spatial"`` stage: a blockwise 2-D Walsh-Hadamard transform of every channel of a
channels-first map before the value transform, so that the codec sees decorrelated
coefficients instead of neighbouring values that repeat each other.

CNN feature maps and diffusion latents are spatially correlated (docs/learned.md: rho
about 0.5-0.6 to the next value each way), but the index codec codes values one at a time.
Each ``B x B`` block of every channel of an ``(N, C, H, W)`` tensor is multiplied by the
orthonormal ``H_B / sqrt(B)`` along its rows and along its columns (Sylvester-order
Walsh-Hadamard, no signs: compiled in csrc/hadamard.cpp beside the rotation stage's kernel,
additions and one scale, the same bytes for any thread count), and the coefficients are
laid out frequency-major:
``(N, C * B * B, H / B, W / B)``, one plane per channel and frequency, so the index codec's
tiles and grouped tables see one frequency at a time. Decode restores the layout and
applies the same transform (it is its own inverse), rows then columns as on encode, in
float32 (float64 for float64 tensors).

An orthonormal transform keeps the mean squared error but not a per-value bound (a bound
``e`` on the coefficients bounds a decoded value only by ``B e``), so ``max_error`` is an
InputError with this stage. What pays on coefficients is entropy-coded uniform steps
(Lloyd-Max levels fitted to all frequencies together do worse than on the values
themselves): ``featcodec.encode(x, codec="auto", target_bpfp=t)`` tries this stage with
uniform steps on its own and keeps it where the decoded MSE is lower (docs/spatial.md).

ViT-style tokens ``(N, T, C)`` take the stage too, when their last ``H * W`` tokens are a
square grid of patches after ``P`` leading ones (at most 8: a class token, registers;
:func:`featcodec.stages.alignment.patch_grid`): the patches are laid out as the map
``(N, C, H, W)`` and transformed as above, and the leading tokens' ``P * C`` values follow
the coefficients as channels of their own, untransformed (``(N, extra, H / B, W / B)``,
the last channel's spare places filled by repeating its last value), so the value stages
quantize them with the same steps. Neighbouring patches are alike: on 256 ViT layer-9
outputs, with 2x2 blocks (:data:`GRID_BLOCK`, what ``codec="auto"`` uses), this keeps the
task within 1% from 1.371 BPFP instead of 1.605 for the tokens coded as they are
(docs/spatial.md).

``featcodec.encode(x, spatial=B)`` (``B`` a power of two from 2 to 64 dividing ``H`` and
``W``) adds the stage in front of ``"transform"``. It owns the header field ``spatial``,
``{"block": B}`` for maps (format version 8), ``{"block": B, "grid": [H, W], "prefix":
P}`` for tokens (version 9), and no section.

Example:
    >>> import numpy as np, featcodec
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(np.cumsum(rng.normal(size=(1, 4, 32, 32)), 2), 3).astype(np.float32)  # smooth maps
    >>> blob = featcodec.encode(x, bits=6, spatial=8, transform="uniform")
    >>> featcodec.header(blob)["spatial"], featcodec.header(blob)["stages"]
    ({'block': 8}, ['spatial', 'transform', 'pack'])
    >>> featcodec.decode(blob).shape
    (1, 4, 32, 32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import float_view, to_float32
from ..errors import FormatError, InputError
from ..stream.container import GRID_VERSION, SPATIAL_VERSION
from ..threads import get_num_threads
from .alignment import MAX_PREFIX_TOKENS, patch_grid
from .base import DecodeContext, EncodeContext, Stage
from .hidden import give_back, host_array, keep_precision, work_dtype

__all__ = ["Spatial", "forward", "inverse", "block_for", "candidate_block"]

#: the block sizes the stage takes
BLOCKS = tuple(2**k for k in range(1, 7))
#: option set only by rate control: a ``max_error`` that bounds the coefficients, knowingly
COEFFICIENT_BOUND = "spatial_coefficient_bound"


#: the largest block :func:`block_for` gives the patch grid of ViT-style tokens: on the
#: ViT's task (256 test images, docs/spatial.md) 2x2 blocks keep it within 1% from 1.371
#: BPFP, 8x8 from 1.535, and 2x2 keep the saliency map better at every rate measured
GRID_BLOCK = 2


def block_for(shape: tuple[int, ...], largest: int = 8) -> int | None:
    """The largest block (a power of two, at most ``largest``) dividing both spatial sizes
    of a 4-D channels-first ``shape``, or the side of the patch grid of a 3-D token
    ``shape`` (:func:`featcodec.stages.alignment.patch_grid`; there at most
    :data:`GRID_BLOCK`); ``None`` if there is none.

    >>> block_for((1, 32, 64, 64)), block_for((1, 96, 14, 14)), block_for((1, 1280, 7, 7)), block_for((2, 3))
    (8, 2, None, None)
    >>> block_for((1, 257, 384)), block_for((4, 197, 768)), block_for((1, 50, 768))
    (2, 2, None)
    """
    if len(shape) == 4:
        h, w = shape[2], shape[3]
    elif len(shape) == 3 and (grid := patch_grid(shape[1])) is not None:
        h = w = grid[1]
        largest = min(largest, GRID_BLOCK)
    else:
        return None
    b = largest
    while b >= 2:
        if h % b == 0 and w % b == 0:
            return b
        b //= 2
    return None


#: tokens whose patch-grid neighbours a row apart differ by at least this fraction of what
#: tokens half the grid apart do are not taken for an image by :func:`candidate_block`
#: (on the corpus's test inputs: ViT layer 9 0.34-0.71, the SmolLM2 hidden states of
#: grid-like lengths, 106 of 256, 0.83-1.14)
GRID_LIKENESS = 0.77


def candidate_block(x: Any) -> int | None:
    """The block ``codec="auto"`` tries the stage with on ``x``: :func:`block_for` of its
    shape, except for tokens whose shape only looks like a patch grid (an LLM sequence of
    7 + 10 * 10 tokens): their neighbours a grid row apart must differ, on average, by
    less than :data:`GRID_LIKENESS` times what tokens half the grid apart do.

    >>> rng = np.random.default_rng(0)
    >>> smooth = np.cumsum(np.cumsum(rng.normal(size=(1, 16, 16, 8)), 1), 2).reshape(1, 256, 8)
    >>> candidate_block(smooth), candidate_block(rng.normal(size=(1, 256, 8)))
    (2, None)
    """
    a, origin = float_view(x)
    block = block_for(tuple(a.shape))
    if block is None or a.ndim != 3:
        return block
    prefix, side = patch_grid(a.shape[1])
    t = np.asarray(to_float32(a[:, prefix:], origin.dtype), np.float64)
    n, half = side * side, side * side // 2
    row = np.mean(np.abs(t[:, side:] - t[:, : n - side]))
    far = np.mean(np.abs(t[:, half:] - t[:, : n - half]))
    return block if row < GRID_LIKENESS * far else None


def forward(a: np.ndarray, block: int) -> np.ndarray:
    """``(N, C, H, W)`` float32/float64 -> ``(N, C * block**2, H / block, W / block)``: each
    block's 2-D Walsh-Hadamard coefficients, one plane per channel and frequency
    (compiled: ``featcodec._core.spatial_hadamard``).

    >>> a = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> bool(np.allclose(inverse(forward(a, 2), 2, a.shape), a))
    True
    """
    from .. import _core

    return _core.spatial_hadamard(np.ascontiguousarray(a), int(block), False, list(a.shape), get_num_threads())


def inverse(z: np.ndarray, block: int, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`forward`, back to the ``(N, C, H, W)`` ``shape``."""
    from .. import _core

    return _core.spatial_hadamard(np.ascontiguousarray(z), int(block), True, [int(v) for v in shape],
                                  get_num_threads())


def _grid_forward(a: np.ndarray, block: int, prefix: int, side: int) -> np.ndarray:
    """ViT-style tokens ``(N, P + side**2, C)`` -> the coefficients of their patch grid as a
    map (:func:`forward`), then the ``P`` leading tokens' values as channels of their own."""
    n, _, c = a.shape
    patches = np.ascontiguousarray(a[:, prefix:].reshape(n, side, side, c).transpose(0, 3, 1, 2))
    coef = forward(patches, block)
    h = side // block
    lead = a[:, :prefix].reshape(n, prefix * c)
    extra = -(-prefix * c // (h * h))
    if extra * h * h > prefix * c:  # the last channel's spare places repeat its last value
        lead = np.pad(lead, ((0, 0), (0, extra * h * h - prefix * c)), mode="edge")
    return np.concatenate([coef, lead.reshape(n, extra, h, h).astype(coef.dtype, copy=False)], axis=1)


def _grid_inverse(z: np.ndarray, block: int, prefix: int, side: int, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`_grid_forward`, back to the token ``shape``."""
    n, _, c = shape
    patches = inverse(np.ascontiguousarray(z[:, : c * block * block]), block, (n, c, side, side))
    rest = z[:, c * block * block:]
    lead = rest.reshape(n, rest[0].size)[:, : prefix * c].reshape(n, prefix, c)
    return np.concatenate([lead, patches.transpose(0, 2, 3, 1).reshape(n, side * side, c)], axis=1)


def _block(v: Any, shape: tuple[int, ...]) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) not in BLOCKS:
        raise InputError(f"spatial must be a block size, a power of two from 2 to 64 (8 suits most maps), "
                         f"not {v!r:.40}.")
    b = int(v)
    grid = patch_grid(shape[1]) if len(shape) == 3 else None
    sides = (shape[2], shape[3]) if len(shape) == 4 else (grid[1], grid[1]) if grid else None
    if sides is None or sides[0] % b or sides[1] % b:
        best = block_for(shape)
        what = ("a channels-first map (N, C, H, W) whose H and W" if len(shape) != 3 else
                f"ViT-style tokens (N, T, C) whose last H * W tokens make a square grid after at most "
                f"{MAX_PREFIX_TOKENS} leading ones, and whose H")
        hint = (f"spatial={best} divides it." if best else
                "pad H and W to a multiple of it, or leave spatial off." if len(shape) == 4 else
                f"no block divides the grid's side {grid[1]}: leave spatial off." if grid else
                "these tokens make no such grid: leave spatial off." if len(shape) == 3 else
                "reshape it to (N, C, H, W) first (x[None] for a (C, H, W) map), or leave spatial off.")
        raise InputError(f"the 'spatial' stage takes {what} the block {b} divides, not shape {tuple(shape)}: {hint}")
    return b


class Spatial(Stage):
    """The ``"spatial"`` stage (see the module docstring); encode option ``spatial``."""

    name, takes, gives = "spatial", "values", "values"
    fields, sections = ("spatial",), ()

    def encode(self, x: Any, ctx: EncodeContext) -> np.ndarray:
        a, origin = float_view(x)
        b = _block(ctx.options.get("spatial"), tuple(a.shape))
        if ctx.options.get("max_error") is not None and not ctx.options.get(COEFFICIENT_BOUND):
            raise InputError(f"max_error bounds every decoded value, and the 'spatial' stage cannot keep that bound: "
                             f"a bound on its coefficients bounds a value only by {b} times it. For the lowest "
                             f"error at a rate use codec='auto' with target_bpfp (it tries this stage with uniform "
                             f"steps); for a bound, max_error without spatial.")
        w = np.ascontiguousarray(a if a.dtype == np.float64 else to_float32(a, origin.dtype))
        if not np.all(np.isfinite(w)):
            raise InputError("x contains NaN or Inf; featcodec codes finite values only.")
        if w.ndim == 3:
            prefix, side = patch_grid(w.shape[1])
            ctx.header["spatial"] = {"block": b, "grid": [side, side], "prefix": prefix}
            return _grid_forward(w, b, prefix, side)
        ctx.header["spatial"] = {"block": b}
        return forward(w, b)

    def check(self, header: dict[str, Any], version: int) -> set[str]:
        f, shape = header["spatial"], header["shape"]
        ok = isinstance(f, dict) and type(f.get("block")) is int and f["block"] in BLOCKS
        if ok and len(shape) == 4:
            ok = set(f) == {"block"} and shape[2] % f["block"] == 0 and shape[3] % f["block"] == 0
        elif ok and len(shape) == 3:
            g, p = f.get("grid"), f.get("prefix")
            ok = (set(f) == {"block", "grid", "prefix"} and isinstance(g, list)
                  and len(g) == 2 and all(type(v) is int and v >= 1 and v % f["block"] == 0 for v in g)
                  and g[0] == g[1] and type(p) is int and 0 <= p <= MAX_PREFIX_TOKENS and p + g[0] * g[1] == shape[1])
        else:
            ok = False
        if not ok:
            raise FormatError("featcodec stream header field 'spatial' is malformed (a block that is not a power "
                              "of two from 2 to 64 dividing the map's height and width, or a patch grid and leading "
                              "tokens that do not make the tensor's tokens).")
        return set()

    def format_version(self, header: dict[str, Any]) -> int:
        return GRID_VERSION if "grid" in header["spatial"] else SPATIAL_VERSION

    def gives_shape(self, header: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
        f = header["spatial"]
        b = f["block"]
        if "grid" in f:
            n, _, c = shape
            h = f["grid"][0] // b
            return (n, c * b * b + -(-f["prefix"] * c // (h * h)), h, h)
        n, c, h, w = shape
        return (n, c * b * b, h // b, w // b)

    def prepare(self, ctx: DecodeContext) -> None:
        keep_precision(ctx, self.name)

    def decode(self, y: Any, ctx: DecodeContext) -> Any:
        f, shape = ctx.header["spatial"], tuple(ctx.header["shape"])
        b = f["block"]
        z = host_array(y).astype(work_dtype(ctx.options["dtype"]), copy=False)
        if z.shape != self.gives_shape(ctx.header, shape):
            raise FormatError("featcodec stream's packed plane does not hold the map's values (corrupt stream).")
        if "grid" in f:
            return give_back(_grid_inverse(z, b, f["prefix"], f["grid"][0], shape), shape, ctx, self.name)
        return give_back(inverse(z, b, shape), shape, ctx, self.name)
