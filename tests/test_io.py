"""featcodec.integrations.io: tensors in .npy/.pt/.safetensors round-trip exactly; unsafe or broken
files are refused with a FeatcodecError, never unpickled or half-read."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import featcodec
from featcodec.integrations.io import load_tensor, load_tensors, save_tensor, save_tensors, tensor_format

pytest.importorskip("safetensors")

FLOATS = [np.float16, np.float32, np.float64]


@settings(max_examples=25, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from(FLOATS),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
        elements=st.floats(-1e4, 1e4, width=16),
    ),
    suffix=st.sampled_from([".npy", ".pt", ".safetensors"]),
)
def test_round_trip_is_exact(tmp_path_factory, arr, suffix):
    path = tmp_path_factory.mktemp("io") / f"x{suffix}"
    save_tensor(path, arr)
    back = load_tensor(path)
    back_np = back if isinstance(back, np.ndarray) else back.numpy()
    assert back_np.dtype == arr.dtype and back_np.shape == arr.shape
    np.testing.assert_array_equal(back_np, arr)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_bfloat16_kept_bit_exact(tmp_path, suffix):
    t = torch.randn(3, 5).to(torch.bfloat16)
    save_tensor(tmp_path / f"b{suffix}", t)
    back = load_tensor(tmp_path / f"b{suffix}")
    assert back.dtype == torch.bfloat16
    assert torch.equal(back.view(torch.int16), t.view(torch.int16))


def test_bfloat16_to_npy_refused(tmp_path):
    with pytest.raises(featcodec.InputError, match="bfloat16"):
        save_tensor(tmp_path / "b.npy", torch.zeros(2, dtype=torch.bfloat16))
    assert not (tmp_path / "b.npy").exists()


def test_many_tensors_by_name(tmp_path):
    data = {"enc.out": torch.randn(2, 3), "dec.in": torch.randn(4)}
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / f"m{suffix}"
        save_tensors(path, data)
        got = load_tensors(path)
        assert set(got) == set(data)
        assert torch.equal(load_tensor(path, key="dec.in"), data["dec.in"])
        with pytest.raises(featcodec.InputError, match="key"):
            load_tensor(path)
        with pytest.raises(featcodec.InputError, match="no tensor named"):
            load_tensor(path, key="nope")


def test_nested_pt_containers_get_dotted_names(tmp_path):
    torch.save({"layers": [torch.ones(1), {"kv": torch.zeros(2)}], "step": 3}, tmp_path / "n.pt")
    got = load_tensors(tmp_path / "n.pt")
    assert set(got) == {"layers.0", "layers.1.kv"}


class Evil:
    def __reduce__(self):  # would run a command if unpickled
        return (print, ("unpickled!",))


def test_pt_with_objects_is_refused(tmp_path, capsys):
    torch.save({"x": torch.ones(2), "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(featcodec.FormatError, match="weights-only"):
        load_tensor(tmp_path / "evil.pt")
    assert "unpickled!" not in capsys.readouterr().out


def test_npy_object_array_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(featcodec.FormatError, match="unpickles"):
        load_tensor(tmp_path / "o.npy")


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_truncated_and_foreign_files(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    save_tensor(path, np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(featcodec.FormatError):
        load_tensor(path)
    path.write_bytes(b"hello, not a tensor file at all" * 3)
    with pytest.raises(featcodec.FormatError):
        load_tensor(path)


def test_missing_file_directory_and_suffix(tmp_path):
    with pytest.raises(featcodec.InputError, match="no such file"):
        load_tensor(tmp_path / "absent.npy")
    with pytest.raises(featcodec.InputError, match="directory"):
        load_tensor(tmp_path)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(featcodec.InputError, match=".npy, .pt"):
        load_tensor(tmp_path / "x.csv")
    with pytest.raises(featcodec.InputError, match="no such directory"):
        save_tensor(tmp_path / "nodir" / "x.npy", np.zeros(2, np.float32))
    assert tensor_format("A.PTH") == "pt"


def test_failed_write_leaves_old_file(tmp_path):
    path = tmp_path / "keep.npy"
    save_tensor(path, np.ones(3, np.float32))
    with pytest.raises(featcodec.InputError):
        save_tensor(path, "not a tensor")
    np.testing.assert_array_equal(np.load(path), np.ones(3, np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npy"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_error_type_is_featcodec_error(tmp_path):
    # a raw pickle (not torch's zip format) of a plain object
    (tmp_path / "p.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(featcodec.FeatcodecError):
        load_tensor(tmp_path / "p.pt")


def test_docstring_examples_run():
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module("featcodec.integrations.io"), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
