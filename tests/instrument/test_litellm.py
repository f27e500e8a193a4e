"""tracer.instrument(litellm): every acompletion/aembedding one record, whatever way it ends.

The real ``litellm`` routes to the local server in ``llm_server.py`` through its OpenAI and
Anthropic providers (``api_base``); its model cost map is the local copy
(``LITELLM_LOCAL_MODEL_COST_MAP``, set in tests/conftest.py): nothing goes to the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import litellm
import pytest

from asynctelemetry._call import provider_message

from .exits import assert_streamed, cancelled_mid_stream
from .llm_server import ANTHROPIC_MODEL, OPENAI_MODEL, LLMServer
from .test_openai import collect, only

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from asynctelemetry import AsyncTracer

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
async def routes(server: LLMServer) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """litellm's arguments for each route to the local server (litellm told to be quiet)."""
    litellm.suppress_debug_info = True
    yield {
        "openai": {
            "model": "openai/gpt-4o",
            "api_base": f"{server.url}/v1",
            "api_key": "test",
            "max_retries": 0,
        },
        "anthropic": {
            "model": "anthropic/claude-haiku-4-5",
            "api_base": server.url,
            "api_key": "test",
            "max_tokens": 100,
            "max_retries": 0,
        },
    }


@pytest.fixture
async def traced(tracer: AsyncTracer) -> AsyncIterator[AsyncTracer]:
    """The tracer, instrumenting litellm for the test only."""
    tracer.instrument(litellm)
    yield tracer
    tracer.uninstrument(litellm)
    assert "_asynctelemetry_tracer" not in vars(litellm)


async def test_openai_route(traced: AsyncTracer, routes: dict[str, dict[str, Any]]) -> None:
    """acompletion through the OpenAI provider: one record with the provider and model LiteLLM
    routed to, usage, our cost and LiteLLM's own cost beside it; LiteLLM's ModelResponse."""
    response = await litellm.acompletion(messages=MESSAGES, **routes["openai"])
    assert type(response) is litellm.ModelResponse
    record = only(traced)
    assert (record.provider, record.operation, record.status) == ("openai", "chat", "ok")
    assert (record.request_model, record.model) == ("openai/gpt-4o", OPENAI_MODEL)
    assert (record.input_tokens, record.output_tokens, record.cached_input_tokens) == (50, 12, 20)
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.attributes["litellm.response_cost"] == pytest.approx(record.cost_usd, rel=0.5)


async def test_anthropic_route(traced: AsyncTracer, routes: dict[str, dict[str, Any]]) -> None:
    """acompletion through the Anthropic provider: LiteLLM answers in OpenAI's shape; the
    record has Anthropic's usage with its cache reads and writes in the input."""
    await litellm.acompletion(messages=MESSAGES, **routes["anthropic"])
    record = only(traced)
    assert (record.provider, record.model) == ("anthropic", ANTHROPIC_MODEL)
    assert (record.input_tokens, record.output_tokens) == (245, 42)
    assert (record.cached_input_tokens, record.cache_creation_tokens) == (200, 15)
    assert record.cost_usd is not None and record.cost_usd > 0


@pytest.mark.parametrize("route", ["openai", "anthropic"])
async def test_stream_read_to_the_end(
    traced: AsyncTracer, routes: dict[str, dict[str, Any]], route: str
) -> None:
    """stream=True: LiteLLM's own CustomStreamWrapper (isinstance holds); TTFT; usage from the
    last chunk; one record at the end."""
    stream = await litellm.acompletion(
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-delay": "0.05"},
        **routes[route],
    )
    assert isinstance(stream, litellm.CustomStreamWrapper)
    text = "".join(
        [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    )
    assert "w0 w1 w2" in text
    record = only(traced)
    assert_streamed(record)
    assert record.provider == route
    assert record.input_tokens == (50 if route == "openai" else 245)
    assert "litellm.response_cost" not in record.attributes  # LiteLLM's is 0.0 until the end


async def test_break_then_drop(traced: AsyncTracer, routes: dict[str, dict[str, Any]]) -> None:
    """break, and the stream is dropped: one ok record when it is collected."""

    async def consume() -> None:
        stream = await litellm.acompletion(
            messages=MESSAGES, stream=True, extra_headers={"x-chunks": "50"}, **routes["openai"]
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break

    await consume()
    await collect(traced)
    record = only(traced)
    assert record.status == "ok" and record.ttft_ms is not None


async def test_aclose(traced: AsyncTracer, routes: dict[str, dict[str, Any]]) -> None:
    """aclose() records at once, exactly once."""
    stream = await litellm.acompletion(
        messages=MESSAGES, stream=True, extra_headers={"x-chunks": "50"}, **routes["openai"]
    )
    await anext(stream)
    await stream.aclose()
    await traced.flush()
    assert [record.status for record in traced.spans] == ["ok"]
    del stream
    await collect(traced)
    assert len(traced.spans) == 1


@pytest.mark.parametrize("route", ["openai", "anthropic"])
async def test_status_error(
    traced: AsyncTracer, routes: dict[str, dict[str, Any]], route: str
) -> None:
    """A 429: LiteLLM's RateLimitError propagates; error record with the provider, status and
    message."""
    with pytest.raises(litellm.RateLimitError) as caught:
        await litellm.acompletion(
            messages=MESSAGES, extra_headers={"x-status": "429"}, **routes[route]
        )
    record = only(traced)
    assert (record.status, record.status_code, record.error_type) == (
        "error",
        429,
        "RateLimitError",
    )
    assert record.provider == route
    assert record.error_message is not None  # the provider's message, else the exception's text
    expected = provider_message(caught.value) or str(caught.value)
    assert record.error_message[:40] == expected[:40]


async def test_error_mid_stream(traced: AsyncTracer, routes: dict[str, dict[str, Any]]) -> None:
    """An error event mid-stream: LiteLLM raises; one error record."""
    stream = await litellm.acompletion(
        messages=MESSAGES, stream=True, extra_headers={"x-fail-after": "1"}, **routes["anthropic"]
    )
    with pytest.raises(Exception) as caught:
        async for _ in stream:
            pass
    record = only(traced)
    assert (record.status, record.error_type) == ("error", type(caught.value).__name__)


async def test_cancelled_while_streaming(
    traced: AsyncTracer, routes: dict[str, dict[str, Any]]
) -> None:
    """Cancelling the consumer mid-stream records cancelled."""
    record = await cancelled_mid_stream(
        traced,
        lambda: litellm.acompletion(
            messages=MESSAGES, stream=True, extra_headers={"x-delay": "30"}, **routes["openai"]
        ),
    )
    assert record.status == "cancelled"


async def test_aembedding(traced: AsyncTracer, routes: dict[str, dict[str, Any]]) -> None:
    """aembedding: one embed record with the prompt tokens."""
    route = {**routes["openai"], "model": "openai/text-embedding-3-small"}
    result = await litellm.aembedding(input=["a"], **route)
    assert type(result) is litellm.EmbeddingResponse
    record = only(traced)
    assert (record.operation, record.provider, record.input_tokens) == ("embed", "openai", 8)


async def test_uninstrument_restores_litellm(
    tracer: AsyncTracer, routes: dict[str, dict[str, Any]]
) -> None:
    """uninstrument puts LiteLLM's own functions back; nothing more is recorded."""
    original = litellm.acompletion
    tracer.instrument(litellm)
    assert litellm.acompletion is not original
    assert litellm.acompletion.__wrapped__ is original  # type: ignore[attr-defined]
    tracer.uninstrument(litellm)
    assert litellm.acompletion is original
    await litellm.acompletion(messages=MESSAGES, **routes["openai"])
    assert tracer.spans == []
