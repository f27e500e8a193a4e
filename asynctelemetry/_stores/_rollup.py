"""Rollups: per-period totals and histograms kept by the database engine, for reads at volume.

The rules are here, once; :mod:`.sqlite.rollup` and :mod:`.postgres.rollup` run them in their
engine's SQL, so both stores give equal answers for equal calls.

Per period (5 minutes, 1 hour and 1 day: :data:`LEVELS`) and per group of calls with equal
``model``, ``request_model``, ``provider``, ``route_name`` and ``status``, a store keeps: the
counts and token sums, the cost exactly, and histograms of latency, time to first token and
tokens per second over the log buckets of
:func:`~asynctelemetry._stores._base.histogram_index`.

What one call adds is worked out once, when its row is made at the store's door
(:func:`derive`: its group number, finest period, buckets and cost halves); the batch is then
summed per period, group and bucket (PostgreSQL's SQL over the batch; SQLite's writer in the
same pass, :func:`add_cells`, :func:`add_coarser`) and added to the stored rows (``INSERT …
ON CONFLICT DO UPDATE``) in the writer's transaction. Retention and repricing take
calls away the same way. The cost stays exact: each cost is split into its binary exponent and
two integer halves of its significand (:func:`cost_parts`), which the engine sums as integers;
:func:`cost_floats` turns any such sum back into floats whose exact sum it is, so every total
read (:class:`FSum`: ``math.fsum``) is the correctly rounded sum of the raw costs, the same
number whichever rows, periods or edges it was made of.

A read of a large window (``rolled`` of each store) takes whole periods from the coarsest level
that fits (:func:`plan`: 7 days are 6 or 7 day periods and up to 23 hours and 11 five-minute
periods on each side) and only the partial periods at its edges from the raw rows, all through
the same accumulator (:class:`Cells`), so the totals equal those of the raw rows. Buckets finer
than every level (one-minute time series) are read from the raw rows by the same rule.
Percentiles then come from the histograms: that is the ``approximate`` rule of ``_base`` for
windows of more than ``EXACT_LIMIT`` calls; smaller windows are read exactly from the raw rows.
Filters on ``session_id`` and ``by="session"`` are not in the rollups (sessions are too many):
those read the raw rows.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from itertools import chain
from operator import add
from typing import TYPE_CHECKING, Any, Final

from .._record import MIN_GENERATING_MS
from ._base import (
    GAMMA,
    bucket_of,
    histogram_index,
    histogram_percentile,
    summary_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._base import CallSummary, Filters, TimeBucket

__all__ = [
    "COST_HIGH",
    "COST_LOW",
    "DAY",
    "HISTOGRAMS",
    "KEY_COLUMNS",
    "LEVELS",
    "RAW_COLUMNS",
    "TOTAL_COLUMNS",
    "VALUE_KINDS",
    "Acc",
    "Cell",
    "CellMap",
    "Cells",
    "FSum",
    "Query",
    "Segments",
    "add_cells",
    "add_coarser",
    "buckets_of",
    "cell_row",
    "cost_floats",
    "cost_parts",
    "derive",
    "group_id",
    "key_filters",
    "levels_for",
    "merge_packed",
    "pack",
    "plan",
    "read_queries",
    "segments",
    "summaries_of",
]

#: Rollup periods in seconds, coarsest first; each divides the one before it.
LEVELS: Final = (86400, 3600, 300)
#: The day level (every period nests in one UTC day).
DAY: Final = 86400
_S: Final = 1_000_000_000
KEY_COLUMNS: Final = ("model", "request_model", "provider", "route_name", "status")
_REQUEST_MODEL: Final = KEY_COLUMNS.index("request_model")
#: The totals of a group's period.
TOTAL_COLUMNS: Final = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "unpriced_calls",
)
#: What the accumulator reads from a raw row (the timestamp, the key, then the figures).
RAW_COLUMNS: Final = (
    "timestamp_ns",
    "model",
    "request_model",
    "provider",
    "route_name",
    "status",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_usd",
    "duration_ms",
    "ttft_ms",
)
_RAW: Final = ", ".join(RAW_COLUMNS)


class FSum:
    """Exact partial sums (Shewchuk): ``math.fsum(partials)`` is the correctly rounded total.

    Also the SQL aggregate ``asynctelemetry_fsum`` (``step``/``finalize``).
    """

    __slots__ = ("partials",)

    def __init__(self, partials: list[float] | None = None) -> None:
        self.partials: list[float] = partials if partials is not None else []

    def step(self, value: float | None) -> None:
        """Add ``value`` exactly (``None`` is skipped)."""
        if value is None:
            return
        x = float(value)
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def finalize(self) -> float:
        """The correctly rounded sum."""
        return math.fsum(self.partials)


class Acc:
    """Totals and histograms of a group of calls (from raw rows and packed rollup rows alike).

    ``costs`` maps a binary exponent ``e`` to the exact integer sum of the significands of
    the costs at that exponent (:func:`cost_parts`: ``cost == significand * 2**e``); :meth:`cost`
    is their correctly rounded total.
    """

    __slots__ = (
        "cached",
        "calls",
        "costs",
        "errors",
        "input_tokens",
        "latency",
        "output_tokens",
        "reasoning",
        "speed",
        "ttft",
        "unpriced",
    )

    def __init__(self) -> None:
        self.calls = self.errors = self.input_tokens = self.output_tokens = 0
        self.cached = self.reasoning = self.unpriced = 0
        self.costs: dict[int, int] = {}
        self.latency: dict[int, int] = {}
        self.ttft: dict[int, int] = {}
        self.speed: dict[int, int] = {}

    def totals(self) -> tuple[int, int, int, int, int]:
        """Calls, errors, input, output and cached input tokens (the totals every row has)."""
        return self.calls, self.errors, self.input_tokens, self.output_tokens, self.cached

    def cost(self) -> float:
        """The correctly rounded sum of the costs (``0.0`` when none was priced)."""
        return math.fsum(chain.from_iterable(cost_floats(e, 0, n) for e, n in self.costs.items()))

    def percentiles(self) -> tuple[float | None, float | None, float | None]:
        """p50 and p95 latency, p50 TTFT, from the histograms (the ``approximate`` rule)."""
        latency = self.latency
        return (
            histogram_percentile(latency, 50),
            histogram_percentile(latency, 95),
            histogram_percentile(self.ttft, 50),
        )


#: The histograms a rollup row keeps (kinds 0, 1, 2 of its packed values).
HISTOGRAMS: Final = ("latency", "ttft", "speed")
#: Kinds of the packed values after the histograms: the sums of the costs' high and low halves
#: at one binary exponent (:func:`cost_parts`).
COST_HIGH: Final = len(HISTOGRAMS)
COST_LOW: Final = COST_HIGH + 1
_LITTLE: Final = sys.byteorder == "little"
_HALF: Final = 26
_HALF_MASK: Final = (1 << _HALF) - 1
_MANTISSA: Final = float(1 << 53)
#: ``log(GAMMA)`` as :func:`histogram_index` divides by it (inlined in :func:`derive`).
_LOG_GAMMA: Final = math.log(GAMMA)


@functools.lru_cache(maxsize=4096)
def group_id(key: tuple[Any, ...]) -> int:
    """A group's number: the first 8 bytes of the BLAKE2b digest of its key (JSON), as a
    signed 64-bit integer. The same in every process and store, so a writer numbers a group
    without asking the database (and no rolled-back transaction can take a number back); two
    groups would share one with a chance of about ``n**2 / 2**65`` for ``n`` groups."""
    digest = hashlib.blake2b(json.dumps(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def cost_parts(cost: float) -> tuple[int, int, int]:
    """``(e, high, low)`` with ``cost == (high * 2**26 + low) * 2**e`` exactly: the cost's 53-bit
    significand in two halves of at most 27 and 26 bits (signed like the cost), so sums of many
    stay exact in a 64-bit integer column (2**36 calls per exponent)."""
    m, e = math.frexp(cost)
    significand = int(m * _MANTISSA)  # exact: m has at most 53 significant bits
    magnitude = -significand if significand < 0 else significand
    high, low = magnitude >> _HALF, magnitude & _HALF_MASK
    if significand < 0:
        return e - 53, -high, -low
    return e - 53, high, low


def cost_floats(exponent: int, high: int, low: int) -> list[float]:
    """Floats whose exact sum is ``(high * 2**26 + low) * 2**exponent`` (sums of
    :func:`cost_parts`): what :class:`FSum` takes to total them exactly."""
    total = (high << _HALF) + low
    out: list[float] = []
    sign = -1 if total < 0 else 1
    total *= sign
    while total:
        chunk = total & ((1 << 52) - 1)
        if chunk:
            out.append(sign * math.ldexp(chunk, exponent))
        total >>= 52
        exponent += 52
    return out


def derive(
    rows: Iterable[Sequence[Any]],
    groups: dict[tuple[Any, ...], int] | None,
    sign: int = 1,
    width_ns: int = LEVELS[-1] * _S,
) -> list[tuple[Any, ...]]:
    """What each raw row (:data:`RAW_COLUMNS` values) adds to the rollups (``sign=-1``: takes
    away), as the engine aggregates it: ``(start of its period of ``width_ns`` (the finest
    level's), group id, calls, errors, input,
    output, cached and reasoning tokens, unpriced, latency bucket, time to first token bucket,
    speed bucket, cost exponent, cost high, cost low)`` (``None`` for a value the call has not).

    The one rule of what a call counts in (the same as :meth:`Cells.add_raw` reads): computed
    once per call at the store's door, then summed by SQL over the batch. ``groups`` gets each
    key (:data:`KEY_COLUMNS` values) met with its :func:`group_id` (``None``: the group is the
    key itself, for a read's own sums). (The bucket and the cost halves are
    :func:`histogram_index` and :func:`cost_parts`, inlined: this runs once per call written.)
    """
    out: list[tuple[Any, ...]] = []
    append = out.append
    number = None if groups is None else groups.get
    index = histogram_index
    log, ceil, frexp, inf = math.log, math.ceil, math.frexp, math.inf
    lg = _LOG_GAMMA
    width = width_ns
    min_ms = MIN_GENERATING_MS
    mantissa, half, mask = _MANTISSA, _HALF, _HALF_MASK
    for (
        ns,
        model,
        rm,
        provider,
        route,
        status,
        tin,
        tout,
        cached,
        reasoning,
        cost,
        dur,
        ttft,
    ) in rows:
        lat = speed = None
        if dur is not None:
            lat = ceil(log(dur) / lg) if 0.0 < dur < inf else index(dur)
            if tout:
                generating = dur - (ttft or 0.0)
                if generating >= min_ms:
                    tpt = generating / tout
                    if tpt:
                        speed = index(1000.0 / tpt)
        if ttft is not None:
            ttft = ceil(log(ttft) / lg) if 0.0 < ttft < inf else index(ttft)
        if not cost:  # unpriced, or nothing to add
            e = high = low = None
        elif cost > 0.0:
            m, e = frexp(cost)
            significand = int(m * mantissa)
            e -= 53
            high, low = significand >> half, significand & mask
        else:
            e, high, low = cost_parts(cost)
        group: Any = (model, rm, provider, route, status)
        if number is not None:
            gid = number(group)
            if gid is None:
                gid = groups[group] = group_id(group)  # type: ignore[index]
            group = gid
        append(
            (
                ns - ns % width,
                group,
                1,
                1 if status == "error" else 0,
                tin or 0,
                tout or 0,
                cached or 0,
                reasoning or 0,
                1 if cost is None else 0,
                lat,
                ttft,
                speed,
                e,
                high,
                low,
            )
        )
    if sign < 0:
        out = [
            (m, g, -c, -er, -i, -o, -ca, -r, -u, la, tt, sp, e, None if h is None else -h,
             None if lo is None else -lo)
            for m, g, c, er, i, o, ca, r, u, la, tt, sp, e, h, lo in out
        ]  # fmt: skip
    return out


# -- packed values ------------------------------------------------------------------------------
# A rollup row keeps its three histograms and its cost in one packed value: per kind (0, 1, 2:
# latency, TTFT and speed, by log bucket, each counting its calls; 3 and 4: the sums of the high
# and low halves of the costs' significands, by binary exponent: :data:`VALUE_KINDS`) the sorted
# indexes in use and their sums, no sum zero. Sums are per (kind, index), so merging two rows'
# values sums them index by index; taking calls away (``sign=-1``) adds negative sums, and an
# index back at zero goes. SQLite keeps it as a BLOB of little-endian int64 (:func:`pack`): the
# five kinds' lengths, then per kind its indexes and its sums, so a read slices a kind out
# without a Python step per pair and skips the kinds it does not need. PostgreSQL keeps the same
# pairs as an ``int8[]`` of ``key, sum`` with ``key = index * 8 + kind``, which its SQL unnests
# and sums set-based (:mod:`.postgres.rollup`).

#: The kinds of a packed value: the histograms, then the cost's two halves.
VALUE_KINDS: Final = len(HISTOGRAMS) + 2
#: A packed value as its kinds' ``{index: sum}``.
Sums = list[dict[int, int]]
#: A packed value as its kinds' indexes and sums, in turn: ``(indexes, sums) * VALUE_KINDS``.
Segments = tuple[Sequence[int], ...]
_NO_SEGMENTS: Final[Segments] = ((),) * (2 * VALUE_KINDS)


def _sums() -> Sums:
    return [{} for _ in range(VALUE_KINDS)]


def pack(sums: Sums) -> bytes | None:
    """A packed value (its kinds' ``{index: sum}``; a sum of zero is left out) as SQLite's BLOB
    (``None``: nothing in it). Sorting and copying run in C: no Python step per pair."""
    sums = [
        {i: n for i, n in counts.items() if n} if 0 in counts.values() else counts
        for counts in sums
    ]
    flat = [len(counts) for counts in sums]
    for counts in sums:
        if len(counts) == 1:  # most of a batch's finest cells: one call
            flat += counts
            flat += counts.values()
        elif counts:
            indexes = sorted(counts)
            flat += indexes
            flat += map(counts.__getitem__, indexes)
    return _blob(array("q", flat))


def _flat(blob: bytes) -> array[int]:
    """A packed BLOB as a new array of int64 (native order)."""
    flat = array("q", blob)
    if not _LITTLE:
        flat.byteswap()
    return flat


def _blob(flat: array[int]) -> bytes | None:
    if not any(flat[:VALUE_KINDS]):
        return None
    if not _LITTLE:
        flat = array("q", flat)
        flat.byteswap()
    return flat.tobytes()


def segments(blob: bytes | None) -> Segments:
    """A packed BLOB's indexes and sums per kind (slices of one array: no step per pair)."""
    if not blob:
        return _NO_SEGMENTS
    flat = _flat(blob)
    out: list[Sequence[int]] = []
    at = VALUE_KINDS
    for length in flat[:VALUE_KINDS]:
        out += (flat[at : at + length], flat[at + length : at + 2 * length])
        at += 2 * length
    return tuple(out)


def _merge_into(flat: array[int], add: array[int]) -> None:
    """Add packed value ``add`` to packed value ``flat``, in place: one binary search (C) per
    pair of ``add`` (the smaller side: a batch's value merged into a stored row's), then a sum
    in place, an insertion or, at zero, a removal (C moves the rest)."""
    start = at = VALUE_KINDS
    for kind in range(VALUE_KINDS):
        length, extra = flat[kind], add[kind]
        for j in range(at, at + extra):
            index = add[j]
            end = start + length
            pos = bisect_left(flat, index, start, end)
            if pos < end and flat[pos] == index:
                total = flat[pos + length] + add[j + extra]
                if total:
                    flat[pos + length] = total
                else:  # the value first (it sits after the indexes), then its index
                    del flat[pos + length]
                    del flat[pos]
                    length -= 1
            else:
                flat.insert(pos + length, add[j + extra])
                flat.insert(pos, index)
                length += 1
        flat[kind] = length
        start += 2 * length
        at += 2 * extra


def merge_packed(a: bytes | None, b: bytes | None) -> bytes | None:
    """Two packed BLOBs summed (SQLite's ``asynctelemetry_merge``, on upsert)."""
    if not b:
        return a
    if not a:
        return b
    flat = _flat(a)
    _merge_into(flat, _flat(b))
    return _blob(flat)


#: A batch's sums of one period and group: :func:`derive`'s row of its one call, or, once a
#: second call comes, a list of the :data:`TOTAL_COLUMNS`, then the packed value's kinds as
#: ``{index: sum}`` (what :func:`pack` takes). (Most of a batch's finest cells hold one call
#: when calls spread over many groups: the row is then all the cell needs.)
Cell = Any  # tuple[Any, ...] | list[Any]: Python branches on which (mypy cannot follow)
#: A batch's cells by (period start, group).
CellMap = dict[tuple[int, Any], Cell]


def add_cells(cells: CellMap, derived: Iterable[Sequence[Any]]) -> None:
    """Add :func:`derive`'s rows to ``cells``, per (period start, group): what the writer hands
    the engine is one row per period and group, not one per call."""
    for row in derived:
        cell = _joined(cells, (row[0], row[1]), row)
        if cell is None:
            continue
        _, _, calls, errors, tin, tout, cached, reasoning, unpriced, lat, tt, sp, e, high, low = row
        cell[0] += calls
        cell[1] += errors
        cell[2] += tin
        cell[3] += tout
        cell[4] += cached
        cell[5] += reasoning
        cell[6] += unpriced
        if lat is not None:
            counts = cell[7]
            counts[lat] = counts.get(lat, 0) + calls
        if tt is not None:
            counts = cell[8]
            counts[tt] = counts.get(tt, 0) + calls
        if sp is not None:
            counts = cell[9]
            counts[sp] = counts.get(sp, 0) + calls
        if e is not None:  # a half of zero adds nothing (and a packed value holds no zero)
            if high:
                sums = cell[10]
                sums[e] = sums.get(e, 0) + high
            if low:
                sums = cell[11]
                sums[e] = sums.get(e, 0) + low


def _joined(cells: CellMap, key: tuple[int, Any], cell: Cell) -> list[Any] | None:
    """``None`` when ``cell`` becomes the cell of ``key`` (it had none), else the list cell of
    ``key`` that ``cell`` is to be summed into."""
    into = cells.get(key)
    if into is None:
        cells[key] = cell
        return None
    if type(into) is tuple:
        cells[key] = into = _expand(into)
    return into


def _expand(row: Sequence[Any]) -> list[Any]:
    """A cell of one call (its derived ``row``) as the list that sums more."""
    calls, (lat, tt, sp, e, high, low) = row[2], row[9:]
    return [
        *row[2:9],
        {} if lat is None else {lat: calls},
        {} if tt is None else {tt: calls},
        {} if sp is None else {sp: calls},
        {e: high} if e is not None and high else {},
        {e: low} if e is not None and low else {},
    ]


def cell_row(cell: Cell) -> tuple[Any, ...]:
    """A cell's :data:`TOTAL_COLUMNS` and packed value."""
    if type(cell) is list:
        return (*cell[:7], pack(cell[7:]))
    calls, (lat, tt, sp, e, high, low) = cell[2], cell[9:]
    lengths = [lat is not None, tt is not None, sp is not None, bool(e is not None and high)]
    lengths.append(e is not None and bool(low))
    flat = [int(b) for b in lengths]
    if lat is not None:
        flat += (lat, calls)
    if tt is not None:
        flat += (tt, calls)
    if sp is not None:
        flat += (sp, calls)
    if lengths[3]:
        flat += (e, high)
    if lengths[4]:
        flat += (e, low)
    return (*cell[2:9], _blob(array("q", flat)))


def add_coarser(
    coarser: CellMap, cells: Iterable[tuple[tuple[int, Any], Cell]], width_ns: int
) -> None:
    """Add finer ``cells`` to ``coarser``, per period of ``width_ns`` and group. The first cell
    of each coarser period is taken over and the next ones summed into it: ``cells`` are spent
    (written out already)."""
    ones: list[tuple[Any, ...]] = []
    for (start, gid), cell in cells:
        period = start - start % width_ns
        if type(cell) is tuple:
            ones.append((period, *cell[1:]))
            continue
        into = _joined(coarser, (period, gid), cell)
        if into is None:
            continue
        into[:7] = map(add, into[:7], cell[:7])
        for counts, more in zip(into[7:], cell[7:], strict=True):
            cget = counts.get
            for index, n in more.items():
                counts[index] = cget(index, 0) + n
    add_cells(coarser, ones)


# -- reading ------------------------------------------------------------------------------------
Segment = tuple[int | None, int | None, int | None]  # (level seconds or None for raw, lo, hi)


def plan(lo: int | None, hi: int | None, levels: Sequence[int]) -> list[Segment]:
    """Cover ``[lo, hi)`` (ns; ``None`` unbounded) with whole periods of the coarsest level
    that fits and finer ones, then raw rows at the edges."""
    if lo is not None and hi is not None and lo >= hi:
        return []
    if not levels:
        return [(None, lo, hi)]
    w = levels[0] * _S
    a = None if lo is None else -(-lo // w) * w
    b = None if hi is None else hi // w * w
    if a is not None and b is not None and a >= b:
        return plan(lo, hi, levels[1:])
    left = [] if lo is None else plan(lo, a, levels[1:])
    right = [] if hi is None else plan(b, hi, levels[1:])
    return [*left, (levels[0], a, b), *right]


def key_filters(filters: Filters) -> tuple[list[str], list[Any]]:
    """The filters the rollups can apply (their key columns), as ``?`` clauses and values."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.model is not None:
        clauses.append("(model = ? OR request_model = ?)")
        params += (filters.model, filters.model)
    for name in ("provider", "status"):
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            params.append(value)
    return clauses, params


def levels_for(filters: Filters, column: str | None, width_ns: int | None) -> list[int] | None:
    """The levels whose periods fit buckets of ``width_ns`` (all for one whole-window bucket),
    coarsest first (none for buckets finer than every level: the raw rows, read by the same
    rule); ``None`` when rollups cannot serve the read (a session or error filter, or a group
    the rollups do not key on)."""
    unkeyed = (filters.session_id, filters.error_type, filters.error_message)
    if any(v is not None for v in unkeyed) or column not in (None, *KEY_COLUMNS):
        return None
    return [w for w in LEVELS if width_ns is None or width_ns % (w * _S) == 0]


#: A read's query: ``"raw"`` or ``"packed"`` (what :meth:`Cells.add` takes its rows as), the SQL
#: with ``?`` placeholders, its parameters.
Query = tuple[str, str, list[Any]]


def read_queries(
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    lo: int | None,
    hi: int | None,
    *,
    raw_select: str,
    time_column: str,
    time_param: Callable[[int], Any],
    values: str = "vals",
) -> list[Query] | None:
    """The queries that read the calls passing ``filters`` in ``[lo, hi)`` (ns) per (bucket of
    ``width_ns`` or ``None``, value of ``column`` or ``None``): per segment of the :func:`plan`,
    the rollup rows of its level and periods as ``(b, k, *TOTAL_COLUMNS, values)`` (the answer row's
    bucket and group value; an engine may sum them per ``b, k`` first), and the raw rows of the
    edges (``raw_select`` from ``calls``, bounded on ``time_column`` by ``time_param`` of the
    bound; ``values``: the packed value's columns). ``None`` when rollups cannot serve the
    read. The SQL is the same in SQLite and PostgreSQL (their stores number the placeholders as
    they need)."""
    levels = levels_for(filters, column, width_ns)
    if levels is None:
        return None
    key_clauses, key_params = key_filters(filters)
    # The answer row's bucket and group value, in SQL (our own integers and column names).
    bucket = "CAST(NULL AS bigint)"
    if width_ns is not None:
        bucket = f"(start_ns - ((start_ns % {width_ns:d}) + {width_ns:d}) % {width_ns:d})"
    if column is None:
        group = "CAST(NULL AS text)"
    elif column == "request_model":  # falls back to the model (never NULL), as Cells does
        group = "COALESCE(g.request_model, g.model)"
    else:
        group = f"g.{column}"
    out: list[Query] = []
    for level, a, b in plan(lo, hi, levels):
        clauses: list[str] = []
        params: list[Any] = []
        for bound, op in ((a, ">="), (b, "<")):
            if bound is not None:
                if level is None:
                    clauses.append(f"{time_column} {op} ?")
                    params.append(time_param(bound))
                else:
                    clauses.append(f"start_ns {op} ?")
                    params.append(bound)
        if level is None:  # the edges: less than the finest period on each side
            where = [*clauses, *key_clauses]
            sql = raw_select + (f" WHERE {' AND '.join(where)}" if where else "")
            out.append(("raw", sql, [*params, *key_params]))
            continue
        where_sql = " AND ".join(["width_s = ?", *clauses, *key_clauses])
        out.append(
            (
                "packed",
                f"SELECT {bucket} AS b, {group} AS k, {', '.join(TOTAL_COLUMNS)}, {values} "
                "FROM rollups "
                f"JOIN rollup_groups g ON g.id = gid WHERE {where_sql}",
                [level, *params, *key_params],
            )
        )
    return out


class Cells:
    """The accumulators of one read, per (bucket start or ``None``, group value or ``None``):
    raw rows and packed rollup rows are added through the same accumulator."""

    def __init__(self, column: str | None, width_ns: int | None, hists: tuple[str, ...]) -> None:
        self.out: dict[tuple[int | None, Any], Acc] = {}
        self._position = None if column is None else KEY_COLUMNS.index(column)
        self._width_ns = width_ns
        self._wanted = [name in hists for name in HISTOGRAMS]

    def _acc(self, bucket: int | None, group: Any) -> Acc:
        acc = self.out.get((bucket, group))
        if acc is None:
            acc = self.out[bucket, group] = Acc()
        return acc

    def add(self, kind: str, rows: Iterable[Sequence[Any]]) -> None:
        """The rows of a :data:`Query` of ``kind`` (``"packed"``: SQLite's, values as BLOBs)."""
        if kind == "raw":
            self.add_raw(rows)
        else:
            self.add_packed((*row[:9], *segments(row[9])) for row in rows)

    def add_raw(self, rows: Iterable[Sequence[Any]]) -> None:
        """Raw rows (:data:`RAW_COLUMNS` values): what :func:`derive` says each adds."""
        width = self._width_ns
        position = self._position
        wanted = self._wanted
        for row in derive(rows, None, width_ns=width or LEVELS[-1] * _S):
            start, key = row[0], row[1]
            group = None if position is None else key[position]
            if group is None and position == _REQUEST_MODEL:
                group = key[0]  # by="request_model" falls back to the model (never NULL)
            acc = self._acc(None if width is None else start, group)
            self._add_totals(acc, row[2:9])
            lat, ttft, speed, e, high, low = row[9:]
            for want, counts, index in zip(
                wanted, (acc.latency, acc.ttft, acc.speed), (lat, ttft, speed), strict=True
            ):
                if want and index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if e is not None:
                acc.costs[e] = acc.costs.get(e, 0) + (high << _HALF) + low

    def add_packed(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rollup rows: bucket, group value, :data:`TOTAL_COLUMNS`, then the packed value's
        :data:`Segments` (its kinds' indexes and sums)."""
        wanted = self._wanted
        for row in rows:
            acc = self._acc(row[0], row[1])
            self._add_totals(acc, row[2:9])
            for want, counts, indexes, sums in zip(
                wanted, (acc.latency, acc.ttft, acc.speed), row[9:15:2], row[10:16:2], strict=True
            ):
                if want and indexes:
                    get = counts.get
                    for index, n in zip(indexes, sums, strict=True):
                        counts[index] = get(index, 0) + n
            costs = acc.costs
            get = costs.get
            for index, n in zip(row[15], row[16], strict=True):
                costs[index] = get(index, 0) + (n << _HALF)
            for index, n in zip(row[17], row[18], strict=True):
                costs[index] = get(index, 0) + n

    @staticmethod
    def _add_totals(acc: Acc, totals: Sequence[int]) -> None:
        calls, errors, tin, tout, cached, reasoning, unpriced = totals
        acc.calls += calls
        acc.errors += errors
        acc.input_tokens += tin
        acc.output_tokens += tout
        acc.cached += cached
        acc.reasoning += reasoning
        acc.unpriced += unpriced


def summaries_of(cells: dict[tuple[int | None, Any], Acc]) -> list[CallSummary]:
    """The summary rows of a large window's cells (one bucket), sorted as ``summarize`` sorts
    them: percentiles from the histograms (the ``approximate`` rule)."""
    rows = [
        summary_of(
            key,
            (*acc.totals(), acc.reasoning, acc.cost(), acc.unpriced),
            (*acc.percentiles(), histogram_percentile(acc.speed, 50)),
        )
        for (_, key), acc in cells.items()
    ]
    rows.sort(key=lambda r: (-r.cost_usd, -r.calls, r.key or ""))
    return rows


def buckets_of(cells: dict[tuple[int | None, Any], Acc]) -> list[TimeBucket]:
    """The time buckets of a large window's cells, oldest first, then key (``None`` first)."""
    series = [
        bucket_of(start, key, (*acc.totals(), acc.cost()), acc.percentiles())
        for (start, key), acc in cells.items()
        if start is not None
    ]
    series.sort(key=lambda b: (b.start, b.key is not None, b.key or ""))
    return series
