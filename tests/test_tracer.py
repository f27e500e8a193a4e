"""AsyncTracer: timing, statuses, nesting, concurrency, pricing, sinks and Racto methods."""

from __future__ import annotations

import asyncio
import enum
import gc
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import (
    ConfigError,
    LLMCall,
    MemoryStore,
    RactoTracer,
    SQLiteStore,
    StoreClosedError,
)
from asynctelemetry._tracer import AsyncTracer
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


async def test_a_traced_call_is_timed_priced_and_kept() -> None:
    """An ok call carries its timing, usage, cost and price version, in memory and in the store."""
    store = MemoryStore()
    async with AsyncTracer(store=store, in_memory=True, service_name="svc") as tracer:
        async with tracer.llm_call(provider="openai", model="gpt-4o", session_id="s1") as call:
            await asyncio.sleep(0.02)
            call.first_token()
            await asyncio.sleep(0.01)
            call.set_usage(input_tokens=1000, output_tokens=100, cached_input_tokens=400)
            call.set(cache_hit="miss", tool_calls=2, response_model="gpt-4o-2024-08-06")
        [record] = tracer.spans
    assert record.status == "ok" and record.error_type is None
    assert record.model == "gpt-4o-2024-08-06" and record.request_model == "gpt-4o"
    assert record.provider == "openai" and record.session_id == "s1"
    assert record.service_name == "svc" and record.source == "tracer"
    assert record.duration_ms is not None and 29 <= record.duration_ms < 500
    assert record.ttft_ms is not None and 19 <= record.ttft_ms < record.duration_ms
    assert record.total_tokens == 1100 and record.tool_calls == 2
    # 600 uncached at $2.50/M, 400 cached at $1.25/M, 100 output at $10/M
    assert record.cost_usd == pytest.approx(600 * 2.5e-6 + 400 * 1.25e-6 + 100 * 10e-6)
    assert record.price_version and "genai-prices" in record.price_version
    assert record.call_id == record.span_id and len(record.span_id or "") == 16
    assert len(record.trace_id or "") == 32 and record.parent_span_id is None
    assert await store.query() == [record]


async def test_errors_propagate_and_are_recorded() -> None:
    """An exception in the block propagates unchanged; the call is an error with its class name."""
    tracer = AsyncTracer(in_memory=True)

    class RateLimitError(Exception):
        pass

    with pytest.raises(RateLimitError, match="slow down"):
        async with tracer.llm_call(provider="openai", model="gpt-4o"):
            raise RateLimitError("slow down")
    [record] = tracer.spans
    assert record.status == "error" and record.error_type == "RateLimitError"
    await tracer.aclose()


async def test_cancellation_propagates_and_is_recorded() -> None:
    """Cancelling the task cancels the call; the record says cancelled."""
    tracer = AsyncTracer(in_memory=True)
    started = asyncio.Event()

    async def work() -> None:
        async with tracer.llm_call(provider="anthropic", model="claude-sonnet-4-5"):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [record] = tracer.spans
    assert record.status == "cancelled" and record.error_type is None
    await tracer.aclose()


async def test_fail_marks_an_error_without_raising() -> None:
    """call.fail() records an error response the caller handled itself."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o") as call:
            call.fail("HTTPError", status_code=503)
        [record] = tracer.spans
    assert (record.status, record.error_type, record.status_code) == ("error", "HTTPError", 503)


async def test_fail_and_record_refuse_values_no_record_may_hold() -> None:
    """fail() with a non-text error type, and record_chat_span with a status that is not text,
    raise ValueError; nothing invalid is recorded."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o") as call:
            with pytest.raises(ValueError, match="error_type must be a str"):
                call.fail(503)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="status must be one of"):
            await tracer.record_chat_span(
                provider="openai",
                model="gpt-4o",
                latency_ms=5.0,
                status=["ok"],  # type: ignore[arg-type]
            )
        [record] = tracer.spans
    assert (record.status, record.error_type) == ("ok", None)
    assert LLMCall.model_validate_json(record.model_dump_json()) == record


async def test_nested_calls_are_children_and_share_the_trace() -> None:
    """A call inside a call is its child, in the same trace."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o") as outer:
            async with tracer.llm_call(model="gpt-4o-mini") as inner:
                pass
            async with tracer.llm_call(model="gpt-4o-mini") as sibling:
                pass
        async with tracer.llm_call(model="gpt-4o") as later:
            pass
    assert inner.parent_span_id == outer.span_id == sibling.parent_span_id
    assert inner.trace_id == outer.trace_id
    assert later.parent_span_id is None and later.trace_id != outer.trace_id


async def test_parent_is_the_current_opentelemetry_span() -> None:
    """A call made inside a user's OTel span joins that span's trace as its child."""
    from opentelemetry.sdk.trace import TracerProvider

    user_tracer = TracerProvider().get_tracer("app")
    async with AsyncTracer(in_memory=True) as tracer:
        with user_tracer.start_as_current_span("handle request") as span:
            async with tracer.llm_call(model="gpt-4o") as call:
                pass
    ctx = span.get_span_context()
    assert call.trace_id == f"{ctx.trace_id:032x}"
    assert call.parent_span_id == f"{ctx.span_id:016x}"


async def test_thousands_of_concurrent_calls_each_get_their_own_record() -> None:
    """5,000 concurrent calls in as many tasks give 5,000 distinct, correct records."""
    store = MemoryStore(capacity=10_000)
    async with AsyncTracer(store=store) as tracer:

        async def one(i: int) -> None:
            async with tracer.llm_call(model="gpt-4o-mini", provider="openai") as call:
                await asyncio.sleep(0.001 * (i % 5))
                call.set_usage(input_tokens=i, output_tokens=1)
                async with tracer.llm_call(model="text-embedding-3-small", operation="embed"):
                    pass

        await asyncio.gather(*(one(i) for i in range(5000)))
    chats = await store.query(model="gpt-4o-mini")
    embeds = await store.query(model="text-embedding-3-small")
    assert len(chats) == len(embeds) == 5000
    assert sorted(c.input_tokens or 0 for c in chats) == list(range(5000))
    assert len({c.call_id for c in chats + embeds}) == 10_000
    parents = {c.span_id for c in chats}
    assert all(e.parent_span_id in parents for e in embeds)


async def test_unknown_models_have_no_cost() -> None:
    """A model the price table does not know gets cost None and no price version."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="my-finetune-xyz", provider="acme") as call:
            call.set_usage(input_tokens=10, output_tokens=5)
        [record] = tracer.spans
    assert record.cost_usd is None and record.price_version is None


async def test_anthropic_shaped_usage_is_normalised() -> None:
    """input_includes_cache=False adds cache reads and writes to input tokens."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="claude-sonnet-4-5", provider="anthropic") as call:
            call.set_usage(
                input_tokens=100,
                output_tokens=50,
                cached_input_tokens=1000,
                cache_creation_tokens=200,
                input_includes_cache=False,
            )
        [record] = tracer.spans
    assert record.input_tokens == 1300
    # $3/M input, $0.30/M cache read, $3.75/M cache write, $15/M output
    expected = 100 * 3e-6 + 1000 * 0.3e-6 + 200 * 3.75e-6 + 50 * 15e-6
    assert record.cost_usd == pytest.approx(expected)


async def test_price_overrides_take_precedence() -> None:
    """A price_table mapping overrides the default prices."""
    from asynctelemetry._pricing import ModelPricing

    table = {"gpt-4o": ModelPricing(input_per_million=1.0, output_per_million=2.0)}
    async with AsyncTracer(in_memory=True, price_table=table) as tracer:
        await tracer.record_chat_span(
            provider="openai", model="gpt-4o", latency_ms=10, input_tokens=1_000_000
        )
        [record] = tracer.spans
    assert record.cost_usd == pytest.approx(1.0)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"input_tokens": -1}, id="negative"),
        pytest.param({"output_tokens": 1.5}, id="float"),
        pytest.param({"reasoning_tokens": 2**60}, id="absurd"),
        pytest.param({"cached_input_tokens": True}, id="bool"),
    ],
)
async def test_bad_usage_raises_value_error(bad: dict[str, object]) -> None:
    """set_usage rejects negative, non-integer and absurd counts with ValueError."""
    async with AsyncTracer(in_memory=True) as tracer:
        with pytest.raises(ValueError):
            async with tracer.llm_call(model="gpt-4o") as call:
                call.set_usage(**bad)  # type: ignore[arg-type]
        [record] = tracer.spans
    assert record.status == "error" and record.error_type == "ValueError"


async def test_bad_fields_and_use_after_close() -> None:
    """Unknown fields, wrong types, bad cache_hit and use after close are clear errors."""
    tracer = AsyncTracer(in_memory=True)
    async with tracer.llm_call(model="gpt-4o") as call:
        with pytest.raises(ValueError, match="unknown call field"):
            call.set(colour="red")
        with pytest.raises(ValueError):
            call.set(cache_hit="maybe")
        with pytest.raises(ValueError):
            call.set(provider=3)
        with pytest.raises(ValueError):
            call.set_attribute("x", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tracer.llm_call(model="")
    await tracer.aclose()
    with pytest.raises(StoreClosedError):
        tracer.llm_call(model="gpt-4o")


async def test_record_chat_and_embed_spans_are_racto_compatible() -> None:
    """record_chat_span / record_embed_span are awaitable, take Racto's parameters, price calls."""
    async with RactoTracer(in_memory=True) as tracer:
        chat = await tracer.record_chat_span(
            provider="openai",
            model="gpt-4o-mini",
            latency_ms=420.0,
            input_tokens=1000,
            output_tokens=200,
            cache_hit="exact",
            tool_calls=1,
        )
        embed = await tracer.record_embed_span(
            provider="openai", model="text-embedding-3-small", latency_ms=12.5, input_tokens=5000
        )
        failed = await tracer.record_chat_span(
            provider="google",
            model="gemini-2.5-flash",
            latency_ms=30,
            status="error",
            error_type="Timeout",
        )
        assert tracer.spans == [chat, embed, failed]
        tracer.clear_spans()
        assert tracer.spans == []
        with pytest.raises(ValueError):
            await tracer.record_chat_span(provider="openai", model="gpt-4o", latency_ms=-1)
    assert chat.duration_ms == 420.0 and chat.operation == "chat" and chat.cache_hit == "exact"
    assert chat.cost_usd == pytest.approx(1000 * 0.15e-6 + 200 * 0.6e-6)
    assert embed.operation == "embed" and embed.cost_usd == pytest.approx(5000 * 0.02e-6)
    assert failed.status == "error" and failed.error_type == "Timeout"


async def test_a_sqlite_store_is_a_sink_of_the_tracer_queued_once(tmp_path: Path) -> None:
    """A SQLiteStore goes into the pipeline as it is: its own writer queue is the only hand-off,
    and the tracer flushes it on close but leaves it open."""
    async with SQLiteStore(tmp_path / "calls.db") as store:
        tracer = AsyncTracer(store=store)
        assert tracer.pipeline.sinks == (store,)
        for _ in range(50):
            async with tracer.llm_call(model="gpt-4o"):
                pass
        assert store.stats.queue.accepted == 50
        await tracer.aclose()
        assert store.pending == 0 and await store.count() == 50


async def test_a_lent_sqlite_store_is_committed_when_the_tracer_closes(tmp_path: Path) -> None:
    """Leaving ``async with tracer`` commits its calls to a lent SQLiteStore, still open after:
    a read right after (the quickstart's pattern) sees every call, not an empty file."""
    async with SQLiteStore(tmp_path / "calls.db", flush_interval=60) as store:
        async with AsyncTracer(store=store) as tracer:
            for _ in range(5):
                async with tracer.llm_call(model="gpt-4o-mini", provider="openai"):
                    pass
        assert store.pending == 0
        [row] = await store.summary(by="model")
        assert row.calls == 5
        await store.add(make_call(99))  # lent: the tracer did not close it


async def test_an_unclosed_tracer_warns() -> None:
    """A tracer that made calls and is garbage-collected open raises a ResourceWarning."""
    tracer = AsyncTracer(in_memory=True)
    async with tracer.llm_call(model="gpt-4o"):
        pass
    with pytest.warns(ResourceWarning, match="unclosed"):
        del tracer
        gc.collect()


async def test_record_response_reads_openai_usage() -> None:
    """call.record_response reads usage, tool calls and model from an OpenAI-shaped response."""
    response = {
        "model": "gpt-4o-2024-08-06",
        "choices": [{"message": {"tool_calls": [{"id": "a"}, {"id": "b"}]}}],
        "usage": {
            "prompt_tokens": 900,
            "completion_tokens": 300,
            "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 512},
            "completion_tokens_details": {"reasoning_tokens": 100},
        },
    }
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.record_response(response)
        [record] = tracer.spans
    assert (record.input_tokens, record.output_tokens, record.total_tokens) == (900, 300, 1200)
    assert (record.cached_input_tokens, record.reasoning_tokens) == (512, 100)
    assert record.tool_calls == 2 and record.model == "gpt-4o-2024-08-06"


async def test_record_response_ignores_a_model_name_no_record_may_hold() -> None:
    """A response naming a model longer than 512 characters keeps the requested model (and its
    usage) instead of raising in the caller's code or making an invalid record."""
    response = {"model": "m" * 600, "usage": {"prompt_tokens": 10, "completion_tokens": 2}}
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.record_response(response)
        [record] = tracer.spans
    assert (record.model, record.input_tokens, record.output_tokens) == ("gpt-4o", 10, 2)
    assert LLMCall.model_validate_json(record.model_dump_json()) == record


async def test_content_is_dropped_unless_captured() -> None:
    """Prompt/completion attributes are kept only with capture_content=True."""
    for capture in (False, True):
        async with AsyncTracer(in_memory=True, capture_content=capture) as tracer:
            async with tracer.llm_call(model="gpt-4o", team="search") as call:
                call.set_attribute("gen_ai.input.messages", '[{"role": "user", "content": "hi"}]')
                call.set_attribute("llm.input_messages.0.message.content", "hi")
            [record] = tracer.spans
        assert record.attributes["team"] == "search"
        assert ("gen_ai.input.messages" in record.attributes) is capture
        assert ("llm.input_messages.0.message.content" in record.attributes) is capture


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"model": ""}, "model must have 1 to 512", id="empty-model"),
        pytest.param({"model": "m" * 513}, "model must have 1 to 512", id="long-model"),
        pytest.param({"model": 123}, "model must be a str", id="int-model"),
        pytest.param({"model": "m", "provider": 5}, "provider must be a str", id="int-provider"),
        pytest.param({"model": "m", "operation": ""}, "operation must be", id="empty-operation"),
        pytest.param({"model": "m", "session_id": b"s"}, "session_id must be", id="bytes-session"),
        pytest.param({"model": "m", "is_streaming": "yes"}, "is_streaming must", id="text-bool"),
    ],
)
async def test_llm_call_refuses_arguments_no_record_could_hold(
    arguments: dict[str, Any], message: str
) -> None:
    """Arguments that would make an invalid record raise ConfigError (a ValueError) at once."""
    async with AsyncTracer(in_memory=True) as tracer:
        with pytest.raises(ConfigError, match=message):
            tracer.llm_call(**arguments)
        assert tracer.spans == []


def test_a_sampler_that_is_not_a_sampler_is_a_config_error() -> None:
    """sampler=0.1 (a ratio, not a Sampler) is refused at construction, not at the first call."""
    with pytest.raises(ConfigError, match="sampler must be an OpenTelemetry Sampler"):
        AsyncTracer(sampler=0.1)  # type: ignore[arg-type]


async def test_set_checks_model_names_and_text_and_keeps_records_valid() -> None:
    """call.set() refuses empty or over-long model names and non-text; str subclasses (a StrEnum
    provider) are kept as plain text; every record still round-trips through JSON."""

    class Provider(str, enum.Enum):  # noqa: UP042 - the mixin form: its str() is not its value
        OPENAI = "openai"

    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o", provider=Provider.OPENAI) as call:
            for bad in (
                {"response_model": ""},
                {"response_model": "x" * 513},
                {"request_model": 7},
            ):
                with pytest.raises(ValueError, match="model must"):
                    call.set(**bad)
            call.set(response_model="gpt-4o-2024-08-06", route_name=Provider.OPENAI)
        [record] = tracer.spans
    assert (record.model, record.provider, record.route_name) == (
        "gpt-4o-2024-08-06",
        "openai",
        "openai",
    )
    assert type(record.provider) is str and type(record.route_name) is str
    assert LLMCall.model_validate_json(record.model_dump_json()) == record


async def test_the_pipeline_has_one_name() -> None:
    """tracer.pipeline is the tracer's pipeline; ``emitter``, a name never released, is gone
    rather than deprecated."""
    async with AsyncTracer(in_memory=True) as tracer:
        assert tracer.pipeline is not None
        assert not hasattr(tracer, "emitter")


def test_a_store_that_is_not_a_sink_is_refused() -> None:
    """A store without emit/flush/aclose is a ConfigError at construction, not a lost call."""

    class AddOnly:
        async def add_many(self, calls: Sequence[LLMCall]) -> None:
            pass

    with pytest.raises(ConfigError, match="AddOnly is not a sink"):
        AsyncTracer(store=AddOnly())  # type: ignore[arg-type]


async def test_an_error_text_with_a_lone_surrogate_does_not_lose_the_call(tmp_path: Path) -> None:
    """An exception whose text holds a lone surrogate: the call is stored whole in SQLite, its
    message with ``?`` in the surrogate's place (before, SQLite rejected the whole call)."""
    from asynctelemetry import SQLiteStore

    async with SQLiteStore(tmp_path / "calls.db") as store:
        async with AsyncTracer(store=store) as tracer:
            with pytest.raises(ValueError):
                async with tracer.llm_call(model="m"):
                    raise ValueError("bad \ud800 text")
        await store.flush()
        [call] = await store.query()
        assert store.rejected == 0
    assert (call.status, call.error_message) == ("error", "bad ? text")
