"""Hypothesis strategies for hostile OTLP trace requests, and the wire helpers they need.

Two levels:

- :func:`spans` / :func:`requests` build real ``opentelemetry.proto`` messages: any ``AnyValue``
  shape (nested arrays and kvlists, bytes, empty values, NaN and infinities, huge and empty
  strings), the attribute keys every convention reads (so values of the wrong type land on keys
  the converter cares about), duplicate keys, ids of every length, any timestamps.
- :func:`raw_requests` serializes those and splices in what a protobuf library refuses to build:
  attribute keys, string values and ``service.name`` that are not valid UTF-8, truncated or
  garbage attribute bytes, and random trailing bytes.

The fuzz target in ``fuzz/`` reuses the wire helpers.
"""

from __future__ import annotations

from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from asynctelemetry._conventions import (
    CONTENT_KEYS,
    CONTENT_PREFIXES,
    FIELD_KEYS,
    MODEL_JSON_KEYS,
    OPENINFERENCE_SPAN_KIND,
    SERVICE_NAME,
)

#: Every key some convention reads, plus content keys and ``service.name``.
KNOWN_KEYS: tuple[str, ...] = tuple(
    sorted(
        {key for keys in FIELD_KEYS.values() for key in keys}
        | set(MODEL_JSON_KEYS)
        | {OPENINFERENCE_SPAN_KIND, SERVICE_NAME}
        | set(CONTENT_KEYS)
        | {f"{prefix}0.content" for prefix in CONTENT_PREFIXES}
    )
)

#: Text that means something to some reader: numbers as text, statuses, kinds, JSON, SQL.
SPECIAL_TEXT: tuple[str, ...] = (
    "",
    "0",
    "-1",
    "12",
    "1.5",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "9007199254740993",
    "ok",
    "error",
    "cancelled",
    "LLM",
    "EMBEDDING",
    "CHAIN",
    "chat",
    "embeddings",
    "text_completion",
    "gpt-4o",
    "claude-sonnet-4-5",
    '{"model": "gpt-4o", "stream": true}',
    '{"model": 5}',
    '{"model_name": ""}',
    "[1, 2",
    "[" * 5000,
    '{"a":' * 3000,
    "'; DROP TABLE calls; --",
    "\x00",
    "m" * 513,
    "x" * 4097,
    "é" * 70_000,
)

# Proto string fields refuse lone surrogates; everything else goes.
_CHARS = st.characters(exclude_categories=("Cs",))
texts = st.one_of(st.text(_CHARS, max_size=40), st.sampled_from(SPECIAL_TEXT))
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(_CHARS, max_size=30))
int64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from((0, 1, -1, 2**53, 2**53 + 1, 999, 1000, 2**63 - 1, -(2**63))),
)


def _scalar(kind: str, value: object) -> AnyValue:
    return AnyValue(**{kind: value})


scalar_values = st.one_of(
    texts.map(lambda v: _scalar("string_value", v)),
    st.booleans().map(lambda v: _scalar("bool_value", v)),
    int64.map(lambda v: _scalar("int_value", v)),
    st.floats().map(lambda v: _scalar("double_value", v)),
    st.binary(max_size=64).map(lambda v: _scalar("bytes_value", v)),
    st.just(AnyValue()),  # a KeyValue whose value is set but empty
)


def _array(values: list[AnyValue]) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=values))


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs]))


any_values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=5).map(_array),
        st.lists(st.tuples(keys, children), max_size=4).map(_kvlist),
    ),
    max_leaves=10,
)


@st.composite
def attributes(draw: st.DrawFn, max_size: int = 24) -> list[KeyValue]:
    """Attributes with known and random keys, some repeated with a different value."""
    pairs = draw(st.lists(st.tuples(keys, any_values), max_size=max_size))
    out = [KeyValue(key=k, value=v) for k, v in pairs]
    if out and draw(st.booleans()):
        again = draw(st.sampled_from(out))
        out.append(KeyValue(key=again.key, value=draw(any_values)))
    if draw(st.integers(0, 9)) == 0:  # many attributes: past the 128 kept per call
        out.extend(KeyValue(key=f"extra.{i}", value=_scalar("int_value", i)) for i in range(140))
    return out


ids = st.one_of(
    st.binary(max_size=20),
    st.binary(min_size=16, max_size=16),
    st.just(b""),
    st.binary(min_size=129, max_size=300),  # hex longer than a call_id may be (found by atheris)
)
times = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from((0, 1, 1_767_225_600_000_000_000, 2**63, 2**64 - 1)),
)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    """One span: any ids, times, status and attributes (often looking like an LLM call)."""
    span = Span(
        name=draw(texts),
        trace_id=draw(ids),
        span_id=draw(ids),
        parent_span_id=draw(ids),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),
        attributes=draw(attributes()),
    )
    if draw(st.booleans()):  # most fuzz spans should reach the record-building code
        model_key = draw(st.sampled_from(("gen_ai.request.model", "llm.model_name", "llm.model")))
        span.attributes.append(KeyValue(key=model_key, value=_scalar("string_value", "gpt-4o")))
    span.status.CopyFrom(Status(code=draw(st.integers(-(2**31), 2**31 - 1)), message=draw(texts)))
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """Up to 3 resources of 2 scopes of 4 spans; ``service.name`` of any shape."""
    resource_spans = []
    for _ in range(draw(st.integers(0, 3))):
        resource = Resource(attributes=draw(attributes(max_size=3)))
        if draw(st.booleans()):
            resource.attributes.append(KeyValue(key=SERVICE_NAME, value=draw(any_values)))
        scopes = [
            ScopeSpans(spans=draw(st.lists(spans(), max_size=4)))
            for _ in range(draw(st.integers(0, 2)))
        ]
        resource_spans.append(ResourceSpans(resource=resource, scope_spans=scopes))
    return ExportTraceServiceRequest(resource_spans=resource_spans)


# -- raw wire bytes ------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def raw_string_attribute(key: bytes, value: bytes) -> bytes:
    """A serialized ``KeyValue`` whose key and string value are any bytes (invalid UTF-8 too)."""
    return field(1, key) + field(2, field(1, value))


def raw_request(span: bytes, resource: bytes = b"") -> bytes:
    """A serialized request of one resource, one scope and one serialized span."""
    return field(1, (field(1, resource) if resource else b"") + field(2, field(2, span)))


invalid_utf8 = st.sampled_from(
    (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"gpt-\x80", b"\xf4\x90\x80\x80", b"ok\xc0\xaf")
)


@st.composite
def hostile_attributes(draw: st.DrawFn) -> bytes:
    """Serialized span attributes (field 9) that no protobuf library would produce."""
    choice = draw(st.integers(0, 4))
    key = draw(st.one_of(invalid_utf8, st.sampled_from(KNOWN_KEYS).map(str.encode)))
    if choice == 0:  # known or invalid key, string value not valid UTF-8
        payload = raw_string_attribute(key, draw(invalid_utf8))
    elif choice == 1:  # invalid key, valid value
        payload = raw_string_attribute(draw(invalid_utf8), b"gpt-4o")
    elif choice == 2:  # a truncated KeyValue: the value's length runs past the end
        payload = field(1, key) + b"\x12\x7f\x0a"
    elif choice == 3:  # garbage bytes as the KeyValue
        payload = draw(st.binary(max_size=32))
    else:  # an array holding a string that is not UTF-8, and a double cut short
        array = field(5, field(1, field(1, draw(invalid_utf8))) + field(1, b"\x21\x00"))
        payload = field(1, key) + field(2, array)
    return field(9, payload)


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Serialized requests: valid ones, ones with hostile bytes spliced in, garbage tails."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return bytes(draw(requests()).SerializeToString())
    if kind == 1:
        span = draw(spans()).SerializeToString()
        extra = b"".join(draw(st.lists(hostile_attributes(), min_size=1, max_size=4)))
        name = draw(st.one_of(invalid_utf8, st.just(b"svc")))
        resource = field(1, raw_string_attribute(SERVICE_NAME.encode(), name))
        return raw_request(span + extra, resource)
    if kind == 2:  # a valid request cut short or with junk after it
        raw = bytes(draw(requests()).SerializeToString())
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + draw(st.binary(max_size=16))
    return bytes(draw(st.binary(max_size=256)))
