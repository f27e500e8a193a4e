"""Checks shared by the tests of the clients instrumented by method hooks (google-genai,
mistralai, litellm): how a stream's record looks, and a consumer cancelled mid-stream."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from .test_openai import only

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable, Callable

    from asynctelemetry import AsyncTracer, LLMCall


def assert_streamed(record: LLMCall) -> None:
    """An ok stream record whose first token came after the server's first 50 ms delay and
    before the end."""
    assert (record.operation, record.is_streaming, record.status) == ("stream", True, "ok")
    assert record.ttft_ms is not None and record.duration_ms is not None
    assert 45 <= record.ttft_ms < record.duration_ms


async def cancelled_mid_stream(
    tracer: AsyncTracer, open_stream: Callable[[], Awaitable[AsyncIterable[Any]]]
) -> LLMCall:
    """Open a stream whose chunks come slowly, cancel its consumer after the first one; the
    cancellation propagates. Returns the tracer's one record."""
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in await open_stream():
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return only(tracer)
