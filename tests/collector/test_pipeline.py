"""The collector with real clients and peers: the OTel SDK exporter in another process, a slow
store (backpressure), and forwarding to an upstream collector."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import AsyncCollector, ConfigError, ExportError, LLMCall, MemoryStore
from asynctelemetry._batching import RetryPolicy
from asynctelemetry._collector._forward import Forwarder
from tests.conftest import make_call

from .helpers import export, request_for

if TYPE_CHECKING:
    from collections.abc import Sequence

# Runs in a child process: the OTel SDK, BatchSpanProcessor and the gRPC OTLPSpanExporter, as an
# instrumented application would. Spans carry GenAI attributes and a request_id per span.
SDK_APP = textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-app"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=30),
            max_export_batch_size=batch,
            schedule_delay_millis=20,
        )
    )
    tracer = provider.get_tracer("app")
    for i in range(count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o")
            span.set_attribute("gen_ai.usage.input_tokens", 100 + i)
            span.set_attribute("gen_ai.usage.output_tokens", 10)
            span.set_attribute("request_id", f"r-{i}")
        with tracer.start_as_current_span("GET /health"):
            pass
    ok = provider.force_flush(60_000)
    provider.shutdown()
    print("flushed" if ok else "flush timed out")
    """
)


async def run_sdk_app(endpoint: str, count: int, batch: int) -> str:
    """Run the SDK application in a child process; its stdout (stderr on failure)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SDK_APP,
        endpoint,
        str(count),
        str(batch),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 50)
    assert process.returncode == 0, err.decode()
    return out.decode() + err.decode()


async def test_sdk_exporter_in_another_process() -> None:
    """The real OTLPSpanExporter in a child process: every LLM span stored, others ignored."""
    store = MemoryStore(10_000)
    async with AsyncCollector(store, port=0) as collector:
        output = await run_sdk_app(f"http://{collector.endpoint}", 300, 64)
        await collector.flush()
    assert "flushed" in output
    calls = await store.query()
    assert sorted(c.call_id for c in calls) == sorted(f"r-{i}" for i in range(300))
    assert {c.service_name for c in calls} == {"sdk-app"}
    assert sum(c.input_tokens or 0 for c in calls) == sum(100 + i for i in range(300))
    assert collector.stats.ignored_spans == 300


class SlowStore(MemoryStore):
    """A store that takes 0.25 s per write: the collector's queue fills and must push back."""

    #: It writes the way a store doing I/O does (awaited): no synchronous fast path.
    emit_nowait = None

    async def add_many(self, calls: Sequence[LLMCall]) -> None:
        await asyncio.sleep(0.25)
        await super().add_many(calls)


async def test_backpressure_slow_store_loses_nothing() -> None:
    """With a slow store Export answers UNAVAILABLE + RetryInfo; the SDK retries; all stored."""
    store = SlowStore(10_000)
    collector = AsyncCollector(
        store, port=0, max_queue=60, backpressure_timeout=0.05, retry_delay=0.2
    )
    async with collector:
        output = await run_sdk_app(f"http://{collector.endpoint}", 400, 50)
        await collector.flush()
    assert "flushed" in output
    assert collector.stats.refused_requests > 0  # backpressure did happen
    ids = [c.call_id for c in await store.query()]
    assert sorted(ids) == sorted(f"r-{i}" for i in range(400))  # nothing lost, no duplicates


async def test_forwarding_to_an_upstream_collector() -> None:
    """Accepted requests reach the upstream collector unchanged (every call, same fields)."""
    upstream_store = MemoryStore()
    local_store = MemoryStore()
    calls = [make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}") for i in range(30)]
    async with AsyncCollector(upstream_store, port=0) as upstream:
        async with AsyncCollector(
            local_store, port=0, forward_to=f"http://{upstream.endpoint}"
        ) as local:
            for chunk in range(3):
                await export(local.endpoint, request_for(calls[chunk * 10 : chunk * 10 + 10]))
        await upstream.flush()
    assert local.stats.forward is not None
    assert local.stats.forward.delivered == 3
    assert [c.model_dump() for c in await upstream_store.query()] == [
        c.model_dump() for c in await local_store.query()
    ]
    assert len(upstream_store) == 30


async def test_forwarder_retries_until_the_upstream_is_up() -> None:
    """Requests queued while the upstream is down are delivered once it listens."""
    upstream_store = MemoryStore()
    upstream = AsyncCollector(upstream_store, port=0)
    await upstream.start()
    port = upstream.port
    await upstream.stop()  # the port is free again: nothing listens there now

    forwarder = Forwarder(
        f"http://127.0.0.1:{port}", retry=RetryPolicy(initial=0.05, maximum=0.2, max_attempts=None)
    )
    forwarder.start()
    forwarder.put(request_for([make_call(1)]).SerializeToString())
    await asyncio.sleep(0.3)
    assert forwarder.stats.retries >= 1 and forwarder.stats.delivered == 0
    async with AsyncCollector(upstream_store, port=port) as revived:
        async with asyncio.timeout(10):
            while forwarder.stats.delivered == 0:  # flush() would raise the last retry's error
                await asyncio.sleep(0.02)
        await revived.flush()
    await forwarder.aclose()
    assert forwarder.stats.delivered == 1
    assert len(upstream_store) == 1


async def test_forward_queue_drops_oldest_when_full() -> None:
    """The forward queue is bounded: past max_queue the oldest request is dropped and counted."""
    forwarder = Forwarder("http://127.0.0.1:9", max_queue=3, retry=RetryPolicy(max_attempts=1))
    forwarder.start()
    for i in range(10):
        forwarder.put(bytes([i]))
    assert forwarder.stats.dropped_overflow >= 6
    await forwarder.aclose(timeout=0.1)


async def test_forwarder_does_not_retry_permanent_errors() -> None:
    """An upstream that refuses the request as invalid is not retried; the drop is counted."""
    async with AsyncCollector(MemoryStore(), port=0) as upstream:
        forwarder = Forwarder(f"http://{upstream.endpoint}")
        forwarder.start()
        forwarder.put(b"\xff\xff not protobuf")
        with pytest.raises(ExportError, match="INVALID_ARGUMENT"):
            await forwarder.flush(timeout=10)  # flush says what was given up on
        await forwarder.aclose()
    assert (forwarder.stats.dropped_failed, forwarder.stats.retries) == (1, 0)


async def test_forward_headers_authenticate_to_the_upstream() -> None:
    """An upstream that requires a token accepts forwarded requests that carry it (header keys
    are lowercased for gRPC); without it every forwarded request is refused and counted."""
    upstream_store = MemoryStore()
    calls = [make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}") for i in range(5)]
    async with AsyncCollector(upstream_store, port=0, auth_token="up") as upstream:
        async with AsyncCollector(
            MemoryStore(),
            port=0,
            forward_to=f"http://{upstream.endpoint}",
            forward_headers={"Authorization": "Bearer up"},
        ) as local:
            await export(local.endpoint, request_for(calls))
        async with AsyncCollector(
            MemoryStore(), port=0, forward_to=f"http://{upstream.endpoint}"
        ) as bare:
            await export(bare.endpoint, request_for(calls))
        await upstream.flush()
    assert local.stats.forward is not None and local.stats.forward.delivered == 1
    assert bare.stats.forward is not None and bare.stats.forward.dropped_failed == 1
    assert len(upstream_store) == 5
    assert upstream.stats.unauthenticated == 1
    with pytest.raises(ConfigError, match="forward_to"):
        AsyncCollector(MemoryStore(), forward_headers={"authorization": "Bearer x"})
