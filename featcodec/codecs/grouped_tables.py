"""The index codec's grouped tables: one static rANS table per group of units, a unit
being a column of the plane or, for a mosaic of channel tiles, one tile.

Both are mostly channels of the feature (the ``tokens`` layout puts one channel per
column, the ``mosaic`` layout one per tile), and channels differ in where their values
sit and how widely they spread: ViT tokens and LLM hidden states carry a few wide
outlier channels beside many narrow ones. One frequency table for the whole plane codes
every channel as if it were the average one. This model subtracts each unit's lower
median (modulo ``2**bits``, so the residuals stay in the plane's dtype) and groups the
units by the spread of their residuals, half an octave of mean absolute residual per
group; each group gets its own table (``featcodec.stream.rans.encode_symbols``).

Prediction (format version 4): with ``lags``, a unit may instead code each value minus
the value ``L`` places earlier in the unit (``L`` one of the lags; its first ``L`` values
minus the median), whichever of these modes has the smallest sum of absolute residuals.
Neighbouring values of image-like features are alike: in a ViT token column the token
before is the patch to the left and the token 16 before the patch above, in a mosaic
tile the pixel to the left or above. Units are then grouped by mode and spread, each
group with one mode. Decoding undoes a prediction in one compiled pass
(``featcodec._core.undo_prediction``).

Payload: ``u16 G``, then (with lags) ``G`` bytes, each group's mode (``0``: median,
``k``: ``lags[k - 1]``), then ``G + 2`` u32 lengths, then the coded medians (one per
unit, the plane's dtype), the coded group of each unit (uint8, ``0 .. G-1``) and each
group's residuals (its units one after the other). The modes and the group assignment
are the encoder's choice and travel in the stream, so the decoder needs no arithmetic
that could differ between platforms.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .._arrays import empty
from ..errors import FormatError
from .._tiles import plane_of_tiles, tiles_of

#: at most this many groups (and the group ids are uint8)
MAX_GROUPS = 64
#: the encoder tries grouped tables on planes up to this many values (it works on
#: copies of the plane); larger planes get one table
MAX_VALUES = 1 << 26
#: predictions are used when they cut the summed absolute residuals by at least this many
#: percent (below that, chance choices on noise-like units cost more in tables than they save),
#: and from this many percent on without checking that the payload without them is larger
#: (except at 1-2 bits, where absolute residuals say little about the entropy: checked always)
MIN_PREDICTION_GAIN = 3
SURE_PREDICTION_GAIN = 10
#: about what ``"lags": [...]`` adds to a stream's header, counted against a predicted payload
LAGS_HEADER_BYTES = 14


def _groups(sums: np.ndarray, m: int, modes: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(group id per unit, mode per group) from each unit's mode and ``sums`` (the sum
    of its ``m`` absolute residuals): units of one mode and one half-octave of mean
    residual share a group (whole octaves, or coarser, if that makes more than
    :data:`MAX_GROUPS`). Integer arithmetic only (compiled: ``_core.unit_groups``)."""
    from .. import _core

    return _core.unit_groups(sums, modes, m, MAX_GROUPS)


@dataclass
class _Plan:
    """One candidate payload before it is coded: the units' medians and residuals, their
    groups and the groups' modes, and a lower bound on the coded size (bytes)."""

    med: np.ndarray
    resid: np.ndarray
    gid: np.ndarray
    group_modes: list[int]
    bound: int

    def payload(self, with_modes: bool) -> bytes:
        """The payload of these units (see the module docstring)."""
        from .. import _core
        from ..stream.rans import encode_symbols
        from ..threads import get_num_threads

        head = struct.pack("<H", len(self.group_modes)) + (bytes(self.group_modes) if with_modes else b"")
        # each group's residuals (its units in order) under its own table, written with the
        # rest into one bytes object
        return _core.rans_grouped_payload(self.resid, self.gid, len(self.group_modes), head,
                                          [encode_symbols(self.med), encode_symbols(self.gid)], get_num_threads())


def _plan(med: np.ndarray, resid: np.ndarray, sums: np.ndarray, modes: np.ndarray) -> _Plan:
    """The plan of units with these medians, residuals, costs and modes, and its size
    bound (:func:`information_bound` of its groups, and the payload's own framing)."""
    gid, group_modes = _groups(sums, resid.shape[1], modes)
    g = len(group_modes)
    framing = 2 + 4 * (g + 2) + 2 * 9  # the count, the lengths, the medians' and groups' parts (9 bytes at least)
    return _Plan(med, resid, gid, group_modes, information_bound(resid, gid, g) + framing)


def information_bound(units: np.ndarray, gid: np.ndarray | None = None, groups: int = 1) -> int:
    """A lower bound on the bytes of the static rANS parts that code the rows of the 2-D
    ``units`` by group (``gid``, default all in one), one part per group: each group's
    empirical information (no table codes a group in fewer bits) and the least its table
    and framing take (``featcodec._core.group_information``, csrc/rans_static.cpp
    ``static_size_bound``)."""
    from .. import _core

    if gid is None:
        gid = np.zeros(units.shape[0], np.uint8)
    return int(_core.group_information(np.ascontiguousarray(units), gid, groups)[2].sum())


def one_table_guess(plane: np.ndarray) -> int:
    """About the bytes of one static table for the whole 2-D ``plane``, from every 16th
    value: the bound of those values with 16 times their information. A guess, not a
    bound: it only orders what the index codec codes first."""
    from .. import _core

    sample = np.ascontiguousarray(plane.reshape(1, -1)[:, ::16])
    info, _, bound = _core.group_information(sample, np.zeros(1, np.uint8), 1)
    return int(bound[0]) + 15 * int(info[0]) // 8


class Candidate:
    """The grouped-table payload of some units, planned but not yet coded: :attr:`bound`
    is a lower bound on its size (bytes) whatever :meth:`code` picks, so a caller that
    already holds a payload that small need not code it.

    What :meth:`code` returns, for a 2-D uint8/uint16 array of ``bits``-bit indices, one
    row per unit (a plane column, or a mosaic tile: :func:`units_of`), with ``lags``
    (each in ``[1, m)``, at most 3) the predictions a unit may use: the payload and the
    lags used. The lags used are ``()``, and the payload the one without modes, when
    predictions are not worth it: when they cut the summed absolute residuals by less
    than :data:`MIN_PREDICTION_GAIN` percent, or, below :data:`SURE_PREDICTION_GAIN`
    percent or at 1-2 bits, when the payload without them is no larger (the extra groups'
    tables can cost more than a small gain saves)."""

    def __init__(self, units: np.ndarray, bits: int, lags: tuple[int, ...] = ()) -> None:
        from .. import _core
        from ..threads import get_num_threads

        self.units, self.bits, self.lags = np.ascontiguousarray(units), bits, tuple(lags)
        # each unit's lower median, its residuals under its cheapest mode (modulo 2**bits)
        # and their summed magnitude (read as signed), in one pass
        med, resid, sums, modes, plain = _core.unit_residuals(self.units, bits, list(lags), get_num_threads())
        gain = 100 - int(sums.sum()) * 100 / max(int(plain.sum()), 1)
        self.predicted = self.plain = None  # the plans coded with / without the units' modes
        if not modes.any():  # no unit predicts: these are already the plain residuals
            self.plain = _plan(med, resid, sums, modes)
        elif gain < MIN_PREDICTION_GAIN:
            self.plain = self._without(med, plain, modes)
        else:
            self.predicted = _plan(med, resid, sums, modes)
            if gain < SURE_PREDICTION_GAIN or bits <= 2:  # both are coded and compared
                self.plain = self._without(med, plain, modes)
        self.bound = min(p.bound for p in (self.predicted, self.plain) if p is not None)

    def _without(self, med: np.ndarray, plain: np.ndarray, modes: np.ndarray) -> _Plan:
        """Every unit on its median (mode 0's residuals)."""
        from .. import _core

        return _plan(med, _core.minus_median(self.units, med, self.bits), plain, np.zeros_like(modes))

    def code(self, limit: int | None = None) -> tuple[bytes, tuple[int, ...]] | None:
        """``(payload, lags used)``; with ``limit`` (the caller keeps the payload only if it
        is smaller), ``None`` when it provably is not: plans whose bound reaches the limit
        are not coded, and the choice is the same as coding them all."""
        def beyond(p: _Plan) -> bool:
            return limit is not None and p.bound >= limit

        pp, wp = self.predicted, self.plain
        if pp is None or wp is None:  # one plan only
            p = wp if pp is None else pp
            return None if beyond(p) else (p.payload(with_modes=pp is not None), self.lags if pp is not None else ())
        # both: the one without predictions wins unless larger by more than the lags' header
        predicted = None if beyond(pp) else pp.payload(with_modes=True)  # None: >= limit
        if predicted is None and beyond(wp):
            return None
        if predicted is not None and wp.bound > len(predicted) + LAGS_HEADER_BYTES:
            return predicted, self.lags
        plain_payload = wp.payload(with_modes=False)
        if predicted is None or len(plain_payload) <= len(predicted) + LAGS_HEADER_BYTES:
            return plain_payload, ()
        return predicted, self.lags


def encode(units: np.ndarray, bits: int, lags: tuple[int, ...] = ()) -> tuple[bytes, tuple[int, ...]]:
    """``(payload, lags used)`` of these units (:class:`Candidate`, coded)."""
    return Candidate(units, bits, lags).code()


def _transpose(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of the transpose of the 2-D uint8/uint16 ``a`` (compiled, blocked)."""
    from .. import _core

    return _core.transpose(np.ascontiguousarray(a))


def units_of(plane: np.ndarray, tile: tuple[int, int] | None) -> np.ndarray:
    """The plane as one row per unit: its columns, or its ``tile = (h, w)`` tiles (row
    by row of tiles, each tile's values row-major)."""
    if tile is None:
        return _transpose(plane)
    return tiles_of(plane, *tile)


def plane_of(units: np.ndarray, shape: tuple[int, int], tile: tuple[int, int] | None) -> np.ndarray:
    """The inverse of :func:`units_of`."""
    if tile is None:
        return _transpose(units)
    return plane_of_tiles(units, shape, *tile)


def decode(payload: bytes, n: int, m: int, bits: int, lags: tuple[int, ...] = ()) -> np.ndarray:
    """The ``(n, m)`` units :func:`encode` coded with these ``lags`` (``()``: a payload
    without modes); any malformed payload is a ``FormatError``."""
    from .. import _core
    from ..stream.rans import decode_symbols

    dtype = np.uint8 if bits <= 8 else np.uint16
    modulus = 1 << bits
    if len(payload) < 2:
        raise FormatError("index payload (grouped tables) is truncated.")
    (G,) = struct.unpack_from("<H", payload, 0)
    if not 1 <= G <= min(MAX_GROUPS, n):
        raise FormatError(f"index payload (grouped tables) claims {G} groups for {n} units.")
    pos = 2
    group_modes = [0] * G
    if lags:
        if len(payload) < pos + G:
            raise FormatError("index payload (grouped tables) is truncated.")
        group_modes = list(payload[pos : pos + G])
        if max(group_modes) > len(lags):
            raise FormatError("index payload (grouped tables) names a prediction it does not have.")
        pos += G
    k = G + 2
    if len(payload) < pos + 4 * k:
        raise FormatError("index payload (grouped tables) is truncated.")
    lengths = struct.unpack_from(f"<{k}I", payload, pos)
    pos += 4 * k
    if pos + sum(lengths) != len(payload):
        raise FormatError("index payload (grouped tables) lengths do not add up to its size.")
    parts, view = [], memoryview(payload)  # slices of a view: no copies
    for length in lengths:
        parts.append(view[pos : pos + length])
        pos += length
    med = decode_symbols(parts[0], n)
    gid = decode_symbols(parts[1], n)
    if med.dtype != dtype or gid.dtype != np.uint8 or int(med.max()) >= modulus or int(gid.max()) >= G:
        raise FormatError("index payload (grouped tables) has invalid medians or groups.")
    units = empty((n, m), dtype)
    for g in range(G):
        sel = np.flatnonzero(gid == g)
        if sel.size == 0:
            raise FormatError("index payload (grouped tables) has an empty group.")
        r = decode_symbols(parts[2 + g], sel.size * m)
        if r.dtype != dtype or (bits < 8 * r.itemsize and int(r.max()) >= modulus):
            raise FormatError("index payload (grouped tables) has residuals beyond the bits.")
        r = r.reshape(sel.size, m)
        if group_modes[g]:  # from residuals to values, in place
            _core.undo_prediction(r, np.ascontiguousarray(med[sel]), lags[group_modes[g] - 1], bits)
        units[sel] = r
    plain = np.isin(gid, [g for g in range(G) if not group_modes[g]])
    units[plain] += med[plain, None]  # unsigned wrap-around, then modulo 2**bits
    units[plain] &= dtype(modulus - 1)
    return units
