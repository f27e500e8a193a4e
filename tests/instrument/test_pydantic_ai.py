"""pydantic-ai's own OpenTelemetry instrumentation (GenAI spans) against the local model server:
through the collector (the OTel SDK's OTLP exporter) and in process (``tracer.span_processor()``),
each run is one trace: the agent run at the root, its model calls priced, its tool a step, with
the right parents."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pydantic_ai import Agent
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from asynctelemetry import AsyncCollector, AsyncTracer, LLMCall, MemoryStore, TraceSpan

from .llm_server import OPENAI_USAGE

if TYPE_CHECKING:
    import openai

    from .llm_server import LLMServer


def _agent(oai: openai.AsyncOpenAI, provider: TracerProvider, fail: bool = False) -> Agent[Any]:
    """A pydantic-ai agent with one tool whose model is the local server (which asks for the
    tool once, then answers), instrumented into ``provider``."""
    oai = oai.with_options(default_headers={"x-tool-calls": "1"})
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=oai))
    settings = InstrumentationSettings(tracer_provider=provider)
    agent: Agent[Any] = Agent(model, name="planner", capabilities=[Instrumentation(settings)])

    @agent.tool_plain
    def lookup(q: str) -> str:
        """Look something up."""
        if fail:
            raise ValueError("index offline")
        return f"found {q}"

    return agent


def _check_one_trace(calls: list[LLMCall], steps: list[TraceSpan]) -> None:
    """The agent run at the root; two priced model calls and the tool under it."""
    [agent] = [s for s in steps if s.kind == "agent"]
    [tool] = [s for s in steps if s.kind == "tool"]
    assert len(steps) == 2 and len(calls) == 2
    assert {r.trace_id for r in [*calls, *steps]} == {agent.trace_id}
    assert (agent.name, agent.agent_name, agent.parent_span_id) == ("planner", "planner", None)
    assert (tool.name, tool.tool_name, tool.parent_span_id) == ("lookup", "lookup", agent.span_id)
    assert tool.agent_name == "planner" and tool.status == "ok"
    for call in calls:
        assert (call.parent_span_id, call.agent_name) == (agent.span_id, "planner")
        assert (call.request_model, call.model, call.provider) == (
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "openai",
        )
        assert (call.input_tokens, call.output_tokens) == (
            OPENAI_USAGE["prompt_tokens"],
            OPENAI_USAGE["completion_tokens"],
        )
        assert call.cost_usd is not None and call.cost_usd > 0


async def _until(store: MemoryStore, calls: int, steps: int) -> None:
    for _ in range(200):
        if len(store) >= calls and len(store.spans_snapshot()) >= steps:
            return
        await asyncio.sleep(0.05)


async def test_pydantic_ai_spans_arrive_whole_through_the_collector(
    server: LLMServer, oai: openai.AsyncOpenAI
) -> None:
    """pydantic-ai → the OTel SDK's OTLP/gRPC exporter → the collector: one trace in the store,
    its tree the agent run over its calls and tool, its totals the calls'."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{collector.port}", insecure=True)
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=20))
        result = await _agent(oai, provider).run("find x")
        assert result.output == "Hello there"
        await asyncio.to_thread(provider.shutdown)  # exports what is left
        await _until(store, 2, 2)
        stats = collector.stats
    calls, steps = await store.query(), store.spans_snapshot()
    _check_one_trace(calls, steps)
    assert (stats.llm_calls, stats.steps, stats.received_spans) == (2, 2, 4)
    trace = await store.get_trace(calls[0].trace_id)
    assert trace is not None
    [root] = trace.tree()
    assert root.name == "planner"
    assert [n.name for n in root.children] == ["chat gpt-4o", "lookup", "chat gpt-4o"]
    assert trace.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in calls))


async def test_pydantic_ai_spans_recorded_in_process(
    server: LLMServer, oai: openai.AsyncOpenAI
) -> None:
    """pydantic-ai → tracer.span_processor(): the same trace with no network in between, in
    the tracer's sinks; a failing tool is an error step with its message; the tracer's own
    spans are not read back."""
    store = MemoryStore()
    async with AsyncTracer(store=store, in_memory=True) as tracer:
        provider = TracerProvider()
        provider.add_span_processor(tracer.span_processor())
        result = await _agent(oai, provider).run("find x")
        assert result.output == "Hello there"
        await tracer.flush()
        _check_one_trace(tracer.spans, tracer.steps)
        assert len(store) == 2 and len(store.spans_snapshot()) == 2
        tracer.clear_spans()
        failing = _agent(oai, provider, fail=True)
        with pytest.raises(Exception, match="index offline"):
            await failing.run("find y")
        await tracer.flush()
        [tool] = [s for s in store.spans_snapshot() if s.kind == "tool" and s.status == "error"]
        assert tool.error_message is not None and "index offline" in tool.error_message
