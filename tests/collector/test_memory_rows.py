"""MemoryStore keeps compact rows: what the collector stores reads back equal, field by field."""

from __future__ import annotations

import sys
from datetime import timedelta

from asynctelemetry import AsyncCollector, LLMCall, MemoryStore
from tests.conftest import T0

from .helpers import export, request_for
from .test_convert import varied_calls


def _with_attributes(i: int) -> LLMCall:
    return LLMCall.model_validate(
        {
            "call_id": f"c-{i}",
            "timestamp": T0 + timedelta(seconds=i),
            "model": "gpt-4o",
            "attributes": {"app.s": f"v{i}", "app.i": i, "app.f": i / 4, "app.b": i % 2 == 0},
        }
    )


async def test_rows_read_back_equal_records() -> None:
    """Every field and attribute comes back equal; the records are LLMCalls again."""
    calls = [*varied_calls(), *(_with_attributes(i) for i in range(5))]
    store = MemoryStore(capacity=100)
    await store.add_many(calls)
    await store.add(_with_attributes(99))
    back = await store.query()
    expected = sorted([*calls, _with_attributes(99)], key=lambda c: c.timestamp)
    assert [c.model_dump() for c in back] == [c.model_dump() for c in expected]
    assert all(isinstance(c, LLMCall) and c.attributes is not None for c in back)
    assert back == expected


async def test_rows_are_smaller_than_records() -> None:
    """A stored row costs less than half of the record it came from (ring-buffer memory)."""
    call = _with_attributes(1)
    store = MemoryStore(capacity=10)
    await store.add(call)
    row = store._rows[0]
    record = sys.getsizeof(call) + sys.getsizeof(call.__dict__) + sys.getsizeof(call.attributes)
    assert sys.getsizeof(row) * 2 < record


async def test_collector_into_memory_store_round_trip() -> None:
    """Calls exported to the collector read back from its MemoryStore equal to the originals."""
    originals = [c for c in varied_calls() if c.service_name is not None]
    store = MemoryStore(capacity=100)
    async with AsyncCollector(store, port=0, price_table=None) as collector:
        await export(collector.endpoint, request_for(originals))
        await collector.flush()
    back = {c.call_id: c.model_dump(exclude={"source"}) for c in await store.query()}
    assert back == {c.call_id: c.model_dump(exclude={"source"}) for c in originals}


async def test_tracer_view_iterates_and_clears() -> None:
    """The records view the tracer reads (``spans``, ``clear_spans``) iterates and clears."""
    store = MemoryStore(capacity=10)
    await store.add_many([_with_attributes(i) for i in range(3)])
    assert [c.call_id for c in store.snapshot()] == ["c-0", "c-1", "c-2"]
    store.clear()
    assert len(store) == 0 and await store.query() == []
