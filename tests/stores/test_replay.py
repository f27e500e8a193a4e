"""Replay: SQLiteStore.replay streams in keyset pages; replay(source, into=...) re-emits copies."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import LLMCall, MemoryStore, Pipeline, SQLiteStore, replay
from asynctelemetry._stores.sqlite import store as _sqlite
from tests.conftest import T0, make_call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A store holding 50 calls, ten of them sharing one timestamp, inserted out of order."""
    calls = [make_call(i) for i in range(40)]
    calls += [make_call(100 + i, timestamp=T0 + timedelta(seconds=20)) for i in range(10)]
    calls.reverse()
    async with SQLiteStore(tmp_path / "calls.db") as s:
        await s.add_many(calls)
        await s.flush()
        yield s


async def test_replay_pages_oldest_first_across_ties(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tiny pages, replay yields every call once, oldest first, ties in insertion order."""
    monkeypatch.setattr(_sqlite, "REPLAY_PAGE", 3)
    got = [c async for c in store.replay()]
    assert got == await store.query()
    assert len({c.call_id for c in got}) == 50
    filtered = [c async for c in store.replay(model="gpt-4o", since=T0 + timedelta(seconds=10))]
    assert filtered == await store.query(model="gpt-4o", since=T0 + timedelta(seconds=10))


async def test_replay_stopped_early_cleans_up(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving a replay mid-stream (a page prefetch in flight) leaves the store usable."""
    monkeypatch.setattr(_sqlite, "REPLAY_PAGE", 4)
    stream = store.replay()
    async for call in stream:
        if call.call_id == "call-000002":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await store.count() == 50


async def test_replay_paced_by_original_intervals(tmp_path: Path) -> None:
    """speed=4 replays calls 0.4 s apart in about 0.1 s each."""
    calls = [make_call(i, timestamp=T0 + timedelta(seconds=0.4 * i)) for i in range(3)]
    async with SQLiteStore(tmp_path / "p.db") as s:
        await s.add_many(calls)
        await s.flush()
        started = time.monotonic()
        got = [c async for c in s.replay(speed=4.0)]
        elapsed = time.monotonic() - started
    assert got == calls
    assert 0.19 <= elapsed < 1.0
    with pytest.raises(ValueError, match="speed"):
        s.replay(speed=0)


async def test_replay_into_another_store_marks_copies(store: SQLiteStore, tmp_path: Path) -> None:
    """replay() copies every call into a store with source='replay' and returns the count."""
    target = MemoryStore(capacity=1000)
    assert await replay(store, into=target, batch_size=7) == 50
    copies = await target.query()
    originals = await store.query()
    assert [c.call_id for c in copies] == [c.call_id for c in originals]
    assert {c.source for c in copies} == {"replay"}
    assert {c.source for c in originals} == {"tracer"}
    assert copies[0].model_copy(update={"source": "tracer"}) == originals[0]
    async with SQLiteStore(tmp_path / "copy.db") as other:
        assert await replay(store, into=other, status="error") == 5
        await other.flush()
        assert await other.count(status="error") == 5 == await other.count()


class ListSink:
    """A sink that keeps batches, as a tracer's pipeline would hand them on."""

    def __init__(self) -> None:
        self.batches: list[list[LLMCall]] = []

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        self.batches.append(list(calls))

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_replay_into_a_pipeline_reaches_its_sinks(store: SQLiteStore) -> None:
    """Any sink (a Pipeline, a tracer's pipeline) takes replayed calls in batches."""
    sink = ListSink()
    assert await replay(store, into=Pipeline([sink]), batch_size=20, provider="openai") == 17
    assert [len(b) for b in sink.batches] == [17]
    assert all(c.source == "replay" and c.provider == "openai" for c in sink.batches[0])


async def test_paced_replay_emits_one_by_one() -> None:
    """With speed set, calls go out one at a time so they arrive on schedule."""
    source = MemoryStore()
    await source.add_many(
        [make_call(i, timestamp=T0 + timedelta(milliseconds=i)) for i in range(5)]
    )
    sink = ListSink()
    assert await replay(source, into=sink, speed=100.0) == 5
    assert [len(b) for b in sink.batches] == [1] * 5
    with pytest.raises(ValueError, match="batch_size"):
        await replay(source, into=sink, batch_size=0)
