"""tracer.instrument(google.genai.Client): every request one record, whatever way it ends.

The real ``google-genai`` SDK talks HTTP to the local server in ``llm_server.py`` (Gemini API
paths, and Vertex AI's with ``vertexai=True``).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from google import genai
from google.genai import errors, types

from asynctelemetry import AsyncTracer, ConfigError

from .exits import assert_streamed
from .llm_server import GEMINI_MODEL, LLMServer
from .test_openai import collect, only

if TYPE_CHECKING:
    from asynctelemetry import LLMCall

MODEL = "gemini-2.5-flash"


def knobs(**headers: str) -> Any:
    """A request config whose HTTP headers steer the fake server (see llm_server.py)."""
    return {
        "http_options": {"headers": {f"x-{k.replace('_', '-')}": v for k, v in headers.items()}}
    }


def assert_usage(record: LLMCall) -> None:
    """Prompt 60 + tool-use prompt 5 in (25 cached); candidates 14 + thoughts 6 out."""
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (65, 20, 85)
    assert (record.cached_input_tokens, record.reasoning_tokens) == (25, 6)
    assert record.cache_creation_tokens is None


async def test_generate_content(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """A plain request: one ok record with the model version, usage, tool calls and finish
    reasons; the SDK's own response type; no content without capture_content."""
    assert tracer.instrument(gemini) is gemini
    response = await gemini.aio.models.generate_content(
        model=MODEL, contents="Say hello", config=knobs(tool_calls="2")
    )
    assert type(response) is types.GenerateContentResponse
    assert response.text == "w0 w1 w2 " and len(response.function_calls or []) == 2
    record = only(tracer)
    assert (record.provider, record.operation, record.status) == ("google", "chat", "ok")
    assert (record.request_model, record.model, record.is_streaming) == (MODEL, GEMINI_MODEL, False)
    assert record.tool_calls == 2 and record.ttft_ms is None
    assert_usage(record)
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.attributes == {"gen_ai.response.finish_reasons": '["STOP"]'}


async def test_stream_read_to_the_end(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """A stream: the SDK's chunks as they come; TTFT at the first chunk with parts; usage from
    the last chunk's usage_metadata; one record when it is exhausted."""
    tracer.instrument(gemini)
    stream = await gemini.aio.models.generate_content_stream(
        model=MODEL, contents="Say hello", config=knobs(delay="0.05", tool_calls="1")
    )
    texts = [chunk.text async for chunk in stream]
    assert texts[:3] == ["w0 ", "w1 ", "w2 "]
    record = only(tracer)
    assert_streamed(record)
    assert record.model == GEMINI_MODEL and record.tool_calls == 1
    assert_usage(record)
    assert record.attributes["gen_ai.response.finish_reasons"] == '["STOP"]'


async def test_break_then_drop(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """break after the first chunk, and the stream is dropped: one ok record, with the counts
    reported so far."""
    tracer.instrument(gemini)

    async def consume() -> None:
        stream = await gemini.aio.models.generate_content_stream(
            model=MODEL, contents="Say hello", config=knobs(chunks="50")
        )
        async for _ in stream:
            break

    await consume()
    await collect(tracer)
    record = only(tracer)
    assert record.status == "ok" and record.ttft_ms is not None
    assert (record.input_tokens, record.output_tokens) == (60, None)


async def test_aclose(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """aclose() on the SDK's stream: one ok record, never a second."""
    tracer.instrument(gemini)
    stream = await gemini.aio.models.generate_content_stream(
        model=MODEL, contents="Say hello", config=knobs(chunks="50")
    )
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(3):  # the loop finalizes the SDK's inner generators, no gc needed
        await asyncio.sleep(0)
    await tracer.flush()
    assert [record.status for record in tracer.spans] == ["ok"]
    del stream  # collecting what is left records nothing more
    await collect(tracer)
    assert [record.status for record in tracer.spans] == ["ok"]


async def test_status_error(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """A 429: the SDK's ClientError propagates; error record with its status and message."""
    tracer.instrument(gemini)
    with pytest.raises(errors.ClientError) as caught:
        await gemini.aio.models.generate_content(
            model=MODEL, contents="Say hello", config=knobs(status="429")
        )
    assert caught.value.code == 429
    record = only(tracer)
    assert (record.status, record.status_code, record.error_type) == ("error", 429, "ClientError")
    assert record.error_message is not None
    assert "Resource has been exhausted" in record.error_message
    assert record.input_tokens is None


async def test_error_mid_stream(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """An error chunk after one chunk: the SDK raises ServerError; one error record, with the
    chunk already received counted."""
    tracer.instrument(gemini)
    stream = await gemini.aio.models.generate_content_stream(
        model=MODEL, contents="Say hello", config=knobs(fail_after="1")
    )
    with pytest.raises(errors.ServerError):
        async for _ in stream:
            pass
    record = only(tracer)
    assert (record.status, record.status_code, record.error_type) == ("error", 500, "ServerError")
    assert record.error_message is not None and "overloaded" in record.error_message
    assert record.input_tokens == 60 and record.ttft_ms is not None


async def test_cancelled_while_streaming(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """The consumer is cancelled while waiting for a chunk: one cancelled record."""
    tracer.instrument(gemini)
    started = asyncio.Event()

    async def consume() -> None:
        stream = await gemini.aio.models.generate_content_stream(
            model=MODEL, contents="Say hello", config=knobs(delay="30")
        )
        started.set()
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only(tracer).status == "cancelled"


async def test_cancelled_while_waiting_for_the_response(
    tracer: AsyncTracer, gemini: genai.Client
) -> None:
    """Cancelled before the response came: one cancelled record."""
    tracer.instrument(gemini)
    task = asyncio.create_task(
        gemini.aio.models.generate_content(model=MODEL, contents="hi", config=knobs(delay="30"))
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only(tracer).status == "cancelled"


async def test_embed_content(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """embed_content (batchEmbedContents on the Gemini API): one embed record; the API reports
    no token counts, so none are recorded."""
    tracer.instrument(gemini)
    result = await gemini.aio.models.embed_content(
        model="gemini-embedding-001", contents=["a", "b"]
    )
    assert type(result) is types.EmbedContentResponse and len(result.embeddings or []) == 2
    record = only(tracer)
    assert (record.operation, record.model, record.status) == (
        "embed",
        "gemini-embedding-001",
        "ok",
    )
    assert record.input_tokens is None and record.output_tokens is None


async def test_chats_send_message_and_stream(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """client.aio.chats goes through the same async models: one record per message."""
    tracer.instrument(gemini)
    chat = gemini.aio.chats.create(model=MODEL)
    reply = await chat.send_message("Say hello")
    assert reply.text == "w0 w1 w2 "
    text = "".join([chunk.text or "" async for chunk in await chat.send_message_stream("again")])
    assert text == "w0 w1 w2 "
    plain, streamed = tracer.spans
    assert (plain.operation, streamed.operation) == ("chat", "stream")
    assert_usage(plain)
    assert_usage(streamed)


async def test_each_automatic_function_calling_request_is_a_record(
    tracer: AsyncTracer, gemini: genai.Client
) -> None:
    """Automatic function calling sends a request per round: each is its own record, with its
    own usage (not one record holding only the last round's)."""
    tracer.instrument(gemini)

    def lookup(q: str) -> str:
        """Look something up."""
        return "found"

    config = {**knobs(tool_calls="1"), "tools": [lookup]}
    config["automatic_function_calling"] = {"maximum_remote_calls": 3}
    await gemini.aio.models.generate_content(model=MODEL, contents="Find x", config=config)
    assert len(tracer.spans) == 3
    for record in tracer.spans:
        assert record.tool_calls == 1
        assert_usage(record)


async def test_vertex_ai(tracer: AsyncTracer, server: LLMServer) -> None:
    """A Vertex AI client (express mode: an API key, Vertex's publisher paths): provider
    "vertex_ai", priced as Google's model."""
    options = types.HttpOptions(base_url=server.url, retry_options=None)
    client = genai.Client(vertexai=True, api_key="test", http_options=options)
    tracer.instrument(client)
    await client.aio.models.generate_content(model=MODEL, contents="Say hello")
    assert any("publishers/google/models" in path for path in server.requests)
    record = only(tracer)
    assert (record.provider, record.model) == ("vertex_ai", GEMINI_MODEL)
    assert_usage(record)
    assert record.cost_usd is not None and record.cost_usd > 0


async def test_content_captured_when_asked(server: LLMServer, gemini: genai.Client) -> None:
    """capture_content=True: the contents, the system instruction and the answer (plain and
    streamed, thought summaries left out)."""
    async with AsyncTracer(in_memory=True, capture_content=True) as tracer:
        tracer.instrument(gemini)
        config = {"system_instruction": "Be brief"}
        await gemini.aio.models.generate_content(model=MODEL, contents="Say hello", config=config)
        stream = await gemini.aio.models.generate_content_stream(model=MODEL, contents=["a", "b"])
        async for _ in stream:
            pass
        plain, streamed = tracer.spans
    assert plain.attributes["gen_ai.input.messages"] == "Say hello"
    assert plain.attributes["gen_ai.system_instructions"] == "Be brief"
    assert json.loads(streamed.attributes["gen_ai.input.messages"]) == ["a", "b"]
    for record in (plain, streamed):
        assert json.loads(record.attributes["gen_ai.output.messages"]) == [
            {"role": "assistant", "content": "w0 w1 w2 "}
        ]


async def test_context_and_uninstrument(tracer: AsyncTracer, gemini: genai.Client) -> None:
    """tracer.context values reach the record; after uninstrument nothing is recorded and the
    SDK's own methods are back; instrumenting the client's .aio is the same as the client."""
    tracer.instrument(gemini.aio)
    tracer.instrument(gemini)
    with tracer.context(session_id="s1", route_name="support"):
        await gemini.aio.models.generate_content(model=MODEL, contents="hi")
    record = only(tracer)
    assert (record.session_id, record.route_name) == ("s1", "support")
    tracer.uninstrument(gemini)
    tracer.uninstrument(gemini)
    assert "_generate_content" not in vars(gemini.aio.models)
    await gemini.aio.models.generate_content(model=MODEL, contents="hi")
    assert len(tracer.spans) == 1


async def test_a_second_tracer_is_refused(server: LLMServer, gemini: genai.Client) -> None:
    """One client, one tracer."""
    async with AsyncTracer() as first, AsyncTracer() as second:
        first.instrument(gemini)
        with pytest.raises(ConfigError, match="another tracer"):
            second.instrument(gemini)
        first.uninstrument(gemini)
        second.instrument(gemini)
        second.uninstrument(gemini)
