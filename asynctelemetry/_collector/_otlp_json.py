"""OTLP/JSON trace requests to protobuf wire bytes, and the JSON answers of the HTTP receiver.

OTLP/JSON is proto3's JSON mapping with its own rules: trace and span ids are hex (not base64),
enums are integers (names are accepted too), 64-bit integers may be numbers or decimal strings,
and fields with unknown names are ignored. ``google.protobuf.json_format`` walks messages in
Python at about half a millisecond per span, so this module encodes the parsed JSON straight to
wire format instead, with one table per message type built once from the generated
descriptors (so field numbers and types cannot drift from ``opentelemetry-proto``). The result
is an ``ExportTraceServiceRequest`` byte string for the collector's one ingest path.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from typing import TYPE_CHECKING, Any, Final

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from .._wire import encode_varint, rpc_status
from ._wire import MAX_VALUE_DEPTH

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from google.protobuf.descriptor import Descriptor

__all__ = [
    "BadJson",
    "TooDeepForTheLoop",
    "json_to_request",
    "json_to_request_steps",
    "response_to_json",
    "status_body",
]

#: Deepest nesting of messages accepted (AnyValue arrays and kvlists nest).
MAX_DEPTH: Final = 64
_U64: Final = (1 << 64) - 1
_HEX_IDS: Final = frozenset(
    {
        ("opentelemetry.proto.trace.v1.Span", "trace_id"),
        ("opentelemetry.proto.trace.v1.Span", "span_id"),
        ("opentelemetry.proto.trace.v1.Span", "parent_span_id"),
        ("opentelemetry.proto.trace.v1.Span.Link", "trace_id"),
        ("opentelemetry.proto.trace.v1.Span.Link", "span_id"),
    }
)
_FLOAT_WORDS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

_Out = list[bytes]
_Table = dict[str, "Callable[[Any, _Out, int], None]"]


class BadJson(ValueError):
    """The body is not an OTLP/JSON ``ExportTraceServiceRequest``."""


def _integer(value: Any, low: int, high: int) -> int:
    """An integer from a JSON number or decimal string, within ``low..high``."""
    kind = type(value)
    if kind is int:
        number: int = value
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            raise BadJson(f"not an integer: {value[:40]!r}") from None
    elif kind is float and value.is_integer():
        number = int(value)
    else:
        raise BadJson(f"not an integer: {value!r:.40}")
    if not low <= number <= high:
        raise BadJson(f"integer out of range: {number}")
    return number


def _number(value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        return float(value)
    if kind is str:
        word = _FLOAT_WORDS.get(value)
        if word is not None:
            return word
        try:
            return float(value)
        except ValueError:
            raise BadJson(f"not a number: {value[:40]!r}") from None
    raise BadJson(f"not a number: {value!r:.40}")


def _bytes_b64(value: Any) -> bytes:
    if type(value) is not str:
        raise BadJson("bytes must be a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadJson("bytes are not valid base64") from None


def _bytes_hex(value: Any) -> bytes:
    if type(value) is not str:
        raise BadJson("ids must be hex strings")
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise BadJson(f"id is not hex: {value[:40]!r}") from None


def _message(table: _Table, obj: Any, out: _Out, depth: int) -> None:
    """Append the fields of JSON object ``obj`` (unknown names and nulls skipped)."""
    if type(obj) is not dict:
        raise BadJson("expected a JSON object")
    if depth > MAX_DEPTH:
        raise BadJson("messages nested too deeply")
    for key, value in obj.items():
        write = table.get(key)
        if write is not None and value is not None:
            write(value, out, depth)


def _scalar(field: FieldDescriptor, hex_id: bool) -> Callable[[Any], bytes]:
    """A function from a JSON value to the field's encoded value (without the tag)."""
    t = FieldDescriptor
    kind = field.type
    if kind == t.TYPE_STRING:

        def string(value: Any) -> bytes:
            if type(value) is not str:
                raise BadJson(f"{field.json_name} must be a string")
            raw = value.encode(errors="surrogatepass")  # a lone surrogate: that value's defect
            return encode_varint(len(raw)) + raw

        return string
    if kind == t.TYPE_BYTES:
        decode = _bytes_hex if hex_id else _bytes_b64

        def blob(value: Any) -> bytes:
            raw = decode(value)
            return encode_varint(len(raw)) + raw

        return blob
    if kind == t.TYPE_BOOL:

        def boolean(value: Any) -> bytes:
            if type(value) is not bool:
                raise BadJson(f"{field.json_name} must be true or false")
            return b"\x01" if value else b"\x00"

        return boolean
    if kind == t.TYPE_DOUBLE:
        return lambda value: struct.pack("<d", _number(value))
    if kind == t.TYPE_FLOAT:
        return lambda value: struct.pack("<f", _number(value))
    if kind == t.TYPE_FIXED64:
        return lambda value: struct.pack("<Q", _integer(value, 0, _U64))
    if kind == t.TYPE_SFIXED64:
        return lambda value: struct.pack("<q", _integer(value, -(1 << 63), (1 << 63) - 1))
    if kind == t.TYPE_FIXED32:
        return lambda value: struct.pack("<I", _integer(value, 0, (1 << 32) - 1))
    if kind == t.TYPE_SFIXED32:
        return lambda value: struct.pack("<i", _integer(value, -(1 << 31), (1 << 31) - 1))
    if kind in (t.TYPE_UINT64, t.TYPE_UINT32):
        high = _U64 if kind == t.TYPE_UINT64 else (1 << 32) - 1
        return lambda value: encode_varint(_integer(value, 0, high))
    if kind in (t.TYPE_INT64, t.TYPE_INT32):
        bits = 63 if kind == t.TYPE_INT64 else 31
        low, high = -(1 << bits), (1 << bits) - 1
        return lambda value: encode_varint(_integer(value, low, high) & _U64)
    if kind == t.TYPE_ENUM:
        names = {v.name: v.number for v in field.enum_type.values}

        def enum(value: Any) -> bytes:
            if type(value) is str and value in names:
                return encode_varint(names[value] & _U64)
            return encode_varint(_integer(value, -(1 << 31), (1 << 31) - 1) & _U64)

        return enum
    raise TypeError(f"unsupported field type {kind} of {field.full_name}")  # pragma: no cover


_WIRE_TYPE: Final = {
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_SFIXED64: 1,
    FieldDescriptor.TYPE_FLOAT: 5,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_SFIXED32: 5,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}


def _writer(
    field: FieldDescriptor, owner: Descriptor, tables: dict[str, _Table]
) -> Callable[[Any, _Out, int], None]:
    """The function that appends ``field`` (tag and value) for a JSON value."""
    tag = encode_varint(field.number << 3 | _WIRE_TYPE.get(field.type, 0))
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        sub = _table(field.message_type, tables)

        def one(value: Any, out: _Out, depth: int) -> None:
            parts: _Out = []
            _message(sub, value, parts, depth + 1)
            payload = b"".join(parts)
            out.append(tag + encode_varint(len(payload)) + payload)

        if field.message_type.full_name in (_ANY_VALUE, _KEY_VALUE):
            fast = _fast_writer(field.message_type.full_name, tag, one)
            return _repeat(fast, field.json_name) if _is_repeated(field) else fast
    else:
        encode = _scalar(field, (owner.full_name, field.name) in _HEX_IDS)

        def one(value: Any, out: _Out, depth: int) -> None:
            out.append(tag + encode(value))

    return _repeat(one, field.json_name) if _is_repeated(field) else one


def _repeat(one: Callable[[Any, _Out, int], None], name: str) -> Callable[[Any, _Out, int], None]:
    """The writer of a repeated field whose items ``one`` writes."""

    def repeated(value: Any, out: _Out, depth: int) -> None:
        if type(value) is not list:
            raise BadJson(f"{name} must be a list")
        for item in value:
            if item is None:
                raise BadJson(f"{name} holds a null")
            one(item, out, depth)

    return repeated


_ANY_VALUE: Final = "opentelemetry.proto.common.v1.AnyValue"
_KEY_VALUE: Final = "opentelemetry.proto.common.v1.KeyValue"
_KEY_CACHE_SIZE: Final = 1024


def _scalar_any(value: Any) -> bytes | None:
    """The payload of a one-scalar AnyValue (most attribute values), else None.

    Field numbers are AnyValue's: string 1, bool 2, int 3, double 4.
    """
    if type(value) is not dict or len(value) != 1:
        return None
    ((key, item),) = value.items()
    kind = type(item)
    if key == "stringValue" and kind is str:
        # A lone surrogate ("\ud800") or a byte that was not UTF-8 is kept as invalid UTF-8:
        # the converter counts it as that attribute's defect, as for the same bytes over gRPC.
        raw: bytes = item.encode(errors="surrogatepass")
        size = len(raw)
        return b"\x0a" + encode_varint(size) + raw
    if key == "intValue" and kind is not float:
        return b"\x18" + encode_varint(_integer(item, -(1 << 63), (1 << 63) - 1) & _U64)
    if key == "boolValue" and kind is bool:
        return b"\x10\x01" if item else b"\x10\x00"
    if key == "doubleValue":
        return b"\x21" + struct.pack("<d", _number(item))
    return None


def _fast_writer(
    message: str, tag: bytes, generic: Callable[[Any, _Out, int], None]
) -> Callable[[Any, _Out, int], None]:
    """``generic`` with a fast path for scalar AnyValues and ``{key, scalar value}`` KeyValues."""
    if message == _ANY_VALUE:

        def any_value(value: Any, out: _Out, depth: int) -> None:
            inner = _scalar_any(value)
            if inner is None:
                inner = _any_payload(value, 1)
            out.append(tag + encode_varint(len(inner)) + inner)

        return any_value

    keys: dict[str, bytes] = {}  # encoded key fields: the same few keys come back in every span

    def key_value(value: Any, out: _Out, depth: int) -> None:
        if type(value) is dict and len(value) == 2:
            key = value.get("key")
            inner = _scalar_any(value.get("value")) if type(key) is str else None
            if inner is not None and key is not None:
                field = keys.get(key)
                if field is None:
                    name = key.encode(errors="surrogatepass")
                    field = b"\x0a" + encode_varint(len(name)) + name + b"\x12"
                    if len(keys) >= _KEY_CACHE_SIZE:
                        keys.clear()
                    keys[key] = field
                size = len(inner)
                payload = field + encode_varint(size) + inner
                size = len(payload)
                out.append(tag + encode_varint(size) + payload)
                return
        generic(value, out, depth)

    return key_value


_ARRAY_NAMES: Final = frozenset({"arrayValue", "array_value"})
_KVLIST_NAMES: Final = frozenset({"kvlistValue", "kvlist_value"})


def _any_payload(value: Any, level: int) -> bytes:
    """The serialized ``AnyValue`` of a JSON one at nesting ``level`` (an attribute's value is
    level 1). Arrays and maps are walked here, not by the generic tables, so that a value
    nested deeper than ``MAX_VALUE_DEPTH`` is cut there (an empty ``AnyValue`` at the level past
    the limit, which the converter counts as that attribute's ``too_deep`` defect) instead of
    refusing the request: the same limit and the same outcome as over OTLP/gRPC."""
    inner = _scalar_any(value)
    if inner is not None:
        return inner
    if type(value) is not dict:
        raise BadJson("expected a JSON object")
    if level > MAX_VALUE_DEPTH:
        return b""
    parts: _Out = []
    for key, item in value.items():
        if item is None:
            continue
        if key in _ARRAY_NAMES:
            items = _object(item).get("values")
            payload = b"".join(
                _length_delimited(b"\x0a", [_any_payload(one, level + 1)])
                for one in (() if items is None else _items(items, "values"))
            )
            parts.append(_length_delimited(b"\x2a", [payload]))
        elif key in _KVLIST_NAMES:
            entries = _object(item).get("values")
            kv_parts: _Out = []
            for entry in () if entries is None else _items(entries, "values"):
                entry_key, entry_value = _object(entry).get("key"), entry.get("value")
                kv: _Out = []
                if entry_key is not None:
                    kv.append(b"\x0a" + _STRING(entry_key))
                if entry_value is not None:
                    kv.append(_length_delimited(b"\x12", [_any_payload(entry_value, level + 1)]))
                kv_parts.append(_length_delimited(b"\x0a", kv))
            parts.append(_length_delimited(b"\x32", kv_parts))
        else:
            write = _TABLES[_ANY_VALUE].get(key)
            if write is not None:
                write(item, parts, 0)
    return b"".join(parts)


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 5.28; ``label`` is deprecated
    if repeated is not None:
        return bool(repeated)
    return bool(field.label == FieldDescriptor.LABEL_REPEATED)  # pragma: no cover


def _table(descriptor: Descriptor, tables: dict[str, _Table]) -> _Table:
    """JSON name (and proto name) → writer, for one message type; recursive types share."""
    table = tables.get(descriptor.full_name)
    if table is None:
        table = tables[descriptor.full_name] = {}
        for field in descriptor.fields:
            write = _writer(field, descriptor, tables)
            table[field.json_name] = write
            table.setdefault(field.name, write)
    return table


_TABLES: Final[dict[str, _Table]] = {}
_REQUEST: Final = _table(ExportTraceServiceRequest.DESCRIPTOR, _TABLES)
#: A JSON string as a length-prefixed UTF-8 field value (the ``KeyValue.key`` encoder).
_STRING: Final = _scalar(KeyValue.DESCRIPTOR.fields_by_name["key"], False)
_RESOURCE_SPANS: Final = _TABLES["opentelemetry.proto.trace.v1.ResourceSpans"]
_SCOPE_SPANS: Final = _TABLES["opentelemetry.proto.trace.v1.ScopeSpans"]
_SPAN: Final = _TABLES["opentelemetry.proto.trace.v1.Span"]
# Tags of the three repeated fields the stepwise encoder walks itself (all length-delimited).
_TAG_RESOURCE_SPANS: Final = encode_varint(1 << 3 | 2)  # ExportTraceServiceRequest.resource_spans
_TAG_SCOPE_SPANS: Final = encode_varint(2 << 3 | 2)  # ResourceSpans.scope_spans
_TAG_SPANS: Final = encode_varint(2 << 3 | 2)  # ScopeSpans.spans
#: Spans encoded between two yields of :func:`json_to_request_steps` (a few milliseconds).
SPANS_PER_STEP: Final = 64


#: JSON nesting kept by :func:`parse_json` when the body nests deeper than ``json`` can parse:
#: enough for any span field plus ``MAX_VALUE_DEPTH`` levels of values (at most 4 JSON levels
#: each), past which the encoder reads nothing anyway.
CUT_DEPTH: Final = 16 + 4 * MAX_VALUE_DEPTH
_STRUCTURE: Final = re.compile(r'[\[\]{}"]')
_STRING_REST: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class TooDeepForTheLoop(Exception):
    """The body nests deeper than ``json`` parses; cutting it is a linear pass in Python, too
    long for the event loop: the caller hands the body to the worker process."""


def parse_json(body: bytes, *, cut: bool = True) -> Any:
    """``json.loads`` for a request body, never refusing it for a value's sake.

    Bytes that are not UTF-8 become lone surrogates (the values holding them are counted as
    defects later, as over gRPC). A body nesting deeper than the ``json`` module can parse has
    everything past :data:`CUT_DEPTH` levels replaced by ``{}`` first (:func:`cut_deep`).

    Raises:
        BadJson: the body is not JSON.
        TooDeepForTheLoop: the body would need cutting and ``cut`` is False.
    """
    text = body.decode("utf-8", "surrogateescape")
    try:
        try:
            return json.loads(text)
        except RecursionError:
            if not cut:
                raise TooDeepForTheLoop from None
            return json.loads(cut_deep(text, CUT_DEPTH))
    except (ValueError, RecursionError) as exc:
        raise BadJson(f"not JSON: {exc}") from None


def cut_deep(text: str, limit: int) -> str:
    """``text`` with every JSON array or object opened deeper than ``limit`` replaced by ``{}``.

    One pass over the brackets and strings (linear in the text); malformed JSON is left for
    ``json.loads`` to refuse.
    """
    out: list[str] = []
    depth = keep = start = pos = 0
    search, rest = _STRUCTURE.search, _STRING_REST.match
    while (found := search(text, pos)) is not None:
        at = found.start()
        char = text[at]
        if char == '"':
            end = rest(text, at + 1)
            if end is None:
                break  # an unterminated string
            pos = end.end()
            continue
        if char in "[{":
            depth += 1
            if depth == limit + 1:
                start = at
        else:
            if depth == limit + 1:
                out.append(text[keep:start])
                out.append("{}")
                keep = at + 1
            depth -= 1
        pos = at + 1
    out.append(text[keep:])
    return "".join(out)


def _items(value: Any, name: str) -> list[Any]:
    if type(value) is not list:
        raise BadJson(f"{name} must be a list")
    return value


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise BadJson("expected a JSON object")
    return value


def _length_delimited(tag: bytes, parts: _Out) -> bytes:
    payload = b"".join(parts)
    return tag + encode_varint(len(payload)) + payload


def json_to_request_steps(
    body: bytes, every: int = SPANS_PER_STEP, *, cut: bool = True
) -> Generator[None, None, bytes]:
    """:func:`json_to_request` in steps: yields after every ``every`` spans, returns the bytes.

    The caller (the HTTP receiver, for small bodies) gives the event loop a turn at each yield
    (``json.loads`` runs in one piece). ``cut``: see :func:`parse_json`.
    """
    obj = _object(parse_json(body, cut=cut))
    out: _Out = []
    done = 0
    for key, value in obj.items():
        if value is None:
            continue
        if _REQUEST.get(key) is not _REQUEST["resourceSpans"]:
            write = _REQUEST.get(key)
            if write is not None:
                write(value, out, 0)
            continue
        for resource_spans in _items(value, key):
            resource_parts: _Out = []
            for r_key, r_value in _object(resource_spans).items():
                r_write = _RESOURCE_SPANS.get(r_key)
                if r_write is None or r_value is None:
                    continue
                if r_write is not _RESOURCE_SPANS["scopeSpans"]:
                    r_write(r_value, resource_parts, 1)
                    continue
                for scope_spans in _items(r_value, r_key):
                    scope_parts: _Out = []
                    for s_key, s_value in _object(scope_spans).items():
                        s_write = _SCOPE_SPANS.get(s_key)
                        if s_write is None or s_value is None:
                            continue
                        if s_write is not _SCOPE_SPANS["spans"]:
                            s_write(s_value, scope_parts, 2)
                            continue
                        for span in _items(s_value, s_key):
                            if span is None:
                                raise BadJson("spans holds a null")
                            span_parts: _Out = []
                            _message(_SPAN, span, span_parts, 3)
                            scope_parts.append(_length_delimited(_TAG_SPANS, span_parts))
                            done += 1
                            if done % every == 0:
                                yield
                    resource_parts.append(_length_delimited(_TAG_SCOPE_SPANS, scope_parts))
            out.append(_length_delimited(_TAG_RESOURCE_SPANS, resource_parts))
    return b"".join(out)


def json_to_request(body: bytes) -> bytes:
    """A serialized ``ExportTraceServiceRequest`` from an OTLP/JSON body.

    Raises:
        BadJson: the body is not JSON, or not an ``ExportTraceServiceRequest`` in OTLP/JSON.
    """
    steps = json_to_request_steps(body)
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            result: bytes = finished.value
            return result


def response_to_json(raw: bytes) -> bytes:
    """An ``ExportTraceServiceResponse`` in OTLP/JSON (``{}`` when it is empty)."""
    if not raw:
        return b"{}"
    response = ExportTraceServiceResponse.FromString(raw)
    text: str = json_format.MessageToJson(response, indent=None)
    return text.encode()


def status_body(code: int, message: str, *, as_json: bool, retry_delay: float | None) -> bytes:
    """A ``google.rpc.Status`` (what OTLP/HTTP error answers carry), as protobuf or JSON.

    Args:
        code: the gRPC status code matching the HTTP status.
        message: a developer-facing message.
        as_json: JSON for JSON requests, protobuf otherwise.
        retry_delay: when given, a ``google.rpc.RetryInfo`` detail with that delay.
    """
    if as_json:
        obj: dict[str, Any] = {"code": code, "message": message}
        if retry_delay is not None:
            obj["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_delay:.3f}s",
                }
            ]
        return json.dumps(obj).encode()
    return rpc_status(code, message, retry_delay)
