"""SQLite's session totals, kept by the engine: the rules of :mod:`.._sessions` in SQLite's SQL.

One ``WITHOUT ROWID`` table (schema version 11), ``session_periods``: per level (``width_s``: a
day or an hour), period start (``start_ns``) and session (``has_session``, 0 for the calls
without one, and ``session_id``, ``''`` then): the calls, errors, priced calls, their cost in
whole nano-dollars and the calls of :data:`~.._sessions.LARGE_COST` or more.

The writer adds a batch's calls in its transaction: one ``INSERT … SELECT … GROUP BY … ON
CONFLICT DO UPDATE`` over the rows it just inserted (their rowids follow the last one before
it), every level at once; retention and repricing take rows away the same way before they go or
change (and add the changed ones back), and the cells left without calls go. A top of sessions
(:func:`candidates`) reads whole periods from it and the window's partial hours from the raw
rows: :func:`~.._sessions.ranking_sql`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .. import _sessions as rules

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from .._base import Filters

__all__ = ["TABLE_SQL", "candidates", "forget", "include", "rebuild", "remember"]

_S: Final = 1_000_000_000
TABLE_SQL: Final = rules.table_sql("INTEGER", "TEXT") + " WITHOUT ROWID"
#: A cost in whole nano-dollars (REAL costs: the product is rounded once more, well within the
#: unit the rule allows).
_UNITS: Final = "CAST(ROUND(cost_usd * 1e9) AS INTEGER)"
_KEY: Final = ", ".join(rules.SESSION_KEY)
_PERIOD: Final = "l.column1, timestamp_ns - ((timestamp_ns % l.column2) + l.column2) % l.column2"


def _upsert(where: str, sign: str = "") -> str:
    """Add (``sign=""``) or take away (``"-"``) the calls ``where`` selects, every level."""
    source = f"calls, (VALUES {rules.levels_sql()}) AS l WHERE {where}"
    return rules.upsert_sql(_PERIOD, source, _UNITS, sign, "")


_ADD_AFTER: Final = _upsert("calls.id > ?")
_SPAN: Final = "SELECT MIN(timestamp_ns), MAX(timestamp_ns) FROM calls WHERE id IN ({ids})"
_DROP_EMPTY: Final = (
    "DELETE FROM session_periods WHERE width_s = ? AND start_ns >= ? AND start_ns <= ? "
    "AND calls = 0"
)
#: The raw rows of a window's edges, as cells (:func:`~.._sessions.ranking_sql`).
_RAW: Final = f"SELECT {_KEY}, {rules.cell_sums(_UNITS)} FROM calls{{where}} GROUP BY 1, 2"
_DIALECT: Final = rules.Dialect(_RAW, "timestamp_ns", int)


def remember(conn: sqlite3.Connection, after_id: int) -> None:
    """Add the calls inserted after rowid ``after_id`` (in the writer's transaction)."""
    conn.execute(_ADD_AFTER, (after_id,))


def include(conn: sqlite3.Connection, ids_sql: str, params: Sequence[Any]) -> None:
    """Add the calls whose rowid ``ids_sql`` selects (after they changed)."""
    conn.execute(_upsert(f"calls.id IN ({ids_sql})"), params)


def forget(conn: sqlite3.Connection, ids_sql: str, params: Sequence[Any]) -> None:
    """Take away the calls whose rowid ``ids_sql`` selects (before they go or change); the
    cells of their periods left without calls go."""
    first, last = conn.execute(_SPAN.format(ids=ids_sql), params).fetchone()
    if first is None:
        return
    conn.execute(_upsert(f"calls.id IN ({ids_sql})", "-"), params)
    for width in rules.SESSION_LEVELS:
        w = width * _S
        conn.execute(_DROP_EMPTY, (width, first - first % w, last))


def rebuild(conn: sqlite3.Connection) -> None:
    """Build the table from every stored call (a migration step, in its transaction)."""
    conn.execute(TABLE_SQL)
    conn.execute("DELETE FROM session_periods")
    conn.execute(_upsert("true"))


def candidates(
    conn: sqlite3.Connection, filters: Filters, limit: int, order_by: str
) -> tuple[list[str | None], int]:
    """The sessions that may be among the top ``limit`` of the window by ``order_by`` (``None``:
    the calls without a session), and the window's calls (:func:`~.._sessions.ranking_sql`)."""
    sql, params = rules.ranking_sql(filters, limit, order_by, _DIALECT)
    return rules.chosen_of(conn.execute(sql, params).fetchall())
