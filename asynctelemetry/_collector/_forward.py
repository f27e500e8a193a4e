"""Forwarding: received OTLP requests, byte for byte, to an upstream OTLP/gRPC endpoint.

The collector hands each accepted request's raw bytes to a :class:`Forwarder`, which queues them
in a :class:`~asynctelemetry._batching.BatchQueue` (overflow ``drop_oldest``: the collector never
waits for the upstream, and what the queue cannot hold is dropped and counted) and sends them on a
grpc.aio channel. ``UNAVAILABLE``, ``RESOURCE_EXHAUSTED``, ``DEADLINE_EXCEEDED`` and ``ABORTED``
answers are retried with exponential backoff (the upstream's ``RetryInfo`` delay when it gives
one); other failures drop the request and are counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import grpc

from .._batching import BatchQueue, Retryable, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._batching import QueueStats

__all__ = ["EXPORT_METHOD", "Forwarder", "parse_retry_delay", "retry_info"]

#: The full gRPC method name of OTLP trace export.
EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
_RETRYABLE: Final = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    }
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def retry_info(delay: float) -> bytes:
    """A serialized ``google.rpc.RetryInfo`` asking the client to wait ``delay`` seconds."""
    seconds = int(delay)
    nanos = round((delay - seconds) * 1e9)
    duration = b""
    if seconds:
        duration += b"\x08" + _varint(seconds)
    if nanos:
        duration += b"\x10" + _varint(nanos)
    return b"\x0a" + _varint(len(duration)) + duration


def parse_retry_delay(raw: bytes) -> float | None:
    """The delay of a serialized ``RetryInfo`` (the subset :func:`retry_info` writes)."""
    try:
        if raw[:1] != b"\x0a":
            return None
        pos, seconds, nanos = 2, 0, 0
        while pos < len(raw):
            tag = raw[pos]
            pos += 1
            value, shift = 0, 0
            while True:
                byte = raw[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if byte < 128:
                    break
            if tag == 0x08:
                seconds = value
            elif tag == 0x10:
                nanos = value
        return seconds + nanos / 1e9
    except IndexError:
        return None


def _target(endpoint: str) -> tuple[str, bool]:
    """``(host:port, secure)`` of ``host:port``, ``http://host:port`` or ``https://host:port``."""
    for scheme, secure in (("https://", True), ("http://", False)):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :].rstrip("/"), secure
    return endpoint, False


class Forwarder:
    """Sends raw ``ExportTraceServiceRequest`` bytes to an upstream collector.

    Args:
        endpoint: ``host:port`` or ``http://host:port`` (plaintext) or ``https://host:port``
            (TLS with the system's roots).
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
        self.target, self._secure = _target(endpoint)
        if not self.target:
            raise ValueError(f"forward_to is not an endpoint: {endpoint!r}")
        self._timeout = timeout
        self._metadata = tuple(metadata)
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.UnaryUnaryMultiCallable | None = None
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
        """Requests accepted, delivered, dropped (overflow, failure, close) and retried."""
        return self._queue.stats

    def start(self) -> None:
        """Open the channel (lazily connected) in the running loop."""
        if self._channel is None:
            if self._secure:
                self._channel = grpc.aio.secure_channel(self.target, grpc.ssl_channel_credentials())
            else:
                self._channel = grpc.aio.insecure_channel(self.target)
            self._call = self._channel.unary_unary(EXPORT_METHOD)
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
            if self._channel is not None:
                await self._channel.close()

    async def _send(self, batch: list[bytes]) -> None:
        assert self._call is not None
        for raw in batch:
            try:
                await self._call(raw, timeout=self._timeout, metadata=self._metadata or None)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _RETRYABLE:
                    delay = None
                    for key, value in exc.trailing_metadata() or ():
                        if key == RETRY_INFO_KEY and isinstance(value, bytes):
                            delay = parse_retry_delay(value)
                    raise Retryable(exc, delay) from exc
                raise
