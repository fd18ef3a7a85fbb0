"""TAEF2: the tiny autoencoder of the FLUX.2 latent space (the "latent" family).

The weights are two state dicts of ``nn.Sequential`` models (``taef2_encoder.pth``,
``taef2_decoder.pth``, MIT licence, in ``shared/models/taef2`` beside the repository). This
module rebuilds both networks so the state dicts load with ``strict=True``.

Encoder: RGB in [0, 1], shape (1, 3, H, W) -> latent (1, 32, H/8, W/8).
Decoder: latent -> RGB, approximately in [0, 1].

Example (needs the weight files):
    >>> m = TAEF2.load()                                    # doctest: +SKIP
    >>> feats = m.extract(0)                                # doctest: +SKIP
    >>> feats["latent256"].shape                            # doctest: +SKIP
    (1, 32, 32, 32)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .inputs import image_array
from .base import FeatureModel, ModelNotAvailable

__all__ = ["TAEF2", "taef2_dir", "build_encoder", "build_decoder"]


def taef2_dir() -> Path:
    """Folder holding ``taef2_encoder.pth`` / ``taef2_decoder.pth``.

    ``$FEATCODEC_TAEF2_DIR`` if set, else ``shared/models/taef2`` next to the repository
    (``../shared`` from the repository root) or under ``/work/shared``.
    """
    env = os.environ.get("FEATCODEC_TAEF2_DIR")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[2]
    candidates += [repo.parent / "shared/models/taef2", Path("/work/shared/models/taef2")]
    for c in candidates:
        if (c / "taef2_encoder.pth").is_file() and (c / "taef2_decoder.pth").is_file():
            return c
    raise ModelNotAvailable(
        "TAEF2 weights not found: put taef2_encoder.pth and taef2_decoder.pth in "
        "../shared/models/taef2 or set FEATCODEC_TAEF2_DIR")


def _conv(n_in: int, n_out: int, **kw) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kw)


class _Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class _Block(nn.Module):
    """relu(conv-relu-conv-relu-conv(x) + x), optionally after x += pool(x)."""

    def __init__(self, n: int = 64, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n, n), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, n))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = (nn.Sequential(nn.Conv2d(n, 4 * n, 1, bias=False), nn.GroupNorm(4, 4 * n),
                                   nn.ReLU(), nn.Conv2d(4 * n, n, 1, bias=False))
                     if pool else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def build_encoder(latent_channels: int = 32) -> nn.Sequential:
    """The TAEF2 encoder layout (untrained)."""
    return nn.Sequential(
        _conv(3, 64), _Block(),
        _conv(64, 64, stride=2, bias=False), _Block(), _Block(), _Block(),
        _conv(64, 64, stride=2, bias=False), _Block(), _Block(), _Block(),
        _conv(64, 64, stride=2, bias=False),
        _Block(pool=True), _Block(pool=True), _Block(pool=True),
        _conv(64, latent_channels),
    )


def build_decoder(latent_channels: int = 32) -> nn.Sequential:
    """The TAEF2 decoder layout (untrained)."""
    up = lambda: nn.Upsample(scale_factor=2)  # noqa: E731  (nearest)
    return nn.Sequential(
        _Clamp(), _conv(latent_channels, 64), nn.ReLU(),
        _Block(pool=True), _Block(pool=True), _Block(pool=True),
        up(), _conv(64, 64, bias=False), _Block(), _Block(), _Block(),
        up(), _conv(64, 64, bias=False), _Block(), _Block(), _Block(),
        up(), _conv(64, 64, bias=False), _Block(),
        _conv(64, 3),
    )


class TAEF2(FeatureModel):
    """TAEF2 encoder latents at 256x256 and 512x512; the rest of the model is the decoder.

    Taps: ``latent256`` (1, 32, 32, 32) and ``latent512`` (1, 32, 64, 64).
    """

    family = "latent"
    model = "taef2"
    taps = ("latent256", "latent512")
    #: Taps costly enough that the corpus keeps fewer train inputs of them.
    heavy_taps = ("latent512",)
    sizes = {"latent256": 256, "latent512": 512}

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential) -> None:
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = decoder.eval().requires_grad_(False)

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None) -> "TAEF2":
        d = Path(folder) if folder is not None else taef2_dir()
        enc, dec = build_encoder(), build_decoder()
        for net, name in ((enc, "taef2_encoder.pth"), (dec, "taef2_decoder.pth")):
            sd = torch.load(d / name, map_location="cpu", weights_only=True)
            net.load_state_dict(sd, strict=True)
        return cls(enc, dec)

    @staticmethod
    def image_tensor(input_id: int, size: int) -> torch.Tensor:
        """Rendered image ``input_id`` as (1, 3, size, size) float32 in [0, 1]."""
        return torch.from_numpy(image_array(input_id, size)).permute(2, 0, 1)[None].contiguous()

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> latent (N, 32, H/8, W/8)."""
        return self.encoder(image)

    @torch.no_grad()
    def extract(self, input_id: int, taps: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        out = {}
        for tap in taps or self.taps:
            img = self.image_tensor(input_id, self.sizes[tap])
            out[tap] = self.encode(img).numpy().astype(np.float32, copy=False)
        return out

    @torch.no_grad()
    def rest(self, tap: str, feature: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decode a latent to an RGB image (1, 3, H, W), about [0, 1]."""
        self._check_tap(tap)
        return self.decoder(torch.as_tensor(np.asarray(feature, dtype=np.float32)))

    @torch.no_grad()
    def full(self, input_id: int, tap: str) -> torch.Tensor:
        """Encoder then decoder on image ``input_id`` at the tap's resolution."""
        self._check_tap(tap)
        return self.decoder(self.encode(self.image_tensor(input_id, self.sizes[tap])))


