"""Captured content read as chat messages (roles, text, tool calls and results) in every shape
producers write it: the real SDKs' request bodies (through the tracer, against the local model
server), the OpenTelemetry GenAI parts, OpenLLMetry's and OpenInference's indexed keys."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from asynctelemetry import AsyncTracer
from asynctelemetry.ui._messages import messages
from tests.instrument.llm_server import LLMServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def said(found: list[dict[str, Any]]) -> list[tuple[str, str, list[tuple[Any, ...]]]]:
    """Each message as (source, role, [(kind, name/id…, text)]) for compact comparison."""
    out = []
    for m in found:
        parts = []
        for p in m["parts"]:
            if p["kind"] == "tool_call":
                parts.append(("call", p["name"], p["id"], p["text"]))
            elif p["kind"] == "tool_result":
                parts.append(("result", p["name"], p["id"], p["text"], p["error"]))
            else:
                parts.append((p["kind"], p["text"]))
        out.append((m["source"], m["role"], parts))
    return out


OPENAI_CHAT = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"},
                                 {"type": "image_url", "image_url": {"url": "data:xyz"}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "18C"},
]  # fmt: skip
ANTHROPIC = [
    {"role": "user", "content": "weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "use the tool"},
        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "18C"}],
         "is_error": True}]},
]  # fmt: skip
GEMINI = [
    {"role": "user", "parts": [{"text": "weather in Paris?"}]},
    {"role": "model", "parts": [{"function_call": {"name": "weather", "args": {"city": "Paris"}}}]},
    {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"t": 18}}}]},
]  # fmt: skip
GENAI_PARTS = [
    {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
    {"role": "assistant", "parts": [
        {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "18C"}]},
]  # fmt: skip
RESPONSES = [
    {"role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]},
    {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Paris"}'},
    {"type": "function_call_output", "call_id": "c1", "output": "18C"},
]  # fmt: skip
ASK = ("text", "weather in Paris?")
CALL_ARGS = '{"city":"Paris"}'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            {"gen_ai.input.messages": json.dumps(OPENAI_CHAT),
             "gen_ai.output.messages": '[{"role": "assistant", "content": "18C in Paris"}]'},
            [("input", "system", [("text", "be brief")]),
             ("input", "user", [ASK, ("other", "[image_url]")]),
             ("input", "assistant", [("call", "weather", "c1", CALL_ARGS)]),
             ("input", "tool", [("result", None, "c1", "18C", False)]),
             ("output", "assistant", [("text", "18C in Paris")])],
            id="openai-chat",
        ),
        pytest.param(
            {"gen_ai.input.messages": json.dumps(ANTHROPIC),
             "gen_ai.system_instructions": '[{"type": "text", "text": "be brief"}]'},
            [("system", "system", [("text", "be brief")]),
             ("input", "user", [ASK]),
             ("input", "assistant", [("reasoning", "use the tool"),
                                     ("call", "weather", "t1", CALL_ARGS)]),
             ("input", "user", [("result", None, "t1", "18C", True)])],
            id="anthropic",
        ),
        pytest.param(
            {"gen_ai.input.messages": json.dumps(GEMINI), "gen_ai.system_instructions": "brief"},
            [("system", "system", [("text", "brief")]),
             ("input", "user", [ASK]),
             ("input", "assistant", [("call", "weather", None, CALL_ARGS)]),
             ("input", "user", [("result", "weather", None, '{"t":18}', False)])],
            id="gemini",
        ),
        pytest.param(
            {"gen_ai.input.messages": json.dumps(GENAI_PARTS)},
            [("input", "user", [ASK]),
             ("input", "assistant", [("call", "weather", "c1", CALL_ARGS)]),
             ("input", "tool", [("result", None, "c1", "18C", False)])],
            id="otel-genai-parts",
        ),
        pytest.param(
            {"gen_ai.input.messages": json.dumps(RESPONSES)},
            [("input", "user", [ASK]),
             ("input", "assistant", [("call", "weather", "c1", CALL_ARGS)]),
             ("input", "tool", [("result", None, "c1", "18C", False)])],
            id="openai-responses",
        ),
        pytest.param(
            {"gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "weather in Paris?",
             "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "be brief",
             "gen_ai.completion.0.role": "assistant",
             "gen_ai.completion.0.tool_calls.0.name": "weather",
             "gen_ai.completion.0.tool_calls.0.id": "c1",
             "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}'},
            [("input", "system", [("text", "be brief")]),
             ("input", "user", [ASK]),
             ("output", "assistant", [("call", "weather", "c1", CALL_ARGS)])],
            id="openllmetry-indexed",
        ),
        pytest.param(
            {"llm.input_messages.0.message.role": "user",
             "llm.input_messages.0.message.content": "weather in Paris?",
             "llm.output_messages.0.message.role": "assistant",
             "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "weather",
             "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": CALL_ARGS,
             "input.value": '{"messages": [{"role": "user", "content": "weather in Paris?"}]}'},
            [("input", "user", [ASK]),
             ("input", "user", [ASK]),
             ("output", "assistant", [("call", "weather", None, CALL_ARGS)])],
            id="openinference",
        ),
        pytest.param(
            {"gen_ai.prompt": "hello", "gen_ai.completion": "hi there"},
            [("input", "user", [("text", "hello")]),
             ("output", "assistant", [("text", "hi there")])],
            id="plain-text",
        ),
        pytest.param(
            {"gen_ai.input.messages": '[{"role": "user", "content": "cut at the bo'},
            [("input", "user", [("text", '[{"role": "user", "content": "cut at the bo')])],
            id="cut-json-kept-as-text",
        ),
        pytest.param(
            {"gen_ai.input.messages": '[{"odd": 1}, 7]', "embedding.text": "not a message"},
            [("input", "user", [("text", '{"odd":1}')]), ("input", "user", [("text", "7")])],
            id="unknown-shapes-as-text",
        ),
    ],
)  # fmt: skip
def test_every_shape_reads_as_messages(content: dict[str, Any], expected: list[Any]) -> None:
    """Each producer's shape gives the same messages: roles (Gemini's model is the
    assistant), text, tool calls with their arguments, tool results with their call's id; an
    image is named, not dumped; what cannot be read is kept as text."""
    assert said(messages(content)) == expected


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    """The local model server (OpenAI, Anthropic and Gemini wire formats)."""
    llm = LLMServer()
    await llm.start()
    yield llm
    await llm.stop()


async def test_real_sdks_captured_content_reads_as_messages(server: LLMServer) -> None:
    """The tracer's capture of the real openai, anthropic and google-genai SDKs' requests
    (with a tool call and its result in the history) reads as the conversation that was sent,
    then the answer."""
    oai = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0)
    claude = anthropic.AsyncAnthropic(base_url=server.url, api_key="test", max_retries=0)
    options = genai_types.HttpOptions(base_url=server.url, retry_options=None)
    gemini = genai.Client(api_key="test", http_options=options)
    try:
        async with AsyncTracer(in_memory=True, capture_content=True) as tracer:
            for client in (oai, claude, gemini):
                tracer.instrument(client)
            await oai.chat.completions.create(model="gpt-4o", messages=OPENAI_CHAT)  # type: ignore[arg-type]
            await claude.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=50,
                messages=ANTHROPIC,
                system="be brief",  # type: ignore[arg-type]
            )
            contents = [genai_types.Content.model_validate(c) for c in GEMINI]
            await gemini.aio.models.generate_content(model="gemini-2.5-flash", contents=contents)  # type: ignore[arg-type]
            chat, message, generated = tracer.spans
    finally:
        await oai.close()
        await claude.close()
    for record in (chat, message, generated):
        found = said(messages(record.attributes))
        assert found[-1][:2] == ("output", "assistant") and found[-1][2][0][0] == "text"
        calls = [p for _, _, parts in found for p in parts if p[0] == "call"]
        results = [p for _, _, parts in found for p in parts if p[0] == "result"]
        assert [c[1] for c in calls] == ["weather"] and json.loads(calls[0][3]) == {"city": "Paris"}
        assert len(results) == 1 and "18" in results[0][3]
    assert said(messages(message.attributes))[0] == ("system", "system", [("text", "be brief")])
    assert [m[1] for m in said(messages(generated.attributes))][:3] == [
        "user",
        "assistant",
        "user",
    ]
