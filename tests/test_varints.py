"""featcodec.stream.varints (compiled, csrc/varints.cpp) against a plain-Python LEB128."""

import numpy as np
import pytest

from featcodec.stream import varints


def _leb128(values) -> bytes:
    out = bytearray()
    for x in map(int, values):
        while x >= 0x80:
            out.append((x & 0x7F) | 0x80)
            x >>= 7
        out.append(x)
    return bytes(out)


def test_round_trip_against_plain_python():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = rng.integers(0, 2**35, rng.integers(0, 60)) >> rng.integers(0, 35)
        raw = varints.encode(a)
        assert raw == _leb128(a)
        np.testing.assert_array_equal(varints.decode(raw, len(a)), a)
    edges = np.array([0, 127, 128, 2**14 - 1, 2**14, 2**35 - 1])
    assert varints.decode(varints.encode(edges), 6).tolist() == edges.tolist()


@pytest.mark.parametrize("raw,count", [
    (b"", 1), (b"\x00", 0), (b"\x00\x00", 1),  # another number of varints
    (b"\x80", 1), (b"\x01\x80", 2),  # cut off
    (b"\x80\x00", 1), (b"\xff\x00", 1),  # not minimal
    (b"\xff\xff\xff\xff\xff\x01", 1),  # longer than 5 bytes
])
def test_malformed_bytes_give_none(raw, count):
    assert varints.decode(raw, count) is None


@pytest.mark.parametrize("bad", [[-1], [2**35]])
def test_values_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="2\\*\\*35"):
        varints.encode(np.array(bad))
