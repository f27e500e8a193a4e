"""``tracer.instrument_agents()``: the openai-agents SDK's traces as steps and priced calls.

Layer 5 (producer), below the tracer, which it knows only as an :class:`AgentsRecorder`. A
:class:`AgentsProcessor` is registered with ``agents.tracing`` (``add_trace_processor``, or
``set_trace_processors`` with ``exclusive=True``, which also stops the SDK's own export to
OpenAI's trace backend). It turns each ended span into one record:

- agent spans → :class:`~asynctelemetry.TraceSpan` of kind "agent" (named by the agent);
- function (tool) spans → "tool" (``tool_name``), MCP tool listings → "tool" too;
- handoff spans → "internal" named ``handoff → {to_agent}`` (``from_agent``/``to_agent``
  attributes), guardrail spans → "guardrail" (``triggered``), custom spans → "internal";
- generation spans (Chat Completions) and response spans (Responses API) →
  :class:`~asynctelemetry.LLMCall`, with the usage they report, priced by the tracer's pipeline;
- task spans (a run of the workflow, the root of its trace) → "workflow", turn spans (one model
  turn of an agent) → "internal" named ``turn {n}``.

Ids: the SDK's ``trace_<32 hex>`` becomes the trace id (the hex), ``span_<hex>`` the span id
(its first 16 hex digits, as OpenTelemetry span ids are), so the records export over OTLP as
they are. Everything inside an agent span carries its ``agent_name``. The processor's callbacks
run on the SDK's side synchronously: they build a record and hand it to the pipeline (the
awaited part runs as a task of the loop), never blocking.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from .._record import (
    FIELD_DEFAULTS,
    MAX_DURATION_MS,
    MAX_MODEL_LENGTH,
    TraceSpan,
    bounded_message,
)
from .._usage import TOKEN_FIELDS

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .._pipeline import Pipeline
    from .._record import LLMCall

__all__ = ["AgentsProcessor", "AgentsRecorder"]

#: Spans whose agent is remembered at once (a bound: a span that never ends is forgotten).
_REMEMBERED: Final = 65_536


class AgentsRecorder(Protocol):
    """What the processor needs of its tracer (:class:`~asynctelemetry.AsyncTracer` is one)."""

    service_name: str

    @property
    def pipeline(self) -> Pipeline:
        """Prices records and hands them to the sinks."""
        ...

    def _spawn(self, work: Awaitable[None]) -> None: ...


def _hex_id(raw: object, prefix: str, size: int) -> str | None:
    """``trace_<hex>`` / ``span_<hex>`` as ``size`` hex digits (None when not an SDK id)."""
    if not isinstance(raw, str):
        return None
    text = raw.removeprefix(prefix).lower()
    if len(text) < size or any(c not in "0123456789abcdef" for c in text[:size]):
        return None
    return text[:size]


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _millis(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    duration = (end - start).total_seconds() * 1000
    return duration if 0 <= duration <= MAX_DURATION_MS else None


def _text(value: object, limit: int = MAX_MODEL_LENGTH) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


class AgentsProcessor:
    """An ``agents.tracing.TracingProcessor`` that records the SDK's spans with a tracer."""

    def __init__(self, tracer: AgentsRecorder) -> None:
        self._tracer = tracer
        self._agents: dict[str, str | None] = {}  # span id → the agent it runs under
        self.closed = False

    # -- the SDK's TracingProcessor interface --------------------------------------------------
    def on_trace_start(self, trace: Any) -> None:
        """Nothing to record: a trace's steps are its spans (the task span is its root)."""

    def on_trace_end(self, trace: Any) -> None:
        """Nothing to record: every span was recorded as it ended."""

    def on_span_start(self, span: Any) -> None:
        """Remember which agent a span runs under (the innermost agent span around it)."""
        span_id = getattr(span, "span_id", None)
        if not isinstance(span_id, str) or len(self._agents) >= _REMEMBERED:
            return
        data = getattr(span, "span_data", None)
        if getattr(data, "type", None) == "agent":
            self._agents[span_id] = _text(getattr(data, "name", None))
        else:
            self._agents[span_id] = self._agents.get(getattr(span, "parent_id", None) or "")

    def on_span_end(self, span: Any) -> None:
        """Record an ended span: a step or an LLM call."""
        agent = self._agents.pop(getattr(span, "span_id", None) or "", None)
        if self.closed:
            return
        try:
            self._record(span, agent)
        except Exception as exc:  # a span of an unexpected shape: never the SDK's problem
            from .._batching import report_internal_error

            report_internal_error("recording an openai-agents span", exc)

    def shutdown(self) -> None:
        """Stop recording (the tracer's own close flushes what was handed on)."""
        self.closed = True

    def force_flush(self) -> None:
        """Nothing is held here: records are handed on as spans end."""

    # -- records ---------------------------------------------------------------------------------
    def _record(self, span: Any, agent: str | None) -> None:
        trace_id = _hex_id(span.trace_id, "trace_", 32)
        span_id = _hex_id(span.span_id, "span_", 16)
        if trace_id is None or span_id is None:
            return
        parent = _hex_id(span.parent_id, "span_", 16) if span.parent_id else None
        start, end = _moment(span.started_at), _moment(span.ended_at)
        error = span.error if isinstance(span.error, dict) else None
        data = span.span_data
        kind = getattr(data, "type", None)
        common: dict[str, Any] = {
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent,
            "timestamp": start or datetime.now(UTC),
            "duration_ms": _millis(start, end),
            "status": "error" if error else "ok",
            "error_message": bounded_message(str(error.get("message") or "")) if error else None,
            "agent_name": agent,
            "service_name": self._tracer.service_name,
        }
        if kind in ("generation", "response"):
            self._emit_call(self._call(data, kind, common))
            return
        name, step_kind, attributes, tool = _step_of(data, kind)
        step = TraceSpan.model_construct(
            **{
                **_STEP_DEFAULTS,
                **common,
                "name": name,
                "kind": step_kind,
                "tool_name": tool,
                "attributes": attributes,
            }
        )
        self._emit_step(step)

    def _call(self, data: Any, kind: str, common: dict[str, Any]) -> LLMCall:
        from .._usage import usage_from_response

        fields = FIELD_DEFAULTS.copy()
        fields.update(common)
        fields["call_id"] = common["span_id"]
        fields["provider"] = "openai"
        fields["operation"] = "chat"
        fields["attributes"] = {"agents.span_type": kind}
        model = _text(getattr(data, "model", None))
        if kind == "response":
            response = getattr(data, "response", None)
            model = _text(getattr(response, "model", None)) or model
            usage = usage_from_response(response) if response is not None else None
            if usage is not None:
                for name in TOKEN_FIELDS:
                    fields[name] = getattr(usage, name)
        else:
            usage_dict = getattr(data, "usage", None) or {}
            fields["input_tokens"] = _count(usage_dict.get("input_tokens"))
            fields["output_tokens"] = _count(usage_dict.get("output_tokens"))
            details = usage_dict.get("input_tokens_details") or {}
            fields["cached_input_tokens"] = _count(details.get("cached_tokens"))
            reasoning = usage_dict.get("output_tokens_details") or {}
            fields["reasoning_tokens"] = _count(reasoning.get("reasoning_tokens"))
        fields["model"] = model or "unknown"
        fields["request_model"] = _text(getattr(data, "model", None))
        if fields["input_tokens"] is not None and fields["output_tokens"] is not None:
            fields["total_tokens"] = fields["input_tokens"] + fields["output_tokens"]
        return self._tracer.pipeline.record(fields)

    def _emit_call(self, call: LLMCall) -> None:
        pending = self._tracer.pipeline.submit_priced((call,))
        if pending is not None:
            self._tracer._spawn(pending)

    def _emit_step(self, step: TraceSpan) -> None:
        self._tracer._spawn(self._tracer.pipeline.emit_spans((step,)))


_STEP_DEFAULTS: Final[dict[str, Any]] = {
    name: field.get_default(call_default_factory=True)
    for name, field in TraceSpan.model_fields.items()
    if not field.is_required()
}
_STEP_DEFAULTS["source"] = "tracer"


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53:
        return value
    return None


def _step_of(data: Any, kind: object) -> tuple[str, str, dict[str, Any], str | None]:
    """(name, kind, attributes, tool name) of a span that is not a model call."""
    name = _text(getattr(data, "name", None))
    if kind == "agent":
        return name or "agent", "agent", {}, None
    if kind == "task":  # the run of a workflow: the root of its trace
        return name or "Agent workflow", "workflow", {}, None
    if kind == "turn":
        return f"turn {getattr(data, 'turn', '?')}", "internal", {"agents.span_type": "turn"}, None
    if kind == "function":
        return name or "function", "tool", {}, name or "function"
    if kind == "mcp_tools":
        server = _text(getattr(data, "server", None)) or "mcp"
        return f"list_tools {server}", "tool", {}, None
    if kind == "handoff":
        source = _text(getattr(data, "from_agent", None))
        target = _text(getattr(data, "to_agent", None))
        attributes = {k: v for k, v in (("from_agent", source), ("to_agent", target)) if v}
        return f"handoff → {target or '?'}", "internal", attributes, None
    if kind == "guardrail":
        triggered = bool(getattr(data, "triggered", False))
        return name or "guardrail", "guardrail", {"triggered": triggered}, None
    label = _text(str(kind)) if kind else None
    return name or label or "span", "internal", {"agents.span_type": label or ""}, None
