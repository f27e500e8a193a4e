"""OTLP/HTTP span export (protobuf body to ``/v1/traces``) on httpx's async client.

The sending is :class:`~asynctelemetry._export._transport.HttpTransport`'s (shared with the
metrics exporter). httpx is the ``otlp`` extra. The queue, batching, retry and shutdown are the
ones of :class:`~asynctelemetry._export._base.OTLPExporterBase`, shared with the gRPC exporter.
Retried: 429, 502, 503 and 504 (honouring ``Retry-After``) and transport errors (connection refused,
timeouts); any other non-2xx answer drops the batch, counted.
"""

from __future__ import annotations

from ._base import OTLPExporterBase
from ._transport import TRACES_PATH, parse_retry_after, signal_url

__all__ = ["OTLPHttpExporter", "parse_retry_after", "traces_url"]


def traces_url(endpoint: str) -> str:
    """The trace export URL: ``endpoint`` with ``/v1/traces`` added unless it ends in it."""
    return signal_url(endpoint, TRACES_PATH)


class OTLPHttpExporter(OTLPExporterBase):
    """Sends calls as OTLP spans over HTTP (protobuf), batched in the background.

    Args:
        endpoint: base URL (``http://host:4318``); ``/v1/traces`` is added unless present.
        service_name: ``service.name`` of the resource for calls that carry none.
        resource_attributes: extra resource attributes.
        headers: HTTP headers sent with every export (``Authorization`` and the like).
        insecure: with an ``https`` endpoint, skip certificate verification. ``None``/``False``
            verify; plain ``http`` endpoints are not encrypted whatever this says.
        compression: ``"gzip"`` (default) or ``None``.
        timeout: seconds allowed for one export request.
        max_queue: most calls held (32,768); beyond it the oldest are dropped and counted.
        batch_size: most calls taken from the queue at once (512; sent as requests of at most
            128 calls, so that no single message blocks the event loop).
        flush_interval: seconds a partial batch waits to fill (0.2).
        credentials: an ``ssl.SSLContext`` for TLS (client certificates, private roots).
        close_timeout: seconds ``aclose()`` spends delivering what is queued (5).
        retry: backoff policy for retryable failures.
        queue: the four queue settings together, a :class:`~asynctelemetry.QueueSettings`
            (a keyword given beside it must not say otherwise: ``TypeError``).

    Raises:
        MissingDependencyError: httpx is not installed (``pip install 'asynctelemetry[otlp]'``).
    """

    _kind = "OTLP/HTTP"

    _protocol = "http"

    @property
    def url(self) -> str:
        """The export URL (the endpoint with ``/v1/traces``)."""
        return getattr(self._transport, "url", "")
