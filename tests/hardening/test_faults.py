"""Faults injected into real parts: a failing store, disk full, a locked file, a vanishing endpoint.

Each test checks the promise of the guarantees in ``docs/reliability.md``: what a client was told
was accepted ends up stored, exactly once, once the fault clears.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from asynctelemetry import AsyncCollector, AsyncTracer, LLMCall, MemoryStore, SQLiteStore
from asynctelemetry._batching import RetryPolicy
from asynctelemetry._export import OTLPGrpcExporter
from tests.collector.helpers import export, request_for
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).resolve().parents[2]

#: Holds the write lock of a SQLite file until told to let go (a line on stdin).
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


class FlakyStore(MemoryStore):
    """A MemoryStore whose ``add_many`` raises while ``failing`` is set (a store outage)."""

    #: It writes the way a store doing I/O does (awaited): no synchronous fast path.
    emit_nowait = None

    def __init__(self) -> None:
        super().__init__(100_000)
        self.failing = True
        self.failures = 0

    async def add_many(self, calls: Sequence[LLMCall]) -> None:
        if self.failing:
            self.failures += 1
            raise OSError("the store is down")
        await super().add_many(calls)


def traced(i: int) -> LLMCall:
    """A call with trace and span ids, as a tracer exports it."""
    return make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", service_name="app")


async def send_until_accepted(endpoint: str, calls: list[LLMCall]) -> int:
    """Export ``calls`` as a client that honours retryable refusals; returns how many it got."""
    refusals = 0
    while True:
        try:
            await export(endpoint, request_for(calls))
            return refusals
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            refusals += 1
            await asyncio.sleep(0.02)


async def test_store_exceptions_answer_retryable_and_recover() -> None:
    """``add_many`` raising: Export turns to UNAVAILABLE, and every call lands once it heals."""
    store = FlakyStore()
    calls = [traced(i) for i in range(200)]
    async with AsyncCollector(
        store, port=0, max_queue=40, backpressure_timeout=0.05, retry_delay=0.05
    ) as collector:
        senders = [
            asyncio.create_task(send_until_accepted(collector.endpoint, calls[i : i + 10]))
            for i in range(0, 200, 10)
        ]
        async with asyncio.timeout(10):  # the store's failure must reach the clients
            while collector.stats.refused_requests < 3:
                await asyncio.sleep(0.01)
        assert len(store) == 0 and store.failures >= 1
        store.failing = False
        refusals = await asyncio.wait_for(asyncio.gather(*senders), 20)
        await asyncio.wait_for(collector.flush(), 20)
    assert sum(refusals) >= 3
    stored = sorted(c.call_id for c in await store.query())
    assert stored == sorted(c.call_id for c in calls)
    assert collector.stats.ingest.dropped_failed == 0


def sdk_send(port: int, count: int, prefix: str) -> None:
    """Send ``count`` GenAI spans with the OTel SDK's own gRPC exporter (blocking: a thread)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-app"}))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=30)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_export_batch_size=50, schedule_delay_millis=20)
    )
    tracer = provider.get_tracer("fault-test")
    for i in range(count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", "gpt-4o")
            span.set_attribute("gen_ai.usage.input_tokens", 10 + i)
            span.set_attribute("request_id", f"{prefix}-{i}")
    assert provider.force_flush(60_000)
    provider.shutdown()


async def spawn_locker(path: Path) -> asyncio.subprocess.Process:
    """A process holding the write lock of ``path`` until a line arrives on its stdin."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"locked\n"
    return proc


@pytest.mark.parametrize("fault", ["disk_full", "locked"])
async def test_sqlite_fault_end_to_end_through_the_collector(tmp_path: Path, fault: str) -> None:
    """Disk full or a locked file under a collector: OTel SDK spans all land once it clears."""
    path = tmp_path / "calls.db"
    async with SQLiteStore(path, max_queue=50, batch_size=25, busy_timeout=0.02) as store:
        async with AsyncCollector(
            store, port=0, max_queue=100, backpressure_timeout=0.05, retry_delay=0.05
        ) as collector:
            await store.add(make_call(0, call_id="before"))
            await store.flush()
            assert store._writer is not None  # the cap is per connection: the writer's
            locker = None
            if fault == "disk_full":
                ((pages,),) = await store._writer.execute_fetchall("PRAGMA page_count")
                await store._writer.execute(f"PRAGMA max_page_count = {pages}")
            else:
                locker = await spawn_locker(path)
            sender = asyncio.create_task(asyncio.to_thread(sdk_send, collector.port, 600, fault))
            while collector.stats.refused_requests < 2 and not sender.done():
                await asyncio.sleep(0.01)
            assert collector.stats.refused_requests >= 2, "the fault should reach the client"
            assert store.stats.queue.retries >= 1 and await store.count() == 1
            if locker is not None:
                assert locker.stdin is not None
                locker.stdin.write(b"go\n")
                await locker.stdin.drain()
                assert await locker.wait() == 0
            else:
                await store._writer.execute("PRAGMA max_page_count = 1073741823")
            await asyncio.wait_for(sender, 60)
            await asyncio.wait_for(collector.flush(), 30)
        ids = [c.call_id for c in await store.query(limit=None)]
    assert sorted(ids) == sorted(["before", *(f"{fault}-{i}" for i in range(600))])
    assert store.rejected == 0 and store.stats.queue.dropped_failed == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


async def test_exporter_endpoint_disappears_and_comes_back() -> None:
    """The collector stops mid-stream and a new one takes its port: every traced call arrives."""
    first, second = MemoryStore(10_000), MemoryStore(10_000)
    collector = AsyncCollector(first, port=0)
    await collector.start()
    port = collector.port
    exporter = OTLPGrpcExporter(
        f"http://127.0.0.1:{port}",
        flush_interval=0.01,
        batch_size=20,
        timeout=1.0,
        retry=RetryPolicy(initial=0.02, maximum=0.2, max_attempts=None),
    )
    sent: list[str] = []
    async with AsyncTracer(sinks=[exporter]) as tracer:

        async def load(n: int) -> None:
            for _ in range(n):
                async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
                    call.set_usage(input_tokens=5, output_tokens=2)
                sent.append(call.call_id)
                await asyncio.sleep(0.002)

        await load(50)
        await collector.flush()
        assert len(first) > 0
        await collector.stop(grace=0.5)
        await load(50)  # the endpoint is gone: calls wait in the exporter's queue, retried
        assert exporter.stats.queue.retries >= 1 or exporter.stats.queue.pending > 0
        async with AsyncCollector(second, port=port) as replacement:
            await load(50)
            await asyncio.wait_for(exporter.flush(), 20)
            await replacement.flush()
    got = [c.call_id for c in await first.query()] + [c.call_id for c in await second.query()]
    assert sorted(set(got)) == sorted(sent)
    assert len(second) > 0
    assert exporter.stats.queue.dropped == 0
