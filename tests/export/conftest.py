"""A real OTLP/gRPC TraceService on 127.0.0.1 that records what it receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

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


@pytest.fixture
async def trace_server() -> AsyncIterator[TraceServer]:
    """A grpc.aio TraceService on 127.0.0.1, port chosen by the OS."""
    server = grpc.aio.server()
    servicer = TraceServer()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    servicer.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer
    finally:
        await server.stop(grace=None)
