"""PostgreSQL rollups, kept by the engine: the rules of :mod:`.._rollup` in PostgreSQL's SQL.

The tables are SQLite's (:mod:`..sqlite.rollup`): ``rollup_groups`` (one row per group of
equal ``model``, ``request_model``, ``provider``, ``route_name`` and ``status``, numbered by
:func:`~.._rollup.group_id`) and ``rollups`` (one row per level, period and group: calls,
errors, token sums, unpriced calls, and ``vals``, the three histograms and the exact cost packed
in two ``int8[]``, ``keys`` and ``sums``: the kinds and sums of SQLite's BLOB as pairs, ``key =
index * 8 + kind``, sorted by key, which set-based SQL unnests (``unnest(keys, sums)``, each
array detoasted once) and sums without a loop per element).

The writer works out what each call adds when it encodes the batch (:func:`~.._rollup.derive`,
a few calls per step, the loop breathing between), and in the transaction that stores the calls
copies those rows into its temporary ``asynctelemetry_rollup_batch`` and adds them to every
level with one ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE``: the server's hash
aggregates sum the batch's pairs per finest period, group and key, then per level, pack each
row's pairs with ``array_agg``, and a conflicting row's are summed with the stored ones by the
SQL function ``asynctelemetry_merge(keys, sums, keys, sums)`` (set-based: the pairs of both
unnested, summed per key, zeros dropped; created by the schema). Writers of many processes take
turns on an advisory lock for that statement (upserts of overlapping rows in different orders would
deadlock). Retention subtracts the rows it deletes (:func:`forget`) and deletes a dropped day's
periods with it (:func:`forget_day`: every period nests in one UTC day); repricing subtracts a
page's old costs and adds the new ones; rows left at zero calls go. A database of an older
schema gets its rollups built once, a day partition at a time, when it is migrated
(:func:`rebuild`).

A window of more than ``EXACT_LIMIT`` calls is read from them (:func:`rolled`): the plan and
the queries of :func:`~.._rollup.read_queries`, the rollup rows summed by the server per
answer row (totals by ``sum``, pairs unnested and summed per key, packed again), so a few rows
reach Python; their pairs are added to the cells a slice at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ..._batching import Slice
from .._base import from_ns, to_ns
from .._rollup import (
    COST_HIGH,
    COST_LOW,
    DAY,
    HISTOGRAMS,
    KEY_COLUMNS,
    LEVELS,
    TOTAL_COLUMNS,
    VALUE_KINDS,
    Acc,
    Cells,
    derive,
    read_queries,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from datetime import date

    import asyncpg

    from .._base import Filters

__all__ = [
    "BATCH",
    "BATCH_COLUMNS",
    "LOCK_ROLLUP",
    "RAW_SQL",
    "TABLE_SQL",
    "add",
    "derived",
    "forget",
    "forget_day",
    "raw_of",
    "rebuild",
    "remember",
    "rolled",
]

#: Advisory lock key (namespace ``ascii('atlm')``, key) held while a transaction changes rollups.
LOCK_ROLLUP: Final = (0x61746C6D, 5)
_KEYS: Final = ", ".join(KEY_COLUMNS)
_TOTALS: Final = TOTAL_COLUMNS
#: The packed value's pairs of the row ``{v}`` (alias ``p``: ``p.key``, ``p.n``; ``key = index
#: * 8 + kind``): one ``unnest`` of its two arrays, each read (and detoasted) once.
_PAIRS: Final = "CROSS JOIN LATERAL unnest({v}.keys, {v}.sums) AS p(key, n)"
#: Rows of ``key``/``n`` per ``groups`` packed back into ``keys`` and ``sums``.
_PACK: Final = (
    "SELECT {groups}, array_agg(key ORDER BY key) AS keys, array_agg(n ORDER BY key) AS sums "
    "FROM ({rows}) AS s GROUP BY {groups}"
)
TABLE_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS rollup_groups (id bigint PRIMARY KEY, model text NOT NULL, "
    "request_model text, provider text, route_name text, status text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rollups (width_s integer NOT NULL, "
    "start_ns bigint NOT NULL, gid bigint NOT NULL, "
    + ", ".join(f"{c} bigint NOT NULL" for c in _TOTALS)
    + ", keys bigint[], sums bigint[], PRIMARY KEY (width_s, start_ns, gid))",
    # Two packed values summed: their pairs, per key, zeros dropped, sorted by key.
    "CREATE OR REPLACE FUNCTION asynctelemetry_merge(ak bigint[], an bigint[], bk bigint[], "
    "bn bigint[], OUT keys bigint[], OUT sums bigint[]) LANGUAGE sql IMMUTABLE PARALLEL SAFE "
    "AS $$ SELECT array_agg(key ORDER BY key), array_agg(n ORDER BY key) FROM "
    "(SELECT key, sum(n)::bigint AS n FROM (SELECT * FROM unnest(ak, an) UNION ALL "
    "SELECT * FROM unnest(bk, bn)) AS u(key, n) GROUP BY key HAVING sum(n) <> 0) AS s $$",
)
#: The writer's rows of a batch, as :func:`~.._rollup.derive` makes them (one per connection,
#: emptied at every commit).
BATCH: Final = "asynctelemetry_rollup_batch"
BATCH_COLUMNS: Final = (
    "start",
    "gid",
    *_TOTALS,
    *HISTOGRAMS,
    "cost_e",
    "cost_high",
    "cost_low",
)
_BATCH_SQL: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {BATCH} "
    f"({', '.join(f'{c} bigint' for c in BATCH_COLUMNS)}) ON COMMIT DELETE ROWS"
)
#: Every level's period of a batch row (floored, also before 1970).
_LEVELS: Final = (
    "(VALUES "
    + ", ".join(f"({w:d}, {w * 1_000_000_000:d}::bigint)" for w in LEVELS)
    + ") AS l(w, ns)"
)
_PERIOD: Final = "b.start - ((b.start % l.ns) + l.ns) % l.ns"
#: A batch row's pairs: its histograms' buckets (each counting its calls, -1 taking a call
#: away) and its cost's halves at its exponent.
_BATCH_PAIRS: Final = (
    "CROSS JOIN LATERAL (VALUES "
    + ", ".join(f"(b.{name} * 8 + {kind}, b.calls)" for kind, name in enumerate(HISTOGRAMS))
    + f", (b.cost_e * 8 + {COST_HIGH}, b.cost_high), (b.cost_e * 8 + {COST_LOW}, b.cost_low)) "
    "AS p(key, n)"
)
_UPSERT: Final = (
    "ON CONFLICT (width_s, start_ns, gid) DO UPDATE SET "
    + ", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in _TOTALS)
    + ", (keys, sums) = (SELECT m.keys, m.sums FROM asynctelemetry_merge(rollups.keys, "
    "rollups.sums, excluded.keys, excluded.sums) AS m)"
)
#: The batch summed per finest period and group (and key: one hash aggregate of the batch),
#: then per level (from those few rows), its pairs packed, added to the stored rows.
_ADD: Final = (
    f"WITH f AS (SELECT b.start, b.gid, p.key, sum(p.n) AS n FROM {BATCH} b {_BATCH_PAIRS} "
    "WHERE p.key IS NOT NULL GROUP BY 1, 2, 3), "
    f"t AS (SELECT start, gid, {', '.join(f'sum({c}) AS {c}' for c in _TOTALS)} "
    f"FROM {BATCH} GROUP BY start, gid), "
    f"lt AS (SELECT l.w, {_PERIOD} AS p, b.gid, "
    + ", ".join(f"sum(b.{c}) AS {c}" for c in _TOTALS)
    + f" FROM t b CROSS JOIN {_LEVELS} GROUP BY 1, 2, 3), "
    + "lv AS ("
    + _PACK.format(
        groups="w, p, gid",
        rows=f"SELECT l.w, {_PERIOD} AS p, b.gid, b.key, sum(b.n) AS n FROM f b "
        f"CROSS JOIN {_LEVELS} GROUP BY 1, 2, 3, 4 HAVING sum(b.n) <> 0",
    )
    + f") INSERT INTO rollups (width_s, start_ns, gid, {', '.join(_TOTALS)}, keys, sums) "
    f"SELECT lt.w, lt.p, lt.gid, {', '.join(f'lt.{c}' for c in _TOTALS)}, lv.keys, lv.sums "
    f"FROM lt LEFT JOIN lv USING (w, p, gid) {_UPSERT}"
)
#: After calls were taken away: the rows of the periods they touched left at zero calls go.
_TOUCHED: Final = f"SELECT DISTINCT l.w, {_PERIOD} AS p, b.gid FROM {BATCH} b CROSS JOIN {_LEVELS}"
_DROP_EMPTY: Final = (
    f"DELETE FROM rollups t USING ({_TOUCHED}) d WHERE t.width_s = d.w "
    "AND t.start_ns = d.p AND t.gid = d.gid AND t.calls = 0"
)
_ADD_GROUPS: Final = (
    f"INSERT INTO rollup_groups (id, {_KEYS}) SELECT * FROM unnest($1::bigint[], $2::text[], "
    "$3::text[], $4::text[], $5::text[], $6::text[]) ON CONFLICT (id) DO NOTHING"
)
#: The columns a rollup counts, in :data:`.._rollup.RAW_COLUMNS` order (``ts`` for the time).
RAW_SQL: Final = (
    "ts, model, request_model, provider, route_name, status, input_tokens, output_tokens, "
    "cached_input_tokens, reasoning_tokens, cost_usd, duration_ms, ttft_ms"
)
#: Calls derived per step: the loop gets control back between steps.
_STEP: Final = 64
_S: Final = 1_000_000_000

Derived = tuple[list[tuple[Any, ...]], dict[tuple[Any, ...], int]]  # (rows, groups met)


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


async def derived(raw: Iterable[Sequence[Any]], sign: int = 1) -> Derived:
    """What the calls of ``raw`` (their :func:`raw_of` values) add to the rollups
    (:func:`~.._rollup.derive`), a step of calls at a time, and the groups they are in."""
    raw = list(raw)
    rows: list[tuple[Any, ...]] = []
    groups: dict[tuple[Any, ...], int] = {}
    slice_ = Slice()
    for start in range(0, len(raw), _STEP):
        rows += derive(raw[start : start + _STEP], groups, sign)
        await slice_.breathe()
    return rows, groups


async def add(conn: asyncpg.Connection, batch: Derived, sign: int = 1) -> None:
    """Add a batch's :func:`derived` rows to every level, in the caller's transaction: its
    groups, the rows into the batch table by COPY, then one upsert per table under the rollup
    lock (and, after calls were taken away, ``sign=-1``, the rows left at zero go)."""
    rows, groups = batch
    if not rows:
        return
    await conn.execute(_BATCH_SQL)
    await conn.execute(f"DELETE FROM {BATCH}")
    ids = list(groups.values())
    keys = list(zip(*groups, strict=True))
    await conn.execute(_ADD_GROUPS, ids, *keys)
    await conn.copy_records_to_table(BATCH, records=Slice().each(rows), columns=BATCH_COLUMNS)
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_ROLLUP)
    await conn.execute(_ADD)
    if sign < 0:
        await conn.execute(_DROP_EMPTY)


async def remember(conn: asyncpg.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Add calls just stored (their :func:`raw_of` values), in the caller's transaction."""
    if raw:
        await add(conn, await derived(raw))


async def forget(conn: asyncpg.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Take away calls about to go or to change (their :func:`raw_of` values)."""
    if raw:
        await add(conn, await derived(raw, -1), -1)


async def forget_day(conn: asyncpg.Connection, day: date) -> None:
    """Delete every period of one UTC day (its calls went with its partition)."""
    start = to_ns(_midnight(day))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_ROLLUP)
        await conn.execute(
            "DELETE FROM rollups WHERE start_ns >= $1 AND start_ns < $2", start, start + DAY * _S
        )


#: Calls read per step when the rollups are built from a partition.
_REBUILD_CHUNK: Final = 10_000


async def rebuild(conn: asyncpg.Connection, partitions: Iterable[str]) -> None:
    """Build the rollups from every stored call, one day partition at a time (a migration step,
    in its transaction; ``partitions`` are our own checked ``calls_YYYYMMDD`` names)."""
    for table in ("rollups", "rollup_groups"):
        await conn.execute(f"DELETE FROM {table}")  # our own constant names
    for name in partitions:
        raw: list[tuple[Any, ...]] = []
        async for record in conn.cursor(f"SELECT {RAW_SQL} FROM {name}", prefetch=_REBUILD_CHUNK):
            raw.append(raw_of(record))
            if len(raw) >= _REBUILD_CHUNK:
                await remember(conn, raw)
                raw = []
        await remember(conn, raw)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _dollars(sql: str) -> str:
    """``?`` placeholders (as :mod:`.._rollup` writes its clauses) numbered ``$1, $2, …``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


#: A read's rollup rows (:func:`~.._rollup.read_queries`) summed per answer row by the
#: server: the totals by ``sum``, the pairs unnested and summed per key, then per kind its
#: indexes and sums (:data:`~.._rollup.Segments`); ``jb``, ``jn``, ``jk`` join the two (a NULL
#: bucket or group value too).
_SUMMED: Final = (
    "WITH r AS ({rows}), "
    "t AS (SELECT b, k, coalesce(b, 0) AS jb, k IS NULL AS jn, coalesce(k, '') AS jk, "
    + ", ".join(f"sum({c})::bigint AS {c}" for c in _TOTALS)
    + " FROM r GROUP BY b, k), "
    "v AS (SELECT coalesce(r.b, 0) AS jb, r.k IS NULL AS jn, coalesce(r.k, '') AS jk, "
    f"p.key, sum(p.n)::bigint AS n FROM r {_PAIRS.format(v='r')} "
    "GROUP BY 1, 2, 3, 4 HAVING sum(p.n) <> 0), "
    "s AS (SELECT jb, jn, jk, "
    + ", ".join(
        f"coalesce(array_agg({part} ORDER BY key) FILTER (WHERE key & 7 = {kind}), "
        "'{{}}'::bigint[])" + f" AS s{kind}{name}"
        for kind in range(VALUE_KINDS)
        for part, name in (("key >> 3", "i"), ("n", "n"))
    )
    + " FROM v GROUP BY 1, 2, 3) "
    f"SELECT t.b, t.k, {', '.join(f't.{c}' for c in _TOTALS)}, "
    + ", ".join(
        f"coalesce(s.s{kind}{name}, '{{{{}}}}'::bigint[])"
        for kind in range(VALUE_KINDS)
        for name in "in"
    )
    + " FROM t LEFT JOIN s USING (jb, jn, jk)"
)
#: Rows added to the cells between the loop's turns.
_ROWS_PER_STEP: Final = 16


async def rolled(
    fetch: Callable[[str, Sequence[Any]], Awaitable[list[Any]]],
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    hists: tuple[str, ...] = HISTOGRAMS,
) -> dict[tuple[int | None, Any], Acc] | None:
    """The calls that pass ``filters``, accumulated per (bucket start or ``None``, value of
    ``column`` or ``None``) from the rollups and the raw rows of the window's edges; ``None``
    when rollups cannot serve the read."""
    queries = read_queries(
        filters,
        column,
        width_ns,
        None if filters.since is None else to_ns(filters.since),
        None if filters.until is None else to_ns(filters.until),
        raw_select=f"SELECT {RAW_SQL} FROM calls",
        time_column="ts",
        time_param=from_ns,
        values="keys, sums",
    )
    if queries is None:
        return None
    cells = Cells(column, width_ns, hists)
    slice_ = Slice()
    for kind, sql, params in queries:
        if kind == "raw":
            rows = await fetch(_dollars(sql), params)
            for start in range(0, len(rows), _STEP):
                cells.add_raw(map(raw_of, rows[start : start + _STEP]))
                await slice_.breathe()
            continue
        rows = await fetch(_dollars(_SUMMED.format(rows=sql)), params)
        for start in range(0, len(rows), _ROWS_PER_STEP):
            cells.add_packed(map(tuple, rows[start : start + _ROWS_PER_STEP]))
            await slice_.breathe()
    return cells.out
