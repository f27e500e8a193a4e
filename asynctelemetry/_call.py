"""The handle of one traced call: what ``async with tracer.llm_call(...) as call`` gives you.

Layer 5 (producer side), the lowest module of it. The handle collects what the caller learns
during the call (first token, usage, response model, tool calls, cache hits) with cheap checks, and
the tracer turns it into one :class:`~asynctelemetry.LLMCall` when the block exits. Everything here
runs on the caller's path, so it allocates little and does no I/O.

The handle knows its tracer only as a :class:`Recorder`, the few members it calls, so this module
imports nothing above it: streams (:mod:`._stream`), client instrumentation (:mod:`._instrument`)
and the tracer (:mod:`._tracer`) stand on it, in that order.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._conventions import GEN_AI_RESPONSE_FINISH_REASONS, is_content_key
from ._record import (
    MAX_ATTRIBUTE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_DURATION_MS,
    MAX_MODEL_LENGTH,
    MAX_TOKENS,
    bounded_message,
)
from ._usage import TOKEN_FIELDS

if TYPE_CHECKING:
    from types import TracebackType

    from ._budgets import Budgets, Hold
    from ._pipeline import Pipeline
    from ._record import AttributeValue
    from ._rows import Rows

__all__ = ["CallHandle", "Recorder", "error_text", "put_attribute"]

#: Fields ``call.set(...)`` accepts, with the type each must have.
_SETTABLE: Final[dict[str, type | tuple[type, ...]]] = {
    "response_model": str,
    "request_model": str,
    "provider": str,
    "session_id": str,
    "route_name": str,
    "user_id": str,
    "agent_name": str,
    "cache_hit": str,
    "tool_calls": int,
    "status_code": int,
    "is_streaming": bool,
    "routing_strategy": str,
    "routing_reason": str,
    "error_type": str,
    **dict.fromkeys(TOKEN_FIELDS, int),
}
_CACHE_HITS: Final = frozenset({"exact", "semantic", "miss"})


def check_count(name: str, value: object) -> int:
    """A token or tool-call count, or ``ValueError``."""
    if value.__class__ is int and 0 <= value <= MAX_TOKENS:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_TOKENS:
        raise ValueError(f"{name} must be between 0 and 2**53, got {value}")
    return value


def check_text(name: str, value: object) -> str:
    """A text field as a plain ``str`` (a ``str`` subclass such as a ``StrEnum`` member gives its
    text), or ``ValueError``; model names must have 1 to ``MAX_MODEL_LENGTH`` characters."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {type(value).__name__}")
    text = str.__str__(value)
    if name in _MODEL_FIELDS and not 0 < len(text) <= MAX_MODEL_LENGTH:
        raise ValueError(f"{name} must have 1 to {MAX_MODEL_LENGTH} characters, got {len(text)}")
    return text


_MODEL_FIELDS: Final = frozenset({"model", "request_model", "response_model"})


#: Fields of ``call.set`` whose every ``str`` is valid, the model names (1 to
#: ``MAX_MODEL_LENGTH`` characters), and the fields that take a count.
_SETTABLE_MODELS: Final = frozenset({"response_model", "request_model"})
_PLAIN_TEXT: Final = frozenset(
    name
    for name, kind in _SETTABLE.items()
    if kind is str and name not in _SETTABLE_MODELS and name != "cache_hit"
)
_COUNT_FIELDS: Final = frozenset(name for name, kind in _SETTABLE.items() if kind is int)


def checked_field(name: str, value: object) -> object:
    """``value`` as ``call.set(name=value)`` keeps it, or ``ValueError``."""
    kind = _SETTABLE.get(name)
    if kind is None:
        raise ValueError(f"unknown call field {name!r}; use set_attribute() for others")
    if value is None:
        if name == "tool_calls":
            raise ValueError("tool_calls must be an int")
        return None
    if kind is int:
        value = check_count(name, value)
    elif kind is str:
        value = check_text(name, value)
    elif not isinstance(value, kind):
        raise ValueError(f"{name} must be {kind.__name__}, got {type(value).__name__}")  # type: ignore[union-attr]
    if name == "cache_hit" and value not in _CACHE_HITS:
        raise ValueError(f"cache_hit must be one of {sorted(_CACHE_HITS)}, got {value!r}")
    return value


def check_millis(name: str, value: object) -> float:
    """A duration in milliseconds, or ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= MAX_DURATION_MS):
        raise ValueError(f"{name} must be finite, >= 0 and at most a day, got {value}")
    return value


def provider_message(exc: BaseException) -> str | None:
    """The provider's own message of an SDK error that carries the response body
    (``APIStatusError.body``: ``{"error": {"message": ...}}`` of OpenAI, Anthropic's
    ``{"type": "error", "error": {"type": ..., "message": ...}}``), ``None`` for any other
    exception. The SDK's ``str(exc)`` repeats the whole body (parameters the request sent
    included); the message alone names the error and never the prompt."""
    body = getattr(exc, "body", None)
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message:
        return None
    kind = error.get("type") if isinstance(error, dict) else None
    return f"{kind}: {message}" if isinstance(kind, str) and kind and kind != "error" else message


def put_attribute(
    attributes: dict[str, AttributeValue], key: str, value: object, capture_content: bool
) -> None:
    """Keep ``key: value`` in a record's attributes, or ``ValueError`` (the bounds of
    ``LLMCall.attributes``); content keys are ignored unless ``capture_content``."""
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"attribute {key!r} must be str, int, float or bool")
    if not capture_content and is_content_key(key):
        return  # prompt and completion text is kept only with capture_content=True
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"attribute {key!r} must be finite")
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_LENGTH:
        raise ValueError(f"attribute {key!r} is longer than {MAX_ATTRIBUTE_LENGTH}")
    if key not in attributes and len(attributes) >= MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    attributes[key] = value


def error_text(exc: BaseException) -> str | None:
    """The message an exception ends a call or step with (bounded), None for a cancellation
    or an empty text."""
    if isinstance(exc, asyncio.CancelledError):
        return None
    try:
        text = provider_message(exc) or str(exc)
    except Exception:  # a broken __str__ is no reason to lose the record
        return None
    return bounded_message(text)


class Recorder(Protocol):
    """What a :class:`CallHandle` needs of its tracer (:class:`~asynctelemetry.AsyncTracer` is
    one): begin and end the call, and the pipeline that takes the record."""

    @property
    def capture_content(self) -> bool:
        """Whether prompt and completion text is kept."""
        ...

    @property
    def pipeline(self) -> Pipeline:
        """Prices records and hands them to the sinks."""
        ...

    @property
    def _budgets(self) -> Budgets | None: ...

    def _begin(self, handle: CallHandle) -> None: ...

    def _finish(
        self,
        handle: CallHandle,
        exc_type: type[BaseException] | None,
        *,
        duration_ms: float | None = None,
    ) -> Rows | None: ...


class CallHandle:
    """One LLM call in progress. Set what you learn; the tracer records it when the block ends.

    Attributes:
        call_id: the record's id (the span id in hex).
        trace_id: the trace the call belongs to (hex).
        span_id: the call's span id (hex).
        parent_span_id: the enclosing span's id (hex), if any.
    """

    __slots__ = (
        "_ended",
        "_failed",
        "_first_token_ns",
        "_holds",
        "_otel_span",
        "_start_ns",
        "_token",
        "_tracer",
        "attributes",
        "call_id",
        "estimate_usd",
        "fields",
        "operation",
        "parent_span_id",
        "span_id",
        "start_unix_ns",
        "trace_id",
    )

    def __init__(self, tracer: Recorder, fields: dict[str, Any], operation: str) -> None:
        self._tracer = tracer
        self.fields = fields
        self.operation = operation
        self.attributes: dict[str, AttributeValue] = {}
        self._first_token_ns: int | None = None
        self._failed = False
        self._ended = False
        self._otel_span: Any = None
        self._token: Any = None
        self._start_ns = 0
        self.start_unix_ns = 0
        self.call_id = self.trace_id = self.span_id = ""
        self.parent_span_id: str | None = None
        #: What the budgets reserve for this call (USD); ``None``: 0, or the request's estimate.
        self.estimate_usd: float | None = None
        self._holds: list[Hold] = []

    async def __aenter__(self) -> CallHandle:
        if self._ended or self._start_ns:
            raise RuntimeError("a call handle can be entered only once")
        budgets = self._tracer._budgets
        if budgets is not None:  # may refuse the call (BudgetExceededError): nothing is begun
            self._holds = await budgets.reserve(
                self.fields, self.attributes, self.estimate_usd or 0.0
            )
        self._tracer._begin(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Returning None lets the caller's exception or cancellation propagate unchanged.
        if exc is not None:
            self.note_message(exc)
        tracer = self._tracer
        batch = tracer._finish(self, exc_type)
        if batch is not None:
            pending = tracer.pipeline.submit_priced(batch)
            if pending is not None:
                await pending

    def first_token(self) -> None:
        """Mark the arrival of the first token (or chunk); later calls are ignored."""
        if self._first_token_ns is None:
            self._first_token_ns = time.perf_counter_ns()

    @property
    def elapsed_ms(self) -> float:
        """Milliseconds since the call started."""
        return (time.perf_counter_ns() - self._start_ns) / 1e6

    @property
    def ttft_ms(self) -> float | None:
        """Time to first token so far, in milliseconds, or ``None`` before it."""
        if self._first_token_ns is None:
            return None
        return (self._first_token_ns - self._start_ns) / 1e6

    def set_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        cache_creation_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        input_includes_cache: bool = True,
    ) -> None:
        """Record token usage. Values left ``None`` keep what was set before.

        Our semantics (OpenAI usage, the GenAI conventions): ``input_tokens`` includes cached reads
        and cache writes, ``output_tokens`` includes reasoning tokens. Pass
        ``input_includes_cache=False`` for Anthropic-shaped usage, whose ``input_tokens`` excludes
        cache reads and writes; they are added here.

        Raises:
            ValueError: a count that is not an int between 0 and 2**53.
        """
        fields = self.fields
        if input_tokens is not None:
            if not (input_tokens.__class__ is int and 0 <= input_tokens <= MAX_TOKENS):
                check_count("input_tokens", input_tokens)  # raises, naming what is wrong
            fields["input_tokens"] = input_tokens
        if output_tokens is not None:
            if not (output_tokens.__class__ is int and 0 <= output_tokens <= MAX_TOKENS):
                check_count("output_tokens", output_tokens)
            fields["output_tokens"] = output_tokens
        if total_tokens is not None:
            fields["total_tokens"] = check_count("total_tokens", total_tokens)
        if cached_input_tokens is not None:
            if not (
                cached_input_tokens.__class__ is int and 0 <= cached_input_tokens <= MAX_TOKENS
            ):
                check_count("cached_input_tokens", cached_input_tokens)
            fields["cached_input_tokens"] = cached_input_tokens
        if cache_creation_tokens is not None:
            fields["cache_creation_tokens"] = check_count(
                "cache_creation_tokens", cache_creation_tokens
            )
        if reasoning_tokens is not None:
            fields["reasoning_tokens"] = check_count("reasoning_tokens", reasoning_tokens)
        if not input_includes_cache and input_tokens is not None:
            fields["input_tokens"] = check_count(
                "input_tokens",
                input_tokens + (cached_input_tokens or 0) + (cache_creation_tokens or 0),
            )

    def set(self, **values: Any) -> None:
        """Set record fields learnt during the call.

        Accepted: ``response_model``, ``request_model``, ``provider``, ``session_id``,
        ``route_name``, ``user_id``, ``agent_name``, ``cache_hit`` ("exact", "semantic",
        "miss"), ``tool_calls``, ``status_code``, ``is_streaming``, ``routing_strategy``,
        ``routing_reason``, ``error_type`` and the token counts of :meth:`set_usage`.

        Raises:
            ValueError: an unknown field or a value of the wrong type or range.
        """
        fields = self.fields
        for name, value in values.items():
            kind = value.__class__
            if kind is str:  # the usual values pass one test; others go through checked_field
                if not (
                    name in _PLAIN_TEXT
                    or (name in _SETTABLE_MODELS and 0 < len(value) <= MAX_MODEL_LENGTH)
                    or (name == "cache_hit" and value in _CACHE_HITS)
                ):
                    value = checked_field(name, value)
            elif not (kind is int and name in _COUNT_FIELDS and 0 <= value <= MAX_TOKENS):
                value = checked_field(name, value)
            fields[name] = value

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Keep an extra attribute on the record and its span (bounded like LLMCall.attributes).

        Prompt and completion text (``gen_ai.input.messages``, ``input.value``, … see
        ``_conventions.is_content_key``) is ignored unless the tracer has ``capture_content=True``.

        Raises:
            ValueError: a value that is not str, int, float or bool, a non-finite float, a string
                longer than 4096 characters, or more than 128 attributes.
        """
        put_attribute(self.attributes, key, value, self._tracer.capture_content)

    def record_response(self, response: object) -> None:
        """Read usage, tool calls and the response model from a provider's response object.

        Works by duck typing on OpenAI (Chat Completions and Responses), Anthropic Messages and
        Google GenAI responses, as SDK objects or plain dicts; nothing is imported from their SDKs.
        """
        from ._usage import usage_from_response

        usage = usage_from_response(response)
        if usage is not None:
            self._apply(usage, add_tool_calls=False)

    def record_chunk(self, chunk: object) -> None:
        """Take note of one streamed chunk: the first that carries output (text, reasoning, a
        tool call; not an opening role-only frame) marks the first token; usage is kept."""
        from ._usage import read_chunk

        content, usage = read_chunk(chunk)
        if content and self._first_token_ns is None:
            self._first_token_ns = time.perf_counter_ns()
        if usage is not None:
            # A chunk reports the tool calls it starts: they add up over the stream.
            self._apply(usage, add_tool_calls=True)

    def note_error(self, exc: BaseException) -> None:
        """Keep the HTTP status of an exception that carries one (``status_code``, as the
        OpenAI, Anthropic and Mistral SDKs' errors, LiteLLM's and httpx's do; ``code``, as
        Google GenAI's ``APIError`` does), and its message."""
        code = getattr(exc, "status_code", None)
        if code is None:
            code = getattr(exc, "code", None)
            if code.__class__ is not int:
                code = getattr(getattr(exc, "response", None), "status_code", None)
        if code.__class__ is int and 100 <= code <= 599:
            self.fields["status_code"] = code
        self.note_message(exc)

    def note_message(self, exc: BaseException) -> None:
        """Keep the text of the exception that ends the call (cut to ``MAX_ERROR_MESSAGE``);
        a cancellation has none. The first exception noted wins."""
        if self.fields["error_message"] is None:
            self.fields["error_message"] = error_text(exc)

    def _apply(self, usage: Any, *, add_tool_calls: bool) -> None:
        fields = self.fields
        for name in TOKEN_FIELDS:
            value = getattr(usage, name)
            if value is not None:
                fields[name] = check_count(name, value)
        if usage.tool_calls:
            count = usage.tool_calls + (fields["tool_calls"] if add_tool_calls else 0)
            fields["tool_calls"] = check_count("tool_calls", count)
        model = usage.response_model
        if model and len(model) <= MAX_MODEL_LENGTH:  # a longer name is ignored, not raised
            fields["response_model"] = str.__str__(model)
        reasons = usage.finish_reasons
        if reasons and len(self.attributes) < MAX_ATTRIBUTES:
            text = json.dumps(list(reasons))  # a list attribute travels as JSON text
            if len(text) <= MAX_ATTRIBUTE_LENGTH:
                self.attributes[GEN_AI_RESPONSE_FINISH_REASONS] = text

    def fail(
        self, error_type: str, *, status_code: int | None = None, message: str | None = None
    ) -> None:
        """Mark the call failed without raising (an error response the caller handles itself);
        ``message``: the error's text (cut to ``MAX_ERROR_MESSAGE`` characters)."""
        error_type = check_text("error_type", error_type)
        if message is not None:
            self.fields["error_message"] = bounded_message(check_text("message", message))
        self._failed = True
        self.fields["error_type"] = error_type
        if status_code is not None:
            self.fields["status_code"] = check_count("status_code", status_code)
