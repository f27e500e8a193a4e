"""The hand-written OTLP encoder against messages built field by field with protobuf."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from asynctelemetry import LLMCall, __version__
from asynctelemetry._conventions import call_attributes, span_name
from asynctelemetry._export import SpanEncoder, encode_calls
from tests.conftest import make_call

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
PARENT = "00f067aa0ba902b7"


def _any(value: object) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, int):  # beyond int64: sent as a double rather than lost
        return common_pb2.AnyValue(double_value=float(value))
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, tuple):
        array = common_pb2.ArrayValue(values=[_any(v) for v in value])
        return common_pb2.AnyValue(array_value=array)
    return common_pb2.AnyValue(string_value=str(value))


def _reference(call: LLMCall, service: str) -> ExportTraceServiceRequest:
    """The request built with the protobuf library, field by field."""
    start = int(call.timestamp.timestamp()) * 10**9 + call.timestamp.microsecond * 1000
    span = trace_pb2.Span(
        trace_id=bytes.fromhex(call.trace_id or ""),
        span_id=bytes.fromhex(call.span_id or ""),
        parent_span_id=bytes.fromhex(call.parent_span_id or ""),
        name=span_name(call),
        kind=trace_pb2.Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + round((call.duration_ms or 0) * 1e6),
        attributes=[
            common_pb2.KeyValue(key=k, value=_any(v)) for k, v in call_attributes(call).items()
        ],
    )
    if call.status == "error":
        span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        span.status.message = call.error_message or ""
        event = {"exception.type": call.error_type, "exception.message": call.error_message}
        if any(event.values()):
            span.events.add(
                time_unix_nano=span.end_time_unix_nano,
                name="exception",
                attributes=[
                    common_pb2.KeyValue(key=k, value=_any(v))
                    for k, v in event.items()
                    if v is not None
                ],
            )
    resource = resource_pb2.Resource(
        attributes=[
            common_pb2.KeyValue(key=k, value=_any(v))
            for k, v in {
                "service.name": service,
                "deployment.environment": "test",
                "telemetry.sdk.name": "asynctelemetry",
                "telemetry.sdk.language": "python",
            }.items()
        ]
    )
    scope = common_pb2.InstrumentationScope(name="asynctelemetry", version=__version__)
    return ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource,
                scope_spans=[trace_pb2.ScopeSpans(scope=scope, spans=[span])],
            )
        ]
    )


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="plain"),
        pytest.param({"status": "error", "error_type": "RateLimitError"}, id="error"),
        pytest.param(
            {"status": "error", "error_type": "APIError", "error_message": "429 slow ✓ down"},
            id="error-message",
        ),
        pytest.param({"status": "error", "error_message": "no type"}, id="message-only"),
        pytest.param(
            {"user_id": "u-7", "agent_name": "planner", "tags": ("beta", "éé")},
            id="user-agent-tags",
        ),
        pytest.param({"parent_span_id": PARENT, "cache_hit": "semantic"}, id="parent"),
        pytest.param({"model": "modèle-✓" * 20, "session_id": "s" * 300}, id="long-unicode"),
        pytest.param(
            {
                "attributes": {
                    "big": 2**63 + 5,
                    "neg": -7,
                    "flag": True,
                    "off": False,
                    "ratio": 0.25,
                    "large": 1 << 40,
                }
            },
            id="attribute-types",
        ),
        pytest.param({"duration_ms": None, "ttft_ms": None, "cost_usd": None}, id="sparse"),
    ],
)
def test_encoding_matches_protobuf_built_messages(fields: dict[str, object]) -> None:
    """The wire bytes parse to exactly the message the protobuf library builds."""
    call = make_call(3, trace_id=TRACE, span_id=SPAN, request_model="gpt-4o", **fields)
    got = encode_calls(
        [call], service_name="svc", resource_attributes={"deployment.environment": "test"}
    )
    assert got == _reference(call, "svc")


def test_each_encoder_cache_keeps_results_identical() -> None:
    """Encoding the same calls twice (warm caches) gives the same bytes."""
    calls = [make_call(i, trace_id=TRACE, span_id=SPAN) for i in range(50)]
    encoder = SpanEncoder(service_name="svc")
    assert encoder.encode(calls) == encoder.encode(calls)


def test_missing_ids_are_generated_with_valid_sizes() -> None:
    """A record without ids still gets a 16-byte trace id and an 8-byte span id, no parent."""
    call = make_call(1, trace_id=None, span_id="not-hex", parent_span_id="00")
    span = encode_calls([call], service_name="svc").resource_spans[0].scope_spans[0].spans[0]
    assert len(span.trace_id) == 16 and len(span.span_id) == 8
    assert span.parent_span_id == b""
    attrs = {kv.key: kv.value.string_value for kv in span.attributes}
    assert attrs["request_id"] == call.call_id


def test_calls_are_grouped_by_their_service_name() -> None:
    """Calls from two services go in two resources; unset ones use the exporter's name."""
    calls = [
        make_call(0, service_name="billing"),
        make_call(1),
        make_call(2, service_name="billing"),
    ]
    request = encode_calls(calls, service_name="default")
    by_service = {
        next(kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"): [
            s.name for ss in rs.scope_spans for s in ss.spans
        ]
        for rs in request.resource_spans
    }
    assert by_service == {
        "billing": ["chat gpt-4o", "chat gemini-2.5-flash"],
        "default": ["chat claude-sonnet-4-5"],
    }


def test_times_are_exact_nanoseconds() -> None:
    """Start is the timestamp to the microsecond; end adds the rounded duration in ns."""
    moment = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    call = make_call(0, timestamp=moment, duration_ms=1234.5678915)
    span = encode_calls([call], service_name="s").resource_spans[0].scope_spans[0].spans[0]
    assert span.start_time_unix_nano == 1772600767_891011000
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_234_567_892
