"""Feature corpus: deterministic inputs, splits/manifest, and the real models' split inference.

Model tests run only where the model files are installed (tools/install_models.sh); CI
installs `.[test]` only, so there they skip, except TAEF2 whose weights sit in
../shared/models/taef2 beside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")

from featcodec.features import inputs  # noqa: E402
from featcodec.features.base import ModelNotAvailable  # noqa: E402
from featcodec.features.extract import (  # noqa: E402
    build_manifest, extract_family, feature_path, load_manifest, split_ids, split_of)
from featcodec.features.stats import tensor_stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "features"


def _load_or_skip(loader):
    try:
        return loader()
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))


# ----------------------------------------------------------------------------- inputs


def test_images_are_deterministic_and_distinct():
    a = inputs.render_image(11, 64)
    inputs._canvas.cache_clear()
    b = inputs.render_image(11, 64)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    c = np.asarray(inputs.render_image(12, 64), dtype=np.int16)
    assert np.abs(c - np.asarray(a, dtype=np.int16)).mean() > 5


def test_image_sizes_show_one_scene():
    small = inputs.image_array(3, 64)
    big = inputs.image_array(3, 256)
    assert small.dtype == np.float32 and 0.0 <= small.min() and small.max() <= 1.0
    # the 256 image averaged down 4x4 is close to the 64 image (same scene, not a new draw)
    pooled = big.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(pooled - small).mean() < 0.05


def test_images_have_natural_variety():
    arrs = [inputs.image_array(i, 64) for i in range(12)]
    stds = [a.std() for a in arrs]
    means = [a.mean() for a in arrs]
    assert min(stds) > 0.01  # no flat images
    assert max(means) - min(means) > 0.15


def test_texts_are_deterministic_and_varied():
    assert inputs.make_text(5) == inputs.make_text(5)
    texts = [inputs.make_text(i) for i in range(40)]
    assert len(set(texts)) == 40
    words = set(" ".join(texts).lower().split())
    assert len(words) > 400
    lengths = [len(t.split()) for t in texts]
    assert 40 <= min(lengths) and max(lengths) <= 400


def test_negative_input_id_rejected():
    with pytest.raises(ValueError):
        inputs.make_text(-1)


# ----------------------------------------------------------------------------- layout


def test_splits_are_disjoint_and_stable():
    small, big = split_ids(3, 2, 2), split_ids(10, 5, 4)
    for s in ("train", "val", "test"):
        assert set(small[s]) <= set(big[s])  # growing a split never moves an input
        assert all(split_of(i) == s for i in big[s])
    all_ids = sum(big.values(), [])
    assert len(all_ids) == len(set(all_ids))
    with pytest.raises(ValueError):
        split_ids(-1, 0, 0)


def test_feature_path_layout(tmp_path):
    p = feature_path(tmp_path, "vit", "layer9", 200007)
    assert p == tmp_path / "vit" / "test" / "layer9__200007.npy"


# ----------------------------------------------------------------------------- stats


def test_tensor_stats_against_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    parts = [rng.standard_t(3, size=(7, 13)).astype(np.float32) for _ in range(3)]
    parts[1][0, :5] = 0
    s = tensor_stats(parts)
    flat = np.concatenate([p.ravel() for p in parts]).astype(np.float64)
    assert s["n"] == flat.size
    assert s["std"] == pytest.approx(flat.std(), rel=1e-9)
    assert s["kurtosis"] == pytest.approx(scipy_stats.kurtosis(flat, fisher=False), rel=1e-9)
    assert s["max_abs"] == pytest.approx(np.abs(flat).max())
    assert s["zeros"] == pytest.approx(np.mean(flat == 0))


# ----------------------------------------------------------------------------- fixtures


def test_fixtures_are_real_float32_and_small():
    files = sorted(FIXTURES.glob("*.npy"))
    assert {f.name.split("__")[0] for f in files} == {"llm", "vit", "cnn", "latent"}
    assert sum(f.stat().st_size for f in files) <= 5 * 2**20
    for f in files:
        a = np.load(f)
        assert a.dtype == np.float32 and np.isfinite(a).all() and a.std() > 0, f.name
    hidden = np.load(FIXTURES / "llm__hidden15.npy")
    assert hidden.shape[0] == 1 and hidden.shape[2] == 576
    assert np.abs(hidden[0, 0]).max() > 1000  # the massive activation of token 0
    relu6 = np.load(FIXTURES / "cnn__features18.npy")
    assert relu6.min() == 0.0 and relu6.max() <= 6.0


def test_demo_data_loads():
    from featcodec.datasets import demo_info, load_demo

    demo = load_demo()
    info = demo_info()
    assert set(demo) == set(info) and len(demo) >= 4
    for name, arr in demo.items():
        assert arr.dtype == np.float32 and list(arr.shape) == info[name]["shape"], name
        assert np.array_equal(arr, np.load(FIXTURES / f"{name.replace('/', '__')}.npy")), name


# ----------------------------------------------------------------------------- models


def _taef2_folder() -> Path:
    return REPO.parent / "shared" / "models" / "taef2"


@pytest.fixture(scope="module")
def taef2():
    from featcodec.features.latent import TAEF2, taef2_dir

    folder = _taef2_folder()
    if not (folder / "taef2_encoder.pth").is_file():
        folder = _load_or_skip(taef2_dir)
    return TAEF2.load(folder)


def test_taef2_rest_reproduces_full_and_reconstructs(taef2):
    torch.set_num_threads(2)
    feats = taef2.extract(200000, ("latent256",))
    z = feats["latent256"]
    assert z.shape == (1, 32, 32, 32) and z.dtype == np.float32
    out = taef2.rest("latent256", z)
    ref = taef2.full(200000, "latent256")
    assert torch.equal(out, ref)
    img = taef2.image_tensor(200000, 256)
    mse = float(((out.clamp(0, 1) - img) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 25  # a real autoencoder, loaded correctly
    with pytest.raises(ValueError):
        taef2.rest("latent999", z)


def test_extraction_is_resumable_and_manifest_matches(taef2, tmp_path):
    class Small:  # the real TAEF2, restricted to its cheap tap
        family, model, taps = taef2.family, taef2.model, ("latent256",)
        extract = staticmethod(taef2.extract)

    ids = [0, 200000]
    assert extract_family(Small, tmp_path, ids, progress=False) == 2
    assert extract_family(Small, tmp_path, ids, progress=False) == 0  # resumed: nothing to do
    entries = build_manifest(tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == entries
    assert {(e["split"], e["input_id"]) for e in entries} == {("train", "000000"),
                                                             ("test", "200000")}
    test = load_manifest(tmp_path, split="test")
    assert len(test) == 1 and test[0]["shape"] == [1, 32, 32, 32]
    # heavy taps are skipped for train inputs past the limit, never for test inputs
    Small.heavy_taps = ("latent256",)
    assert extract_family(Small, tmp_path / "h", [5], progress=False, heavy_train_limit=5) == 0
    assert not (tmp_path / "h").exists()
    # the same input extracted by the corpus run (another process, one thread) gave the fixture
    np.testing.assert_allclose(np.load(test[0]["path"]), np.load(FIXTURES / "latent__latent256.npy"),
                               rtol=0, atol=1e-5)


def test_extraction_taps_filter(taef2, tmp_path):
    """``taps`` extracts only the listed taps; a family with none of them is not even loaded."""
    from featcodec.features.extract import extract_corpus

    assert extract_family(taef2, tmp_path, [200000], progress=False, taps=["latent256", "hidden15"]) == 1
    assert sorted(p.name for p in (tmp_path / "latent" / "test").iterdir()) == ["latent256__200000.npy"]
    assert extract_family(taef2, tmp_path, [200000], progress=False, taps=["latent256"]) == 0
    extract_corpus(tmp_path / "c", ["latent"], 0, 0, 1, progress=False, taps=["hidden15"])
    assert not (tmp_path / "c" / "latent").exists()


@pytest.fixture(scope="module")
def mobilenet():
    pytest.importorskip("torchvision")
    from featcodec.features.cnn import MobileNetV2

    return _load_or_skip(MobileNetV2.load)


@pytest.mark.parametrize("tap", ["features13", "features18"])
def test_mobilenet_rest_reproduces_full(mobilenet, tap):
    torch.set_num_threads(2)
    f = mobilenet.extract(200002, (tap,))[tap]
    assert f.shape == {"features13": (1, 96, 14, 14), "features18": (1, 1280, 7, 7)}[tap]
    logits = mobilenet.rest(tap, f)
    ref = mobilenet.full(200002, tap)
    assert logits.shape == (1, 1000)
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-4)
    assert int(logits.argmax()) == int(ref.argmax())


@pytest.fixture(scope="module")
def vit():
    pytest.importorskip("onnx")
    from featcodec.features.vit import ViTFocus

    return _load_or_skip(ViTFocus.load)


def test_vit_matches_onnxruntime(vit):
    """The torch port of the ONNX graph gives the graph's own intermediate outputs."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from featcodec.features.cnn import imagenet_tensor
    from featcodec.features.vit import onnx_path

    torch.set_num_threads(2)
    m = onnx.load(onnx_path())
    names = [f"/backbone/encoder/layer.{k}/Add_1_output_0" for k in (6, 9, 11)]
    for n in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    sal, *layers = sess.run(["output_importance"] + names,
                            {"input_image": imagenet_tensor(200003, 224).numpy()})
    ours = vit.extract(200003)
    for k, ref in zip((6, 9, 11), layers):
        np.testing.assert_allclose(ours[f"layer{k}"], ref, rtol=0, atol=2e-4 * np.abs(ref).max())
    np.testing.assert_allclose(vit.full(200003)["saliency"].numpy(), sal, rtol=0, atol=1e-4)


def test_vit_rest_reproduces_full(vit):
    feats = vit.extract(200004, ("layer6", "layer9"))
    ref = vit.full(200004)
    for tap, f in feats.items():
        assert f.shape == (1, 257, 384)
        out = vit.rest(tap, f)
        torch.testing.assert_close(out["cls"], ref["cls"], rtol=0, atol=1e-5)
        torch.testing.assert_close(out["saliency"], ref["saliency"], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from featcodec.features.llm import SmolLM2

    return _load_or_skip(SmolLM2.load)


def test_smollm2_rest_reproduces_logits(smollm2):
    torch.set_num_threads(2)
    t = smollm2.token_ids(200005).shape[1]
    f = smollm2.extract(200005)
    assert f["hidden15"].shape == (1, t, 576)
    assert f["key15"].shape == f["value15"].shape == (1, 3, t, 64)
    assert np.abs(f["hidden15"][0, 0]).max() > 1000  # the massive activation
    # split inference on a short prefix: layers 15.. from hidden_states[15] = whole model
    ids = smollm2.token_ids(200005)[:, :24]
    with torch.no_grad():
        out = smollm2.lm(input_ids=ids, output_hidden_states=True, use_cache=False)
    logits = smollm2.rest("hidden15", out.hidden_states[15].numpy())
    assert logits.shape == (1, 24, 49152)
    torch.testing.assert_close(logits, out.logits, rtol=0, atol=1e-3)
    assert torch.equal(logits.argmax(-1), out.logits.argmax(-1))
    # hidden15 of extract() is the same tensor: its prefix gives the same logits (causal)
    np.testing.assert_allclose(f["hidden15"][:, :24], out.hidden_states[15].numpy(),
                               rtol=0, atol=1e-2)
    with pytest.raises(ValueError):
        smollm2.rest("key15", f["key15"])
