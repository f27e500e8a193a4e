"""tracer.instrument(openai.AsyncOpenAI): every call one record, whatever way it ends.

The real ``openai`` SDK talks HTTP to the local server in ``llm_server.py``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from asynctelemetry import AsyncTracer, LLMCall

from .llm_server import OPENAI_MODEL, LLMServer

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
USAGE: Any = {"include_usage": True}


def only(tracer: AsyncTracer) -> LLMCall:
    """The one record the tracer holds (fails on zero or several)."""
    [record] = tracer.spans
    return record


async def collect(tracer: AsyncTracer) -> None:
    """Collect garbage as a running app would: the loop first closes the async generators a
    dropped ``async for`` left (a task each), then the stream objects go."""
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0.01)
    await tracer.flush()


async def test_chat_create_records_usage_model_and_tool_calls(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """A plain chat completion: one ok record with every token count the response reports."""
    assert tracer.instrument(oai) is oai
    completion = await oai.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-tool-calls": "2"}
    )
    assert type(completion) is openai.types.chat.ChatCompletion
    assert completion.choices[0].message.content == "Hello there"
    record = only(tracer)
    assert (record.provider, record.operation, record.status) == ("openai", "chat", "ok")
    assert (record.request_model, record.model) == ("gpt-4o", OPENAI_MODEL)
    assert record.is_streaming is False and record.tool_calls == 2
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (50, 12, 62)
    assert (record.cached_input_tokens, record.cache_creation_tokens) == (20, 5)
    assert record.reasoning_tokens == 4
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.ttft_ms is None and record.duration_ms is not None
    assert not record.attributes  # no content without capture_content


async def test_stream_read_to_the_end(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """stream=True: the SDK's own AsyncStream comes back; TTFT is the first content chunk, not
    the role-only opening frame; usage from the final usage chunk."""
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options=USAGE,
        extra_headers={"x-delay": "0.05", "x-tool-calls": "1"},
    )
    assert isinstance(stream, openai.AsyncStream)
    assert tracer.spans == []  # the call is open while the stream is
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    record = only(tracer)
    assert (record.operation, record.is_streaming, record.status) == ("stream", True, "ok")
    assert record.status_code == 200 and record.model == OPENAI_MODEL
    assert (record.input_tokens, record.output_tokens, record.cached_input_tokens) == (50, 12, 20)
    assert (record.cache_creation_tokens, record.reasoning_tokens) == (5, 4)
    assert record.tool_calls == 1
    # The opening frame came at once; the first content chunk after the 50 ms delay.
    assert record.ttft_ms is not None and record.duration_ms is not None
    assert 45 <= record.ttft_ms < record.duration_ms


async def test_stream_without_usage_chunk_still_names_the_model(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """Without include_usage no tokens are known, but the response model comes from the
    opening frame; the cost is unknown (unpriced), never $0."""
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    record = only(tracer)
    assert record.model == OPENAI_MODEL and record.input_tokens is None
    assert (record.cost_usd, record.price_version) == (None, None)


async def test_stream_usage_asks_the_stream_for_its_usage(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """instrument(client, stream_usage=True): a stream the caller did not ask for usage gets
    include_usage, so it is priced; the caller sees the extra final chunk (no choices, the
    usage); a caller's own include_usage=False is left as it is."""
    tracer.instrument(oai, stream_usage=True)
    stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    record = only(tracer)
    assert (record.input_tokens, record.output_tokens) == (50, 12)
    assert record.cost_usd is not None and record.cost_usd > 0
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert tracer.spans[-1].cost_usd is None
    plain = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert plain.usage is not None  # not a stream: nothing added


async def test_break_then_drop_records_once_when_collected(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """A consumer that breaks and drops the stream: one ok record, when the stream is collected,
    with what was received."""
    tracer.instrument(oai)

    async def consume() -> None:
        stream = await oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break

    await consume()
    await collect(tracer)
    record = only(tracer)
    assert record.status == "ok" and record.ttft_ms is not None
    assert record.input_tokens is None  # the usage chunk never arrived
    assert record.cost_usd is None  # unknown, not $0
    await collect(tracer)
    assert len(tracer.spans) == 1


async def test_close_records_at_once(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """close() mid-stream records the call right away (no garbage collection needed), once."""
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-chunks": "50"}
    )
    await stream.__anext__()
    await stream.close()
    assert only(tracer).status == "ok"
    await stream.close()
    del stream
    gc.collect()
    assert len(tracer.spans) == 1


async def test_async_with_exit_records(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """Leaving ``async with stream`` early closes the response and records the call."""
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-chunks": "50"}
    )
    async with stream:
        async for _ in stream:
            break
    record = only(tracer)
    assert record.status == "ok"


async def test_dropped_unread_stream_records_when_collected(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """A stream never iterated nor closed is recorded when it is garbage-collected."""
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    del stream
    await collect(tracer)
    record = only(tracer)
    assert record.status == "ok" and record.ttft_ms is None


async def test_tracer_close_records_open_streams(
    server: LLMServer, oai: openai.AsyncOpenAI
) -> None:
    """A stream still held when the tracer closes is recorded by the close, once."""
    tracer = AsyncTracer(in_memory=True)
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    await stream.__anext__()
    await tracer.aclose()
    assert [r.status for r in tracer.spans] == ["ok"]
    async for _ in stream:  # the consumer may go on reading; nothing more is recorded
        pass
    await stream.close()
    del stream
    gc.collect()
    assert len(tracer.spans) == 1


async def test_tracer_closed_calls_pass_through(server: LLMServer, oai: openai.AsyncOpenAI) -> None:
    """After the tracer closed, the client keeps working, untraced."""
    tracer = AsyncTracer(in_memory=True)
    tracer.instrument(oai)
    await tracer.aclose()
    completion = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello there"
    assert tracer.spans == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(400, openai.BadRequestError, id="400"),
        pytest.param(429, openai.RateLimitError, id="429"),
        pytest.param(503, openai.InternalServerError, id="503"),
    ],
)
async def test_status_errors_are_recorded_and_propagate(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI, status: int, error: type[Exception]
) -> None:
    """An error status: the SDK's exception reaches the caller unchanged; the record has
    status error, the exception's class name and the HTTP status."""
    tracer.instrument(oai)
    with pytest.raises(error):
        await oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"x-status": str(status)}
        )
    with pytest.raises(error):
        await oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-status": str(status)}
        )
    for record in tracer.spans:
        assert (record.status, record.error_type) == ("error", error.__name__)
        assert record.status_code == status
        # the provider's message from the body, not the SDK's repr of the whole body
        assert record.error_message == "requests: rate limited"
    assert [r.operation for r in tracer.spans] == ["chat", "stream"]


async def test_sdk_retries_are_counted(tracer: AsyncTracer, server: LLMServer) -> None:
    """The SDK retries a 503 on its own (max_retries=2): the one record of the call says how
    many retries it took (the SDK's retry-count header of its last request)."""
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=2)
    tracer.instrument(client)
    try:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, extra_headers={"x-status": "503"}
            )
    finally:
        await client.close()
    record = only(tracer)
    assert record.attributes.get("sdk.retries") == 2
    assert record.error_message == "requests: rate limited"


async def test_error_mid_stream(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """An error event after two chunks: APIError propagates; one error record, TTFT kept."""
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-fail-after": "2"}
    )
    got = 0
    with pytest.raises(openai.APIError):
        async for _ in stream:
            got += 1
    assert got == 3  # the opening frame and two content chunks
    record = only(tracer)
    assert (record.status, record.error_type) == ("error", "APIError")
    assert record.ttft_ms is not None


async def test_cancelled_while_streaming(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """Cancelling the consumer while it waits for a chunk records cancelled; it propagates."""
    tracer.instrument(oai)
    got_one = asyncio.Event()

    async def consume() -> None:
        stream = await oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-delay": "30"}
        )
        async for _ in stream:
            got_one.set()

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only(tracer).status == "cancelled"


async def test_cancelled_while_waiting_for_the_response(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI, server: LLMServer
) -> None:
    """Cancelled while the request is in flight: one cancelled record; it propagates."""
    tracer.instrument(oai)
    task = asyncio.create_task(
        oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"x-delay": "30"}
        )
    )
    while not server.requests:  # the server has the request: the call is waiting for it
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = only(tracer)
    assert (record.status, record.operation) == ("cancelled", "chat")


async def test_stream_helper_and_final_completion(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """chat.completions.stream(): events and get_final_completion() work; one record."""
    tracer.instrument(oai)
    async with oai.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options=USAGE
    ) as stream:
        kinds = {event.type async for event in stream}
        final = await stream.get_final_completion()
    assert "content.delta" in kinds
    assert final.choices[0].message.content == "w0 w1 w2 "
    record = only(tracer)
    assert record.input_tokens == 50 and record.ttft_ms is not None


async def test_stream_helper_left_early_records_at_exit(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """Leaving the stream() helper's block early records the call at the exit."""
    tracer.instrument(oai)
    async with oai.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-chunks": "50"}
    ) as stream:
        async for _ in stream:
            break
    assert only(tracer).status == "ok"


class Greeting(BaseModel):
    """A structured output for parse()."""

    text: str


async def test_parse_keeps_its_parsed_result(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI, server: LLMServer
) -> None:
    """chat.completions.parse(): the parsed completion is returned untouched; one record."""
    tracer.instrument(oai)
    completion = await oai.chat.completions.parse(
        model="gpt-4o", messages=MESSAGES, response_format=Greeting
    )
    assert type(completion).__name__.startswith("ParsedChatCompletion")
    assert completion.choices[0].message.parsed == Greeting(text="Hello there")
    assert only(tracer).input_tokens == 50


async def test_responses_plain_and_streamed(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """responses.create plain and stream=True, and responses.stream(): one record each, with
    the Responses API's usage (cached and reasoning tokens)."""
    tracer.instrument(oai)
    response = await oai.responses.create(model="gpt-4o", input="hi")
    assert response.output_text == "w0 w1 w2 "
    stream = await oai.responses.create(
        model="gpt-4o", input="hi", stream=True, extra_headers={"x-delay": "0.03"}
    )
    assert isinstance(stream, openai.AsyncStream)
    async for _ in stream:
        pass
    async with oai.responses.stream(model="gpt-4o", input="hi") as helper:
        final = await helper.get_final_response()
    assert final.output_text == "w0 w1 w2 "
    plain, streamed, helped = tracer.spans
    for record in tracer.spans:
        assert (record.input_tokens, record.output_tokens) == (40, 9)
        assert (record.cached_input_tokens, record.reasoning_tokens) == (10, 3)
        assert record.model == OPENAI_MODEL and record.status == "ok"
    assert plain.operation == "chat" and streamed.operation == helped.operation == "stream"
    assert streamed.ttft_ms is not None and streamed.ttft_ms >= 25  # first output_text.delta


async def test_embeddings(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """embeddings.create: an embed record with the input tokens."""
    tracer.instrument(oai)
    result = await oai.embeddings.create(model="text-embedding-3-small", input="hello")
    assert result.data[0].embedding == [0.25, -0.5, 1.0]
    record = only(tracer)
    assert (record.operation, record.input_tokens, record.total_tokens) == ("embed", 8, 8)
    assert record.model == "text-embedding-3-small"


async def test_with_raw_response_is_recorded_and_still_parses(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """with_raw_response: the raw response comes back as the SDK gives it; the call is
    recorded with its HTTP status."""
    tracer.instrument(oai)
    raw = await oai.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello there"
    record = only(tracer)
    assert (record.status, record.status_code) == ("ok", 200)


async def test_other_routes_pass_through(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """Calls that are not LLM calls (here a 404 from models.list) are not recorded."""
    tracer.instrument(oai)
    with pytest.raises(openai.NotFoundError):
        await oai.models.retrieve("gpt-4o")
    assert tracer.spans == []


async def test_azure_client(tracer: AsyncTracer, server: LLMServer) -> None:
    """AsyncAzureOpenAI is traced too, with provider "azure" and the deployment as model."""
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=server.url, api_version="2024-10-21", api_key="test", max_retries=0
    )
    tracer.instrument(client)
    await client.chat.completions.create(model="my-gpt4o", messages=MESSAGES)
    await client.close()
    record = only(tracer)
    assert (record.provider, record.request_model) == ("azure", "my-gpt4o")
    assert record.model == OPENAI_MODEL


async def test_copies_made_with_options_are_traced(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """client.with_options(...) returns a copy that is traced by the same tracer."""
    tracer.instrument(oai)
    await oai.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(tracer.spans) == 1
