"""OTLP/HTTP span export (protobuf body to ``/v1/traces``) on httpx's async client.

httpx is the ``otlp`` extra. The queue, batching, retry and shutdown are the ones of
:class:`~asynctelemetry._export._base.OTLPExporterBase`, shared with the gRPC exporter. Retried:
429, 502, 503 and 504 (honouring ``Retry-After``) and transport errors (connection refused,
timeouts); any other non-2xx answer drops the batch, counted.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import zlib
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .._batching import QueueSettings, Retryable
from .._exceptions import ConfigError, ExportError, mask_secrets, require
from ._base import DEFAULT_QUEUE, OTLPExporterBase

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._batching import RetryPolicy

__all__ = ["OTLPHttpExporter", "parse_retry_after", "traces_url"]

_TRACES_PATH: Final = "/v1/traces"
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
# Bytes compressed between two yields to the event loop.
_GZIP_SLICE: Final = 64 * 1024


def traces_url(endpoint: str) -> str:
    """The export URL: ``endpoint`` as given when it ends in ``/v1/traces``, else with it added."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"not an http(s) URL: {mask_secrets(endpoint)!r}")
    path = parts.path
    if not path.endswith(_TRACES_PATH):
        path = path.rstrip("/") + _TRACES_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


async def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    out = []
    for start in range(0, len(body), _GZIP_SLICE):
        if start:
            await asyncio.sleep(0)
        out.append(compressor.compress(body[start : start + _GZIP_SLICE]))
    out.append(compressor.flush())
    return b"".join(out)


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
        credentials: Any = None,
        close_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        queue: QueueSettings | None = None,
    ) -> None:
        self._httpx: Any = require("httpx", "otlp", "OTLPHttpExporter")
        self.url = traces_url(endpoint)
        self.endpoint = endpoint
        key = compression.lower() if isinstance(compression, str) else None
        if key not in (None, "none", "gzip"):
            raise ConfigError(f"compression must be 'gzip' or None, not {compression!r}")
        self._gzip = key == "gzip"
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self._headers["Content-Type"] = "application/x-protobuf"
        self._headers.setdefault("User-Agent", "asynctelemetry")
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._verify: Any = credentials if credentials is not None else not insecure
        super().__init__(
            service_name=service_name,
            resource_attributes=resource_attributes,
            timeout=timeout,
            queue=DEFAULT_QUEUE.resolve(
                "OTLPHttpExporter",
                QueueSettings(max_queue, batch_size, flush_interval, close_timeout),
                queue,
            ),
            retry=retry,
        )
        self._client: Any = None

    def _connect(self) -> Any:
        self._client = self._httpx.AsyncClient(
            timeout=self.timeout, verify=self._verify, trust_env=False
        )
        return self._client

    async def _send(self, body: bytes, count: int) -> None:
        client = self._client or self._connect()
        payload = await _gzip(body) if self._gzip else body
        httpx = self._httpx
        try:
            response = await client.post(self.url, content=payload, headers=self._headers)
        except httpx.TransportError as exc:  # refused, reset, timed out: worth another try
            error = ExportError(f"OTLP/HTTP export to {mask_secrets(self.url)} failed: {exc!r}")
            raise Retryable(error) from exc
        status = response.status_code
        if status in RETRYABLE_STATUS:
            error = ExportError(f"OTLP/HTTP export to {mask_secrets(self.url)} answered {status}")
            raise Retryable(error, parse_retry_after(response.headers.get("retry-after")))
        if not 200 <= status < 300:
            raise ExportError(f"OTLP/HTTP export to {mask_secrets(self.url)} answered {status}")
        content = response.content
        if content and "protobuf" in response.headers.get("content-type", ""):
            try:
                partial = ExportTraceServiceResponse.FromString(content).partial_success
            except Exception:  # a malformed answer to a delivered batch: nothing to count
                return
            self._partial_success(partial.rejected_spans, partial.error_message)

    async def _close_transport(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
