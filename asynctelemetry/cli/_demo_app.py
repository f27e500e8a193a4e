"""The demo's simulated application: a chat service calling several LLMs through AsyncTracer.

The "LLMs" are fakes built on ``asyncio.sleep``: each model has a typical time to first token and
a typical generation speed, and answers stream in chunks. Prompt and answer lengths are drawn from
log-normal distributions (the shape real traffic has: most answers short, a few long). A few calls
fail (rate limits before the first token, timeouts mid-stream), a few are abandoned by their user
(cancelled), a few are answered from the app's response cache. Everything is seeded, so a run is
reproducible; ``speed`` divides every delay (the recorded latencies shrink with it).
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from .._tracer import AsyncTracer

__all__ = ["MODELS", "ModelProfile", "RateLimitError", "UpstreamTimeoutError", "simulate"]


class RateLimitError(Exception):
    """The fake provider's 429."""


class UpstreamTimeoutError(Exception):
    """The fake provider stopped sending mid-stream."""


@dataclass(frozen=True)
class ModelProfile:
    """How one fake model behaves."""

    provider: str
    model: str
    response_model: str
    ttft_ms: float  # median time to first token
    tokens_per_sec: float  # median generation speed after the first token
    weight: float  # share of the traffic
    reasoning: bool = False
    embed: bool = False


MODELS: Final[tuple[ModelProfile, ...]] = (
    ModelProfile("openai", "gpt-4o", "gpt-4o-2024-08-06", 420, 90, 3),
    ModelProfile("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 280, 130, 4),
    ModelProfile("openai", "o4-mini", "o4-mini-2025-04-16", 1600, 150, 1, reasoning=True),
    ModelProfile("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 650, 75, 3),
    ModelProfile("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 330, 160, 2),
    ModelProfile("google", "gemini-2.5-flash", "gemini-2.5-flash", 380, 210, 3),
    ModelProfile("google", "gemini-2.5-pro", "gemini-2.5-pro", 1400, 95, 1),
    ModelProfile("openai", "text-embedding-3-small", "text-embedding-3-small", 0, 0, 2, embed=True),
)
ROUTES: Final = ("support-chat", "summarize", "rag-answer")
CHUNK_TOKENS: Final = 12


def _lognormal(rng: random.Random, median: float, sigma: float, low: float, high: float) -> float:
    return min(high, max(low, rng.lognormvariate(math.log(median), sigma)))


async def _fake_stream(
    profile: ModelProfile, tokens: int, rng: random.Random, speed: float, fail: str | None
) -> AsyncIterator[int]:
    """Yield chunk sizes (tokens) the way a streaming API would deliver them."""
    await asyncio.sleep(_lognormal(rng, profile.ttft_ms, 0.45, 60, 8000) / 1000 / speed)
    if fail == "rate_limit":
        raise RateLimitError("429 Too Many Requests: rate limit reached for requests")
    per_token = 1.0 / _lognormal(rng, profile.tokens_per_sec, 0.25, 10, 600)
    sent = 0
    while sent < tokens:
        chunk = min(CHUNK_TOKENS, tokens - sent)
        if sent:
            await asyncio.sleep(chunk * per_token / speed)
        if fail == "timeout" and sent > tokens // 2:
            raise UpstreamTimeoutError("no data from upstream for 30 s")
        sent += chunk
        yield chunk


async def _chat_call(
    tracer: AsyncTracer,
    profile: ModelProfile,
    rng: random.Random,
    speed: float,
    session: str,
    route: str,
    turn: int,
) -> None:
    prompt = int(_lognormal(rng, 900 + 350 * turn, 0.5, 40, 60_000))
    answer = int(_lognormal(rng, 170, 0.7, 4, 700))
    roll = rng.random()
    fail = "rate_limit" if roll < 0.04 else "timeout" if roll < 0.06 else None
    cached = int(prompt * rng.uniform(0.5, 0.85)) if turn > 0 and rng.random() < 0.7 else 0
    async with tracer.llm_call(
        model=profile.model,
        provider=profile.provider,
        operation="stream",
        session_id=session,
        route_name=route,
    ) as call:
        if 0.06 <= roll < 0.12:  # served from the app's response cache: no tokens, no wait
            await asyncio.sleep(rng.uniform(0.002, 0.008) / speed)
            call.set(cache_hit="exact", response_model=profile.response_model)
            return
        call.set(cache_hit="miss")
        if fail == "rate_limit":
            call.set(status_code=429)
        async for _chunk in _fake_stream(profile, answer, rng, speed, fail):
            call.first_token()
        reasoning = int(answer * rng.uniform(1.5, 4)) if profile.reasoning else 0
        creation = prompt - cached if profile.provider == "anthropic" and turn == 0 else 0
        call.set_usage(
            input_tokens=prompt,
            output_tokens=answer + reasoning,
            cached_input_tokens=cached or None,
            cache_creation_tokens=creation or None,
            reasoning_tokens=reasoning or None,
        )
        call.set(
            response_model=profile.response_model,
            tool_calls=rng.choice((1, 2)) if rng.random() < 0.12 else 0,
            status_code=200,
        )


async def _embed_call(
    tracer: AsyncTracer, profile: ModelProfile, rng: random.Random, speed: float, route: str
) -> None:
    async with tracer.llm_call(
        model=profile.model, provider=profile.provider, operation="embed", route_name=route
    ) as call:
        await asyncio.sleep(_lognormal(rng, 110, 0.4, 20, 2000) / 1000 / speed)
        call.set_usage(input_tokens=int(_lognormal(rng, 350, 0.6, 5, 8000)), output_tokens=0)
        call.set(response_model=profile.response_model, status_code=200)


async def _one(
    tracer: AsyncTracer, rng: random.Random, speed: float, session: str, turn: int
) -> None:
    """One request of a user: maybe an embedding first (RAG), then a streamed chat call."""
    chat_models = [m for m in MODELS if not m.embed]
    profile = rng.choices(chat_models, weights=[m.weight for m in chat_models])[0]
    route = ROUTES[0] if turn else rng.choice(ROUTES)
    if route == "rag-answer":
        embedder = next(m for m in MODELS if m.embed)
        await _embed_call(tracer, embedder, rng, speed, route)
    abandon = rng.random() < 0.04  # the user closes the tab mid-answer
    request = _chat_call(tracer, profile, rng, speed, session, route, turn)
    try:
        if abandon:
            await asyncio.wait_for(request, timeout=rng.uniform(0.3, 1.2) / speed)
        else:
            await request
    except (RateLimitError, UpstreamTimeoutError, TimeoutError):
        pass  # the app shows the user an error; the tracer has recorded the call


async def simulate(
    tracer: AsyncTracer,
    *,
    calls: int,
    concurrency: int = 24,
    speed: float = 1.0,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run about ``calls`` LLM calls from ``concurrency`` concurrent users; return requests made.

    Each user is a session of several turns; an embedding call precedes some chat calls, so the
    number of records is a little above the number of requests.
    """
    rng = random.Random(seed)
    budget = calls
    made = 0

    async def user(index: int) -> None:
        nonlocal budget, made
        session = f"user-{index:02d}"
        user_rng = random.Random(rng.random())
        turn = 0
        while budget > 0:
            budget -= 1
            await _one(tracer, user_rng, speed, session, turn)
            made += 1
            if progress is not None:
                progress(made)
            turn = 0 if user_rng.random() < 0.25 else turn + 1  # a new conversation now and then
            await asyncio.sleep(user_rng.uniform(0.05, 0.6) / speed)  # the user reads and types

    async with asyncio.TaskGroup() as group:
        for index in range(min(concurrency, calls)):
            group.create_task(user(index + 1))
    return made
