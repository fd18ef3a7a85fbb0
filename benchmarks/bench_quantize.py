"""pytest-benchmark: featcodec.transform.kernels against np.searchsorted / torch.bucketize / levels[idx].

Run:  PYTHONPATH=$PWD pytest benchmarks/bench_quantize.py --benchmark-group-by=param:case
Compare each group's rows: the peers do the same work on the same data in the same run.
Single-threaded (featcodec and torch), 1M heavy-tailed float32 values, 255 thresholds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featcodec.transform import kernels

N = 1_000_000


@pytest.fixture(scope="module")
def data():
    kernels.set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = (rng.standard_t(2, N) * 0.5).astype(np.float32)
    t = np.quantile(x, np.linspace(0, 1, 257)[1:-1]).astype(np.float32)
    levels = np.sort(rng.standard_normal(256)).astype(np.float32)
    idx = kernels.quantize(x, t)
    return x, t, levels, idx


FORWARD = {
    "featcodec": lambda x, t: kernels.quantize(x, t),
    "np.searchsorted": lambda x, t: np.searchsorted(t, x, side="right"),
    "torch.bucketize": lambda x, t: torch.bucketize(torch.from_numpy(x), torch.from_numpy(t), right=True),
}


@pytest.mark.parametrize("impl", list(FORWARD))
@pytest.mark.parametrize("case", ["forward-float32"])
def test_forward(benchmark, data, impl, case):
    x, t, _, _ = data
    got = benchmark(FORWARD[impl], x, t)
    np.testing.assert_array_equal(np.asarray(got), np.searchsorted(t, x, side="right"))


@pytest.mark.parametrize("impl", ["featcodec", "numpy-take", "torch-index"])
@pytest.mark.parametrize("case", ["inverse-uint8-float32"])
def test_inverse(benchmark, data, impl, case):
    _, _, levels, idx = data
    if impl == "featcodec":
        got = benchmark(kernels.dequantize, idx, levels)
    elif impl == "numpy-take":
        got = benchmark(lambda: levels[idx])
    else:
        lt, it = torch.from_numpy(levels), torch.from_numpy(idx).long()
        got = benchmark(lambda: lt[it]).numpy()
    np.testing.assert_array_equal(got, levels[idx])
