"""Training pipeline of the learned codecs: planes, transforms, crops, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featcodec.codecs.learned.data import (CropSampler, PlaneSet, TapTransform, build_planes,
                                    fit_lloyd_max, to_plane)
from featcodec.codecs.learned.train import train


def test_to_plane_mosaic_places_each_channel_as_a_tile():
    x = np.arange(6 * 3 * 4, dtype=np.float32).reshape(1, 6, 3, 4)
    p = to_plane(x, "cnn")  # 6 channels -> 2 x 3 tiles of 3 x 4
    assert p.shape == (6, 12)
    for c in range(6):
        a, b = divmod(c, 3)
        np.testing.assert_array_equal(p[3 * a:3 * a + 3, 4 * b:4 * b + 4], x[0, c])
    assert to_plane(np.zeros((1, 7, 5), np.float32), "llm").shape == (7, 5)


def test_lloyd_max_levels_are_centroids_of_their_cells():
    v = np.random.default_rng(0).standard_t(3, 20000)
    lv = fit_lloyd_max(v, levels=16, iters=200).astype(np.float64)
    t = 0.5 * (lv[1:] + lv[:-1])
    cell = np.searchsorted(t, v, side="right")
    for k in range(lv.size):
        assert abs(v[cell == k].mean() - lv[k]) < 1e-3 * max(1.0, abs(lv[k]))


def test_dtufc_indices_are_nearest_levels_and_caufc_is_clipped_minmax():
    rng = np.random.default_rng(1)
    v = rng.standard_t(3, 5000).astype(np.float32)
    tr = TapTransform.fit("dtufc", v)
    x = rng.standard_t(3, 1000).astype(np.float32)
    brute = np.abs(x[:, None].astype(np.float64) - tr.levels[None, :]).argmin(1)
    np.testing.assert_array_equal(tr.indices(x), brute)
    np.testing.assert_allclose(tr.from_unit(tr.to_unit(x)), tr.levels[brute])
    cb = TapTransform.fit("caufc", v)
    u = cb.to_unit(x)
    assert u.min() >= 0 and u.max() <= 1
    np.testing.assert_allclose(cb.from_unit(u), np.clip(x, cb.lo, cb.hi), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    man = []
    shapes = {"llm": (1, 40, 96), "cnn": (1, 12, 8, 8)}
    for fam, sh in shapes.items():
        for split, n in (("train", 3), ("test", 1)):
            (root / fam / split).mkdir(parents=True)
            for i in range(n):
                p = f"{fam}/{split}/t__{split}{i}.npy"
                np.save(root / p, rng.standard_t(3, sh).astype(np.float32))
                man.append({"path": p, "family": fam, "model": "m", "tap": "t",
                            "split": split, "input_id": f"{split}{i}", "shape": list(sh)})
    (root / "manifest.json").write_text(json.dumps(man))
    return root


def test_build_planes_fits_on_train_and_reuses_for_test(corpus):
    ps = build_planes(corpus, "dtufc")
    assert sorted(ps.planes) == ["cnn", "llm"] and len(ps.planes["llm"]) == 3
    assert ps.planes["cnn"][0].shape == (24, 32) and ps.planes["llm"][0].dtype == np.uint8
    te = build_planes(corpus, "dtufc", split="test", transforms=ps.transforms)
    assert len(te.planes["llm"]) == 1
    cs = CropSampler(ps, crop=32, seed=3)
    b = cs.batch(4)
    assert b.shape == (4, 1, 32, 32) and b.dtype == np.float32
    assert 0 <= b.min() and b.max() <= 1


def test_crop_sampler_edge_replicates_small_planes():
    p = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    s = CropSampler(PlaneSet("dtufc", {"x": [p]}), crop=8, seed=0)
    c = s.one()
    vals = set(np.round(c.ravel() * 255).astype(int))
    assert vals <= set(p.ravel().tolist())  # no zeros invented by padding


def _run(corpus, out, steps):
    return train(str(corpus), str(out), lmbda=0.01, steps=steps, N=8, M=8, batch=2,
                 crop=64, save_every=1, log_every=1, progress=False)


def test_resume_continues_exactly_like_an_uninterrupted_run(corpus, tmp_path):
    straight = _run(corpus, tmp_path / "a", 3)
    _run(corpus, tmp_path / "b", 2)
    resumed = _run(corpus, tmp_path / "b", 3)
    assert resumed == pytest.approx(straight, rel=1e-6)
    log = [json.loads(l) for l in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    log = [r for r in log if "loss" in r]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in log)
    ck = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=False)
    assert ck["step"] == 3 and ck["config"]["lmbda"] == 0.01


def test_export_int8_and_float16_load_as_the_trained_elic(corpus, tmp_path):
    """A tiny ELIC trained two steps, exported as float16 and as int8 (+ per-slice scale):
    both load to the trained weights within their storage precision, the checkerboard
    masks come from the architecture (not stored), and both code a plane end to end."""
    from featcodec.codecs.learned.codec import LearnedModel
    from featcodec.codecs.learned.export import export_checkpoint

    train(str(corpus), str(tmp_path / "run"), arch="elic", lmbda=0.01, steps=2, N=8, M=20,
          batch=2, crop=64, save_every=1, log_every=1, progress=False)
    ck = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)["model"]
    sizes = {}
    for fmt, tol in (("float16", 1e-3), ("int8", 1.0 / 127)):
        e = export_checkpoint(tmp_path / "run" / "ckpt.pt", tmp_path / fmt, "elic", 1, fmt)
        f = tmp_path / fmt / e["file"]
        sizes[fmt] = f.stat().st_size
        m = LearnedModel(f)
        state = m.net.state_dict()
        for k, w in ck.items():
            if w.ndim == 4 and k.endswith(".weight") and "gaussian" not in k:
                mask = state.get(k[:-len("weight")] + "mask", torch.ones(()))
                ref = w * mask
                err = (state[k] - ref).abs().max().item()
                assert err <= tol * max(ref.abs().max().item(), 1e-6), (fmt, k)
        x = torch.rand(1, 1, 48, 80)
        strings = m.compress(x)
        assert len(strings) == m.n_strings == 1 + 2 * len(m.net.groups)
        assert m.decompress(strings, (48, 80)).shape == (1, 1, 48, 80)
    n_conv = sum(w.numel() for k, w in ck.items() if w.ndim == 4 and k.endswith(".weight"))
    assert sizes["float16"] - sizes["int8"] > 0.9 * n_conv  # ~1 byte saved per conv weight
    again = export_checkpoint(tmp_path / "run" / "ckpt.pt", tmp_path / "again", "elic", 1, "int8")
    assert (tmp_path / "again" / again["file"]).read_bytes() == f.read_bytes()  # reproducible
