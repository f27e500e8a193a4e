"""tracer.agent / tracer.tool / tracer.span: steps that time themselves, nest across tasks, name
the calls inside them, and become TraceSpan records and OTel spans of the GenAI conventions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from asynctelemetry import AsyncTracer, ConfigError, MemoryStore, StoreClosedError, TraceSpan
from asynctelemetry._export._encode import SpanEncoder
from tests.collector.helpers import key_values, nanos


async def _agent_app(tracer: AsyncTracer) -> None:
    """An agent that calls a model, runs two tools at once (one fails, handled), then answers."""

    @tracer.tool("search", engine="web")
    async def search(query: str) -> str:
        async with tracer.llm_call(model="gpt-4o-mini", provider="openai") as call:
            await asyncio.sleep(0.002)
            call.set_usage(input_tokens=10, output_tokens=5)
        if query == "bad":
            raise LookupError(f"nothing found for {query!r}")
        return query

    with tracer.context(user_id="ann", session_id="s-1"):
        async with tracer.agent("planner") as agent:
            async with tracer.llm_call(model="gpt-4o", provider="openai"):
                await asyncio.sleep(0.002)
            results = await asyncio.gather(search("ok"), search("bad"), return_exceptions=True)
            assert isinstance(results[1], LookupError)
            agent.set_attribute("answers", 1)


async def test_steps_nest_across_tasks_and_name_the_calls_inside() -> None:
    """Every call and step inside a step is its child (same trace, parent = the step), across
    tasks; calls inside an agent carry its name; tools have tool_name; each step is timed."""
    async with AsyncTracer(in_memory=True) as tracer:
        await _agent_app(tracer)
        steps = tracer.steps
        calls = tracer.spans
    agent = next(s for s in steps if s.kind == "agent")
    tools = [s for s in steps if s.kind == "tool"]
    assert (agent.name, agent.agent_name, agent.parent_span_id) == ("planner", "planner", None)
    assert agent.attributes == {"answers": 1} and agent.status == "ok"
    assert (agent.user_id, agent.session_id) == ("ann", "s-1")
    assert len(tools) == 2 and len({t.span_id for t in tools}) == 2
    for tool in tools:
        assert (tool.name, tool.tool_name, tool.agent_name) == ("search", "search", "planner")
        assert tool.parent_span_id == agent.span_id and tool.trace_id == agent.trace_id
        assert tool.attributes == {"engine": "web"}
        assert tool.duration_ms is not None and tool.duration_ms >= 2.0
        assert agent.timestamp <= tool.timestamp
    assert sorted(t.status for t in tools) == ["error", "ok"]
    failed = next(t for t in tools if t.status == "error")
    assert (failed.error_type, failed.error_message) == ("LookupError", "nothing found for 'bad'")
    assert len(calls) == 3 and {c.trace_id for c in calls} == {agent.trace_id}
    assert {c.agent_name for c in calls} == {"planner"}
    by_parent = sorted(c.parent_span_id or "" for c in calls)
    assert by_parent == sorted([agent.span_id, *(t.span_id for t in tools)])
    assert agent.duration_ms is not None
    assert agent.duration_ms >= max(t.duration_ms or 0 for t in tools)


async def test_an_exception_marks_every_step_it_passes_through() -> None:
    """An error raised in a tool inside an agent: both steps are "error" with its type and
    message, and it propagates unchanged; the innermost agent names what is inside it."""
    async with AsyncTracer(in_memory=True) as tracer:
        with pytest.raises(KeyError):
            async with tracer.agent("outer"), tracer.agent("inner"), tracer.tool("lookup"):
                async with tracer.llm_call(model="m"):
                    pass
                raise KeyError("k")
        steps = {s.name: s for s in tracer.steps}
        [call] = tracer.spans
    assert {s.status for s in steps.values()} == {"error"}
    assert {s.error_type for s in steps.values()} == {"KeyError"}
    assert {s.error_message for s in steps.values()} == {"'k'"}
    assert steps["lookup"].agent_name == "inner" == call.agent_name
    assert steps["inner"].parent_span_id == steps["outer"].span_id
    assert steps["outer"].agent_name == "outer"


async def test_cancellation_and_handled_failures() -> None:
    """A cancelled step is "cancelled" (no message) and the cancellation propagates;
    ``step.fail()`` marks a step failed without raising; after the block, calls outside carry
    no agent."""
    async with AsyncTracer(in_memory=True) as tracer:

        async def slow() -> None:
            async with tracer.span("wait", kind="workflow"):
                await asyncio.sleep(10)

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with tracer.span("policy", kind="guardrail") as step:
            step.fail("Blocked", message="unsafe request")
        async with tracer.llm_call(model="after"):
            pass
        steps = {s.name: s for s in tracer.steps}
        [call] = tracer.spans
    assert (steps["wait"].status, steps["wait"].error_message) == ("cancelled", None)
    assert steps["wait"].kind == "workflow"
    assert (steps["policy"].status, steps["policy"].error_type) == ("error", "Blocked")
    assert steps["policy"].error_message == "unsafe request"
    assert call.agent_name is None and call.parent_span_id is None


async def test_bad_steps_are_refused_clearly() -> None:
    """A bad kind, name or attribute is a ConfigError at once; a sync function cannot be
    decorated; a handle is entered once; a closed tracer refuses new steps."""
    tracer = AsyncTracer()
    for make in (
        lambda: tracer.span("x", kind="banana"),  # type: ignore[arg-type]
        lambda: tracer.agent(""),
        lambda: tracer.tool("t", big="x" * 5000),
        lambda: tracer.agent(7),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigError):
            make()
    with pytest.raises(ConfigError, match="async function"):
        tracer.tool("sync")(lambda: None)
    step = tracer.agent("once")
    async with step:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        async with step:
            pass
    await tracer.aclose()
    with pytest.raises(StoreClosedError):
        async with tracer.agent("late"):
            pass


async def test_live_sdk_spans_follow_the_genai_agent_conventions() -> None:
    """With SDK spans, an agent is ``invoke_agent {name}`` and a tool ``execute_tool {name}``
    (kind INTERNAL, gen_ai.operation.name, gen_ai.agent.name / gen_ai.tool.name); the call
    spans inside are their children; a failed tool has status ERROR and an exception event."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    async with AsyncTracer(custom_exporter=exporter, tracer_provider=provider) as tracer:
        await _agent_app(tracer)
    spans = {(s.name, s.status.status_code): s for s in exporter.get_finished_spans()}
    agent = spans["invoke_agent planner", StatusCode.UNSET]
    ok_tool = spans["execute_tool search", StatusCode.UNSET]
    bad_tool = spans["execute_tool search", StatusCode.ERROR]
    assert agent.kind is SpanKind.INTERNAL and ok_tool.kind is SpanKind.INTERNAL
    assert dict(agent.attributes or {}) == {
        "answers": 1,
        "gen_ai.operation.name": "invoke_agent",
        "asynctelemetry.span.kind": "agent",
        "gen_ai.agent.name": "planner",
        "gen_ai.conversation.id": "s-1",
        "user.id": "ann",
    }
    tool_attrs = dict(ok_tool.attributes or {})
    assert tool_attrs["gen_ai.operation.name"] == "execute_tool"
    assert tool_attrs["gen_ai.tool.name"] == "search"
    assert tool_attrs["asynctelemetry.agent.name"] == "planner"
    assert ok_tool.parent is not None and ok_tool.parent.span_id == agent.context.span_id
    assert bad_tool.status.description == "nothing found for 'bad'"
    assert [e.name for e in bad_tool.events] == ["exception"]
    calls = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert {c.parent.span_id for c in calls if c.parent} == {
        agent.context.span_id,
        ok_tool.context.span_id,
        bad_tool.context.span_id,
    }
    assert {dict(c.attributes or {})["gen_ai.agent.name"] for c in calls} == {"planner"}


def test_steps_encode_as_the_protobuf_library_builds_them() -> None:
    """The OTLP encoder writes a step as the span the protobuf library builds field by field."""
    step = TraceSpan(
        span_id="00f067aa0ba902b7",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        parent_span_id="00f067aa0ba902b8",
        name="search",
        kind="tool",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=7),
        duration_ms=12.5,
        status="error",
        error_type="LookupError",
        error_message="nothing ✓",
        agent_name="planner",
        tool_name="search",
        user_id="ann",
        attributes={"engine": "web"},
    )
    start = nanos(step.timestamp)
    expected = Span(
        trace_id=bytes.fromhex(step.trace_id),
        span_id=bytes.fromhex(step.span_id),
        parent_span_id=bytes.fromhex(step.parent_span_id or ""),
        name="execute_tool search",
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 12_500_000,
        attributes=key_values(
            {
                "engine": "web",
                "gen_ai.operation.name": "execute_tool",
                "asynctelemetry.span.kind": "tool",
                "asynctelemetry.agent.name": "planner",
                "gen_ai.tool.name": "search",
                "user.id": "ann",
                "error.type": "LookupError",
            }
        ),
        status=Status(code=Status.STATUS_CODE_ERROR, message="nothing ✓"),
    )
    expected.events.add(
        time_unix_nano=start + 12_500_000,
        name="exception",
        attributes=key_values({"exception.type": "LookupError", "exception.message": "nothing ✓"}),
    )
    assert Span.FromString(SpanEncoder(service_name="s").step(step)) == expected


async def test_memory_store_keeps_steps_once_and_bounded() -> None:
    """``add``/``add_many`` take calls and steps; a step's span_id is unique (a second copy is
    counted in ``duplicates``); the steps' ring drops its oldest past ``capacity``."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [
        TraceSpan(span_id=f"s{i}", trace_id="t", name=f"n{i}", timestamp=base) for i in range(4)
    ]
    async with MemoryStore(capacity=3) as store:
        await store.add_many([steps[0], steps[1]])
        await store.add(steps[1])
        assert store.duplicates == 1
        await store.emit_spans(steps[2:])
        assert [s.span_id for s in store.spans_snapshot()] == ["s1", "s2", "s3"]
        assert store.dropped == 1
