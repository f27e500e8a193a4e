"""tracer.instrument(mistralai.client.Mistral): every call one record, whatever way it ends.

The real ``mistralai`` SDK talks HTTP to the local server in ``llm_server.py`` (its Mistral
paths, under ``/mistral``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from mistralai.client import errors, models
from mistralai.client.utils.eventstreaming import EventStreamAsync

from asynctelemetry import AsyncTracer

from .exits import assert_streamed, cancelled_mid_stream
from .llm_server import MISTRAL_MODEL, LLMServer
from .test_openai import collect, only

if TYPE_CHECKING:
    from mistralai.client import Mistral

    from asynctelemetry import LLMCall

MODEL = "mistral-small-latest"
MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


def headers(**knobs: str) -> dict[str, str]:
    """Request headers that steer the fake server (see llm_server.py)."""
    return {f"x-{name.replace('_', '-')}": value for name, value in knobs.items()}


def assert_usage(record: LLMCall) -> None:
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (30, 9, 39)


async def test_complete(tracer: AsyncTracer, mistral: Mistral) -> None:
    """chat.complete_async: one ok record with model, usage and tool calls; the SDK's type."""
    assert tracer.instrument(mistral) is mistral
    response = await mistral.chat.complete_async(
        model=MODEL, messages=MESSAGES, http_headers=headers(tool_calls="2")
    )
    assert type(response) is models.ChatCompletionResponse
    record = only(tracer)
    assert (record.provider, record.operation, record.status) == ("mistral_ai", "chat", "ok")
    assert (record.request_model, record.model, record.is_streaming) == (
        MODEL,
        MISTRAL_MODEL,
        False,
    )
    assert record.tool_calls == 2 and record.cost_usd is not None and record.cost_usd > 0
    assert_usage(record)
    assert not record.attributes


async def test_stream_read_to_the_end(tracer: AsyncTracer, mistral: Mistral) -> None:
    """chat.stream_async: the SDK's EventStreamAsync; TTFT at the first content chunk (not the
    role-only opening); usage from the last chunk."""
    tracer.instrument(mistral)
    stream = await mistral.chat.stream_async(
        model=MODEL, messages=MESSAGES, http_headers=headers(delay="0.05", tool_calls="1")
    )
    assert type(stream) is EventStreamAsync
    texts = [event.data.choices[0].delta.content async for event in stream]
    assert texts[1:4] == ["w0 ", "w1 ", "w2 "]
    record = only(tracer)
    assert_streamed(record)
    assert record.model == MISTRAL_MODEL and record.tool_calls == 1
    assert_usage(record)


async def test_break_then_drop(tracer: AsyncTracer, mistral: Mistral) -> None:
    """break, and the stream is dropped: one ok record when it is collected."""
    tracer.instrument(mistral)

    async def consume() -> None:
        stream = await mistral.chat.stream_async(
            model=MODEL, messages=MESSAGES, http_headers=headers(chunks="50")
        )
        async for event in stream:
            if event.data.choices[0].delta.content:
                break

    await consume()
    await collect(tracer)
    record = only(tracer)
    assert record.status == "ok" and record.ttft_ms is not None and record.input_tokens is None


async def test_async_with_and_close(tracer: AsyncTracer, mistral: Mistral) -> None:
    """Leaving ``async with stream`` early (the SDK's close()) records at once, exactly once."""
    tracer.instrument(mistral)
    stream = await mistral.chat.stream_async(
        model=MODEL, messages=MESSAGES, http_headers=headers(chunks="50")
    )
    async with stream:
        await anext(stream)
    await tracer.flush()
    assert [record.status for record in tracer.spans] == ["ok"]
    del stream
    await collect(tracer)
    assert len(tracer.spans) == 1


async def test_status_error(tracer: AsyncTracer, mistral: Mistral) -> None:
    """A 429: the SDK's SDKError propagates; error record with status and message."""
    tracer.instrument(mistral)
    with pytest.raises(errors.SDKError) as caught:
        await mistral.chat.complete_async(
            model=MODEL, messages=MESSAGES, http_headers=headers(status="429")
        )
    record = only(tracer)
    assert (record.status, record.status_code, record.error_type) == ("error", 429, "SDKError")
    assert record.error_message is not None  # the exception's text
    assert record.error_message[:40] == str(caught.value)[:40]
    assert "Rate limit exceeded" in caught.value.message


async def test_connection_dropped_mid_stream(tracer: AsyncTracer, mistral: Mistral) -> None:
    """The server drops the connection after one chunk: the HTTP client's error propagates;
    one error record."""
    tracer.instrument(mistral)
    stream = await mistral.chat.stream_async(
        model=MODEL, messages=MESSAGES, http_headers=headers(fail_after="1")
    )
    with pytest.raises(Exception) as caught:
        async for _ in stream:
            pass
    record = only(tracer)
    assert (record.status, record.error_type) == ("error", type(caught.value).__name__)
    assert record.ttft_ms is not None


async def test_cancelled_while_streaming(tracer: AsyncTracer, mistral: Mistral) -> None:
    """Cancelling the consumer mid-stream records cancelled."""
    tracer.instrument(mistral)
    record = await cancelled_mid_stream(
        tracer,
        lambda: mistral.chat.stream_async(
            model=MODEL, messages=MESSAGES, http_headers=headers(delay="30")
        ),
    )
    assert record.status == "cancelled"


async def test_embeddings(tracer: AsyncTracer, mistral: Mistral) -> None:
    """embeddings.create_async: one embed record with the prompt tokens."""
    tracer.instrument(mistral)
    result = await mistral.embeddings.create_async(model="mistral-embed", inputs=["a"])
    assert type(result) is models.EmbeddingResponse
    record = only(tracer)
    assert (record.operation, record.model, record.input_tokens) == ("embed", "mistral-embed", 8)


async def test_content_context_and_uninstrument(server: LLMServer, mistral: Mistral) -> None:
    """capture_content=True keeps the messages and the answer (plain and streamed); context
    values reach the record; after uninstrument nothing is recorded."""
    async with AsyncTracer(in_memory=True, capture_content=True) as tracer:
        tracer.instrument(mistral)
        with tracer.context(session_id="s1"):
            await mistral.chat.complete_async(model=MODEL, messages=MESSAGES)
            stream = await mistral.chat.stream_async(model=MODEL, messages=MESSAGES)
            async for _ in stream:
                pass
        tracer.uninstrument(mistral)
        await mistral.chat.complete_async(model=MODEL, messages=MESSAGES)
        plain, streamed = tracer.spans
    assert "complete_async" not in vars(mistral.chat)
    assert plain.attributes["gen_ai.output.messages"] == json.dumps(
        [{"role": "assistant", "content": "Hello there"}]
    )
    assert json.loads(streamed.attributes["gen_ai.output.messages"])[0]["content"] == "w0 w1 w2 "
    for record in (plain, streamed):
        assert record.session_id == "s1"
        assert json.loads(record.attributes["gen_ai.input.messages"]) == MESSAGES
