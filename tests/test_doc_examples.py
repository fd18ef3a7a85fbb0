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


def test_api_reference_is_current():
    """docs/api.md is what tools/gen_api_docs.py renders from today's docstrings (it went
    stale once after a new property, unnoticed: the check ran nowhere)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "gen_api_docs.py"
    spec = importlib.util.spec_from_file_location("gen_api_docs", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.OUT.read_text() == gen.render(), "docs/api.md is out of date: run python tools/gen_api_docs.py"
