"""How the latents ``y`` are entropy-coded, given the hyper-decoder's fixed-point output.

Two schemes, one per architecture, with one interface: ``encode(y, side) -> [bytes]`` and
``decode(strings, side, shape) -> y_hat``. ``side`` is the hyper-decoder's output cropped
to the latents (int64, :data:`~.integer_entropy.FRAC` fractional bits); every quantity
that chooses a table or shifts a symbol is computed in exact fixed point
(:mod:`.integer_entropy`), so the decoder sees exactly the encoder's numbers in any
process, with any thread count.

- :class:`ScaleLatents` (``ScaleHyperprior``): ``side`` is the Gaussian scale of each
  latent; the symbols are ``round(y)``, one string.
- :class:`CheckerboardGroupLatents` (ELIC, ``Elic2022Official``): the latents are split
  into uneven channel groups; each group is coded in two checkerboard passes (anchors, then
  the others with the anchors as spatial context), with the scales *and means* of its
  Gaussians predicted from the hyper-decoder's output, the groups before it (channel
  context) and, in the second pass, the anchors. Symbols are ``round(y - mean)``; two
  strings per group. CompressAI's own implementation needs even latent sizes (its
  checkerboard halves the width); this one takes any size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ...errors import FormatError
from . import rans_backend
from .integer_entropy import FRAC, FixedPointConvAt, FixedPointSequential, scale_indexes

__all__ = ["ScaleLatents", "CheckerboardGroupLatents"]

_ONE = 2.0 ** FRAC


class ScaleLatents:
    """Latents with zero-mean Gaussians whose scales are the hyper-decoder's output."""

    n_strings = 1

    def __init__(self, gc: tuple, thresholds: np.ndarray):
        self.gc, self.thresholds = gc, thresholds

    def encode(self, y: torch.Tensor, side: torch.Tensor) -> list[bytes]:
        idx = scale_indexes(side.numpy(), self.thresholds)
        return [rans_backend.encode(torch.round(y).to(torch.int32).numpy(), idx, *self.gc)]

    def decode(self, strings: list[bytes], side: torch.Tensor,
               shape: tuple[int, int]) -> torch.Tensor:
        idx = scale_indexes(side.numpy(), self.thresholds)
        return torch.from_numpy(rans_backend.decode(strings[0], idx, *self.gc)).float()


class CheckerboardGroupLatents:
    """ELIC's space-channel context model (uneven groups x checkerboard) in fixed point.

    Built from a CompressAI ``Elic2022Official``'s ``latent_codec["y"]``.
    """

    def __init__(self, y_codec: nn.Module, gc: tuple, thresholds: np.ndarray):
        self.gc, self.thresholds = gc, thresholds
        self.groups = [int(g) for g in y_codec.groups]
        self.n_strings = 2 * len(self.groups)
        self.channel_ctx = [None] + [FixedPointSequential(y_codec.channel_context[f"y{k}"])
                                     for k in range(1, len(self.groups))]
        sub = [y_codec.latent_codec[f"y{k}"] for k in range(len(self.groups))]
        for s in sub:  # what _run assumes
            if s.anchor_parity != "even" or s.latent_codec["y"].chunks != ("scales", "means") \
                    or any(getattr(m, "kernel_size", (1, 1)) != (1, 1)
                           for m in s.entropy_parameters.modules()):
                raise FormatError("unsupported ELIC configuration: anchor parity, chunks, or "
                                  "parameter nets that are not pointwise")
        self.spatial_ctx = [FixedPointConvAt(s.context_prediction) for s in sub]
        self.params = [FixedPointSequential(s.entropy_parameters) for s in sub]

    def _run(self, side: torch.Tensor, shape: tuple[int, int], y: torch.Tensor | None,
             strings: list[bytes] | None) -> tuple[torch.Tensor, list[bytes]]:
        """The coding loop shared by encoder (``y`` given) and decoder (``strings`` given):
        both build the same fixed-point ``y_hat`` group by group, pass by pass."""
        h, w = shape
        m = sum(self.groups)
        side = side.to(torch.float64).reshape(side.shape[1], h * w)
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        anchors = (rows + cols) % 2 == 0
        passes = [(where, where.reshape(-1).nonzero().squeeze(1)) for where in (anchors, ~anchors)]
        y_flat = y[0].reshape(m, h * w) if y is not None else None
        y_hat = torch.zeros(1, m, h, w, dtype=torch.float64)
        flat = y_hat[0].view(m, h * w)
        out: list[bytes] = []
        start = 0
        for k, g in enumerate(self.groups):
            known = [side] if k == 0 else \
                [self.channel_ctx[k](y_hat[:, :start]).reshape(2 * g, h * w), side]
            cur = y_hat[0, start:start + g]  # a view: filled in place
            for p, (where, at) in enumerate(passes):
                # Everything from here on is needed at this pass's positions only: the
                # spatial context there, and the pointwise (1x1) parameter net on a
                # (1, C, P, 1) column of them.
                ctx = torch.zeros(2 * g, at.numel(), dtype=torch.float64) if p == 0 \
                    else self.spatial_ctx[k](cur, where)
                inputs = torch.cat([ctx, *(t.index_select(1, at) for t in known)])
                params = self.params[k](inputs[None, :, :, None])[0, :, :, 0] if at.numel() \
                    else inputs.new_zeros(2 * g, 0)  # a 1 x 1 grid's empty second pass
                scales, means = params[:g], params[g:]
                idx = scale_indexes(scales.to(torch.int64).numpy(), self.thresholds)
                if y_flat is not None:
                    sym = torch.round(y_flat[start:start + g].index_select(1, at).double()
                                      - means / _ONE)
                    sym_np = sym.to(torch.int32).numpy()
                    out.append(rans_backend.encode(sym_np, idx, *self.gc))
                else:
                    sym_np = rans_backend.decode(strings[2 * k + p], idx, *self.gc)
                flat[start:start + g].index_copy_(1, at, torch.from_numpy(sym_np).double()
                                                  .mul_(_ONE).add_(means))
            start += g
        return (y_hat / _ONE).float(), out

    def encode(self, y: torch.Tensor, side: torch.Tensor) -> list[bytes]:
        return self._run(side, tuple(y.shape[2:]), y, None)[1]

    def decode(self, strings: list[bytes], side: torch.Tensor,
               shape: tuple[int, int]) -> torch.Tensor:
        if len(strings) != self.n_strings:
            raise FormatError(f"ELIC payload has {len(strings)} latent strings, "
                              f"{self.n_strings} expected")
        return self._run(side, shape, None, strings)[0]
