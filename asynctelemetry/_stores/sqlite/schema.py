"""The SQLite schema of a call store, its forward migrations, and the row codec.

One table, ``calls``, holds a column per :class:`LLMCall` field. ``timestamp`` is kept as integer
nanoseconds since the Unix epoch, UTC (``timestamp_ns``; LLMCall has microsecond precision, so the
value is always a multiple of 1000 and rebuilds exactly); ``attributes`` as JSON text (``NULL``
when empty); ``is_streaming`` as 0/1. The rowid (``id``) gives insertion order, which breaks ties
between equal timestamps. ``call_id`` is UNIQUE: the same span delivered twice is stored once.

``PRAGMA user_version`` is the schema version. :data:`MIGRATIONS` holds forward-only steps, each
taking a file from version ``n`` to ``n + 1``; :func:`prepare` creates or migrates a file inside
one ``BEGIN IMMEDIATE`` transaction and refuses files from a newer version.

Version history:

1. the first schema (no ``cache_creation_tokens``, no ``price_version``);
2. adds ``cache_creation_tokens`` and ``price_version``;
3. adds the ``rollup`` table (:mod:`._rollup`), built from the stored calls when migrated;
4. adds the index ``calls_trace`` on ``(trace_id, timestamp_ns)``, for lookups by trace
   (``SQLiteStore.trace``); lookups by ``call_id`` use the index of its ``UNIQUE`` constraint;
5. adds the day level to the rollups (:mod:`._rollup`), built from the hour rows when migrated;
6. adds ``user_id``, ``agent_name``, ``error_message`` and ``tags`` (JSON array text, ``NULL``
   when empty); calls stored before have none (``NULL``: unknown, and no tags);
7. adds the ``spans`` table: the steps of traces (:class:`~asynctelemetry.TraceSpan`), a column
   per field, ``span_id`` UNIQUE, indexed by ``(trace_id, timestamp_ns)`` and ``timestamp_ns``;
8. replaces the ``rollup`` table by the engine's rollups (:mod:`.rollup`: ``rollup_groups``,
   ``rollup_totals``, ``rollup_values``), built from the stored calls when migrated (so the
   steps that built and extended ``rollup``, 2 and 4, now leave that to this one).
9. adds the indexes a page of ``traces(...)`` walks newest first (:mod:`.._traces`): partial
   indexes of calls by ``user_id`` and ``agent_name``, of steps by ``session_id``, ``user_id``
   and ``agent_name`` (rows that have one), and of steps not "ok" by ``status``; each ends with
   ``timestamp_ns``;
10. adds the indexes pages seek (``calls_cost``, ``calls_latency``, ``calls_tokens``);
11. replaces ``rollup_totals`` and ``rollup_values`` by ``rollups`` (:mod:`.rollup`: one row
    per level, period and group, the histograms and the exact cost packed in it), built from
    the stored calls when migrated (so step 7, which built the rollups of version 8, now leaves
    that to this one).
12. fewer B-trees per written call: the three page indexes go into the time index
    ``calls_ts`` (:data:`TIME_INDEX`: the timestamp, then the keys pages sort by), and
    ``calls_status`` keeps only the calls not "ok" (:data:`STATUS_INDEX`).
13. adds ``session_periods``, the totals per session of each day and hour (:mod:`.sessions`),
    built from the stored calls when migrated.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from ..._exceptions import SchemaVersionError, StoreError
from ..._record import FIELD_DEFAULTS, LLMCall, TraceSpan
from ..._rows import ATTRIBUTES, FIELDS, TIMESTAMP, Row
from ..._usage import TOKEN_FIELDS
from .._base import from_ns, to_ns
from .._traces import span_values, spans_of
from . import rollup as _rollup
from . import sessions as _sessions

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "COLUMNS",
    "INSERT_SQL",
    "MIGRATIONS",
    "PROFILE_FIELDS",
    "ROW_FIELDS",
    "ROW_ID",
    "ROW_PLACEHOLDERS",
    "ROW_TS",
    "SCHEMA_VERSION",
    "SELECT_COLUMNS",
    "check_readable",
    "decode_rows",
    "decode_spans",
    "encode_call",
    "encode_span",
    "from_ns",
    "prepare",
    "to_ns",
]

SCHEMA_VERSION: Final = 13

#: LLMCall fields stored as they are, in column order (``timestamp`` and ``attributes`` follow).
PLAIN_FIELDS: Final = (
    "call_id",
    "model",
    "request_model",
    "provider",
    "operation",
    "service_name",
    "source",
    "trace_id",
    "span_id",
    "parent_span_id",
    "session_id",
    "route_name",
    "is_streaming",
    "status",
    "status_code",
    "error_type",
    *TOKEN_FIELDS,
    "duration_ms",
    "ttft_ms",
    "cache_hit",
    "tool_calls",
    "routing_strategy",
    "routing_reason",
    "cost_usd",
    "price_version",
    "user_id",
    "agent_name",
    "error_message",
)
#: Every stored column but ``id``, in the order rows are written and read (``tags``: JSON).
COLUMNS: Final = (*PLAIN_FIELDS, "timestamp_ns", "attributes", "tags")
#: One row's parameters in an INSERT.
ROW_PLACEHOLDERS: Final = f"({', '.join('?' * len(COLUMNS))})"
INSERT_SQL: Final = f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) VALUES {ROW_PLACEHOLDERS}"
_COLUMN_TYPES: Final = {
    "call_id": "TEXT NOT NULL UNIQUE",
    "model": "TEXT NOT NULL",
    "operation": "TEXT NOT NULL",
    "source": "TEXT NOT NULL",
    "is_streaming": "INTEGER",
    "status": "TEXT NOT NULL",
    "status_code": "INTEGER",
    "input_tokens": "INTEGER",
    "output_tokens": "INTEGER",
    "total_tokens": "INTEGER",
    "cached_input_tokens": "INTEGER",
    "cache_creation_tokens": "INTEGER",
    "reasoning_tokens": "INTEGER",
    "duration_ms": "REAL",
    "ttft_ms": "REAL",
    "tool_calls": "INTEGER NOT NULL DEFAULT 0",
    "cost_usd": "REAL",
    "timestamp_ns": "INTEGER NOT NULL",
}
_V2_ONLY: Final = ("cache_creation_tokens", "price_version")
#: The columns version 6 added, with their types.
_V6_COLUMNS: Final = ("user_id", "agent_name", "error_message", "tags")


def _table_sql(columns: Iterable[str]) -> str:
    body = ",\n  ".join(f"{c} {_COLUMN_TYPES.get(c, 'TEXT')}" for c in columns)
    return f"CREATE TABLE calls (\n  id INTEGER PRIMARY KEY,\n  {body}\n)"


_TRACE_INDEX: Final = "CREATE INDEX IF NOT EXISTS calls_trace ON calls (trace_id, timestamp_ns)"
#: The time index, covering the keys pages sort by (version 12): a window's calls by time, and
#: the top of a window by cost, latency or tokens read from this index alone (one index where
#: versions 10 had four: each index is a B-tree every written call updates).
TIME_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS calls_ts ON calls "
    "(timestamp_ns, cost_usd, duration_ms, input_tokens, output_tokens)"
)
#: The calls not "ok", by status then time (partial, version 12: an "ok" call, most of them,
#: costs its write nothing here). A read uses it when it says ``status <> 'ok'``
#: (:func:`.reads.where` does for any other status asked).
STATUS_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS calls_status ON calls (status, timestamp_ns) WHERE status <> 'ok'"
)
#: Indexes serve the filters; each ends with the timestamp so filtered reads come out in order.
_INDEXES: Final = (
    TIME_INDEX,
    "CREATE INDEX IF NOT EXISTS calls_model ON calls (model, timestamp_ns)",
    # model= also matches request_model: the other side of that OR.
    "CREATE INDEX IF NOT EXISTS calls_request_model ON calls (request_model, timestamp_ns)",
    "CREATE INDEX IF NOT EXISTS calls_provider ON calls (provider, timestamp_ns)",
    "CREATE INDEX IF NOT EXISTS calls_session ON calls (session_id, timestamp_ns)",
    STATUS_INDEX,
    _TRACE_INDEX,
)

#: The version-1 table, frozen: what the first release wrote (kept for the history above).
V1_TABLE_SQL: Final = _table_sql(c for c in COLUMNS if c not in (*_V2_ONLY, *_V6_COLUMNS))


#: The ``spans`` table's columns but ``id``: a TraceSpan's fields (``timestamp_ns`` for the
#: timestamp, ``attributes`` as JSON text or NULL), in the order rows are written and read.
SPAN_COLUMNS: Final = tuple(
    "timestamp_ns" if name == "timestamp" else name for name in TraceSpan.model_fields
)
_SPAN_TYPES: Final = {
    "span_id": "TEXT NOT NULL UNIQUE",
    "trace_id": "TEXT NOT NULL",
    "name": "TEXT NOT NULL",
    "kind": "TEXT NOT NULL",
    "timestamp_ns": "INTEGER NOT NULL",
    "duration_ms": "REAL",
    "status": "TEXT NOT NULL",
    "source": "TEXT NOT NULL",
}
#: The indexes a ``traces(...)`` walk follows (schema 9). Partial: a row without the value
#: (most steps have no user; most are "ok") costs its write nothing.
TRACE_WALK_INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS calls_user ON calls (user_id, timestamp_ns) "
    "WHERE user_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS calls_agent ON calls (agent_name, timestamp_ns) "
    "WHERE agent_name IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS spans_session ON spans (session_id, timestamp_ns) "
    "WHERE session_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS spans_user ON spans (user_id, timestamp_ns) "
    "WHERE user_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS spans_agent ON spans (agent_name, timestamp_ns) "
    "WHERE agent_name IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS spans_status ON spans (status, timestamp_ns) WHERE status <> 'ok'",
)
SPANS_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS spans (\n  id INTEGER PRIMARY KEY,\n  "
    + ",\n  ".join(f"{c} {_SPAN_TYPES.get(c, 'TEXT')}" for c in SPAN_COLUMNS)
    + "\n)",
    "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id, timestamp_ns)",
    "CREATE INDEX IF NOT EXISTS spans_ts ON spans (timestamp_ns)",
)
#: A step into ``spans``; one already stored (its ``span_id``) is skipped.
INSERT_SPAN_SQL: Final = (
    f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"
)
#: A trace's steps, oldest first (index ``spans_trace``).
TRACE_SPANS_SQL: Final = (
    f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE trace_id = ? ORDER BY timestamp_ns, id"
)


def _create_current(conn: sqlite3.Connection) -> None:
    conn.execute(_table_sql(COLUMNS))
    for sql in (*_INDEXES, *_rollup.TABLE_SQL, *SPANS_SQL, *TRACE_WALK_INDEXES):
        conn.execute(sql)
    conn.execute(_sessions.TABLE_SQL)


def _v8_to_v9(conn: sqlite3.Connection) -> None:
    for sql in TRACE_WALK_INDEXES:
        conn.execute(sql)


def _v11_to_v12(conn: sqlite3.Connection) -> None:
    """The page indexes go into the time index; the status index keeps the calls not "ok"."""
    for name in ("calls_cost", "calls_latency", "calls_tokens", "calls_ts", "calls_status"):
        conn.execute(f"DROP INDEX IF EXISTS {name}")  # our own constant names
    conn.execute(TIME_INDEX)
    conn.execute(STATUS_INDEX)


def _v6_to_v7(conn: sqlite3.Connection) -> None:
    for sql in SPANS_SQL:
        conn.execute(sql)


def _nothing(conn: sqlite3.Connection) -> None:
    """A step whose work a later one does (the rollups are built once, at version 11; the
    page indexes of version 10 became the time index of version 12)."""


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE calls ADD COLUMN cache_creation_tokens INTEGER")
    conn.execute("ALTER TABLE calls ADD COLUMN price_version TEXT")


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    conn.execute(_TRACE_INDEX)


def _v5_to_v6(conn: sqlite3.Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    for name in _V6_COLUMNS:  # names from our own table, never input
        if name not in present:
            conn.execute(f"ALTER TABLE calls ADD COLUMN {name} TEXT")


#: ``MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1``. Forward only.
MIGRATIONS: Final[dict[int, Callable[[sqlite3.Connection], None]]] = {
    1: _v1_to_v2,
    2: _nothing,
    3: _v3_to_v4,
    4: _nothing,
    5: _v5_to_v6,
    6: _v6_to_v7,
    7: _nothing,
    8: _v8_to_v9,
    9: _nothing,
    10: _rollup.rebuild,
    11: _v11_to_v12,
    12: _sessions.rebuild,
}


def prepare(conn: sqlite3.Connection, path: str) -> int:
    """Create the schema in a new file or migrate an older one; return the version found.

    Runs in the connection's thread, in one ``BEGIN IMMEDIATE`` transaction so that two
    processes opening a new file at once cannot both create it.

    Raises:
        SchemaVersionError: the file was written by a newer asynctelemetry.
        StoreError: the file holds a ``calls`` table that is not ours.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _check_version(conn, path)
        if found == 0:
            _create_current(conn)
        else:
            for version in range(found, SCHEMA_VERSION):
                MIGRATIONS[version](conn)
            for sql in _INDEXES:
                conn.execute(sql)
        if found != SCHEMA_VERSION:
            # PRAGMA takes no parameters; the value is our own integer constant.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def check_adoptable(conn: sqlite3.Connection, path: str, adopt: bool) -> None:
    """Refuse, before anything is written, a file that is not a call store and holds another
    program's tables (adding ours beside them is a mistake unless asked for: ``adopt``).

    Raises:
        StoreError: the file has tables and no call store schema, and ``adopt`` is false.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version:
        return  # ours (or a newer one, which prepare() refuses)
    others = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
    ]
    if "calls" in others:  # a name we need: never adopted
        raise StoreError(f"{path} has a 'calls' table that asynctelemetry did not create")
    if others and not adopt:
        shown = ", ".join(repr(name) for name in others[:5]) + (", …" if len(others) > 5 else "")
        raise StoreError(
            f"{path} holds another program's tables ({shown}) and no call store; nothing was "
            "changed. Name a new file, or pass adopt=True (CLI: --adopt) to add the call "
            "store's tables beside them"
        )


def check_readable(conn: sqlite3.Connection, path: str) -> None:
    """Refuse, without writing, a file that a read-only store cannot read as it is.

    Raises:
        SchemaVersionError: written by a newer asynctelemetry.
        StoreError: not a call store, or of an older schema (open it once for writing to
            migrate it).
    """
    version = _check_version(conn, path)
    if version == 0:
        raise StoreError(f"{path} is not an asynctelemetry call store (it has no 'calls' table)")
    if version < SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, older than this asynctelemetry's "
            f"({SCHEMA_VERSION}); open it once for writing (e.g. 'asynctelemetry collect "
            "--db ...' or SQLiteStore(path)) to migrate it"
        )


def _check_version(conn: sqlite3.Connection, path: str) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has schema version {version}, newer than this asynctelemetry supports "
            f"({SCHEMA_VERSION}); upgrade asynctelemetry to open it"
        )
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'"
    ).fetchone()
    if version == 0 and has_table:
        raise StoreError(f"{path} has a 'calls' table that asynctelemetry did not create")
    if version > 0 and not has_table:
        raise StoreError(f"{path} has schema version {version} but no 'calls' table")
    return int(version)


# -- the row codec ------------------------------------------------------------------------------
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_plain_of_row: Final = itemgetter(*(FIELDS.index(name) for name in PLAIN_FIELDS))
_TAGS: Final = FIELDS.index("tags")
_dumps: Final = json.JSONEncoder(separators=(",", ":")).encode  # ASCII: lone surrogates survive
_loads: Final = json.loads


def encode_call(row: Row) -> tuple[Any, ...]:
    """The SQLite row for a call's compact row (:mod:`asynctelemetry._rows`: a record becomes
    one at the store's door), in :data:`COLUMNS` order."""
    delta = row[TIMESTAMP] - _EPOCH
    keys = row[ATTRIBUTES]
    attributes = None if keys is None else dict(zip(keys, row[ATTRIBUTES + 1 :], strict=True))
    tags = row[_TAGS]
    ns = ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000
    return (
        *_plain_of_row(row),
        ns,
        _dumps(attributes) if attributes else None,
        _dumps(tags) if tags else None,
    )


# Reading. Building records is what replay spends its time on, so the read side hands Python as
# few objects as it can. Fields whose values repeat across many calls (model, provider, status,
# ...) come back as ONE JSON array per row, built by SQLite in the reader's thread; each distinct
# array becomes a complete field dict once (a "template"), and each row then costs a copy of its
# template plus the fields that vary from call to call. The record is wrapped without copying or
# validating again (``LLMCall._adopt``): the values are our own, checked when they were written.

#: Fields read through the per-row JSON array (few distinct values).
PROFILE_FIELDS: Final = (
    "model",
    "request_model",
    "provider",
    "operation",
    "service_name",
    "source",
    "route_name",
    "is_streaming",
    "status",
    "status_code",
    "error_type",
    "cache_hit",
    "tool_calls",
    "routing_strategy",
    "routing_reason",
    "price_version",
    "agent_name",
)
#: Fields read as columns, in the order :func:`decode_rows` unpacks them (``timestamp`` comes
#: back as ``timestamp_ns``).
ROW_FIELDS: Final = (
    "call_id",
    "timestamp",
    "trace_id",
    "span_id",
    "parent_span_id",
    "session_id",
    *TOKEN_FIELDS,
    "duration_ms",
    "ttft_ms",
    "cost_usd",
    "user_id",
    "error_message",
    "tags",
    "attributes",
)
if set(PROFILE_FIELDS) | set(ROW_FIELDS) != set(FIELD_DEFAULTS) or len(PROFILE_FIELDS) + len(
    ROW_FIELDS
) != len(FIELD_DEFAULTS):  # pragma: no cover - a new LLMCall field must be placed here
    raise AssertionError("PROFILE_FIELDS and ROW_FIELDS must split LLMCall's fields")
#: What reads select: the row fields, the profile array, then the rowid (the keyset's tie-break).
SELECT_COLUMNS: Final = ", ".join(
    (
        *("timestamp_ns" if f == "timestamp" else f for f in ROW_FIELDS),
        f"json_array({', '.join(PROFILE_FIELDS)})",
        "id",
    )
)
#: Positions in a selected row of the keyset (timestamp_ns, id).
ROW_TS: Final = ROW_FIELDS.index("timestamp")
ROW_ID: Final = len(ROW_FIELDS) + 1
#: Most distinct profiles remembered; past it the cache starts over (correct, just slower).
PROFILE_CACHE_SIZE: Final = 4096
_templates: dict[str, dict[str, Any]] = {}


def _template(profile: str) -> dict[str, Any]:
    """The complete field dict for one profile array (the row fields still at their defaults)."""
    data = dict(FIELD_DEFAULTS)
    data.update(zip(PROFILE_FIELDS, _loads(profile), strict=True))
    streaming = data["is_streaming"]
    data["is_streaming"] = None if streaming is None else streaming == 1
    if len(_templates) >= PROFILE_CACHE_SIZE:
        _templates.clear()
    _templates[profile] = data
    return data


def decode_rows(rows: Iterable[Sequence[Any]]) -> list[LLMCall]:
    """Rebuild records from rows selected with :data:`SELECT_COLUMNS` (our own data: trusted)."""
    out: list[LLMCall] = []
    append = out.append
    adopt = LLMCall._adopt
    cached = _templates.get
    miss = _template
    epoch = _EPOCH
    delta = timedelta
    loads = _loads
    for (
        call_id,
        ns,
        trace_id,
        span_id,
        parent_span_id,
        session_id,
        input_tokens,
        output_tokens,
        total_tokens,
        cached_input_tokens,
        cache_creation_tokens,
        reasoning_tokens,
        duration_ms,
        ttft_ms,
        cost_usd,
        user_id,
        error_message,
        tags,
        attributes,
        profile,
        _,
    ) in rows:
        data = (cached(profile) or miss(profile)).copy()  # keys stay in field order
        data["call_id"] = call_id
        data["timestamp"] = epoch + delta(0, 0, ns // 1000)
        data["trace_id"] = trace_id
        data["span_id"] = span_id
        data["parent_span_id"] = parent_span_id
        data["session_id"] = session_id
        data["input_tokens"] = input_tokens
        data["output_tokens"] = output_tokens
        data["total_tokens"] = total_tokens
        data["cached_input_tokens"] = cached_input_tokens
        data["cache_creation_tokens"] = cache_creation_tokens
        data["reasoning_tokens"] = reasoning_tokens
        data["duration_ms"] = duration_ms
        data["ttft_ms"] = ttft_ms
        data["cost_usd"] = cost_usd
        data["user_id"] = user_id
        data["error_message"] = error_message
        data["tags"] = tuple(loads(tags)) if tags else ()
        data["attributes"] = loads(attributes) if attributes else {}
        append(adopt(data))
    return out


def encode_span(span: TraceSpan) -> tuple[Any, ...]:
    """The ``spans`` row of a step, in :data:`SPAN_COLUMNS` order."""
    return span_values(span, to_ns, _dumps)


def decode_spans(rows: Iterable[Sequence[Any]]) -> list[TraceSpan]:
    """Steps from rows selected in :data:`SPAN_COLUMNS` order (our own data: trusted)."""
    return spans_of(rows, from_ns, _loads)
