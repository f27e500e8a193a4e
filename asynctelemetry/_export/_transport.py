"""The OTLP senders: one for gRPC, one for HTTP/protobuf, whatever the signal.

:class:`GrpcTransport` (``grpc.aio``) and :class:`HttpTransport` (httpx, the ``otlp`` extra)
send serialized export requests and read the answer, on the caller's event loop, without
threads. The span exporters (:class:`~asynctelemetry.OTLPGrpcExporter`,
:class:`~asynctelemetry.OTLPHttpExporter`) and the metrics exporter
(:class:`~asynctelemetry.OTLPMetricsExporter`) each own one, made by :func:`open_transport`.

Retry follows the OTLP specification. gRPC: :func:`asynctelemetry._wire.is_retryable` (the
rule the collector's forwarder follows too): the codes it names retryable, with the delay of a
``google.rpc.RetryInfo`` in the trailing metadata (``RESOURCE_EXHAUSTED`` only with one). HTTP:
429, 502, 503 and 504 (honouring ``Retry-After``) and transport errors (connection refused,
timeouts). Those raise :class:`~asynctelemetry._batching.Retryable`; any other failure raises
:class:`~asynctelemetry.ExportError`.
"""

from __future__ import annotations

import email.utils
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import grpc
import grpc.aio
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .._batching import Retryable, Slice
from .._exceptions import ConfigError, ExportError, mask_secrets, require
from .._wire import grpc_target, is_retryable, retry_delay_from_metadata

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "METRICS_METHOD",
    "METRICS_PATH",
    "RETRYABLE_STATUS",
    "TRACES_METHOD",
    "TRACES_PATH",
    "GrpcTransport",
    "HttpTransport",
    "Transport",
    "TransportOptions",
    "open_transport",
    "parse_retry_after",
    "signal_url",
]

#: The full gRPC method name of OTLP trace export.
TRACES_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#: The full gRPC method name of OTLP metrics export.
METRICS_METHOD: Final = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
_COMPRESSION: Final = {
    None: grpc.Compression.NoCompression,
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


#: The OTLP/HTTP paths of each signal.
TRACES_PATH: Final = "/v1/traces"
METRICS_PATH: Final = "/v1/metrics"
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
# Bytes compressed between two yields to the event loop.
_GZIP_SLICE: Final = 64 * 1024


def signal_url(endpoint: str, signal_path: str) -> str:
    """The export URL: ``endpoint`` as given when it ends in ``signal_path`` (``/v1/metrics``),
    else with it added."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"not an http(s) URL: {mask_secrets(endpoint)!r}")
    path = parts.path
    if not path.endswith(signal_path):
        path = path.rstrip("/") + signal_path
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
    slice_ = Slice()
    for start in range(0, len(body), _GZIP_SLICE):
        if start:
            await slice_.breathe()
        out.append(compressor.compress(body[start : start + _GZIP_SLICE]))
    out.append(compressor.flush())
    return b"".join(out)


#: Per signal: the gRPC method, the answer's protobuf class, the HTTP path.
_SIGNALS: Final[dict[str, tuple[str, Any, str]]] = {
    "traces": (TRACES_METHOD, ExportTraceServiceResponse, TRACES_PATH),
    "metrics": (METRICS_METHOD, ExportMetricsServiceResponse, METRICS_PATH),
}


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How a sender reaches its endpoint: the exporters' keywords of the same names.

    ``headers``: gRPC metadata or HTTP headers; ``insecure``: plain-text gRPC (``None``: by the
    endpoint's scheme) or, for HTTPS, no certificate check; ``compression``; ``credentials``:
    ``grpc.ChannelCredentials`` or an ``ssl.SSLContext``; ``timeout``: seconds per request.
    """

    headers: Mapping[str, str] | None = None
    insecure: bool | None = None
    compression: str | None = None
    credentials: Any = None
    timeout: float = 10.0


class GrpcTransport:
    """Sends serialized OTLP export requests of one signal on a ``grpc.aio`` channel.

    Args:
        endpoint: as for :class:`OTLPGrpcExporter`.
        method: the full gRPC method name (``/opentelemetry.proto.collector.….Export``).
        response_type: the protobuf class of the answer (its ``FromString`` reads it).
        options: headers, insecure, compression, credentials, timeout, as for
            :class:`OTLPGrpcExporter`.

    :meth:`send` raises :class:`~asynctelemetry._batching.Retryable` for the failures the OTLP
    specification calls retryable (with the server's ``RetryInfo`` delay), ``ExportError``
    for the others.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        method: str,
        response_type: Any,
        options: TransportOptions,
    ) -> None:
        where = grpc_target(endpoint, options.insecure)
        compression, headers = options.compression, options.headers
        self.target, self.insecure = where.address, not where.secure
        key = compression.lower() if isinstance(compression, str) else None
        if key not in _COMPRESSION:
            raise ConfigError(f"compression must be 'gzip', 'deflate' or None, not {compression!r}")
        self._compression = _COMPRESSION[key]
        self._metadata = tuple((k.lower(), str(v)) for k, v in (headers or {}).items())
        self._credentials: grpc.ChannelCredentials | None = options.credentials
        self._method = method
        self._response_type = response_type
        self.timeout = options.timeout
        self._channel: grpc.aio.Channel | None = None
        self._export: Any = None

    def _connect(self) -> Any:
        # The channel belongs to the running loop: made on first use, not in __init__.
        options = [("grpc.primary_user_agent", "asynctelemetry")]
        if self.insecure:
            channel = grpc.aio.insecure_channel(
                self.target, options=options, compression=self._compression
            )
        else:
            creds = self._credentials or grpc.ssl_channel_credentials()
            channel = grpc.aio.secure_channel(
                self.target, creds, options=options, compression=self._compression
            )
        self._channel = channel
        # Bodies are already serialized: no request serializer.
        self._export = channel.unary_unary(
            self._method, response_deserializer=self._response_type.FromString
        )
        return self._export

    async def send(self, body: bytes) -> Any:
        """Deliver one serialized request; the server's answer (a ``response_type``)."""
        export = self._export or self._connect()
        try:
            return await export(body, timeout=self.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            error = ExportError(f"OTLP/gRPC export to {self.target} failed: {code.name}")
            error.__cause__ = exc
            delay = retry_delay_from_metadata(exc.trailing_metadata())
            if is_retryable(code.name, delay):
                raise Retryable(error, delay) from exc
            raise error from exc

    async def close(self) -> None:
        """Close the channel (a later :meth:`send` opens a new one)."""
        if self._channel is not None:
            channel, self._channel, self._export = self._channel, None, None
            await channel.close(grace=None)


class HttpTransport:
    """Posts serialized OTLP export requests of one signal to one URL (httpx, on the loop).

    Args:
        url: the full export URL (:func:`signal_url`).
        response_type: the protobuf class of the answer (its ``FromString`` reads it).
        options: headers, insecure, compression, credentials, timeout, as for
            :class:`OTLPHttpExporter`.
        owner: the class named in the error when httpx is missing.

    :meth:`send` raises :class:`~asynctelemetry._batching.Retryable` for 429, 502, 503, 504
    (honouring ``Retry-After``) and transport errors, ``ExportError`` for other non-2xx answers.

    Raises:
        MissingDependencyError: httpx is not installed (``pip install 'asynctelemetry[otlp]'``).
    """

    def __init__(
        self,
        url: str,
        *,
        response_type: Any,
        options: TransportOptions,
        owner: str,
    ) -> None:
        self._httpx: Any = require("httpx", "otlp", owner)
        self.url = url
        compression, headers = options.compression, options.headers
        key = compression.lower() if isinstance(compression, str) else None
        if key not in (None, "none", "gzip"):
            raise ConfigError(f"compression must be 'gzip' or None, not {compression!r}")
        self._gzip = key == "gzip"
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self._headers["Content-Type"] = "application/x-protobuf"
        self._headers.setdefault("User-Agent", "asynctelemetry")
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        credentials = options.credentials
        self._verify: Any = credentials if credentials is not None else not options.insecure
        self._response_type = response_type
        self.timeout = options.timeout
        self._client: Any = None

    def _connect(self) -> Any:
        self._client = self._httpx.AsyncClient(
            timeout=self.timeout, verify=self._verify, trust_env=False
        )
        return self._client

    async def send(self, body: bytes) -> Any:
        """Deliver one serialized request; the server's answer (a ``response_type``), or
        ``None`` when it sent no protobuf body (or one that does not parse)."""
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
                return self._response_type.FromString(content)
            except Exception:  # a malformed answer to a delivered batch: nothing to count
                return None
        return None

    async def close(self) -> None:
        """Close the client (a later :meth:`send` opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


Transport = GrpcTransport | HttpTransport


def open_transport(
    protocol: str,
    endpoint: str,
    signal: Literal["traces", "metrics"],
    options: TransportOptions,
    owner: str,
) -> Transport:
    """The sender of ``signal`` to ``endpoint`` over ``protocol`` (``"grpc"`` or ``"http"``;
    for HTTP the signal's path is added to the endpoint unless present); ``owner`` is the class
    named when httpx is missing.

    Raises:
        ConfigError: an unknown protocol, a bad endpoint or compression.
        MissingDependencyError: HTTP without httpx.
    """
    method, response_type, path = _SIGNALS[signal]
    if protocol == "grpc":
        return GrpcTransport(endpoint, method=method, response_type=response_type, options=options)
    if protocol == "http":
        return HttpTransport(
            signal_url(endpoint, path), response_type=response_type, options=options, owner=owner
        )
    raise ConfigError(f"protocol must be 'grpc' or 'http', not {protocol!r}")
