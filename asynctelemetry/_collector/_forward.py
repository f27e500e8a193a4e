"""Forwarding: received OTLP requests, byte for byte, to an upstream OTLP/gRPC endpoint.

The collector hands each accepted request's raw bytes to a :class:`Forwarder`, which queues them
in a :class:`~asynctelemetry._batching.BatchQueue` (overflow ``drop_oldest``: the collector never
waits for the upstream, and what the queue cannot hold is dropped and counted) and sends them with
the exporters' OTLP/gRPC sender (:class:`~asynctelemetry._export._transport.GrpcTransport`).
Failures are retried by its one rule (:func:`asynctelemetry._wire.is_retryable`: the codes the
OTLP specification lists, and ``RESOURCE_EXHAUSTED`` with a ``RetryInfo``), with exponential
backoff or the upstream's ``RetryInfo`` delay; other failures drop the request and are counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .._batching import BatchQueue, RetryPolicy
from .._export._transport import TRACES_METHOD, GrpcTransport, TransportOptions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._batching import QueueStats

__all__ = ["EXPORT_METHOD", "Forwarder"]

#: The full gRPC method name of OTLP trace export.
EXPORT_METHOD: Final = TRACES_METHOD


class Forwarder:
    """Sends raw ``ExportTraceServiceRequest`` bytes to an upstream collector.

    Args:
        endpoint: ``http://host:port`` (plain text), ``https://host:port`` (TLS with the
            system's roots) or ``host:port`` (TLS, as for the exporters:
            :func:`asynctelemetry._wire.grpc_target`).
        max_queue: most requests held; beyond it the oldest is dropped and counted.
        timeout: seconds allowed to one upstream call.
        retry: backoff between attempts; after ``max_attempts`` the request is dropped.
        metadata: extra gRPC metadata for every call (an upstream's own auth header).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        max_queue: int = 1000,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._transport = GrpcTransport(
            endpoint,
            method=EXPORT_METHOD,
            response_type=ExportTraceServiceResponse,
            options=TransportOptions(headers=dict(metadata), timeout=timeout),
        )
        self.target = self._transport.target
        self._queue: BatchQueue[bytes] = BatchQueue(
            self._send,
            max_size=max_queue,
            batch_size=1,  # one request per attempt: a retry never resends what was delivered
            flush_interval=0.0,
            overflow="drop_oldest",
            retry=retry or RetryPolicy(initial=0.1, maximum=5.0, max_attempts=8),
            name=f"forward to {self.target}",
        )

    @property
    def stats(self) -> QueueStats:
        """A snapshot of the forwarding queue: requests accepted, delivered, dropped (overflow,
        failure, close) and retried."""
        return self._queue.stats

    def start(self) -> None:
        """Start sending (the channel is opened on the first request)."""
        self._queue.start()

    def put(self, raw: bytes) -> None:
        """Queue one request; never waits (the oldest is dropped when the queue is full)."""
        self._queue.put_nowait(raw)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued request was delivered or given up on."""
        await self._queue.flush(timeout)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what can be sent within ``timeout`` seconds, then close the channel."""
        try:
            await self._queue.aclose(timeout)
        finally:
            await self._transport.close()

    async def _send(self, batch: list[bytes]) -> None:
        for raw in batch:
            await self._transport.send(raw)
