"""The SQLite schema: versions, migrations, files that are not ours, and the summary helpers."""

from __future__ import annotations

import math
import random
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Final

import pytest

from asynctelemetry import SchemaVersionError, SQLiteStore, StoreError
from asynctelemetry._stores import _base, _pages, _rollup, summarize, timeseries
from asynctelemetry._stores._door import enter
from asynctelemetry._stores.sqlite import reads as _queries
from asynctelemetry._stores.sqlite import schema as _schema
from tests.conftest import T0, make_call

if TYPE_CHECKING:
    from pathlib import Path

#: The version-1 schema as the first release wrote it (frozen here on purpose: the test must not
#: follow later edits to _schema).
V1_DDL = """
CREATE TABLE calls (
  id INTEGER PRIMARY KEY, call_id TEXT NOT NULL UNIQUE, model TEXT NOT NULL, request_model TEXT,
  provider TEXT, operation TEXT NOT NULL, service_name TEXT, source TEXT NOT NULL, trace_id TEXT,
  span_id TEXT, parent_span_id TEXT, session_id TEXT, route_name TEXT, is_streaming INTEGER,
  status TEXT NOT NULL, status_code INTEGER, error_type TEXT, input_tokens INTEGER,
  output_tokens INTEGER, total_tokens INTEGER, cached_input_tokens INTEGER,
  reasoning_tokens INTEGER, duration_ms REAL, ttft_ms REAL, cache_hit TEXT,
  tool_calls INTEGER NOT NULL DEFAULT 0, routing_strategy TEXT, routing_reason TEXT,
  cost_usd REAL, timestamp_ns INTEGER NOT NULL, attributes TEXT
);
CREATE INDEX calls_ts ON calls (timestamp_ns);
PRAGMA user_version = 1;
"""


def make_v1_file(path: Path) -> None:
    """A version-1 file holding one call."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_DDL)
    conn.execute(
        "INSERT INTO calls (call_id, model, operation, source, status, input_tokens, duration_ms,"
        " is_streaming, timestamp_ns, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "old-1",
            "gpt-4",
            "chat",
            "tracer",
            "ok",
            12,
            250.5,
            1,
            1_700_000_000_123_456_000,
            '{"k":1}',
        ),
    )
    conn.commit()
    conn.close()


async def test_version_1_file_is_migrated_on_open(tmp_path: Path) -> None:
    """Opening a version-1 file migrates it to the current version and keeps its calls."""
    path = tmp_path / "v1.db"
    make_v1_file(path)
    async with SQLiteStore(path) as store:
        (old,) = await store.query()
        await store.add(make_call(1, cache_creation_tokens=5, price_version="p1"))
        await store.flush()
        new = (await store.query(since=T0))[0]
        with pytest.MonkeyPatch.context() as patch:  # read the rollups the migration built
            patch.setattr(_base, "EXACT_LIMIT", 0)
            assert await store.summary() == summarize([old, new])
            assert await store.timeseries(bucket="1d") == timeseries([old, new], "1d")
    assert old.call_id == "old-1" and old.input_tokens == 12 and old.duration_ms == 250.5
    assert old.is_streaming is True and old.attributes == {"k": 1}
    assert old.timestamp == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert old.cache_creation_tokens is None and old.price_version is None
    assert new.cache_creation_tokens == 5 and new.price_version == "p1"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    assert columns == {"id", *_schema.COLUMNS}
    conn.close()


async def test_version_3_file_gets_the_trace_index(tmp_path: Path) -> None:
    """A file of schema version 3 (no index on trace_id) is migrated on open: the index
    ``calls_trace`` is built, lookups by trace use it, the calls are unchanged."""
    path = tmp_path / "v3.db"
    calls = [make_call(i, trace_id=f"t{i % 3}") for i in range(9)]
    async with SQLiteStore(path) as store:
        await store.add_many(calls)
    conn = sqlite3.connect(path)  # take the file back to version 3: the same tables, no index
    conn.execute("DROP INDEX calls_trace")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    async with SQLiteStore(path) as store:
        assert await store.trace("t1") == calls[1::3]
        assert await store.get("call-000004") == calls[4]
        assert await store.query() == calls
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    plan = conn.execute(f"EXPLAIN QUERY PLAN {_queries.TRACE_SQL}", ("t1", -1)).fetchall()
    assert "calls_trace" in str(plan)
    plan = conn.execute(f"EXPLAIN QUERY PLAN {_queries.GET_SQL}", ("x",)).fetchall()
    assert "sqlite_autoindex_calls" in str(plan)
    conn.close()


def _rollup_rows(path: Path) -> list[tuple[object, ...]]:
    """Every rollup row of the file with its group's key (group numbers may differ)."""
    keys = "g.model, g.request_model, g.provider, g.route_name, g.status"
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            f"SELECT r.*, {keys} FROM rollups r JOIN rollup_groups g ON g.id = r.gid"
        ).fetchall()
        return sorted(((*row[:2], *row[3:]) for row in rows), key=repr)  # without the group id
    finally:
        conn.close()


#: The rollup tables of older versions, with a row each the migration must not keep.
_OLD_ROLLUPS: Final = {
    # versions 3 to 7: one ``rollup`` table, histograms as JSON
    7: ("CREATE TABLE rollup (width_s INTEGER, start_ns INTEGER, cost TEXT)",
        "INSERT INTO rollup VALUES (60, 0, '[1.0]')"),
    # versions 8 to 10: a row per level, period and group, and one per histogram bucket
    10: ("CREATE TABLE rollup_groups (id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
         "request_model TEXT, provider TEXT, route_name TEXT, status TEXT NOT NULL)",
         "CREATE TABLE rollup_totals (width_s INTEGER, start_ns INTEGER, gid INTEGER, "
         "calls INTEGER)",
         "INSERT INTO rollup_totals VALUES (3600, 0, 1, 5)",
         "CREATE TABLE rollup_values (width_s INTEGER, start_ns INTEGER, gid INTEGER, "
         "kind INTEGER, bucket INTEGER, n INTEGER, m INTEGER)",
         "INSERT INTO rollup_values VALUES (3600, 0, 1, 0, 7, 5, 0)"),
}  # fmt: skip


@pytest.mark.parametrize("version", sorted(_OLD_ROLLUPS))
async def test_old_file_gets_the_packed_rollups(tmp_path: Path, version: int) -> None:
    """A file of schema version 7 (its rollups in one ``rollup`` table) or 10 (a row per
    histogram bucket) is migrated on open: the old tables go, the rollups are built from the
    stored calls, equal at every level to those a writer keeps, and windows of days and
    minutes read them with the reference answers."""
    calls = [make_call(i, timestamp=T0 + timedelta(seconds=3001 * i)) for i in range(200)]
    fresh, old = tmp_path / "fresh.db", tmp_path / f"v{version}.db"
    for path in (fresh, old):
        async with SQLiteStore(path) as store:
            await store.add_many(calls)
    conn = sqlite3.connect(old)  # back to the old version: its rollup tables, not the new ones
    for table in ("rollups", "rollup_groups"):
        conn.execute(f"DROP TABLE {table}")
    for sql in _OLD_ROLLUPS[version]:
        conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {version:d}")
    conn.commit()
    conn.close()
    async with SQLiteStore(old) as store:
        since, until = T0 + timedelta(days=1, hours=5), T0 + timedelta(days=6, minutes=3)
        window = [c for c in calls if since <= c.timestamp < until]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary(since=since, until=until) == summarize(window)
            got = await store.timeseries(bucket="1d", since=since, until=until)
            assert got == timeseries(window, "1d")
            assert await store.timeseries(bucket="1m") == timeseries(calls, "1m")
    rows = _rollup_rows(old)
    assert {row[0] for row in rows} == set(_rollup.LEVELS) and rows == _rollup_rows(fresh)
    conn = sqlite3.connect(old)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert not tables & {"rollup", "rollup_totals", "rollup_values"}
    conn.close()


async def test_version_5_file_gets_users_agents_tags_and_messages(tmp_path: Path) -> None:
    """A file of schema version 5 (no user, agent, tags or error message columns) is migrated
    on open: its calls read back with none of them (None, no tags), new calls keep them all."""
    path = tmp_path / "v5.db"
    old_calls = [make_call(i) for i in range(4)]
    async with SQLiteStore(path) as store:
        await store.add_many(old_calls)
    conn = sqlite3.connect(path)  # back to version 5: the same calls, no new columns
    _drop_walk_indexes(conn)
    for name in ("user_id", "agent_name", "tags", "error_message"):
        conn.execute(f"ALTER TABLE calls DROP COLUMN {name}")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    new_call = make_call(
        9, user_id="u", agent_name="a", tags=("x", "y"), status="error", error_message="boom"
    )
    async with SQLiteStore(path) as store:
        await store.add(new_call)
        await store.flush()
        assert await store.query() == [*old_calls, new_call]
        rows = {r.key: r.calls for r in await store.summary(by="tag")}
        assert rows == {None: 4, "x": 1, "y": 1}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    assert columns == {"id", *_schema.COLUMNS}
    conn.close()


async def test_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A file whose user_version is newer than ours raises SchemaVersionError and is untouched."""
    path = tmp_path / "new.db"
    async with SQLiteStore(path) as store:
        await store.add(make_call(1))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(SchemaVersionError, match="version 99"):
        await SQLiteStore(path).open()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (99,)
    conn.close()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is a text file, not a database\n" * 100, id="text"),
        pytest.param(b"SQLite format 3\x00" + bytes(range(256)) * 16, id="bad-header"),
    ],
)
async def test_non_sqlite_or_corrupt_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    """A file that is not a SQLite database, or is corrupt, raises StoreError at open."""
    path = tmp_path / "calls.db"
    path.write_bytes(content)
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match="cannot open"):
        await store.open()
    await store.aclose()


async def test_corrupted_pages_are_a_clear_error(tmp_path: Path) -> None:
    """A real store whose schema page was overwritten raises StoreError at open."""
    path = tmp_path / "calls.db"
    async with SQLiteStore(path) as store:
        await store.add_many([make_call(i) for i in range(200)])
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # page 1 after the header: sqlite_master
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError):
        await SQLiteStore(path).open()


async def test_foreign_calls_table_is_refused(tmp_path: Path) -> None:
    """A database with someone else's 'calls' table is not taken over."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE calls (x)")
    conn.close()
    with pytest.raises(StoreError, match="did not create"):
        await SQLiteStore(path).open()


def test_timestamps_are_integer_nanoseconds_utc() -> None:
    """to_ns and the row codec keep microseconds exactly, whatever the offset."""
    moment = datetime(2026, 5, 6, 7, 8, 9, 999999, tzinfo=timezone(timedelta(hours=-7)))
    ns = _schema.to_ns(moment)
    assert ns % 1000 == 0
    assert ns == _schema.to_ns(moment.astimezone(UTC))
    assert ns == _schema.to_ns(moment.astimezone(UTC).replace(tzinfo=None))
    call = make_call(3, timestamp=moment)
    row = _schema.encode_call(enter(call))
    assert row[_schema.COLUMNS.index("timestamp_ns")] == ns
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _schema.prepare(conn, ":memory:")
    conn.execute(_schema.INSERT_SQL, row)
    selected = conn.execute(f"SELECT {_schema.SELECT_COLUMNS} FROM calls").fetchall()
    conn.close()
    assert selected[0][_schema.ROW_TS] == ns
    assert _schema.decode_rows(selected) == [call]


def test_fsum_aggregate_rounds_like_math_fsum() -> None:
    """The SQL cost sum equals math.fsum where a plain sum would not."""
    rng = random.Random(7)
    values = [rng.choice([1e16, 1.0, 1e-16, 0.1, 3.3e-5]) * rng.random() for _ in range(5000)]
    values += [1e16, 1.0, -1e16] * 3
    conn = sqlite3.connect(":memory:")
    _queries.register(conn)
    conn.execute("CREATE TABLE t (v REAL)")
    conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in [*values, None]])
    (got,) = conn.execute("SELECT asynctelemetry_fsum(v) FROM t").fetchone()
    assert got == math.fsum(values) != sum(values)
    assert conn.execute("SELECT asynctelemetry_fsum(v) FROM t WHERE v IS NULL").fetchone() == (0.0,)
    conn.close()


async def test_version_8_file_gets_the_indexes_trace_pages_walk(tmp_path: Path) -> None:
    """A file of schema version 8 (no walk indexes) is migrated on open: the partial indexes
    a ``traces(...)`` page follows are built, and a filtered page reads through them."""
    path = tmp_path / "v8.db"
    async with SQLiteStore(path) as store:
        await store.add_many([make_call(i, trace_id=f"t{i}", user_id=f"u{i}") for i in range(4)])
    conn = sqlite3.connect(path)
    _drop_walk_indexes(conn)
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()
    async with SQLiteStore(path) as store:
        assert [r.trace_id for r in await store.traces(user_id="u2")] == ["t2"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"calls_user", "calls_agent", "spans_session", "spans_status"} <= names
    conn.close()


def _drop_walk_indexes(conn: sqlite3.Connection) -> None:
    """What a file before version 9 lacks: the indexes ``traces(...)`` walks."""
    for sql in _schema.TRACE_WALK_INDEXES:
        conn.execute(f"DROP INDEX {sql.split()[5]}")  # CREATE INDEX IF NOT EXISTS <name>


#: The indexes of versions 10 and 11 that version 12 replaces (frozen here on purpose).
V11_INDEXES = (
    "CREATE INDEX calls_ts ON calls (timestamp_ns)",
    "CREATE INDEX calls_status ON calls (status, timestamp_ns)",
    "CREATE INDEX calls_cost ON calls (cost_usd)",
    "CREATE INDEX calls_latency ON calls (duration_ms)",
    "CREATE INDEX calls_tokens ON calls ((input_tokens + output_tokens))",
)


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> str:
    return " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


async def test_version_11_file_gets_the_covering_time_index(tmp_path: Path) -> None:
    """A file of schema version 11 (an index per page key, every call in the status index) is
    migrated on open: the page indexes go, pages by cost, latency and tokens read their rowids
    from the covering time index alone (the query plan says so) in the right order, and the
    status index keeps only the calls not "ok", which a status read seeks."""
    path = tmp_path / "v12.db"
    calls = [
        make_call(i, user_id=f"u{i % 2}", status="error" if i % 3 == 0 else "ok") for i in range(6)
    ]
    async with SQLiteStore(path) as store:
        await store.add_many(calls)
    conn = sqlite3.connect(path)  # back to version 11's indexes
    conn.execute("DROP INDEX calls_ts")
    conn.execute("DROP INDEX calls_status")
    for sql in V11_INDEXES:
        conn.execute(sql)
    conn.execute("PRAGMA user_version = 11")
    conn.commit()
    conn.close()
    async with SQLiteStore(path) as store:
        page = await store.page(sort="latency", limit=3)
        assert [c.call_id for c in page.calls] == ["call-000005", "call-000004", "call-000003"]
        assert await store.count(status="error") == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert not {"calls_cost", "calls_latency", "calls_tokens"} & names
    (status_sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'calls_status'"
    ).fetchone()
    assert "WHERE status <> 'ok'" in status_sql
    assert conn.execute(
        "SELECT COUNT(*) FROM calls INDEXED BY calls_status "
        "WHERE status <> 'ok' AND status = 'error'"
    ).fetchone() == (2,)
    for sort in ("cost", "latency", "tokens"):
        read = _pages.PageRead(_base.Filters(), sort, True, None, True, (1, 5), 10)
        sql, params = _queries.call_page_sql(read)
        assert "COVERING INDEX calls_ts" in _plan(conn, sql, params), sort
    sql, params = _queries.where(_base.Filters(status="error"))
    assert "calls_status" in _plan(conn, f"SELECT COUNT(*) FROM calls{sql}", params)
    read = _pages.PageRead(_base.Filters(), "time", True, "u1", True, None, 10)
    sql, params = _queries.call_page_sql(read)
    plan = _plan(conn, sql, params)
    assert "calls_user" in plan and "calls_session" in plan and "calls_trace" in plan
    conn.close()


async def test_version_12_file_gets_the_session_totals(tmp_path: Path) -> None:
    """A file of schema version 12 (no session totals) is migrated on open: the totals are
    built from its calls, kept by later writes, and the top sessions of a window are the
    reference's."""
    path = tmp_path / "v12.db"
    calls = [
        make_call(i, session_id=f"s{i % 7}", timestamp=T0 + timedelta(minutes=47 * i))
        for i in range(90)
    ]
    async with SQLiteStore(path) as store:
        await store.add_many(calls[:60])
    conn = sqlite3.connect(path)  # back to version 12: no session totals
    conn.execute("DROP TABLE session_periods")
    conn.execute("PRAGMA user_version = 12")
    conn.commit()
    conn.close()
    window = {"since": T0 + timedelta(hours=5, minutes=3), "until": T0 + timedelta(days=2)}
    chosen = [c for c in calls if window["since"] <= c.timestamp < window["until"]]
    async with SQLiteStore(path) as store:
        await store.add_many(calls[60:])
        await store.flush()
        assert await store.summary(by="session", limit=3, **window) == summarize(
            chosen, "session", 3
        )
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    assert conn.execute("SELECT sum(calls) FROM session_periods WHERE width_s = 3600").fetchone()[
        0
    ] == len(calls)
    conn.close()
