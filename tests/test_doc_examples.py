"""The examples in the docstrings of the pipeline, stage, transform, container, API, codec and model
modules run."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["featcodec.stages.alignment", "featcodec.stream.container", "featcodec.api", "featcodec.codecs", "featcodec.codecs.index",
                                  "featcodec.codecs.learned.models", "featcodec.codecs.learned.codec",
                                  "featcodec.ratecontrol", "featcodec.pipeline", "featcodec.stages",
                                  "featcodec.transform", "featcodec.transform.fit", "featcodec.transform.table",
                                  "featcodec.transform.registry", "featcodec.transform.kernel_args",
                                  "featcodec.transform.kernels", "featcodec.threads", "featcodec.stages.outliers",
                                  "featcodec.stages.residual", "featcodec.bounded", "featcodec.session",
                                  "featcodec.stages.rotation", "featcodec.stages.scales", "featcodec.stages.hidden",
                                  "featcodec.transform.lloydmax", "featcodec.stream.rans", "featcodec.metrics",
                                  "featcodec.errors", "featcodec.datasets", "featcodec.codecs.learned.integer_entropy",
                                  "featcodec.codecs.learned.rans_backend", "featcodec.codecs.learned.data",
                                  "featcodec.integrations.io", "featcodec.integrations.numcodecs_codec",
                                  "featcodec.integrations.cli", "featcodec.features.stats",
                                  "featcodec.features.inputs", "featcodec.codecs.learned.train"])
def test_docstring_examples(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
