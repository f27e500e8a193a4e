"""The exporter and our own AsyncCollector: a call comes back equal, field by field."""

from __future__ import annotations

from asynctelemetry import AsyncCollector, MemoryStore
from asynctelemetry._export import OTLPGrpcExporter
from tests.conftest import make_call


async def test_lossless_round_trip_through_async_collector() -> None:
    """Every field except ``source`` survives OTLP/gRPC export and collection."""
    calls = [
        make_call(
            i,
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            parent_span_id=f"{i + 7:016x}" if i % 2 else None,
            request_model="gpt-4o" if i % 3 == 0 else None,
            model="gpt-4o-2024-08-06" if i % 3 == 0 else make_call(i).model,
            service_name="billing" if i % 4 == 0 else "asynctelemetry",
            route_name="r1",
            is_streaming=bool(i % 2),
            status_code=200,
            error_type="RateLimitError" if i % 10 == 9 else None,
            cached_input_tokens=i,
            cache_creation_tokens=1,
            reasoning_tokens=2,
            total_tokens=500 + i,
            cache_hit=("exact", "semantic", "miss")[i % 3],
            tool_calls=i % 3,
            routing_strategy="cost",
            routing_reason="cheapest",
            price_version="v1",
            attributes={"team": "search", "retries": i % 2},
        )
        for i in range(60)
    ]
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        async with OTLPGrpcExporter(f"http://{collector.endpoint}", flush_interval=0.01) as exp:
            await exp.emit(calls)
            await exp.flush(timeout=10)
        await collector.flush()
    got = {c.call_id: c for c in await store.query()}
    assert len(got) == len(calls)
    for call in calls:
        back = got[call.call_id].model_dump(exclude={"source"})
        assert back == call.model_dump(exclude={"source"}), call.call_id
