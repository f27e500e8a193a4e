"""The collector keeps the steps of traces (keep_spans): our tracer's agent and tool spans come
back equal; a plain OTel SDK app's GenAI agent/tool spans, OpenInference and OpenLLMetry kinds
are kept with the root of their trace; "all" and "llm"; a trace of 100,000 steps is cut."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from asynctelemetry import (
    AsyncCollector,
    AsyncTracer,
    ConfigError,
    LLMCall,
    MemoryStore,
    TraceSpan,
)
from asynctelemetry._collector import _steps
from asynctelemetry._collector._convert import convert_request
from asynctelemetry._collector._steps import MAX_STEPS_PER_TRACE, StepKeeper
from asynctelemetry._collector._wire import LeanRequest

from .helpers import export, key_values, request_of

# A plain OpenTelemetry SDK app (no asynctelemetry) in a child process: an HTTP request at the
# root, an agent run, a tool, a database query inside the tool, two model calls, all GenAI
# spans of the current conventions, exported by the real OTLPSpanExporter.
SDK_AGENT_APP = textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider = TracerProvider(resource=Resource.create({"service.name": "agent-app"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1], insecure=True, timeout=30),
                           schedule_delay_millis=20)
    )
    tracer = provider.get_tracer("app")

    def chat(n):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                 "gen_ai.usage.input_tokens": 100 * n,
                                 "gen_ai.usage.output_tokens": 10, "user.id": "ann"})

    with tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "POST")
        with tracer.start_as_current_span("invoke_agent planner") as agent:
            agent.set_attributes({"gen_ai.operation.name": "invoke_agent",
                                  "gen_ai.agent.name": "planner"})
            chat(1)
            with tracer.start_as_current_span("execute_tool search") as tool:
                tool.set_attributes({"gen_ai.operation.name": "execute_tool",
                                     "gen_ai.tool.name": "search",
                                     "gen_ai.tool.call.id": "call-1"})
                with tracer.start_as_current_span("SELECT docs") as db:
                    db.set_attribute("db.system", "postgresql")
                tool.set_status(Status(StatusCode.ERROR, "index offline"))
            chat(2)
    with tracer.start_as_current_span("GET /health"):
        pass
    provider.force_flush(60_000)
    provider.shutdown()
    """
)


async def _run_sdk_app(endpoint: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SDK_AGENT_APP, endpoint,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()


async def _until(store: MemoryStore, calls: int, steps: int) -> None:
    for _ in range(200):
        if len(store) >= calls and len(store.spans_snapshot()) >= steps:
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("keep", "names"),
    [
        pytest.param("ai", {"POST /ask", "planner", "search"}, id="ai"),
        pytest.param(
            "all", {"POST /ask", "planner", "search", "SELECT docs", "GET /health"}, id="all"
        ),
        pytest.param("llm", set(), id="llm"),
    ],
)
async def test_a_plain_otel_sdk_agent_app_is_one_trace(keep: Any, names: set[str]) -> None:
    """The real OTel SDK exporter in another process: the agent run comes back as one trace
    with every step it should keep, right parents, right totals."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, keep_spans=keep) as collector:
        await _run_sdk_app(f"http://127.0.0.1:{collector.port}")
        await _until(store, 2, len(names))
        stats = collector.stats
    assert len(store) == 2 and stats.llm_calls == 2
    steps = {s.name: s for s in store.spans_snapshot()}
    assert set(steps) == names and stats.steps == len(names)
    assert stats.received_spans == 7 and stats.ignored_spans == 5 - len(names)
    if keep == "llm":
        return
    root, agent, tool = steps["POST /ask"], steps["planner"], steps["search"]
    assert (root.kind, agent.kind, tool.kind) == ("http", "agent", "tool")
    assert root.parent_span_id is None and agent.parent_span_id == root.span_id
    assert tool.parent_span_id == agent.span_id and tool.agent_name is None
    assert (tool.tool_name, tool.status, tool.error_message) == ("search", "error", "index offline")
    assert tool.attributes["gen_ai.tool.call.id"] == "call-1"
    trace = await store.get_trace(agent.trace_id)
    assert trace is not None and trace.llm_calls == 2 and trace.input_tokens == 300
    [top] = trace.tree()
    assert top.record == root and [n.name for n in top.children] == ["planner"]
    assert [n.name for n in top.children[0].children] == ["chat gpt-4o", "search", "chat gpt-4o"]
    row = next(r for r in await store.traces() if r.trace_id == agent.trace_id)
    assert (row.root_name, row.llm_calls, row.errors, row.user_id) == ("POST /ask", 2, 1, "ann")


async def test_our_tracer_steps_come_back_equal_through_otlp() -> None:
    """tracer.agent/tool/span exported over OTLP come back from the collector as equal
    TraceSpans (every field but source), beside their calls."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        endpoint = f"http://127.0.0.1:{collector.port}"
        async with AsyncTracer(otlp_endpoint=endpoint, in_memory=True) as tracer:

            @tracer.tool("search", engine="web")
            async def search(query: str) -> None:
                async with tracer.llm_call(model="gpt-4o") as call:
                    call.set_usage(input_tokens=10, output_tokens=5)

            with tracer.context(user_id="ann", session_id="s-9"):
                async with tracer.agent("planner"):
                    async with tracer.span("plan", kind="workflow"):
                        await asyncio.gather(search("a"), search("b"))
                    with pytest.raises(ValueError):
                        async with tracer.span("policy", kind="guardrail"):
                            raise ValueError("blocked ✓")
            sent = tracer.steps
        await _until(store, 2, len(sent))
    got = {s.span_id: s for s in store.spans_snapshot()}
    assert len(got) == len(sent) == 5
    for step in sent:
        back = got[step.span_id]
        assert back.source == "collector"
        assert back.model_dump(exclude={"source"}) == step.model_dump(exclude={"source"})


def _step_span(i: int, parent: bytes, attributes: dict[str, object], name: str = "s") -> Span:
    return Span(
        trace_id=b"\x01" * 16,
        span_id=i.to_bytes(8, "big"),
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=1_767_225_600_000_000_000 + i,
        end_time_unix_nano=1_767_225_600_000_000_000 + i + 1000,
        attributes=key_values(attributes),
    )


@pytest.mark.parametrize(
    ("attributes", "kind", "name"),
    [
        pytest.param({"openinference.span.kind": "AGENT"}, "agent", "s", id="oi-agent"),
        pytest.param({"openinference.span.kind": "CHAIN"}, "workflow", "s", id="oi-chain"),
        pytest.param({"openinference.span.kind": "RETRIEVER"}, "retrieval", "s", id="oi-retriever"),
        pytest.param({"openinference.span.kind": "RERANKER"}, "retrieval", "s", id="oi-reranker"),
        pytest.param({"openinference.span.kind": "GUARDRAIL"}, "guardrail", "s", id="oi-guard"),
        pytest.param({"openinference.span.kind": "EVALUATOR"}, "evaluator", "s", id="oi-eval"),
        pytest.param({"openinference.span.kind": "TOOL"}, "tool", "s", id="oi-tool"),
        pytest.param(
            {"traceloop.span.kind": "workflow", "traceloop.entity.name": "pipeline"},
            "workflow", "pipeline", id="openllmetry-workflow",
        ),
        pytest.param(
            {"traceloop.span.kind": "task", "traceloop.entity.name": "fetch"},
            "internal", "fetch", id="openllmetry-task",
        ),
        pytest.param({"gen_ai.operation.name": "create_agent"}, "agent", "s", id="create-agent"),
        pytest.param({"gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": "wf"},
                     "workflow", "wf", id="genai-workflow"),
    ],
)  # fmt: skip
def test_steps_of_every_convention(attributes: dict[str, object], kind: str, name: str) -> None:
    """OpenInference span kinds, OpenLLMetry traceloop.span.kind and GenAI operations are
    steps of their kind, named by the convention's name key."""
    request = request_of([_step_span(7, b"\x02" * 8, attributes)])
    steps = StepKeeper("ai").request()
    assert steps is not None
    convert_request(LeanRequest.FromString(request.SerializeToString()), False, {}, steps)
    [step] = steps.finish()
    assert (step.kind, step.name) == (kind, name)


def test_a_trace_of_100000_steps_is_cut_with_a_count() -> None:
    """A request whose trace holds 100,000 tool spans: the first MAX_STEPS_PER_TRACE are kept,
    the rest dropped and counted; a later request of the same trace keeps none."""
    spans = [_step_span(i + 1, b"\x09" * 8, {"gen_ai.operation.name": "execute_tool"})
             for i in range(100_000)]  # fmt: skip
    raw = request_of(spans).SerializeToString()
    keeper = StepKeeper("ai")
    steps = keeper.request()
    assert steps is not None
    convert_request(LeanRequest.FromString(raw), False, {}, steps)
    assert len(steps.finish()) == MAX_STEPS_PER_TRACE
    assert keeper.dropped == 100_000 - MAX_STEPS_PER_TRACE
    again = keeper.request()
    assert again is not None
    convert_request(
        LeanRequest.FromString(request_of(spans[:5]).SerializeToString()), False, {}, again
    )
    assert again.finish() == [] and keeper.dropped == 100_005 - MAX_STEPS_PER_TRACE


def test_bad_keep_spans_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="keep_spans"):
        AsyncCollector(MemoryStore(), port=0, keep_spans="some")  # type: ignore[arg-type]


def _root_and_agent(trace: bytes) -> tuple[Span, Span]:
    """An HTTP root span and a GenAI agent span under it, of one trace."""
    root = Span(
        trace_id=trace,
        span_id=b"\x01" * 8,
        name="POST /ask",
        start_time_unix_nano=1_767_225_600_000_000_000,
        end_time_unix_nano=1_767_225_600_000_000_000 + 5_000_000,
        attributes=key_values({"http.request.method": "POST"}),
    )
    agent = Span(
        trace_id=trace, span_id=b"\x02" * 8, parent_span_id=b"\x01" * 8,
        name="invoke_agent planner",
        start_time_unix_nano=1_767_225_600_000_000_000 + 1000,
        end_time_unix_nano=1_767_225_600_000_000_000 + 4_000_000,
        attributes=key_values({"gen_ai.operation.name": "invoke_agent",
                               "gen_ai.agent.name": "planner"}),
    )  # fmt: skip
    return root, agent


@pytest.mark.parametrize("root_first", [True, False], ids=["root-first", "root-last"])
async def test_a_trace_keeps_its_root_whichever_arrives_first(root_first: bool) -> None:
    """Through a real grpc.aio collector, in two exports: the root of an agent trace is kept
    whether it arrives before its AI spans (held until they come) or after them."""
    store = MemoryStore()
    root, agent = _root_and_agent(b"\x0a" * 16)
    first, second = (root, agent) if root_first else (agent, root)
    async with AsyncCollector(store, port=0) as collector:
        target = f"127.0.0.1:{collector.port}"
        await export(target, request_of([first]))
        await collector.flush()
        assert len(store.spans_snapshot()) == (0 if root_first else 1)
        await export(target, request_of([second]))
        await collector.flush()
        stats = collector.stats
    kept = {s.name: s for s in store.spans_snapshot()}
    assert set(kept) == {"POST /ask", "planner"}
    assert kept["planner"].parent_span_id == kept["POST /ask"].span_id
    trace = await store.get_trace(kept["planner"].trace_id)
    assert trace is not None and [n.name for n in trace.tree()] == ["POST /ask"]
    assert (stats.steps, stats.ignored_spans, stats.roots_unclaimed) == (2, 0, 0)


async def test_held_roots_are_bounded_in_time_and_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """A root whose trace shows no AI work is let go after ROOT_HOLD_SECONDS, and the oldest
    when MAX_HELD_ROOTS are waiting: each counted in roots_unclaimed, none kept."""
    monkeypatch.setattr(_steps, "MAX_HELD_ROOTS", 3)
    monkeypatch.setattr(_steps, "ROOT_HOLD_SECONDS", 1.0)
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        target = f"127.0.0.1:{collector.port}"
        roots = [_root_and_agent(bytes([i + 1]) * 16)[0] for i in range(5)]
        await export(target, request_of(roots))  # five plain HTTP roots: 3 held, 2 let go
        assert collector.stats.roots_unclaimed == 2
        await asyncio.sleep(1.2)
        _, late_agent = _root_and_agent(bytes([5]) * 16)  # the last root's trace, too late
        await export(target, request_of([late_agent]))
        await collector.flush()
        stats = collector.stats
    assert [s.name for s in store.spans_snapshot()] == ["planner"]
    assert stats.roots_unclaimed == 5 and stats.steps == 1


async def test_roots_held_when_the_collector_stops_are_counted() -> None:
    """A root still held (its trace has shown no AI work yet) when the collector stops is let
    go and counted in roots_unclaimed, not lost uncounted (#21)."""
    store = MemoryStore()
    collector = AsyncCollector(store, port=0)
    async with collector:
        roots = [_root_and_agent(bytes([i + 1]) * 16)[0] for i in range(2)]
        await export(f"127.0.0.1:{collector.port}", request_of(roots))
        await collector.flush()
        assert collector.stats.roots_unclaimed == 0  # held, waiting for their traces
    stats = collector.stats
    assert (stats.roots_unclaimed, stats.steps, store.spans_snapshot()) == (2, 0, [])


# Our tracer in another process: an agent with a tool, a workflow and a failing guardrail, two
# priced calls, under a user and a session; it prints what it recorded as JSON lines.
TRACED_APP = textwrap.dedent(
    """
    import asyncio, sys
    from asynctelemetry import AsyncTracer

    async def main(endpoint):
        async with AsyncTracer(otlp_endpoint=endpoint, in_memory=True,
                               service_name="agent-app") as tracer:
            @tracer.tool("search", engine="web")
            async def search(query):
                async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
                    call.set_usage(input_tokens=10, output_tokens=5)

            with tracer.context(user_id="ann", session_id="s-9", tags=("beta",)):
                async with tracer.agent("planner"):
                    async with tracer.span("plan", kind="workflow"):
                        await asyncio.gather(search("a"), search("b"))
                    try:
                        async with tracer.span("policy", kind="guardrail"):
                            raise ValueError("blocked ✓")
                    except ValueError:
                        pass
            await tracer.flush()
        for record in [*tracer.spans, *tracer.steps]:
            print(type(record).__name__, record.model_dump_json())

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_trace_traced_in_one_process_comes_back_equal_from_another() -> None:
    """Our tracer in a child process exports over OTLP/gRPC; the collector here stores every
    call and step of its trace equal, field for field, to what the child recorded (but
    ``source``), and the trace's tree and totals are the child's."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", TRACED_APP, f"http://127.0.0.1:{collector.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        sent = [line.split(" ", 1) for line in out.decode().splitlines()]
        calls = [LLMCall.model_validate_json(j) for kind, j in sent if kind == "LLMCall"]
        steps = [TraceSpan.model_validate_json(j) for kind, j in sent if kind == "TraceSpan"]
        await _until(store, len(calls), len(steps))
    assert (len(calls), len(steps)) == (2, 5)
    got_calls = {c.call_id: c for c in await store.query()}
    got_steps = {s.span_id: s for s in store.spans_snapshot()}
    for call in calls:
        assert got_calls[call.call_id].model_dump(exclude={"source"}) == call.model_dump(
            exclude={"source"}
        )
    for step in steps:
        assert got_steps[step.span_id].model_dump(exclude={"source"}) == step.model_dump(
            exclude={"source"}
        )
    trace = await store.get_trace(steps[0].trace_id)
    assert trace is not None and (trace.llm_calls, trace.errors) == (2, 1)
    [root] = trace.tree()
    assert (root.name, [n.name for n in root.children]) == ("planner", ["plan", "policy"])
