"""The stream container: round trip, every defect class raises its documented error."""

import json
import struct
import zlib

import numpy as np
import pytest

import featcodec
from featcodec.stream.container import BASE_VERSION, FORMAT_VERSION, HEADER_TOKENS, MAGIC, read_stream, write_stream
from featcodec.limits import MAX_HEADER_BYTES, MAX_SECTIONS

HEADER = {"codec": "test", "values": [1, 2.5, "x"]}
SECTIONS = [b"payload bytes", b"", bytes(range(256))]


def _blob():
    return write_stream(HEADER, SECTIONS)


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _varint(v: int) -> bytes:  # unsigned LEB128, written independently of the library
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v >= 0x80 else 0)])
        v >>= 7
        if not v:
            return out


def _v2(header: bytes, lengths, sections=b"", version=BASE_VERSION) -> bytes:
    """A version-2 (or 3: the same container) stream built by hand from docs/format.md
    (header bytes as given)."""
    body = (MAGIC + struct.pack("<HH", version, 0) + _varint(len(header)) + _varint(len(lengths))
            + b"".join(map(_varint, lengths)) + header + sections)
    return _recrc(body)


def _v1(header: bytes, lengths, sections=b"") -> bytes:
    """A version-1 stream: u32 header length and section count, JSON, u64 lengths."""
    return _recrc(MAGIC + struct.pack("<HHII", 1, 0, len(header), len(lengths)) + header
                  + struct.pack(f"<{len(lengths)}Q", *lengths) + sections)


def test_round_trip_and_layout():
    blob = _blob()
    s = read_stream(blob)
    assert s.version == BASE_VERSION == 2 and FORMAT_VERSION == 10 and s.header == HEADER
    assert [bytes(x) for x in s.sections] == SECTIONS
    # documented layout: magic, u16 version, u16 flags, varint header length, varint
    # section count, varint section lengths, the header, the sections, CRC-32
    js = b'{"codec":"test","values":[1,2.5,"x"]}'  # no token of the table occurs in it
    assert blob == _v2(js, [len(x) for x in SECTIONS], b"".join(SECTIONS))
    # version 3 is the same container; written only when asked (for its header fields)
    v3 = write_stream(HEADER, SECTIONS, version=3)
    assert v3 == _v2(js, [len(x) for x in SECTIONS], b"".join(SECTIONS), version=3)
    assert read_stream(v3).version == 3
    with pytest.raises(ValueError):
        write_stream(HEADER, SECTIONS, version=1)
    # memoryview and bytearray inputs read the same
    assert read_stream(bytearray(blob)).header == HEADER
    assert read_stream(memoryview(blob)).header == HEADER


def _read_varint(b: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        v |= (b[pos] & 0x7F) << shift
        shift += 7
        pos += 1
        if b[pos - 1] < 0x80:
            return v, pos


def test_header_tokens_shrink_a_real_header_and_round_trip():
    import numpy as np

    x = np.linspace(-1, 1, 960, dtype=np.float32).reshape(1, 6, 10, 16)
    blob = featcodec.encode(x, transform=featcodec.fit_transform(x, bits=4), embed_transform=False)
    js = json.dumps(read_stream(blob).header, sort_keys=True, separators=(",", ":")).encode()
    hlen, pos = _read_varint(blob, 12)
    nsec, pos = _read_varint(blob, pos)
    for _ in range(nsec):
        _, pos = _read_varint(blob, pos)
    packed = blob[pos : pos + hlen]
    # expand by the documented rule: byte 0x80 + i stands for HEADER_TOKENS[i]
    expanded = b"".join(HEADER_TOKENS[c - 0x80].encode() if c >= 0x80 else bytes([c]) for c in packed)
    assert expanded == js
    assert hlen < len(js) / 2, (hlen, len(js))


def test_version_1_streams_still_read():
    js = b'{"codec":"test","values":[1,2.5,"x"]}'
    s = read_stream(_v1(js, [len(x) for x in SECTIONS], b"".join(SECTIONS)))
    assert s.version == 1 and s.header == HEADER and [bytes(x) for x in s.sections] == SECTIONS


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


@pytest.mark.parametrize("make", [_v1, _v2])
def test_caps_are_enforced_before_allocation(make):
    # a header length beyond the cap, claimed by the fixed part (v1) or the varint (v2)
    if make is _v1:
        huge = MAGIC + struct.pack("<HHII", 1, 0, MAX_HEADER_BYTES + 1, 0) + bytes(8)
    else:
        huge = MAGIC + struct.pack("<HH", FORMAT_VERSION, 0) + _varint(MAX_HEADER_BYTES + 1) + bytes(8)
    with pytest.raises(featcodec.FormatError, match="header"):
        read_stream(huge)
    with pytest.raises(featcodec.FormatError, match="sections"):
        read_stream(make(b"{}", [0] * (MAX_SECTIONS + 1)))
    # a section length of 2**63 - 1 is checked against the bytes present, not allocated
    with pytest.raises(featcodec.TruncatedError):
        read_stream(make(b"{}", [2**63 - 1]))


@pytest.mark.parametrize("varint", [b"\x80" * 9 + b"\x01", b"\x81\x00"])
def test_overlong_or_non_minimal_varints_are_format_errors(varint):
    body = MAGIC + struct.pack("<HH", FORMAT_VERSION, 0) + varint + b"\x00" + b"{}"
    with pytest.raises(featcodec.FormatError, match="varint"):
        read_stream(_recrc(body))


def test_unknown_header_token_is_a_format_error():
    with pytest.raises(featcodec.FormatError, match="token"):
        read_stream(_v2(b"{\xff}", []))


def test_header_expanding_beyond_the_cap_is_a_format_error():
    longest = max(range(len(HEADER_TOKENS)), key=lambda i: len(HEADER_TOKENS[i]))
    bomb = bytes([0x80 + longest]) * (MAX_HEADER_BYTES // len(HEADER_TOKENS[longest]) + 1)
    with pytest.raises(featcodec.FormatError, match="expands"):
        read_stream(_v2(bomb, []))


@pytest.mark.parametrize("make", [_v1, _v2])
@pytest.mark.parametrize("text", [b"[1,", b"\xff\xfe", b"NaN", b"[" * 100000 + b"]" * 100000])
def test_bad_json_with_valid_checksum(make, text):
    with pytest.raises(featcodec.FormatError):
        read_stream(make(text, []))


def _greedy_reference(js: bytes) -> bytes:
    """docs/format.md's header compression, written out: at each position the longest
    token that matches, else the byte itself."""
    toks = sorted(((t.encode(), 0x80 + i) for i, t in enumerate(HEADER_TOKENS)), key=lambda tc: -len(tc[0]))
    out, i = bytearray(), 0
    while i < len(js):
        for tok, code in toks:
            if js.startswith(tok, i):
                out.append(code)
                i += len(tok)
                break
        else:
            out.append(js[i])
            i += 1
    return bytes(out)


def test_header_compression_is_the_documented_greedy_longest_match():
    from featcodec.stream.container import _compress_header, _expand_header

    rng = np.random.default_rng(9)
    pieces = [t.encode() for t in HEADER_TOKENS] + [b"a", b"1", b",", b'"', b"{", b"}", b"[", b"]", b"e"]
    for _ in range(300):
        js = b"".join(pieces[int(k)] for k in rng.integers(len(pieces), size=int(rng.integers(0, 60))))
        c = _compress_header(js)
        assert c == _greedy_reference(js)
        assert _expand_header(c) == js
    with pytest.raises(featcodec.FormatError, match="unknown token byte 0xff"):
        _expand_header(b'{"a":\xff}')
