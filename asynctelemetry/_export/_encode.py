"""LLMCall records → OTLP trace protobuf, written straight from the records.

The OpenTelemetry SDK path builds a span object per call, then a protobuf message object per span,
per attribute and per value, then serializes them. Here each span is written directly in the
protobuf wire format (the format is small and stable: ``opentelemetry/proto/trace/v1``) with the
constant pieces (attribute keys, frequent string values, the scope) encoded once and cached. The
exporters send these bytes as they are; :func:`encode_calls` parses them into an
``ExportTraceServiceRequest`` for callers that want the message object, and the tests check the
bytes against messages built field by field with the protobuf library.

Attributes come from :func:`asynctelemetry._conventions.call_attributes`, the one record →
attributes function, so the collector reads back what was written.
"""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .._conventions import (
    EXCEPTION_EVENT,
    call_attributes,
    exception_event,
    span_name,
    step_attributes,
    step_span_name,
)
from .._record import TraceSpan
from .._wire import SMALL_VARINTS, encode_varint

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from .._record import LLMCall

__all__ = ["SCOPE_NAME", "SpanEncoder", "encode_calls", "resource_attributes"]

#: Instrumentation scope name of every span we write.
SCOPE_NAME: Final = "asynctelemetry"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_SMALL: Final = SMALL_VARINTS

# Field tags (field number << 3 | wire type) of the messages we write.
_T_RESOURCE_SPANS: Final = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
_T_RESOURCE: Final = b"\x0a"  # ResourceSpans.resource = 1
_T_SCOPE_SPANS: Final = b"\x12"  # ResourceSpans.scope_spans = 2
_T_ATTRS_RESOURCE: Final = b"\x0a"  # Resource.attributes = 1
_T_SCOPE: Final = b"\x0a"  # ScopeSpans.scope = 1
_T_SPAN: Final = b"\x12"  # ScopeSpans.spans = 2
_T_TRACE_ID: Final = b"\x0a\x10"  # Span.trace_id = 1, always 16 bytes
_T_SPAN_ID: Final = b"\x12\x08"  # Span.span_id = 2, always 8 bytes
_T_PARENT_ID: Final = b"\x22\x08"  # Span.parent_span_id = 4, 8 bytes
_T_NAME: Final = b"\x2a"  # Span.name = 5
_KIND_CLIENT: Final = b"\x30\x03"  # Span.kind = 6, SPAN_KIND_CLIENT
_KIND_INTERNAL: Final = b"\x30\x01"  # Span.kind = 6, SPAN_KIND_INTERNAL
_T_START: Final = b"\x39"  # Span.start_time_unix_nano = 7 (fixed64)
_T_END: Final = b"\x41"  # Span.end_time_unix_nano = 8 (fixed64)
_T_SPAN_ATTR: Final = b"\x4a"  # Span.attributes = 9
_T_EVENT: Final = b"\x5a"  # Span.events = 11
_T_STATUS: Final = b"\x7a"  # Span.status = 15
_STATUS_ERROR_CODE: Final = b"\x18\x02"  # Status.code = 3, STATUS_CODE_ERROR
_TRUE: Final = b"\x10\x01"  # AnyValue.bool_value = 2
_FALSE: Final = b"\x10\x00"


#: Per attribute key: (encoded fields by string value, double field head, int field heads by
#: varint length, true field, false field).
_Codec = tuple[dict[str, bytes], bytes, tuple[bytes, ...], bytes, bytes]


def _len_field(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + (_SMALL[n] if n < 128 else encode_varint(n)) + payload


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates: protobuf strings must be valid UTF-8
        return text.encode("utf-8", "replace")


def _string_value(text: str) -> bytes:
    """An ``AnyValue`` holding ``string_value``."""
    return _len_field(b"\x0a", _utf8(text))


def _key_value(key: str, value: object) -> bytes:
    """A ``KeyValue`` message (no tag), for the cached and uncached paths alike."""
    kind = type(value)
    if kind is str:
        any_value = _string_value(value)  # type: ignore[arg-type]
    elif kind is bool:
        any_value = _TRUE if value else _FALSE
    elif kind is int and _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
        any_value = b"\x18" + encode_varint(value)  # type: ignore[arg-type]
    elif kind is int or kind is float:
        any_value = b"\x21" + _pack_double(float(value))  # type: ignore[arg-type]
    elif kind is tuple:  # tags: an ArrayValue of strings
        items = b"".join(_len_field(b"\x0a", _string_value(str(v))) for v in value)  # type: ignore[attr-defined]
        any_value = _len_field(b"\x2a", items)
    else:  # a subclass or an unexpected type: keep its text rather than lose the attribute
        any_value = _string_value(str(value))
    return _len_field(b"\x0a", _utf8(key)) + _len_field(b"\x12", any_value)


def _attribute_list(tag: bytes, attributes: Mapping[str, object]) -> bytes:
    return b"".join(_len_field(tag, _key_value(k, v)) for k, v in attributes.items())


def _id_bytes(hex_id: str | None, size: int) -> bytes | None:
    if hex_id is None:
        return None
    try:
        raw = bytes.fromhex(hex_id)
    except ValueError:
        return None
    return raw if len(raw) == size and any(raw) else None


def resource_attributes(service: str, extra: Mapping[str, str]) -> dict[str, object]:
    """The resource attributes of everything we export for ``service``: ``extra``, then
    ``service.name`` and the ``telemetry.sdk.*`` keys (unless ``extra`` names the SDK)."""
    attributes: dict[str, object] = {"service.name": service}
    attributes.update(extra)
    attributes["service.name"] = service
    attributes.setdefault("telemetry.sdk.name", SCOPE_NAME)
    attributes.setdefault("telemetry.sdk.language", "python")
    return attributes


def _unix_nanos(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class SpanEncoder:
    """Writes OTLP spans for records; keeps caches of the constant pieces between batches.

    One encoder belongs to one exporter (its caches are not shared). ``span(call)`` is the
    per-call cost; ``request(groups)`` wraps encoded spans into an ``ExportTraceServiceRequest``.

    Args:
        service_name: ``service.name`` of the resource for calls whose ``service_name`` is unset.
        resource_attributes: extra resource attributes, sent with every batch.
        scope_version: version of the instrumentation scope (our package version by default).
        max_cached_values: most distinct short string values kept encoded (models, providers…).
    """

    def __init__(
        self,
        *,
        service_name: str,
        resource_attributes: Mapping[str, str] | None = None,
        scope_version: str | None = None,
        max_cached_values: int = 4096,
    ) -> None:
        if scope_version is None:
            from .._version import __version__

            scope_version = __version__
        self.service_name = service_name
        self._resource_attributes = dict(resource_attributes or {})
        self._scope = _len_field(
            _T_SCOPE,
            _len_field(b"\x0a", _utf8(SCOPE_NAME)) + _len_field(b"\x12", _utf8(scope_version)),
        )
        self._resources: dict[str, bytes] = {}
        self._codecs: dict[str, _Codec] = {}
        self._strings: dict[str, bytes] = {}
        self._max_cached = max_cached_values

    # -- per call -------------------------------------------------------------------------------
    def span(self, call: LLMCall) -> bytes:
        """The ``Span`` message for ``call`` (without its field tag)."""
        values = call.__dict__
        parts, end = self._open(
            values["trace_id"],
            values["span_id"],
            values["parent_span_id"],
            values["timestamp"],
            values["duration_ms"],
            span_name(call),
            _KIND_CLIENT,
        )
        self._finish(
            parts,
            call_attributes(call),
            values["status"],
            values["error_type"],
            values["error_message"],
            end,
        )
        return b"".join(parts)

    def step(self, step: TraceSpan) -> bytes:
        """The ``Span`` message for a step (kind INTERNAL, :func:`step_attributes`)."""
        parts, end = self._open(
            step.trace_id,
            step.span_id,
            step.parent_span_id,
            step.timestamp,
            step.duration_ms,
            step_span_name(step.kind, step.name),
            _KIND_INTERNAL,
        )
        self._finish(
            parts, step_attributes(step), step.status, step.error_type, step.error_message, end
        )
        return b"".join(parts)

    def _open(
        self,
        trace_hex: str | None,
        span_hex: str | None,
        parent_hex: str | None,
        timestamp: datetime,
        duration: float | None,
        name: str,
        kind: bytes,
    ) -> tuple[list[bytes], int]:
        """A span's ids, name, kind and times; and its end (unix nanoseconds)."""
        trace_id = _id_bytes(trace_hex, 16) or os.urandom(16)
        span_id = _id_bytes(span_hex, 8) or os.urandom(8)
        parent = _id_bytes(parent_hex, 8)
        start = _unix_nanos(timestamp)
        end = max(start + round(duration * 1e6), start) if duration is not None else start
        parts = [_T_TRACE_ID, trace_id, _T_SPAN_ID, span_id]
        if parent is not None:
            parts += (_T_PARENT_ID, parent)
        parts += (
            _T_NAME,
            # a cached AnyValue string is b"\x0a" + length + text: reuse length + text
            self._cached_string(name)[1:],
            kind,
            _T_START,
            _pack_fixed64(start),
            _T_END,
            _pack_fixed64(end),
        )
        return parts, end

    def record(self, record: LLMCall | TraceSpan) -> bytes:
        """The ``Span`` message of a call or a step."""
        return self.step(record) if record.__class__ is TraceSpan else self.span(record)  # type: ignore[arg-type]

    def _finish(
        self,
        parts: list[bytes],
        attributes: dict[str, Any],  # Any: branches test the exact type
        status: str,
        error_type: str | None,
        message: str | None,
        end: int,
    ) -> None:
        """Append a span's attributes, its exception event and its error status to ``parts``."""
        codecs = self._codecs
        for key, value in attributes.items():
            codec = codecs.get(key)
            if codec is None:
                codec = self._codec(key)
            kind = type(value)
            if kind is str:
                field = codec[0].get(value)
                if field is None:
                    field = self._string_field(codec, key, value)
            elif kind is float:
                field = codec[1] + _pack_double(value)
            elif kind is int and 0 <= value <= _INT64_MAX:
                raw = _SMALL[value] if value < 128 else encode_varint(value)
                field = codec[2][len(raw)] + raw
            elif kind is bool:
                field = codec[3] if value else codec[4]
            else:
                field = _len_field(_T_SPAN_ATTR, _key_value(key, value))
            parts.append(field)
        if status == "error":
            event = exception_event(error_type, message)
            if event is not None:  # the OTel exception event, at the end of the span
                body = (
                    b"\x09"  # Event.time_unix_nano = 1 (fixed64)
                    + _pack_fixed64(end)
                    + _len_field(b"\x12", _utf8(EXCEPTION_EVENT))
                    + _attribute_list(b"\x1a", event)
                )
                parts.append(_len_field(_T_EVENT, body))
            code = _STATUS_ERROR_CODE
            if message:
                code = _len_field(b"\x12", _utf8(message)) + code
            parts += (_T_STATUS, encode_varint(len(code)))
            parts.append(code)

    def _codec(self, key: str) -> _Codec:
        """The cached pieces of one attribute key: encoded fields of its frequent values."""
        prefix = _len_field(b"\x0a", _utf8(key))

        def head(value_len: int) -> bytes:  # Span.attributes tag, KeyValue length, key, value tag
            any_value_len = 1 + value_len
            return (
                _T_SPAN_ATTR
                + encode_varint(len(prefix) + 2 + any_value_len)
                + prefix
                + b"\x12"
                + _SMALL[any_value_len]
            )

        codec: _Codec = (
            {},
            head(8) + b"\x21",
            (b"", *tuple(head(n) + b"\x18" for n in range(1, 11))),
            _len_field(_T_SPAN_ATTR, prefix + _len_field(b"\x12", _TRUE)),
            _len_field(_T_SPAN_ATTR, prefix + _len_field(b"\x12", _FALSE)),
        )
        if len(self._codecs) < self._max_cached:
            self._codecs[key] = codec
        return codec

    def _string_field(self, codec: _Codec, key: str, text: str) -> bytes:
        field = _len_field(
            _T_SPAN_ATTR, _len_field(b"\x0a", _utf8(key)) + _len_field(b"\x12", _string_value(text))
        )
        # Only short values are worth keeping (models, providers, statuses); ids are seen once.
        if len(text) <= 48:
            cache = codec[0]
            if len(cache) >= 256:
                cache.clear()
            cache[text] = field
        return field

    def _cached_string(self, text: str) -> bytes:
        encoded = self._strings.get(text)
        if encoded is None:
            encoded = _string_value(text)
            # Only short values are worth keeping; ids and messages are seen once.
            if len(text) <= 48:
                if len(self._strings) >= self._max_cached:
                    self._strings.clear()
                self._strings[text] = encoded
        return encoded

    # -- per batch ------------------------------------------------------------------------------
    def resource_of(self, call: LLMCall | TraceSpan) -> str:
        """The service name a call or step is grouped under."""
        return call.service_name or self.service_name

    def request(self, groups: Iterable[tuple[str, Sequence[bytes]]]) -> bytes:
        """An ``ExportTraceServiceRequest``: per (service name, encoded spans) one ResourceSpans."""
        out = []
        for service, spans in groups:
            body = b"".join([_T_SPAN + encode_varint(len(s)) + s for s in spans])
            scope_spans = _len_field(_T_SCOPE_SPANS, self._scope + body)
            out.append(_len_field(_T_RESOURCE_SPANS, self._resource(service) + scope_spans))
        return b"".join(out)

    def _resource(self, service: str) -> bytes:
        cached = self._resources.get(service)
        if cached is None:
            attributes = resource_attributes(service, self._resource_attributes)
            cached = _len_field(_T_RESOURCE, _attribute_list(_T_ATTRS_RESOURCE, attributes))
            if len(self._resources) < 256:
                self._resources[service] = cached
        return cached

    def encode(self, calls: Sequence[LLMCall | TraceSpan]) -> bytes:
        """Every call and step of ``calls`` as one serialized ``ExportTraceServiceRequest``."""
        groups: dict[str, list[bytes]] = {}
        for call in calls:
            groups.setdefault(self.resource_of(call), []).append(self.record(call))
        return self.request(groups.items())


def encode_calls(
    calls: Sequence[LLMCall],
    *,
    service_name: str,
    resource_attributes: Mapping[str, str] | None = None,
) -> ExportTraceServiceRequest:
    """Build the OTLP ``ExportTraceServiceRequest`` that carries ``calls``.

    One span per call, kind CLIENT, named ``"{operation} {model}"``, with the record's ids and
    times and :func:`~asynctelemetry._conventions.call_attributes` as attributes; status ERROR
    (description: the error message) and an ``exception`` event (``exception.type``,
    ``exception.message``) for failed calls. Calls are grouped into one resource per
    ``service_name`` (the record's own, else ``service_name``).
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    encoder = SpanEncoder(service_name=service_name, resource_attributes=resource_attributes)
    request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(encoder.encode(calls))
    return request
