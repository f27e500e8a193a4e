"""wrap_stream: first token, usage chunks, and exactly one record on every way out of a stream."""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import MemoryStore
from asynctelemetry._tracer import AsyncTracer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def openai_chunks(n: int = 5) -> list[dict[str, Any]]:
    """An OpenAI chat stream with include_usage: content deltas, then a usage-only chunk."""
    chunks: list[dict[str, Any]] = [
        {"model": "gpt-4o-2024-08-06", "choices": [{"delta": {"content": f"w{i} "}}]}
        for i in range(n)
    ]
    chunks.append(
        {
            "model": "gpt-4o-2024-08-06",
            "choices": [],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": n,
                "total_tokens": 50 + n,
                "prompt_tokens_details": {"cached_tokens": 20},
            },
        }
    )
    return chunks


def anthropic_events() -> list[dict[str, Any]]:
    """An Anthropic Messages stream: usage arrives in message_start and message_delta."""
    return [
        {
            "type": "message_start",
            "message": {
                "model": "claude-sonnet-4-5-20250929",
                "usage": {"input_tokens": 30, "cache_read_input_tokens": 200, "output_tokens": 1},
            },
        },
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": " there"}},
        {"type": "message_delta", "usage": {"output_tokens": 42}},
        {"type": "message_stop"},
    ]


async def source(
    chunks: list[Any], *, delay: float = 0.0, fail_at: int | None = None
) -> AsyncIterator[Any]:
    for i, chunk in enumerate(chunks):
        if fail_at == i:
            raise ConnectionResetError("stream reset")
        await asyncio.sleep(delay)
        yield chunk


async def test_exhausted_openai_stream_records_ok_with_final_usage() -> None:
    """Consumed to the end: ok, TTFT from the first chunk, usage from the usage chunk."""
    async with AsyncTracer(in_memory=True) as tracer:
        stream = tracer.wrap_stream(
            source(openai_chunks(), delay=0.005), model="gpt-4o", provider="openai"
        )
        got = [chunk async for chunk in stream]
        [record] = tracer.spans
    assert len(got) == 6
    assert record.status == "ok" and record.operation == "stream" and record.is_streaming
    assert (record.input_tokens, record.output_tokens, record.cached_input_tokens) == (50, 5, 20)
    assert record.model == "gpt-4o-2024-08-06"
    assert record.ttft_ms is not None and record.duration_ms is not None
    assert 4 <= record.ttft_ms < record.duration_ms
    assert record.cost_usd is not None and record.cost_usd > 0


async def test_anthropic_stream_merges_partial_usage() -> None:
    """Anthropic's message_start and message_delta usages merge, cache reads counted as input."""
    async with AsyncTracer(in_memory=True) as tracer:
        stream = tracer.wrap_stream(
            source(anthropic_events()), model="claude-sonnet-4-5", provider="anthropic"
        )
        async for _ in stream:
            pass
        [record] = tracer.spans
    assert record.input_tokens == 230 and record.cached_input_tokens == 200
    assert record.output_tokens == 42 and record.status == "ok"


async def test_break_after_some_chunks_records_ok_with_what_was_received() -> None:
    """A consumer that breaks early gets an ok record, exactly once, with the chunks seen."""
    async with AsyncTracer(in_memory=True) as tracer:
        async for _ in tracer.wrap_stream(source(anthropic_events()), model="claude-sonnet-4-5"):
            break
        gc.collect()
        await asyncio.sleep(0)
        [record] = tracer.spans
    assert record.status == "ok" and record.input_tokens == 230
    assert record.output_tokens == 1  # only message_start was received


async def test_aclose_records_once_and_closes_the_source() -> None:
    """aclose() ends the call (ok) and closes the source generator; a second aclose does nothing."""
    closed = asyncio.Event()

    async def gen() -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
        finally:
            closed.set()

    async with AsyncTracer(in_memory=True) as tracer:
        stream = tracer.wrap_stream(gen(), model="gpt-4o")
        assert await stream.__anext__() == 0
        await stream.aclose()
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        assert closed.is_set()
        assert [r.status for r in tracer.spans] == ["ok"]


async def test_a_failing_stream_records_an_error_and_the_error_propagates() -> None:
    """The source raising mid-stream gives one error record with its class name."""
    async with AsyncTracer(in_memory=True) as tracer:
        with pytest.raises(ConnectionResetError):
            async for _ in tracer.wrap_stream(source(openai_chunks(), fail_at=3), model="gpt-4o"):
                pass
        [record] = tracer.spans
    assert record.status == "error" and record.error_type == "ConnectionResetError"
    assert record.ttft_ms is not None  # chunks arrived before the failure


async def test_cancelling_the_consumer_records_cancelled() -> None:
    """Cancelling the consuming task while it waits for a chunk records cancelled."""
    async with AsyncTracer(in_memory=True) as tracer:

        async def consume() -> None:
            async for _ in tracer.wrap_stream(source(openai_chunks(), delay=10), model="gpt-4o"):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [record] = tracer.spans
    assert record.status == "cancelled"


async def test_inside_llm_call_the_block_records_and_the_wrapper_only_observes() -> None:
    """With a handle already entered, the async with block records the call, once."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o", provider="openai", operation="stream") as call:
            async for _ in tracer.wrap_stream(source(openai_chunks(3)), call):
                pass
            call.set(tool_calls=1)
        [record] = tracer.spans
    assert record.output_tokens == 3 and record.tool_calls == 1 and record.status == "ok"


async def test_tool_calls_add_up_over_a_stream() -> None:
    """Each chunk that starts a tool call counts once; the record has the stream's total."""
    chunks: list[dict[str, Any]] = [
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}}
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}}
            ]
        },
    ]
    async with AsyncTracer(in_memory=True) as tracer:
        async for _ in tracer.wrap_stream(source(chunks), model="gpt-4o"):
            pass
        [record] = tracer.spans
    assert record.tool_calls == 2


async def test_sampling_thins_exported_spans_but_not_store_or_metrics() -> None:
    """A sampler drops spans from export only; the store and other sinks see every call."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    exported: list[Any] = []

    class Exporter:
        async def emit(self, calls: Any) -> None:
            exported.extend(calls)

        async def flush(self) -> None:
            pass

        async def aclose(self) -> None:
            pass

    store = MemoryStore(capacity=1000)
    spans = InMemorySpanExporter()
    sampler = TraceIdRatioBased(0.25)
    async with AsyncTracer(store=store, sinks=[Exporter()], sampler=sampler) as tracer:
        for _ in range(400):
            async with tracer.llm_call(model="gpt-4o"):
                pass
    async with AsyncTracer(store=store, custom_exporter=spans, sampler=sampler) as sdk_tracer:
        for _ in range(400):
            async with sdk_tracer.llm_call(model="gpt-4o-mini"):
                pass
    assert await store.count(model="gpt-4o") == 400
    assert await store.count(model="gpt-4o-mini") == 400
    assert 40 < len(exported) < 160
    assert 40 < len(spans.get_finished_spans()) < 160
    kept = {c.trace_id for c in exported}
    assert all(
        sampler.should_sample(None, int(t or "0", 16), "x").decision.is_sampled() for t in kept
    )
