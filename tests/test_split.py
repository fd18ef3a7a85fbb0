"""featcodec.integrations.split: cutting models with torch.fx, and split inference with featcodec
between the halves, on TAEF2 (and MobileNetV2 where its weights are installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import featcodec
from featcodec.integrations.split import CompressAt, SplitModel, cut


class Residual(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n, 3, padding=1), nn.ReLU(), nn.Conv2d(n, n, 3, padding=1))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class Net(nn.Module):
    """Residual blocks, a functional op, a parameter read directly, several outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(Residual(8), Residual(8), Residual(8))
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        h = self.blocks(torch.relu(self.stem(x)))
        z = h.mean(dim=(2, 3)) * self.scale
        return self.head(z), z


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        return self.b(self.a(x)) + x  # x crosses any cut


class Dynamic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return self.a(x)
        return x


@pytest.mark.parametrize("at", ["stem", "blocks.0", "blocks.1", "blocks", "blocks.2.body"])
def test_cut_reproduces_the_model_exactly(at):
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 3, 12, 12)
    if at == "blocks.2.body":
        with pytest.raises(featcodec.InputError, match="crossing"):
            cut(net, at)  # the residual's identity path goes around the body
        return
    head, tail = cut(net, at)
    with torch.no_grad():
        act = head(x)
        got = tail(act)
        want = net(x)
    assert isinstance(act, torch.Tensor) and act.shape[0] == 2
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    # the halves share the model's parameters rather than copying them
    assert head.get_submodule("stem").weight is net.stem.weight
    assert tail.get_parameter("scale") is net.scale


def test_cut_errors_say_what_to_do():
    net = Net()
    with pytest.raises(featcodec.InputError, match="Did you mean blocks"):
        cut(net, "block")
    with pytest.raises(featcodec.InputError, match="crossing"):
        cut(TwoInputs(), "a")
    with pytest.raises(featcodec.InputError, match="cannot trace"):
        cut(Dynamic(), "a")
    shared = nn.Linear(4, 4)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(featcodec.InputError, match="called 2 times"):
        cut(twice, "0")
    with pytest.raises(featcodec.InputError, match="nn.Module"):
        cut(lambda x: x, "a")  # type: ignore[arg-type]


def test_split_model_round_trip_on_a_small_net():
    torch.manual_seed(0)
    net = Net().eval()
    xs = [torch.randn(1, 3, 16, 16) for _ in range(4)]
    split = SplitModel(net, "blocks", bits=8)
    t = split.calibrate(xs[:2])
    assert t.bits == 8
    for x in xs[2:]:
        blob = split.edge(x)
        # the bytes are an ordinary featcodec stream of the cut activation
        h = featcodec.header(blob)
        assert h["shape"] == [1, 8, 16, 16] and h["transform"]["id"] == t.id
        logits, _ = split.cloud(blob)
        ref, _ = net(x)
        assert torch.allclose(logits, ref, atol=0.05 * float(ref.abs().max().detach()))
    assert split.stats.requests == 2
    assert split.stats.raw_bytes == 2 * 8 * 16 * 16 * 4
    assert 0 < split.stats.bytes_moved < split.stats.raw_bytes


class TupleBlock(nn.Module):
    """Returns (hidden, extra) like a transformer block."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.lin(x), x.sum()


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = TupleBlock()
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h, extra = self.block(x)
        if extra > 1e9:  # data-dependent branch: not traceable by torch.fx
            h = h * 0
        return self.out(h)


def test_compress_at_agrees_with_the_traced_split():
    torch.manual_seed(0)
    net = Net().eval()
    xs = [torch.randn(1, 3, 16, 16) for _ in range(3)]
    with torch.no_grad():
        exact = net(xs[1])[0]
    split = SplitModel(net, "blocks", bits=5)
    t = split.calibrate(xs[:1])
    with torch.no_grad():
        want = [split(x)[0] for x in xs[1:]]
    with CompressAt(net, "blocks", transform=t, embed_transform=False) as hook:
        with torch.no_grad():
            got = [net(x)[0] for x in xs[1:]]
    # the hook and the fx cut code the same activation with the same transform
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert hook.stats.bytes_moved == split.stats.bytes_moved
    assert not torch.equal(got[0], exact)
    with torch.no_grad():  # the hook is gone: the model is exact again
        assert torch.equal(net(xs[1])[0], exact)


def test_compress_at_on_an_untraceable_model_with_tuple_outputs():
    torch.manual_seed(0)
    net = TupleNet().eval()
    with pytest.raises(featcodec.InputError, match="cannot trace"):
        cut(net, "block")
    xs = [torch.randn(4, 8) for _ in range(3)]
    hook = CompressAt(net, "block", bits=8)
    t = hook.calibrate(lambda: [net(x) for x in xs[:2]])
    assert hook.stats.requests == 0 and t.bits == 8
    with torch.no_grad():
        y = net(xs[2])
    hook.remove()
    with torch.no_grad():
        ref = net(xs[2])
    assert hook.stats.requests == 1 and hook.stats.raw_bytes == 4 * 8 * 4
    assert not torch.equal(y, ref) and torch.allclose(y, ref, atol=0.05)
    with pytest.raises(featcodec.InputError, match="Did you mean"):
        CompressAt(net, "blok")
    with CompressAt(net, "block", bits=4) as uni:
        assert uni.calibrate(lambda: net(xs[0]), fit=featcodec.fit_uniform).kind == "uniform"
    assert SplitModel(Net(), "blocks").calibrate([torch.randn(1, 3, 8, 8)], fit=featcodec.fit_uniform,
                                                 bits=3).kind == "uniform"
    # per-channel transforms: the activations keep their shape for the fit
    per_channel = SplitModel(Net().eval(), "blocks", bits=4)
    t = per_channel.calibrate([torch.randn(1, 3, 8, 8)], channel_axis=1)
    assert np.asarray(t.levels).shape == (8, 16)
    blob = per_channel.edge(torch.randn(1, 3, 8, 8))
    assert featcodec.header(blob)["transform"]["channel_axis"] == 1


def _taef2():
    try:
        from featcodec.features.latent import TAEF2

        return TAEF2.load()
    except Exception as e:  # the weights live beside the repository, not in the package
        pytest.skip(f"TAEF2 not available: {e}")


def test_taef2_split_at_the_latent():
    m = _taef2()
    model = nn.Sequential(m.encoder, m.decoder).eval()
    calib, img = m.image_tensor(0, 128), m.image_tensor(1, 128)
    split = SplitModel(model, "0", bits=6)
    split.calibrate([calib])
    with torch.no_grad():
        y = split(img)
        ref = model(img)  # the uncut model
    psnr = 10 * np.log10(1.0 / float(((y - ref) ** 2).mean()))  # images are in [0, 1]
    s = split.stats
    assert s.raw_bytes == 32 * 16 * 16 * 4
    assert s.ratio > 4.5  # 6-bit codes of 32-bit floats, the transform sent by id
    assert psnr > 30
    print(f"\nTAEF2 split: {s.bytes_per_request:.0f} bytes/request, {s.ratio:.2f}x smaller, PSNR vs uncut {psnr:.1f}")


def test_mobilenet_v2_split_agrees_with_uncut():
    try:
        from featcodec.features.cnn import MobileNetV2, imagenet_tensor

        model = MobileNetV2.load().net
    except Exception as e:
        pytest.skip(f"MobileNetV2 weights or torchvision not installed: {e}")
    imgs = [imagenet_tensor(i, 224) for i in range(3)]
    split = SplitModel(model, "features.13", bits=6)
    split.calibrate(imgs[:1])
    agree = 0
    with torch.no_grad():
        for x in imgs[1:]:
            agree += int(split(x).argmax() == model(x).argmax())
    assert agree == len(imgs) - 1
    assert split.stats.ratio > 4.5


def test_docstring_examples_run():
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module("featcodec.integrations.split"), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
