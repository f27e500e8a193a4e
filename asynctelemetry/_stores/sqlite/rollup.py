"""SQLite rollups, kept by the engine: the rules of :mod:`.._rollup` in SQLite's SQL.

Two tables (schema version 11):

- ``rollup_groups``: one row per group of calls with equal ``model``, ``request_model``,
  ``provider``, ``route_name`` and ``status``, numbered ``id`` by
  :func:`~.._rollup.group_id` (each batch adds those it met, ``INSERT OR IGNORE``);
- ``rollups``: one row per level (``width_s``: a day, an hour, 5 minutes), period start
  (``start_ns``) and group (``gid``): the calls, errors, token sums and unpriced calls, and
  ``vals``, the three histograms (latency, time to first token, speed) and the exact cost
  packed in one BLOB (:func:`~.._rollup.pack`: little-endian int64, the five kinds' lengths,
  then per kind its sorted indexes and their sums).

A batch is added in the writer's transaction: Python computes each call's group number, buckets
and cost halves once, at the store's door (:func:`~.._rollup.derive`), into a temporary table;
the engine sums it per finest period and group (``GROUP BY``, the values packed by the
aggregate ``asynctelemetry_pack``), then adds those few rows to every level: ``INSERT … SELECT
… GROUP BY … ON CONFLICT DO UPDATE SET calls = calls + excluded.calls, …, vals =
asynctelemetry_merge(vals, excluded.vals)`` (coarser levels summed by the aggregate
``asynctelemetry_sum``). The three are application-defined functions in Python (:func:`register`
on the writer's connection): they run in the writer's thread, never on the event loop. Retention
and repricing take calls away the same way (``sign=-1``); rows left at zero calls go.

Why packed, measured (``benchmarks/bench_dashboard.py``, 1,000,000 calls over 7 days, 80
groups; store time, the same loaded 2-core machine): versions 8 to 10 kept a row per bucket
(``rollup_totals``, ``rollup_values``: 4.7 million value rows) and a large window's read had
SQLite sort and group them (7-day time series by model in 2-hour buckets 3.7 to 5.8 s, 7-day
summary 1.2 to 2.7 s). Packed, the file holds 138,319 rows (5-minute 124,159, hour 13,520, day 640)
and the same reads take 265 ms and 227 ms: one row per period and group is read (13,440 for a
week of hours) and the reader's thread slices each BLOB per kind (no Python step per pair to
find them) and adds only the histograms it needs. The alternatives: JSON1 merges in C but only
by expanding the pairs back into rows (the same sort); SQLite has no array type. The merging
functions are Python, one aggregate step per call written (where the bucket rows took one
``GROUP BY`` row per call and bucket) and one merge per touched row and level.

The 5-minute level stays: it holds most rows (90%) but it is what the dashboard's 24-hour
charts (15-minute buckets, 343 ms) and 5-minute buckets of windows up to 8 hours read (without
it they would read every call of the window), and it bounds the raw rows a window's edges read
to 5 minutes on each side.

A large window's read (:func:`rolled`) runs :func:`~.._rollup.read_queries` in the reader's
thread: per segment of the plan the rollup rows of its level, then the raw rows of the partial
periods at the window's edges, all into one :class:`~.._rollup.Cells`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from .._rollup import (
    HISTOGRAMS,
    KEY_COLUMNS,
    LEVELS,
    RAW_COLUMNS,
    TOTAL_COLUMNS,
    Acc,
    Cells,
    Packer,
    PackSum,
    derive,
    merge_packed,
    read_queries,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from .._base import Filters

__all__ = [
    "TABLE_SQL",
    "forget",
    "include",
    "rebuild",
    "register",
    "remember",
    "remember_rows",
    "rolled",
]

_S: Final = 1_000_000_000
_KEYS: Final = ", ".join(KEY_COLUMNS)
_TOTALS: Final = TOTAL_COLUMNS
TABLE_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS rollup_groups (id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
    "request_model TEXT, provider TEXT, route_name TEXT, status TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rollups (width_s INTEGER NOT NULL, "
    "start_ns INTEGER NOT NULL, gid INTEGER NOT NULL, "
    + ", ".join(f"{c} INTEGER NOT NULL" for c in _TOTALS)
    + ", vals BLOB, PRIMARY KEY (width_s, start_ns, gid))",
)
#: The batch's rows as :func:`~.._rollup.derive` makes them (the writer's connection only).
_BATCH: Final = (
    "minute",
    "gid",
    *_TOTALS,
    *HISTOGRAMS,
    "cost_e",
    "cost_high",
    "cost_low",
)
_BATCH_TABLE: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS rollup_batch ({', '.join(f'{c} INTEGER' for c in _BATCH)})"
)
#: The batch summed per finest period and group, its values packed: every level is then added
#: from these few rows.
_DELTA_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_delta (start INTEGER, gid INTEGER, "
    + ", ".join(f"{c} INTEGER" for c in _TOTALS)
    + ", vals BLOB)"
)
#: Ready the writer connection's temporary tables, empty (created in its first transaction).
_BATCH_SQL: Final = (_BATCH_TABLE, _DELTA_TABLE, "DELETE FROM temp.rollup_batch")
_ADD_GROUP: Final = f"INSERT OR IGNORE INTO rollup_groups (id, {_KEYS}) VALUES (?, ?, ?, ?, ?, ?)"
_SUMS: Final = ", ".join(f"sum({c})" for c in _TOTALS)
_DELTA: Final = (
    "DELETE FROM temp.rollup_delta",
    f"INSERT INTO temp.rollup_delta SELECT minute, gid, {_SUMS}, "
    f"asynctelemetry_pack({', '.join(HISTOGRAMS)}, cost_e, cost_high, cost_low, calls) "
    "FROM temp.rollup_batch GROUP BY minute, gid",
)
#: A period's start at the level of ``:w`` nanoseconds (floored, also before 1970).
_START: Final = "(start - ((start % :w) + :w) % :w)"
_COLUMNS: Final = f"width_s, start_ns, gid, {', '.join(_TOTALS)}, vals"
_UPSERT: Final = (
    "ON CONFLICT (width_s, start_ns, gid) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _TOTALS)
    + ", vals = asynctelemetry_merge(vals, excluded.vals)"
)
#: The finest level's rows are the delta's as they are; coarser ones sum them per period.
_ADD_FINEST: Final = (
    f"INSERT INTO rollups ({_COLUMNS}) SELECT :s, start, gid, {', '.join(_TOTALS)}, vals "
    f"FROM temp.rollup_delta WHERE true {_UPSERT}"
)
_ADD_COARSER: Final = (
    f"INSERT INTO rollups ({_COLUMNS}) SELECT :s, {_START} AS p, gid, {_SUMS}, "
    f"asynctelemetry_sum(vals) FROM temp.rollup_delta WHERE true GROUP BY p, gid {_UPSERT}"
)
_DROP_EMPTY: Final = (
    f"DELETE FROM rollups WHERE width_s = :s AND start_ns IN "
    f"(SELECT DISTINCT {_START} FROM temp.rollup_delta) AND calls = 0"
)
_RAW: Final = ", ".join(RAW_COLUMNS)
#: Rows of the batch table per INSERT statement (15 parameters each).
_ROWS_PER_STATEMENT: Final = 64


def register(conn: sqlite3.Connection) -> None:
    """Add the functions that merge packed values to a connection that writes rollups."""
    conn.create_function("asynctelemetry_merge", 2, merge_packed, deterministic=True)
    # typeshed types aggregates as int-valued; SQLite takes any SQL value.
    conn.create_aggregate("asynctelemetry_pack", 7, Packer)  # type: ignore[arg-type]
    conn.create_aggregate("asynctelemetry_sum", 1, PackSum)  # type: ignore[arg-type]


# -- writing ------------------------------------------------------------------------------------
@functools.cache
def _fill_sql(rows: int) -> str:
    one = f"({', '.join('?' * len(_BATCH))})"
    return f"INSERT INTO temp.rollup_batch VALUES {', '.join([one] * rows)}"


def _add(conn: sqlite3.Connection, raw: Sequence[Sequence[Any]], sign: int) -> None:
    """Add (``sign=1``) or take away (``-1``) the calls of ``raw`` (:data:`RAW_COLUMNS`
    values): their groups, their derived rows into the batch table, then the sums of every
    level."""
    if not raw:
        return
    groups: dict[tuple[Any, ...], int] = {}
    rows = derive(raw, groups, sign)
    conn.executemany(_ADD_GROUP, [(gid, *key) for key, gid in groups.items()])
    for sql in _BATCH_SQL:
        conn.execute(sql)
    size = _ROWS_PER_STATEMENT
    done = 0
    while done < len(rows):
        while len(rows) - done < size:
            size //= 2
        sql = _fill_sql(size)
        while len(rows) - done >= size:
            conn.execute(sql, [v for row in rows[done : done + size] for v in row])
            done += size
    for sql in _DELTA:
        conn.execute(sql)
    for width in LEVELS:
        params = {"s": width, "w": width * _S}
        conn.execute(_ADD_FINEST if width == LEVELS[-1] else _ADD_COARSER, params)
        if sign < 0:
            conn.execute(_DROP_EMPTY, params)


def remember_rows(conn: sqlite3.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Add calls just inserted, given as their :data:`RAW_COLUMNS` values."""
    _add(conn, raw, 1)


def remember(conn: sqlite3.Connection, after_id: int) -> None:
    """Add the calls inserted after rowid ``after_id`` (inside the writer's transaction)."""
    _add(conn, conn.execute(f"SELECT {_RAW} FROM calls WHERE id > ?", (after_id,)).fetchall(), 1)


def include(conn: sqlite3.Connection, ids_sql: str, params: Sequence[Any]) -> None:
    """Add the calls whose rowid ``ids_sql`` selects (after they were changed)."""
    rows = conn.execute(f"SELECT {_RAW} FROM calls WHERE id IN ({ids_sql})", params).fetchall()
    _add(conn, rows, 1)


def forget(conn: sqlite3.Connection, ids_sql: str, params: Sequence[Any]) -> None:
    """Take away the calls whose rowid ``ids_sql`` selects (before they are deleted/changed)."""
    rows = conn.execute(f"SELECT {_RAW} FROM calls WHERE id IN ({ids_sql})", params).fetchall()
    _add(conn, rows, -1)


#: Calls per step when the rollups are built for a whole file.
_REBUILD_CHUNK: Final = 50_000


def rebuild(conn: sqlite3.Connection) -> None:
    """Replace any rollups (the ``rollup`` table of versions 3 to 7, ``rollup_totals`` and
    ``rollup_values`` of versions 8 to 10) by ones built from every stored call (a migration
    step, in its transaction)."""
    register(conn)
    for table in ("rollup", "rollup_values", "rollup_totals"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")  # our own constant names
    for sql in TABLE_SQL:
        conn.execute(sql)
    for table in ("rollups", "rollup_groups"):
        conn.execute(f"DELETE FROM {table}")  # our own constant names
    last = -1
    while True:
        chunk = conn.execute(
            f"SELECT id, {_RAW} FROM calls WHERE id > ? ORDER BY id LIMIT ?",
            (last, _REBUILD_CHUNK),
        ).fetchall()
        if not chunk:
            return
        last = chunk[-1][0]
        _add(conn, [row[1:] for row in chunk], 1)


# -- reading ------------------------------------------------------------------------------------
def rolled(
    conn: sqlite3.Connection,
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    lo: int | None,
    hi: int | None,
    hists: tuple[str, ...] = HISTOGRAMS,
) -> dict[tuple[int | None, Any], Acc] | None:
    """The calls that pass ``filters`` in ``[lo, hi)``, accumulated per (bucket start or
    ``None``, value of ``column`` or ``None``); ``None`` when rollups cannot serve the read.
    Only the ``hists`` histograms are kept (the others stay empty)."""
    queries = read_queries(
        filters,
        column,
        width_ns,
        lo,
        hi,
        raw_select=f"SELECT {_RAW} FROM calls",
        time_column="timestamp_ns",
        time_param=int,
    )
    if queries is None:
        return None
    cells = Cells(column, width_ns, hists)
    for kind, sql, params in queries:
        cells.add(kind, conn.execute(sql, params))
    return cells.out
