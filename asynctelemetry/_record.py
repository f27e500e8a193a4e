"""The records: :class:`LLMCall` (a priced inference call) and :class:`TraceSpan` (every other
step of a trace), their validation and derived figures.

Layer 1: imports nothing of ours. Local callers get ``ValueError`` (pydantic's ``ValidationError``
is one) for negative or non-finite numbers; producers that already checked their inputs (the
tracer, the collector's converter, the stores reading their own rows) build records through
:meth:`LLMCall.trusted`, which skips validation and costs a dictionary copy.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_LENGTH",
    "MAX_DURATION_MS",
    "MAX_ERROR_MESSAGE",
    "MAX_MODEL_LENGTH",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_TOKENS",
    "SPAN_KINDS",
    "AttributeValue",
    "LLMCall",
    "SpanKind",
    "Status",
    "TraceSpan",
    "bounded_attributes",
    "bounded_message",
    "checked_tags",
    "utc",
]

#: Largest token count accepted: beyond 2**53 a float (JSON, OTLP doubles) cannot hold it exactly.
MAX_TOKENS: Final = 2**53
#: Longest duration or time to first token accepted, in milliseconds (one day).
MAX_DURATION_MS: Final = 86_400_000.0
#: Longest model name, in characters.
MAX_MODEL_LENGTH: Final = 512
#: Most extra attributes one record keeps.
MAX_ATTRIBUTES: Final = 128
#: Longest string attribute value kept, in characters.
MAX_ATTRIBUTE_LENGTH: Final = 4096
#: Longest error message kept, in characters (longer messages are cut by producers).
MAX_ERROR_MESSAGE: Final = 1024
#: Most tags one record carries.
MAX_TAGS: Final = 64
#: Longest tag, in characters.
MAX_TAG_LENGTH: Final = 256

AttributeValue = str | int | float | bool


def utc(value: datetime) -> datetime:
    """A record's timestamp: a naive datetime is taken to be UTC, an aware one converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def bounded_attributes(value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
    """A record's attributes, or ``ValueError``: at most ``MAX_ATTRIBUTES``, strings of at most
    ``MAX_ATTRIBUTE_LENGTH`` characters, finite numbers."""
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes, got {len(value)}")
    for key, item in value.items():
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_LENGTH:
            raise ValueError(f"attribute {key!r} is longer than {MAX_ATTRIBUTE_LENGTH}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"attribute {key!r} is not a finite number")
    return value


#: A record's timestamp: a naive datetime is taken to be UTC, an aware one converted.
UTCTime = Annotated[datetime, AfterValidator(utc)]
#: A record's attributes, bounded (:func:`bounded_attributes`).
Attributes = Annotated[dict[str, AttributeValue], AfterValidator(bounded_attributes)]

Status = Literal["ok", "error", "cancelled"]
#: What a :class:`TraceSpan` step is.
SpanKind = Literal[
    "agent", "tool", "workflow", "retrieval", "guardrail", "evaluator", "http", "internal"
]
#: Every :data:`SpanKind`, in order.
SPAN_KINDS: Final = (
    "agent",
    "tool",
    "workflow",
    "retrieval",
    "guardrail",
    "evaluator",
    "http",
    "internal",
)

_Tokens = Annotated[int | None, Field(ge=0, le=MAX_TOKENS)]
_Millis = Annotated[float | None, Field(ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)]


#: The shortest generating time (after the first token, in ms) a rate is computed over: below
#: it, ``tpt_ms`` and ``tokens_per_sec`` are ``None`` (20 tokens in a 0.5 ms span would read as
#: 40,000 tokens/s). The one rule of records, summaries, rollups, the CLI and the dashboard.
MIN_GENERATING_MS: Final = 50.0


class LLMCall(BaseModel):
    """One call to a large language model, however it was observed.

    The tracer, the collector, the stores, the metrics and replay all speak this record. Token
    semantics: ``input_tokens`` includes ``cached_input_tokens`` (OpenAI usage, the GenAI
    conventions); ``output_tokens`` includes ``reasoning_tokens``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    call_id: str = Field(min_length=1, max_length=256)
    timestamp: UTCTime
    model: str = Field(min_length=1, max_length=MAX_MODEL_LENGTH)
    request_model: str | None = None
    provider: str | None = None
    operation: str = "chat"
    service_name: str | None = None
    source: str = "tracer"
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    session_id: str | None = None
    route_name: str | None = None
    is_streaming: bool | None = None
    status: Status = "ok"
    status_code: Annotated[int | None, Field(ge=0, le=999)] = None
    error_type: str | None = None
    input_tokens: _Tokens = None
    output_tokens: _Tokens = None
    total_tokens: _Tokens = None
    cached_input_tokens: _Tokens = None
    cache_creation_tokens: _Tokens = None
    reasoning_tokens: _Tokens = None
    duration_ms: _Millis = None
    ttft_ms: _Millis = None
    cache_hit: str | None = None
    tool_calls: Annotated[int, Field(ge=0, le=MAX_TOKENS)] = 0
    routing_strategy: str | None = None
    routing_reason: str | None = None
    cost_usd: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None
    price_version: str | None = None
    user_id: str | None = None
    agent_name: str | None = None
    tags: tuple[str, ...] = ()
    error_message: str | None = Field(default=None, max_length=MAX_ERROR_MESSAGE)
    attributes: Attributes = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return checked_tags(value)

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> LLMCall:
        """Build a record from values already checked by the producer, without validation.

        ``values`` must use field names only and hold values of the declared types; missing
        fields take their defaults. This is the hot path of the tracer and the stores.
        """
        data = _DEFAULTS.copy()
        data.update(values)
        if data["attributes"] is None:
            data["attributes"] = {}
        return cls._adopt(data)

    @classmethod
    def _adopt(cls, data: dict[str, Any]) -> LLMCall:
        """Wrap ``data`` (every field, checked values) as a record without copying it."""
        record = _new(cls)  # (BaseModel has no __new__ of its own: object's, found at once)
        _setattr(record, "__dict__", data)
        # Every field counts as set: one shared set, which pydantic only ever copies.
        _set_fields_set(record, _ALL_FIELDS)
        _set_extra(record, None)
        _set_private(record, None)
        return record

    @property
    def latency_ms(self) -> float | None:
        """Wall-clock latency of the call in milliseconds (the same as ``duration_ms``)."""
        return self.duration_ms

    @property
    def tpt_ms(self) -> float | None:
        """Milliseconds per output token after the first token; ``None`` when not computable
        or when the generating time (``duration_ms - ttft_ms``) is shorter than
        :data:`MIN_GENERATING_MS`, too short for a rate to mean anything."""
        if self.duration_ms is None or not self.output_tokens:
            return None
        generating = self.duration_ms - (self.ttft_ms or 0.0)
        if generating < MIN_GENERATING_MS:
            return None
        return generating / self.output_tokens

    @property
    def tokens_per_sec(self) -> float | None:
        """Output tokens per second after the first token (``1000 / tpt_ms``)."""
        tpt = self.tpt_ms
        # A tiny generating time over many tokens can round tpt to 0.0 (SQL gives NULL too).
        return None if not tpt else 1000.0 / tpt


class TraceSpan(BaseModel):
    """A step of a trace that is not an LLM call: an agent run, a tool, a workflow, a
    retrieval, a guardrail, an evaluator, an HTTP request, or any other span kept.

    ``span_id`` is unique (the key stores dedupe on); ``trace_id`` and ``parent_span_id`` place
    the step in its trace, beside the :class:`LLMCall` records of the same trace.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    span_id: str = Field(min_length=1, max_length=256)
    trace_id: str = Field(min_length=1, max_length=256)
    parent_span_id: str | None = None
    name: str = Field(min_length=1, max_length=MAX_MODEL_LENGTH)
    kind: SpanKind = "internal"
    timestamp: UTCTime
    duration_ms: _Millis = None
    status: Status = "ok"
    error_type: str | None = None
    error_message: str | None = Field(default=None, max_length=MAX_ERROR_MESSAGE)
    service_name: str | None = None
    source: str = "tracer"
    session_id: str | None = None
    user_id: str | None = None
    agent_name: str | None = None
    tool_name: str | None = None
    attributes: Attributes = Field(default_factory=dict)

    @property
    def end(self) -> datetime | None:
        """When the step ended (``None`` when its duration is unknown)."""
        if self.duration_ms is None:
            return None
        return self.timestamp + timedelta(microseconds=round(self.duration_ms * 1000))


def checked_tags(tags: object) -> tuple[str, ...]:
    """``tags`` as a record keeps them: a tuple of distinct non-empty strings, first seen first,
    at most ``MAX_TAGS`` of at most ``MAX_TAG_LENGTH`` characters; else ``ValueError``."""
    if isinstance(tags, str) or not isinstance(tags, tuple | list | set | frozenset):
        raise ValueError(f"tags must be a tuple of str, got {type(tags).__name__}")
    kept: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"a tag must be a non-empty str, got {tag!r}")
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"a tag is longer than {MAX_TAG_LENGTH} characters")
        kept[str.__str__(tag)] = None
    if len(kept) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, got {len(kept)}")
    return tuple(kept)


def bounded_message(text: str) -> str | None:
    """An error message as records keep it: cut to ``MAX_ERROR_MESSAGE`` characters, None when
    empty. A lone surrogate (an exception's text may hold one) becomes ``?``: such a string is
    no text a store can keep, and the call must not be lost for its message."""
    if not text:
        return None
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


# BaseModel keeps its internals in slots; their descriptors are the cheapest way to fill them.
_setattr = object.__setattr__
_new = object.__new__
_slots = {
    name: BaseModel.__dict__[name].__set__ for name in BaseModel.__slots__ if name != "__dict__"
}
_set_fields_set = _slots["__pydantic_fields_set__"]
_set_extra = _slots["__pydantic_extra__"]
_set_private = _slots["__pydantic_private__"]
_ALL_FIELDS: set[str] = set(LLMCall.model_fields)
_DEFAULTS: dict[str, Any] = {
    name: (None if field.is_required() else field.get_default(call_default_factory=False))
    for name, field in LLMCall.model_fields.items()
}
_DEFAULTS["attributes"] = None  # replaced by a fresh dict per record in trusted()

#: Every field with its default, for producers that fill a complete dict and call ``_adopt``.
FIELD_DEFAULTS: dict[str, Any] = dict(_DEFAULTS)
