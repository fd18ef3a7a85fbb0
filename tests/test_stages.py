"""The pipeline of stages (docs/architecture.md): the worked example of the docs runs,
streams record their stages (format version 5) and decode bit-exactly from committed
bytes, every stage's fields are validated on read, and bad stage lists or registrations
are clear errors."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

import featcodec
from featcodec.stages import DEFAULT_STAGES, Stage, available_stages, chain, get_stage, register_stage
from featcodec.stream.container import read_stream, write_stream
from conftest import digest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
GOLDEN = ROOT / "tests" / "data" / "golden_stages"
STAGES = ["channel-offset", "transform", "pack"]


def _doc_example() -> str:
    return re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)


def _register_example() -> None:
    if "channel-offset" not in available_stages():
        exec(compile(_doc_example(), str(DOC), "exec"), {"__name__": "architecture_example"})


def _golden_input() -> np.ndarray:
    rng = np.random.default_rng(20261206)
    return (rng.normal(size=(3, 40, 12)) * rng.uniform(0.5, 3, 12) + rng.normal(scale=40, size=12)).astype(np.float32)


def _rewrite(blob: bytes, **changes) -> bytes:
    """The stream with header fields changed (``None`` removes one), re-checksummed."""
    s = read_stream(blob)
    h = dict(s.header)
    for k, v in changes.items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    return write_stream(h, [bytes(x) for x in s.sections], s.version)


def test_the_worked_example_of_the_docs_runs_and_pays(capsys):
    exec(compile(_doc_example(), str(DOC), "exec"), {"__name__": "architecture_example"})
    with_offsets, without = map(float, re.findall(r"(\d+\.\d+)", capsys.readouterr().out))
    assert with_offsets < without / 4  # channels 50 apart share one transform badly


def test_explicit_default_stages_give_the_same_bytes_and_no_stages_field():
    x = np.random.default_rng(1).standard_t(3, size=(2, 16, 24)).astype(np.float32)
    blob = featcodec.encode(x, bits=5)
    assert featcodec.encode(x, bits=5, stages=list(DEFAULT_STAGES)) == blob
    h = featcodec.header(blob)
    assert "stages" not in h and h["format_version"] == 10  # (its packed levels; a stages field needs 5)


def test_a_custom_stage_round_trips_and_is_recorded():
    _register_example()
    x = _golden_input()
    blob = featcodec.encode(x, bits=6, stages=STAGES)
    h = featcodec.header(blob)
    assert h["stages"] == STAGES and h["format_version"] == 10  # 5 for the stages field, 10 for packed levels
    assert h["sections"] == ["payload", "offsets", "levels"] and h["section_lengths"]["offsets"] == 4 * 12
    y = featcodec.decode(blob)
    means = x.reshape(-1, 12).mean(axis=0, dtype=np.float64).astype(np.float32)
    t = featcodec.fit_transform(x - means, bits=6, method="fast")  # what the stream's transform must be
    assert h["transform"]["id"] == t.id
    np.testing.assert_array_equal(y, t.inverse(t.forward(x - means)) + means)
    # also with the other options: error bound, codec="auto"
    ye = featcodec.decode(featcodec.encode(x, max_error=0.05, stages=STAGES))
    assert np.abs(ye - x).max() <= 0.05 + 1e-4  # the bound holds on x - mean; + rounding of the mean
    auto = featcodec.encode(x, codec="auto", target_bpfp=3.0, stages=STAGES)
    assert featcodec.header(auto)["stages"] == STAGES and 8 * len(auto) / x.size <= 3.0
    # rate control runs the stages for every candidate: its fits see the offset values
    plain = featcodec.encode(x, codec="auto", target_bpfp=3.0)
    mse = [float(np.mean((featcodec.decode(b) - x) ** 2)) for b in (auto, plain)]
    assert mse[0] < mse[1] / 2


def test_golden_stream_with_stages_decodes_bit_exactly():
    """tests/data/golden_stages: written once by ``python tests/test_stages.py``; the bytes
    of a fresh encode and of the decode must not drift."""
    _register_example()
    want = json.loads((GOLDEN / "manifest.json").read_text())
    blob = (GOLDEN / "channel_offset.fcs").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == want["stream_sha256"]
    assert featcodec.encode(_golden_input(), bits=6, stages=STAGES) == blob
    y = featcodec.decode(blob)
    assert hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest() == want["decoded_sha256"]


@pytest.mark.parametrize("name", sorted(p.stem for p in (GOLDEN / "v9").glob("*.json")))
def test_golden_stage_streams_of_versions_5_to_9_still_decode(name):
    """tests/data/golden_stages/v9: the stage streams as versions 5-9 wrote them (float32
    levels, before format version 10 packed them), each with its record: they must keep
    decoding bit-exactly."""
    _register_example()
    want = json.loads((GOLDEN / "v9" / f"{name}.json").read_text())
    blob = (GOLDEN / "v9" / f"{name}.fcs").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == want["stream_sha256"]
    assert 5 <= featcodec.header(blob)["format_version"] <= 9
    assert digest(featcodec.decode(blob)) == want["decoded_sha256"]


def test_a_stream_with_stages_decodes_the_same_in_another_process(run_python, tmp_path):
    _register_example()
    blob = featcodec.encode(_golden_input(), bits=6, stages=STAGES)
    path = tmp_path / "stream.fcs"
    path.write_bytes(blob)
    code = (
        "import sys, re, hashlib, pathlib, featcodec, numpy as np\n"
        "featcodec.set_num_threads(1)\n"
        "doc = pathlib.Path(sys.argv[1]).read_text()\n"
        "exec(re.search(r'```python\\n(.*?)```', doc, re.S).group(1), {'__name__': 'x'})\n"
        "y = featcodec.decode(pathlib.Path(sys.argv[2]).read_bytes())\n"
        "print(hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest())\n"
    )
    out = run_python("-c", code, DOC, path, text=True)
    here = hashlib.sha256(np.ascontiguousarray(featcodec.decode(blob)).tobytes()).hexdigest()
    assert out.stdout.split()[-1] == here


def test_hostile_headers_are_rejected_by_the_stage_that_owns_the_field():
    _register_example()
    blob = featcodec.encode(_golden_input(), bits=6, stages=STAGES)
    bad = {
        "offset": ({"channels": 11}, "offset"),  # the example stage's own check
        "pack": ({"layout": "plane", "shape": [3, 40]}, "pack"),  # the alignment stage's
        "transform": ({"id": "x"}, "transform"),  # the value stage's
    }
    for field, (value, match) in bad.items():
        with pytest.raises(featcodec.FormatError, match=match):
            featcodec.decode(_rewrite(blob, **{field: value}))
        with pytest.raises(featcodec.FormatError, match=match):
            featcodec.header(_rewrite(blob, **{field: value}))
    cases = [
        ({"stages": ["no-such-stage", "transform", "pack"]}, "unknown stage"),
        ({"stages": ["pack", "transform"]}, "takes"),
        ({"stages": "transform"}, "stages"),
        ({"stages": []}, "stages"),
        ({"stages": ["transform", "pack"]}, "offset"),  # a field no listed stage owns
        ({"offset": None}, "missing"),
        ({"sections": ["payload", "levels"]}, "sections"),
    ]
    for changes, match in cases:
        with pytest.raises(featcodec.FormatError, match=match):
            featcodec.decode(_rewrite(blob, **changes))


def test_a_stages_field_needs_format_version_5():
    _register_example()
    blob = featcodec.encode(_golden_input(), bits=6, stages=STAGES)
    s = read_stream(blob)
    old = write_stream(s.header, [bytes(x) for x in s.sections], 4)
    with pytest.raises(featcodec.FormatError, match="version 4"):
        featcodec.decode(old)


def test_truncated_and_mutated_streams_with_stages_never_crash():
    _register_example()
    blob = featcodec.encode(_golden_input(), bits=6, stages=STAGES)
    rng = np.random.default_rng(3)
    for n in range(0, len(blob), 7):
        with pytest.raises(featcodec.FormatError):
            featcodec.decode(blob[:n])
    s = read_stream(blob)
    for _ in range(200):  # valid checksums over mutated sections: only FormatError or a result
        secs = [bytearray(x) for x in s.sections]
        k = int(rng.integers(len(secs)))
        if secs[k]:
            secs[k][int(rng.integers(len(secs[k])))] ^= 1 << int(rng.integers(8))
        try:
            y = featcodec.decode(write_stream(s.header, [bytes(x) for x in secs], s.version))
        except featcodec.FormatError:
            continue
        assert y.shape == (3, 40, 12)


@pytest.mark.parametrize(
    "stages, match",
    [
        ("transform", "list"),
        ([], "stages"),
        (["transform", "transform", "pack"], "distinct"),
        (["transform"], "end with"),
        (["pack", "transform"], "takes"),
        (["nope", "transform", "pack"], "unknown stage"),
        ([3, "pack"], "stage names"),
    ],
)
def test_bad_stage_lists_are_input_errors(stages, match):
    with pytest.raises(featcodec.InputError, match=match):
        featcodec.encode(np.ones((4, 4), np.float32), stages=stages)


def test_bad_registrations_are_input_errors():
    class Backwards(Stage):
        name, takes, gives = "backwards-demo", "plane", "values"

    class BadName(Stage):
        name = "has space"

    class Other(Stage):
        name = "transform"

    for stage, match in ((Backwards(), "forward"), (BadName(), "name"), (Other(), "already registered")):
        with pytest.raises(featcodec.InputError, match=match):
            register_stage(stage)
    class Shape(Stage):
        name, fields = "shape-demo", ("shape",)

    class Payload(Stage):
        name, sections = "payload-demo", ("payload",)

    for stage in (Shape(), Payload()):
        with pytest.raises(featcodec.InputError, match="common fields"):
            register_stage(stage)
    with pytest.raises(featcodec.InputError, match="Stage instance"):
        register_stage(type(get_stage("pack")))  # the class, not an instance
    assert [st.name for st in chain(DEFAULT_STAGES, featcodec.InputError)] == list(DEFAULT_STAGES)


def test_a_stage_that_writes_what_it_does_not_own_is_caught_on_encode():
    class Sloppy(Stage):
        name, fields = "sloppy-demo", ("sloppy",)

        def encode(self, x, ctx):
            ctx.header["sloppy"] = 1
            ctx.header["not-mine"] = 2
            return x

    class Twin(Stage):
        name, fields = "twin-demo", ("sloppy",)

    register_stage(Sloppy(), replace=True)
    register_stage(Twin(), replace=True)
    x = np.ones((4, 4), np.float32)
    with pytest.raises(featcodec.FeatcodecError, match="not-mine"):
        featcodec.encode(x, stages=["sloppy-demo", "transform", "pack"])
    with pytest.raises(featcodec.InputError, match="twice"):
        featcodec.encode(x, stages=["sloppy-demo", "twin-demo", "transform", "pack"])


def test_stage_names_that_are_not_strings_are_an_input_error():
    x = np.ones((4, 4), np.float32)
    for stages in (("transform", ["pack"]), ("transform", 7), ["transform", ("pack",)]):
        with pytest.raises(featcodec.InputError, match="stage names"):
            featcodec.encode(x, stages=stages)


def test_a_replaced_stage_takes_effect_in_chains_already_used():
    class First(Stage):
        name = "replaceable-demo"

    class Second(Stage):
        name = "replaceable-demo"

    names = ("replaceable-demo", "transform", "pack")
    register_stage(First(), replace=True)
    assert type(chain(names, featcodec.InputError)[0]) is First
    assert type(chain(names, featcodec.InputError)[0]) is First  # remembered
    register_stage(Second(), replace=True)
    assert type(chain(names, featcodec.InputError)[0]) is Second


if __name__ == "__main__":  # write the golden stream (only when the format changes on purpose)
    _register_example()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    stream = featcodec.encode(_golden_input(), bits=6, stages=STAGES)
    (GOLDEN / "channel_offset.fcs").write_bytes(stream)
    decoded = np.ascontiguousarray(featcodec.decode(stream)).tobytes()
    (GOLDEN / "manifest.json").write_text(json.dumps({
        "stages": STAGES, "encode": {"bits": 6}, "input": "tests/test_stages.py::_golden_input",
        "stream_sha256": hashlib.sha256(stream).hexdigest(),
        "decoded_sha256": hashlib.sha256(decoded).hexdigest(),
    }, indent=2) + "\n")
    print(f"wrote {GOLDEN}")
