"""Unknown is never zero: a call whose usage is unknown is unpriced (``cost_usd=None``) on every
path; a failed call without usage costs $0 only where the provider bills nothing for it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asynctelemetry import AsyncCollector, AsyncTracer, MemoryStore, PriceTable, replay
from asynctelemetry._pricing._table import FREE_FAILURES, bills_nothing
from tests.conftest import make_call

NO_USAGE: dict[str, Any] = {
    "input_tokens": None,
    "output_tokens": None,
    "cached_input_tokens": None,
    "cache_creation_tokens": None,
    "reasoning_tokens": None,
    "cost_usd": None,
    "price_version": None,
}


def test_the_rule() -> None:
    """No token count at all: unpriced, unless an HTTP error of a provider that bills nothing."""
    table = PriceTable.default()
    assert table.price_call("gpt-4o", None, "openai") is None
    assert table.price_call("gpt-4o", None, "openai", 0, 0) == 0.0  # known: nothing used
    assert table.price_call("gpt-4o", None, "openai", status="error", status_code=429) == 0.0
    assert table.price_call("gpt-4o", None, "azure_openai", status="error", status_code=500) == 0.0
    assert table.price_call("claude-sonnet-4-5", None, "anthropic", status="error",
                            status_code=529) == 0.0  # fmt: skip
    # no HTTP error status: a timeout or a dropped connection may have been billed
    assert table.price_call("gpt-4o", None, "openai", status="error") is None
    # a provider not known to bill nothing for failures
    assert table.price_call("mistral-large-latest", None, "mistral", status="error",
                            status_code=500) is None  # fmt: skip
    assert table.price_call("gpt-4o", None, "openai", status="ok", status_code=200) is None
    assert table.price_call("gpt-4o", None, "openai", status="cancelled") is None
    assert {"openai", "anthropic", "google", "azure"} <= FREE_FAILURES
    assert not bills_nothing(None, "error", 500)
    failed = make_call(1, provider="openai", status="error", status_code=400, **NO_USAGE)
    assert table.cost(failed) == 0.0
    assert table.cost(failed.model_copy(update={"status_code": None})) is None


async def test_tracer_and_replay_leave_unknown_usage_unpriced() -> None:
    """The tracer's hot path and replay (the pipeline's record path) follow the rule."""
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o", provider="openai"):
            pass  # usage never known
        with pytest.raises(RuntimeError):
            async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
                call.set(status_code=429)
                raise RuntimeError("rate limited")
    unknown, refused = tracer.spans
    assert (unknown.cost_usd, unknown.price_version) == (None, None)
    assert refused.status == "error" and refused.cost_usd == 0.0
    assert refused.price_version is not None

    source = MemoryStore()
    await source.add_many(
        [
            make_call(1, provider="openai", **NO_USAGE),
            make_call(2, provider="openai", status="error", status_code=503, **NO_USAGE),
            make_call(3, provider="openai", status="error", **NO_USAGE),
        ]
    )
    into = MemoryStore()
    await replay(source, into=into)
    assert [c.cost_usd for c in await into.query()] == [None, 0.0, None]
    [row] = await into.summary(by="provider")
    assert row.unpriced_calls == 2


def _send(endpoint: str, status_code: int | None) -> None:
    """One GenAI span without usage through the OTel SDK's OTLP/HTTP exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    with provider.get_tracer("app").start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
            }
        )
        if status_code is not None:
            span.set_attribute("http.response.status_code", status_code)
            span.set_attribute("error.type", str(status_code))
            span.set_status(Status(StatusCode.ERROR))
    provider.shutdown()


async def test_collector_leaves_unknown_usage_unpriced() -> None:
    """A span without usage arrives unpriced; a refused request of OpenAI costs $0."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        http = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        await asyncio.to_thread(_send, http, None)
        await asyncio.to_thread(_send, http, 429)
        await collector.flush()
    ok, failed = await store.query()
    assert ok.status == "ok" and ok.cost_usd is None
    assert (failed.status, failed.status_code, failed.cost_usd) == ("error", 429, 0.0)
