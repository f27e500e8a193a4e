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

from ._base import OTLPExporterBase

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

    _protocol = "grpc"

    @property
    def insecure(self) -> bool:
        """Whether the channel is plain text (``insecure=True``, or an ``http://`` endpoint)."""
        return getattr(self._transport, "insecure", False)
