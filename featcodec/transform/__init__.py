"""The value transform: a scalar quantizer with ``2**bits`` levels (DT-UFC / CAUFC).

- :mod:`.table`: the :class:`Transform` object (levels, thresholds, forward/inverse,
  save/load).
- :mod:`.fit`: fitting it (:func:`fit_transform`, :func:`fit_uniform`,
  :func:`fit_max_error`) and :mod:`.lloydmax`, the Lloyd-Max solver.
- :mod:`.kernels` / :mod:`.cuda`: the compiled interval lookup and inverse lookup, with
  their shared argument checks in :mod:`.kernel_args`.
- :mod:`.registry`: transforms registered by id, so streams can reference them.

Example:
    >>> import numpy as np
    >>> from featcodec.transform import fit_transform
    >>> x = np.random.default_rng(0).standard_t(3, 10_000).astype(np.float32)
    >>> t = fit_transform(x, bits=4)
    >>> idx = t.forward(x)
    >>> idx.dtype, idx.shape, int(idx.max())
    (dtype('uint8'), (10000,), 15)
"""

from __future__ import annotations

from .fit import MaxErrorFitter, fit_max_error, fit_transform, fit_uniform, uniform_transform
from .table import MAX_BITS, Transform, load_transform

__all__ = ["Transform", "load_transform", "fit_transform", "fit_uniform", "uniform_transform",
           "fit_max_error", "MaxErrorFitter", "MAX_BITS"]
