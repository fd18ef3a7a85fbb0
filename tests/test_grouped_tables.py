"""The index codec's grouped tables (one rANS table per group of plane columns or mosaic
tiles) and their predictions: exact round trips, never larger than one table, the
cheapest mode per unit against numpy, and hostile payloads fail cleanly."""

import struct

from pathlib import Path

import numpy as np
import pytest

import featcodec
from featcodec.stream.container import read_stream, write_stream
from featcodec.codecs import grouped_tables
from featcodec.codecs.index import IndexCodec
from featcodec.stream.rans import decode_symbols, encode_symbols

FEATURES = Path(__file__).resolve().parent / "data" / "features"


def _channels_plane(rng, h, w, bits):
    """Columns with their own centre and spread, like the channels of a token plane;
    some centres sit at the ends of the range so residuals wrap around."""
    K = 1 << bits
    centre = rng.integers(0, K, w)
    centre[: min(w, 3)] = [0, K - 1, K // 2][: min(w, 3)]
    spread = np.exp(rng.uniform(-1, np.log(max(K / 8, 1.5)), w))
    v = np.rint(centre + rng.laplace(size=(h, w)) * spread).astype(np.int64) % K
    return v.astype(np.uint8 if bits <= 8 else np.uint16)


@pytest.mark.parametrize("bits", [1, 2, 5, 8, 9, 12, 16])
@pytest.mark.parametrize("shape", [(2, 2), (7, 3), (64, 96), (33, 200)])
def test_grouped_tables_round_trip_exactly(bits, shape):
    plane = _channels_plane(np.random.default_rng(bits * 1000 + shape[1]), *shape, bits)
    units = grouped_tables.units_of(plane, None)
    for lags in ((), (1,), (1, 2), (3, 1, 2)):
        lags = tuple(L for L in lags if L < units.shape[1])
        payload, used = grouped_tables.encode(units, bits, lags)
        out = grouped_tables.decode(payload, *units.shape, bits, used)
        assert out.dtype == plane.dtype and np.array_equal(grouped_tables.plane_of(out, shape, None), plane)
    c = IndexCodec()
    for tile in (None, (1, 1), (shape[0], 1), (1, shape[1])):  # through the codec, any tiling
        payload, params = c.encode_plane(plane, bits, tile=tile)
        assert np.array_equal(c.decode_plane(payload, shape, bits, params), plane)


@pytest.mark.parametrize("bits", [1, 3, 8, 9, 16])
@pytest.mark.parametrize("m", [1, 2, 7, 196, 70_000])  # 70,000: beyond the 2**16-value partial sums
def test_unit_statistics_match_numpy(bits, m):
    """The compiled per-unit pass (lower median, the cheapest of median / lag residuals
    mod 2**bits, summed signed magnitudes) against sorting and modular arithmetic in
    numpy, with any thread count."""
    from featcodec import _core

    rng = np.random.default_rng(bits * 100 + m)
    dtype = np.uint8 if bits <= 8 else np.uint16
    K = 1 << bits
    centre = rng.integers(0, K, (37, 1))
    walk = np.cumsum(rng.integers(-2, 3, (37, m)), axis=1) + centre
    noise = np.rint(rng.laplace(size=(37, m)) * 4) + centre
    units = (np.where(np.arange(37)[:, None] % 2, noise, walk).astype(np.int64) % K).astype(dtype)
    lags = [L for L in (1, 3) if L < m]
    med = np.sort(units, axis=1)[:, (m - 1) // 2]
    u = units.astype(np.int64)
    cands = [(u - med[:, None]) % K]
    for L in lags:
        c = cands[0].copy()
        c[:, L:] = (u[:, L:] - u[:, :-L]) % K
        cands.append(c)
    costs = np.stack([np.minimum(c, (K - c) % K).sum(axis=1) for c in cands])
    mode = np.argmin(costs, axis=0)  # ties to the lower mode, as argmin does
    for threads in (1, 2, 5):
        got = _core.unit_residuals(units, bits, lags, threads)
        assert [a.dtype for a in got] == [dtype, dtype, np.int64, np.uint8, np.int64]
        assert np.array_equal(got[4], costs[0])
        assert np.array_equal(got[0], med) and np.array_equal(got[3], mode)
        assert np.array_equal(got[1], np.stack(cands)[mode, np.arange(37)])
        assert np.array_equal(got[2], costs.min(axis=0))
    if m == 196 and bits >= 8:  # the random-walk rows take a prediction, the noise rows the median
        assert (mode[0::2] > 0).mean() > 0.8 and (mode[1::2] == 0).mean() > 0.8
    with pytest.raises(ValueError):
        _core.unit_residuals(units, bits, [m], 1)  # a lag must be shorter than the unit
    if dtype == np.uint16 and K < np.iinfo(dtype).max:  # a value beyond bits bits (the counting table's size)
        bad = units.copy()
        bad[-1, -1] = K
        with pytest.raises(ValueError, match="bits"):
            _core.unit_residuals(bad, bits, lags, 1)
    # mode 0's residuals of every unit, whatever its mode (the plan without predictions)
    assert np.array_equal(_core.minus_median(units, med, bits), cands[0])


def test_predictions_shrink_image_like_units_and_round_trip():
    """Smooth units (a random walk along each, like neighbouring patches or pixels) code
    in fewer bytes with a prediction; the lag-16 one is picked where values repeat every
    16 places (the row above in a 16-wide grid); decoding restores every value."""
    rng = np.random.default_rng(7)
    walk = (np.cumsum(rng.integers(-3, 4, (48, 257)), axis=1) + 500) % 1024
    grid = np.tile(rng.integers(0, 1024, (48, 1, 16)), (1, 17, 1)).reshape(48, -1)[:, :257]
    grid = (grid + rng.integers(-1, 2, grid.shape)) % 1024
    for units, want in ((walk, 1), (grid, 16)):
        units = units.astype(np.uint16)
        plain, none = grouped_tables.encode(units, 10)
        pred, used = grouped_tables.encode(units, 10, (1, 16))
        assert none == () and used == (1, 16) and len(pred) < 0.8 * len(plain)
        assert np.array_equal(grouped_tables.decode(pred, 48, 257, 10, used), units)
        G = struct.unpack_from("<H", pred)[0]
        assert set(pred[2 : 2 + G]) == {used.index(want) + 1}  # every group predicts from `want` back


def test_streams_with_predictions_are_version_4():
    rng = np.random.default_rng(8)
    img = np.cumsum(np.cumsum(rng.normal(size=(1, 16, 32, 32)), axis=2), axis=3).astype(np.float32)
    blob = featcodec.encode(img, max_error=0.5)
    h = featcodec.header(blob)
    assert h["format_version"] == 4 and h["codec_params"]["lags"] == [1, 32]
    assert np.abs(featcodec.decode(blob).astype(np.float64) - img).max() <= 0.5
    s = read_stream(blob)  # a version-3 stream cannot carry predictions
    with pytest.raises(featcodec.FormatError, match="newer"):
        featcodec.decode(write_stream(s.header, [bytes(p) for p in s.sections], 3))


def test_tiles_are_the_mosaic_channels():
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(6, 4)  # a 3x2 grid of 2x2 tiles
    u = grouped_tables.units_of(x, (2, 2))
    assert u.tolist()[0] == [0, 1, 4, 5] and u.tolist()[1] == [2, 3, 6, 7] and u.shape == (6, 4)
    assert np.array_equal(grouped_tables.plane_of(u, x.shape, (2, 2)), x)


def test_mosaic_streams_can_use_tile_tables():
    rng = np.random.default_rng(4)
    scale = np.exp(rng.uniform(-2, 2, (1, 64, 1, 1)))
    x = (rng.normal(size=(1, 64, 16, 16)) * scale + rng.normal(size=(1, 64, 1, 1)) * 3).astype(np.float32)
    blob = featcodec.encode(x, max_error=0.3)
    h = featcodec.header(blob)
    assert h["pack"]["layout"] == "mosaic" and h["codec_params"] == {"table": "tiles", "tile": [16, 16]}
    assert np.abs(featcodec.decode(blob).astype(np.float64) - x).max() <= 0.3


def test_the_index_codec_keeps_the_smaller_payload():
    rng = np.random.default_rng(0)
    c = IndexCodec()
    for plane, bits in ((_channels_plane(rng, 128, 64, 10), 10),  # distinct channels: columns win
                        (rng.integers(0, 16, (64, 64)).astype(np.uint8), 4),  # i.i.d.: one table wins
                        (rng.integers(0, 16, (1, 64)).astype(np.uint8), 4)):  # one row: one table
        payload, params = c.encode_plane(plane, bits)
        one = encode_symbols(plane.reshape(-1))
        assert len(payload) <= len(one)
        assert np.array_equal(c.decode_plane(payload, plane.shape, bits, params), plane)
    payload, params = c.encode_plane(_channels_plane(rng, 128, 64, 10), 10)
    assert params["table"] == "columns"


@pytest.mark.parametrize("name", ["cnn__features18", "cnn__features13", "vit__layer9", "llm__key15",
                                  "latent__latent256"])
@pytest.mark.parametrize("bits", [2, 8])
def test_the_choice_equals_coding_every_candidate(name, bits):
    """Candidates are left uncoded only where their information bound proves they lose:
    the payload is the first smallest of one table, columns, tiles, all coded in full."""
    from featcodec.codecs.index import _lags

    x = np.load(Path(__file__).parent / "data" / "features" / f"{name}.npy")
    plane, info = featcodec.pack(featcodec.fit_transform(x, bits=bits).forward(x))
    tile = info.tile
    every = [(encode_symbols(plane.reshape(-1)), {})]
    for kind, t in (("columns", None), ("tiles", tile)):
        if kind == "tiles" and t is None:
            continue
        u = grouped_tables.units_of(plane, t)
        cand = grouped_tables.Candidate(u, bits, _lags(u.shape[1], t))
        payload, lags = cand.code()
        assert cand.bound <= len(payload)  # the bound is a bound
        params = {"table": kind} if t is None else {"table": kind, "tile": list(t)}
        every.append((payload, {**params, "lags": list(lags)} if lags else params))
    want = min(every, key=lambda p: len(p[0]))  # the first of the smallest
    assert IndexCodec().encode_plane(plane, bits, tile=tile) == want


def test_streams_with_the_column_model_are_version_3_and_exact():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(1, 400, 32)) * np.exp(rng.uniform(-2, 2, 32)) + rng.normal(size=32) * 5)
    x = x.astype(np.float32)
    blob = featcodec.encode(x, max_error=0.1)
    h = featcodec.header(blob)
    assert h["codec_params"]["table"] == "columns" and h["format_version"] == 3 + ("lags" in h["codec_params"])
    assert np.abs(featcodec.decode(blob).astype(np.float64) - x).max() <= 0.1
    # a version-2 stream (which has no column model) that claims it is rejected
    t = featcodec.fit_transform(x, bits=6)  # referenced: only the column model needs version 3
    blob = featcodec.encode(x, transform=t, embed_transform=False)
    assert featcodec.header(blob)["codec_params"]["table"] == "columns"
    s = read_stream(blob)
    with pytest.raises(featcodec.FormatError, match="newer"):
        featcodec.decode(write_stream(s.header, [bytes(p) for p in s.sections], 2), transform=t)


def _payload(plane, bits, lags=()):
    return grouped_tables.encode(grouped_tables.units_of(plane, None), bits, lags)[0]


def _parts(payload):
    (G,) = struct.unpack_from("<H", payload, 0)
    lengths = struct.unpack_from(f"<{G + 2}I", payload, 2)
    pos, parts = 2 + 4 * (G + 2), []
    for n in lengths:
        parts.append(payload[pos : pos + n])
        pos += n
    return G, parts


def _join(G, parts):
    return struct.pack(f"<H{len(parts)}I", G, *map(len, parts)) + b"".join(parts)


def test_hostile_column_payloads_are_format_errors():
    rng = np.random.default_rng(2)
    plane = _channels_plane(rng, 40, 30, 6)
    good = _payload(plane, 6)
    G, parts = _parts(good)
    assert G >= 2
    bad = [
        b"", b"\x01", good[:-1], good + b"\x00",
        _join(0, parts[:2]), _join(65, parts), _join(G + 1, parts + [b""]),
        _join(G, [encode_symbols(np.full(30, 64, np.uint8))] + parts[1:]),  # median beyond 6 bits
        _join(G, [parts[0], encode_symbols(np.full(30, G, np.uint8))] + parts[2:]),  # unknown group
        _join(G, [parts[0], encode_symbols(np.zeros(30, np.uint8))] + parts[2:]),  # empty groups
        _join(G, [encode_symbols(np.zeros(30, np.uint16))] + parts[1:]),  # wrong dtype
        _join(G, parts[:2] + [encode_symbols(np.full(len(parts[2]), 200, np.uint8))] + parts[3:]),
    ]
    for b in bad:
        with pytest.raises(featcodec.FormatError):
            grouped_tables.decode(b, 30, 40, 6)
    c = IndexCodec()
    for params in ({"table": "tiles"}, {"table": "tiles", "tile": [3, 40]}, {"table": "tiles", "tile": [0, 5]},
                   {"table": "tiles", "tile": [True, 5]}, {"table": "tiles", "tile": [4, 5, 1]},
                   {"table": "columns", "tile": [4, 5]}, {"table": "rows"}):
        with pytest.raises(featcodec.FormatError):
            c.decode_plane(good, plane.shape, 6, params)
    _check_random_damage(good, (), seed=3, trials=3000)


def _check_random_damage(good, lags, seed, trials):
    """Random bit flips in a payload of 30 units of 40 6-bit values: a FormatError or, if
    the coder cannot tell, units of the right kind."""
    r = np.random.default_rng(seed)
    for _ in range(trials):
        b = bytearray(good)
        for _ in range(r.integers(1, 4)):
            b[r.integers(0, len(b))] ^= 1 << int(r.integers(0, 8))
        try:
            out = grouped_tables.decode(bytes(b), 30, 40, 6, lags)
        except featcodec.FormatError:
            continue
        assert out.shape == (30, 40) and out.dtype == np.uint8 and int(out.max()) < 64


def test_hostile_predicted_payloads_are_format_errors():
    rng = np.random.default_rng(9)
    walk = ((np.cumsum(rng.integers(-2, 3, (40, 30)), axis=0) + 32) % 64).astype(np.uint8)  # 30 columns of 40
    good, used = grouped_tables.encode(grouped_tables.units_of(walk, None), 6, (1, 4))
    assert used == (1, 4)
    G = struct.unpack_from("<H", good)[0]
    c = IndexCodec()
    assert np.array_equal(c.decode_plane(good, walk.shape, 6, {"table": "columns", "lags": [1, 4]}), walk)
    for lags in ([], [0], [40], [1, 1], [True], ["1"], [1, 2, 3, 4], "1", [1.0], None):
        with pytest.raises(featcodec.FormatError):
            c.decode_plane(good, walk.shape, 6, {"table": "columns", "lags": lags})
    with pytest.raises(featcodec.FormatError):  # a mode beyond the lags
        grouped_tables.decode(good[:2] + bytes([3]) + good[3:], 30, 40, 6, (1, 4))
    with pytest.raises(featcodec.FormatError):  # the same payload read without its modes
        grouped_tables.decode(good, 30, 40, 6)
    with pytest.raises(featcodec.FormatError):  # modes cut short
        grouped_tables.decode(good[: 2 + G - 1], 30, 40, 6, (1, 4))
    _check_random_damage(good, (1, 4), seed=10, trials=2000)


def _payload_parts(payload: bytes, head: int, count: int) -> list[bytes]:
    """The parts of a payload laid out as ``head`` bytes, ``count`` u32 lengths, the parts."""
    lengths = struct.unpack_from(f"<{count}I", payload, head)
    pos, parts = head + 4 * count, []
    for n in lengths:
        parts.append(payload[pos : pos + n])
        pos += n
    assert pos == len(payload)
    return parts


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grouped_payload_is_the_join_of_one_call_per_group(dtype):
    """_core.rans_grouped_payload: head, the parts' u32 lengths, the given parts, then group
    k's bytes as encode_symbols gives its rows in order."""
    from featcodec import _core

    rng = np.random.default_rng(7)
    units = rng.integers(0, 200 if dtype == np.uint8 else 3000, (300, 17)).astype(dtype)
    gid = rng.integers(0, 5, 300).astype(np.uint8)
    first = [b"", b"medians", encode_symbols(units[:, 0].copy())]
    parts = first + [encode_symbols(np.ascontiguousarray(units[gid == k])) for k in range(5)]
    want = b"head" + struct.pack(f"<{len(parts)}I", *map(len, parts)) + b"".join(parts)
    assert _core.rans_grouped_payload(units, gid, 5, b"head", first, 1) == want
    with pytest.raises(featcodec.InputError, match="beyond groups"):
        _core.rans_grouped_payload(units, gid, 4, b"", [], 1)


@pytest.mark.parametrize("seed", range(6))
def test_grouped_rans_codes_short_groups_in_lockstep_with_the_same_bytes(seed):
    """Groups of fewer than 2**12 symbols are coded four at a time in lockstep (session 13);
    each group's bytes stay those of one call, whatever the mix: one-lane groups in fours
    and a remainder, two-lane groups, groups of one repeated symbol, 8- and 16-bit."""
    from featcodec import _core

    rng = np.random.default_rng(seed)
    dtype = np.uint16 if seed % 2 else np.uint8
    m = int(rng.integers(20, 300))
    G = int(rng.integers(5, 23))
    rows = rng.integers(1, 30, G)  # rows per group: 20 .. 8,700 symbols
    gid = np.repeat(np.arange(G, dtype=np.uint8), rows)
    rng.shuffle(gid)
    units = rng.integers(0, 200 if dtype == np.uint8 else 5000, (gid.size, m)).astype(dtype)
    units[gid == 2] = units[gid == 2][0, 0]  # one symbol only: the stream has no table
    got = _payload_parts(_core.rans_grouped_payload(units, gid, G, b"", [], 1), 0, G)
    want = [encode_symbols(np.ascontiguousarray(units[gid == k])) for k in range(G)]
    assert got == want
    for k in range(G):
        np.testing.assert_array_equal(decode_symbols(got[k], int((gid == k).sum()) * m), units[gid == k].reshape(-1))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_group_information_is_the_empirical_entropy(dtype):
    """_core.group_information against numpy: the sum over a group's symbols of -log2 of
    their frequency in the group, and how many distinct symbols it has."""
    from featcodec import _core

    rng = np.random.default_rng(8)
    units = np.minimum(rng.geometric(0.2 if dtype == np.uint8 else 0.01, (64, 40)), 255 if dtype == np.uint8 else 60000)
    units = units.astype(dtype)
    gid = (np.arange(64) % 3).astype(np.uint8)
    info, distinct, bound = _core.group_information(units, gid, 3)
    for k in range(3):
        _, counts = np.unique(units[gid == k], return_counts=True)
        want = -(counts * np.log2(counts / counts.sum())).sum()
        assert info[k] == pytest.approx(want, rel=1e-12)
        assert distinct[k] == counts.size
        coded = len(encode_symbols(np.ascontiguousarray(units[gid == k])))
        assert coded >= want / 8 and coded >= bound[k]  # lower bounds


def _bound_cases():
    """(units, gid, groups): real index planes of every family at 2, 8 and 12 bits as
    columns, seeded synthetic ones (one symbol, two, near-uniform 16-bit), in 1-5 groups."""
    rng = np.random.default_rng(21)
    for path in sorted(FEATURES.glob("*.npy"))[::2]:
        x = np.load(path).astype(np.float32)
        for bits in (2, 8, 12):
            t = featcodec.fit_transform(x, bits=bits, method="fast")
            plane = np.ascontiguousarray(t.forward(x).reshape(x.shape[0] * x.shape[1], -1).T)
            gid = (np.arange(plane.shape[0]) % 4).astype(np.uint8)
            yield plane, gid, 4
    yield np.zeros((5, 7), np.uint8), np.zeros(5, np.uint8), 1
    yield (rng.random((40, 30)) < 0.01).astype(np.uint8), (np.arange(40) % 2).astype(np.uint8), 2
    yield rng.integers(0, 65536, (64, 50)).astype(np.uint16), (np.arange(64) % 5).astype(np.uint8), 5


def test_information_bound_is_a_lower_bound_of_the_coded_parts():
    """grouped_tables.information_bound, which lets the index codec skip candidates, never
    exceeds what the coder writes: on real index planes and edge cases, each group's part
    (encode_symbols of its rows) summed, and it is tight (within 1% + 200 bytes) on the
    real planes."""
    from featcodec.codecs import grouped_tables

    for units, gid, groups in _bound_cases():
        coded = sum(len(encode_symbols(np.ascontiguousarray(units[gid == k]))) for k in range(groups))
        bound = grouped_tables.information_bound(units, gid, groups)
        assert bound <= coded
        if units.size > 10_000:
            assert coded <= bound * 1.01 + 200


@pytest.mark.parametrize("shape", [(0, 3), (1, 7), (3, 5), (33, 65), (300, 1000)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compiled_transpose_equals_numpy(shape, dtype):
    from featcodec import _core

    a = np.random.default_rng(9).integers(0, 250, shape).astype(dtype)
    t = _core.transpose(a)
    assert t.dtype == dtype and t.flags.c_contiguous and np.array_equal(t, a.T)


def _groups_numpy(sums: np.ndarray, m: int, modes: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The grouping rule in numpy: key = mode + 4 x the binary exponent of v * v (v = 16 x
    the mean |residual|, frexp: exact below 2**53), coarser until at most MAX_GROUPS keys."""
    v = sums * 16 // m
    octave2 = np.frexp((v * v).astype(np.float64))[1].astype(np.int64)
    shift = 0
    while True:
        key = (octave2 >> shift) * 4 + modes
        codes = np.unique(key)
        if codes.size <= grouped_tables.MAX_GROUPS:
            return np.searchsorted(codes, key).astype(np.uint8), [int(c) & 3 for c in codes]
        shift += 1


@pytest.mark.parametrize("seed", range(6))
def test_unit_groups_match_the_rule_in_numpy(seed):
    from featcodec import _core

    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 3000)), int(rng.integers(1, 5000))
    # mean residuals over many octaves (and zeros): with four modes, more keys than groups
    sums = (np.exp2(rng.uniform(-5, 19, n)) * m / 16).astype(np.int64)
    sums[rng.random(n) < 0.05] = 0
    sums[: 1 + seed] = m << 15  # the largest a 16-bit residual allows
    modes = rng.integers(0, 4 if seed % 2 else 1, n).astype(np.uint8)
    gid, group_modes = _core.unit_groups(sums, modes, m, grouped_tables.MAX_GROUPS)
    want_gid, want_modes = _groups_numpy(sums, m, modes)
    np.testing.assert_array_equal(gid, want_gid)
    assert group_modes == want_modes
    with pytest.raises(ValueError, match="sums"):
        _core.unit_groups(np.array([(m << 15) + 1]), np.zeros(1, np.uint8), m, 64)
