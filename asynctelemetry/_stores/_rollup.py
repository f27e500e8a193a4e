"""Rollups: per-period totals and histograms kept by the database engine, for reads at volume.

The rules are here, once; :mod:`.sqlite.rollup` and :mod:`.postgres.rollup` run them in their
engine's SQL, so both stores give equal answers for equal calls.

Per period (5 minutes, 1 hour and 1 day: :data:`LEVELS`) and per group of calls with equal
``model``, ``request_model``, ``provider``, ``route_name`` and ``status``, a store keeps: the
counts and token sums, the cost exactly, and histograms of latency, time to first token and
tokens per second over the log buckets of
:func:`~asynctelemetry._stores._base.histogram_index`.

What one call adds is worked out once, when its row is made at the store's door
(:func:`derive`: its group number, finest period, buckets and cost halves); the engine then sums
the batch per period, group and bucket and adds it to the stored rows (``INSERT … SELECT …
GROUP BY … ON CONFLICT DO UPDATE``) in the writer's transaction. Retention and repricing take
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

import json
import math
from typing import TYPE_CHECKING, Any, Final

from .._record import MIN_GENERATING_MS
from ._base import (
    GAMMA,
    CallSummary,
    TimeBucket,
    from_ns,
    histogram_index,
    histogram_percentile,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ._base import Filters

__all__ = [
    "DAY",
    "KEY_COLUMNS",
    "LEVELS",
    "RAW_COLUMNS",
    "STAT_COLUMNS",
    "TOTAL_COLUMNS",
    "Acc",
    "Cell",
    "Cells",
    "FSum",
    "buckets_of",
    "by_period",
    "changes",
    "count_minutes",
    "key_filters",
    "levels_for",
    "levels_from",
    "levels_of",
    "plan",
    "summaries_of",
]

#: Rollup periods in seconds, coarsest first; each divides the one before it.
LEVELS: Final = (86400, 3600, 300)
#: The day level, added by schema version 5 (:func:`add_days`).
DAY: Final = 86400
_S: Final = 1_000_000_000
KEY_COLUMNS: Final = ("model", "request_model", "provider", "route_name", "status")
_REQUEST_MODEL: Final = KEY_COLUMNS.index("request_model")
#: The totals of a group's period (the integer columns of ``STAT_COLUMNS``).
TOTAL_COLUMNS: Final = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "unpriced_calls",
)
STAT_COLUMNS: Final = (*TOTAL_COLUMNS, "cost", "latency", "ttft", "speed")
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


def _bump(counts: dict[int, int], index: int, by: int) -> None:
    n = counts.get(index, 0) + by
    if n:
        counts[index] = n
    else:
        del counts[index]


class Acc:
    """Totals and histograms of a group of calls; :meth:`merge` adds or subtracts another."""

    __slots__ = (
        "cached",
        "calls",
        "cost",
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
        self.cost = FSum()
        self.latency: dict[int, int] = {}
        self.ttft: dict[int, int] = {}
        self.speed: dict[int, int] = {}

    def merge(self, other: Acc, sign: int = 1) -> None:
        """Add ``other`` (``sign=-1``: take it away; exact, counts and cost alike)."""
        self.calls += sign * other.calls
        self.errors += sign * other.errors
        self.input_tokens += sign * other.input_tokens
        self.output_tokens += sign * other.output_tokens
        self.cached += sign * other.cached
        self.reasoning += sign * other.reasoning
        self.unpriced += sign * other.unpriced
        for partial in other.cost.partials:
            self.cost.step(sign * partial)
        for mine, theirs in (
            (self.latency, other.latency),
            (self.ttft, other.ttft),
            (self.speed, other.speed),
        ):
            for index, n in theirs.items():
                _bump(mine, index, sign * n)

    def stats(self) -> tuple[Any, ...]:
        """The row's stat columns (``STAT_COLUMNS`` order)."""
        dumps = json.dumps
        return (
            self.calls,
            self.errors,
            self.input_tokens,
            self.output_tokens,
            self.cached,
            self.reasoning,
            self.unpriced,
            dumps(self.cost.partials),
            dumps(list(self.latency.items())),
            dumps(list(self.ttft.items())),
            dumps(list(self.speed.items())),
        )

    def add_stored(self, stats: Sequence[Any], hists: tuple[str, ...]) -> None:
        """Add a stored row's stat columns (only its ``hists`` histograms): what :meth:`merge`
        of :meth:`of` does, without the intermediate accumulator (the read path's inner loop).

        The row's cost partials are appended, not summed: :meth:`FSum.finalize` is
        ``math.fsum`` of all of them, the exact total rounded once, however many there are.
        """
        (
            calls,
            errors,
            input_tokens,
            output_tokens,
            cached,
            reasoning,
            unpriced,
            cost,
            latency,
            ttft,
            speed,
        ) = stats
        self.calls += calls
        self.errors += errors
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cached += cached
        self.reasoning += reasoning
        self.unpriced += unpriced
        loads = json.loads
        self.cost.partials.extend(loads(cost))
        for name, counts, text in (
            ("latency", self.latency, latency),
            ("ttft", self.ttft, ttft),
            ("speed", self.speed, speed),
        ):
            if name in hists:
                get = counts.get
                for index, n in loads(text):
                    counts[index] = get(index, 0) + n

    @classmethod
    def of(cls, stats: Sequence[Any], hists: tuple[str, ...] = ("latency", "ttft", "speed")) -> Acc:
        """The accumulator of a stored row's stat columns (only the ``hists`` histograms)."""
        acc = cls()
        (
            acc.calls,
            acc.errors,
            acc.input_tokens,
            acc.output_tokens,
            acc.cached,
            acc.reasoning,
            acc.unpriced,
        ) = stats[:7]
        loads = json.loads
        acc.cost = FSum(loads(stats[7]))
        if "latency" in hists:
            acc.latency = dict(loads(stats[8]))
        if "ttft" in hists:
            acc.ttft = dict(loads(stats[9]))
        if "speed" in hists:
            acc.speed = dict(loads(stats[10]))
        return acc


Cell = tuple[int, tuple[Any, ...]]  # (period start ns, key columns)


def _same(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return key


def _accumulate(
    rows: Iterable[Sequence[Any]], width_ns: int, cells: dict[Cell, Acc] | None = None
) -> dict[Cell, Acc]:
    """Raw rows (:data:`RAW_COLUMNS` values) counted per period of ``width_ns`` and key: what
    :func:`derive` says each adds, summed here (a read's edges, and older writers)."""
    cells = {} if cells is None else cells
    get = cells.get
    pending: dict[Cell, list[float]] = {}  # costs, summed exactly per cell at the end
    for (
        start,
        key,
        _,
        errors,
        tin,
        tout,
        cached,
        reasoning,
        unpriced,
        lat,
        ttft,
        speed,
        e,
        hi,
        lo,
    ) in derive(rows, _same, width_ns=width_ns):
        cell = (start, key)
        acc = get(cell)
        if acc is None:
            acc = cells[cell] = Acc()
        acc.calls += 1
        acc.errors += errors
        acc.input_tokens += tin
        acc.output_tokens += tout
        acc.cached += cached
        acc.reasoning += reasoning
        acc.unpriced += unpriced
        if e is not None:
            costs = pending.get(cell)
            if costs is None:
                costs = pending[cell] = []
            costs.extend(cost_floats(e, hi, lo))
        for counts, i in ((acc.latency, lat), (acc.ttft, ttft), (acc.speed, speed)):
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
    for cell, costs in pending.items():
        total = cells[cell].cost
        for partial in exact_partials(costs):
            total.step(partial)
    return cells


def exact_partials(values: list[float]) -> list[float]:
    """Floats whose exact sum is the exact sum of ``values`` (usually one or two): each is
    ``math.fsum`` of what is left, so the work runs in C rather than once per value here."""
    parts: list[float] = []
    while True:
        rest = math.fsum([*values, *(-p for p in parts)])
        if not rest:
            return parts
        parts.append(rest)


#: Kinds of a rollup's value rows: the three histograms (their log bucket's count), then the cost
#: (its binary exponent's exact partial sum, in two integer halves).
HISTOGRAMS: Final = ("latency", "ttft", "speed")
COST_KIND: Final = len(HISTOGRAMS)
_HALF: Final = 26
_HALF_MASK: Final = (1 << _HALF) - 1
_MANTISSA: Final = float(1 << 53)
#: ``log(GAMMA)`` as :func:`histogram_index` divides by it (inlined in :func:`derive`).
_LOG_GAMMA: Final = math.log(GAMMA)


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
    group_of: Callable[[tuple[Any, ...]], Any],
    sign: int = 1,
    width_ns: int = LEVELS[-1] * _S,
) -> list[tuple[Any, ...]]:
    """What each raw row (:data:`RAW_COLUMNS` values) adds to the rollups (``sign=-1``: takes
    away), as the engine aggregates it: ``(start of its period of ``width_ns`` (the finest
    level's), group id, calls, errors, input,
    output, cached and reasoning tokens, unpriced, latency bucket, time to first token bucket,
    speed bucket, cost exponent, cost high, cost low)`` (``None`` for a value the call has not).

    The one rule of what a call counts in (the same as :meth:`Cells.add_raw` reads): computed
    once per call at the store's door, then summed by SQL over the batch. ``group_of`` maps a
    key (:data:`KEY_COLUMNS` values) to its group number. (The bucket and the cost halves are
    :func:`histogram_index` and :func:`cost_parts`, inlined: this runs once per call written.)
    """
    out: list[tuple[Any, ...]] = []
    append = out.append
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
        append(
            (
                ns - ns % width,
                group_of((model, rm, provider, route, status)),
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


def levels_of(rows: Iterable[Sequence[Any]]) -> dict[tuple[int, int, tuple[Any, ...]], Acc]:
    """Every level's cells for these raw rows (:data:`RAW_COLUMNS` values; the finest level
    counted, the others merged)."""
    return levels_from(count_minutes(rows))


def count_minutes(
    rows: Iterable[Sequence[Any]], minutes: dict[Cell, Acc] | None = None
) -> dict[Cell, Acc]:
    """Raw rows counted into the finest level's cells (into ``minutes``, when given: a writer
    counts a batch a step at a time)."""
    return _accumulate(rows, LEVELS[-1] * _S, minutes)


def levels_from(minutes: dict[Cell, Acc]) -> dict[tuple[int, int, tuple[Any, ...]], Acc]:
    """Every level's cells from the finest level's (the coarser ones merged from them)."""
    finest = LEVELS[-1]
    out: dict[tuple[int, int, tuple[Any, ...]], Acc] = {
        (finest, start, key): acc for (start, key), acc in minutes.items()
    }
    for width in LEVELS[:-1]:
        w = width * _S
        for (start, key), acc in minutes.items():
            cell = (width, start - start % w, key)
            coarse = out.get(cell)
            if coarse is None:
                coarse = out[cell] = Acc()
            coarse.merge(acc)
    return out


Change = tuple[str, tuple[Any, ...]]  # ("insert" | "update" | "delete", the statement's values)


def changes(
    stored: dict[tuple[Any, ...], tuple[Any, Sequence[Any]]],
    width: int,
    start: int,
    members: Iterable[tuple[tuple[Any, ...], Acc]],
    sign: int,
) -> list[Change]:
    """What adding (``sign=1``) or subtracting (``-1``) ``members`` (key → accumulator) does to
    the stored rows of one period, ``stored`` mapping each key to (row id, stat columns): new
    rows, changed rows (stats then the id) and rows left with no calls (their id). Shared by
    every store that keeps rollups; each runs the statements in its own SQL."""
    out: list[Change] = []
    for key, acc in members:
        found = stored.get(key)
        if found is None:
            # Forgetting calls the rollups never held (rows written into the file by hand,
            # not by a store) has nothing to take them from.
            if sign > 0:
                out.append(("insert", (width, start, *key, *acc.stats())))
            continue
        rowid, stats = found
        total = Acc.of(stats)
        total.merge(acc, sign)
        if total.calls > 0:
            out.append(("update", (*total.stats(), rowid)))
        else:
            out.append(("delete", (rowid,)))
    return out


def by_period(
    cells: dict[tuple[int, int, tuple[Any, ...]], Acc],
) -> dict[tuple[int, int], list[tuple[tuple[Any, ...], Acc]]]:
    """``cells`` grouped by (level, period start): the unit a writer reads and changes."""
    periods: dict[tuple[int, int], list[tuple[tuple[Any, ...], Acc]]] = {}
    for (width, start, key), acc in cells.items():
        periods.setdefault((width, start), []).append((key, acc))
    return periods


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
    rule); ``None`` when rollups cannot serve the read (a session filter or group)."""
    if filters.session_id is not None or column not in (None, *KEY_COLUMNS):
        return None
    return [w for w in LEVELS if width_ns is None or width_ns % (w * _S) == 0]


class Cells:
    """The accumulators of one read, per (bucket start or ``None``, group value or ``None``):
    raw rows and stored rollup rows are added through the same accumulator."""

    def __init__(self, column: str | None, width_ns: int | None, hists: tuple[str, ...]) -> None:
        self.out: dict[tuple[int | None, Any], Acc] = {}
        self._position = None if column is None else KEY_COLUMNS.index(column)
        self._width_ns = width_ns
        self._hists = hists

    def _cell(self, start: int, key: Sequence[Any]) -> Acc:
        bucket = None if self._width_ns is None else start - start % self._width_ns
        group = None if self._position is None else key[self._position]
        if group is None and self._position == _REQUEST_MODEL:
            group = key[0]  # by="request_model" falls back to the model (never NULL)
        acc = self.out.get((bucket, group))
        if acc is None:
            acc = self.out[bucket, group] = Acc()
        return acc

    def add_raw(self, rows: Iterable[Sequence[Any]]) -> None:
        """Raw rows (:data:`RAW_COLUMNS` values)."""
        for (start, key), acc in _accumulate(rows, self._width_ns or LEVELS[-1] * _S).items():
            self._cell(start, key).merge(acc)

    def add_sums(self, totals: Iterable[Sequence[Any]], values: Iterable[Sequence[Any]]) -> None:
        """Sums the engine grouped per (bucket start or ``None``, group value or ``None``):
        ``totals`` rows (bucket, group, calls, errors, input, output, cached and reasoning
        tokens, unpriced calls) and ``values`` rows (bucket, group, kind, bucket index or cost
        exponent, count or cost high half, cost low half)."""
        out = self.out
        for bucket, group, calls, errors, tin, tout, cached, reasoning, unpriced in totals:
            acc = out.get((bucket, group))
            if acc is None:
                acc = out[bucket, group] = Acc()
            acc.calls += calls
            acc.errors += errors
            acc.input_tokens += tin
            acc.output_tokens += tout
            acc.cached += cached
            acc.reasoning += reasoning
            acc.unpriced += unpriced
        wanted = [name in self._hists for name in HISTOGRAMS]
        for bucket, group, kind, index, n, m in values:
            acc = out.get((bucket, group))
            if acc is None:  # values without totals: none (both come from the same calls)
                continue
            if kind == COST_KIND:
                acc.cost.partials.extend(cost_floats(index, n, m))
            elif wanted[kind]:
                counts = (acc.latency, acc.ttft, acc.speed)[kind]
                counts[index] = counts.get(index, 0) + n

    def add_stored(self, rows: Iterable[Sequence[Any]]) -> None:
        """Stored rollup rows: the period start, the key columns, the stat columns."""
        hists = self._hists
        for row in rows:
            self._cell(row[0], row[1:6]).add_stored(row[6:], hists)


def summaries_of(cells: dict[tuple[int | None, Any], Acc]) -> list[CallSummary]:
    """The summary rows of a large window's cells (one bucket), sorted as ``summarize`` sorts
    them: percentiles from the histograms (the ``approximate`` rule)."""
    rows = [
        CallSummary(
            key=key,
            calls=acc.calls,
            errors=acc.errors,
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            cached_input_tokens=acc.cached,
            reasoning_tokens=acc.reasoning,
            cost_usd=acc.cost.finalize(),
            unpriced_calls=acc.unpriced,
            p50_latency_ms=histogram_percentile(acc.latency, 50),
            p95_latency_ms=histogram_percentile(acc.latency, 95),
            p50_ttft_ms=histogram_percentile(acc.ttft, 50),
            median_tokens_per_sec=histogram_percentile(acc.speed, 50),
        )
        for (_, key), acc in cells.items()
    ]
    rows.sort(key=lambda r: (-r.cost_usd, -r.calls, r.key or ""))
    return rows


def buckets_of(cells: dict[tuple[int | None, Any], Acc]) -> list[TimeBucket]:
    """The time buckets of a large window's cells, oldest first, then key (``None`` first)."""
    series = [
        TimeBucket(
            start=from_ns(start),
            key=key,
            calls=acc.calls,
            errors=acc.errors,
            input_tokens=acc.input_tokens,
            output_tokens=acc.output_tokens,
            cached_input_tokens=acc.cached,
            cost_usd=acc.cost.finalize(),
            p50_latency_ms=histogram_percentile(acc.latency, 50),
            p95_latency_ms=histogram_percentile(acc.latency, 95),
            p50_ttft_ms=histogram_percentile(acc.ttft, 50),
        )
        for (start, key), acc in cells.items()
        if start is not None
    ]
    series.sort(key=lambda b: (b.start, b.key is not None, b.key or ""))
    return series
