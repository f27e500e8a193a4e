"""PostgreSQL rollups: SQLite's (:mod:`._rollup`) periods, groups and figures, in PostgreSQL.

The ``rollup`` table holds what SQLite's does, per period of 1 minute, 5 minutes, 1 hour and 1
day and per group of equal ``model``, ``request_model``, ``provider``, ``route_name`` and
``status``: counts and token sums, the cost as exact partial sums, and the latency, time to
first token and speed histograms, in the same encoding. Every decision is :mod:`._rollup`'s:
the accumulator (:class:`~._rollup.Acc`), what a batch changes (:func:`~._rollup.changes`), how
a read is planned and assembled (:func:`~._rollup.plan`, :class:`~._rollup.Cells`); this module
only runs them in PostgreSQL's SQL, so both stores give equal rows for equal calls.

The writer keeps the rollups exact in the transaction that stores the calls (:func:`remember`
with the values of the rows the COPY sent, or those the staging merge returned: duplicates never
count). Writers of many processes take turns on an advisory lock for the read-modify-write of
the rows they touch. Retention subtracts the rows it deletes (:func:`forget`) and deletes a
dropped day's periods with it (:func:`forget_day`: every period nests in one UTC day);
repricing subtracts a page's old costs and adds the new ones. A database of schema version 2
gets its rollups built once, a day partition at a time, when it is migrated (:func:`rebuild`).

A window of more than ``EXACT_LIMIT`` calls is read from them (:func:`rolled`): whole days,
hours, 5 and 1 minute periods, and the raw rows of its partial minutes at the edges.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .._base import from_ns, to_ns
from .._rollup import (
    DAY,
    KEY_COLUMNS,
    STAT_COLUMNS,
    Acc,
    Cell,
    Cells,
    by_period,
    changes,
    count_minutes,
    key_filters,
    levels_for,
    levels_from,
    levels_of,
    plan,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from datetime import date

    import asyncpg

    from .._base import Filters

__all__ = [
    "LOCK_ROLLUP",
    "RAW_SQL",
    "TABLE_SQL",
    "forget",
    "forget_day",
    "raw_of",
    "rebuild",
    "remember",
    "remember_minutes",
    "rolled",
]

#: Advisory lock key (namespace ``ascii('atlm')``, key) held while a transaction changes rollups.
LOCK_ROLLUP: Final = (0x61746C6D, 5)
_KEYS: Final = ", ".join(KEY_COLUMNS)
_STATS: Final = ", ".join(STAT_COLUMNS)
TABLE_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS rollup (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "width_s integer NOT NULL, start_ns bigint NOT NULL, model text NOT NULL, "
    "request_model text, provider text, route_name text, status text NOT NULL, "
    "calls bigint NOT NULL, errors bigint NOT NULL, input_tokens bigint NOT NULL, "
    "output_tokens bigint NOT NULL, cached_input_tokens bigint NOT NULL, "
    "reasoning_tokens bigint NOT NULL, unpriced_calls bigint NOT NULL, cost text NOT NULL, "
    "latency text NOT NULL, ttft text NOT NULL, speed text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rollup_period ON rollup (width_s, start_ns)",
)
#: The columns a rollup counts, in :data:`._rollup.RAW_COLUMNS` order (``ts`` for the time).
RAW_SQL: Final = (
    "ts, model, request_model, provider, route_name, status, input_tokens, output_tokens, "
    "cached_input_tokens, reasoning_tokens, cost_usd, duration_ms, ttft_ms"
)
_STORED: Final = f"SELECT id, width_s, start_ns, {_KEYS}, {_STATS} FROM rollup"
_INSERT_COLUMNS: Final = ("width_s", "start_ns", *KEY_COLUMNS, *STAT_COLUMNS)
_UPDATE: Final = (
    f"UPDATE rollup SET {', '.join(f'{c} = ${i}' for i, c in enumerate(STAT_COLUMNS, 1))} "
    f"WHERE id = ${len(STAT_COLUMNS) + 1}"
)
#: Cells (a period of one group) worked out per step: the loop gets control back between.
_STEP: Final = 8
_S: Final = 1_000_000_000


def raw_of(values: Sequence[Any]) -> tuple[Any, ...]:
    """A call's :data:`RAW_SQL` values (a fetched row, or the same fields of a COPY row) as the
    rollups count them: the time in nanoseconds, the exact cost as the float it was."""
    cost = values[10]
    return (
        to_ns(values[0]),
        *values[1:10],
        None if cost is None else float(cost),
        values[11],
        values[12],
    )


async def remember(conn: asyncpg.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Add calls just stored (their :func:`raw_of` values), in the caller's transaction."""
    if raw:
        await _write(conn, levels_of(raw), 1)


async def remember_minutes(conn: asyncpg.Connection, minutes: dict[Cell, Acc]) -> None:
    """Add calls just stored, already counted into minutes (:func:`~._rollup.count_minutes`)."""
    if minutes:
        await _write(conn, levels_from(minutes), 1)


async def forget(conn: asyncpg.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Subtract calls about to go or to change (their :func:`raw_of` values)."""
    if raw:
        await _write(conn, levels_of(raw), -1)


async def forget_day(conn: asyncpg.Connection, day: date) -> None:
    """Delete every period of one UTC day (its calls went with its partition)."""
    start = to_ns(_midnight(day))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_ROLLUP)
        await conn.execute(
            "DELETE FROM rollup WHERE start_ns >= $1 AND start_ns < $2", start, start + DAY * _S
        )


async def _write(
    conn: asyncpg.Connection, cells: dict[tuple[int, int, tuple[Any, ...]], Acc], sign: int
) -> None:
    """Add (``sign=1``) or subtract (``-1``) ``cells``: read the periods' rows in one query,
    work out what :func:`~._rollup.changes` says a few cells per step (the loop breathes
    between steps), then write it: new rows by COPY, changed ones in one ``executemany``.
    Under the rollup lock, in the caller's transaction."""
    periods = list(by_period(cells).items())
    if not periods:
        return
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_ROLLUP)
    rows = await conn.fetch(
        f"{_STORED} WHERE (width_s, start_ns) IN "
        "(SELECT * FROM unnest($1::integer[], $2::bigint[]))",
        [width for (width, _), _ in periods],
        [start for (_, start), _ in periods],
    )
    stored: dict[tuple[int, int], dict[tuple[Any, ...], tuple[Any, Sequence[Any]]]] = {}
    for row in rows:
        values = tuple(row)
        stored.setdefault((values[1], values[2]), {})[values[3:8]] = (values[0], values[8:])
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    deletes: list[Any] = []
    done = 0
    for (width, start), members in periods:
        held = stored.get((width, start), {})
        for kind, values in changes(held, width, start, members, sign):
            if kind == "insert":
                inserts.append(values)
            elif kind == "update":
                updates.append(values)
            else:
                deletes.append(values[0])
        done += len(members)
        if done >= _STEP:  # each cell costs its histograms' encoding: a few per step
            done = 0
            await asyncio.sleep(0)
    if inserts:
        await conn.copy_records_to_table("rollup", records=inserts, columns=_INSERT_COLUMNS)
    if updates:
        await conn.executemany(_UPDATE, updates)
    if deletes:
        await conn.execute("DELETE FROM rollup WHERE id = ANY($1::bigint[])", deletes)


async def rebuild(conn: asyncpg.Connection, partitions: Iterable[str]) -> None:
    """Build the rollups from every stored call, one day partition at a time (a migration step,
    in its transaction; ``partitions`` are our own checked ``calls_YYYYMMDD`` names). Every
    period nests in one day, so a partition's periods are new rows: nothing is read back."""
    await conn.execute("DELETE FROM rollup")
    for name in partitions:
        minutes: dict[Cell, Acc] = {}
        raw: list[tuple[Any, ...]] = []
        async for record in conn.cursor(f"SELECT {RAW_SQL} FROM {name}", prefetch=10_000):
            raw.append(raw_of(record))
            if len(raw) >= 10_000:
                count_minutes(raw, minutes)
                raw = []
                await asyncio.sleep(0)
        count_minutes(raw, minutes)
        await remember_minutes(conn, minutes)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _dollars(sql: str) -> str:
    """``?`` placeholders (as :mod:`._rollup` writes its clauses) numbered ``$1, $2, …``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


async def rolled(
    fetch: Callable[[str, Sequence[Any]], Awaitable[list[Any]]],
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    hists: tuple[str, ...] = ("latency", "ttft", "speed"),
) -> dict[tuple[int | None, Any], Acc] | None:
    """The calls that pass ``filters``, accumulated per (bucket start or ``None``, value of
    ``column`` or ``None``) from the rollups and the raw rows of the window's edges; ``None``
    when rollups cannot serve the read (as :func:`._rollup.rolled`)."""
    levels = levels_for(filters, column, width_ns)
    if levels is None:
        return None
    lo = None if filters.since is None else to_ns(filters.since)
    hi = None if filters.until is None else to_ns(filters.until)
    key_clauses, key_params = key_filters(filters)
    cells = Cells(column, width_ns, hists)
    for level, a, b in plan(lo, hi, levels):
        clauses: list[str] = []
        params: list[Any] = []
        if level is None:  # the edges: less than a minute of calls on each side
            for bound, op in ((a, ">="), (b, "<")):
                if bound is not None:
                    clauses.append(f"ts {op} ?")
                    params.append(from_ns(bound))
            where = [*clauses, *key_clauses]
            sql = f"SELECT {RAW_SQL} FROM calls" + (
                f" WHERE {' AND '.join(where)}" if where else ""
            )
            cells.add_raw(map(raw_of, await fetch(_dollars(sql), [*params, *key_params])))
            continue
        for bound, op in ((a, ">="), (b, "<")):
            if bound is not None:
                clauses.append(f"start_ns {op} ?")
                params.append(bound)
        where = ["width_s = ?", *clauses, *key_clauses]
        sql = f"SELECT start_ns, {_KEYS}, {_STATS} FROM rollup WHERE {' AND '.join(where)}"
        cells.add_stored(map(tuple, await fetch(_dollars(sql), [level, *params, *key_params])))
    return cells.out
