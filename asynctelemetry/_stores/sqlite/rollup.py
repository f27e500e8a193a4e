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

A batch is added in the writer's transaction, a statement's calls at a time: as the writer
inserts each statement's rows it works out what they add (:func:`~.._rollup.derive`: group
number, finest period, buckets, cost halves) and sums them per finest period and group
(:class:`Sums`, :func:`~.._rollup.add_cells`: a cell of one call stays that call's row). After
the calls, each level is added finest first, 64 rows per ``INSERT … VALUES … ON CONFLICT DO
UPDATE SET calls = calls + excluded.calls, …, vals = asynctelemetry_merge(vals,
excluded.vals)``, and each written row is summed into its period of the next level
(:func:`~.._rollup.add_coarser`). ``asynctelemetry_merge`` is an application-defined function in
Python (:func:`register` on the writer's connection), run only where a stored row is met; it
runs in the writer's thread, never on the event loop. Retention and repricing take calls away
the same way (``sign=-1``); rows left at zero calls go.

Why the sums are made in Python, measured (``benchmarks/bench_sqlite.py``, thread CPU of the
writer, 50,000 calls in transactions of 32,768): version 13's batch went through a temporary
table, one Python aggregate step per call (``asynctelemetry_pack``) and the coarser levels
summed by a second aggregate merging packed arrays; the writer already visits every call in
Python to derive its row, and summing it there into a dict costs less than handing it to
SQLite and back (the rollups' share of a call, on a loaded machine: about 6 µs down to 3 for
one group, 13 to 19 µs down to about 11 for 5,000 sessions and 50 models over a day, where
most 5-minute cells hold one call). Doing it
one statement's rows at a time keeps each stretch of Python in the writer short: the event
loop never waits long for the GIL.

Why packed, measured (``benchmarks/bench_dashboard.py``, 1,000,000 calls over 7 days, 80
groups; store time, the same loaded 2-core machine): versions 8 to 10 kept a row per bucket
(``rollup_totals``, ``rollup_values``: 4.7 million value rows) and a large window's read had
SQLite sort and group them (7-day time series by model in 2-hour buckets 3.7 to 5.8 s, 7-day
summary 1.2 to 2.7 s). Packed, the file holds 138,319 rows (5-minute 124,159, hour 13,520, day 640)
and the same reads take 265 ms and 227 ms: one row per period and group is read (13,440 for a
week of hours) and the reader's thread slices each BLOB per kind (no Python step per pair to
find them) and adds only the histograms it needs. The alternatives: JSON1 merges in C but only
by expanding the pairs back into rows (the same sort); SQLite has no array type. Merging
is Python: one merge per stored row a batch meets.

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
    CellMap,
    Cells,
    add_cells,
    add_coarser,
    cell_row,
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
    "Sums",
    "forget",
    "include",
    "rebuild",
    "register",
    "remember",
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
_ADD_GROUP: Final = f"INSERT OR IGNORE INTO rollup_groups (id, {_KEYS}) VALUES (?, ?, ?, ?, ?, ?)"
_COLUMNS: Final = f"width_s, start_ns, gid, {', '.join(_TOTALS)}, vals"
_ROW: Final = f"({', '.join('?' * (4 + len(_TOTALS)))})"
_UPSERT: Final = (
    "ON CONFLICT (width_s, start_ns, gid) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _TOTALS)
    + ", vals = asynctelemetry_merge(vals, excluded.vals)"
)
_DROP_EMPTY: Final = (
    "DELETE FROM rollups WHERE width_s = ? AND start_ns = ? AND gid = ? AND calls = 0"
)
_RAW: Final = ", ".join(RAW_COLUMNS)
#: Most rollup rows one upsert statement carries (11 parameters each): the Python of a
#: statement's rows (packing, summing into the next level) holds the GIL a fraction of a
#: millisecond, and SQLite's step between statements gives it back to the event loop.
_ROWS_PER_STATEMENT: Final = 64


def register(conn: sqlite3.Connection) -> None:
    """Add the function that merges packed values to a connection that writes rollups."""
    conn.create_function("asynctelemetry_merge", 2, merge_packed, deterministic=True)


# -- writing ------------------------------------------------------------------------------------
@functools.cache
def _upsert_sql(rows: int) -> str:
    return f"INSERT INTO rollups ({_COLUMNS}) VALUES {', '.join([_ROW] * rows)} {_UPSERT}"


class Sums:
    """What a batch adds to the rollups (``sign=-1``: takes away), gathered a statement's calls
    at a time in the writer's thread (:meth:`add`: :data:`RAW_COLUMNS` values), then added to
    every level (:meth:`write`)."""

    __slots__ = ("calls", "cells", "groups", "sign")

    def __init__(self, sign: int = 1) -> None:
        self.sign = sign
        self.calls = 0
        self.groups: dict[tuple[Any, ...], int] = {}
        self.cells: CellMap = {}

    def add(self, raw: Sequence[Sequence[Any]]) -> None:
        """Count the calls of ``raw`` in their finest period and group."""
        add_cells(self.cells, derive(raw, self.groups, self.sign))
        self.calls += len(raw)

    def write(self, conn: sqlite3.Connection) -> None:
        """Add the sums to every level, finest first (in the writer's transaction): a
        statement's rows at a time, each row then summed into the next level's period."""
        if not self.calls:
            return
        conn.executemany(_ADD_GROUP, [(gid, *key) for key, gid in self.groups.items()])
        cells, size = self.cells, _ROWS_PER_STATEMENT
        for level, width in enumerate(reversed(LEVELS)):
            nxt: CellMap | None = None if width == LEVELS[0] else {}
            items = list(cells.items())
            for at in range(0, len(items), size):
                chunk = items[at : at + size]
                conn.execute(
                    _upsert_sql(len(chunk)),
                    [v for (start, gid), cell in chunk
                     for v in (width, start, gid, *cell_row(cell))],
                )  # fmt: skip
                if self.sign < 0:
                    conn.executemany(_DROP_EMPTY, [(width, *key) for key, _ in chunk])
                if nxt is not None:
                    add_coarser(nxt, chunk, LEVELS[-2 - level] * _S)
            if nxt is not None:
                cells = nxt
        self.cells = {}


def _add(conn: sqlite3.Connection, raw: Sequence[Sequence[Any]], sign: int) -> None:
    """Add (``sign=1``) or take away (``-1``) the calls of ``raw`` (:data:`RAW_COLUMNS`
    values) at every level."""
    sums = Sums(sign)
    sums.add(raw)
    sums.write(conn)


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
