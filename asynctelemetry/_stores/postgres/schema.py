"""The PostgreSQL schema of a call store: tables, day partitions, migrations, the row codec.

``calls`` is declaratively partitioned by range of ``ts`` (the call's timestamp), one partition
per UTC day (``calls_YYYYMMDD``), created by the store ahead of time and on demand. Columns
follow :class:`LLMCall` field for field; ``attributes`` is JSONB (``NULL`` when empty),
``cost_usd`` is ``numeric`` holding the exact value of the float (so ``SUM`` is exact and
rounds once, as ``math.fsum`` does); ``id`` (one sequence for every writer) gives insertion
order, which breaks ties between equal timestamps.

``call_id`` uniqueness: a unique index on a partitioned table must include the partition key,
so the constraint is ``UNIQUE (call_id, ts)``. The same call delivered again (a retrying
exporter, a replay run twice, a batch retried after a lost commit acknowledgement, any number
of writers) has the same id *and* timestamp, lands in the same partition and is refused there by
the index, atomically across every writer (``INSERT … ON CONFLICT DO NOTHING``). Rejected
alternative: a separate ``call_ids`` table would make every id unique whatever its timestamp,
but it grows without bound unless pruned by a bulk ``DELETE`` (what partitions exist to avoid)
and doubles the index work per call. The difference: two *different* calls that share an id
but not a timestamp are both kept.

Schema versions live in ``asynctelemetry_schema``; :func:`prepare` creates or migrates under
``pg_advisory_xact_lock`` in one transaction, so several processes opening the store at once
serialise and all but the first find the schema ready.

Version history:

1. the first PostgreSQL schema;
2. adds the index ``calls_trace_ts`` on ``(trace_id, ts)`` (every partition), for lookups by
   trace (``PostgresStore.trace``); lookups by ``call_id`` use the ``UNIQUE (call_id, ts)``
   index. Building it reads every partition once, under a lock that holds writes back.
3. added the ``rollup`` table (one row per period and group, histograms as JSON; replaced by
   version 6).
4. adds ``user_id``, ``agent_name``, ``tags`` (``text[]``, ``NULL`` when empty) and
   ``error_message``; calls stored before have none. Adding nullable columns without a
   default changes no stored row, so it is instant at any size.
5. adds ``spans``, the steps of traces (:class:`~asynctelemetry.TraceSpan`): a column per
   field (``ts`` the start, ``attributes`` JSONB), ``span_id`` unique, indexed by
   ``(trace_id, ts)`` and ``ts``. Not partitioned: steps are kept by ``max_age`` and
   ``max_rows`` with plain deletes.
6. replaces ``rollup`` by the engine's rollups (:mod:`.rollup`: ``rollup_groups``,
   ``rollup_totals``, ``rollup_values``), built from the stored calls a partition at a time in
   the migrating transaction (a database of an older version gets them the same way; version
   3 no longer builds the old table).
7. adds the indexes a page of ``traces(...)`` walks newest first (:mod:`.._traces`): partial
   indexes of calls by ``user_id`` and ``agent_name`` (every partition), of steps by
   ``session_id``, ``user_id`` and ``agent_name`` (rows that have one) and of steps not "ok"
   by ``status``; each ends with ``ts``. Building them reads the tables once.
8. adds the indexes pages seek (:data:`PAGE_INDEXES`: cost, latency, tokens, each with ``id``),
   on every partition (search uses those of the ids, ``calls_user_ts`` for the user);
   building them reads every partition once, under a lock that holds writes back.
9. replaced ``rollup_totals`` and ``rollup_values`` by ``rollups`` (one row per level, period
   and group, the histograms and the exact cost packed in one ``int8[]``);
10. keeps the packed value in two ``int8[]`` (``keys``, ``sums``: :mod:`.rollup`, merged by
    the function ``asynctelemetry_merge``, read by one ``unnest`` each), the rollups rebuilt
    from the stored calls a partition at a time in the migrating transaction (so versions 6
    and 9 no longer build them).
11. adds ``session_periods``, the totals per session of each day and hour, and the statement
    triggers on ``calls`` that keep it (:mod:`.sessions`), built from the stored calls in the
    migrating transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from ..._exceptions import SchemaVersionError, StoreError
from ..._record import LLMCall, TraceSpan
from ..._rows import ATTRIBUTES, FIELDS, TIMESTAMP, Row
from .._traces import span_values, spans_of
from . import rollup as _pg_rollup
from . import sessions as _pg_sessions

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import asyncpg

__all__ = [
    "COPY_COLUMNS",
    "LOCK_MIGRATE",
    "LOCK_PARTITIONS",
    "MERGE_SQL",
    "SCHEMA_VERSION",
    "STAGING",
    "STAGING_SQL",
    "day_of",
    "days_of",
    "decode_spans",
    "ensure_partitions",
    "existing_partitions",
    "hold_partitions",
    "insert_spans",
    "partition_name",
    "pg_row",
    "prepare",
]

SCHEMA_VERSION: Final = 11
#: Advisory lock keys (namespace, key): ``ascii('atlm')`` and one key per job.
_NAMESPACE: Final = 0x61746C6D
LOCK_MIGRATE: Final = (_NAMESPACE, 1)
LOCK_PARTITIONS: Final = (_NAMESPACE, 2)

#: SQL type of each LLMCall field (``timestamp`` is the column ``ts``).
_TYPES: Final = {
    "call_id": "text NOT NULL",
    "timestamp": "timestamptz NOT NULL",
    "model": "text NOT NULL",
    "operation": "text NOT NULL",
    "source": "text NOT NULL",
    "is_streaming": "boolean",
    "status": "text NOT NULL",
    "status_code": "integer",
    "input_tokens": "bigint",
    "output_tokens": "bigint",
    "total_tokens": "bigint",
    "cached_input_tokens": "bigint",
    "cache_creation_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "duration_ms": "double precision",
    "ttft_ms": "double precision",
    "tool_calls": "bigint NOT NULL",
    "cost_usd": "numeric",
    "tags": "text[]",
    "attributes": "jsonb",
}


def column(field: str) -> str:
    """The column that holds an LLMCall field."""
    return "ts" if field == "timestamp" else field


#: Columns in LLMCall field order: what COPY sends and what reads select.
COPY_COLUMNS: Final = tuple(column(f) for f in FIELDS)
_COLUMN_DEFS: Final = ",\n  ".join(f"{column(f)} {_TYPES.get(f, 'text')}" for f in FIELDS)
_COLUMN_LIST: Final = ", ".join(COPY_COLUMNS)

#: Indexes on every partition. Each ends with (ts, id) or ts, so filtered reads come out in
#: order and keyset pages seek; the first serves time windows, paging and the dashboard.
_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS calls_ts_id ON calls (ts, id)",
    "CREATE INDEX IF NOT EXISTS calls_model_ts ON calls (model, ts)",
    "CREATE INDEX IF NOT EXISTS calls_request_model_ts ON calls (request_model, ts)",
    "CREATE INDEX IF NOT EXISTS calls_provider_ts ON calls (provider, ts)",
    "CREATE INDEX IF NOT EXISTS calls_session_ts ON calls (session_id, ts)",
    "CREATE INDEX IF NOT EXISTS calls_status_ts ON calls (status, ts)",
)


#: ``page(sort=...)`` seeks these (key, then ``id``: the tie-break; NULLs together, so the
#: phase of unknown keys is a seek too); version 8.
PAGE_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS calls_cost_id ON calls (cost_usd, id)",
    "CREATE INDEX IF NOT EXISTS calls_latency_id ON calls (duration_ms, id)",
    "CREATE INDEX IF NOT EXISTS calls_tokens_id ON calls ((input_tokens + output_tokens), id)",
)


def _create_v1() -> list[str]:
    return [
        "CREATE SEQUENCE IF NOT EXISTS calls_id_seq AS bigint",
        f"CREATE TABLE calls (\n  id bigint NOT NULL DEFAULT nextval('calls_id_seq'),\n"
        f"  {_COLUMN_DEFS},\n  CONSTRAINT calls_call_id_ts UNIQUE (call_id, ts)\n"
        ") PARTITION BY RANGE (ts)",
        "ALTER SEQUENCE calls_id_seq OWNED BY calls.id",
        *_INDEXES,
    ]


#: ``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1`` (statements, in order).
MIGRATIONS: Final[dict[int, list[str]]] = {
    1: ["CREATE INDEX IF NOT EXISTS calls_trace_ts ON calls (trace_id, ts)"],
    2: [],  # added the first rollup table; version 6 replaces it (below)
    4: [
        "CREATE TABLE IF NOT EXISTS spans (id bigserial PRIMARY KEY, span_id text NOT NULL "
        "UNIQUE, trace_id text NOT NULL, parent_span_id text, name text NOT NULL, kind text NOT "
        "NULL, ts timestamptz NOT NULL, duration_ms double precision, status text NOT NULL, "
        "error_type text, error_message text, service_name text, source text NOT NULL, "
        "session_id text, user_id text, agent_name text, tool_name text, attributes jsonb)",
        "CREATE INDEX IF NOT EXISTS spans_trace_ts ON spans (trace_id, ts)",
        "CREATE INDEX IF NOT EXISTS spans_ts ON spans (ts)",
    ],
    6: [
        "CREATE INDEX IF NOT EXISTS calls_user_ts ON calls (user_id, ts) WHERE user_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS calls_agent_ts ON calls (agent_name, ts) "
        "WHERE agent_name IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS spans_session_ts ON spans (session_id, ts) "
        "WHERE session_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS spans_user_ts ON spans (user_id, ts) WHERE user_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS spans_agent_ts ON spans (agent_name, ts) "
        "WHERE agent_name IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS spans_status_ts ON spans (status, ts) WHERE status <> 'ok'",
    ],
    3: [
        "ALTER TABLE calls ADD COLUMN IF NOT EXISTS user_id text, "
        "ADD COLUMN IF NOT EXISTS agent_name text, ADD COLUMN IF NOT EXISTS tags text[], "
        "ADD COLUMN IF NOT EXISTS error_message text"
    ],
    5: ["DROP TABLE IF EXISTS rollup"],  # version 10 builds the rollups
    7: list(PAGE_INDEXES),
    8: ["DROP TABLE IF EXISTS rollup_totals, rollup_values"],  # version 10 builds the rollups
    9: [
        "DROP TABLE IF EXISTS rollups",
        "DROP FUNCTION IF EXISTS asynctelemetry_merge(bigint[], bigint[])",
        *_pg_rollup.TABLE_SQL,
    ],
    10: list(_pg_sessions.MIGRATION),
}

#: The writer's staging table: one per connection, emptied at every commit.
STAGING: Final = "asynctelemetry_staging"
STAGING_SQL: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (\n"
    "  ord bigint GENERATED ALWAYS AS IDENTITY,\n"
    f"  {_COLUMN_DEFS.replace(' NOT NULL', '')}\n"
    ") ON COMMIT DELETE ROWS"
)
#: Staged rows into ``calls`` in arrival order; a call whose (call_id, ts) is stored is skipped.
MERGE_SQL: Final = (
    f"INSERT INTO calls (id, {_COLUMN_LIST}) "
    f"SELECT nextval('calls_id_seq'), {_COLUMN_LIST} FROM {STAGING} ORDER BY ord "
    "ON CONFLICT (call_id, ts) DO NOTHING"
)


async def check_readable(conn: asyncpg.Connection, where: str) -> None:
    """Refuse, without creating or changing anything, a database a read-only store cannot
    read: one without the call store's schema, or of another schema version.

    Raises:
        SchemaVersionError: written by a newer asynctelemetry.
        StoreError: no call store there, or of an older schema version.
    """
    if await conn.fetchval("SELECT to_regclass('asynctelemetry_schema')") is None:
        raise StoreError(
            f"{where} holds no asynctelemetry call store (no schema in this database and "
            "search_path); nothing was created. Name the database a collector writes to"
        )
    found = await conn.fetchval("SELECT max(version) FROM asynctelemetry_schema") or 0
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has schema version {found}, newer than this asynctelemetry supports "
            f"({SCHEMA_VERSION}); upgrade asynctelemetry to open it"
        )
    if found < SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {found}, older than this asynctelemetry's "
            f"({SCHEMA_VERSION}); open it once for writing (e.g. 'asynctelemetry collect "
            "--db ...' or PostgresStore(dsn)) to migrate it"
        )


async def prepare(conn: asyncpg.Connection, where: str) -> int:
    """Create the schema or migrate it forward; return the version found (0: none).

    Raises:
        SchemaVersionError: the database was written by a newer asynctelemetry.
        StoreError: it holds a ``calls`` table that asynctelemetry did not create.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_MIGRATE)
        has_versions = await conn.fetchval("SELECT to_regclass('asynctelemetry_schema')")
        found = 0
        if has_versions is not None:
            found = await conn.fetchval("SELECT max(version) FROM asynctelemetry_schema") or 0
        if found > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{where} has schema version {found}, newer than this asynctelemetry supports "
                f"({SCHEMA_VERSION}); upgrade asynctelemetry to open it"
            )
        if found == 0:
            if await conn.fetchval("SELECT to_regclass('calls')") is not None:
                raise StoreError(f"{where} has a 'calls' table that asynctelemetry did not create")
            steps = [
                "CREATE TABLE IF NOT EXISTS asynctelemetry_schema (version integer NOT NULL)",
                *_create_v1(),
            ]
            start = 1
        else:
            steps, start = [], found
        for version in range(start, SCHEMA_VERSION):
            steps += MIGRATIONS[version]
        for sql in steps:
            await conn.execute(sql)
        if 0 < found < 10:  # a database that has calls and not these rollups yet
            await _pg_rollup.rebuild(conn, sorted((await existing_partitions(conn)).values()))
        if found != SCHEMA_VERSION:
            await conn.execute("DELETE FROM asynctelemetry_schema")
            await conn.execute(
                "INSERT INTO asynctelemetry_schema (version) VALUES ($1)", SCHEMA_VERSION
            )
    return int(found)


# -- day partitions -----------------------------------------------------------------------------
def day_of(moment: datetime) -> date:
    """The UTC day a timestamp falls in (the partition that holds it)."""
    return moment.astimezone(UTC).date() if moment.tzinfo is not None else moment.date()


def partition_name(day: date) -> str:
    """``calls_YYYYMMDD``: the partition of one UTC day."""
    return f"calls_{day.year:04d}{day.month:02d}{day.day:02d}"


def _bound(day: date) -> str:
    return f"'{day.year:04d}-{day.month:02d}-{day.day:02d} 00:00:00+00'"


def _partition_sql(day: date) -> list[str]:
    """A new day table, then attached: ``ATTACH`` takes a lock that lets reads and writes of
    ``calls`` go on (``CREATE … PARTITION OF`` would block them), and checks an empty table."""
    name = partition_name(day)
    upper = "MAXVALUE" if day == date.max else _bound(day + timedelta(days=1))
    return [
        f"CREATE TABLE IF NOT EXISTS {name} (LIKE calls INCLUDING DEFAULTS)",
        f"ALTER TABLE calls ATTACH PARTITION {name} FOR VALUES FROM ({_bound(day)}) TO ({upper})",
    ]


async def existing_partitions(conn: asyncpg.Connection) -> dict[date, str]:
    """The attached day partitions, by day (names of our own form only)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'calls'::regclass"
    )
    found: dict[date, str] = {}
    for (name,) in rows:
        digits = name.removeprefix("calls_")
        if len(digits) == 8 and digits.isdigit():
            try:
                found[date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))] = name
            except ValueError:
                continue
    return found


async def ensure_partitions(
    conn: asyncpg.Connection, days: Iterable[date], known: set[date]
) -> None:
    """Create the partitions of ``days`` that do not exist yet; add every day to ``known``.

    Serialised across processes by an advisory lock, held exclusively (writes hold it shared,
    :func:`hold_partitions`): two writers needing the same new day do not race to create it,
    and no write runs beside the change.
    """
    wanted = set(days) - known
    if not wanted:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_PARTITIONS)
        existing = await existing_partitions(conn)
        for day in sorted(wanted - existing.keys()):
            for sql in _partition_sql(day):
                await conn.execute(sql)
        known.update(existing)  # in place: ``known |= existing.keys()`` would make a new set
    known.update(wanted)


async def hold_partitions(conn: asyncpg.Connection) -> None:
    """Hold the partition lock shared until the transaction ends (every write does): each
    partition change holds it exclusively, so none runs beside a write."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1, $2)", *LOCK_PARTITIONS)


# -- the row codec ------------------------------------------------------------------------------
_dumps: Final = json.JSONEncoder(separators=(",", ":")).encode
_COST: Final = FIELDS.index("cost_usd")
_TAGS: Final = FIELDS.index("tags")
#: Exact decimals of the costs seen lately: costs repeat (one price per model and token count),
#: and building the exact Decimal of a float is most of a row's encoding time.
_decimals: dict[float, Decimal] = {}
_MAX_DECIMALS: Final = 65_536


def _exact(cost: float) -> Decimal:
    exact = _decimals.get(cost)
    if exact is None:
        if len(_decimals) >= _MAX_DECIMALS:
            _decimals.clear()
        exact = _decimals[cost] = Decimal(cost)
    return exact


def pg_row(row: Row) -> list[Any]:
    """The COPY row of a call's compact row (:mod:`..._rows`), in :data:`COPY_COLUMNS` order."""
    values = list(row[:ATTRIBUTES])
    cost = values[_COST]
    if cost is not None:
        values[_COST] = _exact(cost)  # the float's exact value: sums round once
    if not values[_TAGS]:
        values[_TAGS] = None
    keys = row[ATTRIBUTES]
    values.append(_dumps(dict(zip(keys, row[ATTRIBUTES + 1 :], strict=True))) if keys else None)
    return values


def days_of(batch: Sequence[Row]) -> set[date]:
    """The UTC days of the calls' timestamps (rows hold aware UTC datetimes).

    A batch almost always falls on one day: its earliest and latest timestamps, found in C,
    say so without a step per call; a batch spanning days is read call by call.
    """
    if not batch:
        return set()
    first, last = min(map(_timestamp_of_row, batch)), max(map(_timestamp_of_row, batch))
    if first.date() == last.date():
        return {first.date()}
    return {moment.date() for moment in map(_timestamp_of_row, batch)}


_timestamp_of_row: Final = itemgetter(TIMESTAMP)
_loads: Final = json.loads
_ATTRS: Final = len(FIELDS) - 1


def decode(records: Iterable[Any]) -> list[LLMCall]:
    """Records from selected rows (:data:`COPY_COLUMNS`, then ``id``): our own, trusted data."""
    out: list[LLMCall] = []
    append = out.append
    adopt = LLMCall._adopt
    fields = FIELDS
    for record in records:
        data = dict(zip(fields, record, strict=False))
        attributes = data["attributes"]
        data["attributes"] = _loads(attributes) if attributes else {}
        cost = data["cost_usd"]
        if cost is not None:
            data["cost_usd"] = float(cost)
        tags = data["tags"]
        data["tags"] = tuple(tags) if tags else ()
        append(adopt(data))
    return out


# -- steps ------------------------------------------------------------------------------------
#: The ``spans`` columns a step is written to and read from, in this order.
SPAN_COLUMNS: Final = tuple(
    "ts" if name == "timestamp" else name for name in TraceSpan.model_fields
)
_SPAN_TYPES: Final = (
    "text", "text", "text", "text", "text", "timestamptz", "float8", "text", "text", "text",
    "text", "text", "text", "text", "text", "text", "jsonb",
)  # fmt: skip
#: Steps in, as one array per column; a step stored before (its ``span_id``) is skipped.
INSERT_SPANS_SQL: Final = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_SPAN_TYPES, 1))
    + ") ON CONFLICT (span_id) DO NOTHING"
)
#: A trace's steps, oldest first (index ``spans_trace_ts``).
TRACE_SPANS_SQL: Final = (
    f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE trace_id = $1 ORDER BY ts, id"
)


async def insert_spans(conn: asyncpg.Connection, spans: Sequence[TraceSpan]) -> int:
    """Store steps in one statement; return how many were new."""
    columns: list[list[Any]] = [[] for _ in SPAN_COLUMNS]
    for span in spans:
        for column, value in zip(columns, span_values(span, _same, _dumps), strict=True):
            column.append(value)
    status = await conn.execute(INSERT_SPANS_SQL, *columns)
    return int(status.rsplit(" ", 1)[-1])


def _same(moment: datetime) -> datetime:
    return moment


def decode_spans(rows: Iterable[Any]) -> list[TraceSpan]:
    """Steps from rows selected in :data:`SPAN_COLUMNS` order (our own data: trusted)."""
    return spans_of(rows, _same, _loads)
