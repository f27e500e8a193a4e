"""SQLite rollups, kept by the engine: the rules of :mod:`.._rollup` in SQLite's SQL.

Three tables (schema version 8):

- ``rollup_groups``: one row per group of calls with equal ``model``, ``request_model``,
  ``provider``, ``route_name`` and ``status``, numbered ``id`` by
  :func:`~.._rollup.group_id` (each batch adds those it met, ``INSERT OR IGNORE``);
- ``rollup_totals``: per level (``width_s``: a day, an hour, 5 minutes, a minute), period start
  (``start_ns``) and group (``gid``): the calls, errors, token sums and unpriced calls;
- ``rollup_values``: per level, period, group, ``kind`` and ``bucket``: the histograms' counts
  (kinds 0, 1, 2: latency, time to first token, speed; ``bucket`` the log bucket, ``n`` the
  count) and the cost (kind 3; ``bucket`` the binary exponent ``e``, ``n`` and ``m`` the sums of
  the high and low halves of the costs' significands: the exact sum is ``(n * 2**26 + m) *
  2**e``, see :func:`~.._rollup.cost_parts`).

Both ``WITHOUT ROWID`` tables are keyed by what a batch adds to, so a batch is added by
``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE SET n = n + excluded.n`` over the batch's
rows, per level, in the writer's transaction: Python computes each call's group number, buckets
and cost halves once, at the store's door (:func:`~.._rollup.derive`), and the engine does the
rest. Retention and repricing take rows away the same way (``sign=-1``); rows left at zero go.

A large window's read (:func:`rolled`) runs :func:`~.._rollup.read_queries`: per segment of the
plan one ``GROUP BY`` of the totals and one of the values, per answer row, then the raw rows of
the partial periods at the window's edges.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

from .._rollup import (
    COST_KIND,
    HISTOGRAMS,
    KEY_COLUMNS,
    LEVELS,
    RAW_COLUMNS,
    TOTAL_COLUMNS,
    Acc,
    Cells,
    derive,
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
    "CREATE TABLE IF NOT EXISTS rollup_totals (width_s INTEGER NOT NULL, "
    "start_ns INTEGER NOT NULL, gid INTEGER NOT NULL, "
    + ", ".join(f"{c} INTEGER NOT NULL" for c in _TOTALS)
    + ", PRIMARY KEY (width_s, start_ns, gid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS rollup_values (width_s INTEGER NOT NULL, "
    "start_ns INTEGER NOT NULL, gid INTEGER NOT NULL, kind INTEGER NOT NULL, "
    "bucket INTEGER NOT NULL, n INTEGER NOT NULL, m INTEGER NOT NULL, "
    "PRIMARY KEY (width_s, start_ns, gid, kind, bucket)) WITHOUT ROWID",
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
#: The batch summed per minute and group (totals) and per minute, group, kind and bucket
#: (values): one sort of the batch; every level is then added from these few rows.
_DELTA_TABLES: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_dt (start INTEGER, gid INTEGER, "
    + ", ".join(f"{c} INTEGER" for c in _TOTALS)
    + ")",
    "CREATE TEMP TABLE IF NOT EXISTS rollup_dv (start INTEGER, gid INTEGER, kind INTEGER, "
    "bucket INTEGER, n INTEGER, m INTEGER)",
)
#: Ready the writer connection's temporary tables, empty (created in its first transaction).
_BATCH_SQL: Final = (_BATCH_TABLE, *_DELTA_TABLES, "DELETE FROM temp.rollup_batch")
_ADD_GROUP: Final = f"INSERT OR IGNORE INTO rollup_groups (id, {_KEYS}) VALUES (?, ?, ?, ?, ?, ?)"
_SUMS: Final = ", ".join(f"sum({c})" for c in _TOTALS)
_DELTA: Final = (
    "DELETE FROM temp.rollup_dt",
    "DELETE FROM temp.rollup_dv",
    f"INSERT INTO temp.rollup_dt SELECT minute, gid, {_SUMS} FROM temp.rollup_batch "
    "GROUP BY minute, gid",
    *(
        f"INSERT INTO temp.rollup_dv SELECT minute, gid, {kind}, {name}, sum(calls), 0 "
        f"FROM temp.rollup_batch WHERE {name} IS NOT NULL GROUP BY minute, gid, {name}"
        for kind, name in enumerate(HISTOGRAMS)
    ),
    f"INSERT INTO temp.rollup_dv SELECT minute, gid, {COST_KIND}, cost_e, sum(cost_high), "
    "sum(cost_low) FROM temp.rollup_batch WHERE cost_e IS NOT NULL GROUP BY minute, gid, cost_e",
)
#: A period's start at the level of ``:w`` nanoseconds (floored, also before 1970).
_START: Final = "(start - ((start % :w) + :w) % :w)"
_TOTALS_SET: Final = ", ".join(f"{c} = {c} + excluded.{c}" for c in _TOTALS)
_VALUES_SET: Final = "n = n + excluded.n, m = m + excluded.m"
#: The finest level's rows are the delta's as they are; coarser ones sum them per period.
_ADD_FINEST: Final = (
    f"INSERT INTO rollup_totals (width_s, start_ns, gid, {', '.join(_TOTALS)}) "
    f"SELECT :s, start, gid, {', '.join(_TOTALS)} FROM temp.rollup_dt WHERE true "
    f"ON CONFLICT (width_s, start_ns, gid) DO UPDATE SET {_TOTALS_SET}",
    "INSERT INTO rollup_values (width_s, start_ns, gid, kind, bucket, n, m) "
    "SELECT :s, start, gid, kind, bucket, n, m FROM temp.rollup_dv WHERE true "
    f"ON CONFLICT (width_s, start_ns, gid, kind, bucket) DO UPDATE SET {_VALUES_SET}",
)
_ADD_COARSER: Final = (
    f"INSERT INTO rollup_totals (width_s, start_ns, gid, {', '.join(_TOTALS)}) "
    f"SELECT :s, {_START} AS p, gid, {_SUMS} FROM temp.rollup_dt WHERE true GROUP BY p, gid "
    f"ON CONFLICT (width_s, start_ns, gid) DO UPDATE SET {_TOTALS_SET}",
    "INSERT INTO rollup_values (width_s, start_ns, gid, kind, bucket, n, m) "
    f"SELECT :s, {_START} AS p, gid, kind, bucket, sum(n), sum(m) FROM temp.rollup_dv "
    "WHERE true GROUP BY p, gid, kind, bucket "
    f"ON CONFLICT (width_s, start_ns, gid, kind, bucket) DO UPDATE SET {_VALUES_SET}",
)
_PERIODS: Final = f"SELECT DISTINCT {_START} FROM temp.rollup_dt"
_DROP_EMPTY: Final = (
    f"DELETE FROM rollup_totals WHERE width_s = :s AND start_ns IN ({_PERIODS}) AND calls = 0",
    f"DELETE FROM rollup_values WHERE width_s = :s AND start_ns IN ({_PERIODS}) "
    "AND n = 0 AND m = 0",
)
_RAW: Final = ", ".join(RAW_COLUMNS)
#: Rows of the batch table per INSERT statement (15 parameters each).
_ROWS_PER_STATEMENT: Final = 64


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
        for sql in _ADD_FINEST if width == LEVELS[-1] else _ADD_COARSER:
            conn.execute(sql, params)
        if sign < 0:
            for sql in _DROP_EMPTY:
                conn.execute(sql, params)


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
    """Replace any rollups (the ``rollup`` table of versions 3 to 7 too) by ones built from
    every stored call (a migration step, in its transaction)."""
    conn.execute("DROP TABLE IF EXISTS rollup")
    for sql in TABLE_SQL:
        conn.execute(sql)
    for table in ("rollup_values", "rollup_totals", "rollup_groups"):
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
    Only the ``hists`` histograms are read (the others stay empty)."""
    queries = read_queries(
        filters,
        column,
        width_ns,
        lo,
        hi,
        hists,
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
