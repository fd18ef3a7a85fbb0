"""Training pipeline of the learned codecs: planes, transforms, crops, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featcodec.codecs.learned.data import (CropSampler, PlaneSet, TapTransform, build_planes,
                                    fit_lloyd_max, to_plane)
from featcodec.codecs.learned.train import FEATURE_WEIGHT, feature_rd_loss, rd_loss, refit_density, train


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


def test_feature_distortion_is_the_mse_after_a_piecewise_linear_inverse():
    """feature_rd_loss against numpy: each output position interpolated between its two
    neighbouring levels, each input index looked up, the squared differences averaged."""
    rng = np.random.default_rng(4)
    levels = np.sort(rng.standard_t(3, (2, 256)), axis=1).astype(np.float32)
    x = rng.integers(0, 256, (2, 1, 6, 5)) / 255.0
    x_hat = np.clip(x + rng.normal(0, 0.02, x.shape), -0.1, 1.1)  # some beyond [0, 1]
    out = {"x_hat": torch.tensor(x_hat, dtype=torch.float32, requires_grad=True),
           "likelihoods": {"y": torch.full((2, 10), 0.5)}}
    got = feature_rd_loss(out, torch.tensor(x, dtype=torch.float32), torch.from_numpy(levels), 0.01)
    pos = np.clip(x_hat.astype(np.float32).astype(np.float64) * 255, 0, 255)
    want = []
    for n in range(2):
        y_hat = np.interp(pos[n], np.arange(256), levels[n].astype(np.float64))
        y = levels[n][np.rint(x[n] * 255).astype(int)]
        want.append((y_hat - y) ** 2)
    assert float(got["mse"].detach()) == pytest.approx(np.mean(want), rel=1e-4)
    assert float(got["bpfp"]) == pytest.approx(20 / 60)  # 20 likelihoods of 1/2 over 2*6*5 values
    loss, mse, bpfp = (float(got[k].detach()) for k in ("loss", "mse", "bpfp"))
    assert loss == pytest.approx(0.01 * FEATURE_WEIGHT * mse + bpfp, rel=1e-6)
    got["loss"].backward()
    g = out["x_hat"].grad
    assert torch.isfinite(g).all() and (g.abs() > 0).any()  # the distortion has a gradient
    exact = {"x_hat": torch.tensor(x, dtype=torch.float32), "likelihoods": out["likelihoods"]}
    assert float(feature_rd_loss(exact, exact["x_hat"], torch.from_numpy(levels), 0.01)["mse"]) == 0.0


def test_feature_and_index_distortion_agree_for_evenly_spread_levels():
    """FEATURE_WEIGHT: with levels spread evenly over +-2 standard deviations the two losses
    charge an index error alike."""
    levels = torch.linspace(-2, 2, 256).repeat(3, 1)
    x = torch.randint(0, 256, (3, 1, 8, 8)) / 255.0
    out = {"x_hat": (x + 3 / 255).clamp(0, 1), "likelihoods": {"y": torch.ones(3, 4)}}
    f, i = feature_rd_loss(out, x, levels, 0.01), rd_loss(out, x, 0.01)
    assert float(f["loss"]) == pytest.approx(float(i["loss"]), rel=0.02)


def test_sampler_gives_each_crop_its_normalised_levels(corpus):
    ps = build_planes(corpus, "dtufc")
    for fam, planes in ps.planes.items():
        for plane, lv in zip(planes, ps.levels[fam]):
            assert lv.shape == (256,) and float(np.std(lv[plane].astype(np.float64))) == pytest.approx(1.0, rel=1e-5)
    a, b = CropSampler(ps, crop=16, seed=5), CropSampler(ps, crop=16, seed=5)
    crops, levels = a.batch_with_levels(6)
    assert np.array_equal(crops, b.batch(6))  # the same draws as batch()
    every = [q for qs in ps.levels.values() for q in qs]
    assert levels.shape == (6, 256) and all(any(np.array_equal(l, q) for q in every) for l in levels)
    with pytest.raises(ValueError, match="DT-UFC"):
        CropSampler(build_planes(corpus, "caufc"), crop=16).batch_with_levels(2)


def test_training_with_feature_distortion_runs_and_is_recorded(corpus, tmp_path):
    last = train(str(corpus), str(tmp_path / "f"), lmbda=0.01, steps=2, N=8, M=8, batch=2, crop=64,
                 save_every=1, log_every=1, progress=False, distortion="feature")
    assert np.isfinite(last["loss"]) and last["mse"] > 0
    assert torch.load(tmp_path / "f" / "ckpt.pt", weights_only=False)["config"]["distortion"] == "feature"
    with pytest.raises(ValueError, match="distortion"):
        train(str(corpus), str(tmp_path / "g"), steps=1, input="caufc", distortion="feature", progress=False)


def test_a_network_loaded_from_the_shipped_files_gets_its_hyper_latent_density_back(corpus):
    """The shipped files hold the hyper-latents' tables, not their density: loaded for
    fine-tuning, a network prices its hyper-latents as a fresh one would, until
    refit_density fits the density (and the quantiles its tables are cut at) to them."""
    from compressai.entropy_models import EntropyBottleneck

    from featcodec.codecs.learned import codec as lc
    from featcodec.codecs.learned.models import build_model

    shipped = lc.load_model("hyperprior", 3)
    net = build_model(shipped.config)
    net.load_state_dict(shipped.net.state_dict())
    sampler = CropSampler(build_planes(corpus, "dtufc"), crop=128, seed=1)
    before, after = refit_density(net, sampler, crops=32, steps=300)
    assert before > 4 and after < 0.25 * before
    (eb,) = [m for m in net.modules() if isinstance(m, EntropyBottleneck)]
    zs = []
    hook = eb.register_forward_pre_hook(lambda _m, args: zs.append(args[0].detach()))
    with torch.no_grad():
        net.eval()(torch.from_numpy(sampler.batch(8)))
    hook.remove()
    z = zs[0].transpose(0, 1).reshape(eb.quantiles.shape[0], -1)  # channel x values
    lo, hi = eb.quantiles[:, 0, :1].detach(), eb.quantiles[:, 0, 2:].detach()
    assert float(((z >= lo - 0.5) & (z <= hi + 0.5)).float().mean()) > 0.99  # the tables span them


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


def test_hyperprior_with_8x_downsampling_keeps_twice_the_latent_resolution():
    from featcodec.codecs.learned.models import build_model

    x = torch.rand(1, 1, 64, 128)
    for down, side in ((4, (4, 8)), (3, (8, 16))):
        out = build_model({"arch": "hyperprior", "N": 8, "M": 16, "down": down})(x)
        assert out["x_hat"].shape == x.shape
        assert tuple(out["likelihoods"]["y"].shape[2:]) == side
    with pytest.raises(ValueError, match="down"):
        build_model({"arch": "hyperprior", "N": 8, "M": 16, "down": 2})
