"""The "index" codec: the index plane entropy-coded with rANS under static models fitted
to the plane itself (their frequency tables travel inside the payload): one for the whole
plane, or one per group of columns or channel tiles, with or without predictions from
neighbouring values (:mod:`featcodec.codecs.grouped_tables`).

Lossless on the indices; the loss comes only from the transform (its ``bits``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError, InputError
from ..stages.alignment import patch_grid
from . import grouped_tables


class IndexCodec:
    """Static-model rANS over the indices (``featcodec.stream.rans.encode_symbols``): one
    table for the whole plane, or one per group of columns or of mosaic tiles
    (:mod:`featcodec.codecs.grouped_tables`, format version 3), those groups with predictions
    from the value before or a row above where units choose them (version 4), whichever
    is smallest.

    Example:
        >>> import numpy as np
        >>> plane = np.array([[0, 1, 1], [2, 1, 0]], np.uint8)
        >>> c = IndexCodec()
        >>> payload, params = c.encode_plane(plane, bits=2)
        >>> bool((c.decode_plane(payload, (2, 3), 2, params) == plane).all())
        True
    """

    def encode_plane(self, plane: np.ndarray, bits: int, tile: tuple[int, int] | None = None,
                     tables: str = "auto", **params: Any) -> tuple[bytes, dict]:
        """``tile``: the ``(h, w)`` of the channel tiles when the plane is a mosaic
        (``featcodec.encode`` passes it). ``tables``: ``"auto"`` (the smallest payload of
        one table, grouped tables and predictions) or ``"single"`` (one table for the
        whole plane, without trying the others: the fastest encode, a few percent larger
        on channel-structured features; docs/encode.md)."""
        from ..stream.rans import encode_symbols

        if params:
            raise InputError(
                f"codec 'index' takes no parameters besides bits and tables (got "
                f"{sorted(set(params) - {'stream_size'})}); lower bits for a smaller stream, or choose "
                "a learned codec for quality/target_bpfp."
            )
        if tables not in ("auto", "single"):
            raise InputError(f"tables must be 'auto' or 'single', not {tables!r:.40}.")
        plane = np.ascontiguousarray(plane)
        (R, C) = plane.shape
        units = {"columns": None} if R > 1 and C > 1 else {}
        if tile is not None:
            h, w = int(tile[0]), int(tile[1])
            if h * w > 1 and R % h == 0 and C % w == 0 and R * C > h * w:  # at least two tiles
                units["tiles"] = (h, w)
        if plane.size > grouped_tables.MAX_VALUES or tables == "single" or not units:
            return encode_symbols(plane.reshape(-1)), {}
        # The smallest of one table, then each kind of grouped tables (ties: one table, then
        # the earlier kind). Sizes are only compared, never guessed: a candidate is left
        # uncoded only where a lower bound on its size (its information and the least its
        # tables take) proves it cannot win, so the choice is that of coding them all.
        cands = []
        for name, t in units.items():
            u = grouped_tables.units_of(plane, t)
            params = {"table": name} if t is None else {"table": name, "tile": list(t)}
            cands.append((grouped_tables.Candidate(u, bits, _lags(u.shape[1], t)), params))
        if min(c.bound for c, _ in cands) < grouped_tables.one_table_guess(plane):
            # grouped tables look smaller: code them first, the smallest bound first
            grouped = _code_grouped(cands, None)
            flat_bound = grouped_tables.information_bound(plane.reshape(1, -1))
            if grouped and len(grouped[0]) < flat_bound:
                return grouped  # one table cannot be as small
            single = (encode_symbols(plane.reshape(-1)), {})
            return grouped if grouped and len(grouped[0]) < len(single[0]) else single
        single = (encode_symbols(plane.reshape(-1)), {})
        grouped = _code_grouped(cands, len(single[0]))
        return grouped if grouped and len(grouped[0]) < len(single[0]) else single

    def decode_plane(self, payload: bytes, shape: tuple[int, int], bits: int, params: dict) -> np.ndarray:
        from ..stream.rans import decode_symbols

        if params.get("table") in ("columns", "tiles"):
            tile = _tile(params, shape)
            n, m = (shape[1], shape[0]) if tile is None else (shape[0] * shape[1] // (tile[0] * tile[1]),
                                                                tile[0] * tile[1])
            return grouped_tables.plane_of(grouped_tables.decode(payload, n, m, bits, _checked_lags(params, m)), shape, tile)
        if params:
            raise FormatError(f"codec 'index' stream has unexpected parameters {sorted(params)[:5]}.")
        count = shape[0] * shape[1]
        sym = decode_symbols(payload, count)
        if sym.shape != (count,):
            raise FormatError("index payload decoded to the wrong number of symbols.")
        return sym.reshape(shape)

    @staticmethod
    def format_version(params: dict) -> int:
        """The lowest stream format version that holds these ``codec_params``: 4 with
        predictions (``lags``), 3 with grouped tables, else any."""
        return 4 if "lags" in params else 3 if "table" in params else 1


def _code_grouped(cands: list, limit: int | None) -> tuple[bytes, dict] | None:
    """The smallest grouped-table payload of ``cands`` (``(Candidate, params)`` pairs;
    ties: the earlier pair) and its params; ``None`` when each one's bound reaches
    ``limit`` (the size to beat, which a returned payload may still not be below;
    ``None``: any). Candidates are coded in the order of their bounds, each only if its
    bound leaves it a chance against the best so far."""
    best: tuple[int, bytes, dict] | None = None  # (index, payload, params)
    for i in sorted(range(len(cands)), key=lambda i: cands[i][0].bound):
        c, params = cands[i]
        # an earlier pair wins a tie, so it may equal the best; a later one must be smaller
        lims = ([] if limit is None else [limit]) + ([] if best is None else [len(best[1]) + (i < best[0])])
        lim = min(lims, default=None)
        found = c.code(limit=lim)
        if found is None:
            continue
        size = len(found[0])
        if best is None or size < len(best[1]) or (size == len(best[1]) and i < best[0]):
            best = (i, found[0], {**params, "lags": list(found[1])} if found[1] else params)
    return None if best is None else (best[1], best[2])


def _lags(m: int, tile: tuple[int, int] | None) -> tuple[int, ...]:
    """The predictions offered to units of ``m`` values: the value before (the previous
    token of a column, the pixel to the left in a tile) and the one a row above (a tile's
    width; in a column of a square grid of patch tokens after up to 8 leading ones, such
    as a ViT's class and register tokens, the grid's width)."""
    if tile is not None:
        return tuple(L for L in dict.fromkeys((1, tile[1])) if L < m)
    grid = (patch_grid(m) or (0, 0))[1]
    return tuple(L for L in dict.fromkeys((1, grid)) if 1 <= L < m)


def _checked_lags(params: dict, m: int) -> tuple[int, ...]:
    """The lags of grouped-table params (``()`` without any), checked against units of
    ``m`` values."""
    if "lags" not in params:
        return ()
    lags = params["lags"]
    if not isinstance(lags, list) or not 1 <= len(lags) <= 3 or len(set(map(repr, lags))) != len(lags) or any(
        isinstance(v, bool) or not isinstance(v, int) or not 1 <= v < m for v in lags
    ):
        raise FormatError(f"codec 'index' stream has malformed prediction lags {str(lags)[:60]}.")
    return tuple(lags)


def _tile(params: dict, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The checked tile of grouped-table params: ``None`` for columns."""
    bad = FormatError(f"codec 'index' stream has malformed parameters {str(params)[:80]}.")
    keys = set(params) - {"lags"}
    if params["table"] == "columns":
        if keys != {"table"}:
            raise bad
        return None
    t = params.get("tile")
    if keys != {"table", "tile"} or not isinstance(t, list) or len(t) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in t
    ) or shape[0] % t[0] or shape[1] % t[1]:
        raise bad
    return (t[0], t[1])
