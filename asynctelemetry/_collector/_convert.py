"""OTLP spans → :class:`~asynctelemetry.LLMCall`, in one pass over each span's attributes.

The tables of :mod:`asynctelemetry._conventions` are compiled once into one dictionary, key →
(field, reader, rank). Converting a span reads ``kv.key`` for every attribute and touches the
value (the ``AnyValue`` wrapper) only when the key is known and beats what was already found for
its field, or when the key must be kept in ``LLMCall.attributes``. Values are checked here (type,
sign, bounds, finiteness); a bad value becomes ``None`` and a counted defect, and the record is
built with :meth:`LLMCall.trusted`, without a second validation.

Bounds: at most ``MAX_ATTRIBUTES`` (128) extra attributes per call, the rest dropped and counted
(``attributes_dropped``); string values longer than ``MAX_ATTRIBUTE_LENGTH`` (4096) characters are
cut to that length (``attribute_truncated``); arrays are kept as JSON text when that text fits,
maps and bytes are not kept (``attribute_unsupported``); field text longer than
``MAX_FIELD_LENGTH`` (512) is a defect (``too_long``).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from google.protobuf.message import DecodeError

from .._conventions import (
    FIELD_KEYS,
    FIELD_KINDS,
    KEY_KINDS,
    MAX_FIELD_LENGTH,
    MODEL_JSON_KEYS,
    NON_LLM_OPERATIONS,
    OPENINFERENCE_LLM_KINDS,
    OPENINFERENCE_SPAN_KIND,
    OPERATION_ALIASES,
    SERVICE_NAME,
    is_content_key,
)
from .._record import (
    MAX_ATTRIBUTE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_DURATION_MS,
    MAX_TOKENS,
    LLMCall,
)
from ._wire import LeanRequest, decode_value, lean_span, split_key

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from opentelemetry.proto.trace.v1.trace_pb2 import Span


__all__ = [
    "REJECTED",
    "Defects",
    "PriceTable",
    "convert_request",
    "convert_span",
    "span_to_llm_call",
]


class PriceTable(Protocol):
    """What the converter needs of :class:`asynctelemetry.PriceTable`: a version and a price."""

    @property
    def version(self) -> str:
        """Version of the price data."""
        ...

    def cost_of(
        self,
        model: str,
        provider: str | None,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None,
        cache_creation_tokens: int | None,
        reasoning_tokens: int | None,
    ) -> float | None:
        """USD for the tokens of one call, None when the model's price is unknown."""
        ...


Defects = dict[str, int]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Start times from here on (2262-04-11) do not fit int64 nanoseconds, as stores keep them.
_MAX_START_NS: Final = 2**63
_STATUS_CODE_ERROR: Final = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
_STATUSES: Final = frozenset({"ok", "error", "cancelled"})


class _Defect:
    """A reader's verdict on a bad value; its name is the defect kind counted in the stats."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


WRONG_TYPE: Final = _Defect("wrong_type")
NEGATIVE: Final = _Defect("negative")
TOO_LARGE: Final = _Defect("too_large")
NON_FINITE: Final = _Defect("non_finite")
TOO_LONG: Final = _Defect("too_long")
BAD_VALUE: Final = _Defect("bad_value")
_ABSENT: Final = _Defect("absent")  # an empty string: as if the key were not there


class _Rejected:
    """Returned by :func:`convert_span` for a span that is an LLM call but cannot be kept."""

    __slots__ = ()


#: The verdict for an LLM span without a usable model (an empty model is not a call).
REJECTED: Final = _Rejected()


# -- readers: a decoded AnyValue → checked value or a _Defect --------------------------------------
def _number(value: object) -> float | int | _Defect:
    kind = value.__class__
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is float:
        return value if math.isfinite(value) else NON_FINITE  # type: ignore[arg-type,return-value]
    if kind is str:  # some gateways send numbers as text
        try:
            parsed = float(value)  # type: ignore[arg-type]
        except ValueError:
            return WRONG_TYPE
        return parsed if math.isfinite(parsed) else NON_FINITE
    return WRONG_TYPE


def _read_tokens(value: object) -> int | _Defect:
    if value.__class__ is not int:
        read = _number(value)
        if read.__class__ is _Defect:
            return read
        if read != int(read):  # type: ignore[arg-type]
            return WRONG_TYPE
        value = int(read)
    if value < 0:
        return NEGATIVE
    if value > MAX_TOKENS:
        return TOO_LARGE
    return value


def _millis(number: float) -> float | _Defect:
    if number < 0:
        return NEGATIVE
    if number > MAX_DURATION_MS:
        return TOO_LARGE
    return number


def _read_millis(value: object) -> float | _Defect:
    read = _number(value)
    return read if isinstance(read, _Defect) else _millis(float(read))


def _read_seconds(value: object) -> float | _Defect:
    read = _number(value)
    if read.__class__ is _Defect:
        return read
    return _millis(float(read) * 1000.0)  # type: ignore[arg-type]


def _read_usd(value: object) -> float | _Defect:
    read = _number(value)
    if read.__class__ is _Defect:
        return read
    return NEGATIVE if read < 0 else float(read)  # type: ignore[operator,arg-type]


def _read_str(value: object) -> str | _Defect:
    if value.__class__ is not str:
        return _ABSENT if value is None else WRONG_TYPE
    if not value:
        return _ABSENT
    return value if len(value) <= MAX_FIELD_LENGTH else TOO_LONG


def _read_operation(value: object) -> str | _Defect:
    text = _read_str(value)
    return text if isinstance(text, _Defect) else OPERATION_ALIASES.get(text, text)


def _read_bool(value: object) -> bool | _Defect:
    return value if value.__class__ is bool else WRONG_TYPE


def _read_http(value: object) -> int | _Defect:
    read = _read_tokens(value)
    if read.__class__ is _Defect:
        return read
    return read if read <= 999 else BAD_VALUE  # type: ignore[operator]


def _read_status(value: object) -> str | _Defect:
    text = _read_str(value)
    if text.__class__ is _Defect:
        return text
    return text if text in _STATUSES else BAD_VALUE


_READERS: Final[dict[str, Callable[[object], Any]]] = {
    "str": _read_str,
    "operation": _read_operation,
    "tokens": _read_tokens,
    "millis": _read_millis,
    "seconds": _read_seconds,
    "usd": _read_usd,
    "bool": _read_bool,
    "http": _read_http,
    "status": _read_status,
}


def _compile() -> dict[bytes, tuple[str, Callable[[object], Any], int]]:
    """The one lookup built from the tables: attribute key (UTF-8) → (field, reader, rank)."""
    spec: dict[bytes, tuple[str, Callable[[object], Any], int]] = {}
    for field, keys in FIELD_KEYS.items():
        for rank, key in enumerate(keys):
            raw = key.encode()
            if raw in spec:
                raise RuntimeError(f"{key!r} is listed for two fields")
            spec[raw] = (field, _READERS[KEY_KINDS.get(key, FIELD_KINDS[field])], rank)
    return spec


_SPEC: Final = _compile()
_SPAN_KIND_KEY: Final = OPENINFERENCE_SPAN_KIND.encode()
_MODEL_JSON_KEYS: Final = frozenset(key.encode() for key in MODEL_JSON_KEYS)
_SPECIAL: Final = frozenset((_SPAN_KIND_KEY, *_MODEL_JSON_KEYS))


# -- extra attributes ------------------------------------------------------------------------------
class _KeyCache:
    """Unknown keys seen before: bytes → (text, is a content key). Bounded."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self.keys: dict[bytes, tuple[str, bool]] = {}

    def get(self, raw: bytes) -> tuple[str, bool]:
        entry = self.keys.get(raw)
        if entry is None:
            text = raw.decode(errors="replace")
            entry = (text, is_content_key(text))
            if len(self.keys) < self.size:
                self.keys[raw] = entry
        return entry


_KEYS: Final = _KeyCache()


def _extra_value(value: object, defects: MutableMapping[str, int]) -> object:
    """An unknown attribute's decoded value as a record attribute, or None if it is not kept."""
    kind = value.__class__
    if kind is str:
        if len(value) > MAX_ATTRIBUTE_LENGTH:  # type: ignore[arg-type]
            defects["attribute_truncated"] = defects.get("attribute_truncated", 0) + 1
            return value[:MAX_ATTRIBUTE_LENGTH]  # type: ignore[index]
        return value
    if kind is int or kind is bool:
        return value
    if kind is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return value
        defects["non_finite"] = defects.get("non_finite", 0) + 1
        return None
    if kind is list and all(
        item.__class__ in (str, int, bool) or (item.__class__ is float and math.isfinite(item))
        for item in value  # type: ignore[attr-defined]
    ):
        text = json.dumps(value, ensure_ascii=False)
        if len(text) <= MAX_ATTRIBUTE_LENGTH:
            return text
    if value is not None:
        defects["attribute_unsupported"] = defects.get("attribute_unsupported", 0) + 1
    return None


def _invocation_parameters(text: str) -> tuple[str | None, bool | None]:
    """``(model, stream)`` named inside OpenInference's invocation-parameters JSON."""
    if len(text) > 65_536:
        return None, None
    try:
        params = json.loads(text)
    except (ValueError, RecursionError):  # deep nesting ("[[[[…") exhausts the JSON scanner
        return None, None
    if not isinstance(params, dict):
        return None, None
    model = params.get("model") or params.get("model_name")
    stream = params.get("stream")
    return (
        model if isinstance(model, str) and 0 < len(model) <= MAX_FIELD_LENGTH else None,
        stream if isinstance(stream, bool) else None,
    )


# -- the converter -------------------------------------------------------------------------------
# Entry kinds of the per-attribute cache; the even kinds may be cached, the odd ones are counted
# (or vary) every time they are seen.
_FIELD: Final = 0  # (kind, field, rank, checked value)
_FIELD_NOCACHE: Final = 1  # a numeric field: values vary, caching them would only churn
_EXTRA: Final = 2  # (kind, key text, value kept in attributes)
_EXTRA_NOCACHE: Final = 3  # an attribute cut to length: counted every time it is seen
_SPAN_KIND: Final = 4  # (kind, value)
_MODEL_JSON: Final = 6  # (kind, value)
_SKIP: Final = 8  # (kind,) content dropped, absent value, unsupported value
_NOCACHE: Final = (9,)  # a defect: counted every time it is seen
#: Serialized attributes (key and value) up to this size are remembered, with what they gave.
_CACHED_ATTRIBUTE_BYTES: Final = 160
_CACHE_ENTRIES: Final = 16_384
#: One cache per content setting: raw KeyValue bytes → entry. Most attributes repeat exactly
#: (operation, provider, models, server address, app keys), so most need no decoding at all.
_CACHES: Final[dict[bool, dict[bytes, tuple[Any, ...]]]] = {False: {}, True: {}}
_NUMERIC_READERS: Final = frozenset(
    (_read_tokens, _read_millis, _read_seconds, _read_usd, _read_http)
)


def _decode_attribute(
    raw: bytes, capture_content: bool, defects: MutableMapping[str, int]
) -> tuple[Any, ...]:
    """What one serialized attribute contributes: a cache entry (see the kinds above)."""
    key, end = split_key(raw)
    if not key:
        defects["malformed_attribute"] = defects.get("malformed_attribute", 0) + 1
        return _NOCACHE
    spec = _SPEC.get(key)
    if spec is not None:
        field, reader, rank = spec
        value = reader(decode_value(raw, end))
        if value.__class__ is _Defect:
            if value is _ABSENT:
                return (_SKIP,)
            defects[value.kind] = defects.get(value.kind, 0) + 1
            return _NOCACHE
        kind = _FIELD_NOCACHE if reader in _NUMERIC_READERS else _FIELD
        return (kind, field, rank, value)
    if key == _SPAN_KIND_KEY:
        return (_SPAN_KIND, decode_value(raw, end))
    if key in _MODEL_JSON_KEYS:
        return (_MODEL_JSON, decode_value(raw, end))
    text, content = _KEYS.get(key)
    if content and not capture_content:
        return (_SKIP,)
    before = sum(defects.values())
    kept = _extra_value(decode_value(raw, end), defects)
    if kept is None:
        return _NOCACHE if sum(defects.values()) != before else (_SKIP,)
    if sum(defects.values()) != before:  # cut to length: counted each time
        return (_EXTRA_NOCACHE, text, kept)
    return (_EXTRA, text, kept)


def convert_span(
    span: Any,
    service_name: str | None,
    price_table: PriceTable | None,
    capture_content: bool,
    defects: MutableMapping[str, int],
) -> LLMCall | _Rejected | None:
    """Convert one lean span (:mod:`._wire`): an LLMCall, ``REJECTED``, or None.

    ``None`` means the span is not an LLM call; ``REJECTED`` is an LLM span without a model.
    Defects (bad values turned into ``None``, dropped or cut attributes) are counted into
    ``defects`` by kind. Never raises on attribute values.
    """
    found: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    extra: dict[str, object] | None = None
    span_kind: object = None
    model_json: object = None
    cache = _CACHES[capture_content]
    cache_get = cache.get
    for raw in span.attributes:
        entry = cache_get(raw)
        if entry is None:
            entry = _decode_attribute(raw, capture_content, defects)
            if not entry[0] & 1 and len(raw) <= _CACHED_ATTRIBUTE_BYTES:
                if len(cache) >= _CACHE_ENTRIES:
                    cache.clear()  # adaptive: the values that repeat come back at once
                cache[raw] = entry
        what = entry[0]
        if what < 2:  # _FIELD, _FIELD_NOCACHE
            field = entry[1]
            if entry[2] < ranks.get(field, 99):
                found[field] = entry[3]
                ranks[field] = entry[2]
        elif what < 4:  # _EXTRA, _EXTRA_NOCACHE
            if extra is None:
                extra = {entry[1]: entry[2]}
            elif len(extra) < MAX_ATTRIBUTES:
                extra[entry[1]] = entry[2]
            else:
                defects["attributes_dropped"] = defects.get("attributes_dropped", 0) + 1
        elif what == _SPAN_KIND:
            span_kind = entry[1]
        elif what == _MODEL_JSON and model_json is None:
            model_json = entry[1]
    if span_kind.__class__ is not str:
        span_kind = None
    if model_json.__class__ is not str or not model_json:
        model_json = None

    # -- is it an LLM call? --------------------------------------------------------------------
    operation = found.get("operation")
    if span_kind is not None:
        declared = OPENINFERENCE_LLM_KINDS.get(span_kind)
        if declared is None:
            return None  # an OpenInference CHAIN, TOOL, AGENT, RETRIEVER… span
        if operation is None:
            operation = declared
    if operation in NON_LLM_OPERATIONS:
        return None
    request_model = found.get("request_model")
    if model_json is not None and request_model is None:
        request_model, stream = _invocation_parameters(model_json)
        if stream is not None and "is_streaming" not in found:
            found["is_streaming"] = stream
    model = found.get("response_model") or request_model
    if model is None:
        if operation is not None or span_kind is not None or model_json is not None:
            defects["no_model"] = defects.get("no_model", 0) + 1
            return REJECTED
        return None

    # -- the record ----------------------------------------------------------------------------
    span_id = span.span_id.hex() or None
    call_id = found.get("call_id")
    if call_id is None or len(call_id) > 256:
        # A span id of any length arrives; a call_id longer than 256 would be an invalid record.
        call_id = span_id if span_id and len(span_id) <= 256 else os.urandom(8).hex()
    start = span.start_time_unix_nano
    if start and start < _MAX_START_NS:
        timestamp = _EPOCH + timedelta(microseconds=start // 1000)
    else:
        kind = "bad_start_time" if start else "no_start_time"
        defects[kind] = defects.get(kind, 0) + 1
        timestamp = datetime.now(UTC)
    if "duration_ms" not in found:
        end = span.end_time_unix_nano
        if start and end > start:
            duration = (end - start) / 1e6
            if duration <= MAX_DURATION_MS:
                found["duration_ms"] = duration
            else:
                defects["too_large"] = defects.get("too_large", 0) + 1
    if "status" not in found:
        found["status"] = "error" if span.status.code == _STATUS_CODE_ERROR else "ok"
    if operation is None:
        operation = "chat"
    elif operation == "chat" and found.get("is_streaming") and ranks.get("operation") != 0:
        operation = "stream"  # a streamed chat reported by another convention
    found.pop("response_model", None)
    found["model"] = model
    found["request_model"] = request_model
    found["operation"] = operation
    found["call_id"] = call_id
    found["timestamp"] = timestamp
    found["service_name"] = service_name
    found["source"] = "collector"
    found["trace_id"] = span.trace_id.hex() or None
    found["span_id"] = span_id
    found["parent_span_id"] = span.parent_span_id.hex() or None
    if extra:
        found["attributes"] = extra
    if "cost_usd" not in found and price_table is not None:
        _price(found, price_table, defects)
    return LLMCall.trusted(found)


def _price(found: dict[str, Any], table: PriceTable, defects: MutableMapping[str, int]) -> None:
    """Price a call that arrived without a cost, with the collector's table."""
    try:
        cost = None
        for model in dict.fromkeys((found["model"], found["request_model"])):
            if model is not None and cost is None:  # the response model first, as table.cost()
                cost = table.cost_of(
                    model,
                    found.get("provider"),
                    input_tokens=found.get("input_tokens"),
                    output_tokens=found.get("output_tokens"),
                    cached_input_tokens=found.get("cached_input_tokens"),
                    cache_creation_tokens=found.get("cache_creation_tokens"),
                    reasoning_tokens=found.get("reasoning_tokens"),
                )
    except Exception:  # a price table's bug must not lose the call
        defects["pricing_failed"] = defects.get("pricing_failed", 0) + 1
        return
    if cost is not None and math.isfinite(cost) and cost >= 0:
        found["cost_usd"] = cost
        found["price_version"] = table.version


def span_to_llm_call(
    span: Span,
    *,
    service_name: str | None,
    price_table: PriceTable | None = None,
    capture_content: bool = False,
) -> LLMCall | None:
    """The :class:`~asynctelemetry.LLMCall` an OTLP span describes, or None if it is none.

    Pure: the same span gives the same record (``call_id`` aside, for a span with neither a
    ``request_id`` attribute nor a span id). Spans of every supported convention are read (see
    :mod:`asynctelemetry._conventions` for the precedence); bad values become ``None``. A span
    that declares itself an LLM call but names no model gives None as well.

    Args:
        span: an ``opentelemetry.proto.trace.v1.trace_pb2.Span``.
        service_name: the ``service.name`` of the span's resource.
        price_table: prices calls that carry no ``llm.cost_usd``; None leaves them unpriced.
        capture_content: keep prompt and completion attributes (dropped by default).
    """
    result = convert_span(lean_span(span), service_name, price_table, capture_content, {})
    return result if isinstance(result, LLMCall) else None


def resource_service_name(resource: bytes, defects: MutableMapping[str, int]) -> str | None:
    """``service.name`` of a serialized ``Resource`` (parsed once per ResourceSpans)."""
    if not resource:
        return None
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    try:
        attributes = Resource.FromString(resource).attributes
    except DecodeError:
        defects["malformed_resource"] = defects.get("malformed_resource", 0) + 1
        return None
    for kv in attributes:
        if kv.key == SERVICE_NAME:
            text = kv.value.string_value
            return text[:MAX_FIELD_LENGTH] if text else None
    return None


def convert_request(
    request: Any,
    price_table: PriceTable | None,
    capture_content: bool,
    defects: MutableMapping[str, int],
) -> tuple[list[LLMCall], int, int, int]:
    """Every LLM call of a lean request (``LeanRequest``, or an ``ExportTraceServiceRequest``,
    converted first): (calls, spans received, spans ignored, spans rejected)."""
    if not isinstance(request, LeanRequest):
        request = LeanRequest.FromString(request.SerializeToString())
    calls: list[LLMCall] = []
    append = calls.append
    received = ignored = rejected = 0
    for resource_spans in request.resource_spans:
        service_name = resource_service_name(resource_spans.resource, defects)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                received += 1
                result = convert_span(span, service_name, price_table, capture_content, defects)
                if result is None:
                    ignored += 1
                elif result is REJECTED:
                    rejected += 1
                else:
                    append(result)  # type: ignore[arg-type]
    return calls, received, ignored, rejected
