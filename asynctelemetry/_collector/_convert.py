"""OTLP spans → LLM calls (as compact rows), in one pass over each span's attributes.

The tables of :mod:`asynctelemetry._conventions` are compiled once into one dictionary, key →
(field slot, reader, rank); :mod:`._attributes` reads a span's serialized attributes through a
cache of what each exact attribute gave before and a plan per span shape, so a span of a known
shape costs a few C-level dict operations plus the decoding of the values never seen before.
Values are checked there (type, sign, bounds, finiteness); a bad value becomes ``None`` and a
counted defect. This module decides whether the span is an LLM call and fills the fields that
come from the span itself (ids, times, status); it does not price (the collector's pipeline
does). It builds no record: each plan is compiled into a :class:`_Builder`, one small function
that lays out the row (:mod:`asynctelemetry._rows`) from the attribute values, the decided
fields and the defaults;
spans without a plan build the same row from a field dict (:func:`_convert_slowly`). A request's
rows travel as one :class:`~asynctelemetry._rows.Rows` batch, which reads as ``LLMCall`` records
for any sink that asks (:func:`span_to_llm_call` returns one).

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
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.message import DecodeError

from .._batching import SLICE_SECONDS, Slice, run_now, run_sliced
from .._conventions import (
    EXCEPTION_EVENT,
    EXCEPTION_MESSAGE,
    MAX_FIELD_LENGTH,
    NON_LLM_OPERATIONS,
    OPENINFERENCE_LLM_KINDS,
    SERVICE_NAME,
)
from .._pipeline import price_record
from .._record import (
    FIELD_DEFAULTS,
    MAX_DURATION_MS,
    MAX_ERROR_MESSAGE,
    LLMCall,
    bounded_message,
)
from .._rows import ATTRIBUTES, FIELDS, Row, Rows, record_of, row_of, shared_keys
from .._stores._base import to_ns
from .._stores._door import LATEST
from ._attributes import attribute_cache, collect_slowly, lookup, plan_of
from ._wire import LeanRequest, decode_value, lean_span, split_key

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Generator, MutableMapping

    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from .._pricing import PriceTable
    from ._steps import RequestSteps


__all__ = [
    "REJECTED",
    "Defects",
    "convert_request",
    "convert_request_in_slices",
    "convert_span",
    "span_to_llm_call",
]


Defects = dict[str, int]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Start times from here on (2262-04-11) are past what a store keeps (``_stores._door``).
_MAX_START_NS: Final = to_ns(LATEST)
#: Start times before this (2106-02-07) convert exactly through a float of seconds: below
#: 2**32 s a double resolves 0.24 µs, so rounding to the microsecond finds the exact one.
_FLOAT_EXACT_NS: Final = 2**32 * 10**9
_from_timestamp: Final = datetime.fromtimestamp
_STATUS_CODE_ERROR: Final = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
#: An HTTP status at the start of a span's status message: "429 Too Many Requests", "503".
_HTTP_STATUS: Final = re.compile(rb"\s*([1-5][0-9][0-9])(?![0-9])")


class _Rejected:
    """Returned by :func:`convert_span` for a span that is an LLM call but cannot be kept."""

    __slots__ = ()


#: The verdict for an LLM span without a usable model (an empty model is not a call).
REJECTED: Final = _Rejected()


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


#: The fields :func:`_decide` both reads and gives (checked or defaulted), the last of each.
_CHECKED: Final = (
    "duration_ms", "status", "is_streaming", "cost_usd", "price_version", "status_code",
    "error_message",
)  # fmt: skip
#: The fields the decisions below read, in the order a plan's ``inputs`` getter gives them.
_INPUTS: Final = ("operation", "request_model", "response_model", "call_id", *_CHECKED)
#: The fields :func:`_decide` gives, in the order of the tuple it returns.
_DECIDED: Final = (
    "model",
    "request_model",
    "operation",
    "call_id",
    "timestamp",
    "service_name",
    "source",
    "trace_id",
    "span_id",
    "parent_span_id",
    *_CHECKED,
)
_DEFAULT_VALUES: Final = tuple(FIELD_DEFAULTS[name] for name in FIELDS[:ATTRIBUTES])


class _Builder:
    """A plan compiled into one small function (made once per span shape):
    ``convert(values, span, service_name, defects)`` hands :func:`_decide` its inputs read
    from the span's values, and lays out the row from the values, the decided fields, the
    defaults and the extras' keys; it returns what :func:`_decide` returned when that is not
    a tuple. Both are tuple displays of constant subscripts: no per-field call, no
    intermediate tuple."""

    __slots__ = ("convert",)

    def __init__(self, plan: Any) -> None:
        positions: dict[str, int] = plan.positions
        decided = {name: i for i, name in enumerate(_DECIDED)}
        constants: dict[str, object] = {}

        def constant(value: object) -> str:
            if value is None:
                return "None"
            name = f"_c{len(constants)}"
            constants[name] = value
            return name

        inputs = [
            "None" if name not in positions else f"values[{positions[name]}]" for name in _INPUTS
        ]
        row = [
            f"decided[{decided[name]}]"
            if name in decided
            else f"values[{positions[name]}]"
            if name in positions
            else constant(default)
            for name, default in zip(FIELDS[:ATTRIBUTES], _DEFAULT_VALUES, strict=True)
        ]
        row.append(constant(shared_keys(plan.extra_names) if plan.extra_names else None))
        row.extend(f"values[{position}]" for position in plan.extra_positions)
        markers = [
            "None" if at is None else f"values[{at}]" for at in (plan.span_kind, plan.model_json)
        ]
        source = (
            "def convert(values, span, service_name, defects):\n"
            f" decided = _decide(({', '.join(inputs)},), {', '.join(markers)},"
            f" {plan.operation_rank}, span, service_name, defects)\n"
            " if decided.__class__ is not tuple:\n"
            "  return decided\n"
            f" return ({', '.join(row)},)\n"
        )
        namespace: dict[str, Any] = {**constants, "_decide": _decide, "tuple": tuple}
        exec(compile(source, "<asynctelemetry span plan>", "exec"), namespace)
        self.convert = namespace["convert"]


def convert_span(
    span: Any,
    service_name: str | None,
    capture_content: bool,
    defects: MutableMapping[str, int],
    entries: list[tuple[object, object]] | None = None,
    steps: RequestSteps | None = None,
) -> Row | _Rejected | None:
    """Convert one lean span (:mod:`._wire`): a row (:mod:`asynctelemetry._rows`), ``REJECTED``,
    or None.

    ``None`` means the span is not an LLM call; ``REJECTED`` is an LLM span without a model.
    Defects (bad values turned into ``None``, dropped or cut attributes) are counted into
    ``defects`` by kind. Never raises on attribute values. ``entries``: the span's attributes
    already read through the attribute cache (by the sliced conversion, for a wide span).
    """
    if entries is None:
        plan, values = lookup(span.attributes, attribute_cache(capture_content))
    else:
        plan, values = plan_of(entries)
    if plan is None:
        return _convert_slowly(values, span, service_name, defects, steps)
    builder = plan.builder
    if builder is None:
        builder = plan.builder = _Builder(plan)
    if plan.dropped:
        defects["attributes_dropped"] = defects.get("attributes_dropped", 0) + plan.dropped
    row = builder.convert(values, span, service_name, defects)
    if row.__class__ is not tuple:
        if row is None and steps is not None:
            found = dict(zip(plan.fields, plan.values(values), strict=True))
            extra = (
                dict(zip(plan.extra_names, plan.extras(values), strict=True))
                if plan.extra_names
                else None
            )
            span_kind = None if plan.span_kind is None else values[plan.span_kind]
            _step(steps, span, found, extra, span_kind, service_name, defects)
        return row  # type: ignore[no-any-return]
    if steps is not None and row[_TRACE] is not None:
        steps.note_call(row[_TRACE])
    return row


_TRACE: Final = FIELDS.index("trace_id")
_DECIDED_TRACE: Final = _DECIDED.index("trace_id")


def _step(
    steps: RequestSteps,
    span: Any,
    found: dict[str, Any],
    extra: dict[str, Any] | None,
    span_kind: object,
    service_name: str | None,
    defects: MutableMapping[str, int],
) -> None:
    steps.consider(
        span,
        found,
        extra,
        span_kind,
        service_name,
        lambda s: span_times(s, defects),
        _error_message,
        defects,
    )


def _convert_slowly(
    entries: list[tuple[object, object]],
    span: Any,
    service_name: str | None,
    defects: MutableMapping[str, int],
    steps: RequestSteps | None = None,
) -> Row | _Rejected | None:
    """:func:`convert_span` for a span without a plan (repeated keys, defects, dropped content)."""
    found, extra, span_kind, model_json, operation_rank = collect_slowly(entries, defects)
    decided = _decide(
        tuple(map(found.get, _INPUTS)),
        span_kind,
        model_json,
        operation_rank,
        span,
        service_name,
        defects,
    )
    if decided.__class__ is not tuple:
        if decided is None and steps is not None:
            _step(steps, span, found, extra, span_kind, service_name, defects)
        return decided
    if steps is not None and decided[_DECIDED_TRACE] is not None:
        steps.note_call(decided[_DECIDED_TRACE])
    data = FIELD_DEFAULTS.copy()
    data.update(found)
    data.pop("response_model", None)
    data.update(zip(_DECIDED, decided, strict=True))
    data["attributes"] = extra
    return row_of(data)


def _decide(
    inputs: tuple[Any, ...],
    span_kind: object,
    model_json: object,
    operation_rank: int | None,
    span: Any,
    service_name: str | None,
    defects: MutableMapping[str, int],
) -> tuple[Any, ...] | _Rejected | None:
    """Whether the span is an LLM call, and the fields that come from the span itself or from
    several attributes together (in :data:`_DECIDED` order); None or ``REJECTED`` as for
    :func:`convert_span`. ``inputs`` holds the attributes' values in :data:`_INPUTS` order, None
    where absent."""
    (
        operation,
        request_model,
        response_model,
        call_id,
        duration,
        status,
        streaming,
        cost,
        price_version,
        status_code,
        error_message,
    ) = inputs
    if span_kind.__class__ is not str:
        span_kind = None
    if model_json.__class__ is not str or not model_json:
        model_json = None

    # -- is it an LLM call? --------------------------------------------------------------------
    if span_kind is not None:
        declared = OPENINFERENCE_LLM_KINDS.get(span_kind)
        if declared is None:
            return None  # an OpenInference CHAIN, TOOL, AGENT, RETRIEVER… span
        if operation is None:
            operation = declared
    if operation in NON_LLM_OPERATIONS:
        return None
    if model_json is not None and request_model is None:
        request_model, stream = _invocation_parameters(model_json)
        if stream is not None and streaming is None:
            streaming = stream
    model = response_model or request_model
    if model is None:
        if operation is not None or span_kind is not None or model_json is not None:
            defects["no_model"] = defects.get("no_model", 0) + 1
            return REJECTED
        return None

    # -- the fields the span gives -------------------------------------------------------------
    span_id = span.span_id.hex() or None
    if call_id is None or len(call_id) > 256:
        # A span id of any length arrives; a call_id longer than 256 would be an invalid record.
        call_id = span_id if span_id and len(span_id) <= 256 else os.urandom(8).hex()
    if duration is None:
        timestamp, duration = span_times(span, defects)
    else:
        timestamp = _start_of(span, defects)
    if status is None or status_code is None:
        span_status = span.status  # (each read of a submessage makes a new wrapper)
        if status is None:
            status = "error" if span_status.code == _STATUS_CODE_ERROR else "ok"
        if status_code is None and span_status.message:
            status_code = _http_status_of(span_status.message)
    if status == "error" and error_message is None:
        error_message = _error_message(span)
    elif status != "error":
        error_message = None  # a message belongs to a failed call only
    if operation is None:
        operation = "chat"
    elif operation == "chat" and streaming and operation_rank != 0:
        operation = "stream"  # a streamed chat reported by another convention
    trace_id: str | None = span.trace_id.hex()
    if len(trace_id) > MAX_FIELD_LENGTH:  # type: ignore[arg-type]
        # Longer than a store keys on (a trace id is 16 bytes): kept without it.
        defects["too_long"] = defects.get("too_long", 0) + 1
        trace_id = None
    return (
        model,
        request_model,
        operation,
        call_id,
        timestamp,
        service_name,
        "collector",
        trace_id or None,
        span_id,
        span.parent_span_id.hex() or None,
        duration,
        status,
        streaming,
        cost,
        price_version,
        status_code,
        error_message,
    )


def _start_of(span: Any, defects: MutableMapping[str, int]) -> datetime:
    """A span's start as an aware datetime (now, and a counted defect, when absent or bad)."""
    start = span.start_time_unix_nano
    if start and start < _MAX_START_NS:
        if start < _FLOAT_EXACT_NS:  # (about twice as fast as adding a timedelta)
            return _from_timestamp(start // 1000 / 1e6, UTC)
        return _EPOCH + timedelta(microseconds=start // 1000)
    kind = "bad_start_time" if start else "no_start_time"
    defects[kind] = defects.get(kind, 0) + 1
    return datetime.now(UTC)


def span_times(span: Any, defects: MutableMapping[str, int]) -> tuple[datetime, float | None]:
    """A span's start and its duration in milliseconds from its start and end times (None when
    not known, or longer than a day: a counted ``too_large``)."""
    timestamp = _start_of(span, defects)
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    duration = None
    if start and end > start:
        duration = (end - start) / 1e6
        if duration > MAX_DURATION_MS:
            duration = None
            defects["too_large"] = defects.get("too_large", 0) + 1
    return timestamp, duration


_EXCEPTION: Final = EXCEPTION_EVENT.encode()
_EXCEPTION_MESSAGE: Final = EXCEPTION_MESSAGE.encode()


def _error_message(span: Any) -> str | None:
    """A failed span's message: its status description, else the ``exception.message`` of its
    (last) ``exception`` event; cut to ``MAX_ERROR_MESSAGE`` characters."""
    raw = span.status.message
    if raw:
        return bounded_message(raw[: 4 * MAX_ERROR_MESSAGE].decode(errors="replace"))
    for event in reversed(span.events):
        if event.name != _EXCEPTION:
            continue
        for attribute in event.attributes:
            key, end = split_key(attribute)
            if key == _EXCEPTION_MESSAGE:
                value = decode_value(attribute, end)
                if value.__class__ is str:
                    return bounded_message(value)
        break
    return None


def _http_status_of(message: bytes) -> int | None:
    """The HTTP status a span's status message starts with (``"429 Too Many Requests"``)."""
    match = _HTTP_STATUS.match(message[:16])
    return int(match[1]) if match else None


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
        price_table: prices calls that carry no ``llm.cost_usd``, by the pipeline's one rule
            (:meth:`PriceTable.price_call`); None leaves them unpriced.
        capture_content: keep prompt and completion attributes (dropped by default).
    """
    result = convert_span(lean_span(span), service_name, capture_content, {})
    if result.__class__ is not tuple:
        return None
    call = record_of(result)
    return call if price_table is None else price_record(call, price_table)


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


#: Work done between two returns to the event loop, in attributes read (a span counts one
#: more): about a millisecond on an idle core. Whichever comes first of this and
#: :data:`SLICE_SECONDS` ends a slice, so a slice is bounded by the size of what it reads, never
#: by a count of spans however wide they are.
SLICE_UNITS: Final = 2048
#: Most attributes read from one span; the rest are dropped and counted
#: (``attributes_dropped``). The OpenTelemetry SDK keeps 128 by default.
MAX_SPAN_ATTRIBUTES: Final = 4096
#: A span with more attributes than this is read in chunks of this size, the loop getting a
#: turn between them when the slice is spent.
_CHUNK: Final = 64


def _convert_slices(
    request: Any,
    capture_content: bool,
    defects: MutableMapping[str, int],
    units: int,
    seconds: float,
    steps: RequestSteps | None = None,
) -> Generator[None, None, tuple[Rows, int, int, int]]:
    """Convert a lean request, pausing (``yield``) whenever ``units`` attributes were read or
    ``seconds`` of work were spent since the last pause; returns (calls, spans received, spans
    ignored, spans rejected)."""
    rows: list[Row] = []
    append = rows.append
    received = ignored = rejected = 0
    read = attribute_cache(capture_content).__getitem__
    slice_ = Slice(seconds)
    spent = 0
    for resource_spans in request.resource_spans:
        service_name = resource_service_name(resource_spans.resource, defects)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                received += 1
                attributes = span.attributes
                count = len(attributes)
                if count > _CHUNK:
                    if count > MAX_SPAN_ATTRIBUTES:
                        dropped = count - MAX_SPAN_ATTRIBUTES
                        defects["attributes_dropped"] = (
                            defects.get("attributes_dropped", 0) + dropped
                        )
                        count = MAX_SPAN_ATTRIBUTES
                    entries: list[tuple[object, object]] = []
                    for start in range(0, count, _CHUNK):
                        entries.extend(map(read, attributes[start : min(start + _CHUNK, count)]))
                        spent += _CHUNK
                        if spent >= units or slice_.spent():
                            yield
                            spent = 0
                            slice_.renew()
                else:
                    entries = list(map(read, attributes))
                    spent += count + 1
                result = convert_span(span, service_name, capture_content, defects, entries, steps)
                if result is None:
                    ignored += 1
                elif result is REJECTED:
                    rejected += 1
                else:
                    append(result)  # type: ignore[arg-type]
                # (the clock is read every 8 spans: a span's work is bounded by _CHUNK)
                if spent >= units or (not received & 7 and slice_.spent()):
                    yield
                    spent = 0
                    slice_.renew()
    return Rows(rows), received, ignored, rejected


def convert_request(
    request: Any,
    capture_content: bool,
    defects: MutableMapping[str, int],
    steps: RequestSteps | None = None,
) -> tuple[Rows, int, int, int]:
    """Every LLM call of a lean request (``LeanRequest``, or an ``ExportTraceServiceRequest``,
    converted first): (calls, spans received, spans ignored, spans rejected). ``steps``
    collects the other spans the collector keeps (:mod:`._steps`)."""
    if not isinstance(request, LeanRequest):
        request = LeanRequest.FromString(request.SerializeToString())
    return run_now(_convert_slices(request, capture_content, defects, 2**62, math.inf, steps))


async def convert_request_in_slices(
    request: Any,
    capture_content: bool,
    defects: MutableMapping[str, int],
    *,
    turn: asyncio.Lock | None = None,
    units: int = SLICE_UNITS,
    seconds: float = SLICE_SECONDS,
    steps: RequestSteps | None = None,
) -> tuple[Rows, int, int, int]:
    """:func:`convert_request` for the event loop: it gets control back after every slice of
    work (``units`` attributes or ``seconds``, see :data:`SLICE_UNITS`), so no request holds
    it for long, however many or wide its spans are.

    ``turn``: a lock shared by the requests converted at once; each slice holds it, so
    requests take turns slice by slice (a small request waits for one slice of each request
    ahead of it, never for a whole large one) and the loop's other tasks wait for one slice.
    """
    slices = _convert_slices(request, capture_content, defects, units, seconds, steps)
    return await run_sliced(slices, turn)
