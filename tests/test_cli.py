"""The featcodec command line: every subcommand on real files, exit codes, error messages."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

import featcodec
from featcodec.integrations.cli import EXIT_ERROR, EXIT_MISSING, EXIT_OK, EXIT_USAGE, distortion, main
from featcodec.integrations.io import load_tensor, save_tensor


def run(capsys, *argv):
    rc = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def feat(tmp_path):
    x = np.random.default_rng(0).standard_t(4, size=(1, 32, 12, 12)).astype(np.float32)
    path = tmp_path / "feat.npy"
    np.save(path, x)
    return path, x


def test_version_and_help(capsys):
    assert main(["--version"]) == EXIT_OK
    assert featcodec.__version__ in capsys.readouterr().out
    assert main(["--codecs"]) == EXIT_OK
    assert "index" in capsys.readouterr().out.split()
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for cmd in ("demo", "fit", "encode", "decode", "info", "eval", "bench", "train"):
        assert cmd in out
    for cmd, opt in (("encode", "--codec"), ("decode", "--transform"), ("fit", "--percentiles"),
                     ("eval", "--bits"), ("bench", "--repeat"), ("demo", "--json"), ("info", "--json")):
        assert main([cmd, "--help"]) == EXIT_OK
        assert opt in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    assert main([]) == EXIT_USAGE
    assert main(["encode"]) == EXIT_USAGE
    assert main(["frobnicate"]) == EXIT_USAGE
    assert main(["encode", "x.npy", "--bits", "many"]) == EXIT_USAGE
    assert "invalid int value" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_encode_decode_round_trip(capsys, tmp_path, suffix):
    pytest.importorskip("safetensors")
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 8, 40)).astype(np.float32))
    src = tmp_path / f"x{suffix}"
    save_tensor(src, x)
    rc, out, _ = run(capsys, "encode", src, "--bits", 6)
    assert rc == EXIT_OK, out
    fc = tmp_path / "x.fc"
    assert fc.exists() and "bits/value" in out
    ref = featcodec.decode(featcodec.encode(load_tensor(src), bits=6))
    dst = tmp_path / f"y{suffix}"
    rc, out, err = run(capsys, "decode", fc, "-o", dst)
    assert rc == EXIT_OK, err
    got = load_tensor(dst)
    assert np.array_equal(np.asarray(got), np.asarray(ref))
    # refuses to overwrite without --force, and never writes over its input
    assert run(capsys, "decode", fc, "-o", dst)[0] == EXIT_ERROR
    assert run(capsys, "decode", fc, "-o", dst, "--force")[0] == EXIT_OK
    rc, _, err = run(capsys, "encode", src, "-o", src, "--force")
    assert rc == EXIT_ERROR and "also an input" in err


def test_info_shows_the_header(capsys, feat, tmp_path):
    path, x = feat
    assert run(capsys, "encode", path, "--bits", 5)[0] == EXIT_OK
    rc, out, _ = run(capsys, "info", tmp_path / "feat.fc", "--json")
    assert rc == EXIT_OK
    info = json.loads(out)
    assert info["shape"] == list(x.shape) and info["dtype"] == "float32" and info["bits"] == 5
    assert info["bytes"] == (tmp_path / "feat.fc").stat().st_size
    rc, out, _ = run(capsys, "info", tmp_path / "feat.fc")
    assert "bits/value" in out and "codec" in out


def test_fit_then_encode_with_a_shared_transform(capsys, feat, tmp_path):
    path, x = feat
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(9).standard_t(4, size=(1, 32, 12, 12)).astype(np.float32))
    tfile = tmp_path / "t.json"
    rc, out, err = run(capsys, "fit", path, other, "-o", tfile, "--bits", 6)
    assert rc == EXIT_OK, err
    t = featcodec.load_transform(tfile)
    assert t.bits == 6 and t.id in out
    assert run(capsys, "encode", path, "--transform", tfile, "--no-embed", "-o", tmp_path / "s.fc")[0] == EXIT_OK
    blob = (tmp_path / "s.fc").read_bytes()
    assert featcodec.header(blob)["transform"]["id"] == t.id
    assert not featcodec.header(blob)["transform"]["embedded"]
    # the decoder in another process would need the transform: the CLI takes it as a file
    from featcodec.transform.registry import unregister_transform

    unregister_transform(t.id)
    rc, _, err = run(capsys, "decode", tmp_path / "s.fc", "-o", tmp_path / "s.npy")
    assert rc == EXIT_ERROR and "transform" in err
    assert run(capsys, "decode", tmp_path / "s.fc", "-o", tmp_path / "s.npy", "--transform", tfile)[0] == EXIT_OK
    y = np.load(tmp_path / "s.npy")
    assert np.array_equal(y, featcodec.decode(blob, transform=t))
    assert distortion(x, y)["psnr"] > 25


def test_eval_names_what_codec_auto_chose(capsys, feat):
    path, x = feat
    rc, out, err = run(capsys, "eval", path, "--codec", "auto", "--target-bpfp", "3", "--bits", "4,8", "--json")
    assert rc == EXIT_OK, err
    (row,) = json.loads(out)  # one row: auto chooses its own bits
    blob = featcodec.encode(x, codec="auto", target_bpfp=3)
    head = featcodec.header(blob)
    assert row["codec"].startswith(f"auto: {head['codec']}") and row["bits"] == head["bits"]
    assert row["bytes"] == len(blob) and row["bits_per_value"] <= 3


def test_eval_reports_rate_and_distortion(capsys, feat):
    path, x = feat
    rc, out, err = run(capsys, "eval", path, "--bits", "4,8", "--json")
    assert rc == EXIT_OK, err
    rows = json.loads(out)
    assert [r["bits"] for r in rows] == [4, 8]
    for r in rows:
        blob = featcodec.encode(x, bits=r["bits"])
        y = featcodec.decode(blob)
        assert r["bytes"] == len(blob)
        assert r["bits_per_value"] == pytest.approx(8 * len(blob) / x.size)
        assert r["mse"] == pytest.approx(float(np.mean((x.astype(np.float64) - y) ** 2)))
    assert rows[0]["bits_per_value"] < rows[1]["bits_per_value"]
    assert rows[0]["mse"] > rows[1]["mse"]
    rc, out, _ = run(capsys, "eval", path, "--bits", "4")
    assert "PSNR" in out and "feat.npy" in out


def test_bench_on_a_file(capsys, feat):
    path, _ = feat
    rc, out, err = run(capsys, "bench", path, "--repeat", "1", "--json")
    assert rc == EXIT_OK, err
    (row,) = json.loads(out)
    assert row["encode_MBps"] > 0 and row["decode_MBps"] > 0
    assert run(capsys, "bench", path, "--repeat", "0")[0] == EXIT_USAGE


def test_bad_inputs_exit_1_with_a_message(capsys, tmp_path, feat):
    path, _ = feat
    rc, _, err = run(capsys, "encode", tmp_path / "absent.npy")
    assert rc == EXIT_ERROR and "no such file" in err
    (tmp_path / "bad.fc").write_bytes(b"garbage" * 10)
    rc, _, err = run(capsys, "decode", tmp_path / "bad.fc")
    assert rc == EXIT_ERROR and "not a featcodec stream" in err
    rc, _, err = run(capsys, "info", tmp_path / "bad.fc")
    assert rc == EXIT_ERROR
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan], np.float32))
    rc, _, err = run(capsys, "encode", tmp_path / "nan.npy")
    assert rc == EXIT_ERROR and "NaN" in err
    np.save(tmp_path / "int.npy", np.arange(4))
    rc, _, err = run(capsys, "encode", tmp_path / "int.npy")
    assert rc == EXIT_ERROR and "dtype" in err
    rc, _, err = run(capsys, "encode", path, "--codec", "nope")
    assert rc == EXIT_ERROR and "nope" in err
    rc, _, err = run(capsys, "encode", path, "--transform", tmp_path / "missing.json")
    assert rc == EXIT_ERROR and "no such file" in err
    fc = path.with_suffix(".fc")
    assert run(capsys, "encode", path)[0] == EXIT_OK
    data = fc.read_bytes()
    fc.write_bytes(data[:-9])
    rc, _, err = run(capsys, "decode", fc)
    assert rc == EXIT_ERROR


def test_train_is_forwarded_or_reported_missing(capsys):
    try:
        import featcodec.codecs.learned.train  # noqa: F401
    except ImportError:
        assert main(["train", "--help"]) == EXIT_MISSING
        return
    assert main(["train", "--help"]) == EXIT_OK
    assert "--corpus" in capsys.readouterr().out


def test_demo_runs_on_the_bundled_data(capsys):
    from featcodec.datasets import load_demo

    demo = load_demo()
    rc, out, err = run(capsys, "demo", "--json")
    assert rc == EXIT_OK, err
    res = json.loads(out)
    assert {r["feature"] for r in res["rows"]} == set(demo)
    assert {r["transform"] for r in res["rows"]} == {"lloyd-max", "uniform"}
    for r in res["rows"]:
        x = demo[r["feature"]]
        assert r["values"] == x.size and r["raw_bytes"] == x.nbytes
        assert 0 < r["bits_per_value"] < 9
    # the peaky-to-balanced transform beats uniform levels at the same bits on every feature
    by = {(r["feature"], r["transform"]): r for r in res["rows"]}
    for name in demo:
        assert by[(name, "lloyd-max")]["mse"] < by[(name, "uniform")]["mse"]
    rc, out, _ = run(capsys, "demo", "--bits", "6", "--transforms", "lloyd-max")
    assert rc == EXIT_OK and "feature" in out and "PSNR" in out
    assert run(capsys, "demo", "--transforms", "magic")[0] == EXIT_ERROR


@pytest.mark.parametrize("module", ["featcodec.integrations.cli", "featcodec"])
def test_console_script_exit_codes(tmp_path, run_python, module):
    """`python -m featcodec.integrations.cli` (the console script's entry) and `python -m featcodec`,
    in a process of their own."""
    r = run_python("-m", module, "decode", tmp_path / "nothing.fc", text=True, check=False, timeout=120)
    assert r.returncode == EXIT_ERROR and "no such file" in r.stderr
    assert "Traceback" not in r.stderr


def test_distortion_reference():
    x = np.array([[0.0, 2.0], [4.0, 6.0]])
    y = x + np.array([[0.5, -0.5], [0.0, 1.0]])
    d = distortion(x, y)
    assert d["mse"] == pytest.approx((0.25 + 0.25 + 0 + 1) / 4)
    assert d["psnr"] == pytest.approx(10 * math.log10(36 / d["mse"]))
    assert d["max_abs"] == 1.0
    assert distortion(x, x)["psnr"] == math.inf


def test_fit_per_channel_and_subsampled(capsys, feat, tmp_path):
    path, x = feat
    other = tmp_path / "other.npy"
    np.save(other, x * 2)
    rc, _, err = run(capsys, "fit", path, other, "-o", tmp_path / "c.json", "--bits", 3, "--channel-axis", 1)
    assert rc == EXIT_OK, err
    t = featcodec.load_transform(tmp_path / "c.json")
    assert t.channel_axis == 1 and np.asarray(t.levels).shape == (32, 8)
    # pooled per channel: the same transform as fitting the list directly
    assert t.id == featcodec.fit_transform([x, x * 2], bits=3, channel_axis=1).id
    rc, _, err = run(capsys, "fit", path, "-o", tmp_path / "s.json", "--max-values", 1000)
    assert rc == EXIT_OK, err
    rc, _, err = run(capsys, "fit", path, other, "-o", tmp_path / "x.json", "--max-values", 10, "--channel-axis", 1)
    assert rc == EXIT_ERROR and "--max-values" in err


def test_docstring_examples_run():
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module("featcodec.integrations.cli"), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0


@pytest.mark.parametrize("argv, stage", [
    (["--outliers", 8], "outliers"), (["--rotation"], "rotation"), (["--scales", "token"], "scales"),
    (["--spatial", 2], "spatial"), (["--spatial", 2, "--target-bpfp", 1.0, "--codec", "auto"], "spatial"),
])
def test_encode_with_a_value_stage(capsys, tmp_path, argv, stage):
    """The value stages from the command line: ViT-style tokens (a class token, a 4 x 4
    grid) through each, the stream carrying it, decoded to the same shape within the
    stream's own error (as featcodec.encode gives it)."""
    x = np.cumsum(np.random.default_rng(1).normal(size=(1, 17, 8)), 1).astype(np.float32)
    path = tmp_path / "tokens.npy"
    np.save(path, x)
    rc, out, _ = run(capsys, "encode", path, *argv, "-o", tmp_path / "s.fc")
    assert rc == EXIT_OK, out
    blob = (tmp_path / "s.fc").read_bytes()
    assert stage in featcodec.header(blob)["stages"]
    kwargs = {"outliers": 8} if stage == "outliers" else {"rotation": True} if stage == "rotation" else (
        {"scales": "token"} if stage == "scales" else {"spatial": 2})
    if "--codec" not in argv:
        assert blob == featcodec.encode(x, **kwargs)
    assert featcodec.decode(blob).shape == x.shape
    rc, _, err = run(capsys, "encode", path, "--spatial", 3, "-o", tmp_path / "b.fc")
    assert rc == EXIT_ERROR and "power of two" in err


def test_encode_with_max_error(capsys, feat, tmp_path):
    path, x = feat
    rc, out, _ = run(capsys, "encode", path, "--max-error", 0.05, "-o", tmp_path / "m.fc")
    assert rc == EXIT_OK, out
    y = featcodec.decode((tmp_path / "m.fc").read_bytes())
    assert np.abs(y.astype(np.float64) - x).max() <= 0.05
    # it picks the transform itself: --bits beside it is an error that says so
    rc, _, err = run(capsys, "encode", path, "--max-error", 0.05, "--bits", 4, "-o", tmp_path / "n.fc")
    assert rc == EXIT_ERROR and "max_error" in err
    rc, _, err = run(capsys, "encode", path, "--max-error", 0.05, "--transform", "uniform", "-o", tmp_path / "u.fc")
    assert rc == EXIT_ERROR and "max_error" in err  # not silently dropped
