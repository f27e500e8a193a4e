"""OTLPMetricsExporter against real OTLP MetricsService receivers (grpc.aio and aiohttp on
127.0.0.1), checked point by point against the OpenTelemetry SDK's own OTLP metric exporters fed
the same calls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from asynctelemetry import AsyncCollector, AsyncTracer, MemoryStore, OTLPMetricsExporter
from asynctelemetry._batching import RetryPolicy
from asynctelemetry._exceptions import ConfigError, StoreClosedError
from tests.conftest import make_call
from tests.export.conftest import MetricsRequest as Request
from tests.export.conftest import MetricsServer, http_serving
from tests.export.sdk_metrics import SdkRecorder

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from asynctelemetry import LLMCall

FAST_RETRY = RetryPolicy(initial=0.01, maximum=0.05, max_attempts=5)


@dataclass
class HttpMetrics:
    """An OTLP/HTTP receiver: answers the queued statuses first, then 200 with the protobuf."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.headers.append(dict(request.headers))
        if self.answers:
            return web.Response(status=self.answers.pop(0))
        body = await request.read()  # aiohttp undoes Content-Encoding: gzip itself
        self.requests.append(Request.FromString(body))
        answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")


@pytest.fixture
async def http_metrics() -> AsyncIterator[HttpMetrics]:
    """An aiohttp OTLP/HTTP metrics receiver on 127.0.0.1, port chosen by the OS."""
    state = HttpMetrics()
    async with http_serving(state.handle) as port:
        state.port = port
        yield state


def sample_calls() -> list[LLMCall]:
    """Calls that touch every metric and attribute: plain, streamed, cached, reasoning, failed,
    cancelled, without usage, without provider, routed to another model, embeddings."""
    return [
        make_call(0, is_streaming=False, ttft_ms=None),
        make_call(1, is_streaming=True, cached_input_tokens=60, cache_creation_tokens=15),
        make_call(2, is_streaming=True, reasoning_tokens=12, duration_ms=2500.0, ttft_ms=300.0),
        make_call(3, status="error", error_type="RateLimitError", input_tokens=None,
                  output_tokens=None, ttft_ms=None, is_streaming=False),
        make_call(4, status="cancelled", output_tokens=None, is_streaming=True),
        make_call(5, input_tokens=None, output_tokens=None, is_streaming=False, ttft_ms=None),
        make_call(6, provider=None, is_streaming=True, duration_ms=0.01, ttft_ms=0.005),
        make_call(7, request_model="gpt-4o", model="gpt-4o-2024-08-06", is_streaming=False,
                  ttft_ms=None),
        make_call(8, operation="embed", output_tokens=None, is_streaming=False, ttft_ms=None),
        make_call(9, status="error", error_type=None, is_streaming=False, ttft_ms=None),
        *(make_call(i, is_streaming=True, duration_ms=40.0 * i) for i in range(10, 40)),
    ]  # fmt: skip


def points(requests: Iterable[Request]) -> dict[tuple[Any, ...], Any]:
    """Every data point of the last request that has each metric, keyed by (metric name,
    unit, kind, temporality, attributes): histograms as (count, sum, buckets, bounds, min,
    max), counters as their value."""
    out: dict[tuple[Any, ...], Any] = {}
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    for p in data.data_points:
                        attrs = frozenset(
                            (kv.key, getattr(kv.value, kv.value.WhichOneof("value")))
                            for kv in p.attributes
                        )
                        key = (metric.name, metric.unit, kind, data.aggregation_temporality, attrs)
                        if kind == "histogram":
                            out[key] = (
                                p.count, round(p.sum, 9), tuple(p.bucket_counts),
                                tuple(p.explicit_bounds), round(p.min, 9), round(p.max, 9),
                            )  # fmt: skip
                        else:
                            assert data.is_monotonic
                            out[key] = p.as_int
    return out


def names(requests: Iterable[Request]) -> set[str]:
    return {key[0] for key in points(requests)}


# -- the same data points as the SDK -------------------------------------------------------------
async def test_grpc_points_equal_the_sdk_exporters(metrics_server: MetricsServer) -> None:
    """Our exporter and the SDK's OTLP/gRPC metric exporter, fed the same calls, deliver the
    same points (names, units, buckets, attributes, sums, counts) to one MetricsService."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    calls = sample_calls()
    endpoint = f"http://127.0.0.1:{metrics_server.port}"
    sdk = SdkRecorder(OTLPMetricExporter(endpoint=endpoint, insecure=True))
    for call in calls:
        sdk.record(call)
    await sdk.flush()
    await sdk.shutdown()
    theirs = points(metrics_server.requests)
    metrics_server.requests.clear()

    exporter = OTLPMetricsExporter(endpoint, interval=3600)
    exporter.emit_nowait(calls[:20])
    exporter.emit_nowait(calls[20:])
    await exporter.aclose()
    ours = points(metrics_server.requests)

    assert len(metrics_server.requests) == 1
    assert ours == theirs
    assert names(metrics_server.requests) == {
        "gen_ai.client.inference.duration",
        "gen_ai.client.inference.time_to_first_chunk",
        "gen_ai.client.inference.time_per_output_chunk",
        "gen_ai.client.inference.operation.input_tokens",
        "gen_ai.client.inference.operation.output_tokens",
        "gen_ai.client.inference.usage.input_tokens",
        "gen_ai.client.inference.usage.output_tokens",
        "gen_ai.client.inference.usage.cache_read.input_tokens",
        "gen_ai.client.inference.usage.cache_write.input_tokens",
        "gen_ai.client.inference.usage.reasoning.output_tokens",
    }
    # The figures themselves, not only their likeness: failures are split by error.type.
    errors = {
        dict(key[4]).get("error.type")
        for key in ours
        if key[0] == "gen_ai.client.inference.duration"
    }
    assert errors == {None, "RateLimitError", "_OTHER"}  # _OTHER: failed without a name
    cached = sum(v for k, v in ours.items() if k[0].endswith("cache_read.input_tokens"))
    assert cached == 60
    assert exporter.stats.calls == len(calls)
    assert exporter.stats.queue.delivered == 1


async def test_http_legacy_names_and_cumulative_sums(http_metrics: HttpMetrics) -> None:
    """Over OTLP/HTTP, with the legacy names, two exports: the second carries the running
    totals (cumulative), and both equal what the SDK's OTLP/HTTP exporter sends."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    calls = sample_calls()
    base = f"http://127.0.0.1:{http_metrics.port}"
    sdk = SdkRecorder(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), legacy=True)
    for call in calls:
        sdk.record(call)
    await sdk.flush()
    for call in calls[:5]:
        sdk.record(call)
    await sdk.flush()
    await sdk.shutdown()
    theirs = points(http_metrics.requests)
    http_metrics.requests.clear()

    exporter = OTLPMetricsExporter(base, protocol="http", legacy_names=True, interval=3600)
    exporter.emit_nowait(calls)
    await exporter.flush()
    exporter.emit_nowait(calls[:5])
    await exporter.aclose()
    ours = points(http_metrics.requests)

    assert http_metrics.paths[-1] == "/v1/metrics"
    assert http_metrics.headers[-1]["Content-Encoding"] == "gzip"
    assert ours == theirs
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names(
        http_metrics.requests
    )
    first = points(http_metrics.requests[:1])
    key = next(k for k in ours if k[0] == "gen_ai.client.inference.usage.input_tokens")
    assert ours[key] > first[key]  # the second export carries the totals


async def test_delta_temporality_equals_the_sdks(metrics_server: MetricsServer) -> None:
    """temporality="delta": each export carries only what happened since the previous one, as
    the SDK's exporter does with a delta preference."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import Counter, Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    calls = sample_calls()
    endpoint = f"http://127.0.0.1:{metrics_server.port}"
    delta = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
    sdk = SdkRecorder(
        OTLPMetricExporter(endpoint=endpoint, insecure=True, preferred_temporality=delta)
    )
    batches = (calls[:25], calls[25:])
    theirs = []
    for batch in batches:
        for call in batch:
            sdk.record(call)
        await sdk.flush()
        theirs.append(points(metrics_server.requests[-1:]))
    await sdk.shutdown()
    metrics_server.requests.clear()

    exporter = OTLPMetricsExporter(endpoint, temporality="delta", interval=3600)
    ours = []
    for batch in batches:
        exporter.emit_nowait(batch)
        await exporter.flush()
        ours.append(points(metrics_server.requests[-1:]))
    await exporter.aclose()

    assert ours == theirs
    assert all(key[3] == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA for key in ours[0])
    assert len(metrics_server.requests) == 2  # nothing new at close: nothing sent


# -- delivery: retry, gzip, headers, queue, close -----------------------------------------
async def test_unavailable_is_retried_with_headers_and_gzip(metrics_server: MetricsServer) -> None:
    """UNAVAILABLE twice, then delivered; every attempt carries the headers, gzip-compressed."""
    metrics_server.fail_times = 2
    exporter = OTLPMetricsExporter(
        f"http://127.0.0.1:{metrics_server.port}",
        headers={"Authorization": "Bearer s3cret"},
        retry=FAST_RETRY,
        interval=3600,
    )
    exporter.emit_nowait(sample_calls())
    await exporter.flush(timeout=10)
    await exporter.aclose()
    assert metrics_server.attempts == 3
    assert len(metrics_server.requests) == 1
    assert all(m["authorization"] == "Bearer s3cret" for m in metrics_server.metadata)
    assert exporter.stats.queue.retries == 2
    assert exporter.stats.requests == 3


async def test_grpc_gzip_shrinks_the_bytes_on_the_wire(metrics_server: MetricsServer) -> None:
    """Through a TCP relay that counts what the client sends: gzip (the default) sends well
    under half the bytes of ``compression=None`` for the same figures."""
    sent = [0]

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
        try:
            while data := await reader.read(65536):
                if count:
                    sent[0] += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", metrics_server.port)
        await asyncio.gather(
            pipe(reader, up_writer, True), pipe(up_reader, writer, False), return_exceptions=True
        )

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    calls = sample_calls()
    sizes = {}
    try:
        for compression in ("gzip", None):
            sent[0] = 0
            exporter = OTLPMetricsExporter(
                f"http://127.0.0.1:{port}", compression=compression, interval=3600
            )
            exporter.emit_nowait(calls)
            await exporter.aclose()
            sizes[compression] = sent[0]
    finally:
        server.close()
    assert len(metrics_server.requests) == 2
    assert points(metrics_server.requests[:1]) == points(metrics_server.requests[1:])
    assert sizes["gzip"] < sizes[None] / 2


async def test_http_retries_503_with_headers(http_metrics: HttpMetrics) -> None:
    """A 503 is retried; every attempt carries the headers and a gzip body (aiohttp decodes
    it: the request parsed); ``compression=None`` sends it plain."""
    http_metrics.answers = [503]
    exporter = OTLPMetricsExporter(
        f"http://127.0.0.1:{http_metrics.port}/",
        protocol="http",
        headers={"x-api-key": "k"},
        retry=FAST_RETRY,
        interval=3600,
    )
    exporter.emit_nowait(sample_calls()[:3])
    await exporter.flush(timeout=10)
    await exporter.aclose()
    assert len(http_metrics.requests) == 1
    assert all(h["x-api-key"] == "k" for h in http_metrics.headers)
    assert all(h["Content-Encoding"] == "gzip" for h in http_metrics.headers)
    assert exporter.stats.queue.retries == 1

    plain = OTLPMetricsExporter(
        f"http://127.0.0.1:{http_metrics.port}", protocol="http", compression=None, interval=3600
    )
    plain.emit_nowait(sample_calls()[:3])
    await plain.aclose()
    assert "Content-Encoding" not in http_metrics.headers[-1]
    assert points(http_metrics.requests[-1:]) == points(http_metrics.requests[:1])


async def test_full_queue_drops_the_oldest_export_counted() -> None:
    """With the receiver away, exports beyond max_queue drop the oldest, counted; close gives
    up at its deadline and counts what it could not deliver."""
    exporter = OTLPMetricsExporter(
        "http://127.0.0.1:9",  # discard port: nothing listens
        max_queue=2,
        retry=RetryPolicy(initial=5.0, maximum=5.0, max_attempts=10),
        timeout=0.2,
        interval=3600,
    )
    exporter.emit_nowait(sample_calls())
    for _ in range(5):
        await exporter._collect()
        await asyncio.sleep(0)
    await exporter.aclose(timeout=0.3)
    stats = exporter.stats.queue
    assert stats.accepted == 5  # nothing new since the last: close sends no sixth
    assert stats.dropped_overflow == 3
    assert stats.dropped_on_close == 2
    assert stats.delivered == 0
    assert stats.pending == 0


async def test_close_flushes_and_refuses_later_calls(metrics_server: MetricsServer) -> None:
    """aclose() exports what was aggregated since the last export, then refuses new calls."""
    exporter = OTLPMetricsExporter(f"http://127.0.0.1:{metrics_server.port}", interval=3600)
    exporter.emit_nowait(sample_calls()[:3])
    assert metrics_server.requests == []
    await exporter.aclose()
    await exporter.aclose()  # idempotent
    assert len(metrics_server.requests) == 1
    with pytest.raises(StoreClosedError):
        exporter.emit_nowait(sample_calls()[:1])


async def test_the_interval_timer_exports_unasked(metrics_server: MetricsServer) -> None:
    """Every ``interval`` seconds an export goes out on its own (cumulative: repeated)."""
    exporter = OTLPMetricsExporter(f"http://127.0.0.1:{metrics_server.port}", interval=0.05)
    exporter.emit_nowait(sample_calls()[:2])
    for _ in range(200):
        if len(metrics_server.requests) >= 2:
            break
        await asyncio.sleep(0.02)
    await exporter.aclose()
    assert len(metrics_server.requests) >= 2


async def test_series_beyond_max_series_overflow_counted(metrics_server: MetricsServer) -> None:
    """Attribute sets beyond max_series aggregate into one otel.metric.overflow series."""
    exporter = OTLPMetricsExporter(
        f"http://127.0.0.1:{metrics_server.port}", max_series=3, interval=3600
    )
    exporter.emit_nowait([make_call(i, model=f"m{i}", is_streaming=False) for i in range(10)])
    await exporter.aclose()
    assert exporter.stats.overflow_calls == 7
    got = points(metrics_server.requests)
    overflow = [
        v for k, v in got.items()
        if k[0] == "gen_ai.client.inference.usage.input_tokens"
        and ("otel.metric.overflow", True) in k[4]
    ]  # fmt: skip
    assert overflow == [sum(100 + i for i in range(3, 10))]


# -- as a sink of the tracer and the collector ---------------------------------------------
async def test_tracer_metrics_exporters_and_collector_sinks(metrics_server: MetricsServer) -> None:
    """AsyncTracer(metrics_exporters=[...]) feeds every call and closes the exporter;
    AsyncCollector(sinks=[...]) takes one too."""
    endpoint = f"http://127.0.0.1:{metrics_server.port}"
    exporter = OTLPMetricsExporter(endpoint, interval=3600)
    tracer = AsyncTracer(metrics_exporters=[exporter], price_table={})
    for i in range(3):
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.set_usage(input_tokens=10 + i, output_tokens=5)
    await tracer.aclose()
    assert exporter.closed
    got = points(metrics_server.requests)
    key = next(k for k in got if k[0] == "gen_ai.client.inference.usage.input_tokens")
    assert got[key] == 33
    assert ("gen_ai.provider.name", "openai") in key[4]

    collected = OTLPMetricsExporter(endpoint, interval=3600)
    collector = AsyncCollector(MemoryStore(), port=0, sinks=[collected])
    await collector.pipeline.emit(sample_calls())
    await collector.pipeline.aclose()  # what the collector's stop() does: closes its sinks
    assert collected.closed
    assert collected.stats.calls == len(sample_calls())
    assert collected.stats.queue.delivered == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        OTLPMetricsExporter("http://127.0.0.1:4317", protocol="udp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        OTLPMetricsExporter("http://127.0.0.1:4317", temporality="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        OTLPMetricsExporter("http://127.0.0.1:4317", interval=0)
    with pytest.raises(ConfigError):
        OTLPMetricsExporter("127.0.0.1:4318", protocol="http")


async def test_a_large_export_goes_out_in_requests_resumed_after_a_failure(
    metrics_server: MetricsServer,
) -> None:
    """40 attribute sets go out as three requests (16, 16, 8 series): none holds the loop long.
    When the second fails once, the retry resumes there: nothing is sent twice (delta would
    count it twice) and every series arrives once."""
    exporter = OTLPMetricsExporter(
        f"http://127.0.0.1:{metrics_server.port}",
        temporality="delta",
        retry=FAST_RETRY,
        interval=3600,
    )
    metrics_server.fail_attempts = {2}
    exporter.emit_nowait([make_call(i, model=f"m{i}", is_streaming=False) for i in range(40)])
    await exporter.aclose()
    assert len(metrics_server.requests) == 3
    assert metrics_server.attempts == 4
    got = points(metrics_server.requests)
    counted = [v for k, v in got.items() if k[0] == "gen_ai.client.inference.usage.input_tokens"]
    assert sorted(counted) == [100 + i for i in range(40)]
    assert exporter.stats.queue.delivered == 1
    assert exporter.stats.requests == 4
