"""tracer.instrument_agents(): a real openai-agents run against the local model server is one
trace of steps (workflow, agent, tool) and priced LLM calls, with the right parents."""

from __future__ import annotations

from typing import TYPE_CHECKING

import agents
import pytest
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool

from asynctelemetry import AsyncTracer, MemoryStore, StoreClosedError

from .llm_server import OPENAI_USAGE

if TYPE_CHECKING:
    import openai

    from .llm_server import LLMServer


def _agent(client: openai.AsyncOpenAI, fail: bool = False) -> Agent:
    @function_tool
    def lookup(q: str) -> str:
        """Look something up."""
        if fail:
            raise LookupError("index offline")
        return f"found {q}"

    return Agent(
        name="planner",
        instructions="Answer with the lookup tool.",
        tools=[lookup],
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
        model_settings=ModelSettings(extra_headers={"x-tool-calls": "1"}),
    )


async def test_an_agents_run_is_one_trace_of_steps_and_priced_calls(
    server: LLMServer, oai: openai.AsyncOpenAI
) -> None:
    """Workflow root → agent → (model call, tool, model call): every step with its parent, the
    calls with the usage the SDK reported, priced, named by their agent; a store gets the
    trace whole."""
    store = MemoryStore()
    async with AsyncTracer(store=store, in_memory=True) as tracer:
        tracer.instrument_agents(exclusive=True)
        result = await Runner.run(_agent(oai), "find x")
        assert result.final_output == "Hello there"
        await tracer.flush()
        steps = {s.kind: s for s in tracer.steps}
        calls = tracer.spans
    assert set(steps) == {"workflow", "agent", "tool", "internal"}
    root, agent, tool = steps["workflow"], steps["agent"], steps["tool"]
    turns = [s for s in tracer.steps if s.kind == "internal"]
    assert (root.name, root.parent_span_id) == ("Agent workflow", None)
    assert (agent.name, agent.agent_name, agent.parent_span_id) == (
        "planner",
        "planner",
        root.span_id,
    )
    assert sorted(t.name for t in turns) == ["turn 1", "turn 2"]
    assert {t.parent_span_id for t in turns} == {agent.span_id}
    assert (tool.name, tool.tool_name, tool.agent_name) == ("lookup", "lookup", "planner")
    assert tool.parent_span_id in {t.span_id for t in turns} and tool.status == "ok"
    assert len(calls) == 2 and {c.parent_span_id for c in calls} == {t.span_id for t in turns}
    for call in calls:
        assert (call.model, call.provider, call.agent_name) == ("gpt-4o", "openai", "planner")
        assert call.input_tokens == OPENAI_USAGE["prompt_tokens"]
        assert call.output_tokens == OPENAI_USAGE["completion_tokens"]
        assert (call.cached_input_tokens, call.reasoning_tokens) == (20, 4)
        assert call.cost_usd is not None and call.trace_id == root.trace_id
    assert {len(s.span_id) for s in tracer.steps} == {16} and len(root.trace_id) == 32
    trace = await store.get_trace(root.trace_id)
    assert trace is not None and trace.llm_calls == 2 and len(trace.spans) == 5
    [top] = trace.tree()
    assert top.record == root and [n.name for n in top.children] == ["planner"]
    first, second = top.children[0].children
    assert [n.name for n in first.children] == ["chat gpt-4o", "lookup"]
    assert [n.name for n in second.children] == ["chat gpt-4o"]


async def test_a_failing_tool_is_an_error_step(server: LLMServer, oai: openai.AsyncOpenAI) -> None:
    """A tool that raises: its step is "error" with the SDK's message; the run goes on."""
    async with AsyncTracer(in_memory=True) as tracer:
        tracer.instrument_agents(exclusive=True)
        tracer.instrument_agents(exclusive=True)  # again: still one processor
        await Runner.run(_agent(oai, fail=True), "find x")
        await tracer.flush()
        [tool] = [s for s in tracer.steps if s.kind == "tool"]
    assert tool.status == "error" and tool.error_message
    assert len(agents.tracing.get_trace_provider()._multi_processor._processors) == 1  # type: ignore[attr-defined]


async def test_after_close_nothing_is_recorded(server: LLMServer, oai: openai.AsyncOpenAI) -> None:
    tracer = AsyncTracer(in_memory=True)
    tracer.instrument_agents(exclusive=True)
    await tracer.aclose()
    await Runner.run(_agent(oai), "find x")
    assert tracer.steps == [] and tracer.spans == []
    with pytest.raises(StoreClosedError):
        tracer.instrument_agents()
