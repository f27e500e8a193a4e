"""Cancelling the host task at every await point of a traced call, and every close concurrently.

The promise: a cancelled call leaves one complete record or none (never a corrupt one), the
cancellation propagates unchanged, and after ``aclose()`` no task of ours is left running.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import AsyncCollector, AsyncTracer, LLMCall, MemoryStore, SQLiteStore
from asynctelemetry._batching import BatchQueue
from asynctelemetry._export import OTLPGrpcExporter, OTLPHttpExporter
from asynctelemetry.metrics import MetricsRecorder, PrometheusExporter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path


def others() -> set[asyncio.Task[Any]]:
    """Every task but the current one."""
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


def assert_complete(call: LLMCall, status: str) -> None:
    """A record as full validation accepts it, with the expected status and the usage set."""
    assert LLMCall.model_validate(call.model_dump()) == call
    assert call.status == status
    assert call.model == "gpt-4o" and call.provider == "openai" and call.duration_ms is not None


async def chunks(n: int) -> AsyncIterator[dict[str, Any]]:
    """A slow provider stream."""
    for _ in range(n):
        await asyncio.sleep(0.05)
        yield {"choices": [{"delta": {"content": "x"}}]}


async def in_body(tracer: AsyncTracer, at: asyncio.Event) -> None:
    async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
        call.set_usage(input_tokens=10, output_tokens=2)
        at.set()
        await asyncio.sleep(10)


async def before_enter(tracer: AsyncTracer, at: asyncio.Event) -> None:
    at.set()
    await asyncio.sleep(10)
    async with tracer.llm_call(model="gpt-4o", provider="openai"):
        pass


async def in_stream(tracer: AsyncTracer, at: asyncio.Event) -> None:
    stream = tracer.wrap_stream(chunks(100), model="gpt-4o", provider="openai")
    async for _ in stream:
        at.set()


async def during_exit(tracer: AsyncTracer, at: asyncio.Event) -> None:
    async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
        call.set_usage(input_tokens=10, output_tokens=2)
    at.set()  # not reached while the slow sink holds the exit


#: (host coroutine, statuses allowed for the record, records allowed in the slow sink)
STEPS: dict[str, tuple[Callable[[AsyncTracer, asyncio.Event], Awaitable[None]], set[str]]] = {
    "before_enter": (before_enter, set()),
    "in_body": (in_body, {"cancelled"}),
    "in_stream": (in_stream, {"cancelled"}),
    "during_exit": (during_exit, {"ok"}),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_cancel_at_each_step_leaves_whole_records_and_no_tasks(
    tmp_path: Path, step: str
) -> None:
    """Cancel at a step: the memory sink has 0 or 1 whole record, SQLite the same, no task left."""
    host, statuses = STEPS[step]
    path = tmp_path / "calls.db"
    baseline = others()
    # A slow, backpressured sink: a SQLite file locked by another connection, room for 2 calls.
    slow = SQLiteStore(path, max_queue=2, batch_size=1, busy_timeout=0.01)
    await slow.open()
    memory = MemoryStore()
    tracer = AsyncTracer(store=memory, sinks=[slow])
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN IMMEDIATE")
    try:
        # Only the exit step meets a full sink: a cancelled call whose exit waits for room is
        # held there by backpressure until the sink has room (nothing is dropped silently).
        for i in range(2 if step == "during_exit" else 0):  # fill it: the next emit must wait
            async with tracer.llm_call(model="gpt-4o", provider="openai", n=i):
                pass
        at = asyncio.Event()
        task = asyncio.create_task(host(tracer, at))
        if step == "during_exit":
            await asyncio.sleep(0.1)
            assert not task.done() and not at.is_set()  # held in the exit by backpressure
        else:
            await asyncio.wait_for(at.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        lock.execute("COMMIT")
        lock.close()
    await asyncio.wait_for(tracer.aclose(), 10)
    mine = [c for c in await memory.query() if "n" not in c.attributes]
    assert len(mine) == (1 if statuses else 0)
    for call in mine:
        assert_complete(call, statuses.pop())
    async with SQLiteStore(path) as reread:
        stored = [c for c in await reread.query() if "n" not in c.attributes]
    assert len(stored) <= len(mine)  # the cancelled hand-off may have been cut: none, or whole
    assert stored == mine[: len(stored)]
    await asyncio.sleep(0)
    assert others() <= baseline, others() - baseline


async def test_cancel_after_every_loop_step() -> None:
    """Cancel a traced stream after 0, 1, 2, … loop iterations: records are always whole."""
    baseline = others()
    memory = MemoryStore(10_000)
    sink = MemoryStore(10_000)
    async with AsyncTracer(store=memory, sinks=[_Slow(sink)]) as tracer:

        async def host() -> None:
            await asyncio.sleep(0)
            async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
                await asyncio.sleep(0)
                call.first_token()
                async for _ in tracer.wrap_stream(chunks(2), call):
                    await asyncio.sleep(0)
                call.set_usage(input_tokens=3, output_tokens=4)
                await asyncio.sleep(0)

        for steps in range(0, 40):
            task = asyncio.create_task(host())
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    records = await memory.query()
    assert len({c.call_id for c in records}) == len(records)
    for call in records:
        assert_complete(call, call.status)
        assert call.status in ("ok", "cancelled")
    assert {c.call_id for c in await sink.query()} <= {c.call_id for c in records}
    assert others() <= baseline


class _Slow:
    """A sink whose emit yields to the loop twice before keeping the calls."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def emit(self, calls: Any) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await self.store.add_many(calls)

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


# -- aclose: idempotent, concurrent, cancellable -------------------------------------------------
async def _tracer(tmp_path: Path) -> Any:
    tracer = AsyncTracer(
        store=MemoryStore(),
        sinks=[
            SQLiteStore(tmp_path / "t.db"),
            OTLPGrpcExporter("http://127.0.0.1:9", close_timeout=0.3),
        ],
    )
    async with tracer.llm_call(model="gpt-4o"):
        pass
    return tracer


async def _sqlite(tmp_path: Path) -> Any:
    store = SQLiteStore(tmp_path / "s.db")
    await store.add(LLMCall(call_id="a", timestamp=0, model="m"))  # type: ignore[arg-type]
    return store


async def _memory(tmp_path: Path) -> Any:
    return MemoryStore()


async def _collector(tmp_path: Path) -> Any:
    collector = AsyncCollector(SQLiteStore(tmp_path / "c.db"), port=0)
    await collector.start()
    return collector


async def _grpc_exporter(tmp_path: Path) -> Any:
    exporter = OTLPGrpcExporter("http://127.0.0.1:9", close_timeout=0.2)
    await exporter.emit([LLMCall(call_id="a", timestamp=0, model="m")])  # type: ignore[arg-type]
    return exporter


async def _http_exporter(tmp_path: Path) -> Any:
    exporter = OTLPHttpExporter("http://127.0.0.1:9/v1/traces", close_timeout=0.2)
    await exporter.emit([LLMCall(call_id="a", timestamp=0, model="m")])  # type: ignore[arg-type]
    return exporter


async def _prometheus(tmp_path: Path) -> Any:
    exporter = PrometheusExporter(port=0, registry=MetricsRecorder(registry=None))
    await exporter.start()
    return exporter


async def _batch_queue(tmp_path: Path) -> Any:
    async def handler(batch: list[int]) -> None:
        await asyncio.sleep(0.01)

    queue: BatchQueue[int] = BatchQueue(handler, max_size=10)
    for i in range(5):
        await queue.put(i)
    return queue


async def _reuse_refused(x: Any) -> None:
    """Using the component after close raises (or, for a store-like, refuses to take calls)."""
    from asynctelemetry import StoreClosedError

    call = LLMCall(call_id="b", timestamp=0, model="m")  # type: ignore[arg-type]
    with pytest.raises(StoreClosedError):
        if isinstance(x, AsyncTracer):
            x.llm_call(model="m")
        elif isinstance(x, MemoryStore | SQLiteStore):
            await x.add(call)
        elif isinstance(x, AsyncCollector | PrometheusExporter):
            await x.start()
        elif isinstance(x, BatchQueue):
            x.put_nowait(1)
        else:
            await x.emit([call])


COMPONENTS = {
    "tracer": _tracer,
    "memory_store": _memory,
    "sqlite_store": _sqlite,
    "collector": _collector,
    "grpc_exporter": _grpc_exporter,
    "http_exporter": _http_exporter,
    "prometheus_exporter": _prometheus,
    "batch_queue": _batch_queue,
}


@pytest.mark.parametrize("name", list(COMPONENTS))
async def test_aclose_is_idempotent_and_concurrent(tmp_path: Path, name: str) -> None:
    """``gather(x.aclose(), x.aclose())`` then ``x.aclose()``: no error, closed, no task left."""
    baseline = others()
    component = await COMPONENTS[name](tmp_path)
    await asyncio.wait_for(asyncio.gather(component.aclose(), component.aclose()), 15)
    await component.aclose()
    await _reuse_refused(component)
    if isinstance(component, AsyncCollector):
        await component.store.aclose()
    await asyncio.sleep(0)
    assert others() <= baseline, others() - baseline


@pytest.mark.parametrize("name", ["tracer", "sqlite_store", "collector", "grpc_exporter"])
async def test_cancelled_closer_still_closes(tmp_path: Path, name: str) -> None:
    """Cancelling the task that runs ``aclose()`` does not leave half-closed parts running."""
    baseline = others()
    for steps in (1, 3, 10):  # cancel the closer after this many turns of the loop
        (tmp_path / str(steps)).mkdir()
        component = await COMPONENTS[name](tmp_path / str(steps))
        closer = asyncio.create_task(component.aclose())
        for _ in range(steps):
            await asyncio.sleep(0)
        closer.cancel()
        await asyncio.gather(closer, return_exceptions=True)
        await asyncio.wait_for(component.aclose(), 15)
        if isinstance(component, AsyncCollector):
            await component.store.aclose()
    async with asyncio.timeout(5):
        while not others() <= baseline:
            await asyncio.sleep(0.01)
