"""PostgresStore against a real PostgreSQL server: what the shared suite cannot show.

Schema and partitions, a bad DSN, several writer processes at once, migrations racing, the
server stopped and started mid-stream, retention dropping partitions while writers run, rows the
server refuses. The server is the suite's own (``tests/pg.py``); each test has a fresh schema.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
import warnings
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import asyncpg
import pytest

from asynctelemetry import LLMCall, PostgresStore, PriceTable, StoreError, open_store
from asynctelemetry._stores import _base
from asynctelemetry._stores._base import summarize, timeseries
from asynctelemetry._stores.postgres.schema import SCHEMA_VERSION
from asynctelemetry._stores.postgres.store import _Snapshot
from tests.conftest import T0, make_call, varied_text
from tests.pg import schema_dsn, start_server, stop_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.pg import Server


async def _partitions(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'calls'::regclass ORDER BY 1"
        )
    finally:
        await conn.close()
    return [name for (name,) in rows]


def _full_call(i: int) -> LLMCall:
    return make_call(
        i,
        request_model="gpt-4o",
        service_name="svc",
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_span_id="ef" * 8,
        route_name="r",
        is_streaming=True,
        status_code=200,
        error_type=None,
        total_tokens=500,
        cached_input_tokens=3,
        cache_creation_tokens=4,
        reasoning_tokens=5,
        cache_hit="semantic",
        tool_calls=2,
        routing_strategy="cost",
        routing_reason="cheapest",
        cost_usd=0.1 + 0.2,
        price_version="genai-prices 1",
        attributes={"a": "x", "n": 7, "f": 1.5, "whole": 2.0, "b": True, "uni": "é☃"},
    )


async def test_open_creates_the_schema_and_the_coming_days(pg_dsn: str) -> None:
    """Opening a new database creates the versioned schema and today's partition plus the
    ``partitions_ahead`` next days'."""
    async with PostgresStore(pg_dsn, partitions_ahead=2):
        pass
    today = datetime.now(UTC).date()
    wanted = [f"calls_{today + timedelta(days=n):%Y%m%d}" for n in range(3)]
    assert await _partitions(pg_dsn) == wanted
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_version_1_database_gets_the_trace_index(pg_dsn: str) -> None:
    """A database of schema version 1 (no index on trace_id) is migrated on open: the index is
    built on the table and every partition, lookups by id and trace answer, calls unchanged."""
    calls = [
        make_call(i, trace_id=f"t{i % 3}", timestamp=T0 + timedelta(hours=9 * i)) for i in range(9)
    ]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls)
    conn = await asyncpg.connect(pg_dsn)
    try:  # back to version 1: the same tables, no trace index
        await conn.execute("DROP INDEX calls_trace_ts")
        await conn.execute("DROP TABLE rollup_groups, rollups")
        await conn.execute("DROP TABLE spans")
        await conn.execute("UPDATE asynctelemetry_schema SET version = 1")
        assert not await conn.fetch(
            "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexdef LIKE '%trace_id%'"
        )
        async with PostgresStore(pg_dsn) as store:
            assert await store.trace("t2") == calls[2::3]
            assert await store.get("call-000004") == calls[4]
            assert await store.query() == calls
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
        indexed = {
            row[0]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexdef LIKE '%(trace_id, ts)%'"
            )
        }
        assert indexed == {"calls", "spans", *await _partitions(pg_dsn)}
    finally:
        await conn.close()


async def test_reopening_shows_every_call_field_by_field(pg_dsn: str) -> None:
    """Every field survives the round trip, JSONB attributes and exact costs included."""
    calls = [_full_call(i) for i in range(5)]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls)
    async with PostgresStore(pg_dsn) as store:
        got = await store.query()
    assert got == calls
    assert [c.attributes for c in got] == [c.attributes for c in calls]
    assert type(got[0].attributes["whole"]) is float and type(got[0].attributes["n"]) is int


async def test_same_id_other_timestamp_is_a_different_call(pg_dsn: str) -> None:
    """The documented limit of uniqueness by (call_id, timestamp): copies of a call are one,
    but two calls that share an id and not a timestamp are both kept."""
    async with PostgresStore(pg_dsn) as store:
        await store.add_many([make_call(1), make_call(1), make_call(1, timestamp=T0)])
        await store.flush()
        assert store.duplicates == 1
        assert await store.count() == 2


async def test_rows_the_server_refuses_are_counted_and_the_rest_kept(pg_dsn: str) -> None:
    """Text PostgreSQL cannot hold (NUL) rejects that call only, counted in ``rejected``."""
    calls = [make_call(0), make_call(1, session_id="bad\x00id"), make_call(2)]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls)
        await store.flush()
        assert store.rejected == 1
        assert await store.query() == [calls[0], calls[2]]


async def test_rows_only_the_server_refuses_are_isolated_by_halving(pg_dsn: str) -> None:
    """An index the store does not know (a DBA's, on ``error_type``) refuses entries larger than
    a btree page (SQLSTATE 54000): only the server can tell, so the writer halves the batch
    around the rows it refuses, which are rejected and logged, and stores every other one, the
    rollups with them (#23: the whole batch was lost)."""
    async with PostgresStore(pg_dsn) as store:
        await store.add(make_call(0))
        await store.flush()
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute("CREATE INDEX calls_error_type ON calls (error_type)")
        finally:
            await conn.close()
        bad = {17, 18, 150}
        calls = [
            make_call(i, error_type=varied_text(3000) if i in bad else None) for i in range(200)
        ]
        await store.add_many([*calls, make_call(0)])  # a duplicate too: the staging merge
        await store.flush()
        assert store.rejected == len(bad)
        assert store.duplicates == 2
        kept = [call for i, call in enumerate(calls) if i not in bad]
        assert await store.query() == kept
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary(by="route") == summarize(kept, "route")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("kind", ["refused", "no-database", "silent"])
async def test_a_dsn_that_cannot_connect_is_a_clear_error_at_open(
    pg_server: Server, kind: str
) -> None:
    """Nobody listening, a database that does not exist, or a peer that never answers: a
    StoreError at open, within connect_timeout, naming the place (not a hang, not a retry)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        dsn = {
            "refused": f"postgresql://postgres@127.0.0.1:{_closed_port()}/x",
            "no-database": pg_server.dsn_for("no_such_database"),
            "silent": f"postgresql://u:secret@127.0.0.1:{silent.getsockname()[1]}/x",
        }[kind]
        store = PostgresStore(dsn, connect_timeout=1.0)
        async with asyncio.timeout(20):
            with pytest.raises(StoreError, match="cannot connect") as info:
                await store.open()
        assert "secret" not in str(info.value)
        await store.aclose()
    finally:
        silent.close()


def _script(body: str) -> list[str]:
    prelude = "import asyncio, sys, json\nfrom asynctelemetry import PostgresStore\n"
    prelude += "from tests.conftest import make_call\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def _run_all(commands: list[list[str]]) -> list[str]:
    """Start every command at once; wait; their outputs (each must succeed)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    procs = [
        subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


#: What a database of an older version had instead of the packed rollups.
_OLD_ROLLUPS: Final = {
    2: (),  # no rollups
    # versions 6 to 8: a row per level, period and group, and one per histogram bucket
    8: ("CREATE TABLE rollup_groups (id bigint PRIMARY KEY, model text NOT NULL, "
        "request_model text, provider text, route_name text, status text NOT NULL)",
        "CREATE TABLE rollup_totals (width_s integer, start_ns bigint, gid bigint, calls bigint)",
        "INSERT INTO rollup_totals VALUES (3600, 0, 1, 5)",
        "CREATE TABLE rollup_values (width_s integer, start_ns bigint, gid bigint, "
        "kind smallint, bucket bigint, n bigint, m bigint)",
        "INSERT INTO rollup_values VALUES (3600, 0, 1, 0, 7, 5, 0)"),
    # version 9: a row per level, period and group, its packed value in one int8[]
    9: ("CREATE TABLE rollup_groups (id bigint PRIMARY KEY, model text NOT NULL, "
        "request_model text, provider text, route_name text, status text NOT NULL)",
        "CREATE TABLE rollups (width_s integer, start_ns bigint, gid bigint, calls bigint, "
        "vals bigint[])",
        "INSERT INTO rollups VALUES (3600, 0, 1, 5, '{56, 5}')"),
}  # fmt: skip


@pytest.mark.parametrize("version", sorted(_OLD_ROLLUPS))
async def test_old_database_gets_the_packed_rollups(pg_dsn: str, version: int) -> None:
    """A database of schema version 2 (calls over several days, no rollups), 8 (a row per
    histogram bucket) or 9 (the packed value in one array) is migrated on open: the old tables
    go, the rollups are built from every partition, and large windows read from them give the
    rows the calls give; writes after the migration keep them exact."""
    calls = [
        make_call(
            i,
            timestamp=T0 + timedelta(seconds=3607 * i + (i * i) % 53),
            route_name=f"r{i % 3}",
            request_model=("a", None)[i % 2],
        )
        for i in range(120)  # five days
    ]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls[:100])
    conn = await asyncpg.connect(pg_dsn)
    try:  # back to the old version: the same calls, its rollups (none, or the old tables)
        await conn.execute("DROP TABLE rollup_groups, rollups")
        for sql in _OLD_ROLLUPS[version]:
            await conn.execute(sql)
        await conn.execute("UPDATE asynctelemetry_schema SET version = $1", version)
        async with PostgresStore(pg_dsn) as store:
            assert await conn.fetchval("SELECT count(*) FROM rollups") > 0
            assert await conn.fetchval("SELECT to_regclass('rollup_totals')") is None
            await store.add_many(calls[100:])
            await store.flush()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(_base, "EXACT_LIMIT", 3)
                for by in ("model", "route", "request_model"):
                    assert await store.summary(by=by) == summarize(calls, by)
                window = {
                    "since": T0 + timedelta(hours=30, minutes=7),
                    "until": T0 + timedelta(days=4),
                }
                chosen = [c for c in calls if window["since"] <= c.timestamp < window["until"]]
                assert await store.timeseries(bucket="1h", **window) == timeseries(chosen, "1h")
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_version_10_database_gets_the_session_totals(pg_dsn: str) -> None:
    """A database of schema version 10 (no session totals, no triggers) is migrated on open:
    the totals are built from its calls, the triggers keep them on later writes, and the top
    sessions of a window are the reference's."""
    calls = [
        make_call(i, session_id=f"s{i % 7}", timestamp=T0 + timedelta(minutes=47 * i))
        for i in range(90)
    ]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls[:60])
    conn = await asyncpg.connect(pg_dsn)
    try:  # back to version 10: the same calls, no session totals
        await conn.execute("DROP TABLE session_periods")
        await conn.execute("DROP FUNCTION asynctelemetry_session_periods() CASCADE")
        await conn.execute("UPDATE asynctelemetry_schema SET version = 10")
        since = T0 + timedelta(hours=2, minutes=11)
        chosen = [c for c in calls if c.timestamp >= since]
        async with PostgresStore(pg_dsn) as store:
            await store.add_many(calls[60:])
            await store.flush()
            top = await store.summary(by="session", since=since, limit=2, order_by="calls")
            assert top == summarize(chosen, "session", 2, "calls")
        total = await conn.fetchval("SELECT sum(calls) FROM session_periods WHERE width_s = 3600")
        assert total == len(calls)
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_version_3_database_gets_users_agents_tags_and_messages(pg_dsn: str) -> None:
    """A database of schema version 3 (no user, agent, tags or error message columns) is
    migrated on open: its calls read back with none of them, new calls keep them all."""
    old_calls = [make_call(i) for i in range(5)]
    new_call = make_call(
        9, user_id="u", agent_name="a", tags=("x", "y"), status="error", error_message="boom"
    )
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(old_calls)
    conn = await asyncpg.connect(pg_dsn)
    try:  # back to version 3: the same calls, without the new columns
        for name in ("user_id", "agent_name", "tags", "error_message"):
            await conn.execute(f"ALTER TABLE calls DROP COLUMN {name}")
        await conn.execute("UPDATE asynctelemetry_schema SET version = 3")
        async with PostgresStore(pg_dsn) as store:
            await store.add(new_call)
            await store.flush()
            assert await store.query() == [*old_calls[:5], new_call]
            rows = {r.key: r.calls for r in await store.summary(by="tag")}
            assert rows == {None: 5, "x": 1, "y": 1}
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_migrations_racing(pg_dsn: str) -> None:
    """Several processes opening a new database at once: one creates the schema, the others
    wait on the advisory lock and find it ready; every one of them can write."""
    body = """
    async def main():
        async with PostgresStore(sys.argv[1]) as store:
            await store.add(make_call(int(sys.argv[2])))
    asyncio.run(main())
    """
    outs = await asyncio.to_thread(_run_all, [[*_script(body), pg_dsn, str(i)] for i in range(4)])
    assert outs == [""] * 4
    async with PostgresStore(pg_dsn) as store:
        assert await store.count() == 4
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
    finally:
        await conn.close()


async def test_several_writer_processes_lose_nothing_and_keep_duplicates_once(
    pg_dsn: str,
) -> None:
    """Three processes write overlapping calls at once (across two days): every distinct call
    is stored once, the copies are counted as duplicates by the processes that sent them, and
    the rollups (read-modify-write under one lock) count every call once."""
    async with PostgresStore(pg_dsn):
        pass  # the schema exists; the writers race on partitions and rows
    body = """
    from datetime import timedelta
    from tests.conftest import T0
    async def main():
        first = int(sys.argv[2])
        async with PostgresStore(sys.argv[1], batch_size=500) as store:
            for start in range(first, first + 4000, 250):
                await store.add_many([
                    make_call(i, timestamp=T0 + timedelta(seconds=30 * i))
                    for i in range(start, start + 250)
                ])
            await store.flush()
            print(json.dumps({"duplicates": store.duplicates, "rejected": store.rejected}))
    asyncio.run(main())
    """
    starts = [0, 2000, 3000]
    outs = await asyncio.to_thread(_run_all, [[*_script(body), pg_dsn, str(s)] for s in starts])
    results = [json.loads(out) for out in outs]
    distinct = set().union(*(range(s, s + 4000) for s in starts))
    sent = 4000 * len(starts)
    assert sum(r["duplicates"] for r in results) == sent - len(distinct)
    assert all(r["rejected"] == 0 for r in results)
    async with PostgresStore(pg_dsn) as store:
        assert await store.count() == len(distinct)
        got = await store.query()
        with pytest.MonkeyPatch.context() as patch:  # the rollups of three racing writers
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary(by="route") == summarize(got, "route")
            assert await store.timeseries(bucket="1h") == timeseries(got, "1h")
    assert [c.call_id for c in got] == [f"call-{i:06d}" for i in sorted(distinct)]


@pytest.fixture
async def private_server() -> AsyncIterator[Server]:
    """A server of this test's own: it will be stopped and started."""
    server = await asyncio.to_thread(start_server, private=True)
    try:
        yield server
    finally:
        await asyncio.to_thread(stop_server, server)


@pytest.mark.timeout(180)
async def test_server_stopped_and_started_mid_stream(private_server: Server) -> None:
    """Calls keep coming while the server is stopped and started again: the writer retries with
    backoff and every call accepted is stored; flush() reports the outage while it lasts; reads
    work again once the server is back."""
    store = PostgresStore(private_server.dsn, batch_size=200, flush_interval=0.01)
    async with store:
        sent: list[LLMCall] = []

        async def produce(first: int, count: int) -> None:
            for start in range(first, first + count, 50):
                batch = [make_call(i) for i in range(start, start + 50)]
                await store.add_many(batch)
                sent.extend(batch)
                await asyncio.sleep(0.005)

        await produce(0, 1000)
        await store.flush()
        assert await store.count() == 1000  # the read pool holds a connection the stop will end
        await asyncio.to_thread(private_server.stop, "fast")
        await produce(1000, 1000)  # accepted while the server is down
        with pytest.raises(StoreError):
            await store.flush()
        await asyncio.to_thread(private_server.start)
        await produce(2000, 1000)
        async with asyncio.timeout(60):
            while True:
                try:
                    await store.flush()
                    break
                except StoreError:
                    await asyncio.sleep(0.2)
        assert store.stats.queue.retries > 0
        assert await store.count() == len(sent) == 3000
        assert [c.call_id for c in await store.query()] == [c.call_id for c in sent]


async def test_retention_drops_old_partitions_while_writers_run(pg_dsn: str) -> None:
    """max_age drops whole days' partitions (no DELETE) while a writer keeps adding today's
    calls: the old days go, every new call stays, nothing fails."""
    now = datetime.now(UTC).replace(microsecond=0)
    old = [make_call(i, timestamp=now - timedelta(days=10 - i % 5)) for i in range(500)]
    async with PostgresStore(pg_dsn, max_age="3d", retention_interval=3600) as store:
        await store.add_many(old)
        await store.flush()
        assert len(await _partitions(pg_dsn)) >= 5 + 4
        written: list[LLMCall] = []
        stop = asyncio.Event()

        async def writer() -> None:
            i = 10_000
            while not stop.is_set():
                batch = [make_call(j, timestamp=now) for j in range(i, i + 100)]
                await store.add_many(batch)
                written.extend(batch)
                i += 100
                await asyncio.sleep(0.01)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        removed = await store.enforce_retention()
        await asyncio.sleep(0.2)
        stop.set()
        await task
        await store.flush()
        assert removed == len(old)
        assert store.retention.dropped_partitions == 5
        assert store.retention.deleted == len(old)
        cutoff = (now - timedelta(days=3)).date()
        assert all(name >= f"calls_{cutoff:%Y%m%d}" for name in await _partitions(pg_dsn))
        assert await store.count() == len(written)
        assert await store.enforce_retention() == 0
        with pytest.MonkeyPatch.context() as patch:  # the dropped days left the rollups too
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary() == summarize(written)


async def test_max_rows_keeps_the_newest(pg_dsn: str) -> None:
    """max_rows drops whole old partitions, then deletes the oldest rest in batches."""
    calls = [make_call(i, timestamp=T0 + timedelta(hours=8 * i)) for i in range(12)]  # 4 days
    async with PostgresStore(pg_dsn, max_rows=5, retention_batch=1) as store:
        await store.add_many(calls)
        await store.flush()
        assert await store.enforce_retention() == 7
        assert await store.query() == calls[-5:]
        assert store.retention.dropped_partitions == 2
        with pytest.MonkeyPatch.context() as patch:  # deleted rows left the rollups too
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary() == summarize(calls[-5:])
            assert await store.timeseries(bucket="1d") == timeseries(calls[-5:], "1d")


async def test_rollups_count_a_batch_with_stored_calls_once(pg_dsn: str) -> None:
    """A batch holding calls stored before takes the staging merge: the rollups count only the
    calls it stored (what the merge returned), never a duplicate."""
    calls = [make_call(i, timestamp=T0 + timedelta(minutes=7 * i)) for i in range(40)]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls[:25])
        await store.flush()
        await store.add_many([*calls[10:], *calls[:5]])  # 20 stored before, 15 new
        await store.flush()
        assert store.duplicates == 20
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary(by="route") == summarize(calls, "route")
            assert await store.timeseries(bucket="1h") == timeseries(calls, "1h")


async def test_a_long_window_reads_its_halves_at_once_in_one_snapshot(pg_dsn: str) -> None:
    """A window of 6 hours or more is read from the rollups as two halves at once, the second on
    another pool connection in the first one's snapshot (``pg_export_snapshot``): the answers
    are the calls' (and a one-connection store's, which reads the halves in turn), and a call
    committed while the second connection joins is in neither half (it would be in the second
    half had that half taken a snapshot of its own)."""
    calls = [make_call(i, timestamp=T0 + timedelta(minutes=7 * i)) for i in range(400)]  # 46 h
    window = {"since": T0, "until": T0 + timedelta(hours=48)}
    late = make_call(1000, timestamp=T0 + timedelta(hours=40))  # in the second half
    joined: list[str] = []
    begin = _Snapshot.begin.__func__  # type: ignore[attr-defined]

    async def begin_late(cls: Any, store: Any, stack: Any, exported: str | None = None) -> Any:
        if exported is not None:
            joined.append(exported)
            async with PostgresStore(pg_dsn) as writer:
                await writer.add(late)
        return await begin(cls, store, stack, exported)

    async with PostgresStore(pg_dsn) as store, PostgresStore(pg_dsn, pool_size=1) as alone:
        await store.add_many(calls)
        await store.flush()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_base, "EXACT_LIMIT", 3)
            expected = timeseries(calls, "1h", "provider")
            assert await alone.timeseries(bucket="1h", by="provider", **window) == expected
            assert not joined  # a pool of one: no second connection, no waiting for one
            patch.setattr(_Snapshot, "begin", classmethod(begin_late))
            assert await store.timeseries(bucket="1h", by="provider", **window) == expected
            assert len(joined) == 1
            patch.setattr(_Snapshot, "begin", classmethod(begin))
            assert await store.summary(**window) == summarize([*calls, late])
            assert await alone.summary(**window) == summarize([*calls, late])


async def test_rollup_rows_do_not_depend_on_how_calls_were_batched(pg_dsn: str) -> None:
    """The writer sums each batch per level, period and group before the server adds it to the
    stored rows: calls stored in batches of 7 (each merged into rows earlier batches made, then
    the oldest taken away by retention's deletes) leave the same rollup rows, pair for pair, as
    the calls kept stored in one batch in another schema."""
    calls = [
        make_call(
            i,
            timestamp=T0 + timedelta(minutes=(i * 37) % 600, seconds=i),
            duration_ms=None if i % 11 == 0 else 50.0 + i * 13.7,
            ttft_ms=None if i % 6 == 0 else 5.0 + i % 9,
            cost_usd=None if i % 13 == 0 else 0.0001 * (i % 17) + 1e-9 * i,
        )
        for i in range(120)
    ]
    kept = sorted(calls, key=lambda call: call.timestamp)[-80:]
    select = "SELECT * FROM rollups ORDER BY width_s, start_ns, gid"
    async with PostgresStore(pg_dsn, max_rows=80, retention_batch=15) as store:
        for start in range(0, len(calls), 7):
            await store.add_many(calls[start : start + 7])
            await store.flush()
        assert await store.enforce_retention() == 40  # taken away: sign -1, rows at 0 go
        conn = await asyncpg.connect(pg_dsn)
        try:
            batched = await conn.fetch(select)
        finally:
            await conn.close()
    async with schema_dsn() as other, PostgresStore(other) as store:
        await store.add_many(kept)
        await store.flush()
        conn = await asyncpg.connect(other)
        try:
            assert await conn.fetch(select) == batched
        finally:
            await conn.close()
    assert len(batched) > 3 * 10  # several periods of every level, several groups


def test_open_store_takes_postgres_urls() -> None:
    """postgresql:// and postgres:// URLs make a PostgresStore; store options are taken out of
    the query, the driver's stay in the DSN."""
    store = open_store(
        "postgresql://u:pw@db.example:5433/calls?pool_size=8&max_age=7d&sslmode=require"
    )
    assert isinstance(store, PostgresStore)
    assert store.pool_size == 8
    assert store.retention.max_age == timedelta(days=7)
    assert store.dsn == "postgresql://u:pw@db.example:5433/calls?sslmode=require"
    assert "pw" not in repr(store)
    assert isinstance(open_store("postgres://localhost/db"), PostgresStore)


async def test_reprice_writes_new_costs(pg_dsn: str) -> None:
    """reprice() keeps table.cost(call) and the table's version for the calls that pass the
    filters, page by page; a second run changes nothing."""
    calls = [make_call(i, model="gpt-4o", request_model=None, cost_usd=0.5) for i in range(5000)]
    table = PriceTable.default().with_overrides(
        {"gpt-4o": {"input_per_million": 10, "output_per_million": 40}}
    )
    until = T0 + timedelta(seconds=3000)
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls)
        await store.flush()
        assert await store.reprice(table, until=until) == 3000
        got = await store.query()
        assert got[:3000] == [
            c.model_copy(update={"cost_usd": table.cost(c), "price_version": table.version})
            for c in calls[:3000]
        ]
        assert got[3000:] == calls[3000:]
        assert await store.reprice(table, until=until) == 0


async def test_closing_leaves_no_connection_behind(pg_dsn: str) -> None:
    """After aclose() every connection (the writer's and the pool's) is closed: collecting
    garbage finds no unclosed connection or transport."""
    async with PostgresStore(pg_dsn) as store:
        await store.add(make_call(1))
        await store.flush()
        assert await store.count() == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_days_of_a_batch_of_rows() -> None:
    """The partitions a batch needs: one day found from its bounds, several read call by call."""
    from asynctelemetry._rows import row_of
    from asynctelemetry._stores.postgres.schema import days_of

    day = [row_of(make_call(i, timestamp=T0 + timedelta(minutes=i)).__dict__) for i in range(50)]
    spread = [make_call(i, timestamp=T0 + timedelta(days=3 * (i % 3))) for i in range(50)]
    assert days_of([]) == set()
    assert days_of(day) == {T0.date()}
    expected = {(T0 + timedelta(days=d)).date() for d in (0, 3, 6)}
    assert days_of([row_of(c.__dict__) for c in spread]) == expected


async def test_a_password_in_the_query_is_masked_everywhere(pg_dsn: str) -> None:
    """``?password=``/``?sslpassword=`` connect (trust auth ignores them) and appear in no
    repr, ConfigError, StoreError or traceback: the user-info form was the only one masked."""
    import traceback

    secrets = "password=hunter2&sslpassword=hunter3"
    store = open_store(f"{pg_dsn}&{secrets}")
    async with store:
        await store.add(make_call(0))
        await store.flush()
        assert await store.count() == 1
        assert "hunter" not in repr(store)
    assert "hunter" not in repr(store)
    with pytest.raises(ValueError) as bad:
        open_store(f"{pg_dsn}&{secrets}&pool_size=0")
    assert "pool_size" in str(bad.value) and "hunter" not in str(bad.value)
    down = PostgresStore(f"postgresql://u@127.0.0.1:{_closed_port()}/x?{secrets}")
    with pytest.raises(StoreError, match="cannot connect") as info:
        await down.open()
    await down.aclose()
    shown = "".join(traceback.format_exception(info.value))
    assert "password=***" in shown and "hunter" not in shown


@pytest.mark.parametrize("bound", [{"max_age": "3d"}, {"max_rows": 1200}])
async def test_retention_passes_while_late_calls_arrive_for_the_day_dropped(
    pg_dsn: str, bound: dict[str, Any]
) -> None:
    """Retention passes run while every batch mixes today's calls with late calls for the day
    being dropped (#23): no batch is given up, every call of the kept window (today's, the
    newest) is stored, and the rollups count exactly what the table holds."""
    now = datetime.now(UTC).replace(microsecond=0)
    stale = now - timedelta(days=5)
    fresh: list[LLMCall] = []
    async with PostgresStore(
        pg_dsn, retention_interval=3600, flush_interval=0.002, batch_size=100, **bound
    ) as store:

        async def writer() -> None:
            for i in range(0, 2400, 100):
                batch = [
                    make_call(j, timestamp=(stale if j % 2 else now) + timedelta(microseconds=j))
                    for j in range(i, i + 100)
                ]
                fresh.extend(call for call in batch if call.timestamp >= now)
                await store.add_many(batch)
                await asyncio.sleep(0.003)
            while store.pending:  # flush() raises while a batch waits for its day again
                await asyncio.sleep(0.01)

        task = asyncio.create_task(writer())
        while not task.done():
            await store.enforce_retention()
            await asyncio.sleep(0.03)
        await task
        await store.enforce_retention()  # the last late calls go too
        assert store.stats.queue is not None and store.stats.queue.dropped == 0
        kept = await store.query()
        assert kept == fresh
        with pytest.MonkeyPatch.context() as patch:  # the rollups count what the table holds
            patch.setattr(_base, "EXACT_LIMIT", 3)
            assert await store.summary() == summarize(kept)
            assert await store.timeseries(bucket="1d") == timeseries(kept, "1d")


async def test_version_7_database_gets_the_page_indexes(pg_dsn: str) -> None:
    """A database of schema version 7 (no indexes on cost, latency or tokens) is
    migrated on open: every partition gets them, and pages read its calls in order."""
    calls = [make_call(i, user_id=f"u{i % 2}") for i in range(6)]
    async with PostgresStore(pg_dsn) as store:
        await store.add_many(calls)
    conn = await asyncpg.connect(pg_dsn)
    try:  # back to version 7: no page indexes
        for name in ("calls_cost_id", "calls_latency_id", "calls_tokens_id"):
            await conn.execute(f"DROP INDEX {name}")
        await conn.execute("UPDATE asynctelemetry_schema SET version = 7")
        async with PostgresStore(pg_dsn) as store:
            page = await store.page(sort="cost", descending=False, limit=10)
            assert [c.call_id for c in page.calls] == [
                c.call_id for c in sorted(calls, key=lambda c: (c.cost_usd, c.call_id))
            ]
            assert [c.call_id for c in (await store.page(search="u1")).calls] == [
                "call-000005",
                "call-000003",
                "call-000001",
            ]
        assert await conn.fetch("SELECT version FROM asynctelemetry_schema") == [(SCHEMA_VERSION,)]
        for column in ("(cost_usd, id)", "(duration_ms, id)"):
            indexed = {
                row[0]
                for row in await conn.fetch(
                    "SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexdef LIKE $1",
                    f"%{column}%",
                )
            }
            assert indexed == {"calls", *await _partitions(pg_dsn)}, column
    finally:
        await conn.close()
