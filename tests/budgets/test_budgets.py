"""Budgets: a call that does not fit is refused before it is sent; spend never passes a limit
by more than the largest single underestimate, however many tasks race."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import openai
import pytest

from asynctelemetry import (
    AsyncTracer,
    Budget,
    BudgetExceededError,
    ConfigError,
    ModelPricing,
    PriceTable,
)

from ..instrument.llm_server import LLMServer

#: $1 per million input and output tokens: a call's cost is (input + output) / 1e6.
TABLE = PriceTable.default().with_overrides(
    {"budget-model": ModelPricing(input_per_million=1.0, output_per_million=1.0)}
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"limit_usd": -1.0}, "limit_usd", id="negative"),
        pytest.param({"limit_usd": math.nan}, "limit_usd", id="nan"),
        pytest.param({"limit_usd": math.inf}, "limit_usd", id="inf"),
        pytest.param({"limit_usd": True}, "limit_usd", id="bool"),
        pytest.param({"limit_usd": 1.0, "per": "week"}, "per", id="per"),
        pytest.param({"limit_usd": 1.0, "by": "team"}, "by", id="by"),
        pytest.param({"limit_usd": 1.0, "by": "tag:"}, "by", id="empty-tag"),
        pytest.param({"limit_usd": 1.0, "name": ""}, "name", id="name"),
    ],
)
def test_bad_budgets_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    """A limit that is negative, not finite or not a number, an unknown window or key: refused
    when the budget is made, naming the argument."""
    with pytest.raises(ConfigError, match=message):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_windows_start_on_utc_boundaries() -> None:
    """Hours, days and months start on UTC boundaries; a budget without ``per`` never rolls."""
    now = datetime(2026, 3, 17, 13, 45, 12, tzinfo=UTC).timestamp()
    start = {
        per: datetime.fromtimestamp(Budget(1.0, per=per).window_start(now), UTC)
        for per in ("hour", "day", "month")
    }
    assert start["hour"] == datetime(2026, 3, 17, 13, tzinfo=UTC)
    assert start["day"] == datetime(2026, 3, 17, tzinfo=UTC)
    assert start["month"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert Budget(1.0).window_start(now) == 0.0


async def test_refused_call_raises_and_records_nothing() -> None:
    """A call whose estimate does not fit raises BudgetExceededError naming the budget, key,
    spent, reserved and limit, and leaves no record."""
    budget = Budget(0.01, by="session", name="per-session")
    async with AsyncTracer(in_memory=True, price_table=TABLE, budgets=[budget]) as tracer:
        async with tracer.llm_call(model="budget-model", session_id="s1") as call:
            call.set_usage(input_tokens=6000, output_tokens=0)  # $0.006
        with pytest.raises(BudgetExceededError) as caught:
            async with tracer.llm_call(model="budget-model", session_id="s1", estimate_usd=0.005):
                pytest.fail("the body of a refused call must not run")
        error = caught.value
        assert (error.budget, error.key) == ("per-session", "s1")
        assert error.spent_usd == pytest.approx(0.006)
        assert error.reserved_usd == 0.0
        assert error.limit_usd == 0.01
        assert error.estimate_usd == 0.005
        assert "per-session" in str(error) and "'s1'" in str(error)
        # Another session has its own budget.
        async with tracer.llm_call(model="budget-model", session_id="s2", estimate_usd=0.005):
            pass
        assert len(tracer.spans) == 2
        assert tracer.stats.budget_refusals == 1
        status = {s.key: s for s in await tracer.budget_status()}
        assert status["s1"].spent_usd == pytest.approx(0.006)
        assert status["s1"].remaining_usd == pytest.approx(0.004)
        # no usage: an ok call of unknown cost (never $0), counted at its estimate
        assert status["s2"].spent_usd == pytest.approx(0.005)
        assert status["s2"].spent_usd + status["s2"].reserved_usd <= 0.005


async def test_unknown_cost_counts_at_its_estimate_and_failures_release() -> None:
    """An ok call whose usage never arrived spends its estimate (an unknown cost is not free);
    a failed or cancelled call without usage releases its reservation."""
    async with AsyncTracer(price_table=TABLE, budgets=[Budget(1.0)]) as tracer:
        async with tracer.llm_call(model="no-price-known", estimate_usd=0.25):
            pass
        with pytest.raises(RuntimeError):
            async with tracer.llm_call(model="budget-model", estimate_usd=0.5):
                raise RuntimeError("boom")

        async def cancelled() -> None:
            async with tracer.llm_call(model="budget-model", estimate_usd=0.5):
                await asyncio.sleep(10)

        task = asyncio.create_task(cancelled())
        await asyncio.sleep(0.01)
        [during] = await tracer.budget_status()
        assert during.reserved_usd == pytest.approx(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [after] = await tracer.budget_status()
        assert after.spent_usd == pytest.approx(0.25)
        assert after.reserved_usd == 0.0


async def test_nothing_left_refuses_even_a_zero_estimate() -> None:
    """When a budget is spent, a call with no estimate (its price unknown) is refused too."""
    async with AsyncTracer(price_table=TABLE, budgets=[Budget(0.001)]) as tracer:
        async with tracer.llm_call(model="budget-model") as call:
            call.set_usage(input_tokens=1000, output_tokens=500)  # $0.0015: past the limit
        with pytest.raises(BudgetExceededError):
            async with tracer.llm_call(model="budget-model"):
                pass


async def test_concurrent_calls_never_overshoot_more_than_one_underestimate() -> None:
    """200 concurrent calls against a $1.00 budget: the spend ends at most the largest single
    underestimate past the limit (here each call costs 10% more than it reserved)."""
    estimate = 0.01
    actual_tokens = 11_000  # $0.011: each call underestimates by $0.001
    budget = Budget(1.0)
    refused = 0
    async with AsyncTracer(price_table=TABLE, budgets=[budget], in_memory=True) as tracer:

        async def one() -> None:
            nonlocal refused
            try:
                async with tracer.llm_call(model="budget-model", estimate_usd=estimate) as call:
                    await asyncio.sleep(0.001)
                    call.set_usage(input_tokens=actual_tokens, output_tokens=0)
            except BudgetExceededError:
                refused += 1

        await asyncio.gather(*(one() for _ in range(200)))
        [status] = await tracer.budget_status()
        spent = sum(c.cost_usd or 0.0 for c in tracer.spans)
    assert status.spent_usd == pytest.approx(spent)
    assert refused > 0
    assert spent <= 1.0 + 0.001 * 100 + 1e-9  # at most 100 underestimates in flight at once
    assert spent <= budget.limit_usd + (actual_tokens / 1e6 - estimate) * len(tracer.spans)


async def test_openai_request_refused_is_never_sent() -> None:
    """An instrumented openai call over budget raises before its request leaves: the server
    never sees it; its estimate comes from the request (prompt size and max_tokens)."""
    server = LLMServer()
    await server.start()
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0)
    try:
        async with AsyncTracer(in_memory=True, budgets=[Budget(0.0005)]) as tracer:
            tracer.instrument(client)
            messages = [{"role": "user", "content": "hi"}]
            await client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=10)
            assert server.requests == {"/v1/chat/completions": 1}
            with pytest.raises(BudgetExceededError):  # 1,000 output tokens: $0.01 > $0.0005
                await client.chat.completions.create(
                    model="gpt-4o", messages=messages, max_tokens=1000
                )
            assert server.requests == {"/v1/chat/completions": 1}
            assert len(tracer.spans) == 1
    finally:
        await client.close()
        await server.stop()


async def test_anthropic_request_refused_is_never_sent() -> None:
    """The same for ``anthropic.AsyncAnthropic``: its required max_tokens bounds the estimate."""
    import anthropic

    server = LLMServer()
    await server.start()
    client = anthropic.AsyncAnthropic(base_url=server.url, api_key="test", max_retries=0)
    try:
        async with AsyncTracer(in_memory=True, budgets=[Budget(0.002)]) as tracer:
            tracer.instrument(client)
            messages = [{"role": "user", "content": "hi"}]
            model = "claude-haiku-4-5"
            await client.messages.create(model=model, messages=messages, max_tokens=10)
            with pytest.raises(BudgetExceededError) as refused:  # 4,000 output tokens: $0.02
                await client.messages.create(model=model, messages=messages, max_tokens=4000)
            assert refused.value.estimate_usd == pytest.approx(0.02, rel=0.01)
            assert server.requests == {"/v1/messages": 1}
    finally:
        await client.close()
        await server.stop()
