"""A dropped instrumented stream leaves what the same drop leaves without instrumentation (#23
fault 7): no error reported to the loop, the same connections in the client's pool, and one
record.

Dropping a stream without closing it used to leave a closed connection in the client's pool (the
response's close went through a weak reference the garbage collector had cleared), and could log
"Task exception was never retrieved". Each case runs once on a plain client and once on an
instrumented one, with the real SDKs against the local server.
"""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest

from asynctelemetry import AsyncTracer

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .llm_server import LLMServer

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
LONG: Any = {"x-chunks": "20"}


async def _openai_create(client: Any) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=LONG
    )
    async for _ in stream:
        break


async def _openai_helper(client: Any) -> None:
    manager = client.chat.completions.stream(model="gpt-4o", messages=MESSAGES, extra_headers=LONG)
    stream = await manager.__aenter__()  # entered, never left: the consumer just goes away
    await stream.__anext__()


async def _anthropic_create_in_a_cycle(client: Any) -> None:
    stream = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, stream=True, extra_headers=LONG
    )
    await stream.__anext__()
    holder: dict[str, Any] = {"stream": stream}
    holder["self"] = holder  # the consumer's own objects hold the stream in a cycle


async def _anthropic_helper(client: Any) -> None:
    manager = client.messages.stream(
        model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, extra_headers=LONG
    )
    stream = await manager.__aenter__()
    async for _ in stream.text_stream:
        break


CASES: dict[str, tuple[str, Any]] = {
    "openai create, break": ("openai", _openai_create),
    "openai .stream() helper": ("openai", _openai_helper),
    "anthropic create, in a cycle": ("anthropic", _anthropic_create_in_a_cycle),
    "anthropic .stream() helper, break": ("anthropic", _anthropic_helper),
}


async def _drop_once(
    server: LLMServer, sdk: str, drop: Callable[[Any], Coroutine[Any, Any, None]], traced: bool
) -> tuple[list[str], list[str], int]:
    """Drop one stream: (what the loop was told of, the pool's connection states, records)."""
    client: Any
    if sdk == "openai":
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="t", max_retries=0)
    else:
        client = anthropic.AsyncAnthropic(base_url=server.url, api_key="t", max_retries=0)
    loop = asyncio.get_running_loop()
    told: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: told.append(str(context.get("message"))))
    try:
        async with AsyncTracer(in_memory=True) as tracer:
            if traced:
                tracer.instrument(client)
            await drop(client)
            for _ in range(3):  # the loop finalizes the dropped generators, then they go
                gc.collect()
                await asyncio.sleep(0.05)
            pool = client._client._transport._pool
            states = sorted(repr(conn).split(", ")[2] for conn in pool.connections)
            records = len(tracer.spans)
    finally:
        loop.set_exception_handler(previous)
        await client.close()
    return told, states, records


@pytest.mark.parametrize("case", list(CASES))
async def test_a_dropped_stream_leaves_what_it_leaves_without_instrumentation(
    server: LLMServer, case: str
) -> None:
    sdk, drop = CASES[case]
    plain = await _drop_once(server, sdk, drop, traced=False)
    traced = await _drop_once(server, sdk, drop, traced=True)
    assert plain == ([], [], 0)  # the SDK alone closes the dropped response: nothing left
    assert traced == ([], [], 1)
