"""Helpers shared by the collector tests: encode records as an exporter would, send them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from asynctelemetry._conventions import call_attributes, span_name

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from asynctelemetry import LLMCall

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def any_value(value: object) -> AnyValue:
    """An AnyValue holding ``value`` (bool before int: bool is an int in Python)."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, object]) -> list[KeyValue]:
    """Attributes as OTLP KeyValues, in order."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def nanos(moment: datetime) -> int:
    """Exact Unix nanoseconds of an aware datetime (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def span_of(call: LLMCall) -> Span:
    """The span our tracer writes for ``call``: ids, times, name, attributes, status (its
    description the error message)."""
    start = nanos(call.timestamp)
    end = start + round(call.duration_ms * 1e6) if call.duration_ms is not None else start
    span = Span(
        name=span_name(call),
        trace_id=bytes.fromhex(call.trace_id) if call.trace_id else b"",
        span_id=bytes.fromhex(call.span_id) if call.span_id else b"",
        parent_span_id=bytes.fromhex(call.parent_span_id) if call.parent_span_id else b"",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=key_values(call_attributes(call)),
    )
    if call.status == "error":
        span.status.CopyFrom(
            Status(code=Status.STATUS_CODE_ERROR, message=call.error_message or "")
        )
    return span


def request_of(
    spans: Iterable[Span], service_name: str | None = "svc"
) -> ExportTraceServiceRequest:
    """One resource (with ``service.name`` when given) holding ``spans``."""
    resource = Resource(
        attributes=key_values({"service.name": service_name} if service_name else {})
    )
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )


def request_for(calls: Iterable[LLMCall]) -> ExportTraceServiceRequest:
    """Calls grouped by service name into one request, as an exporter sends them."""
    groups: dict[str | None, list[Span]] = {}
    for call in calls:
        groups.setdefault(call.service_name, []).append(span_of(call))
    request = ExportTraceServiceRequest()
    for service, spans in groups.items():
        request.resource_spans.extend(request_of(spans, service).resource_spans)
    return request


def llm_span(attributes: Mapping[str, object], **fields: object) -> Span:
    """A span with the given attributes and a start/end 250 ms apart."""
    span = Span(
        name="chat",
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        start_time_unix_nano=1_767_225_600_000_000_000,
        end_time_unix_nano=1_767_225_600_250_000_000,
        attributes=key_values(attributes),
    )
    for name, value in fields.items():
        if isinstance(value, Status):
            span.status.CopyFrom(value)
        else:
            setattr(span, name, value)
    return span


async def export(
    target: str,
    request: ExportTraceServiceRequest | bytes,
    *,
    metadata: tuple[tuple[str, str], ...] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    options: tuple[tuple[str, object], ...] = (),
) -> ExportTraceServiceResponse:
    """Send one Export with a real grpc.aio client; raises ``grpc.aio.AioRpcError`` on failure."""
    raw = request if isinstance(request, bytes) else request.SerializeToString()
    channel = (
        grpc.aio.secure_channel(target, credentials, options=options)
        if credentials is not None
        else grpc.aio.insecure_channel(target, options=options)
    )
    async with channel:
        call = channel.unary_unary(
            EXPORT, response_deserializer=ExportTraceServiceResponse.FromString
        )
        return await call(raw, metadata=metadata, timeout=10)
