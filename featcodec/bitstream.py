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

import json
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import ChecksumError, FormatError, TruncatedError, VersionError
from .limits import MAX_ELEMENTS, MAX_HEADER_BYTES, MAX_NDIM, MAX_SECTIONS

__all__ = ["MAGIC", "FORMAT_VERSION", "Stream", "write_stream", "read_stream", "header", "validate_header"]

MAGIC = b"\x89FCODEC\n"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<8sHHII")  # magic, version, flags, header length, section count
_CRC = struct.Struct("<I")
_FRAMEWORKS = ("numpy", "torch")
_DTYPES = ("float16", "bfloat16", "float32", "float64")
_HEADER_KEYS = {
    "codec": str,
    "codec_params": dict,
    "bits": int,
    "transform": (dict, type(None)),
    "pack": dict,
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


def write_stream(header: dict[str, Any], sections: Sequence[bytes | bytearray | memoryview]) -> bytes:
    """Serialise ``header`` (a JSON-able dict) and ``sections`` into one stream.

    The JSON is written compactly with sorted keys, so equal inputs give identical bytes.
    """
    if len(sections) > MAX_SECTIONS:
        raise FormatError(f"a stream holds at most {MAX_SECTIONS} sections.")
    hbytes = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    if len(hbytes) > MAX_HEADER_BYTES:
        raise FormatError(f"stream header of {len(hbytes)} bytes exceeds {MAX_HEADER_BYTES}.")
    parts = [
        _FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(hbytes), len(sections)),
        hbytes,
        struct.pack(f"<{len(sections)}Q", *(len(memoryview(s).cast("B")) for s in sections)),
        *sections,
    ]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


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
    if n < _FIXED.size:
        raise TruncatedError(f"featcodec stream truncated to {n} bytes (the fixed part needs {_FIXED.size}).")
    _, version, flags, hlen, nsec = _FIXED.unpack_from(v, 0)
    if version > FORMAT_VERSION:
        raise VersionError(
            f"this stream uses featcodec format version {version}; this featcodec reads up to "
            f"version {FORMAT_VERSION}. Upgrade featcodec to decode it."
        )
    if version == 0:
        raise FormatError("featcodec stream has format version 0, which does not exist: the stream is corrupt.")
    if flags != 0:
        raise FormatError(f"featcodec stream has unknown flags 0x{flags:04x}: corrupt, or written by a newer featcodec.")
    if hlen > MAX_HEADER_BYTES:
        raise FormatError(f"featcodec stream claims a {hlen}-byte header (at most {MAX_HEADER_BYTES}): corrupt.")
    if nsec > MAX_SECTIONS:
        raise FormatError(f"featcodec stream claims {nsec} sections (at most {MAX_SECTIONS}): corrupt.")
    pos = _FIXED.size
    need = pos + hlen + 8 * nsec
    if n < need + _CRC.size:
        raise TruncatedError(f"featcodec stream truncated: {n} bytes, but its header alone needs {need + _CRC.size}.")
    hbytes = v[pos : pos + hlen]
    lengths = struct.unpack_from(f"<{nsec}Q", v, pos + hlen)
    pos = need
    total = pos + sum(lengths) + _CRC.size
    if n < total:
        raise TruncatedError(f"featcodec stream truncated: {n} bytes of {total}. Was the transfer cut short?")
    if n > total:
        raise FormatError(f"featcodec stream has {n - total} unexpected trailing bytes; pass exactly one stream.")
    (crc,) = _CRC.unpack_from(v, n - _CRC.size)
    if zlib.crc32(v[: n - _CRC.size]) != crc:
        raise ChecksumError("featcodec stream checksum mismatch: the bytes were corrupted after encoding.")
    try:
        h = json.loads(bytes(hbytes).decode("utf-8"), parse_constant=_reject_constant)
    except FormatError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise FormatError(f"featcodec stream header is not valid JSON ({e}).") from None
    sections = []
    for length in lengths:
        sections.append(v[pos : pos + length])
        pos += length
    return Stream(version, h, sections)


def validate_header(h: Any, nsections: int) -> dict[str, Any]:
    """Check the common fields of a stream header (see docs/format.md); returns ``h``.

    Raises :class:`featcodec.FormatError` naming the first bad field.
    """
    from .packing import PackInfo  # local: packing does not depend on the container

    if not isinstance(h, dict):
        raise FormatError("featcodec stream header is not a JSON object.")
    missing = set(_HEADER_KEYS) - set(h)
    extra = set(h) - set(_HEADER_KEYS)
    if missing or extra:
        raise FormatError(
            f"featcodec stream header has missing {sorted(missing)} / unknown {sorted(extra)} fields."
        )
    for k, t in _HEADER_KEYS.items():
        if not isinstance(h[k], t) or isinstance(h[k], bool):
            raise FormatError(f"featcodec stream header field {k!r} has the wrong type.")
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
    info = PackInfo.from_dict(h["pack"])
    if list(info.shape) != shape:
        raise FormatError("featcodec stream header: pack shape and tensor shape differ.")
    names = h["sections"]
    if len(names) != nsections or any(not isinstance(s, str) for s in names) or len(set(names)) != len(names):
        raise FormatError("featcodec stream header's section names do not match its sections.")
    return h


def header(blob: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Read a stream's header without decoding its payload.

    Returns the JSON header plus ``format_version``, ``section_lengths`` (by name) and
    ``size`` (bytes). Checks the checksum, so a corrupt stream raises here too.

    Example:
        >>> import numpy as np, featcodec
        >>> h = featcodec.header(featcodec.encode(np.ones((4, 8), np.float32), bits=4))
        >>> h["codec"], h["shape"], h["dtype"]
        ('index', [4, 8], 'float32')
    """
    s = read_stream(blob)
    h = dict(validate_header(s.header, len(s.sections)))
    h["format_version"] = s.version
    h["section_lengths"] = {name: len(sec) for name, sec in zip(h["sections"], s.sections)}
    h["size"] = len(_as_view(blob))
    return h
