"""How the benchmarks hand tensors to the peer codecs."""

from __future__ import annotations

import numpy as np


def zfp_array(x: np.ndarray) -> np.ndarray:
    """``x`` as zfp should see it: float32, singleton axes dropped and at most 3-D (leading
    axes merged; a leading axis of 2**16 or more folded into the next). zfp codes blocks of 4 values per axis and pads partial blocks, so a
    (1, C, H, W) feature map handed over as is costs about 4x its bits in padding."""
    a = np.ascontiguousarray(np.squeeze(x), dtype=np.float32)
    if a.ndim > 3:
        a = a.reshape(-1, *a.shape[-2:])
    while a.ndim > 1 and a.shape[0] >= 1 << 16 and a.shape[0] % 2 == 0:  # zfp's header: < 2**16 per axis
        a = a.reshape(a.shape[0] // 2, a.shape[1] * 2, *a.shape[2:])
    return np.ascontiguousarray(a.reshape(1) if a.ndim == 0 else a)


def zfp_tolerance(x: np.ndarray, mse: float, steps: int = 16) -> float:
    """The largest zfp fixed-accuracy tolerance, in steps of sqrt 2 from ``sqrt(mse)``,
    whose MSE on ``x`` (as :func:`zfp_array` hands it over) is at most ``mse``: zfp at the
    same error as the codec it is compared with."""
    import zfpy

    xz, rmse = zfp_array(x), mse**0.5
    tol = rmse
    for k in range(steps):
        trial = rmse * 2.0 ** (k / 2)
        y = zfpy.decompress_numpy(zfpy.compress_numpy(xz, tolerance=trial))
        if np.mean((y.astype(np.float64) - xz) ** 2) > mse:
            break
        tol = trial
    return tol
