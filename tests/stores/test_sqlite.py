"""SQLiteStore against real files: round trips, MemoryStore parity, backpressure, lifetime."""

from __future__ import annotations

import asyncio
import gc
import random
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import (
    CallStore,
    ConfigError,
    LLMCall,
    MemoryStore,
    Sink,
    SQLiteStore,
    StoreClosedError,
)
from asynctelemetry._stores import _rollup
from tests.conftest import T0, make_call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open store on a fresh file."""
    async with SQLiteStore(tmp_path / "calls.db", flush_interval=0.01) as s:
        yield s


def rich_call() -> LLMCall:
    """A call with every field set, awkward floats and every attribute type."""
    return LLMCall(
        call_id="rich-1",
        timestamp=datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone(timedelta(hours=2))),
        model="gpt-4o-2024-08-06",
        request_model="gpt-4o",
        provider="openai",
        operation="stream",
        service_name="svc ü 雪",
        source="collector",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id="00f067aa0ba902b7",
        session_id="s-1",
        route_name="fast",
        is_streaming=True,
        status="error",
        status_code=429,
        error_type="RateLimitError",
        input_tokens=2**53,
        output_tokens=95,
        total_tokens=907,
        cached_input_tokens=512,
        cache_creation_tokens=7,
        reasoning_tokens=3,
        duration_ms=0.1 + 0.2,
        ttft_ms=1e-300,
        cache_hit="miss",
        tool_calls=2,
        routing_strategy="cost",
        routing_reason="cheapest",
        cost_usd=1.0000000000000002,
        price_version="genai-prices 0.0.30",
        attributes={"s": "x\ud800y", "i": -(2**62), "f": 1.0, "b": False, "t": True, "z": 0},
    )


def sparse_call() -> LLMCall:
    """A call whose zeros and Nones must stay apart: 0 vs None, False vs None, 0.0 vs None."""
    return LLMCall(
        call_id="sparse-1",
        timestamp=T0,
        model="m",
        is_streaming=False,
        input_tokens=0,
        output_tokens=None,
        duration_ms=0.0,
        cost_usd=0.0,
        tool_calls=0,
    )


def typed(call: LLMCall) -> dict[str, Any]:
    """Every field with its type, attributes item by item, so 1 == 1.0 == True cannot hide."""
    out: dict[str, Any] = {k: (type(v), v) for k, v in call.__dict__.items() if k != "attributes"}
    out["attributes"] = {k: (type(v), v) for k, v in call.attributes.items()}
    out["tz"] = call.timestamp.utcoffset()
    return out


async def test_reopen_shows_every_flushed_call_identical_field_by_field(tmp_path: Path) -> None:
    """A flushed call comes back from a reopened file with every field and type unchanged."""
    path = tmp_path / "calls.db"
    calls = [sparse_call(), make_call(7), rich_call()]  # oldest first
    async with SQLiteStore(path) as store:
        await store.add_many(calls)
        await store.flush()
    async with SQLiteStore(path) as store:
        got = await store.query()
    assert [typed(c) for c in got] == [typed(c) for c in calls]
    assert got == calls
    assert got[2].timestamp.tzinfo is UTC
    assert got[0].tpt_ms is None and got[2].tokens_per_sec == calls[2].tokens_per_sec


async def test_aclose_writes_what_was_queued(tmp_path: Path) -> None:
    """Calls added without flush() are written by aclose()."""
    path = tmp_path / "calls.db"
    store = SQLiteStore(path, flush_interval=10.0)
    await store.add_many([make_call(i) for i in range(50)])
    await store.aclose()
    async with SQLiteStore(path) as again:
        assert await again.count() == 50


FILTERS = [
    pytest.param({}, id="none"),
    pytest.param({"model": "gpt-4o"}, id="model"),
    pytest.param({"provider": "anthropic", "status": "ok"}, id="provider+status"),
    pytest.param({"session_id": "s2"}, id="session"),
    pytest.param({"status": "error"}, id="status"),
    pytest.param({"since": T0 + timedelta(seconds=10)}, id="since-inclusive"),
    pytest.param({"until": T0 + timedelta(seconds=10)}, id="until-exclusive"),
    pytest.param(
        {"since": T0 + timedelta(seconds=5), "until": T0 + timedelta(seconds=25)}, id="window"
    ),
    pytest.param({"model": "no-such-model"}, id="nothing"),
]


def parity_calls() -> list[LLMCall]:
    """Calls with timestamp ties, out-of-order inserts, missing figures and unpriced calls."""
    calls = [make_call(i) for i in range(40)]
    calls += [make_call(100 + i, timestamp=T0 + timedelta(seconds=3)) for i in range(5)]
    calls += [
        make_call(200, duration_ms=None, ttft_ms=None, cost_usd=None, route_name="r1"),
        make_call(201, output_tokens=0, route_name="r1", provider=None, session_id=None),
        make_call(202, ttft_ms=500.0, duration_ms=400.0, route_name="r2"),
        make_call(203, timestamp=T0 - timedelta(days=1), cost_usd=None),
    ]
    return calls


@pytest.fixture
async def pair(store: SQLiteStore) -> tuple[SQLiteStore, MemoryStore]:
    """The same calls in a SQLiteStore and a MemoryStore."""
    memory = MemoryStore(capacity=10_000)
    calls = parity_calls()
    await store.add_many(calls)
    await memory.add_many(calls)
    await store.flush()
    return store, memory


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("limit", [None, 0, 3])
async def test_query_and_count_match_memory_store(
    pair: tuple[SQLiteStore, MemoryStore],
    filters: dict[str, Any],
    newest_first: bool,
    limit: int | None,
) -> None:
    """query() and count() return what MemoryStore returns: same calls, same order, ties too."""
    store, memory = pair
    got = await store.query(**filters, newest_first=newest_first, limit=limit)
    want = await memory.query(**filters, newest_first=newest_first, limit=limit)
    assert [c.call_id for c in got] == [c.call_id for c in want]
    assert got == want
    assert await store.count(**filters) == await memory.count(**filters)


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("by", ["model", "provider", "session", "route"])
async def test_summary_equals_memory_store(
    pair: tuple[SQLiteStore, MemoryStore], by: Any, filters: dict[str, Any]
) -> None:
    """summary() rows equal summarize() on the same calls, for every grouping and filter."""
    store, memory = pair
    assert await store.summary(by=by, **filters) == await memory.summary(by=by, **filters)


async def test_summary_of_large_groups_equals_memory_store(store: SQLiteStore) -> None:
    """Nearest-rank percentiles and fsum costs agree for groups of many sizes (1 to 3000)."""
    memory = MemoryStore(capacity=100_000)
    calls: list[LLMCall] = []
    sizes = [1, 2, 3, 19, 20, 21, 99, 100, 101, 3000]
    for g, size in enumerate(sizes):
        for _i in range(size):
            n = len(calls)
            calls.append(
                make_call(
                    n,
                    model=f"m{g}",
                    duration_ms=float((n * 7919) % 1013) + 0.1,
                    ttft_ms=None if n % 5 == 0 else float(n % 37),
                    output_tokens=n % 40,
                    cost_usd=[1e16, 1.0, 1e-16, 0.1][n % 4] if n % 6 else None,
                )
            )
    await store.add_many(calls)
    await memory.add_many(calls)
    await store.flush()
    got = await store.summary(by="model")
    assert got == await memory.summary(by="model")
    assert len(got) == len(sizes)


async def test_duplicate_call_id_is_stored_once(store: SQLiteStore) -> None:
    """The same call delivered twice (a retrying exporter) is one row; duplicates are counted."""
    call = make_call(1)
    await store.add(call)
    await store.add_many([call, make_call(2), call])
    await store.flush()
    assert await store.count() == 2
    assert store.duplicates == 2


async def test_add_waits_when_max_queue_is_reached(tmp_path: Path) -> None:
    """Backpressure: with the file locked, add() waits at max_queue; then all is written."""
    path = tmp_path / "calls.db"
    async with SQLiteStore(path, max_queue=10, batch_size=5, busy_timeout=0.01) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        adding = asyncio.create_task(store.add_many([make_call(i) for i in range(30)]))
        await asyncio.sleep(0.3)
        assert not adding.done()
        assert store.pending == 10
        assert store.stats.queue.retries > 0
        blocker.execute("COMMIT")
        blocker.close()
        await asyncio.wait_for(adding, 10)
        await store.flush()
        assert await store.count() == 30
        assert store.stats.queue.dropped_overflow == 0


async def test_unopened_store_opens_on_first_use(tmp_path: Path) -> None:
    """add() on a store never opened opens it; flush() on one never used does nothing."""
    store = SQLiteStore(tmp_path / "calls.db")
    await store.flush()
    assert repr(store).endswith("unopened, pending=0)")
    await store.add(make_call(1))
    await store.flush()
    assert await store.count() == 1
    await store.aclose()


async def test_closed_store_refuses_use_and_aclose_is_idempotent(tmp_path: Path) -> None:
    """After aclose(): use and reopening raise StoreClosedError; aclose() is idempotent."""
    store = SQLiteStore(tmp_path / "calls.db")
    async with store:
        await store.add(make_call(1))
    await store.aclose()
    for attempt in (store.add(make_call(2)), store.query(), store.count(), store.open()):
        with pytest.raises(StoreClosedError):
            await attempt
    with pytest.raises(StoreClosedError):
        async for _ in store.replay():
            pass
    with pytest.raises(StoreClosedError):
        async with store:
            pass


async def test_garbage_collected_open_store_warns(tmp_path: Path) -> None:
    """A store dropped while open warns with ResourceWarning."""
    store = SQLiteStore(tmp_path / "calls.db")
    await store.open()
    connections = (store._writer, store._reader)
    with pytest.warns(ResourceWarning, match="without aclose"):
        del store
        gc.collect()
    for conn in connections:
        assert conn is not None
        await conn.close()


async def test_store_is_a_call_store_and_a_sink(store: SQLiteStore) -> None:
    """SQLiteStore satisfies CallStore and Sink; emit() stores like add_many()."""
    assert isinstance(store, CallStore)
    assert isinstance(store, Sink)
    await store.emit([make_call(1), make_call(2)])
    await store.flush()
    assert [c.call_id for c in await store.query()] == ["call-000001", "call-000002"]


async def test_row_sqlite_cannot_take_is_rejected_and_counted(store: SQLiteStore) -> None:
    """A call SQLite cannot encode (lone surrogate) is counted and logged; its batch still lands."""
    bad = make_call(2, session_id="s\ud800")
    await store.add_many([make_call(1), bad, make_call(3)])
    await store.flush()
    assert [c.call_id for c in await store.query()] == ["call-000001", "call-000003"]
    assert store.rejected == 1


@pytest.mark.parametrize("size", [1, 127, 1000, 1025])
async def test_batches_of_any_size_land_many_rows_per_statement(tmp_path: Path, size: int) -> None:
    """A batch is inserted many rows per statement: every size lands whole,
    in order, with records and collector rows mixed; a bad row among them still rejects alone,
    and the writer's page cache is the one asked for."""
    from asynctelemetry._rows import row_of
    from asynctelemetry._stores.sqlite.writer import run

    calls = [make_call(i) for i in range(size)]
    mixed: list[Any] = [row_of(c.__dict__) if i % 2 else c for i, c in enumerate(calls)]
    async with SQLiteStore(tmp_path / "many.db", batch_size=size, cache_mib=3) as store:
        await store.add_many(mixed)
        await store.add_many([make_call(size, session_id="s\ud800"), make_call(size + 1)])
        await store.flush()
        stored = await store.query(limit=None)
        assert stored == [*calls, make_call(size + 1)]
        assert (store.rejected, store.duplicates) == (1, 0)
        assert store._writer is not None
        pages = await run(store._writer, lambda c: c.execute("PRAGMA cache_size").fetchone())
        assert pages == (-3 * 1024,)


async def test_bad_arguments_are_config_errors(tmp_path: Path, store: SQLiteStore) -> None:
    """Bad constructor arguments raise ConfigError; bad limit/by raise ValueError."""
    for kwargs in (
        {"batch_size": 0},
        {"max_queue": 0},
        {"durability": "off"},
        {"flush_interval": -1},
        {"cache_mib": 0},
    ):
        with pytest.raises(ConfigError):
            SQLiteStore(tmp_path / "x.db", **kwargs)
    with pytest.raises(ValueError, match="limit"):
        await store.query(limit=-1)
    with pytest.raises(ValueError, match="by must be"):
        await store.summary(by="colour")  # type: ignore[arg-type]


async def test_memory_database_and_full_durability(tmp_path: Path) -> None:
    """':memory:' works on one connection; durability='full' sets synchronous=FULL (2)."""
    async with SQLiteStore(":memory:") as store:
        await store.add(make_call(1))
        await store.flush()
        assert await store.count() == 1
    async with SQLiteStore(tmp_path / "f.db", durability="full") as store:
        assert store._writer is not None
        rows = await store._writer.execute_fetchall("PRAGMA synchronous")
        assert list(rows) == [(2,)]
        mode = await store._writer.execute_fetchall("PRAGMA journal_mode")
        assert list(mode) == [("wal",)]


async def test_naive_filter_datetimes_are_utc(store: SQLiteStore) -> None:
    """A naive since/until is taken as UTC, like a naive LLMCall timestamp."""
    await store.add_many([make_call(i) for i in range(5)])
    await store.flush()
    naive = (T0 + timedelta(seconds=2)).replace(tzinfo=None)
    assert await store.count(since=naive) == 3
    assert len(await store.query(until=naive)) == 2


async def test_a_second_aclose_waits_for_the_first(tmp_path: Path) -> None:
    """aclose() while another aclose() is writing the queue returns only once the file is
    written and closed: a reader opening the file then finds every call."""
    path = tmp_path / "closing.db"
    store = SQLiteStore(path, batch_size=100)
    await store.open()
    await store.add_many([make_call(i) for i in range(5000)])
    first = asyncio.create_task(store.aclose())
    await asyncio.sleep(0)  # the first close is under way
    await store.aclose()
    assert first.done()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone() == (5000,)


@pytest.mark.parametrize("capacity", [2.5, "10", True, 0])
def test_memory_store_capacity_must_be_an_int(capacity: object) -> None:
    """A capacity that is not an int >= 1 is a ConfigError (a ValueError), not a TypeError."""
    with pytest.raises(ConfigError, match="capacity must be an int >= 1"):
        MemoryStore(capacity=capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["batch_size", "max_queue", "cache_mib", "retention_batch"])
def test_sqlite_store_int_options_must_be_ints(tmp_path: Path, field: str) -> None:
    """SQLiteStore's count options refuse floats and text with ConfigError."""
    for bad in (1.5, "8"):
        with pytest.raises(ConfigError, match=f"{field} must be an int"):
            SQLiteStore(tmp_path / "x.db", **{field: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_both_stores_read_filters_the_same_way(tmp_path: Path, kind: str) -> None:
    """The one filter implementation: a naive since/until is UTC in either store, an aware one
    in any zone is converted, and filters or a limit of the wrong type raise ValueError."""
    calls = [make_call(i) for i in range(10)]  # T0 + i seconds, UTC
    store: MemoryStore | SQLiteStore = (
        MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "filters.db")
    )
    async with store:
        await store.add_many(calls)
        await store.flush()
        naive = (T0 + timedelta(seconds=3)).replace(tzinfo=None)
        assert [c.call_id for c in await store.query(since=naive, limit=2)] == [
            "call-000003",
            "call-000004",
        ]
        plus_two = timezone(timedelta(hours=2))
        until = (T0 + timedelta(seconds=2)).astimezone(plus_two)
        assert await store.count(until=until) == 2
        for bad in ({"since": "2026-01-01"}, {"model": 5}, {"status": ["ok"]}):
            with pytest.raises(ValueError, match="must be a"):
                await store.query(**bad)
        for limit in ("5", -1, True):
            with pytest.raises(ValueError, match="limit must be"):
                await store.query(limit=limit)


async def test_rollups_follow_retention_and_reopen(tmp_path: Path) -> None:
    """Large-window summaries (read from the rollups) equal the raw calls' after retention
    deletes the oldest and after the file is reopened; duplicates never count twice."""
    from asynctelemetry._stores import _base, summarize, timeseries

    calls = [make_call(i, timestamp=T0 + timedelta(seconds=7 * i)) for i in range(300)]
    path = tmp_path / "r.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "EXACT_LIMIT", 10)
        async with SQLiteStore(path, max_rows=200, retention_interval=3600) as store:
            await store.add_many(calls)
            await store.add_many(calls[-30:])  # delivered again: ignored, not rolled up
            await store.flush()
            assert store.duplicates == 30
            assert await store.enforce_retention() == 100
            kept = calls[100:]
            assert await store.summary(by="provider") == summarize(kept, "provider")
            assert await store.timeseries(bucket="5m", by="model") == timeseries(
                kept, "5m", "model"
            )
        async with SQLiteStore(path) as store:
            since = T0 + timedelta(seconds=1234)
            window = [c for c in kept if c.timestamp >= since]
            assert await store.summary(since=since) == summarize(window)
            assert await store.timeseries(bucket="1h", since=since) == timeseries(window, "1h")


def _derived(rng: random.Random, sign: int) -> list[tuple[Any, ...]]:
    """A few random calls as :func:`~asynctelemetry._stores._rollup.derive` makes them, in one
    period and group (``sign=-1``: taken away)."""
    return [
        (
            0, 1, sign, 0, 0, 0, 0, 0, 0,
            rng.choice([None, rng.randint(-3, 30), -(2**31)]),
            rng.randint(0, 8),
            rng.choice([None, 2**31, 4]),
            rng.choice([None, -60, -1074]),
            sign * rng.randint(0, 2**27),
            sign * rng.randint(0, 2**26),
        )
        for _ in range(rng.randint(1, 12))
    ]  # fmt: skip


def _packed(rows: list[tuple[Any, ...]]) -> bytes | None:
    """The packed value of derived rows of one cell, summed by the writer's rule."""
    cells: _rollup.CellMap = {}
    _rollup.add_cells(cells, rows)
    ((cell,),) = [cells.values()]
    return _rollup.cell_row(cell)[7]


def test_packed_values_merge_key_by_key() -> None:
    """SQLite's summing of packed rollup values (a batch's cells, coarser periods, and the
    upsert's merge in place) gives the sums per kind and index of a plain count, with the
    indexes back at zero gone."""
    rng = random.Random(7)
    for _ in range(300):
        batches = [_derived(rng, 1) for _ in range(rng.randint(1, 4))]
        taken = _derived(rng, -1)
        if rng.random() < 0.3:  # one batch's calls taken away again: its indexes back at zero
            taken = [(*r[:2], -r[2], *r[3:13], -r[13], -r[14]) for r in rng.choice(batches)]
        expected: list[dict[int, int]] = [{} for _ in range(_rollup.VALUE_KINDS)]
        for rows in [*batches, taken]:
            parts = _rollup.segments(_packed(rows))
            for kind, counts in enumerate(expected):
                for index, n in zip(parts[2 * kind], parts[2 * kind + 1], strict=True):
                    counts[index] = counts.get(index, 0) + n
        # The batches as finer periods of one coarser one, then the rows taken away merged in.
        cells: _rollup.CellMap = {}
        for i, rows in enumerate(batches):
            _rollup.add_cells(cells, [(i, *row[1:]) for row in rows])
        coarser: _rollup.CellMap = {}
        _rollup.add_coarser(coarser, cells.items(), 10**9)
        (summed,) = coarser.values()
        merged = _rollup.merge_packed(_rollup.cell_row(summed)[7], _packed(taken))
        assert merged == _rollup.pack(expected)
        parts = _rollup.segments(merged)
        assert all(0 not in parts[2 * kind + 1] for kind in range(_rollup.VALUE_KINDS))
