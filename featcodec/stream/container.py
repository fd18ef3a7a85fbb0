"""The featcodec stream container: a fixed binary prefix, a JSON header, length-prefixed
payload sections and a CRC-32. The layout is specified in ``docs/format.md``.

Reading is defensive: every length is checked against the bytes that remain before it is
used, the header and section counts are capped, the checksum is verified before the
header is parsed, and every header field is validated (types, ranges, element counts), so
untrusted bytes raise a :class:`featcodec.FeatcodecError` and never allocate unboundedly.

Example:
    >>> blob = write_stream({"codec": "raw"}, [b"abc"])
    >>> s = read_stream(blob)
    >>> s.header["codec"], bytes(s.sections[0])
    ('raw', b'abc')
"""

from __future__ import annotations

import functools
import json
import math
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ChecksumError, FormatError, TruncatedError, VersionError
from ..limits import MAX_ELEMENTS, MAX_HEADER_BYTES, MAX_NDIM, MAX_SECTIONS

__all__ = ["MAGIC", "FORMAT_VERSION", "BASE_VERSION", "UNIFORM_VERSION", "STAGES_VERSION", "RESIDUAL_VERSION", "VALUE_STAGES_VERSION", "SPATIAL_VERSION", "GRID_VERSION", "PACKED_VERSION", "HEADER_TOKENS", "Stream",
           "write_stream", "stream_size", "read_stream", "validate_header", "COMMON_FIELDS"]

MAGIC = b"\x89FCODEC\n"
#: the newest format version this library reads and writes
FORMAT_VERSION = 10
#: the version written unless the header uses a field of a newer one (versions 3-10 keep
#: version 2's container; 3 adds ``transform.uniform`` and the index codec's grouped tables,
#: 4 the grouped tables' predictions, 5 the ``stages`` field, 6 the error-bounded residual
#: of learned streams (field and section ``residual``, codec parameter ``guard``), 7 the
#: ``rotation`` and ``scales`` stages, 8 the ``spatial`` stage, 9 its patch grids of
#: ViT-style tokens, 10 packed transform levels, docs/format.md)
BASE_VERSION = 2
#: the version that introduced ``transform.uniform``
UNIFORM_VERSION = 3
#: the version that introduced the ``stages`` field (a pipeline other than the default)
STAGES_VERSION = 5
#: the version that introduced the ``residual`` stage and the learned codecs' ``guard``
RESIDUAL_VERSION = 6
#: the version that introduced the ``"rotation"`` and ``"scales"`` stages (their fields)
VALUE_STAGES_VERSION = 7
#: the version that introduced the ``"spatial"`` stage (its field)
SPATIAL_VERSION = 8
#: the version that introduced the ``"spatial"`` stage on ViT-style tokens (its field's
#: ``grid`` and ``prefix``)
GRID_VERSION = 9
#: the version that introduced packed transform levels (``transform.packed``)
PACKED_VERSION = 10
_PREFIX = struct.Struct("<8sHH")  # magic, version, flags
_FIXED_V1 = struct.Struct("<8sHHII")  # version 1: ..., u32 header length, u32 section count
_CRC = struct.Struct("<I")
# Version 2 stores the compact ASCII JSON header with each of these fragments replaced
# by one byte, 0x80 + its index (JSON written with ensure_ascii never has such bytes).
# Greedy longest match, so encoding is deterministic; part of the format: changing the
# table means a new format version.
HEADER_TOKENS = (
    '{"bits":', ',"codec":"', 'index"', 'hyperprior"', 'elic"', 'raw"',
    ',"codec_params":{', '"model":"', '","quality":', ',"rans":"featcodec"}', '},"dtype":"',
    'float32"', 'float16"', 'bfloat16"', 'float64"', ',"framework":"', 'numpy"', 'torch"',
    ',"pack":{', '"grid":[', '],"layout":"', '"layout":"', 'mosaic"', 'plane"', 'tokens"',
    'kv"', 'vit"', 'flat"', ',"shape":[', ']},"sections":["payload"', ',"levels"',
    ',"thresholds"', '],"shape":[', '],"transform":{"channel_axis":',
    'null,"channels":null', ',"channels":', ',"embedded":', 'true', 'false', ',"id":"',
    '","thresholds":', '}}', 'null', ',"packed":',
)
_TOKEN_BYTES = tuple(t.encode() for t in HEADER_TOKENS)


# greedy longest match: at each position the longest token that matches (alternatives
# longest first), else the character itself
_TOKEN_RE = re.compile(b"|".join(re.escape(t) for t in sorted(_TOKEN_BYTES, key=len, reverse=True)))
_TOKEN_CODE = {tok: bytes([0x80 + i]) for i, tok in enumerate(_TOKEN_BYTES)}
_CODE_RE = re.compile(b"[\x80-\xff]")
_ASCII = bytes(range(0x80))
_FRAMEWORKS = ("numpy", "torch")
_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: the header fields of every stream, and their JSON types; the other fields belong to
#: the stages (featcodec.stages), which validate them
COMMON_FIELDS = {
    "codec": str,
    "codec_params": dict,
    "bits": int,
    "dtype": str,
    "shape": list,
    "framework": str,
    "sections": list,
}


@dataclass(frozen=True)
class Stream:
    """A parsed stream: its format version, validated JSON header and payload sections
    (zero-copy ``memoryview`` slices of the input)."""

    version: int
    header: dict[str, Any]
    sections: list[memoryview]


@functools.lru_cache(maxsize=64)
def _compress_header(js: bytes) -> bytes:
    """Replace :data:`HEADER_TOKENS` in ASCII JSON by their bytes (greedy longest match);
    remembered, as the streams of one session repeat their header."""
    return _TOKEN_RE.sub(lambda m: _TOKEN_CODE[m.group(0)], js)


def _expand_header(b: bytes) -> bytes:
    """Inverse of :func:`_compress_header`; bounded by ``MAX_HEADER_BYTES`` (checked before
    anything is expanded)."""
    codes = b.translate(None, _ASCII)  # the token bytes, in order
    unknown = [c for c in codes if c - 0x80 >= len(_TOKEN_BYTES)]
    if unknown:
        raise FormatError(f"featcodec stream header has the unknown token byte 0x{unknown[0]:02x}: corrupt.")
    if len(b) - len(codes) + sum(len(_TOKEN_BYTES[c - 0x80]) for c in codes) > MAX_HEADER_BYTES:
        raise FormatError(f"featcodec stream header expands beyond {MAX_HEADER_BYTES} bytes: corrupt.")
    return _CODE_RE.sub(lambda m: _TOKEN_BYTES[m.group(0)[0] - 0x80], b)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _read_varint(v: memoryview, pos: int, what: str) -> tuple[int, int]:
    """An unsigned LEB128 of at most 9 bytes (< 2**63) at ``pos``; returns (value, next pos)."""
    value = 0
    for k in range(9):
        if pos + k >= len(v):
            raise TruncatedError(f"featcodec stream truncated inside the {what}.")
        byte = v[pos + k]
        value |= (byte & 0x7F) << (7 * k)
        if not byte & 0x80:
            if byte == 0 and k > 0:
                raise FormatError(f"featcodec stream has a non-minimal varint as the {what}: corrupt.")
            return value, pos + k + 1
    raise FormatError(f"featcodec stream has an overlong varint as the {what}: corrupt.")


def _encode_header(header: dict[str, Any]) -> bytes:
    js = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    if len(js) > MAX_HEADER_BYTES:
        raise FormatError(f"stream header of {len(js)} bytes exceeds {MAX_HEADER_BYTES}.")
    return _compress_header(js.encode("ascii"))


def _frame(hbytes: bytes, lengths: Sequence[int], version: int) -> bytes:
    """Everything before the sections: prefix, header length, section lengths, header."""
    if not BASE_VERSION <= version <= FORMAT_VERSION:
        raise ValueError(f"featcodec writes format versions {BASE_VERSION}..{FORMAT_VERSION}, not {version}.")
    return b"".join([_PREFIX.pack(MAGIC, version, 0), _varint(len(hbytes)), _varint(len(lengths)),
                     *map(_varint, lengths), hbytes])


def write_stream(header: dict[str, Any], sections: Sequence[bytes | bytearray | memoryview],
                 version: int = BASE_VERSION) -> bytes:
    """Serialise ``header`` (a JSON-able dict) and ``sections`` into one stream of format
    ``version`` (the caller picks the lowest that holds the header's fields).

    The JSON is written compactly with sorted keys, so equal inputs give identical bytes.
    """
    if len(sections) > MAX_SECTIONS:
        raise FormatError(f"a stream holds at most {MAX_SECTIONS} sections.")
    lengths = [len(memoryview(s).cast("B")) for s in sections]
    frame = _frame(_encode_header(header), lengths, version)
    crc = zlib.crc32(frame)
    for s in sections:
        crc = zlib.crc32(s, crc)
    return b"".join([frame, *sections, _CRC.pack(crc)])  # one copy of the (large) sections


def stream_size(header: dict[str, Any], section_lengths: Sequence[int]) -> int:
    """Bytes :func:`write_stream` would return for ``header`` and sections of these lengths
    (for rate targets: no payload needs to be copied or checksummed)."""
    return len(_frame(_encode_header(header), section_lengths, BASE_VERSION)) + sum(section_lengths) + _CRC.size


def _as_view(blob: Any) -> memoryview:
    if isinstance(blob, (bytes, bytearray, memoryview)):
        v = memoryview(blob)
        if v.ndim != 1 or v.itemsize != 1:
            v = v.cast("B")
        return v
    raise FormatError(
        f"a featcodec stream is bytes, not {type(blob).__name__}; pass the bytes featcodec.encode returned."
    )


def _reject_constant(name: str) -> Any:
    raise FormatError(f"stream header contains the non-JSON number {name}.")


def read_stream(blob: bytes | bytearray | memoryview) -> Stream:
    """Parse and check a stream; raises a :class:`featcodec.FormatError` subclass on any defect.

    Order of checks: magic (``FormatError``), version (``VersionError``), flags, header
    and section lengths against the bytes present (``TruncatedError``; trailing bytes are a
    ``FormatError``), CRC-32 (``ChecksumError``), then the JSON header's fields.
    """
    v = _as_view(blob)
    n = len(v)
    if n < len(MAGIC) or v[: len(MAGIC)] != MAGIC:
        if n < len(MAGIC) and bytes(v) == MAGIC[:n] and n > 0:
            raise TruncatedError(f"featcodec stream truncated to {n} bytes (it ends inside the magic).")
        raise FormatError(
            "this is not a featcodec stream (bad magic bytes); pass the bytes featcodec.encode "
            "returned, unchanged (open files in binary mode)."
        )
    if n < _PREFIX.size:
        raise TruncatedError(f"featcodec stream truncated to {n} bytes (the fixed part needs {_PREFIX.size}).")
    _, version, flags = _PREFIX.unpack_from(v, 0)
    if version > FORMAT_VERSION:
        raise VersionError(
            f"this stream uses featcodec format version {version}; this featcodec reads up to "
            f"version {FORMAT_VERSION}. Upgrade featcodec to decode it."
        )
    if version == 0:
        raise FormatError("featcodec stream has format version 0, which does not exist: the stream is corrupt.")
    if flags != 0:
        raise FormatError(f"featcodec stream has unknown flags 0x{flags:04x}: corrupt, or written by a newer featcodec.")
    if version == 1:
        if n < _FIXED_V1.size:
            raise TruncatedError(f"featcodec stream truncated to {n} bytes (the fixed part needs {_FIXED_V1.size}).")
        _, _, _, hlen, nsec = _FIXED_V1.unpack_from(v, 0)
        pos = _FIXED_V1.size
    else:
        hlen, pos = _read_varint(v, _PREFIX.size, "header length")
        nsec, pos = _read_varint(v, pos, "section count")
    if hlen > MAX_HEADER_BYTES:
        raise FormatError(f"featcodec stream claims a {hlen}-byte header (at most {MAX_HEADER_BYTES}): corrupt.")
    if nsec > MAX_SECTIONS:
        raise FormatError(f"featcodec stream claims {nsec} sections (at most {MAX_SECTIONS}): corrupt.")
    if version == 1:  # the header, then u64 section lengths
        if n < pos + hlen + 8 * nsec + _CRC.size:
            raise TruncatedError(f"featcodec stream truncated: {n} bytes, but its header alone needs "
                                 f"{pos + hlen + 8 * nsec + _CRC.size}.")
        hbytes = bytes(v[pos : pos + hlen])
        lengths = list(struct.unpack_from(f"<{nsec}Q", v, pos + hlen))
        pos += hlen + 8 * nsec
    else:  # varint section lengths, then the token-compressed header
        lengths = []
        for i in range(nsec):
            length, pos = _read_varint(v, pos, f"length of section {i}")
            lengths.append(length)
        if n < pos + hlen + _CRC.size:
            raise TruncatedError(f"featcodec stream truncated: {n} bytes, but its header alone needs "
                                 f"{pos + hlen + _CRC.size}.")
        hbytes = bytes(v[pos : pos + hlen])
        pos += hlen
    total = pos + sum(lengths) + _CRC.size
    if n < total:
        raise TruncatedError(f"featcodec stream truncated: {n} bytes of {total}. Was the transfer cut short?")
    if n > total:
        raise FormatError(f"featcodec stream has {n - total} unexpected trailing bytes; pass exactly one stream.")
    (crc,) = _CRC.unpack_from(v, n - _CRC.size)
    if zlib.crc32(v[: n - _CRC.size]) != crc:
        raise ChecksumError("featcodec stream checksum mismatch: the bytes were corrupted after encoding.")
    try:
        if version >= 2:
            hbytes = _expand_header(hbytes)
        h = json.loads(hbytes.decode("utf-8"), parse_constant=_reject_constant)
    except FormatError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise FormatError(f"featcodec stream header is not valid JSON ({e}).") from None
    sections = []
    for length in lengths:
        sections.append(v[pos : pos + length])
        pos += length
    return Stream(version, h, sections)


def validate_header(h: Any, nsections: int, version: int) -> dict[str, Any]:
    """Check the common fields of a stream header (:data:`COMMON_FIELDS`, and ``stages``
    when present; docs/format.md); returns ``h``. The stages' own fields are checked by the
    stages (:func:`featcodec.pipeline.read_header`).

    Raises :class:`featcodec.FormatError` naming the first bad field.
    """
    if not isinstance(h, dict):
        raise FormatError("featcodec stream header is not a JSON object.")
    missing = set(COMMON_FIELDS) - set(h)
    if missing:
        raise FormatError(f"featcodec stream header has missing {sorted(missing)} fields.")
    for k, t in COMMON_FIELDS.items():
        if not isinstance(h[k], t) or isinstance(h[k], bool):
            raise FormatError(f"featcodec stream header field {k!r} has the wrong type.")
    if "stages" in h and (version < STAGES_VERSION or not isinstance(h["stages"], list)):
        raise FormatError(f"featcodec stream header field 'stages' is malformed (format version {version}).")
    if not (1 <= len(h["codec"]) <= 64):
        raise FormatError("featcodec stream header names an invalid codec.")
    if not (1 <= h["bits"] <= 16):
        raise FormatError(f"featcodec stream header has bits={h['bits']} (need 1..16).")
    if h["dtype"] not in _DTYPES:
        raise FormatError(f"featcodec stream header has unknown dtype {h['dtype']!r:.40}.")
    if h["framework"] not in _FRAMEWORKS:
        raise FormatError(f"featcodec stream header has unknown framework {h['framework']!r:.40}.")
    shape = h["shape"]
    if not (1 <= len(shape) <= MAX_NDIM) or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape
    ):
        raise FormatError(f"featcodec stream header has an invalid shape {shape!r:.80}.")
    if math.prod(shape) > MAX_ELEMENTS:
        raise FormatError(f"featcodec stream claims {math.prod(shape)} values (at most {MAX_ELEMENTS}).")
    names = h["sections"]
    if len(names) != nsections or any(not isinstance(s, str) for s in names) or len(set(names)) != len(names):
        raise FormatError("featcodec stream header's section names do not match its sections.")
    return h
