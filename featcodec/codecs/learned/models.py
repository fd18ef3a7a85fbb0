"""Reduced-width, one-channel CompressAI architectures for feature planes.

The papers use CompressAI ``ScaleHyperprior`` (N=128, M=192) with a one-channel first and
last layer. Training that on two CPU cores takes days. The shipped codecs keep M=192 and
narrow only N to 48: the analysis transform downsamples by 16, so each 16x16 block of
feature values (256 of them, often weakly correlated across packed channels) is carried
by M latents. With M=48 the rate saturated near 0.7-1 bit per value whatever the lambda
(0.19 latents per value); M=192 costs little (the last analysis and first synthesis
convolutions run at 1/16 resolution) and leaves room for the 0.1-3 BPFP range.

Example:
    >>> from featcodec.codecs.learned.models import build_model
    >>> net = build_model({"arch": "hyperprior", "N": 48, "M": 192})
    >>> net.g_a[0].in_channels, net.g_s[-1].out_channels
    (1, 1)
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

__all__ = ["build_model", "ARCHS"]

ARCHS = ("hyperprior", "elic")


def _import_compressai() -> None:
    """Import CompressAI once without the FutureWarning that its optional torch_geometric
    import raises (``torch.jit.script`` is deprecated), which is no concern of our users."""
    import sys
    import warnings

    if "compressai.models" not in sys.modules:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script", category=FutureWarning)
            import compressai.models  # noqa: F401


def _hyperprior(N: int, M: int, down: int = 4) -> nn.Module:
    """CompressAI's ScaleHyperprior with one input and output channel; ``down = 3`` makes
    its third analysis stage (and the matching synthesis stage) keep the resolution: 8x
    instead of 16x downsampling, M latents per 8 x 8 values instead of per 16 x 16
    (docs/learned.md: the shipped 16x networks cannot carry the near-white index planes
    even without quantization)."""
    _import_compressai()
    from compressai.models import ScaleHyperprior
    from compressai.models.utils import conv, deconv

    if down not in (3, 4):
        raise ValueError(f"down must be 3 or 4, not {down!r}")
    net = ScaleHyperprior(N, M)
    net.g_a[0] = conv(1, N)
    net.g_s[-1] = deconv(N, 1)
    if down == 3:
        net.g_a[4] = conv(N, N, stride=1)
        net.g_s[2] = deconv(N, N, stride=1)
    return net


#: ELIC's channel-context hidden widths: CompressAI's (224, 128) are sized for N=192,
#: M=320 and make the context model 9.6 MB of float16 weights per model and most of the
#: decode time; (64, 32) make it 1.4 MB.
ELIC_CONTEXT = (64, 32)


def _elic(N: int, M: int) -> nn.Module:
    _import_compressai()
    from compressai.models import Elic2022Official
    from compressai.models.utils import conv, deconv

    # ELIC's uneven channel groups (16, 16, 32, 64, rest) scaled to M.
    g = [max(1, M // 20), max(1, M // 20), max(1, M // 10), max(1, M // 5)]
    groups = g + [M - sum(g)]
    net = Elic2022Official(N=N, M=M, groups=groups)
    net.g_a[0] = conv(1, N, kernel_size=5, stride=2)
    net.g_s[-1] = deconv(N, 1, kernel_size=5, stride=2)
    c1, c2 = ELIC_CONTEXT
    ctx = net.latent_codec["y"].channel_context
    for k in range(1, len(groups)):
        ctx[f"y{k}"] = nn.Sequential(conv(sum(groups[:k]), c1, kernel_size=5, stride=1),
                                     nn.ReLU(inplace=True), conv(c1, c2, kernel_size=5, stride=1),
                                     nn.ReLU(inplace=True),
                                     conv(c2, 2 * groups[k], kernel_size=5, stride=1))
    return net


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build an untrained network from a config dict ``{"arch", "N", "M"}`` (a hyperprior
    also takes ``"down"``, 4 by default: see :func:`_hyperprior`)."""
    arch = config["arch"]
    if arch == "hyperprior":
        return _hyperprior(int(config["N"]), int(config["M"]), int(config.get("down", 4)))
    if arch == "elic":
        return _elic(int(config["N"]), int(config["M"]))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")


class _FrozenGDN(nn.Module):
    """Inference GDN/IGDN with its reparametrised beta and gamma computed once.

    On a channels-last input the normalisation runs over blocks of ``ROWS`` pixels (the
    1x1 convolution as one matrix product per block): the temporaries stay in cache and
    only the output is a full-size tensor, where the plain form writes four full-size
    temporaries (at full resolution each is megabytes, and every fresh one costs page
    faults). The same sums as the convolution. With ``inplace`` (for an input that
    nothing else uses, see :func:`for_inference`) the output overwrites the input.
    """

    ROWS = 4096

    def __init__(self, gdn: nn.Module, inplace: bool = False):
        super().__init__()
        import torch

        self.inplace = inplace
        self.inverse = bool(gdn.inverse)
        with torch.no_grad():
            beta = gdn.beta_reparam(gdn.beta).detach().clone()
            gamma = gdn.gamma_reparam(gdn.gamma).detach().clone()
        c = beta.numel()
        self.register_buffer("beta", beta)
        self.register_buffer("gamma", gamma.reshape(c, c, 1, 1))
        self.register_buffer("gamma_t", gamma.reshape(c, c).t().contiguous())

    def forward(self, x):
        import torch
        import torch.nn.functional as F

        if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
            norm = F.conv2d(x * x, self.gamma, self.beta)
            return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))
        c = x.shape[1]
        pixels = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view: channels-last memory
        out = x if self.inplace else torch.empty_like(x)
        out_pixels = out.permute(0, 2, 3, 1).reshape(-1, c)
        rows = max(1, min(self.ROWS, pixels.shape[0]))
        sq, norm = torch.empty(rows, c, dtype=x.dtype), torch.empty(rows, c, dtype=x.dtype)
        for s in range(0, pixels.shape[0], rows):
            block = pixels[s:s + rows]
            k = block.shape[0]
            torch.mul(block, block, out=sq[:k])
            torch.addmm(self.beta, sq[:k], self.gamma_t, out=norm[:k])
            if self.inverse:
                norm[:k].sqrt_()
            else:
                norm[:k].rsqrt_()
            torch.mul(norm[:k], block, out=out_pixels[s:s + k])
        return out


def _pixels(x):
    """The (pixels, channels) matrix of a channels-last (1, C, H, W) tensor: a view."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _pointwise(conv: nn.Conv2d):
    """A 1x1 convolution's (C_in, C_out) matrix and bias, for ``addmm`` on pixel rows."""
    return conv.weight.detach().flatten(1).t().contiguous(), conv.bias.detach().clone()


class _BlockedBottleneck(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))``, then a ReLU if ``relu_out``:
    ELIC's ``ResidualBottleneckBlock`` and the residual unit of its ``AttentionBlock``.

    Runs over bands of about ``PIXELS`` pixels (whole rows): the 1x1 convolutions are
    matrix products on the band's pixel rows, the residual is the last product's starting
    value, and the half-width intermediates stay in cache (the first convolution of the
    two rows a band shares with the next, the 3x3 convolution's context, is carried over,
    not recomputed). With ``inplace`` (for an input that nothing else uses, see
    :func:`for_inference`) the output overwrites the input, band by band; else only the
    output is a full-size tensor. The same sums as the convolutions. Takes and returns
    channels-last tensors.
    """

    PIXELS = 8192

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, conv3: nn.Conv2d, relu_out: bool,
                 inplace: bool = False):
        super().__init__()
        import torch

        if conv1.kernel_size != (1, 1) or conv3.kernel_size != (1, 1) or \
                (conv2.kernel_size, conv2.padding, conv2.stride) != ((3, 3), (1, 1), (1, 1)):
            raise ValueError("_BlockedBottleneck takes 1x1, same-padded 3x3, 1x1 convolutions")
        w1, b1 = _pointwise(conv1)
        w3, b3 = _pointwise(conv3)
        self.register_buffer("w1", w1)
        self.register_buffer("b1", b1)
        self.register_buffer("w2", conv2.weight.detach().contiguous(memory_format=torch.channels_last))
        self.register_buffer("b2", conv2.bias.detach().clone())
        self.register_buffer("w3", w3)
        self.register_buffer("b3", b3)
        self.relu_out, self.inplace = relu_out, inplace

    @classmethod
    def of(cls, m: nn.Module, inplace: bool = False) -> "_BlockedBottleneck":
        """From CompressAI's ``ResidualBottleneckBlock`` (identity skip) or attention unit."""
        if hasattr(m, "conv1"):
            if not isinstance(m.skip, nn.Identity):
                raise ValueError("_BlockedBottleneck takes blocks with an identity skip")
            return cls(m.conv1, m.conv2, m.conv3, relu_out=False, inplace=inplace)
        return cls(m.conv[0], m.conv[2], m.conv[4], relu_out=True, inplace=inplace)

    def forward(self, x):
        import torch

        x = x.contiguous(memory_format=torch.channels_last)
        out = x if self.inplace else torch.empty_like(x)
        for i in range(x.shape[0]):
            self._image(x[i:i + 1], out[i:i + 1])
        return out

    def _image(self, x, out):
        import torch
        import torch.nn.functional as F

        _, c, h, w = x.shape
        mid = self.w1.shape[1]
        xp, op = _pixels(x), _pixels(out)
        rows = max(1, min(h, self.PIXELS // w))
        # Row j of t: the first convolution of image row r0 - 1 + j (zero outside the image).
        t = x.new_empty((rows + 2) * w, mid)
        t[:w].zero_()
        ready = 1  # rows of t already computed
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            n = r1 - r0
            lo, hi = r0 - 1 + ready, min(h, r1 + 1)  # image rows still to transform
            torch.addmm(self.b1, xp[lo * w: hi * w], self.w1,
                        out=t[ready * w: (ready + hi - lo) * w]).relu_()
            if hi == r1:
                t[(n + 1) * w: (n + 2) * w].zero_()  # below the image
            mid_map = t[: (n + 2) * w].view(1, n + 2, w, mid).permute(0, 3, 1, 2)
            second = _pixels(F.conv2d(mid_map, self.w2, self.b2, padding=(0, 1)).relu_())
            o = op[r0 * w: r1 * w]
            if self.inplace:  # o is the residual
                o.addmm_(second, self.w3)
            else:
                torch.addmm(xp[r0 * w: r1 * w], second, self.w3, out=o)
            o.add_(self.b3)
            if self.relu_out:
                o.relu_()
            t[: 2 * w] = t[n * w: (n + 2) * w].clone()  # rows r1 - 1 and r1: the next band's
            ready = 2


class _BlockedAttention(nn.Module):
    """ELIC's ``AttentionBlock``: ``x + a(x) * sigmoid(b(x))`` with the residual units as
    :class:`_BlockedBottleneck` and the gate (``b``'s last 1x1 convolution, the sigmoid,
    the product and the residual) computed over bands of pixels into ``a``'s output."""

    PIXELS = 4096

    def __init__(self, att: nn.Module):
        super().__init__()
        # Each branch's first unit reads x (both branches and the residual need it), the
        # others only their branch's previous output: those work in place.
        self.a = nn.Sequential(*[_BlockedBottleneck.of(u, inplace=j > 0)
                                 for j, u in enumerate(att.conv_a)])
        self.b = nn.Sequential(*[_BlockedBottleneck.of(u, inplace=j > 0)
                                 for j, u in enumerate(att.conv_b[:-1])])
        w, b = _pointwise(att.conv_b[-1])
        self.register_buffer("w", w)
        self.register_buffer("bias", b)

    def forward(self, x):
        import torch

        x = x.contiguous(memory_format=torch.channels_last)
        out = self.a(x)
        gate_in = self.b(x)
        xp, op, gp = _pixels(x), _pixels(out), _pixels(gate_in)
        rows = max(1, min(self.PIXELS, xp.shape[0]))
        gate = x.new_empty(rows, self.w.shape[1])
        for s in range(0, xp.shape[0], rows):
            k = min(rows, xp.shape[0] - s)
            g = torch.addmm(self.bias, gp[s:s + k], self.w, out=gate[:k]).sigmoid_()
            op[s:s + k].mul_(g).add_(xp[s:s + k])
        return out


class _SubPixelDeconv(nn.Module):
    """A stride-2, 5x5 ``ConvTranspose2d`` (padding 2, output padding 1) as a 3x3
    convolution to 4 x C_out phase channels and a pixel shuffle: the same sums.

    Output pixel (2i + a, 2j + b) takes input (i + di, j + dj) through tap
    (a + 2 - 2 di, b + 2 - 2 dj) of the transposed kernel, for di, dj in {-1, 0, 1}.
    oneDNN's transposed convolution is slow for few output channels (the codec's last
    layer, 48 -> 1), the convolution is not.

    Example:
        >>> import torch
        >>> from compressai.models.utils import deconv
        >>> d = deconv(8, 1)
        >>> x = torch.randn(1, 8, 5, 7)
        >>> bool(torch.allclose(_SubPixelDeconv(d)(x), d(x), atol=1e-5))
        True
    """

    @staticmethod
    def fits(m: nn.Module) -> bool:
        """Whether ``m`` is a transposed convolution of the shape this class rewrites."""
        return isinstance(m, nn.ConvTranspose2d) and (
            m.kernel_size, m.stride, m.padding, m.output_padding, m.groups, m.dilation
        ) == ((5, 5), (2, 2), (2, 2), (1, 1), 1, (1, 1))

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        import torch

        if not self.fits(deconv):
            raise ValueError("_SubPixelDeconv takes a 5x5, stride-2 deconv(padding 2, output padding 1)")
        w = deconv.weight.detach()  # (C_in, C_out, 5, 5)
        cin, cout = w.shape[:2]
        phases = torch.zeros(cout, 2, 2, cin, 3, 3, dtype=w.dtype)
        for a in range(2):
            for di in (-1, 0, 1):
                k = a + 2 - 2 * di
                if not 0 <= k < 5:
                    continue
                for b in range(2):
                    for dj in (-1, 0, 1):
                        m = b + 2 - 2 * dj
                        if 0 <= m < 5:
                            phases[:, a, b, :, di + 1, dj + 1] = w[:, :, k, m].t()
        self.register_buffer("weight", phases.reshape(4 * cout, cin, 3, 3))
        bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(cout)
        self.register_buffer("bias", bias.repeat_interleave(4))

    def forward(self, x):
        import torch.nn.functional as F

        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=1), 2)


def for_inference(seq: nn.Sequential) -> nn.Sequential:
    """A copy of ``seq`` for fast CPU inference: GDNs frozen and computed in blocks, ELIC's
    residual and attention blocks computed in bands of rows, the last (few-channel)
    transposed convolution in sub-pixel form, channels-last weights.

    Same maths as the original (float rounding aside); feed it channels-last tensors.
    """
    import copy

    import torch
    from compressai.layers import GDN, AttentionBlock
    from compressai.models.sensetime import ResidualBottleneckBlock

    seq = copy.deepcopy(seq)
    for i, m in enumerate(seq):
        # Whether m's input is the previous layer's fresh output, used by m alone (not the
        # caller's tensor, not a view of it): then m may overwrite it.
        owned = i > 0 and isinstance(seq[i - 1], (nn.Conv2d, nn.ConvTranspose2d, _FrozenGDN,
                                                  _BlockedBottleneck, _BlockedAttention))
        if isinstance(m, GDN):
            seq[i] = _FrozenGDN(m, inplace=owned)
        elif isinstance(m, ResidualBottleneckBlock) and isinstance(m.skip, nn.Identity):
            seq[i] = _BlockedBottleneck.of(m, inplace=owned)
        elif isinstance(m, AttentionBlock):
            seq[i] = _BlockedAttention(m)
        elif _SubPixelDeconv.fits(m) and m.out_channels <= 4:  # the last synthesis layer
            seq[i] = _SubPixelDeconv(m)
    return seq.eval().to(memory_format=torch.channels_last)
