"""Integer-exact choice of the entropy tables (fixes CompressAI's cross-device decode bug).

CompressAI picks each latent's Gaussian table by comparing the *float* output of the
hyper-decoder with the scale table. A one-ulp difference (another thread count, another
CPU's SIMD path) picks another table and the rest of the stream decodes as garbage.

Here the hyper-decoder runs in fixed point: weights become integers ``round(w * 2**s)``,
activations integers with ``FRAC`` fractional bits, and every convolution runs on
integer-valued float64 tensors whose partial sums are exact integers below 2**53 (inputs
are clamped so this holds for any data). Exact integer sums do not depend on summation
order, so the output is the same for any thread count, BLAS or machine. The table index
is then an integer comparison against the scale table in the same fixed point.

Example:
    >>> import torch
    >>> from featcodec.codecs.learned.models import build_model
    >>> net = build_model({"arch": "hyperprior", "N": 8, "M": 8})
    >>> hs = FixedPointHyperSynthesis(net.h_s)
    >>> z = torch.zeros(1, 8, 2, 2, dtype=torch.int64)      # z symbols
    >>> med = torch.zeros(8)
    >>> hs(z, med).shape, hs(z, med).dtype
    (torch.Size([1, 8, 8, 8]), torch.int64)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["FixedPointSequential", "FixedPointConvAt", "FixedPointHyperSynthesis", "to_fixed",
           "scale_indexes",
           "scale_thresholds", "FRAC", "WEIGHT_BITS"]

FRAC = 16          # fractional bits of activations
WEIGHT_BITS = 15   # largest |integer weight| is about 2**WEIGHT_BITS
_EXACT = float(2 ** 53)


class _Layer:
    def __init__(self, m: nn.Module):
        w = m.weight.detach().to(torch.float64)
        if getattr(m, "mask", None) is not None:  # CompressAI's (checkerboard) masked convs
            w = w * m.mask.detach().to(torch.float64)
        b = m.bias.detach().to(torch.float64) if m.bias is not None else torch.zeros(
            w.shape[1] if isinstance(m, nn.ConvTranspose2d) else w.shape[0], dtype=torch.float64)
        wmax = float(w.abs().max())
        self.shift = WEIGHT_BITS - (math.ceil(math.log2(wmax)) if wmax > 0 else 0)
        self.shift = max(0, min(self.shift, 40))
        self.w = torch.round(w * 2.0 ** self.shift)
        self.b = torch.round(b * 2.0 ** (self.shift + FRAC))
        self.transposed = isinstance(m, nn.ConvTranspose2d)
        self.stride, self.padding = m.stride, m.padding
        self.output_padding = getattr(m, "output_padding", (0, 0))
        # Largest sum of |weights| feeding one output: bounds every partial sum.
        l1 = self.w.abs().sum(dim=(0, 2, 3) if self.transposed else (1, 2, 3)).max()
        # (Transposed convs with stride feed each output from a subset of taps, so the
        # full-kernel L1 is an upper bound.)
        self.amax = math.floor((_EXACT - float(self.b.abs().max()) - 2 ** self.shift)
                               / max(float(l1), 1.0))
        # The bias with the rounding offset of _rescale: every partial sum, in any order,
        # stays an exact integer below 2**53 (amax above), so adding it inside the
        # convolution gives the same integers as adding it after.
        self.b_half = self.b + (2.0 ** (self.shift - 1) if self.shift > 0 else 0.0)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        a = a.clamp(-self.amax, self.amax)
        if self.transposed:
            acc = F.conv_transpose2d(a, self.w, self.b_half, self.stride, self.padding,
                                     self.output_padding)
        else:
            acc = F.conv2d(a, self.w, self.b_half, self.stride, self.padding)
        return self._rescale(acc)

    def _rescale(self, acc: torch.Tensor) -> torch.Tensor:
        """``acc`` (the sums plus :attr:`b_half`) back to FRAC fractional bits, in place:
        ``floor((sum + b + 2**(shift - 1)) / 2**shift)``, rounding half up. Exact in float64
        (the division is by a power of two)."""
        return acc.mul_(2.0 ** -self.shift).floor_() if self.shift > 0 else acc


class FixedPointConvAt:
    """A stride-1, same-padded convolution in exact fixed point, evaluated only at chosen
    positions and only over its nonzero taps: the same numbers as :class:`FixedPointSequential`
    on the convolution alone, at those positions. For ELIC's checkerboard context (12 of 25
    taps, needed at half of the positions: a quarter of the work).

    Call with a (C_in, H, W) fixed-point tensor and a (H, W) boolean mask; returns
    (C_out, mask.sum()).
    """

    def __init__(self, m: nn.Conv2d):
        kh, kw = m.kernel_size
        if m.stride != (1, 1) or m.padding != (kh // 2, kw // 2) or m.dilation != (1, 1) \
                or m.groups != 1 or kh % 2 == 0 or kw % 2 == 0:
            raise TypeError("FixedPointConvAt takes a stride-1, same-padded, odd-sized conv")
        self.layer = _Layer(m)
        taps = (self.layer.w != 0).any(dim=1).any(dim=0).nonzero().tolist()
        self.offsets = [(a - kh // 2, b - kw // 2) for a, b in taps]
        w = self.layer.w[:, :, [a for a, _ in taps], [b for _, b in taps]]  # (Cout, Cin, T)
        self.w = w.reshape(w.shape[0], -1)  # (Cout, Cin * T), channel-major
        self.pad = (kh // 2, kw // 2)

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        a = a.clamp(-self.layer.amax, self.layer.amax)
        ph, pw = self.pad
        padded = F.pad(a, (pw, pw, ph, ph))
        width = padded.shape[2]
        rows, cols = where.nonzero(as_tuple=True)
        at = (rows + ph) * width + cols + pw  # the positions in the padded map, (P,)
        taps = torch.tensor([dr * width + dc for dr, dc in self.offsets])
        cols_in = padded.reshape(a.shape[0], -1)[:, (taps[:, None] + at).reshape(-1)]
        acc = torch.addmm(self.layer.b_half.view(-1, 1), self.w,
                          cols_in.view(self.w.shape[1], -1))  # (Cin * T, P) -> (Cout, P)
        return self.layer._rescale(acc)


class FixedPointSequential:
    """A stack of convolutions (plain, masked or transposed) and ReLUs in exact fixed point.

    Takes and returns integer-valued float64 tensors with ``FRAC`` fractional bits: the
    same numbers whatever the thread count or machine.
    """

    def __init__(self, seq: nn.Sequential):
        self.ops: list = []
        for m in seq:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                self.ops.append(_Layer(m))
            elif isinstance(m, nn.ReLU):
                self.ops.append("relu")
            else:
                raise TypeError(f"no fixed-point version of {type(m).__name__}")
        if self.ops[:1] == ["relu"]:  # __call__'s ReLUs work in place on a layer's output
            raise TypeError("a fixed-point stack starts with a convolution")

    @torch.no_grad()
    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            a = a.clamp_min_(0.0) if op == "relu" else op(a)  # relu: on a layer's output
        return a


def to_fixed(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Real numbers to fixed point (float64 integers, ``FRAC`` fractional bits), rounded."""
    return torch.round(torch.as_tensor(x).to(torch.float64) * 2.0 ** FRAC)


class FixedPointHyperSynthesis:
    """The hyper-decoder ``h_s`` (convs, transposed convs, ReLU) in exact fixed point.

    Call with the integer z symbols and the entropy bottleneck's medians; returns the
    hyper-decoder's output as int64 with ``FRAC`` fractional bits.
    """

    def __init__(self, h_s: nn.Sequential):
        self.net = FixedPointSequential(h_s)

    @torch.no_grad()
    def __call__(self, z_symbols: torch.Tensor, medians: torch.Tensor) -> torch.Tensor:
        med_q = to_fixed(medians.detach().reshape(-1))
        a = z_symbols.to(torch.float64) * 2.0 ** FRAC + med_q.view(1, -1, 1, 1)
        return self.net(a).to(torch.int64)


def scale_thresholds(scale_table: torch.Tensor | np.ndarray) -> np.ndarray:
    """``floor(s * 2**FRAC)`` for each table scale but the last (int64, ascending)."""
    t = np.asarray(scale_table, dtype=np.float64)[:-1]
    return np.floor(t * 2.0 ** FRAC).astype(np.int64)


def scale_indexes(scales_q: torch.Tensor | np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """CompressAI's ``build_indexes`` on fixed-point scales, by integer comparison.

    index = (len(table) - 1) - #{t in table[:-1] : scale <= t}; with integer scales and
    ``thresholds = floor(table * 2**FRAC)`` this is exactly the float rule on
    ``scale = scales_q / 2**FRAC``.
    """
    from ... import _core

    s = np.ascontiguousarray(scales_q, dtype=np.int64)
    # thresholds.size - #{t >= s} = #{t < s}: searchsorted(thresholds, s, "left"), compiled
    return _core.rans_scale_indexes(s.reshape(-1), np.ascontiguousarray(thresholds, np.int64)).reshape(s.shape)
