"""Reduced-width, one-channel CompressAI architectures for feature planes.

The papers use CompressAI ``ScaleHyperprior`` (N=128, M=192) with a one-channel first and
last layer. Training that on two CPU cores takes days; the same architecture at N=M=64
learns the same kind of prior in hours.

Example:
    >>> from featcodec.learned.models import build_model
    >>> net = build_model({"arch": "hyperprior", "N": 64, "M": 64})
    >>> net.g_a[0].in_channels, net.g_s[-1].out_channels
    (1, 1)
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

__all__ = ["build_model", "ARCHS"]

ARCHS = ("hyperprior", "elic")


def _hyperprior(N: int, M: int) -> nn.Module:
    from compressai.models import ScaleHyperprior
    from compressai.models.utils import conv, deconv

    net = ScaleHyperprior(N, M)
    net.g_a[0] = conv(1, N)
    net.g_s[-1] = deconv(N, 1)
    return net


def _elic(N: int, M: int) -> nn.Module:
    from compressai.models import Elic2022Official
    from compressai.models.utils import conv, deconv

    # ELIC's uneven channel groups (16, 16, 32, 64, rest) scaled to M.
    g = [max(1, M // 20), max(1, M // 20), max(1, M // 10), max(1, M // 5)]
    groups = g + [M - sum(g)]
    net = Elic2022Official(N=N, M=M, groups=groups)
    net.g_a[0] = conv(1, N, kernel_size=5, stride=2)
    net.g_s[-1] = deconv(N, 1, kernel_size=5, stride=2)
    return net


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build an untrained network from a config dict ``{"arch", "N", "M"}``."""
    arch = config["arch"]
    if arch == "hyperprior":
        return _hyperprior(int(config["N"]), int(config["M"]))
    if arch == "elic":
        return _elic(int(config["N"]), int(config["M"]))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")
