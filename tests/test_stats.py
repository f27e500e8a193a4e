"""One statistics shape: every service's ``stats`` is a frozen snapshot taken when read.

A snapshot does not change after more work, two snapshots differ by exactly the work done in
between, and a snapshot's fields cannot be assigned. Real parts throughout: a gRPC collector on
127.0.0.1, a SQLite file under ``tmp_path``, an OTLP exporter sending to that collector.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import (
    AsyncCollector,
    AsyncTracer,
    CollectorStats,
    ExporterStats,
    MemoryStore,
    OTLPGrpcExporter,
    Pipeline,
    PipelineStats,
    QueueStats,
    SQLiteStore,
    StoreStats,
    TracerStats,
)
from asynctelemetry.metrics import MetricsRecorder, MetricsStats, PrometheusExporter, ScrapeStats
from tests.collector.helpers import export, llm_span, request_of
from tests.conftest import make_call

if TYPE_CHECKING:
    from pathlib import Path


def _flat(stats: object, prefix: str = "") -> dict[str, Any]:
    """Every figure of a snapshot, nested queues as ``queue.delivered`` and so on."""
    flat: dict[str, Any] = {}
    for field in dataclasses.fields(stats):  # type: ignore[arg-type]
        value = getattr(stats, field.name)
        if dataclasses.is_dataclass(value):
            flat.update(_flat(value, f"{prefix}{field.name}."))
        elif isinstance(value, dict):
            flat.update({f"{prefix}{field.name}[{k}]": v for k, v in value.items()})
        else:
            flat[f"{prefix}{field.name}"] = value
    return flat


def _diff(before: object, after: object) -> dict[str, Any]:
    """The figures that changed, as after - before (counts) or the new value (others)."""
    old, new = _flat(before), _flat(after)
    changed: dict[str, Any] = {}
    for key, value in new.items():
        was = old.get(key, 0)
        if value != was:
            changed[key] = value - was if isinstance(value, int) else value
    return changed


async def test_collector_snapshots_differ_by_the_work_done() -> None:
    """One request of 3 LLM spans, 1 other span (the root of their trace: a step) and 1 span
    without a model: exactly that."""
    spans = [llm_span({"gen_ai.request.model": "gpt-4o", "request_id": f"r{i}"}) for i in range(3)]
    spans += [llm_span({"http.method": "GET"}), llm_span({"gen_ai.operation.name": "chat"})]
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        before = collector.stats
        kept = _flat(before)
        await export(collector.endpoint, request_of(spans))
        await collector.flush()
        after = collector.stats
    assert isinstance(before, CollectorStats) and isinstance(after.ingest, QueueStats)
    assert _flat(before) == kept  # the first snapshot did not move with the work
    assert _diff(before, after) == {
        "requests": 1,
        "received_spans": 5,
        "llm_calls": 3,
        "steps": 1,  # the GET span: the root of a trace that holds calls (keep_spans="ai")
        "rejected_spans": 1,
        "stored": 3,
        "defects[no_model]": 1,
        "ingest.accepted": 1,  # the ingest queue holds one item per request
        "ingest.delivered": 1,
    }
    assert after.forward is None


async def test_sqlite_store_snapshots_differ_by_the_work_done(tmp_path: Path) -> None:
    """Five calls and one copy of a call already stored: six through the writer, one duplicate."""
    async with SQLiteStore(tmp_path / "calls.db") as store:
        await store.add(make_call(0))
        await store.flush()
        before = store.stats
        kept = _flat(before)
        await store.add_many([make_call(i) for i in range(1, 6)])
        await store.add(make_call(0))
        await store.flush()
        after = store.stats
    assert isinstance(before, StoreStats) and isinstance(after.queue, QueueStats)
    assert _flat(before) == kept
    assert _diff(before, after) == {
        "duplicates": 1,
        "queue.accepted": 6,
        "queue.delivered": 6,
    }
    assert store.duplicates == after.duplicates == 1  # the contract's name reads the same count


async def test_memory_store_snapshots_count_duplicates_and_drops() -> None:
    """A ring of 3 given 4 new calls and a copy: one pushed out, one duplicate; no queue."""
    store = MemoryStore(3)
    before = store.stats
    await store.add_many([make_call(i) for i in range(4)] + [make_call(3)])
    after = store.stats
    assert before == StoreStats()
    assert _diff(before, after) == {"duplicates": 1, "dropped": 1}
    assert after.queue is None
    assert (store.duplicates, store.dropped) == (1, 1)


async def test_exporter_snapshots_differ_by_the_work_done() -> None:
    """Four calls exported to a real collector: four accepted and delivered, one request."""
    async with AsyncCollector(MemoryStore(), port=0) as collector:
        async with OTLPGrpcExporter(f"http://{collector.endpoint}") as exporter:
            before = exporter.stats
            kept = _flat(before)
            await exporter.emit([make_call(i) for i in range(4)])
            await exporter.flush(timeout=10)
            after = exporter.stats
    assert isinstance(after, ExporterStats)
    assert _flat(before) == kept
    assert _diff(before, after) == {"queue.accepted": 4, "queue.delivered": 4, "requests": 1}


async def test_tracer_snapshots_count_calls_and_open_streams() -> None:
    """Two calls (one failing) and one stream still open, then consumed to its end."""

    async def chunks() -> Any:
        yield {"choices": [{"delta": {"content": "hi"}}]}

    async with AsyncTracer(in_memory=True) as tracer:
        before = tracer.stats
        async with tracer.llm_call(model="gpt-4o"):
            pass
        with pytest.raises(KeyError):
            async with tracer.llm_call(model="gpt-4o"):
                raise KeyError("boom")
        stream = tracer.wrap_stream(chunks(), model="gpt-4o")
        during = tracer.stats
        async for _ in stream:
            pass
        after = tracer.stats
    assert isinstance(before, TracerStats) and before == TracerStats()
    assert _diff(before, during) == {"calls": 2, "open_streams": 1}
    assert _diff(during, after) == {"calls": 1, "open_streams": -1}
    assert after.spans is None and len(tracer.spans) == 3


async def test_pipeline_snapshots_count_sink_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink that raises (outside the suite's strict mode) is one error more, nothing else."""

    class Boom:
        async def emit(self, calls: object) -> None:
            raise RuntimeError("sink bug")

        async def flush(self) -> None:
            pass

        async def aclose(self) -> None:
            pass

    monkeypatch.setenv("ASYNCTELEMETRY_STRICT", "0")
    pipeline = Pipeline([Boom(), MemoryStore()])
    before = pipeline.stats
    await pipeline.emit([make_call(1, cost_usd=0.5)])
    after = pipeline.stats
    assert before == PipelineStats(sinks=2)
    assert _diff(before, after) == {"errors": 1}


async def test_metrics_snapshots_count_calls_overflow_and_scrapes() -> None:
    """Three calls over a cap of two models: three counted, one model under "other"; one
    scrape answered and one bad request refused by the exporter."""
    from prometheus_client import CollectorRegistry

    from tests.test_metrics import _get

    recorder = MetricsRecorder(registry=CollectorRegistry(), max_models=2)
    before = recorder.stats
    for i, model in enumerate(("a", "b", "c")):
        recorder.record(make_call(i, model=model, provider="openai"))
    assert _diff(before, recorder.stats) == {"calls": 3, "labels_overflowed": 1}
    async with PrometheusExporter(port=0, registry=recorder) as exporter:
        served = exporter.stats
        assert (await _get(exporter.port, b"GET /metrics HTTP/1.0\r\n\r\n")).startswith(
            b"HTTP/1.1 200"
        )
        assert (await _get(exporter.port, b"\x00\xff garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
        after = exporter.stats
    assert isinstance(after, ScrapeStats) and isinstance(before, MetricsStats)
    assert _diff(served, after) == {"requests": 1, "bad_requests": 1}


@pytest.mark.parametrize(
    "stats",
    [
        pytest.param(QueueStats(), id="QueueStats"),
        pytest.param(StoreStats(), id="StoreStats"),
        pytest.param(TracerStats(), id="TracerStats"),
        pytest.param(PipelineStats(), id="PipelineStats"),
        pytest.param(MetricsStats(), id="MetricsStats"),
        pytest.param(ScrapeStats(), id="ScrapeStats"),
        pytest.param(ExporterStats(queue=QueueStats(), rejected=0, requests=0), id="ExporterStats"),
    ],
)
def test_assigning_to_a_snapshot_raises(stats: object) -> None:
    """Snapshots are frozen: a caller cannot mistake one for the live counters."""
    name = dataclasses.fields(stats)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(stats, name, 1)


async def test_assigning_to_a_collector_snapshot_raises() -> None:
    """``collector.stats.llm_calls = 0`` raises; the collector's own count is untouched."""
    async with AsyncCollector(MemoryStore(), port=0) as collector:
        stats = collector.stats
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.llm_calls = 5  # type: ignore[misc]
        assert collector.stats.llm_calls == 0
