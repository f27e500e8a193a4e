"""OTLP/HTTP export against a real aiohttp server on 127.0.0.1 that decodes the protobuf."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from asynctelemetry._batching import RetryPolicy
from asynctelemetry._export import OTLPHttpExporter, encode_calls
from asynctelemetry._export._http import parse_retry_after, traces_url
from tests.conftest import make_call
from tests.export.conftest import http_serving

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

FAST_RETRY = RetryPolicy(initial=0.01, maximum=0.5, max_attempts=4)


@dataclass
class HttpCollector:
    """Answers the queued statuses first, then 200 with an optional partial success."""

    port: int = 0
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    rejected: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.headers.append(dict(request.headers))
        if self.answers:
            status, headers = self.answers.pop(0)
            return web.Response(status=status, headers=headers)
        body = await request.read()  # aiohttp undoes Content-Encoding: gzip itself
        self.requests.append(ExportTraceServiceRequest.FromString(body))
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = "nope"
        return web.Response(
            body=response.SerializeToString(), content_type="application/x-protobuf"
        )

    @property
    def spans(self) -> list[object]:
        return [
            s
            for r in self.requests
            for rs in r.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]


@pytest.fixture
async def collector() -> AsyncIterator[HttpCollector]:
    """An aiohttp OTLP/HTTP receiver on 127.0.0.1, port chosen by the OS."""
    state = HttpCollector()
    async with http_serving(state.handle) as port:
        state.port = port
        yield state


def _exporter(port: int, **kwargs: object) -> OTLPHttpExporter:
    kwargs.setdefault("flush_interval", 0.01)
    kwargs.setdefault("retry", FAST_RETRY)
    return OTLPHttpExporter(f"http://127.0.0.1:{port}", **kwargs)  # type: ignore[arg-type]


async def test_spans_arrive_gzipped_at_v1_traces(collector: HttpCollector) -> None:
    """Calls arrive at /v1/traces, gzip-compressed, equal to encode_calls, with headers."""
    calls = [make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}") for i in range(100)]
    before = _thread_ids()
    async with _exporter(collector.port, headers={"Authorization": "Bearer x"}) as exporter:
        await exporter.emit(calls)
        await exporter.flush(timeout=10)
        assert _thread_ids() <= before  # no thread started (one ending is fine)
    want = encode_calls(calls, service_name="asynctelemetry")
    assert collector.spans == [
        s for rs in want.resource_spans for ss in rs.scope_spans for s in ss.spans
    ]
    assert set(collector.paths) == {"/v1/traces"}
    assert collector.headers[0]["Authorization"] == "Bearer x"
    assert collector.headers[0]["Content-Encoding"] == "gzip"
    assert collector.headers[0]["Content-Type"] == "application/x-protobuf"


async def test_uncompressed_body(collector: HttpCollector) -> None:
    """compression=None sends the plain protobuf body."""
    async with _exporter(collector.port, compression=None) as exporter:
        await exporter.emit([make_call(0)])
        await exporter.flush(timeout=10)
    assert "Content-Encoding" not in collector.headers[0]
    assert len(collector.spans) == 1


async def test_retryable_statuses_then_success(collector: HttpCollector) -> None:
    """429 and 503 (with Retry-After) are retried; the batch is delivered once."""
    collector.answers = [(429, {}), (503, {"Retry-After": "0"}), (502, {})]
    async with _exporter(collector.port) as exporter:
        await exporter.emit([make_call(i) for i in range(10)])
        await exporter.flush(timeout=10)
        assert exporter.stats.queue.retries == 3 and exporter.stats.queue.delivered == 10
    assert len(collector.spans) == 10


async def test_client_error_drops_the_batch(collector: HttpCollector) -> None:
    """A 400 is not retryable: flush reports the loss, stats count it."""
    collector.answers = [(400, {})]
    async with _exporter(collector.port) as exporter:
        await exporter.emit([make_call(0), make_call(1)])
        with pytest.raises(Exception, match="400"):
            await exporter.flush(timeout=10)
        assert exporter.stats.queue.dropped_failed == 2 and exporter.stats.queue.retries == 0


async def test_partial_success_counted(collector: HttpCollector) -> None:
    """A protobuf partial_success answer is counted in stats.rejected."""
    collector.rejected = 3
    async with _exporter(collector.port) as exporter:
        await exporter.emit([make_call(i) for i in range(5)])
        await exporter.flush(timeout=10)
        assert exporter.stats.rejected == 3


async def test_refused_connection_is_retried_then_dropped() -> None:
    """Nothing listening: each attempt is retried, then the batch is dropped and counted."""
    exporter = _exporter(1, retry=RetryPolicy(initial=0.01, maximum=0.02, max_attempts=3))
    await exporter.emit([make_call(0)])
    with pytest.raises(Exception, match="not delivered"):
        await exporter.flush(timeout=10)
    await exporter.aclose()
    assert exporter.stats.queue.retries == 2 and exporter.stats.queue.dropped_failed == 1


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        pytest.param("http://h:4318", "http://h:4318/v1/traces", id="base"),
        pytest.param("http://h:4318/", "http://h:4318/v1/traces", id="slash"),
        pytest.param("https://h/otlp", "https://h/otlp/v1/traces", id="prefix"),
        pytest.param("http://h:4318/v1/traces", "http://h:4318/v1/traces", id="given"),
    ],
)
def test_traces_url(endpoint: str, url: str) -> None:
    """/v1/traces is appended to a base URL, kept when already there."""
    assert traces_url(endpoint) == url


def test_bad_url_and_compression_are_config_errors() -> None:
    """A non-http URL or an unknown compression is a ValueError."""
    with pytest.raises(ValueError, match="http"):
        OTLPHttpExporter("127.0.0.1:4318")
    with pytest.raises(ValueError, match="compression"):
        OTLPHttpExporter("http://h", compression="br")


def test_retry_after_forms() -> None:
    """Retry-After as seconds or an HTTP date; garbage is ignored."""
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def _thread_ids() -> set[int | None]:
    """Idents of the live Python threads (a thread left by an earlier test may end meanwhile)."""
    return {t.ident for t in threading.enumerate()}
