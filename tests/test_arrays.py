"""Conversions between user tensors and the arrays the core works on."""

import numpy as np
import pytest
import torch

import featcodec
from featcodec._arrays import float_view, from_float32, to_float32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_roundtrip_is_exact_and_zero_copy(dtype):
    t = torch.randn(3, 5).to(dtype)
    a, origin = float_view(t)
    assert origin.framework == "torch" and origin.dtype == str(dtype).split(".")[1]
    wide = to_float32(a, origin.dtype)
    assert torch.equal(torch.from_numpy(wide), t.float())
    back = from_float32(wide, origin, dtype=origin.dtype)
    assert back.dtype == dtype and torch.equal(back, t)
    if dtype != torch.float64:  # views share memory with the tensor
        assert a.ctypes.data == t.data_ptr()


@pytest.mark.parametrize("bad", [np.arange(4), torch.arange(4), "text", np.zeros(3, np.complex64)])
def test_non_float_input_is_a_featcodec_error(bad):
    with pytest.raises(featcodec.InputError, match="float"):
        float_view(bad)


def test_every_error_is_a_featcodec_error_and_the_warning_a_user_warning():
    for name in featcodec.errors.__all__:
        cls = getattr(featcodec, name)
        if name.endswith("Warning"):  # featcodec.QualityWarning: a warning, never raised
            assert issubclass(cls, UserWarning) and not issubclass(cls, featcodec.FeatcodecError)
        else:
            assert issubclass(cls, featcodec.FeatcodecError)


# ------------------------------------------------------------ the core's block cache
def test_large_arrays_reuse_the_blocks_of_freed_ones():
    from featcodec import _core
    from featcodec._arrays import POOLED_BYTES, empty

    assert empty((POOLED_BYTES // 8 - 1,), np.float64).base is None  # small: plain numpy
    _core.pool_release()
    assert _core.pool_held()[:2] == (0, 0)
    a = empty((1024, 1024), np.uint8)
    assert a.flags.c_contiguous and a.flags.writeable and a.shape == (1024, 1024)
    a[:] = 7
    at = a.ctypes.data
    view = a[10:20]
    del a
    assert _core.pool_held()[1] == 0  # the view keeps the block
    assert int(view.sum()) == 7 * 10 * 1024
    del view
    held, blocks, limit = _core.pool_held()
    assert blocks == 1 and 1 << 20 <= held <= limit
    b = empty((1000, 1024), np.uint16)  # 2 MB: does not fit the freed block
    c = empty((900, 1024), np.uint8)  # fits it
    assert c.ctypes.data == at and b.ctypes.data != at and _core.pool_held()[1] == 0
    # the compiled core's own outputs come from it too, and go back to it when freed
    t = _core.transpose(c)
    assert t.shape == (1024, 900) and np.array_equal(t, np.ascontiguousarray(c.T))
    del b, c, t
    assert _core.pool_held()[1] == 3
    _core.pool_release()
    assert _core.pool_held()[:2] == (0, 0)
    # impossible requests fail cleanly
    with pytest.raises(ValueError, match="negative"):
        _core.empty([-1], np.dtype(np.uint8))
    for shape in ([1 << 62], [1 << 40, 1 << 40]):
        with pytest.raises(MemoryError):
            _core.empty(shape, np.dtype(np.uint8))
    assert _core.empty([0, 5], np.dtype(np.float32)).shape == (0, 5)


@pytest.mark.parametrize("mb, held", [("0", 0), ("3", 3 << 20)])
def test_the_block_cache_holds_at_most_featcodec_pool_mb(run_python, monkeypatch, mb, held):
    monkeypatch.setenv("FEATCODEC_POOL_MB", mb)
    code = (
        "import numpy as np; from featcodec import _core; from featcodec._arrays import empty;"
        "arrays = [empty((1 << 20,), np.uint8) for _ in range(5)]; [a.fill(1) for a in arrays];"
        "del arrays; print(*_core.pool_held())"
    )
    out = run_python("-c", code, text=True).stdout.split()
    assert [int(v) for v in out] == [held, held >> 20, int(mb) << 20]


def test_encodes_on_several_threads_share_the_block_cache():
    from concurrent.futures import ThreadPoolExecutor

    x = np.random.default_rng(0).standard_t(4, (4, 64, 32, 32)).astype(np.float32)
    want = featcodec.encode(x)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: featcodec.encode(x), range(16)))
    assert all(g == want for g in got)
    assert np.array_equal(featcodec.decode(want), featcodec.decode(got[-1]))
