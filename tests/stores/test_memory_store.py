"""MemoryStore: the ring buffer, the shared filter semantics, summaries and replay."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from asynctelemetry import LLMCall, MemoryStore, StoreClosedError
from asynctelemetry._rows import record_of
from asynctelemetry._stores import nearest_rank, percentile
from tests.conftest import T0, make_call


async def test_ring_buffer_drops_oldest_and_counts() -> None:
    """A full store drops its oldest calls and counts them."""
    store = MemoryStore(capacity=10)
    for i in range(15):
        await store.add(make_call(i))
    await store.add_many([make_call(i) for i in range(15, 18)])
    assert len(store) == 10
    assert store.dropped == 8
    assert [c.call_id for c in await store.query()] == [f"call-{i:06d}" for i in range(8, 18)]


@pytest.mark.parametrize(
    "trace_length",
    [pytest.param(1, id="one-call"), pytest.param(5, id="short"), pytest.param(200, id="long")],
)
async def test_lookups_follow_the_ring(trace_length: int) -> None:
    """get and trace see exactly the calls the ring holds: evicted calls are gone from both
    indexes, whatever the trace's length (a trace of one call is its row, short ones are lists,
    long ones deques); the index of a trace never outgrows the ring."""
    store = MemoryStore(capacity=50)
    calls = [
        make_call(i, trace_id=f"t{i // trace_length}", timestamp=T0 + timedelta(seconds=-i))
        for i in range(300)
    ]
    for start in range(0, 300, 7):
        await store.add_many(calls[start : start + 7])
    held = calls[-50:]
    assert await store.get(calls[249].call_id) is None
    assert await store.get(calls[250].call_id) == calls[250]
    for trace_id in {c.trace_id for c in calls}:
        members = [c for c in held if c.trace_id == trace_id]
        assert await store.trace(trace_id) == sorted(members, key=lambda c: c.timestamp)
    indexed = sum(1 if isinstance(m, tuple) else len(m) for m in store._traces.values())
    assert indexed == 50
    await store.add(calls[10])  # an id pushed out may come back
    assert await store.get(calls[10].call_id) == calls[10]
    store.clear()
    assert await store.get(calls[299].call_id) is None and await store.trace("t0") == []


async def test_trace_index_is_built_at_the_first_read_and_follows_the_ring() -> None:
    """The trace index costs nothing until a trace is read; from the first read on it follows
    every addition and eviction, and a cleared store builds it again from what it holds."""
    store = MemoryStore(capacity=6)
    calls = [make_call(i, trace_id=f"t{i % 3}") for i in range(20)]
    await store.add_many(calls[:8])
    assert store._traces is None  # nobody read a trace: the writes kept no index
    for i in range(8, 20):
        held = calls[max(0, i - 6) : i]
        for trace_id in ("t0", "t1", "t2"):
            assert await store.trace(trace_id) == [c for c in held if c.trace_id == trace_id]
        await store.add(calls[i])
    store.clear()
    assert store._traces is None and await store.trace("t0") == []
    await store.add(calls[0])
    assert await store.trace("t0") == [calls[0]]


@pytest.mark.parametrize("sort", ["time", "cost", "latency", "tokens"])
@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
async def test_pages_over_the_ring_follow_the_rule(sort: str, descending: bool) -> None:
    """Pages read over the ring (keys first, records only for the rows on a page) are the
    rule's order over the calls held: a ring that has pushed calls out, keys that tie or are
    unknown, a filter, and calls arriving between two pages (after the cursor: a later page;
    before it: not shown)."""
    from asynctelemetry._stores._pages import sort_key

    def call(i: int) -> LLMCall:
        return make_call(
            i,
            timestamp=T0 + timedelta(seconds=i % 9),
            cost_usd=None if i % 5 == 0 else float(i % 7),
            duration_ms=None if i % 4 == 0 else float(i % 6),
            input_tokens=None if i % 6 == 0 else i % 8,
        )

    def order(calls: list[LLMCall]) -> list[LLMCall]:
        keyed = [(sort_key(c, sort), i, c) for i, c in enumerate(calls) if c.model == "gpt-4o"]
        known = sorted((k for k in keyed if k[0] is not None), key=lambda k: k[:2])
        unknown = [k for k in keyed if k[0] is None]
        if descending:
            known.reverse()
            unknown.reverse()
        return [c for _, _, c in known + unknown]

    store = MemoryStore(capacity=40)
    await store.add_many([call(i) for i in range(70)])  # 30 pushed out
    first = await store.page(sort=sort, descending=descending, limit=4, model="gpt-4o")  # type: ignore[arg-type]
    seen = list(first.calls)
    await store.add_many([call(i) for i in range(70, 75)])  # 5 more pushed out
    after = first.next
    while after is not None:
        page = await store.page(
            sort=sort, descending=descending, after=after, limit=4, model="gpt-4o"
        )  # type: ignore[arg-type]
        seen += page.calls
        after = page.next
    assert seen[:4] == order([call(i) for i in range(30, 70)])[:4]
    rest = order(store.snapshot())  # in the order added: the ties' order
    cursor = rest.index(seen[3]) if seen[3] in rest else None
    if cursor is not None:  # the first page's last call is still held: the rest follow it
        assert seen[4:] == rest[cursor + 1 :]


async def test_a_page_builds_records_only_for_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of a full ring builds the records of the rows it could show, not of the ring:
    the rows' keys order it."""
    from asynctelemetry._stores import _memory

    store = MemoryStore(capacity=5_000)
    await store.add_many([make_call(i) for i in range(6_000)])
    built: list[object] = []
    monkeypatch.setattr(_memory, "_record", lambda row: built.append(row) or record_of(row))
    page = await store.page(sort="cost", limit=10)
    assert len(page.calls) == 10 and page.next is not None
    assert len(built) <= 10 + 1 + _memory._PAGE_CHUNK  # (one more tells a next page exists)
    second = await store.page(sort="cost", limit=10, after=page.next)
    assert not {c.call_id for c in second.calls} & {c.call_id for c in page.calls}


@pytest.mark.parametrize("as_rows", [False, True], ids=["records", "collector-rows"])
async def test_add_many_gives_the_loop_turns(as_rows: bool) -> None:
    """A large add_many keeps its calls in slices, the loop running other tasks between them
    (a collector's request must not hold it for milliseconds); every call is kept, in order,
    whether the batch is records or a collector's rows."""
    from asynctelemetry._rows import Rows, row_of

    store = MemoryStore(capacity=10_000)
    calls = [make_call(i) for i in range(1_003)]
    batch = Rows([row_of(c.__dict__) for c in calls]) if as_rows else calls
    seen: list[int] = []

    async def watch() -> None:
        while len(seen) < 3:
            seen.append(len(store))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)  # the watcher saw the empty store
    await store.add_many(batch)
    await watcher
    assert seen[0] == 0 and 0 < seen[1] < len(calls)
    assert await store.query() == calls
    assert len(store) == len(calls) and store.duplicates == 0


async def test_filters_ordering_and_limit(calls: list[LLMCall]) -> None:
    """Every filter matches exactly; since is inclusive, until exclusive; limit after ordering."""
    store = MemoryStore(capacity=100)
    await store.add_many(list(reversed(calls)))  # insertion order must not matter
    everything = await store.query()
    assert [c.call_id for c in everything] == [c.call_id for c in calls]
    window = await store.query(since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=8))
    assert [c.call_id for c in window] == ["call-000005", "call-000006", "call-000007"]
    assert all(c.model == "gpt-4o" for c in await store.query(model="gpt-4o"))
    assert await store.count(model="gpt-4o") == sum(c.model == "gpt-4o" for c in calls)
    assert await store.count(provider="anthropic", status="error") == sum(
        c.provider == "anthropic" and c.status == "error" for c in calls
    )
    assert await store.count(session_id="s1") == 10
    newest = await store.query(newest_first=True, limit=3)
    assert [c.call_id for c in newest] == ["call-000039", "call-000038", "call-000037"]
    assert await store.query(limit=0) == []
    with pytest.raises(ValueError):
        await store.query(limit=-1)


def test_nearest_rank_percentiles_are_exact() -> None:
    """Nearest rank: p-th percentile is the value at rank ceil(p/100 * n)."""
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 7.0], 50) == 3.0
    assert percentile([3.0, 7.0], 51) == 7.0
    assert percentile([42.0], 1) == 42.0
    assert percentile([], 50) is None
    assert nearest_rank(20, 95) == 19


async def test_summary_totals_and_percentiles(calls: list[LLMCall]) -> None:
    """Summary rows total tokens and costs and give nearest-rank latency percentiles."""
    store = MemoryStore(capacity=100)
    await store.add_many([*calls, make_call(99, model="mystery", cost_usd=None)])
    rows = {row.key: row for row in await store.summary(by="model")}
    gpt = [c for c in calls if c.model == "gpt-4o"]
    row = rows["gpt-4o"]
    assert row.calls == len(gpt)
    assert row.errors == sum(c.status == "error" for c in gpt)
    assert row.input_tokens == sum(c.input_tokens or 0 for c in gpt)
    assert row.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in gpt))
    latencies = sorted(c.duration_ms or 0 for c in gpt)
    assert row.p50_latency_ms == latencies[nearest_rank(len(latencies), 50) - 1]
    assert row.p95_latency_ms == latencies[nearest_rank(len(latencies), 95) - 1]
    assert rows["mystery"].unpriced_calls == 1 and rows["mystery"].cost_usd == 0.0
    by_session = await store.summary(by="session")
    assert sorted(r.key or "" for r in by_session) == ["s0", "s1", "s2", "s3"]
    assert sum(r.calls for r in await store.summary(by="provider", status="ok")) == 36
    with pytest.raises(ValueError):
        await store.summary(by="colour")  # type: ignore[arg-type]


async def test_replay_is_oldest_first_and_paced() -> None:
    """replay yields oldest first; speed keeps the original intervals divided by speed."""
    store = MemoryStore()
    base = [make_call(i, timestamp=T0 + timedelta(milliseconds=100 * i)) for i in range(4)]
    await store.add_many(list(reversed(base)))
    fast = [c.call_id async for c in store.replay()]
    assert fast == [c.call_id for c in base]
    started = time.monotonic()
    paced = [c async for c in store.replay(speed=2.0)]
    elapsed = time.monotonic() - started
    assert len(paced) == 4
    assert 0.14 <= elapsed < 0.6  # 300 ms of original spacing at 2x is 150 ms
    assert [c.call_id async for c in store.replay(model="gpt-4o")] == ["call-000000", "call-000003"]
    with pytest.raises(ValueError):
        [c async for c in store.replay(speed=0)]


async def test_closed_store_refuses_writes() -> None:
    """After aclose, writes raise StoreClosedError; what was kept stays readable."""
    async with MemoryStore() as store:
        await store.add(make_call(1))
    with pytest.raises(StoreClosedError):
        await store.add(make_call(2))
    assert await store.count() == 1
    await store.aclose()  # idempotent
    await asyncio.sleep(0)
