"""OTLP/JSON → protobuf: agreement with the protobuf messages, OTLP's JSON rules, bad input."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from asynctelemetry._collector._otlp_json import (
    BadJson,
    json_to_request,
    response_to_json,
    status_body,
)
from tests.hardening.strategies import requests


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """``request`` as an OTLP/JSON exporter writes it: integer enums, hex ids."""
    obj = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource in obj.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                for holder in (span, *span.get("links", ())):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return json.dumps(obj).encode()


def parsed(raw: bytes) -> bytes:
    """A canonical serialization of the request in ``raw``."""
    out: bytes = ExportTraceServiceRequest.FromString(raw).SerializeToString(deterministic=True)
    return out


def full_request() -> ExportTraceServiceRequest:
    """A request using every kind of field of the trace schema."""
    span = Span(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        parent_span_id=bytes(range(8, 16)),
        trace_state="k=v",
        flags=0x301,
        name="chat gpt-4o",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=2**64 - 1,
        end_time_unix_nano=1_767_225_600_250_000_000,
        attributes=[
            KeyValue(key="s", value=AnyValue(string_value="é😀")),
            KeyValue(key="i", value=AnyValue(int_value=-(2**63))),
            KeyValue(key="d", value=AnyValue(double_value=-0.5)),
            KeyValue(key="b", value=AnyValue(bool_value=False)),
            KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff-_")),
            KeyValue(
                key="list",
                value=AnyValue(
                    array_value=ArrayValue(
                        values=[AnyValue(int_value=1), AnyValue(string_value="two"), AnyValue()]
                    )
                ),
            ),
            KeyValue(
                key="map",
                value=AnyValue(
                    kvlist_value=KeyValueList(
                        values=[KeyValue(key="inner", value=AnyValue(double_value=1e300))]
                    )
                ),
            ),
        ],
        dropped_attributes_count=3,
        events=[
            Span.Event(
                time_unix_nano=5,
                name="first token",
                attributes=[KeyValue(key="n", value=AnyValue(int_value=1))],
                dropped_attributes_count=1,
            )
        ],
        dropped_events_count=2,
        links=[
            Span.Link(
                trace_id=bytes(range(16, 32)),
                span_id=bytes(range(24, 32)),
                trace_state="a=b",
                attributes=[KeyValue(key="why", value=AnyValue(string_value="retry"))],
                flags=1,
            )
        ],
        dropped_links_count=4,
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value="svc"))],
                    dropped_attributes_count=1,
                ),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(
                            name="lib",
                            version="1.2",
                            attributes=[KeyValue(key="x", value=AnyValue(bool_value=True))],
                        ),
                        spans=[span, Span(name="empty")],
                        schema_url="https://opentelemetry.io/schemas/1.26.0",
                    )
                ],
                schema_url="https://opentelemetry.io/schemas/1.25.0",
            )
        ]
    )


def test_every_field_kind_round_trips() -> None:
    """Ids, times, enums, flags, events, links, nested values, bytes: the same message."""
    request = full_request()
    assert parsed(json_to_request(otlp_json(request))) == request.SerializeToString(
        deterministic=True
    )


def canonical_nans(value: AnyValue) -> None:
    """Make every NaN double the plain NaN (JSON's "NaN" keeps neither sign nor payload)."""
    kind = value.WhichOneof("value")
    if kind == "double_value" and math.isnan(value.double_value):
        value.double_value = math.nan
    elif kind == "array_value":
        for item in value.array_value.values:
            canonical_nans(item)
    elif kind == "kvlist_value":
        for kv in value.kvlist_value.values:
            canonical_nans(kv.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_json_agrees_with_protobuf(request: ExportTraceServiceRequest) -> None:
    """Any request (hostile strategies), written as OTLP/JSON, encodes to the same message."""
    for resource_spans in request.resource_spans:
        attributes = [*resource_spans.resource.attributes]
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                attributes.extend(span.attributes)
        for kv in attributes:
            canonical_nans(kv.value)
    assert parsed(json_to_request(otlp_json(request))) == request.SerializeToString(
        deterministic=True
    )


def span_json(**span: Any) -> bytes:
    """A request holding one span given as JSON fields."""
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def only_span(raw: bytes) -> Span:
    """The one span of a serialized request."""
    span: Span = ExportTraceServiceRequest.FromString(raw).resource_spans[0].scope_spans[0].spans[0]
    return span


def test_otlp_json_rules() -> None:
    """Hex ids in any case, integer or named enums, int64 as strings or numbers, nulls and
    unknown fields ignored at every level."""
    span = only_span(
        json_to_request(
            span_json(
                traceId="5B8EFFF798038103D269B633813FC60C",
                spanId="eee19b7ec3c1b174",
                parentSpanId=None,
                kind="SPAN_KIND_SERVER",
                startTimeUnixNano="1767225600000000000",
                endTimeUnixNano=1767225600250000000,
                attributes=[
                    {"key": "a", "value": {"intValue": "-5"}},
                    {"key": "b", "value": {"intValue": 7.0}},
                    {"key": "c", "value": {"doubleValue": "Infinity"}},
                    {"key": "d", "value": {"doubleValue": 3}},
                    {"key": "e", "value": {"stringValue": "x", "future": 1}},
                    {"key": "f", "value": None, "future": {"deep": [1]}},
                ],
                status={"code": 1, "unknown": "x"},
                droppedAttributesCount="2",
                unknownTopLevel=[{"a": 1}],
            )
        )
    )
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.span_id.hex() == "eee19b7ec3c1b174" and span.parent_span_id == b""
    assert span.kind == Span.SPAN_KIND_SERVER
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (
        1767225600000000000,
        1767225600250000000,
    )
    values = {kv.key: kv.value for kv in span.attributes}
    assert values["a"].int_value == -5 and values["b"].int_value == 7
    assert values["c"].double_value == float("inf") and values["d"].double_value == 3.0
    assert values["e"].string_value == "x" and not values["f"].HasField("value")
    assert span.status.code == Status.STATUS_CODE_OK and span.dropped_attributes_count == 2
    assert json_to_request(b"{}") == b""
    assert json_to_request(b'{"resourceSpans": []}') == b""


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b'{"resourceSpans": {}}', id="list-is-object"),
        pytest.param(b'{"resourceSpans": [null]}', id="null-in-list"),
        pytest.param(b'{"resourceSpans": [5]}', id="number-as-message"),
        pytest.param(span_json(traceId="abc"), id="odd-hex"),
        pytest.param(span_json(traceId="zz" * 16), id="not-hex"),
        pytest.param(span_json(spanId=12), id="id-not-string"),
        pytest.param(span_json(traceId="é" * 32), id="id-not-ascii"),
        pytest.param(span_json(startTimeUnixNano="-1"), id="fixed64-negative"),
        pytest.param(span_json(startTimeUnixNano=str(2**64)), id="fixed64-too-big"),
        pytest.param(span_json(startTimeUnixNano="1e3"), id="int-exponent-string"),
        pytest.param(span_json(startTimeUnixNano=True), id="int-bool"),
        pytest.param(span_json(startTimeUnixNano=1.5), id="int-fraction"),
        pytest.param(span_json(droppedAttributesCount=2**32), id="uint32-too-big"),
        pytest.param(span_json(kind="NOT_A_KIND"), id="unknown-enum-name"),
        pytest.param(span_json(kind=2**31), id="enum-too-big"),
        pytest.param(span_json(name=5), id="string-not-string"),
        pytest.param(
            span_json(attributes=[{"key": "k", "value": {"boolValue": "true"}}]), id="bool-string"
        ),
        pytest.param(
            span_json(attributes=[{"key": "k", "value": {"intValue": str(2**63)}}]),
            id="int64-too-big",
        ),
        pytest.param(
            span_json(attributes=[{"key": "k", "value": {"doubleValue": "fast"}}]),
            id="double-word",
        ),
        pytest.param(
            span_json(attributes=[{"key": "k", "value": {"bytesValue": "%%%"}}]), id="bad-base64"
        ),
        pytest.param(b"[" * 100_000, id="json-recursion"),
    ],
)
def test_bad_bodies_are_refused(body: bytes) -> None:
    """Bodies that are not OTLP/JSON traces raise BadJson, never anything else."""
    with pytest.raises(BadJson):
        json_to_request(body)


def test_lenient_where_harmless() -> None:
    """Proto field names, URL-safe unpadded base64 and integral floats are accepted."""
    raw = json_to_request(
        span_json(
            span_id="0102030405060708",
            attributes=[{"key": "k", "value": {"bytesValue": "AP-_"}}],
            start_time_unix_nano=5.0,
        )
    )
    span = only_span(raw)
    assert span.span_id == bytes(range(1, 9)) and span.start_time_unix_nano == 5
    assert span.attributes[0].value.bytes_value == b"\x00\xff\xbf"


def test_responses_and_status_bodies() -> None:
    """Answers: {} when empty, partialSuccess in OTLP/JSON; Status bodies in both encodings."""
    assert response_to_json(b"") == b"{}"
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 3
    response.partial_success.error_message = "no model"
    assert json.loads(response_to_json(response.SerializeToString())) == {
        "partialSuccess": {"rejectedSpans": "3", "errorMessage": "no model"}
    }
    as_json = json.loads(status_body(14, "behind", as_json=True, retry_delay=0.5))
    assert as_json == {
        "code": 14,
        "message": "behind",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.500s"}],
    }
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status as RpcStatus

    status = RpcStatus.FromString(status_body(14, "behind", as_json=False, retry_delay=0.5))
    assert (status.code, status.message) == (14, "behind")
    info = RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() == 0.5
    plain = RpcStatus.FromString(status_body(3, "bad", as_json=False, retry_delay=None))
    assert (plain.code, plain.message, len(plain.details)) == (3, "bad", 0)


def test_steps_yield_every_64_spans_with_the_same_result() -> None:
    """The stepwise encoder (what the HTTP receiver drives) yields every 64 spans, same bytes."""
    from asynctelemetry._collector._otlp_json import json_to_request_steps

    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    ScopeSpans(spans=[Span(name=f"s{i}", span_id=i.to_bytes(8, "big"))])
                    for i in range(200)
                ]
            )
        ]
    )
    body = otlp_json(request)
    steps = json_to_request_steps(body)
    yields = 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as finished:
            result = finished.value
            break
    assert yields == 200 // 64
    assert parsed(result) == request.SerializeToString(deterministic=True)
