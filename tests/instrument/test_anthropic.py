"""tracer.instrument(anthropic.AsyncAnthropic): every call one record, whatever way it ends.

The real ``anthropic`` SDK talks HTTP to the local server in ``llm_server.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anthropic
import pytest

from .exits import cancelled_mid_stream
from .llm_server import ANTHROPIC_MODEL
from .test_openai import collect, only

if TYPE_CHECKING:
    from asynctelemetry import AsyncTracer

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
ARGS: Any = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES}


def assert_usage(record: Any) -> None:
    """Anthropic's cache reads (200) and writes (15) are added into input_tokens (30 + both)."""
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (245, 42, 287)
    assert (record.cached_input_tokens, record.cache_creation_tokens) == (200, 15)


async def test_messages_create(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """A plain message: one ok record with the response model, usage and tool calls."""
    tracer.instrument(claude)
    message = await claude.messages.create(**ARGS, extra_headers={"x-tool-calls": "2"})
    assert type(message) is anthropic.types.Message
    assert message.content[0].type == "text"
    record = only(tracer)
    assert (record.provider, record.operation, record.is_streaming) == ("anthropic", "chat", False)
    assert (record.request_model, record.model) == ("claude-haiku-4-5", ANTHROPIC_MODEL)
    assert record.tool_calls == 2 and record.cost_usd is not None
    assert_usage(record)


async def test_messages_stream_true(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """stream=True: the SDK's AsyncStream; TTFT at the first text delta (not message_start,
    ping or the empty text block); usage merged from message_start and message_delta."""
    tracer.instrument(claude)
    stream = await claude.messages.create(
        **ARGS, stream=True, extra_headers={"x-delay": "0.05", "x-tool-calls": "1"}
    )
    assert isinstance(stream, anthropic.AsyncStream)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start"
    record = only(tracer)
    assert (record.operation, record.status, record.status_code) == ("stream", "ok", 200)
    assert record.model == ANTHROPIC_MODEL and record.tool_calls == 1
    assert_usage(record)
    assert record.ttft_ms is not None and record.duration_ms is not None
    assert 45 <= record.ttft_ms < record.duration_ms


async def test_messages_stream_helper(
    tracer: AsyncTracer, claude: anthropic.AsyncAnthropic
) -> None:
    """messages.stream(): text_stream and get_final_message() work; one record."""
    tracer.instrument(claude)
    async with claude.messages.stream(**ARGS) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "w0 w1 w2 "
    assert final.usage.output_tokens == 42
    record = only(tracer)
    assert record.status == "ok" and record.ttft_ms is not None
    assert_usage(record)


async def test_stream_helper_left_early(
    tracer: AsyncTracer, claude: anthropic.AsyncAnthropic
) -> None:
    """Leaving messages.stream()'s block after one event records the call at the exit, with
    the input side of usage (message_start) only."""
    tracer.instrument(claude)
    async with claude.messages.stream(**ARGS, extra_headers={"x-chunks": "50"}) as stream:
        async for _ in stream:
            break
    record = only(tracer)
    assert record.status == "ok" and record.input_tokens == 245
    assert record.output_tokens == 1  # message_start's count; message_delta never came


async def test_break_and_drop(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """break, then the stream is dropped: one ok record once it is collected."""
    tracer.instrument(claude)

    async def consume() -> None:
        stream = await claude.messages.create(**ARGS, stream=True)
        async for event in stream:
            if event.type == "content_block_delta":
                break

    await consume()
    await collect(tracer)
    record = only(tracer)
    assert record.status == "ok" and record.ttft_ms is not None


async def test_close(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """close() records at once, exactly once."""
    tracer.instrument(claude)
    stream = await claude.messages.create(**ARGS, stream=True, extra_headers={"x-chunks": "50"})
    await stream.__anext__()
    await stream.close()
    assert only(tracer).status == "ok"
    del stream
    await collect(tracer)
    assert len(tracer.spans) == 1


async def test_status_error(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """A 529: the SDK's exception propagates; error record with its class name and status."""
    tracer.instrument(claude)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await claude.messages.create(**ARGS, extra_headers={"x-status": "529"})
    record = only(tracer)
    assert (record.status, record.status_code) == ("error", 529)
    assert record.error_type == type(caught.value).__name__
    assert record.error_message is not None and "{" not in record.error_message


async def test_error_event_mid_stream(
    tracer: AsyncTracer, claude: anthropic.AsyncAnthropic
) -> None:
    """An error event mid-stream raises the SDK's error; one error record."""
    tracer.instrument(claude)
    stream = await claude.messages.create(**ARGS, stream=True, extra_headers={"x-fail-after": "1"})
    with pytest.raises(anthropic.APIStatusError) as caught:
        async for _ in stream:
            pass
    record = only(tracer)
    assert (record.status, record.error_type) == ("error", type(caught.value).__name__)
    assert record.input_tokens == 245  # message_start arrived before the error


async def test_cancelled(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """Cancelling the consumer mid-stream records cancelled."""
    tracer.instrument(claude)
    record = await cancelled_mid_stream(
        tracer,
        lambda: claude.messages.create(**ARGS, stream=True, extra_headers={"x-delay": "30"}),
    )
    assert record.status == "cancelled"


async def test_beta_messages(tracer: AsyncTracer, claude: anthropic.AsyncAnthropic) -> None:
    """client.beta.messages.create is the same route (with beta=true): traced too."""
    tracer.instrument(claude)
    message = await claude.beta.messages.create(**ARGS)
    assert message.usage.output_tokens == 42
    assert_usage(only(tracer))
