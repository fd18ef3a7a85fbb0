"""The ``"rotation"`` stage (QuaRot): an exact orthogonal rotation of every token along the
hidden (last) axis before the value transform, so that no channel dominates: a few outlier
channels' energy is spread over all of them and the values become near-Gaussian. Decode
rotates back exactly (within float rounding).

The rotation is a randomised Hadamard transform: the token view's rows (:mod:`.hidden`)
are cut into blocks of ``b`` values, ``b`` the largest power of two dividing the hidden
size ``d`` (the whole row when ``d`` is a power of two; for d = 576 = 9 x 64, nine blocks of
64: a block-diagonal rotation), and each block is multiplied by ``H_b D / sqrt(b)``: each
value times its random sign (``D``, one ±1 per channel from the seed), then the fast
Walsh-Hadamard transform (Sylvester order). Compiled (``featcodec._core.hadamard_rotate``,
csrc/hadamard.cpp), O(d log b) per token, in float32 (float64 for float64 tensors), the
same bytes for any thread count. A hidden size with no power-of-two factor (odd) is an
InputError.

``featcodec.encode(x, rotation=True)`` (seed 0) or ``rotation=seed`` (an int in 0..2**64-1)
adds this stage in front of ``"transform"`` (after ``"outliers"``, before ``"scales"``). It
owns the header field ``rotation``, ``{"seed": s, "block": b}`` (format version 7), and no section. Sign ``i``
of seed ``s`` is -1 when bit 63 of splitmix64's ``(i + 1)``-th output from state ``s`` is set
(:func:`signs`; docs/format.md).

Example:
    >>> import numpy as np, featcodec
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 128)).astype(np.float32)
    >>> x[:, 7] *= 50  # an outlier channel
    >>> blob = featcodec.encode(x, bits=3, rotation=True)
    >>> featcodec.header(blob)["rotation"], featcodec.header(blob)["stages"]
    ({'block': 128, 'seed': 0}, ['rotation', 'transform', 'pack'])
    >>> plain = featcodec.decode(featcodec.encode(x, bits=3))
    >>> bool(np.mean((featcodec.decode(blob) - x) ** 2) < np.mean((plain - x) ** 2))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError, InputError
from ..stream.container import VALUE_STAGES_VERSION
from ..threads import get_num_threads
from .base import DecodeContext, EncodeContext, Stage
from .hidden import give_back, host_array, keep_precision, no_bound, token_matrix, work_dtype

__all__ = ["Rotation", "rotate", "signs", "block_of"]

_SEEDS = 1 << 64


def block_of(d: int) -> int:
    """The rotation's block for hidden size ``d``: the largest power of two dividing it.

    >>> block_of(4096), block_of(576), block_of(384), block_of(7)
    (4096, 64, 128, 1)
    """
    return d & -d


def signs(seed: int, d: int) -> np.ndarray:
    """The ``d`` random signs (int8 ±1) of the rotation with ``seed``.

    >>> signs(0, 8).tolist()
    [-1, 1, 1, -1, 1, 1, 1, -1]
    """
    from .. import _core

    return _core.hadamard_signs(seed, d)


def _seed(v: Any) -> int:
    if v is True:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < _SEEDS:
        raise InputError(f"rotation must be True (seed 0) or a seed, an integer in 0..2**64-1, not {v!r:.40}.")
    return int(v)


def rotate(a: np.ndarray, seed: int, block: int, inverse: bool = False) -> np.ndarray:
    """Rows of the float32/float64 ``(n, d)`` array ``a`` rotated blockwise by ``H D /
    sqrt(block)`` (``inverse``: ``D H / sqrt(block)``); a new array of ``a``'s dtype.

    >>> a = np.arange(8.0).reshape(2, 4)
    >>> bool(np.allclose(rotate(rotate(a, 5, 4), 5, 4, inverse=True), a))
    True
    """
    from .. import _core

    a = np.asarray(a)
    if a.ndim != 2 or a.dtype not in (np.float32, np.float64):
        raise InputError(f"rotate takes a 2-D float32 or float64 array (rows, d), not a {a.ndim}-D {a.dtype} one; "
                         f"reshape it to (-1, d) and convert it, e.g. a.astype(np.float32).")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1 or block & (block - 1) \
            or a.shape[1] % block:
        raise InputError(f"block must be a power of two dividing the row length {a.shape[1]}, not {block!r:.40}; "
                         f"block_of(d) gives the largest.")
    return _core.hadamard_rotate(np.ascontiguousarray(a), _seed(seed), int(block), bool(inverse), get_num_threads())


class Rotation(Stage):
    """The ``"rotation"`` stage (see the module docstring); encode option ``rotation``."""

    name, takes, gives = "rotation", "values", "values"
    fields, sections = ("rotation",), ()

    def encode(self, x: Any, ctx: EncodeContext) -> np.ndarray:
        seed = _seed(ctx.options.get("rotation", True))
        no_bound(ctx, self.name, "a bound per rotated value bounds a decoded value only by sqrt(d) times it, and "
                  "dividing the bound by that costs about log2(d)/2 bits per value.")
        a, _, shape = token_matrix(x, self.name)
        d = shape[-1]
        b = block_of(d)
        if b < 2:
            raise InputError(f"rotation needs a hidden size (last axis) with a power-of-two factor, got {d} (odd); "
                             f"move the hidden axis last, pad it to an even size (e.g. {d + 1}), or leave rotation off.")
        ctx.header["rotation"] = {"seed": seed, "block": b}
        return rotate(a, seed, b).reshape(shape)

    def check(self, header: dict[str, Any], version: int) -> set[str]:
        f, shape = header["rotation"], header["shape"]
        if not (isinstance(f, dict) and set(f) == {"seed", "block"} and type(f["seed"]) is int
                and type(f["block"]) is int and 0 <= f["seed"] < _SEEDS and len(shape) >= 2
                and f["block"] >= 2 and f["block"] & (f["block"] - 1) == 0 and shape[-1] % f["block"] == 0):
            raise FormatError("featcodec stream header field 'rotation' is malformed (seed, or a block that is "
                              "not a power of two dividing the last axis).")
        return set()

    def format_version(self, header: dict[str, Any]) -> int:
        return VALUE_STAGES_VERSION

    def prepare(self, ctx: DecodeContext) -> None:
        keep_precision(ctx, self.name)

    def decode(self, y: Any, ctx: DecodeContext) -> Any:
        f, shape = ctx.header["rotation"], ctx.header["shape"]
        a = host_array(y).reshape(-1, shape[-1]).astype(work_dtype(ctx.options["dtype"]), copy=False)
        return give_back(rotate(a, f["seed"], f["block"], inverse=True), shape, ctx, self.name)
