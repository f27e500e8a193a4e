"""OTLP/gRPC span export on ``grpc.aio``: no threads, the caller's event loop does the work.

Retry follows the OTLP specification (:func:`asynctelemetry._wire.is_retryable`, the rule the
collector's forwarder follows too): the codes it names retryable are retried with exponential
backoff and jitter (``RESOURCE_EXHAUSTED`` only when the server sent ``RetryInfo``), the delay of
a ``google.rpc.RetryInfo`` in the trailing metadata is honoured, anything else drops the batch
(counted) at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import grpc
import grpc.aio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .._batching import QueueSettings, Retryable
from .._exceptions import ConfigError, ExportError
from .._wire import grpc_target, is_retryable, retry_delay_from_metadata
from ._base import DEFAULT_QUEUE, OTLPExporterBase

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._batching import RetryPolicy

__all__ = ["OTLPGrpcExporter"]

_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_COMPRESSION: Final = {
    None: grpc.Compression.NoCompression,
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


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
        max_queue: most calls held (32,768); beyond it the oldest are dropped and counted.
        batch_size: most calls taken from the queue at once (512; sent as requests of at most
            128 calls, so that no single message blocks the event loop).
        flush_interval: seconds a partial batch waits to fill (0.2).
        credentials: ``grpc.ChannelCredentials`` for TLS (system roots by default).
        close_timeout: seconds ``aclose()`` spends delivering what is queued (5).
        retry: backoff policy for retryable failures.
        queue: the four queue settings together, a :class:`~asynctelemetry.QueueSettings`
            (a keyword given beside it must not say otherwise: ``TypeError``).
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
        max_queue: int | None = None,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        close_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        queue: QueueSettings | None = None,
    ) -> None:
        self.endpoint = endpoint
        where = grpc_target(endpoint, insecure)
        self._target, self.insecure = where.address, not where.secure
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
            queue=DEFAULT_QUEUE.resolve(
                "OTLPGrpcExporter",
                QueueSettings(max_queue, batch_size, flush_interval, close_timeout),
                queue,
            ),
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
            if is_retryable(code.name, delay):
                raise Retryable(error, delay) from exc
            raise error from exc
        partial = response.partial_success
        self._partial_success(partial.rejected_spans, partial.error_message)

    async def _close_transport(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._export = self._channel, None, None
            await channel.close(grace=None)
