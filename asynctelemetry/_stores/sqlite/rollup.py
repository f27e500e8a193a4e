"""SQLite rollups, kept by the engine: the rules of :mod:`.._rollup` in SQLite's SQL.

Three tables (schema version 8):

- ``rollup_groups``: one row per group of calls with equal ``model``, ``request_model``,
  ``provider``, ``route_name`` and ``status``, numbered ``id`` (the writer keeps the numbers it
  has seen in memory, per connection);
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

A large window's read (:func:`rolled`) groups in SQL too: per segment of the plan
(:func:`~.._rollup.plan`) one ``GROUP BY`` of the totals and one of the values, per output
bucket and group value, then the raw rows of the partial minutes at the window's edges.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
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
    key_filters,
    levels_for,
    plan,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._base import Filters

__all__ = [
    "TABLE_SQL",
    "forget",
    "forget_groups",
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
_BATCH_SQL: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS rollup_batch ({', '.join(f'{c} INTEGER' for c in _BATCH)})"
)
_STATE_SQL: Final = "CREATE TEMP TABLE IF NOT EXISTS rollup_state (token INTEGER NOT NULL)"
#: The batch summed per minute and group (totals) and per minute, group, kind and bucket
#: (values): one sort of the batch; every level is then added from these few rows.
_DELTA_SQL: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_dt (start INTEGER, gid INTEGER, "
    + ", ".join(f"{c} INTEGER" for c in _TOTALS)
    + ")",
    "CREATE TEMP TABLE IF NOT EXISTS rollup_dv (start INTEGER, gid INTEGER, kind INTEGER, "
    "bucket INTEGER, n INTEGER, m INTEGER)",
)
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

# -- the group numbers a writer connection has seen ---------------------------------------------
#: Group numbers per writer connection (by the token in its temporary ``rollup_state``).
_CACHES: dict[int, dict[tuple[Any, ...], int]] = {}
_MAX_CACHES: Final = 64
_tokens = itertools.count(1)


def forget_groups() -> None:
    """Drop every remembered group number (after a rollback: the groups a rolled-back
    transaction added are gone)."""
    _CACHES.clear()


def _groups(conn: sqlite3.Connection) -> dict[tuple[Any, ...], int]:
    """This connection's group numbers, loaded from ``rollup_groups`` on first use."""
    row = None
    try:
        row = conn.execute("SELECT token FROM temp.rollup_state").fetchone()
    except sqlite3.OperationalError:  # the connection's first batch: no temporary tables yet
        conn.execute(_STATE_SQL)
    if row is None:
        token = next(_tokens)
        for sql in (_BATCH_SQL, *_DELTA_SQL):
            conn.execute(sql)
        conn.execute("INSERT INTO temp.rollup_state VALUES (?)", (token,))
    else:
        token = row[0]
    cache = _CACHES.get(token)
    if cache is None:
        if len(_CACHES) >= _MAX_CACHES:
            _CACHES.clear()
        cache = _CACHES[token] = {
            tuple(r[1:]): r[0] for r in conn.execute(f"SELECT id, {_KEYS} FROM rollup_groups")
        }
    return cache


def _group_of(conn: sqlite3.Connection) -> Callable[[tuple[Any, ...]], int]:
    cache = _groups(conn)
    get = cache.get

    def group_of(key: tuple[Any, ...]) -> int:
        gid = get(key)
        if gid is None:  # a new group (or one another process added since we loaded ours)
            found = conn.execute(
                "SELECT id FROM rollup_groups WHERE model IS ? AND request_model IS ? "
                "AND provider IS ? AND route_name IS ? AND status IS ?",
                key,
            ).fetchone()
            if found is None:
                cur = conn.execute(
                    f"INSERT INTO rollup_groups ({_KEYS}) VALUES (?, ?, ?, ?, ?)", key
                )
                gid = cur.lastrowid
            else:
                gid = found[0]
            assert gid is not None
            cache[key] = gid
        return gid

    return group_of


# -- writing ------------------------------------------------------------------------------------
@functools.cache
def _fill_sql(rows: int) -> str:
    one = f"({', '.join('?' * len(_BATCH))})"
    return f"INSERT INTO temp.rollup_batch VALUES {', '.join([one] * rows)}"


def _add(conn: sqlite3.Connection, raw: Sequence[Sequence[Any]], sign: int) -> None:
    """Add (``sign=1``) or take away (``-1``) the calls of ``raw`` (:data:`RAW_COLUMNS`
    values): their derived rows into the batch table, then one upsert per level and table."""
    if not raw:
        return
    rows = derive(raw, _group_of(conn), sign)
    conn.execute("DELETE FROM temp.rollup_batch")
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
    forget_groups()
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
    hists: tuple[str, ...] = HISTOGRAMS,
) -> dict[tuple[int | None, Any], Acc] | None:
    """The calls that pass ``filters`` in ``[lo, hi)``, accumulated per (bucket start or
    ``None``, value of ``column`` or ``None``); ``None`` when rollups cannot serve the read.
    Only the ``hists`` histograms are read (the others stay empty)."""
    levels = levels_for(filters, column, width_ns)
    if levels is None:
        return None
    key_clauses, key_params = key_filters(filters)
    cells = Cells(column, width_ns, hists)
    # Output bucket and group value, computed by the engine (our own integers and names).
    bucket = "NULL" if width_ns is None else f"(start_ns - ((start_ns % {width_ns:d}) + "
    if width_ns is not None:
        bucket += f"{width_ns:d}) % {width_ns:d})"
    if column is None:
        group = "NULL"
    elif column == "request_model":  # falls back to the model (never NULL), as Cells does
        group = "COALESCE(g.request_model, g.model)"
    else:
        group = f"g.{column}"
    kinds = ", ".join(
        str(kind)
        for kind, name in [*enumerate(HISTOGRAMS), (COST_KIND, "cost")]
        if name in hists or kind == COST_KIND
    )
    for level, a, b in plan(lo, hi, levels):
        if level is None:  # the edges: less than the finest period on each side
            clauses, params = _bounds("timestamp_ns", a, b)
            sql = f"SELECT {_RAW} FROM calls"
            if clauses or key_clauses:
                sql += " WHERE " + " AND ".join([*clauses, *key_clauses])
            cells.add_raw(conn.execute(sql, [*params, *key_params]))
            continue
        clauses, params = _bounds("start_ns", a, b)
        where = " AND ".join(["width_s = ?", *clauses, *key_clauses])
        values = [level, *params, *key_params]
        totals = conn.execute(
            f"SELECT {bucket} AS b, {group} AS k, "
            f"{', '.join(f'sum({c})' for c in _TOTALS)} FROM rollup_totals "
            f"JOIN rollup_groups g ON g.id = gid WHERE {where} GROUP BY b, k",
            values,
        ).fetchall()
        cells.add_sums(
            totals,
            conn.execute(
                f"SELECT {bucket} AS b, {group} AS k, kind, bucket, sum(n), sum(m) "
                f"FROM rollup_values JOIN rollup_groups g ON g.id = gid "
                f"WHERE {where} AND kind IN ({kinds}) GROUP BY b, k, kind, bucket",
                values,
            ),
        )
    return cells.out
