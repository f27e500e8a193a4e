"""Sessions: the calls of one conversation, oldest first, a bounded page at a time.

A session is the calls that share a ``session_id``. ``store.session(session_id, limit=,
after=)`` is a :meth:`~._base.StoreReads.page` by time, oldest first, with the session filter
(the ``(session_id, timestamp)`` index of SQLite and PostgreSQL, a scan of the ring in memory):
the order of every read (timestamp, ties in insertion order) and the keyset cursor of pages
(:mod:`._pages`): calls that arrive later with newer timestamps join the end without moving a
page.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict

from .._record import LLMCall  # noqa: TC001 (pydantic reads the annotation at runtime)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._base import Filters

__all__ = [
    "CELL_COLUMNS",
    "COST_UNITS",
    "LARGE_COST",
    "MAX_SESSION_LIMIT",
    "RANKED_ORDERS",
    "SESSION_KEY",
    "SESSION_LEVELS",
    "Dialect",
    "SessionPage",
    "cell_sums",
    "check_session_limit",
    "chosen_of",
    "levels_sql",
    "ranking_sql",
    "ranks",
    "table_sql",
    "upsert_sql",
]

#: Most calls one ``session(...)`` page holds.
MAX_SESSION_LIMIT: Final = 1000


class SessionPage(BaseModel):
    """One page of a session's calls, oldest first (``store.session(...)``).

    ``next`` is the cursor of the following page (pass it as ``after=``), ``None`` on the last.
    """

    model_config = ConfigDict(frozen=True)

    session_id: str
    calls: list[LLMCall]
    next: str | None


def check_session_limit(limit: object) -> int:
    """``limit`` is an int from 1 to :data:`MAX_SESSION_LIMIT`, or ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SESSION_LIMIT:
        raise ValueError(f"limit must be an int from 1 to {MAX_SESSION_LIMIT}, got {limit!r}")
    return limit


# -- the top sessions of a window -----------------------------------------------------------------
#: The periods (seconds) whose totals per session the engine keeps, coarsest first: a day, an hour.
SESSION_LEVELS: Final = (86400, 3600)
#: The orders :func:`ranking_sql` ranks sessions in (by p95 latency every group is summed).
RANKED_ORDERS: Final = ("cost", "calls", "errors")
#: Costs are summed per cell in whole nano-dollars (each call's rounded: at most half a unit
#: off, so a sum of ``p`` priced calls is within ``p`` units of the exact one); a call of at
#: least :data:`LARGE_COST` dollars is only counted (``large``): its session's cost has no upper
#: bound, so such a session is always a candidate.
COST_UNITS: Final = 1_000_000_000
LARGE_COST: Final = 1000.0
#: The cells' columns after the period and the session: the sums of :func:`cell_sums`.
CELL_COLUMNS: Final = ("calls", "errors", "priced", "units", "large")
#: A call's session as a cell keys it (``has_session``, ``session_id``): ``(0, '')`` for the
#: calls without one, ``(1, id)`` otherwise (``''`` is a session id too).
SESSION_KEY: Final = (
    "CASE WHEN session_id IS NULL THEN 0 ELSE 1 END AS has_session",
    "COALESCE(session_id, '') AS session_id",
)
_S: Final = 1_000_000_000


def ranks(filters: Filters, limit: int | None, order_by: str) -> bool:
    """Whether the session totals answer ``summary(by="session", limit=, order_by=)``: a top
    of sessions (``limit`` > 0) by cost, calls or errors, filtered by the window only (a model,
    provider, status or session filter is not in them)."""
    others = (
        filters.model, filters.provider, filters.session_id, filters.status,
        filters.error_type, filters.error_message,
    )  # fmt: skip
    return bool(limit) and order_by in RANKED_ORDERS and all(v is None for v in others)


def cell_sums(units: str, sign: str = "") -> str:
    """The SQL of a cell's sums (:data:`CELL_COLUMNS`) over raw rows of ``calls``; ``units``
    is the engine's expression of a cost in whole :data:`COST_UNITS` (``sign``: ``"-"`` to
    take the rows away). The same in SQLite and PostgreSQL."""
    small = f"cost_usd < {LARGE_COST!r}"
    values = (
        "1",
        "CASE WHEN status = 'error' THEN 1 ELSE 0 END",
        f"CASE WHEN {small} THEN 1 ELSE 0 END",
        f"CASE WHEN {small} THEN {units} ELSE 0 END",
        f"CASE WHEN cost_usd >= {LARGE_COST!r} THEN 1 ELSE 0 END",
    )
    return ", ".join(
        f"{sign}sum({value}) AS {name}" for value, name in zip(values, CELL_COLUMNS, strict=True)
    )


def levels_sql(cast: str = "") -> str:
    """The rows of a ``VALUES`` list of the levels: (seconds, nanoseconds ``cast``)."""
    return ", ".join(f"({w:d}, {w * _S:d}{cast})" for w in SESSION_LEVELS)


def table_sql(integer: str, text: str) -> str:
    """``session_periods`` in the engine's types: per level, period start and session, the
    cells' sums."""
    sums = ", ".join(f"{c} {integer} NOT NULL" for c in CELL_COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS session_periods (width_s {integer} NOT NULL, "
        f"start_ns {integer} NOT NULL, has_session {integer} NOT NULL, "
        f"session_id {text} NOT NULL, {sums}, "
        "PRIMARY KEY (width_s, start_ns, has_session, session_id))"
    )


def upsert_sql(level_period: str, source: str, units: str, sign: str, table: str) -> str:
    """Add (``sign=""``) or take away (``"-"``) the calls of ``source`` (raw rows of ``calls``
    beside the levels' ``VALUES``), at every level: ``level_period`` is the SQL of a row's level
    and period start, ``units`` the engine's cost in whole units, ``table`` how the update
    names the stored row (``""`` or ``"session_periods."``)."""
    names = ", ".join(CELL_COLUMNS)
    added = ", ".join(f"{c} = {table}{c} + excluded.{c}" for c in CELL_COLUMNS)
    return (
        f"INSERT INTO session_periods (width_s, start_ns, has_session, session_id, {names}) "
        f"SELECT {level_period}, {', '.join(SESSION_KEY)}, {cell_sums(units, sign)} "
        f"FROM {source} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 "
        f"ON CONFLICT (width_s, start_ns, has_session, session_id) DO UPDATE SET {added}"
    )


@dataclass(frozen=True, slots=True)
class Dialect:
    """What :func:`ranking_sql` needs of an engine."""

    #: The raw rows of ``calls`` as cells: the session key (:data:`SESSION_KEY`) and
    #: :func:`cell_sums`, grouped by the key, with a ``{where}`` to fill.
    raw_sql: str
    #: The time column of ``calls`` and the value it compares to, from integer nanoseconds.
    time_column: str
    time_param: Callable[[int], Any]
    #: Placeholders ``$1, $2, …`` (PostgreSQL's) rather than ``?``.
    numbered: bool = False


#: ``order_by`` → the order of the sessions' worst possible rank keys (their costs' lower
#: bounds), and the condition for a session's best possible key (its upper bound) not to rank
#: below the ``limit``-th worst one (``t``): :func:`~._base.rank_key` without the name (ties on
#: everything else are all candidates).
_RANKING: Final = {
    "cost": ("lo DESC, c DESC", "(b.hi, b.c) >= (t.lo, t.c)"),
    "calls": ("c DESC, lo DESC", "(b.c, b.hi) >= (t.c, t.lo)"),
    "errors": ("e DESC, c DESC, lo DESC", "(b.e, b.c, b.hi) >= (t.e, t.c, t.lo)"),
}
_CELLS: Final = f"SELECT has_session, session_id, {', '.join(CELL_COLUMNS)} FROM session_periods"
#: Above every upper bound: a session with a call of :data:`LARGE_COST` or more.
_UNBOUNDED: Final = 2**62


def ranking_sql(
    filters: Filters, limit: int, order_by: str, dialect: Dialect
) -> tuple[str, list[Any]]:
    """The candidates for the top ``limit`` sessions by ``order_by`` among the calls of the
    window of ``filters`` (:func:`ranks`), in the engine's ``dialect``: rows ``(has_session,
    session_id, window's calls)``.

    The window is covered as the rollups cover it (:func:`~._rollup.plan` over
    :data:`SESSION_LEVELS`): whole days and hours from ``session_periods``, the partial hours at
    its edges from the raw rows (:attr:`Dialect.raw_sql`). Each session's calls and errors are
    then exact and its cost within ``[lo, hi]`` units (:data:`COST_UNITS`; the relative term
    covers the rounding of the exact sum to a float). The ``limit``-th smallest worst possible
    rank key bounds the true ``limit``-th key from above, so every session whose best possible
    key is not after it is a candidate; every other one is certainly outside the top. The
    caller sums the candidates exactly from the raw rows (the session index) and keeps the top
    ``limit``."""
    from ._base import to_ns  # here: _base imports this module
    from ._rollup import plan

    count = itertools.count(1)
    lo = None if filters.since is None else to_ns(filters.since)
    hi = None if filters.until is None else to_ns(filters.until)

    def mark() -> str:
        return f"${next(count)}" if dialect.numbered else "?"

    parts: list[str] = []
    params: list[Any] = []
    for level, a, b in plan(lo, hi, SESSION_LEVELS):
        clauses: list[str] = []
        values: list[Any] = []
        if level is not None:
            clauses.append(f"width_s = {mark()}")
            values.append(level)
        for bound, op in ((a, ">="), (b, "<")):
            if bound is not None:
                raw = level is None
                clauses.append(f"{dialect.time_column if raw else 'start_ns'} {op} {mark()}")
                values.append(dialect.time_param(bound) if raw else bound)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        if level is None:
            parts.append(dialect.raw_sql.format(where=where))
        else:
            parts.append(f"{_CELLS}{where}")
        params += values
    if not parts:  # an empty window
        parts.append(f"{_CELLS} WHERE 1 = 0")
    worst, candidate = _RANKING[order_by]
    sums = ", ".join(f"sum({c}) AS {c}" for c in CELL_COLUMNS)
    sql = (
        f"WITH s AS (SELECT has_session, session_id, {sums} FROM ("
        + " UNION ALL ".join(parts)
        + ") AS r GROUP BY has_session, session_id), "
        "b AS (SELECT has_session, session_id, calls AS c, errors AS e, "
        f"units - priced - 1 - units / {2**40} + large * {int(LARGE_COST) * COST_UNITS} AS lo, "
        f"CASE WHEN large > 0 THEN {_UNBOUNDED} ELSE units + priced + 1 + units / {2**40} "
        "END AS hi FROM s), "
        f"t AS (SELECT lo, c, e FROM b ORDER BY {worst} LIMIT 1 OFFSET {mark()}) "
        "SELECT b.has_session, b.session_id, (SELECT sum(c) FROM b) FROM b LEFT JOIN t ON 1 = 1 "
        f"WHERE t.c IS NULL OR {candidate}"
    )
    return sql, [*params, limit - 1]


def chosen_of(rows: Sequence[Sequence[Any]]) -> tuple[list[str | None], int]:
    """The candidates' keys (``None``: the calls without a session) and the window's calls,
    from :func:`ranking_sql`'s rows."""
    keys = [row[1] if row[0] else None for row in rows]
    return keys, int(rows[0][2]) if rows else 0
