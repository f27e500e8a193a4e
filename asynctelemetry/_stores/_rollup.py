"""Rollups: per-period totals and histograms kept by the writer, for reads at volume.

The rules are here, once, with SQLite's SQL for them; :mod:`._pg_rollup` runs the same rules
(:class:`Acc`, :func:`changes`, :func:`plan`, :class:`Cells`, :func:`summaries_of`,
:func:`buckets_of`) in PostgreSQL's SQL, so both stores give equal rows for equal calls.

The ``rollup`` table holds, per period (1 minute, 5 minutes, 1 hour and 1 day: :data:`LEVELS`)
and per group of calls with equal ``model``, ``request_model``, ``provider``, ``route_name`` and
``status``: the counts and token sums, the cost as exact partial sums (Shewchuk, as ``math.fsum``
keeps them: totals of any number of rows round once and equal ``math.fsum`` of the costs), and
histograms of latency, time to first token and tokens per second over the log buckets of
:func:`~asynctelemetry._stores._base.histogram_index`.

The writer keeps them exact in the same transaction as the calls: :func:`remember` adds the rows
a batch inserted (read back by rowid, so ignored duplicates and rejected rows never count),
:func:`forget` subtracts rows about to be deleted (retention) or changed (repricing, which
adds them back with :func:`include`). A file of
schema version 2 gets its rollups built once, when it is migrated (:func:`rebuild`); one of
version 4 gets its day rows, from its hour rows (:func:`add_days`).

A read of a large window (:func:`rolled`) takes whole periods from the coarsest level that
fits (7 days: 6 or 7 day rows and up to 23 hour rows per group) and only the partial minutes at
its edges from the raw rows, all through the same accumulator, so the totals equal those of the
raw rows. Reading a stored row costs its histograms' entries (about a hundred), so the day level
is what keeps a week of a million calls well under a second. Percentiles then
come from the histograms: that is the ``approximate`` rule of ``_base`` for windows of more than
``EXACT_LIMIT`` calls; smaller windows are read exactly from the raw rows. Filters on
``session_id`` and ``by="session"`` are not in the rollups (sessions are too many): those read
the raw rows.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Final

from .._record import MIN_GENERATING_MS
from ._base import CallSummary, TimeBucket, from_ns, histogram_index, histogram_percentile

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Sequence

    from ._base import Filters

__all__ = [
    "DAY",
    "KEY_COLUMNS",
    "LEVELS",
    "RAW_COLUMNS",
    "STAT_COLUMNS",
    "TABLE_SQL",
    "Acc",
    "Cell",
    "Cells",
    "FSum",
    "add_days",
    "buckets_of",
    "by_period",
    "changes",
    "count_minutes",
    "forget",
    "include",
    "key_filters",
    "levels_for",
    "levels_from",
    "levels_of",
    "plan",
    "rebuild",
    "remember",
    "remember_rows",
    "rolled",
    "summaries_of",
]

#: Rollup periods in seconds, coarsest first; each divides the one before it.
LEVELS: Final = (86400, 3600, 300, 60)
#: The day level, added by schema version 5 (:func:`add_days`).
DAY: Final = 86400
_S: Final = 1_000_000_000
KEY_COLUMNS: Final = ("model", "request_model", "provider", "route_name", "status")
_REQUEST_MODEL: Final = KEY_COLUMNS.index("request_model")
STAT_COLUMNS: Final = (
    "calls",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "unpriced_calls",
    "cost",
    "latency",
    "ttft",
    "speed",
)
TABLE_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS rollup (width_s INTEGER NOT NULL, start_ns INTEGER NOT NULL, "
    "model TEXT NOT NULL, request_model TEXT, provider TEXT, route_name TEXT, "
    "status TEXT NOT NULL, calls INTEGER NOT NULL, errors INTEGER NOT NULL, "
    "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
    "cached_input_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, "
    "unpriced_calls INTEGER NOT NULL, cost TEXT NOT NULL, latency TEXT NOT NULL, "
    "ttft TEXT NOT NULL, speed TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rollup_start ON rollup (width_s, start_ns)",
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
_STATS_SQL: Final = ", ".join(STAT_COLUMNS)
_INSERT: Final = (
    f"INSERT INTO rollup (width_s, start_ns, {', '.join(KEY_COLUMNS)}, {_STATS_SQL}) "
    f"VALUES ({', '.join('?' * (2 + len(KEY_COLUMNS) + len(STAT_COLUMNS)))})"
)
_UPDATE: Final = f"UPDATE rollup SET {', '.join(f'{c} = ?' for c in STAT_COLUMNS)} WHERE rowid = ?"
_STATEMENTS: Final = {
    "insert": _INSERT,
    "update": _UPDATE,
    "delete": "DELETE FROM rollup WHERE rowid = ?",
}


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


def _accumulate(
    rows: Iterable[Sequence[Any]], width_ns: int, cells: dict[Cell, Acc] | None = None
) -> dict[Cell, Acc]:
    """Raw rows (``_RAW`` columns) counted per period of ``width_ns`` and key (the loop of
    :meth:`Acc.add`, inlined: it runs once per call written)."""
    cells = {} if cells is None else cells
    get = cells.get
    index = histogram_index
    pending: dict[Cell, list[float]] = {}  # costs, summed exactly per cell at the end
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
        cell = (ns - ns % width_ns, (model, rm, provider, route, status))
        acc = get(cell)
        if acc is None:
            acc = cells[cell] = Acc()
        acc.calls += 1
        if status == "error":
            acc.errors += 1
        if tin:
            acc.input_tokens += tin
        if tout:
            acc.output_tokens += tout
        if cached:
            acc.cached += cached
        if reasoning:
            acc.reasoning += reasoning
        if cost is None:
            acc.unpriced += 1
        else:
            costs = pending.get(cell)
            if costs is None:
                pending[cell] = [cost]
            else:
                costs.append(cost)
        if dur is not None:
            counts = acc.latency
            i = index(dur)
            counts[i] = counts.get(i, 0) + 1
            # Tokens per second exactly as LLMCall.tokens_per_sec computes it.
            if tout:
                generating = dur - (ttft or 0.0)
                if generating >= MIN_GENERATING_MS:
                    tpt = generating / tout
                    if tpt:
                        counts = acc.speed
                        i = index(1000.0 / tpt)
                        counts[i] = counts.get(i, 0) + 1
        if ttft is not None:
            counts = acc.ttft
            i = index(ttft)
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


def _write(
    conn: sqlite3.Connection, cells: dict[tuple[int, int, tuple[Any, ...]], Acc], sign: int
) -> None:
    """Add (``sign=1``) or subtract (``-1``) ``cells`` to the stored rollup rows."""
    for (width, start), members in by_period(cells).items():
        stored = {
            tuple(row[1:6]): (row[0], row[6:])
            for row in conn.execute(
                f"SELECT rowid, {', '.join(KEY_COLUMNS)}, {_STATS_SQL} FROM rollup "
                "WHERE width_s = ? AND start_ns = ?",
                (width, start),
            )
        }
        for kind, values in changes(stored, width, start, members, sign):
            conn.execute(_STATEMENTS[kind], values)


def remember(conn: sqlite3.Connection, after_id: int) -> None:
    """Add the calls inserted after rowid ``after_id`` (inside the writer's transaction)."""
    rows = conn.execute(f"SELECT {_RAW} FROM calls WHERE id > ?", (after_id,)).fetchall()
    if rows:
        _write(conn, levels_of(rows), 1)


def remember_rows(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Add calls just inserted, given as their :data:`RAW_COLUMNS` values."""
    if rows:
        _write(conn, levels_of(rows), 1)


def include(conn: sqlite3.Connection, ids_sql: str, params: Sequence[Any]) -> None:
    """Add the calls whose rowid ``ids_sql`` selects (after they were changed)."""
    rows = conn.execute(f"SELECT {_RAW} FROM calls WHERE id IN ({ids_sql})", params).fetchall()
    if rows:
        _write(conn, levels_of(rows), 1)


def forget(conn: sqlite3.Connection, ids_sql: str, params: Sequence[Any]) -> None:
    """Subtract the calls whose rowid ``ids_sql`` selects (before they are deleted/changed)."""
    rows = conn.execute(f"SELECT {_RAW} FROM calls WHERE id IN ({ids_sql})", params).fetchall()
    if rows:
        _write(conn, levels_of(rows), -1)


#: Rows per step when rollups are built for a whole file.
_REBUILD_CHUNK: Final = 50_000


def rebuild(conn: sqlite3.Connection) -> None:
    """Create the rollup table and build it from every stored call (a migration step)."""
    for sql in TABLE_SQL:
        conn.execute(sql)
    conn.execute("DELETE FROM rollup")
    last = -1
    while True:
        chunk = conn.execute(
            f"SELECT id, {_RAW} FROM calls WHERE id > ? ORDER BY id LIMIT ?",
            (last, _REBUILD_CHUNK),
        ).fetchall()
        if not chunk:
            return
        last = chunk[-1][0]
        _write(conn, levels_of(row[1:] for row in chunk), 1)


def add_days(conn: sqlite3.Connection) -> None:
    """Build the day rows from the hour rows (a migration step; any day rows are replaced)."""
    conn.execute("DELETE FROM rollup WHERE width_s = ?", (DAY,))
    days: dict[tuple[int, int, tuple[Any, ...]], Acc] = {}
    width = DAY * _S
    rows = conn.execute(
        f"SELECT start_ns, {', '.join(KEY_COLUMNS)}, {_STATS_SQL} FROM rollup "
        "WHERE width_s = ? ORDER BY start_ns",
        (3600,),
    )
    for row in rows:
        cell = (DAY, row[0] - row[0] % width, tuple(row[1:6]))
        acc = days.get(cell)
        if acc is None:
            acc = days[cell] = Acc()
        acc.merge(Acc.of(row[6:]))
    _write(conn, days, 1)


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


def _bounds(column: str, lo: int | None, hi: int | None) -> tuple[list[str], list[Any]]:
    clauses, params = [], []
    if lo is not None:
        clauses.append(f"{column} >= ?")
        params.append(lo)
    if hi is not None:
        clauses.append(f"{column} < ?")
        params.append(hi)
    return clauses, params


def rolled(
    conn: sqlite3.Connection,
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    lo: int | None,
    hi: int | None,
    hists: tuple[str, ...] = ("latency", "ttft", "speed"),
) -> dict[tuple[int | None, Any], Acc] | None:
    """The calls that pass ``filters`` in ``[lo, hi)``, accumulated per (bucket start or
    ``None``, value of ``column`` or ``None``); ``None`` when rollups cannot serve the read.
    Only the ``hists`` histograms are read from the rollups (the others stay empty)."""
    levels = levels_for(filters, column, width_ns)
    if levels is None:
        return None
    key_clauses, key_params = key_filters(filters)
    cells = Cells(column, width_ns, hists)
    for level, a, b in plan(lo, hi, levels):
        if level is None:  # the edges: less than a minute of calls on each side
            clauses, params = _bounds("timestamp_ns", a, b)
            sql = f"SELECT {_RAW} FROM calls"
            where = [*clauses, *key_clauses]
            if where:
                sql += " WHERE " + " AND ".join(where)
            cells.add_raw(conn.execute(sql, [*params, *key_params]))
            continue
        clauses, params = _bounds("start_ns", a, b)
        where = ["width_s = ?", *clauses, *key_clauses]
        cells.add_stored(
            conn.execute(
                f"SELECT start_ns, {', '.join(KEY_COLUMNS)}, {_STATS_SQL} FROM rollup "
                f"WHERE {' AND '.join(where)}",
                [level, *params, *key_params],
            )
        )
    return cells.out


def levels_for(filters: Filters, column: str | None, width_ns: int | None) -> list[int] | None:
    """The levels whose periods fit buckets of ``width_ns`` (all for one whole-window bucket),
    coarsest first; ``None`` when rollups cannot serve the read (a session filter or group)."""
    if filters.session_id is not None or column not in (None, *KEY_COLUMNS):
        return None
    return [w for w in LEVELS if width_ns is None or width_ns % (w * _S) == 0] or None


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
        for (start, key), acc in _accumulate(rows, LEVELS[-1] * _S).items():
            self._cell(start, key).merge(acc)

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
