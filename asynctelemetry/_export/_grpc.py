"""OTLP/gRPC span export on ``grpc.aio``: no threads, the caller's event loop does the work.

Retry follows the OTLP specification: the codes it names retryable are retried with exponential
backoff and jitter (``RESOURCE_EXHAUSTED`` only when the server sent ``RetryInfo``), the delay in
a ``google.rpc.RetryInfo`` of the trailing ``grpc-status-details-bin`` is honoured, anything else
drops the batch (counted) at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import grpc
import grpc.aio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .._batching import Retryable
from .._exceptions import ConfigError, ExportError
from ._base import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_SCHEDULE_DELAY,
    DEFAULT_SHUTDOWN_TIMEOUT,
    OTLPExporterBase,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from .._batching import RetryPolicy

__all__ = ["OTLPGrpcExporter", "retry_delay_from_metadata"]

_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
_RETRY_INFO_TYPE: Final = "type.googleapis.com/google.rpc.RetryInfo"
#: Codes the OTLP specification lists as retryable (RESOURCE_EXHAUSTED only with RetryInfo).
RETRYABLE_CODES: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_COMPRESSION: Final = {
    None: grpc.Compression.NoCompression,
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def _wire_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message: enough for Status and RetryInfo."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated message")
            yield number, wire, data[pos : pos + size]
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _retry_delay(status_details: bytes) -> float | None:
    """The delay of the ``google.rpc.RetryInfo`` inside a serialized ``google.rpc.Status``."""
    for number, wire, detail in _wire_fields(status_details):
        if number != 3 or wire != 2:  # Status.details: repeated google.protobuf.Any
            continue
        assert isinstance(detail, bytes)
        fields = {n: v for n, w, v in _wire_fields(detail) if w == 2}
        if fields.get(1) != _RETRY_INFO_TYPE.encode():
            continue
        for n, w, duration in _wire_fields(fields.get(2, b"")):  # type: ignore[arg-type]
            if n == 1 and w == 2:  # RetryInfo.retry_delay: google.protobuf.Duration
                assert isinstance(duration, bytes)
                parts = {dn: dv for dn, dw, dv in _wire_fields(duration) if dw == 0}
                seconds, nanos = parts.get(1, 0), parts.get(2, 0)
                assert isinstance(seconds, int) and isinstance(nanos, int)
                return seconds + nanos / 1e9
        return 0.0
    return None


def retry_delay_from_metadata(metadata: Any) -> float | None:
    """Seconds a server asked to wait (``RetryInfo`` in trailing metadata), ``None`` if not said."""
    for key, value in metadata or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return _retry_delay(value)
            except ValueError:
                return None
    return None


def _target(endpoint: str, insecure: bool | None) -> tuple[str, bool]:
    """(host:port, insecure) from ``http://h:p``, ``https://h:p`` or ``h:p``."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.netloc:
            raise ConfigError(f"not a gRPC endpoint: {endpoint!r}")
        scheme_insecure = parts.scheme in ("http", "grpc")
        return parts.netloc, scheme_insecure if insecure is None else insecure
    if not endpoint:
        raise ConfigError("the OTLP endpoint is empty")
    # No scheme: TLS unless told otherwise, as the OpenTelemetry exporters do.
    return endpoint, bool(insecure)


class OTLPGrpcExporter(OTLPExporterBase):
    """Sends calls as OTLP spans over gRPC (``grpc.aio``), batched in the background.

    Args:
        endpoint: ``http://host:4317`` (plain), ``https://host:4317`` (TLS) or ``host:4317``
            (TLS unless ``insecure=True``).
        service_name: ``service.name`` of the resource for calls that carry none.
        resource_attributes: extra resource attributes.
        headers: gRPC metadata sent with every export (``authorization`` and the like).
        insecure: plain-text channel; ``None`` decides from the endpoint's scheme.
        compression: ``"gzip"`` (default), ``"deflate"`` or ``None``.
        timeout: seconds allowed for one export request.
        max_queue_size: most calls held; beyond it the oldest are dropped and counted.
        max_batch_size: most calls taken from the queue at once (sent as requests of at most
            128 calls, so that no single message blocks the event loop).
        schedule_delay: seconds a partial batch waits to fill.
        credentials: ``grpc.ChannelCredentials`` for TLS (system roots by default).
        shutdown_timeout: seconds ``aclose()`` spends delivering what is queued.
        retry: backoff policy for retryable failures.
    """

    _kind = "OTLP/gRPC"

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str = "asynctelemetry",
        resource_attributes: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        compression: str | None = "gzip",
        timeout: float = 10.0,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        schedule_delay: float = DEFAULT_SCHEDULE_DELAY,
        credentials: grpc.ChannelCredentials | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._target, self.insecure = _target(endpoint, insecure)
        key = compression.lower() if isinstance(compression, str) else None
        if key not in _COMPRESSION:
            raise ConfigError(f"compression must be 'gzip', 'deflate' or None, not {compression!r}")
        self._compression = _COMPRESSION[key]
        self._metadata = tuple((k.lower(), str(v)) for k, v in (headers or {}).items())
        self._credentials = credentials
        super().__init__(
            service_name=service_name,
            resource_attributes=resource_attributes,
            timeout=timeout,
            max_queue_size=max_queue_size,
            max_batch_size=max_batch_size,
            schedule_delay=schedule_delay,
            shutdown_timeout=shutdown_timeout,
            retry=retry,
        )
        self._channel: grpc.aio.Channel | None = None
        self._export: Any = None

    def _connect(self) -> Any:
        # The channel belongs to the running loop: made on first use, not in __init__.
        options = [("grpc.primary_user_agent", "asynctelemetry")]
        if self.insecure:
            channel = grpc.aio.insecure_channel(
                self._target, options=options, compression=self._compression
            )
        else:
            creds = self._credentials or grpc.ssl_channel_credentials()
            channel = grpc.aio.secure_channel(
                self._target, creds, options=options, compression=self._compression
            )
        self._channel = channel
        # Bodies are already serialized: no request serializer.
        self._export = channel.unary_unary(
            _METHOD, response_deserializer=ExportTraceServiceResponse.FromString
        )
        return self._export

    async def _send(self, body: bytes, count: int) -> None:
        export = self._export or self._connect()
        try:
            response = await export(body, timeout=self.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            error = ExportError(f"OTLP/gRPC export to {self._target} failed: {code.name}")
            error.__cause__ = exc
            delay = retry_delay_from_metadata(exc.trailing_metadata())
            if code in RETRYABLE_CODES or (
                code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
            ):
                raise Retryable(error, delay) from exc
            raise error from exc
        partial = response.partial_success
        self._partial_success(partial.rejected_spans, partial.error_message)

    async def _close_transport(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._export = self._channel, None, None
            await channel.close(grace=None)
