"""OTLP/gRPC span export on ``grpc.aio``: no threads, the caller's event loop does the work.

The sending is :class:`~asynctelemetry._export._transport.GrpcTransport`'s (shared with the
metrics exporter).

Retry follows the OTLP specification (:func:`asynctelemetry._wire.is_retryable`, the rule the
collector's forwarder follows too): the codes it names retryable are retried with exponential
backoff and jitter (``RESOURCE_EXHAUSTED`` only when the server sent ``RetryInfo``), the delay of
a ``google.rpc.RetryInfo`` in the trailing metadata is honoured, anything else drops the batch
(counted) at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._batching import QueueSettings
from ._base import DEFAULT_QUEUE, OTLPExporterBase
from ._transport import open_transport

if TYPE_CHECKING:
    from collections.abc import Mapping

    import grpc

    from .._batching import RetryPolicy

__all__ = ["OTLPGrpcExporter"]


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
        self._transport = open_transport(
            "grpc",
            endpoint,
            "traces",
            headers=headers,
            insecure=insecure,
            compression=compression,
            credentials=credentials,
            timeout=timeout,
            owner="OTLPGrpcExporter",
        )
        self.insecure = bool(getattr(self._transport, "insecure", False))
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
