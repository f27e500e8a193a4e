"""Spans that are not LLM calls → :class:`~asynctelemetry.TraceSpan` steps (``keep_spans``).

The converter (:mod:`._convert`) hands every span that is not an LLM call to the request's
:class:`RequestSteps`, with what the attribute tables read from it (fields and kept extras).
What is kept depends on the collector's ``keep_spans``:

- ``"ai"`` (the default): spans a convention marks as a step: our own
  ``asynctelemetry.span.kind``, GenAI ``gen_ai.operation.name`` (invoke_agent, create_agent,
  execute_tool, invoke_workflow, retrieval), OpenInference ``openinference.span.kind`` (AGENT,
  TOOL, CHAIN, RETRIEVER, RERANKER, GUARDRAIL, EVALUATOR), OpenLLMetry ``traceloop.span.kind``
  (workflow, task, agent, tool); plus the root span (no parent) of a trace that has such a step
  or an LLM call, in the same request or one seen lately. A root that arrives before any AI
  span of its trace (its service exported first, or the agent ran on after the request ended)
  is held, at most :data:`ROOT_HOLD_SECONDS` and :data:`MAX_HELD_ROOTS` of them, and kept with
  the first request that shows its trace holds AI work; a root let go unclaimed (its trace
  showed none in time, newer roots pushed it out, or the collector stopped) is counted
  (``roots_unclaimed``);
- ``"all"``: every span (``http`` when it carries HTTP keys, else ``internal``);
- ``"llm"``: none.

Bounds: at most :data:`MAX_STEPS_PER_TRACE` steps per trace are kept (the collector remembers
the counts of the last :data:`REMEMBERED_TRACES` traces); the rest are dropped and counted
(``steps_dropped``), so a trace of 100,000 steps is cut, never a stall or a flood.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final, Literal

from .._conventions import (
    AT_AGENT_NAME,
    AT_SPAN_KIND,
    GEN_AI_TOOL_NAME,
    HTTP_KEYS,
    OPENINFERENCE_STEP_KINDS,
    STEP_KIND_OF_OPERATION,
    STEP_OPERATIONS,
    TRACELOOP_ENTITY_NAME,
    TRACELOOP_SPAN_KIND,
    TRACELOOP_STEP_KINDS,
)
from .._record import MAX_MODEL_LENGTH, SPAN_KINDS, TraceSpan

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping
    from datetime import datetime

__all__ = ["KEEP_SPANS", "MAX_STEPS_PER_TRACE", "KeepSpans", "RequestSteps", "StepKeeper"]

KeepSpans = Literal["ai", "all", "llm"]
KEEP_SPANS: Final = ("ai", "all", "llm")
#: Most steps kept per trace; past it, steps are dropped and counted.
MAX_STEPS_PER_TRACE: Final = 10_000
#: Traces whose step counts (and whether they hold AI work) the collector remembers.
REMEMBERED_TRACES: Final = 65_536
#: How long a root that came before any AI span of its trace waits for one, in seconds.
ROOT_HOLD_SECONDS: Final = 60.0
#: Most roots held at once; past it, the oldest is let go (and counted).
MAX_HELD_ROOTS: Final = 4096
#: Extras that a field of the step carries (not kept twice in its attributes).
_CONSUMED: Final = frozenset({AT_SPAN_KIND, AT_AGENT_NAME, GEN_AI_TOOL_NAME})
_KINDS: Final = frozenset(SPAN_KINDS)


class StepKeeper:
    """The collector's memory of traces, shared by its requests: which hold AI work, and how
    many steps each has had kept."""

    def __init__(self, mode: KeepSpans) -> None:
        if mode not in KEEP_SPANS:
            raise ValueError(f"keep_spans must be one of {list(KEEP_SPANS)}, not {mode!r}")
        self.mode: KeepSpans = mode
        #: trace_id → steps kept (most recent last); also says the trace holds AI work.
        self._traces: OrderedDict[str, int] = OrderedDict()
        #: trace_id → (deadline, its roots): roots waiting for their trace to show AI work.
        self._held: OrderedDict[str, tuple[float, list[TraceSpan]]] = OrderedDict()
        #: held roots whose trace has shown AI work: the next request to finish keeps them.
        self._claimed: list[TraceSpan] = []
        self.kept = 0
        self.dropped = 0
        self.roots_unclaimed = 0

    def request(self) -> RequestSteps | None:
        """What one request's conversion fills (None for ``"llm"``: no steps at all)."""
        return None if self.mode == "llm" else RequestSteps(self)

    def note_trace(self, trace_id: str) -> None:
        """A trace holds AI work (an LLM call or a step): its root is kept."""
        traces = self._traces
        if trace_id in traces:
            traces.move_to_end(trace_id)
            return
        if len(traces) >= REMEMBERED_TRACES:
            traces.popitem(last=False)
        traces[trace_id] = 0
        if self._held:
            held = self._held.pop(trace_id, None)
            if held is not None:
                if held[0] > time.monotonic():
                    self._claimed += held[1]
                else:  # past its time: let go, as if it had been forgotten already
                    self.roots_unclaimed += len(held[1])

    def hold(self, root: TraceSpan) -> None:
        """Keep a root whose trace has shown no AI work yet, for a while (bounded)."""
        self._let_go(time.monotonic())
        held = self._held
        entry = held.get(root.trace_id)
        if entry is not None:
            entry[1].append(root)  # a second root of one trace (another service's): kept too
            return
        if len(held) >= MAX_HELD_ROOTS:
            self.roots_unclaimed += len(held.popitem(last=False)[1][1])
        held[root.trace_id] = (time.monotonic() + ROOT_HOLD_SECONDS, [root])

    def claimed(self) -> list[TraceSpan]:
        """The held roots whose trace has shown AI work since (each handed out once)."""
        self._let_go(time.monotonic())
        roots, self._claimed = self._claimed, []
        return roots

    def _let_go(self, now: float) -> None:
        """Count and forget the roots held past their time (the oldest are first)."""
        held = self._held
        while held:
            deadline, roots = next(iter(held.values()))
            if deadline > now:
                return
            held.popitem(last=False)
            self.roots_unclaimed += len(roots)

    def let_go_all(self) -> None:
        """Count and forget every root still held (the collector stops: no request is left
        to show their traces' AI work, or to take those claimed already)."""
        self.roots_unclaimed += sum(len(roots) for _, roots in self._held.values())
        self.roots_unclaimed += len(self._claimed)
        self._held.clear()
        self._claimed = []

    def holds_ai(self, trace_id: str) -> bool:
        """Whether the trace was seen with AI work lately."""
        return trace_id in self._traces

    def admit(self, trace_id: str) -> bool:
        """Count one more step of a trace; False (and counted) past the per-trace bound."""
        self.note_trace(trace_id)
        count = self._traces[trace_id]
        if count >= MAX_STEPS_PER_TRACE:
            self.dropped += 1
            return False
        self._traces[trace_id] = count + 1
        self.kept += 1
        return True


class RequestSteps:
    """The steps of one request, decided span by span; :meth:`finish` gives them."""

    __slots__ = ("_keeper", "_roots", "note_call", "steps")

    def __init__(self, keeper: StepKeeper) -> None:
        self._keeper = keeper
        #: An LLM call of this request, by its trace id (the trace holds AI work): the
        #: keeper's :meth:`StepKeeper.note_trace`.
        self.note_call = keeper.note_trace
        self.steps: list[TraceSpan] = []
        self._roots: list[TraceSpan] = []  # "ai": roots kept once their trace proves AI

    def consider(
        self,
        span: Any,
        found: dict[str, Any],
        extra: dict[str, Any] | None,
        span_kind: object,
        service_name: str | None,
        times: Callable[[Any], tuple[datetime, float | None]],
        error_message: Callable[[Any], str | None],
        defects: MutableMapping[str, int],
    ) -> None:
        """Keep (or hold, for a root) a span that is not an LLM call, as the mode says."""
        extra = extra or {}
        kind = _kind(found, extra, span_kind)
        root = not span.parent_span_id
        if kind is None:
            if self._keeper.mode == "ai" and not root:
                return
            kind = "http" if HTTP_KEYS.intersection(extra) else "internal"
            ai = False
        else:
            ai = True
        trace_id = span.trace_id.hex()
        span_id = span.span_id.hex()
        if not trace_id or not span_id:
            defects["step_without_ids"] = defects.get("step_without_ids", 0) + 1
            return
        step = _step(span, kind, found, extra, service_name, times, error_message)
        if ai:
            self._keeper.note_trace(trace_id)
        elif self._keeper.mode == "ai":
            self._roots.append(step)
            return
        self._keep(step)

    def _keep(self, step: TraceSpan) -> None:
        if self._keeper.admit(step.trace_id):
            self.steps.append(step)

    def finish(self) -> list[TraceSpan]:
        """The request's steps, with the roots of traces that hold AI work: this request's,
        and those held from earlier requests whose trace has shown AI work since. A root whose
        trace has shown none is held for a later request."""
        keeper = self._keeper
        for root in self._roots:
            if keeper.holds_ai(root.trace_id):
                self._keep(root)
            else:
                keeper.hold(root)
        self._roots = []
        for root in keeper.claimed():
            self._keep(root)
        return self.steps


def _kind(found: dict[str, Any], extra: dict[str, Any], span_kind: object) -> str | None:
    """The step kind a convention gives a span, or None."""
    ours = extra.get(AT_SPAN_KIND)
    if ours in _KINDS:
        return ours  # type: ignore[no-any-return]
    operation = found.get("operation")
    if operation is not None:
        kind = STEP_KIND_OF_OPERATION.get(operation)
        if kind is not None:
            return kind
    if span_kind.__class__ is str:
        kind = OPENINFERENCE_STEP_KINDS.get(span_kind)
        if kind is not None:
            return kind
    traceloop = extra.get(TRACELOOP_SPAN_KIND)
    if traceloop.__class__ is str:
        return TRACELOOP_STEP_KINDS.get(traceloop)
    return None


def _text(value: object) -> str | None:
    if value.__class__ is str and 0 < len(value) <= MAX_MODEL_LENGTH:
        return value
    return None


def _step(
    span: Any,
    kind: str,
    found: dict[str, Any],
    extra: dict[str, Any],
    service_name: str | None,
    times: Callable[[Any], tuple[datetime, float | None]],
    error_message: Callable[[Any], str | None],
) -> TraceSpan:
    raw = span.name[: 4 * MAX_MODEL_LENGTH].decode(errors="replace")[:MAX_MODEL_LENGTH]
    operation = STEP_OPERATIONS.get(kind)
    if operation is not None and raw.startswith(operation + " "):
        raw = raw[len(operation) + 1 :]
    entity = _text(extra.get(TRACELOOP_ENTITY_NAME))
    if kind in ("agent", "workflow"):
        name = _text(found.get("agent_name")) or entity or raw
    elif kind == "tool":
        name = _text(extra.get(GEN_AI_TOOL_NAME)) or entity or raw
    else:
        name = entity or raw
    if kind == "agent":
        agent = name
    elif AT_AGENT_NAME in extra:
        agent = _text(extra[AT_AGENT_NAME])
    else:
        agent = None if kind == "workflow" else found.get("agent_name")
    status = found.get("status") or ("error" if span.status.code == 2 else "ok")
    timestamp, duration = times(span)
    failed = status == "error"
    return TraceSpan.model_construct(
        span_id=span.span_id.hex(),
        trace_id=span.trace_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=name or kind,
        kind=kind,
        timestamp=timestamp,
        duration_ms=duration,
        status=status,
        error_type=found.get("error_type") if failed else None,
        error_message=(found.get("error_message") or error_message(span)) if failed else None,
        service_name=service_name,
        source="collector",
        session_id=found.get("session_id"),
        user_id=found.get("user_id"),
        agent_name=agent,
        tool_name=name if kind == "tool" else None,
        attributes={k: v for k, v in extra.items() if k not in _CONSUMED},
    )
