"""PostgreSQL's session totals, kept by the engine: the rules of :mod:`.._sessions` in
PostgreSQL's SQL.

The table is SQLite's (:mod:`..sqlite.sessions`), ``session_periods`` (schema version 9): per
level (a day, an hour), period start and session, the calls, errors, priced calls, their cost
in whole nano-dollars and the calls of :data:`~.._sessions.LARGE_COST` or more.

The server keeps it itself: statement triggers on ``calls`` with transition tables add the rows
each statement inserts (the writer's ``COPY`` and its staging merge alike), take away the rows
a statement deletes, and move the rows an update changes (repricing), one ``INSERT … SELECT …
GROUP BY … ON CONFLICT DO UPDATE`` per statement, every level at once, in the statement's
transaction, under the rollups' advisory lock (concurrent upserts of the same cells in other
orders would deadlock). A statement on one partition fires no trigger of ``calls``: retention
drops a day's cells with its partition (:func:`forget_day`) and deletes rows through ``calls``.
A database of an older schema gets the table built from its calls when migrated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .. import _sessions as rules
from .._base import from_ns, to_ns

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from datetime import date

    import asyncpg

    from .._base import Filters

__all__ = ["MIGRATION", "candidates", "forget_day"]

_S: Final = 1_000_000_000
#: The advisory lock the rollups' writes hold (:data:`.rollup.LOCK_ROLLUP`).
_LOCK: Final = (0x61746C6D, 5)
_TABLE: Final = rules.table_sql("bigint", "text")
#: A cost in whole nano-dollars (``numeric``: the product is exact, rounded once).
_UNITS: Final = "round(cost_usd * 1000000000)::bigint"
_KEY: Final = ", ".join(rules.SESSION_KEY)
_NS: Final = "((extract(epoch FROM ts) * 1000000)::bigint * 1000)"
_LEVELS: Final = f"(VALUES {rules.levels_sql('::bigint')}) AS l(w, ns)"
_PERIOD: Final = f"{_NS} - (({_NS} % l.ns) + l.ns) % l.ns"


def _upsert(rows: str, sign: str = "") -> str:
    """Add (``sign=""``) or take away (``"-"``) the calls of ``rows``, every level."""
    source = f"{rows} CROSS JOIN {_LEVELS}"
    return rules.upsert_sql(f"l.w, {_PERIOD}", source, _UNITS, sign, "session_periods.")


_FUNCTION: Final = (
    "CREATE OR REPLACE FUNCTION asynctelemetry_session_periods() RETURNS trigger "
    "LANGUAGE plpgsql AS $body$ BEGIN "
    f"PERFORM pg_advisory_xact_lock({_LOCK[0]:d}, {_LOCK[1]:d}); "
    "IF TG_OP <> 'INSERT' THEN "
    f"{_upsert('old_rows', '-')}; "
    "DELETE FROM session_periods p USING (SELECT DISTINCT l.w, "
    f"{_PERIOD} AS start, {_KEY} "
    f"FROM old_rows CROSS JOIN {_LEVELS}) d "
    "WHERE p.width_s = d.w AND p.start_ns = d.start AND p.has_session = d.has_session "
    "AND p.session_id = d.session_id AND p.calls = 0; "
    "END IF; "
    f"IF TG_OP <> 'DELETE' THEN {_upsert('new_rows')}; END IF; "
    "RETURN NULL; END $body$"
)
#: Version 8 → 9: the table, the triggers, the cells of the calls stored (the triggers take a
#: lock that holds writers back until the migration commits, so none is missed).
MIGRATION: Final = [
    _TABLE,
    _FUNCTION,
    *(
        f"DROP TRIGGER IF EXISTS session_periods_{op} ON calls"
        for op in ("insert", "delete", "update")
    ),
    "CREATE TRIGGER session_periods_insert AFTER INSERT ON calls REFERENCING NEW TABLE AS "
    "new_rows FOR EACH STATEMENT EXECUTE FUNCTION asynctelemetry_session_periods()",
    "CREATE TRIGGER session_periods_delete AFTER DELETE ON calls REFERENCING OLD TABLE AS "
    "old_rows FOR EACH STATEMENT EXECUTE FUNCTION asynctelemetry_session_periods()",
    "CREATE TRIGGER session_periods_update AFTER UPDATE ON calls REFERENCING OLD TABLE AS "
    "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
    "asynctelemetry_session_periods()",
    "DELETE FROM session_periods",
    _upsert("calls"),
]
#: The raw rows of a window's edges, as cells (:func:`~.._sessions.ranking_sql`).
_RAW: Final = f"SELECT {_KEY}, {rules.cell_sums(_UNITS)} FROM calls{{where}} GROUP BY 1, 2"
_DIALECT: Final = rules.Dialect(_RAW, "ts", from_ns, numbered=True)


async def forget_day(conn: asyncpg.Connection, day: date) -> None:
    """Delete the cells of one UTC day (its calls went with its partition)."""
    start = to_ns(datetime(day.year, day.month, day.day, tzinfo=UTC))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *_LOCK)
        await conn.execute(
            "DELETE FROM session_periods WHERE start_ns >= $1 AND start_ns < $2",
            start,
            start + 86400 * _S,
        )


async def candidates(
    fetch: Callable[[str, Sequence[Any]], Awaitable[list[Any]]],
    filters: Filters,
    limit: int,
    order_by: str,
) -> tuple[list[str | None], int]:
    """The sessions that may be among the top ``limit`` of the window by ``order_by`` (``None``:
    the calls without a session), and the window's calls (:func:`~.._sessions.ranking_sql`)."""
    sql, params = rules.ranking_sql(filters, limit, order_by, _DIALECT)
    return rules.chosen_of(await fetch(sql, params))
