"""A lean view of OTLP trace requests: span attributes stay raw bytes until a key is known.

The protobuf runtime (upb) makes a Python wrapper for every ``KeyValue`` and every ``AnyValue``
it is asked for, about a microsecond each; a GenAI span has 15-20 attributes. These messages are
wire-compatible with ``opentelemetry.proto`` (same field numbers and wire types) but declare
``Span.attributes`` as ``repeated bytes`` and the resource as ``bytes``, so parsing a request
builds no attribute objects at all. The converter reads each attribute's key straight from its
bytes, looks it up in the conventions table, and decodes only the values it keeps
(:func:`decode_value`). Events keep only their name and raw attributes (the ``exception`` event
gives a failed call its message); the span name is read for steps; fields we never read
(links, kinds) are skipped by the parser. Malformed attribute bytes (the parser does not look
inside them) decode to :data:`MALFORMED`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .._record import MAX_ATTRIBUTE_LENGTH
from .._wire import decode_varint

if TYPE_CHECKING:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = [
    "MALFORMED",
    "MAX_VALUE_DEPTH",
    "TOO_DEEP",
    "LeanRequest",
    "LeanSpan",
    "decode_value",
    "lean_span",
    "split_key",
]


def _build() -> tuple[Any, Any]:
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="asynctelemetry/lean_trace.proto", package="asynctelemetry.lean", syntax="proto3"
    )
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    layout: dict[str, list[tuple[str, int, int, int, str | None]]] = {
        # The message as bytes: text that is not UTF-8 must not fail the whole request.
        "Status": [
            ("message", 2, field.TYPE_BYTES, optional, None),
            ("code", 3, field.TYPE_INT32, optional, None),
        ],
        # Only what the exception event gives (its name and attributes, left raw).
        "Event": [
            ("name", 2, field.TYPE_BYTES, optional, None),
            ("attributes", 3, field.TYPE_BYTES, repeated, None),
        ],
        "Span": [
            ("trace_id", 1, field.TYPE_BYTES, optional, None),
            ("span_id", 2, field.TYPE_BYTES, optional, None),
            ("parent_span_id", 4, field.TYPE_BYTES, optional, None),
            ("name", 5, field.TYPE_BYTES, optional, None),  # bytes: bad UTF-8 fails nothing
            ("start_time_unix_nano", 7, field.TYPE_FIXED64, optional, None),
            ("end_time_unix_nano", 8, field.TYPE_FIXED64, optional, None),
            ("attributes", 9, field.TYPE_BYTES, repeated, None),
            ("events", 11, field.TYPE_MESSAGE, repeated, "Event"),
            ("status", 15, field.TYPE_MESSAGE, optional, "Status"),
        ],
        "ScopeSpans": [("spans", 2, field.TYPE_MESSAGE, repeated, "Span")],
        "ResourceSpans": [
            ("resource", 1, field.TYPE_BYTES, optional, None),
            ("scope_spans", 2, field.TYPE_MESSAGE, repeated, "ScopeSpans"),
        ],
        "Request": [("resource_spans", 1, field.TYPE_MESSAGE, repeated, "ResourceSpans")],
    }
    for name, fields in layout.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            added = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                added.type_name = f".asynctelemetry.lean.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("asynctelemetry.lean.Request")
    )
    span = message_factory.GetMessageClass(pool.FindMessageTypeByName("asynctelemetry.lean.Span"))
    return request, span


#: ``ExportTraceServiceRequest`` with raw attributes (``LeanRequest.FromString(raw)``).
LeanRequest, LeanSpan = _build()


class _Malformed:
    __slots__ = ()


#: What :func:`decode_value` returns for bytes that are not a valid ``AnyValue``.
MALFORMED: Final = _Malformed()


class _TooDeep:
    __slots__ = ()


#: What :func:`decode_value` returns for a value nested more than :data:`MAX_VALUE_DEPTH` deep.
TOO_DEEP: Final = _TooDeep()
#: Deepest ``AnyValue`` nesting read (an attribute's value is level 1, an array item or a map
#: value one level deeper than its container). Deeper values are one attribute's defect
#: (``too_deep``), in OTLP/gRPC and OTLP/JSON alike; the span is kept.
MAX_VALUE_DEPTH: Final = 32
#: Most nested ``AnyValue`` nodes a depth check visits; a value with more is not kept anyway.
_MAX_NODES: Final = 4096
#: Largest serialized array decoded: a longer one's JSON text would be over
#: ``MAX_ATTRIBUTE_LENGTH`` characters (every item takes at most 4 bytes per character of
#: JSON), so it is not kept and its items are never decoded.
MAX_ARRAY_BYTES: Final = 4 * MAX_ATTRIBUTE_LENGTH + 16
_unpack_double = struct.Struct("<d").unpack_from


def lean_span(span: Span) -> Any:
    """The lean form of an ``opentelemetry.proto`` ``Span``."""
    return LeanSpan.FromString(span.SerializeToString())


def split_key(raw: bytes) -> tuple[bytes, int]:
    """(key bytes, position after the key) of a serialized ``KeyValue``; key b"" if malformed."""
    try:
        if raw[0] != 0x0A:
            return b"", 0
        size = raw[1]
        if size < 128:
            return raw[2 : 2 + size], 2 + size
        size, pos = decode_varint(raw, 1)
        return raw[pos : pos + size], pos + size
    except IndexError:
        return b"", 0


def decode_value(raw: bytes, pos: int) -> object:
    """The ``AnyValue`` of a serialized ``KeyValue`` whose key ends at ``pos``.

    Returns ``str``, ``bool``, ``int``, ``float``, a ``list`` (array of such values; nested
    arrays and maps inside are returned as MALFORMED items), ``bytes`` (bytes_value),
    ``None`` (no value), a ``dict`` marker ``{}`` for a map (kvlist), :data:`TOO_DEEP` for a
    value nested deeper than :data:`MAX_VALUE_DEPTH`, or :data:`MALFORMED`. Never recurses.
    """
    try:
        if pos >= len(raw):
            return None
        if raw[pos] != 0x12:
            return MALFORMED
        size = raw[pos + 1]
        if size < 0x80 and raw[pos + 2] == 0x0A and raw[pos + 3] + 2 == size:
            # (most values: a short string, the value's one field, its sizes one byte each)
            return raw[pos + 4 : pos + 2 + size].decode()
        size, pos = decode_varint(raw, pos + 1)
        end = pos + size
        if end > len(raw):
            return MALFORMED
        return _any_value(raw, pos, end)
    except (IndexError, UnicodeDecodeError, struct.error):
        return MALFORMED


def _any_value(raw: bytes, pos: int, end: int) -> object:
    """One ``AnyValue`` (top level): a scalar, a flat array of scalars, ``{}`` for a map, never
    recursing: a nested array or map inside an array is one MALFORMED item (not kept), and a
    value nested deeper than :data:`MAX_VALUE_DEPTH` is :data:`TOO_DEEP`."""
    if pos >= end:
        return None
    tag = raw[pos]
    if tag == 0x2A:  # array_value: ArrayValue { repeated AnyValue values = 1 }
        size, pos = decode_varint(raw, pos + 1)
        stop = pos + size
        if stop > end:
            return MALFORMED
        if size > MAX_ARRAY_BYTES:  # its JSON text could not be kept: do not decode the items
            return TOO_DEEP if _too_deep(raw, pos, stop, 2) else MALFORMED
        items: list[object] = []
        nested = False
        start = pos
        while pos < stop:
            if raw[pos] != 0x0A:
                return MALFORMED
            size, pos = decode_varint(raw, pos + 1)
            if pos + size > stop:
                return MALFORMED
            if size and raw[pos] in (0x2A, 0x32):
                nested = True
                items.append(MALFORMED)
            else:
                items.append(_scalar_value(raw, pos, pos + size))
            pos += size
        if nested and _too_deep(raw, start, stop, 2):
            return TOO_DEEP
        return items
    if tag == 0x32:  # kvlist_value
        size, pos = decode_varint(raw, pos + 1)
        if pos + size > end:
            return MALFORMED
        return TOO_DEEP if _too_deep_map(raw, pos, pos + size) else {}
    return _scalar_value(raw, pos, end)


def _scalar_value(raw: bytes, pos: int, end: int) -> object:
    """A scalar ``AnyValue`` (string, int, double, bool, bytes); MALFORMED for anything else."""
    if pos >= end:
        return None
    tag = raw[pos]
    if tag == 0x0A:  # string_value
        size, pos = decode_varint(raw, pos + 1)
        if pos + size > end:
            return MALFORMED
        return raw[pos : pos + size].decode()
    if tag == 0x18:  # int_value (int64, two's complement)
        value, _ = decode_varint(raw, pos + 1)
        return value - (1 << 64) if value >= 1 << 63 else value
    if tag == 0x21:  # double_value
        if pos + 9 > end:
            return MALFORMED
        return _unpack_double(raw, pos + 1)[0]
    if tag == 0x10:  # bool_value
        value, _ = decode_varint(raw, pos + 1)
        return bool(value)
    if tag == 0x3A:  # bytes_value
        size, pos = decode_varint(raw, pos + 1)
        return raw[pos : pos + size]
    return MALFORMED


def _too_deep_map(raw: bytes, pos: int, end: int) -> bool:
    """Whether the ``KeyValueList`` in ``raw[pos:end]`` (a level-1 map) nests too deep."""
    return _too_deep(raw, pos, end, 2, kvlist=True)


def _too_deep(raw: bytes, pos: int, end: int, level: int, *, kvlist: bool = False) -> bool:
    """Whether a container's items (``AnyValue`` at ``level``) nest deeper than
    :data:`MAX_VALUE_DEPTH`; iterative, visiting at most ``_MAX_NODES`` nodes (a value with
    more is reported as not too deep: it is not kept either way).

    ``raw[pos:end]`` is an ``ArrayValue`` (``kvlist`` False) or a ``KeyValueList``: both are
    ``repeated ... values = 1``; a ``KeyValue`` holds its value in field 2.
    """
    stack = [(pos, end, level, kvlist)]
    visited = 0
    while stack:
        pos, end, level, kvlist = stack.pop()
        while pos < end:
            visited += 1
            if visited > _MAX_NODES:
                return False
            if raw[pos] != 0x0A:
                return False  # malformed: not kept either way
            size, pos = decode_varint(raw, pos + 1)
            item_end = pos + size
            if item_end > end:
                return False
            value_pos, value_end = pos, item_end
            if kvlist:  # a KeyValue: find its value (field 2) after the key (field 1)
                value_pos = value_end = -1
                scan = pos
                while scan < item_end:
                    tag = raw[scan]
                    size, scan = decode_varint(raw, scan + 1)
                    if tag == 0x12:
                        value_pos, value_end = scan, scan + size
                    elif tag != 0x0A:
                        return False
                    scan += size
            if value_pos >= 0:
                if level > MAX_VALUE_DEPTH:
                    return True
                if value_pos < value_end and raw[value_pos] in (0x2A, 0x32):
                    inner_kvlist = raw[value_pos] == 0x32
                    size, inner = decode_varint(raw, value_pos + 1)
                    if inner + size > value_end:
                        return False
                    stack.append((inner, inner + size, level + 1, inner_kvlist))
            pos = item_end
    return False
