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
