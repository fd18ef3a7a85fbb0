"""The stream container: round trip, every defect class raises its documented error."""

import struct
import zlib

import pytest

import featcodec
from featcodec.bitstream import FORMAT_VERSION, MAGIC, read_stream, write_stream
from featcodec.limits import MAX_HEADER_BYTES, MAX_SECTIONS

HEADER = {"codec": "test", "values": [1, 2.5, "x"]}
SECTIONS = [b"payload bytes", b"", bytes(range(256))]


def _blob():
    return write_stream(HEADER, SECTIONS)


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_round_trip_and_layout():
    blob = _blob()
    s = read_stream(blob)
    assert s.version == FORMAT_VERSION and s.header == HEADER
    assert [bytes(x) for x in s.sections] == SECTIONS
    # documented layout: magic, u16 version, u16 flags, u32 header length, u32 section count
    assert blob[:8] == MAGIC == b"\x89FCODEC\n"
    version, flags, hlen, nsec = struct.unpack_from("<HHII", blob, 8)
    assert (version, flags, nsec) == (FORMAT_VERSION, 0, 3)
    assert blob[20 : 20 + hlen] == b'{"codec":"test","values":[1,2.5,"x"]}'
    lengths = struct.unpack_from("<3Q", blob, 20 + hlen)
    assert list(lengths) == [len(x) for x in SECTIONS]
    assert struct.unpack("<I", blob[-4:])[0] == zlib.crc32(blob[:-4])
    assert len(blob) == 20 + hlen + 24 + sum(lengths) + 4
    # memoryview and bytearray inputs read the same
    assert read_stream(bytearray(blob)).header == HEADER
    assert read_stream(memoryview(blob)).header == HEADER


def test_writing_is_deterministic():
    assert write_stream({"b": 1, "a": 2}, [b"x"]) == write_stream({"a": 2, "b": 1}, [b"x"])


def test_every_single_bit_flip_is_detected():
    blob = _blob()
    for i in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(featcodec.FormatError):
            read_stream(bytes(bad))


def test_every_truncation_is_a_truncated_error():
    blob = _blob()
    for n in range(1, len(blob)):
        with pytest.raises(featcodec.TruncatedError):
            read_stream(blob[:n])


@pytest.mark.parametrize("data", [b"", b"hello world, this is not a stream", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_foreign_bytes(data):
    with pytest.raises(featcodec.FormatError, match="not a featcodec stream"):
        read_stream(data)


def test_not_bytes():
    with pytest.raises(featcodec.FormatError, match="bytes"):
        read_stream("a string")


def test_newer_version_is_a_version_error():
    blob = bytearray(_blob())
    struct.pack_into("<H", blob, 8, FORMAT_VERSION + 1)
    with pytest.raises(featcodec.VersionError, match="[Uu]pgrade"):
        read_stream(_recrc(bytes(blob[:-4])))


def test_trailing_bytes():
    with pytest.raises(featcodec.FormatError, match="trailing"):
        read_stream(_blob() + b"\0")


def test_checksum_error():
    blob = bytearray(_blob())
    blob[-10] ^= 0x40
    with pytest.raises(featcodec.ChecksumError):
        read_stream(bytes(blob))


def test_caps_are_enforced_before_allocation():
    huge_header = MAGIC + struct.pack("<HHII", FORMAT_VERSION, 0, MAX_HEADER_BYTES + 1, 0)
    with pytest.raises(featcodec.FormatError, match="header"):
        read_stream(huge_header + bytes(8))
    many = MAGIC + struct.pack("<HHII", FORMAT_VERSION, 0, 2, MAX_SECTIONS + 1)
    with pytest.raises(featcodec.FormatError, match="sections"):
        read_stream(many + b"{}" + bytes(8 * (MAX_SECTIONS + 1)) + bytes(4))
    # a section length of 2**64 - 1 is checked against the bytes present, not allocated
    body = MAGIC + struct.pack("<HHII", FORMAT_VERSION, 0, 2, 1) + b"{}" + struct.pack("<Q", 2**64 - 1)
    with pytest.raises(featcodec.TruncatedError):
        read_stream(_recrc(body))


@pytest.mark.parametrize("text", [b"[1,", b"\xff\xfe", b"NaN", b"[" * 100000 + b"]" * 100000])
def test_bad_json_with_valid_checksum(text):
    body = MAGIC + struct.pack("<HHII", FORMAT_VERSION, 0, len(text), 0) + text
    if len(text) > MAX_HEADER_BYTES:
        pytest.skip("too large")
    with pytest.raises(featcodec.FormatError):
        read_stream(_recrc(body))
