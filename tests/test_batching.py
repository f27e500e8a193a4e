"""BatchQueue: the one batching hand-off, with retry, backoff and a shielded close."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import ExportError, StoreClosedError, _batching
from asynctelemetry._batching import BatchQueue, Retryable, RetryPolicy, Slice, run_sliced

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from pathlib import Path

FAST = RetryPolicy(initial=0.001, maximum=0.005, max_attempts=None)


async def test_batches_are_delivered_in_order() -> None:
    """Items come out oldest first, in batches no larger than batch_size."""
    seen: list[list[int]] = []

    async def handler(batch: list[int]) -> None:
        seen.append(batch)

    queue: BatchQueue[int] = BatchQueue(handler, batch_size=10, flush_interval=0.01)
    await queue.put_many(range(35))
    await queue.flush()
    assert [x for batch in seen for x in batch] == list(range(35))
    assert max(len(b) for b in seen) <= 10
    assert queue.stats.delivered == 35
    await queue.aclose()


async def test_wait_policy_applies_backpressure_and_loses_nothing() -> None:
    """Under "wait", put awaits room while the handler is slow; every item arrives."""
    got: list[int] = []
    gate = asyncio.Event()

    async def handler(batch: list[int]) -> None:
        await gate.wait()
        got.extend(batch)

    queue: BatchQueue[int] = BatchQueue(handler, max_size=5, batch_size=5, flush_interval=0)
    producer = asyncio.create_task(queue.put_many(range(20)))
    await asyncio.sleep(0.02)
    assert not producer.done()  # blocked: the queue is full
    assert queue.pending == 5
    gate.set()
    await producer
    await queue.flush()
    assert got == list(range(20))
    assert queue.stats.dropped_overflow == 0
    await queue.aclose()


async def test_drop_oldest_counts_what_it_drops() -> None:
    """Under "drop_oldest", put never waits; the oldest items are dropped and counted."""
    got: list[int] = []
    gate = asyncio.Event()

    async def handler(batch: list[int]) -> None:
        await gate.wait()
        got.extend(batch)

    queue: BatchQueue[int] = BatchQueue(
        handler, max_size=10, batch_size=4, flush_interval=0, overflow="drop_oldest"
    )
    queue.put_nowait(-1)
    await asyncio.sleep(0.01)  # the first batch (just -1) is now in flight
    for i in range(30):
        assert queue.put_nowait(i)
    gate.set()
    await queue.flush()
    assert queue.stats.dropped_overflow == 30 + 1 - 10
    assert got == [-1, *range(21, 30)]
    assert queue.stats.accepted == queue.stats.delivered + queue.stats.dropped_overflow
    await queue.aclose()


async def test_retryable_failures_are_retried_until_they_succeed() -> None:
    """A handler raising Retryable sees the same batch again; nothing is lost."""
    attempts = 0
    got: list[int] = []

    async def handler(batch: list[int]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise Retryable(OSError("disk full"))
        got.extend(batch)

    queue: BatchQueue[int] = BatchQueue(handler, flush_interval=0, retry=FAST)
    await queue.put_many([1, 2, 3])
    errors = 0
    for _ in range(10):
        try:
            await queue.flush()
            break
        except OSError as exc:  # the error reaches flush() callers while the batch is failing
            assert "disk full" in str(exc)
            errors += 1
    assert errors >= 1
    assert got == [1, 2, 3]
    assert queue.stats.retries == 3
    await queue.aclose()


async def test_batches_are_dropped_after_max_attempts_and_counted() -> None:
    """With max_attempts, a batch that keeps failing is dropped and counted, not retried forever."""

    async def handler(batch: list[int]) -> None:
        raise Retryable(ConnectionError("down"))

    policy = RetryPolicy(initial=0.001, maximum=0.002, max_attempts=3)
    queue: BatchQueue[int] = BatchQueue(handler, flush_interval=0, retry=policy)
    await queue.put_many([1, 2])
    with pytest.raises(ExportError, match="gave up on 2 items"):
        while True:  # each failed attempt is reported; giving up is reported as ExportError
            try:
                await queue.flush()
                break
            except ConnectionError:
                pass
    assert queue.stats.dropped_failed == 2
    assert queue.stats.failed_batches == 1
    await queue.aclose()


async def test_aclose_respects_its_deadline_and_counts_the_undelivered() -> None:
    """aclose returns by its deadline on a handler that never finishes; losses are counted."""

    async def handler(batch: list[int]) -> None:
        await asyncio.sleep(3600)

    queue: BatchQueue[int] = BatchQueue(handler, flush_interval=0)
    await queue.put_many(range(7))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await queue.aclose(timeout=0.1)
    assert loop.time() - started < 1.0
    assert queue.stats.dropped_on_close == 7
    await queue.aclose()  # idempotent
    with pytest.raises(StoreClosedError):
        queue.put_nowait(1)


async def test_aclose_finishes_even_when_the_caller_is_cancelled() -> None:
    """Cleanup is shielded: cancelling the closing task still delivers what was queued."""
    got: list[int] = []

    async def handler(batch: list[int]) -> None:
        await asyncio.sleep(0.05)
        got.extend(batch)

    queue: BatchQueue[int] = BatchQueue(handler, flush_interval=0)
    await queue.put_many(range(5))
    closer = asyncio.create_task(queue.aclose(timeout=2))
    await asyncio.sleep(0.01)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert got == list(range(5))


@pytest.mark.parametrize(
    "old",
    [
        pytest.param("max_queue_size", id="max_queue_size"),
        pytest.param("max_batch_size", id="max_batch_size"),
        pytest.param("schedule_delay", id="schedule_delay"),
        pytest.param("shutdown_timeout", id="shutdown_timeout"),
    ],
)
async def test_unreleased_exporter_setting_names_are_refused(old: str) -> None:
    """Names that never shipped are not aliases: an exporter given one is a TypeError."""
    from asynctelemetry import OTLPGrpcExporter, OTLPHttpExporter

    for kind, endpoint in (
        (OTLPGrpcExporter, "http://127.0.0.1:9"),
        (OTLPHttpExporter, "http://127.0.0.1:9/v1/traces"),
    ):
        with pytest.raises(TypeError, match=old):
            kind(endpoint, **{old: 7})


async def test_unreleased_store_setting_names_are_refused(tmp_path: Path) -> None:
    """SQLiteStore(max_pending=) and the URL option ``max_pending`` are refused, and neither a
    store nor an exporter answers to the old attribute names (max_queue, close_timeout do)."""
    from asynctelemetry import ConfigError, OTLPGrpcExporter, SQLiteStore, open_store

    with pytest.raises(TypeError, match="max_pending"):
        SQLiteStore(tmp_path / "a.db", max_pending=12)
    with pytest.raises(ConfigError, match="unknown option 'max_pending'"):
        open_store(f"sqlite:///{tmp_path / 'b.db'}?max_pending=34")
    with pytest.raises(TypeError, match="max_queue_sise"):
        SQLiteStore(tmp_path / "c.db", max_queue_sise=1)
    store = SQLiteStore(tmp_path / "d.db", max_queue=12)
    assert store.max_queue == 12 and not hasattr(store, "max_pending")
    exporter = OTLPGrpcExporter("http://127.0.0.1:9", close_timeout=0.5)
    assert exporter.close_timeout == 0.5 and not hasattr(exporter, "shutdown_timeout")
    await exporter.aclose()
    await store.aclose()


def _services(tmp_path: Path) -> list[tuple[str, Callable[..., Any]]]:
    """Every service with a background queue, as a factory taking the queue keywords."""
    from asynctelemetry import (
        AsyncCollector,
        MemoryStore,
        OTLPGrpcExporter,
        OTLPHttpExporter,
        PostgresStore,
        SQLiteStore,
    )

    return [
        ("SQLiteStore", lambda **kw: SQLiteStore(tmp_path / "q.db", **kw)),
        ("PostgresStore", lambda **kw: PostgresStore("postgresql://u@127.0.0.1:9/db", **kw)),
        ("OTLPGrpcExporter", lambda **kw: OTLPGrpcExporter("http://127.0.0.1:9", **kw)),
        ("OTLPHttpExporter", lambda **kw: OTLPHttpExporter("http://127.0.0.1:9/v1/traces", **kw)),
        ("AsyncCollector", lambda **kw: AsyncCollector(MemoryStore(), port=0, **kw)),
    ]


async def test_every_queued_service_takes_queue_settings(tmp_path: Path) -> None:
    """``queue=QueueSettings(...)`` sets what it names and leaves each service's own defaults for
    the rest; the individual keyword still works; ``service.queue`` gives all four back."""
    from asynctelemetry import QueueSettings

    for name, make in _services(tmp_path):
        default = make()
        given = make(queue=QueueSettings(max_queue=123, close_timeout=0.5))
        assert (given.max_queue, given.close_timeout) == (123, 0.5), name
        assert (given.batch_size, given.flush_interval) == (
            default.batch_size,
            default.flush_interval,
        ), name
        assert given.queue == QueueSettings(123, default.batch_size, default.flush_interval, 0.5)
        assert make(max_queue=77).max_queue == 77, name
        with pytest.raises(AttributeError, match="read-only"):
            given.max_queue = 5
        agreeing = make(max_queue=123, queue=QueueSettings(max_queue=123))
        assert agreeing.max_queue == 123, name
        for service in (default, given, agreeing):
            await service.aclose()


async def test_a_keyword_that_contradicts_queue_settings_is_a_type_error(tmp_path: Path) -> None:
    """``max_queue=5, queue=QueueSettings(max_queue=6)`` says two things: refused, naming both;
    so is a ``queue=`` that is not a QueueSettings."""
    from asynctelemetry import QueueSettings

    for _, make in _services(tmp_path):
        with pytest.raises(TypeError, match=r"max_queue=5 and queue=QueueSettings\(max_queue=6"):
            make(max_queue=5, queue=QueueSettings(max_queue=6))
        with pytest.raises(TypeError, match="takes a QueueSettings"):
            make(queue={"max_queue": 6})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("max_queue", 0, id="max_queue-0"),
        pytest.param("batch_size", 2.5, id="batch_size-float"),
        pytest.param("flush_interval", -1.0, id="flush_interval-negative"),
        pytest.param("close_timeout", float("inf"), id="close_timeout-inf"),
    ],
)
def test_queue_settings_refuse_values_that_cannot_work(field: str, value: object) -> None:
    """A bad value is a ConfigError naming the setting, when the settings are made."""
    from asynctelemetry import ConfigError, QueueSettings

    with pytest.raises(ConfigError, match=field):
        QueueSettings(**{field: value})  # type: ignore[arg-type]


async def test_queue_settings_bound_an_exporter_queue() -> None:
    """An exporter made with ``queue=QueueSettings(max_queue=10)`` holds 10 calls: of 50 emitted
    to a dead endpoint, 40 are dropped as overflow and counted."""
    from asynctelemetry import LLMCall, OTLPGrpcExporter, QueueSettings

    exporter = OTLPGrpcExporter(
        "http://127.0.0.1:9", queue=QueueSettings(max_queue=10, flush_interval=60.0)
    )
    calls = [LLMCall(call_id=f"c{i}", timestamp=datetime.now(UTC), model="m") for i in range(50)]
    exporter.emit_nowait(calls)
    stats = exporter.stats.queue
    await exporter.aclose(timeout=0)
    assert (stats.accepted, stats.dropped_overflow, stats.pending) == (50, 40, 10)


async def test_what_falls_due_during_a_slice_runs_before_the_next_slice() -> None:
    """A timer (or I/O) that falls due while sliced work runs waits one slice, not two:
    asyncio queues it behind the work's own resumption, so the turn lets it go first."""
    loop = asyncio.get_running_loop()
    events: list[str] = []

    async def work() -> None:
        slice_ = Slice(0.0)  # every breathe is a turn
        for step in range(3):
            events.append(f"step {step}")
            if step == 0:
                loop.call_later(0, events.append, "timer")
            await slice_.breathe()

    def steps() -> Generator[None, None, None]:
        for step in range(3):
            events.append(f"slice {step}")
            if step == 0:
                loop.call_later(0, events.append, "timer")
            yield

    await work()
    await run_sliced(steps())
    assert events == [
        *("step 0", "timer", "step 1", "step 2"),
        *("slice 0", "timer", "slice 1", "slice 2"),
    ]


async def test_overlap_handles_batches_at_once_and_settles_them_in_order() -> None:
    """With overlap=2 the next batch is handled while the last one still is; a batch counts as
    delivered (``flush`` returns, ``pending`` drops) only once every batch before it is, even
    when it finished first."""
    first_may_finish = asyncio.Event()
    started: list[list[int]] = []

    async def handler(batch: list[int]) -> None:
        started.append(batch)
        if batch[0] == 0:
            await first_may_finish.wait()

    queue: BatchQueue[int] = BatchQueue(handler, batch_size=2, flush_interval=0, overlap=2)
    await queue.put_many(range(4))
    flushing = asyncio.ensure_future(queue.flush())
    for _ in range(20):
        await asyncio.sleep(0)
    assert started == [[0, 1], [2, 3]]  # the second batch went while the first waits
    assert not flushing.done()
    assert queue.pending == 4  # [2, 3] was delivered, but [0, 1] before it was not
    first_may_finish.set()
    await flushing
    assert queue.pending == 0
    assert queue.stats.delivered == 4
    await queue.aclose()


async def test_closing_an_overlapping_queue_loses_only_what_was_not_delivered() -> None:
    """A batch delivered while an older one hangs is not counted lost when the queue closes;
    the hanging one and those never started are, and the queue stops by its deadline."""

    async def handler(batch: list[int]) -> None:
        if batch[0] == 0:
            await asyncio.sleep(3600)

    queue: BatchQueue[int] = BatchQueue(handler, batch_size=2, flush_interval=0, overlap=2)
    await queue.put_many(range(6))
    for _ in range(20):
        await asyncio.sleep(0)
    await queue.aclose(timeout=0.2)
    assert queue.stats.delivered == 2
    assert queue.stats.dropped_on_close == 4  # [0, 1] cut off, [4, 5] never started
    assert queue.pending == 0


async def test_pieces_of_work_sharing_a_slice_take_one_slice_per_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two pieces of work breathing on one Slice (a writer's two batches) take one slice
    between two turns of the loop together: the first back after its turn starts a new slice,
    the other only takes what is left of it (each starting its own made the loop wait for
    both). A step of work is one tick of a fake clock; a slice is three."""
    clock = [0.0]
    monkeypatch.setattr(_batching, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    shared = Slice(3.0)
    steps = [0]
    between: list[int] = []  # steps of work between two turns of the loop
    working = True

    async def work() -> None:
        for _ in range(30):
            clock[0] += 1.0
            steps[0] += 1
            await shared.breathe()

    async def turns() -> None:
        while working:
            between.append(steps[0])
            steps[0] = 0
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(turns())
    await asyncio.gather(work(), work())
    working = False
    await watcher
    assert max(between) <= 4  # one slice of three steps, and the step the other one took
