"""Real OTLP receivers on 127.0.0.1 that record what they receive: gRPC TraceService and
MetricsService, and an aiohttp server for OTLP/HTTP."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass
class TraceServer(trace_service_pb2_grpc.TraceServiceServicer):
    """Records requests; fails the first ``fail_times`` with ``fail_code`` (and trailers)."""

    port: int = 0
    requests: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    fail_times: int = 0
    fail_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    fail_trailers: tuple[tuple[str, bytes], ...] = ()
    rejected: int = 0
    attempts: int = 0

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.attempts += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        if self.fail_times > 0:
            self.fail_times -= 1
            if self.fail_trailers:
                context.set_trailing_metadata(self.fail_trailers)
            await context.abort(self.fail_code, "not now")
        self.requests.append(request)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = "too many attributes"
        return response

    @property
    def spans(self) -> list[trace_pb2.Span]:
        """Every span received, in order."""
        return [
            span
            for request in self.requests
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@asynccontextmanager
async def grpc_serving(
    add: Callable[[Any, grpc.aio.Server], None], servicer: Any
) -> AsyncIterator[Any]:
    """``servicer`` served by grpc.aio on 127.0.0.1, its ``port`` set to the one the OS chose."""
    server = grpc.aio.server()
    add(servicer, server)
    servicer.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer
    finally:
        await server.stop(grace=None)


@asynccontextmanager
async def http_serving(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[int]:
    """An aiohttp server on 127.0.0.1 answering every POST with ``handle``; yields its port."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@pytest.fixture
async def trace_server() -> AsyncIterator[TraceServer]:
    """A grpc.aio TraceService on 127.0.0.1, port chosen by the OS."""
    add = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
    async with grpc_serving(add, TraceServer()) as servicer:
        yield servicer


MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest


@dataclass
class MetricsServer(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Records requests and their metadata; fails the first ``fail_times`` attempts, and those
    numbered in ``fail_attempts``, with UNAVAILABLE."""

    port: int = 0
    requests: list[MetricsRequest] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    fail_times: int = 0
    fail_attempts: set[int] = field(default_factory=set)  # these attempts (1-based) fail too
    attempts: int = 0

    async def Export(
        self, request: MetricsRequest, context: grpc.aio.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.attempts += 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() or ()})
        if self.fail_times > 0 or self.attempts in self.fail_attempts:
            self.fail_times = max(0, self.fail_times - 1)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not now")
        self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
async def metrics_server() -> AsyncIterator[MetricsServer]:
    """A grpc.aio MetricsService on 127.0.0.1, port chosen by the OS."""
    add = metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server
    async with grpc_serving(add, MetricsServer()) as servicer:
        yield servicer
