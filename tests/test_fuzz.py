"""Decoding hostile bytes: at least 100,000 mutated, truncated, spliced and random streams
per run (seeded), each of which must decode to the correct result or raise a
FeatcodecError, never anything else; and every single-bit flip of a stream is detected."""

import random
import struct
import zlib

import numpy as np
import pytest
import torch

import featcodec
from featcodec.stream.container import read_stream, write_stream

N_MUTATED = 100_000
N_RECRC = 3_000


def _streams():
    rng = np.random.default_rng(7)
    t = featcodec.fit_transform(rng.normal(size=4000).astype(np.float32), bits=10)
    xs = [
        (rng.standard_t(3, size=(3, 5)).astype(np.float32), {"bits": 3}),
        (torch.from_numpy(rng.normal(size=(1, 2, 3, 4)).astype(np.float32)).to(torch.bfloat16), {"bits": 4}),
        (rng.normal(size=(2, 6)).astype(np.float16), {"bits": 10}),
        (rng.normal(size=(4, 4)).astype(np.float32), {"transform": t, "embed_transform": False}),
        (rng.standard_t(3, size=(4, 6)).astype(np.float32), {"max_error": 0.1}),  # version 3
        ((rng.normal(size=(1, 256, 16)) * np.exp(np.linspace(-2, 2, 16)) + 3 * np.arange(16)).astype(np.float32),
         {"bits": 6}),  # the index codec's column model
        (rng.normal(size=(3, 5)).astype(np.float32),
         {"transform": featcodec.fit_uniform(rng.normal(size=(2, 5)).astype(np.float32), bits=5, channel_axis=1)}),
        # ViT-like tokens, a class token then a smooth 16 x 16 grid: predictions (version 4)
        (np.concatenate([rng.normal(size=(1, 1, 8)) * 4, np.cumsum(np.cumsum(
            rng.normal(size=(1, 16, 16, 8)), axis=1), axis=2).reshape(1, 256, 8) * 0.3], axis=1).astype(np.float32),
         {"max_error": 0.2}),
        # the value stages: exact outliers, a Hadamard rotation, per-token scales (version 7)
        (rng.standard_t(3, size=(6, 16)).astype(np.float32), {"bits": 3, "outliers": 2, "rotation": 5, "scales": "token"}),
        # the spatial stage: a blockwise Hadamard of a channels-first map (version 8)
        (np.cumsum(rng.normal(size=(1, 2, 8, 8)), axis=3).astype(np.float32), {"bits": 4, "spatial": 4}),
        # ... and of the patch grid of ViT-style tokens, a class token first (version 9)
        (np.cumsum(rng.normal(size=(1, 17, 6)), axis=1).astype(np.float32), {"bits": 4, "spatial": 2}),
    ]
    featcodec.register_transform(t)
    out = []
    for x, kw in xs:
        blob = featcodec.encode(x, **kw)
        params = featcodec.header(blob)["codec_params"]
        assert kw.get("bits") != 6 or params == {"table": "columns"}
        assert kw.get("max_error") != 0.2 or params == {"table": "columns", "lags": [1, 16]}
        out.append((blob, featcodec.decode(blob)))
    return out


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _mutate(rng: random.Random, blob: bytes) -> bytes:
    b = bytearray(blob)
    kind = rng.randrange(7)
    if kind == 0:  # flip 1..8 random bits
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif kind == 1:  # overwrite random bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 2:  # truncate
        b = b[: rng.randrange(len(b))]
    elif kind == 3:  # insert bytes
        i = rng.randint(0, len(b))
        b[i:i] = rng.randbytes(rng.randint(1, 8))
    elif kind == 4:  # delete a span
        i = rng.randrange(len(b))
        del b[i : i + rng.randint(1, 8)]
    elif kind == 5:  # magic, then random bytes
        b = bytearray(blob[: rng.randint(8, 23)]) + bytearray(rng.randbytes(rng.randint(0, 79)))
    else:  # pure random bytes
        b = bytearray(rng.randbytes(rng.randint(0, 119)))
    return bytes(b)


def _decode_checked(blob, expect):
    try:
        y = featcodec.decode(blob)
    except featcodec.FeatcodecError:
        return "error"
    assert expect is not None and _same(expect, y), "a damaged stream decoded to a wrong result"
    return "ok"


def test_mutated_truncated_and_random_streams():
    rng = random.Random(2024)
    streams = _streams()
    counts = {"error": 0, "ok": 0}
    changed = 0
    for k in range(N_MUTATED):
        blob, expect = streams[k % len(streams)]
        bad = _mutate(rng, blob)
        changed += bad != blob
        counts[_decode_checked(bad, expect if bad == blob else None)] += 1
    # every changed stream was rejected; only the unchanged ones decoded (correctly)
    assert sum(counts.values()) == N_MUTATED and counts["error"] == changed > N_MUTATED * 0.99


def _recrc(body):
    return body + struct.pack("<I", zlib.crc32(body))


def test_mutations_with_a_recomputed_checksum_never_crash():
    """A checksum only stops accidents: forged streams (valid CRC) must still be parsed
    safely, reaching the JSON, header validation, rANS decoder and level checks."""
    rng = np.random.default_rng(99)
    streams = _streams()
    outcomes = {"error": 0, "result": 0}
    for k in range(N_RECRC):
        blob, expect = streams[k % len(streams)]
        s = read_stream(blob)
        if k % 3 == 0:  # damage a payload or levels section, keep the header
            secs = [bytearray(x) for x in s.sections]
            j = rng.integers(0, len(secs))
            if len(secs[j]):
                for _ in range(rng.integers(1, 4)):
                    secs[j][rng.integers(0, len(secs[j]))] ^= 1 << rng.integers(0, 8)
                if rng.random() < 0.3:
                    secs[j] = secs[j][: rng.integers(0, len(secs[j]))]
            bad = write_stream(s.header, [bytes(x) for x in secs], s.version)
        else:  # damage any byte before the checksum, then fix the checksum
            body = bytearray(blob[:-4])
            for _ in range(rng.integers(1, 3)):
                body[rng.integers(0, len(body))] = rng.integers(0, 256)
            bad = _recrc(bytes(body))
        try:
            h = featcodec.header(bad)
            assert isinstance(h, dict)
        except featcodec.FeatcodecError:
            pass
        try:
            y = featcodec.decode(bad)
        except featcodec.FeatcodecError:
            outcomes["error"] += 1
            continue
        # an undetectable forgery may decode, but only to a well-formed tensor
        outcomes["result"] += 1
        assert type(y) is type(expect) and y.dtype == expect.dtype
        assert tuple(y.shape) == tuple(featcodec.header(bad)["shape"])
    assert outcomes["error"] > N_RECRC // 2


@pytest.mark.parametrize("which", [0, 3, 4, 5])
def test_every_single_bit_flip_is_detected(which):
    blob, _ = _streams()[which]
    for i in range(len(blob) * 8):
        bad = bytearray(blob)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(featcodec.FormatError):
            featcodec.decode(bytes(bad))


def test_random_packed_levels_sections_never_crash():
    """Format version 10's packed levels (docs/format.md): any bytes under any shift give a
    FeatcodecError or a well-formed tensor, never another exception."""
    rng = np.random.default_rng(10)
    blob = featcodec.encode(rng.normal(size=(4, 8)).astype(np.float32), bits=2)
    s = read_stream(blob)
    errors = 0
    for k in range(1500):
        raw = rng.integers(0, 256, rng.integers(0, 24)).astype(np.uint8).tobytes()
        if k % 2:  # mostly terminal bytes: the right number of varints, hostile values
            raw = bytes(b & 0x7F if rng.random() < 0.8 else b for b in raw)
        h = {**s.header, "transform": {**s.header["transform"], "packed": int(rng.integers(0, 24))}}
        try:
            y = featcodec.decode(write_stream(h, [bytes(s.sections[0]), raw], s.version))
        except featcodec.FeatcodecError:
            errors += 1
            continue
        assert isinstance(y, np.ndarray) and y.shape == (4, 8)
    assert errors > 1000
