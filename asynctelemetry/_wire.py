"""Wire helpers: protobuf varints, gRPC ``RetryInfo``, OTLP/gRPC endpoints, the retry rule.

Layer 2: the one implementation of each, shared by the OTLP encoder and exporters, the
collector's readers and its forwarder (ARCHITECTURE.md: "one implementation of wire helpers").
Nothing here imports grpc: status codes are handled by name (``grpc.StatusCode.X.name``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from ._exceptions import ConfigError, mask_secrets

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "RETRYABLE_CODES",
    "RETRY_INFO_KEY",
    "SMALL_VARINTS",
    "STATUS_DETAILS_KEY",
    "GrpcTarget",
    "decode_varint",
    "encode_varint",
    "grpc_target",
    "host_port",
    "is_retryable",
    "retry_delay_from_metadata",
    "retry_info",
    "rpc_status",
]

#: ``encode_varint(i)`` for i < 128: one shared bytes object each (the common case).
SMALL_VARINTS: Final = tuple(bytes((i,)) for i in range(128))
#: gRPC trailing metadata holding a serialized ``google.rpc.RetryInfo``.
RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
#: gRPC trailing metadata holding a serialized ``google.rpc.Status`` with its details.
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
_RETRY_INFO_TYPE: Final = b"type.googleapis.com/google.rpc.RetryInfo"
#: gRPC status codes the OTLP specification calls retryable; ``RESOURCE_EXHAUSTED`` is retryable
#: only when the server said when to retry (``RetryInfo``), see :func:`is_retryable`.
RETRYABLE_CODES: Final = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
)


# -- varints ------------------------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    """Unsigned LEB128; a negative int64 as its 10-byte two's complement (protobuf's int64)."""
    if 0 <= value < 128:
        return SMALL_VARINTS[value]
    if 0 < value < 16_384:  # two bytes: token counts, lengths of most messages
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``.

    Raises:
        IndexError: the data ends inside the varint, or it is longer than 64 bits.
    """
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 128:
            return value, pos
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a serialized message: enough for Status, Any,
    RetryInfo and Duration. Raises IndexError on a truncated or malformed message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = decode_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            size, pos = decode_varint(data, pos)
            if pos + size > end:
                raise IndexError("truncated message")
            yield number, wire, data[pos : pos + size]
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise IndexError(f"unsupported wire type {wire}")


# -- RetryInfo ----------------------------------------------------------------------------------
def retry_info(delay: float) -> bytes:
    """A serialized ``google.rpc.RetryInfo`` asking the client to wait ``delay`` seconds."""
    seconds = int(delay)
    nanos = round((delay - seconds) * 1e9)
    duration = b""
    if seconds:
        duration += b"\x08" + encode_varint(seconds)
    if nanos:
        duration += b"\x10" + encode_varint(nanos)
    return b"\x0a" + encode_varint(len(duration)) + duration


def rpc_status(code: int, message: str, retry_delay: float | None = None) -> bytes:
    """A serialized ``google.rpc.Status``, with a ``RetryInfo`` detail when ``retry_delay`` is
    given (the body of an OTLP/HTTP error response)."""
    text = message.encode()
    out = b"\x08" + encode_varint(code) + b"\x12" + encode_varint(len(text)) + text
    if retry_delay is not None:
        info = retry_info(retry_delay)
        detail = b"\x0a" + encode_varint(len(_RETRY_INFO_TYPE)) + _RETRY_INFO_TYPE
        detail += b"\x12" + encode_varint(len(info)) + info
        out += b"\x1a" + encode_varint(len(detail)) + detail
    return out


def _retry_info_delay(raw: bytes) -> float | None:
    for number, wire, duration in _fields(raw):
        if number == 1 and wire == 2:  # RetryInfo.retry_delay: google.protobuf.Duration
            assert isinstance(duration, bytes)
            parts = {n: v for n, w, v in _fields(duration) if w == 0}
            seconds, nanos = parts.get(1, 0), parts.get(2, 0)
            assert isinstance(seconds, int) and isinstance(nanos, int)
            return seconds + nanos / 1e9
    return 0.0


def _status_delay(status: bytes) -> float | None:
    for number, wire, detail in _fields(status):
        if number != 3 or wire != 2:  # Status.details: repeated google.protobuf.Any
            continue
        assert isinstance(detail, bytes)
        parts = {n: v for n, w, v in _fields(detail) if w == 2}
        if parts.get(1) == _RETRY_INFO_TYPE:
            value = parts.get(2, b"")
            assert isinstance(value, bytes)
            return _retry_info_delay(value)
    return None


def retry_delay_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    """Seconds a gRPC server asked the client to wait, from trailing metadata: a ``RetryInfo``
    under ``google.rpc.retryinfo-bin`` or inside the ``google.rpc.Status`` of
    ``grpc-status-details-bin``; None when it said nothing (or said it unreadably)."""
    for key, value in metadata or ():
        if not isinstance(value, bytes):
            continue
        try:
            if key == RETRY_INFO_KEY:
                return _retry_info_delay(value)
            if key == STATUS_DETAILS_KEY:
                delay = _status_delay(value)
                if delay is not None:
                    return delay
        except (IndexError, AssertionError):
            return None
    return None


def is_retryable(code_name: str, delay: float | None) -> bool:
    """The one retry rule for OTLP/gRPC (exporters and the forwarder): the codes the OTLP
    specification lists, and ``RESOURCE_EXHAUSTED`` when the server sent a ``RetryInfo``."""
    return code_name in RETRYABLE_CODES or (code_name == "RESOURCE_EXHAUSTED" and delay is not None)


# -- endpoints ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GrpcTarget:
    """Where a gRPC channel connects: ``host:port`` and whether it speaks TLS."""

    address: str
    secure: bool


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:4317``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def grpc_target(endpoint: str, insecure: bool | None = None) -> GrpcTarget:
    """The one reading of an OTLP/gRPC endpoint (exporters and the forwarder alike).

    ``http://h:p`` and ``grpc://h:p`` are plain text, ``https://h:p`` and ``grpcs://h:p`` TLS; a
    bare ``h:p`` is TLS unless ``insecure=True``, as in the OpenTelemetry exporters (secure by
    default). ``insecure`` given explicitly wins over the scheme.

    Raises:
        ConfigError: empty, another scheme, or no ``host:port``.
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigError("the gRPC endpoint is empty")
    endpoint = endpoint.strip()
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.netloc:
            raise ConfigError(f"not a gRPC endpoint: {mask_secrets(endpoint)!r}")
        plain = parts.scheme in ("http", "grpc")
        return GrpcTarget(parts.netloc, not (plain if insecure is None else insecure))
    address = endpoint.rstrip("/")
    if "/" in address:
        raise ConfigError(f"not a gRPC endpoint (host:port): {mask_secrets(endpoint)!r}")
    return GrpcTarget(address, not insecure)
