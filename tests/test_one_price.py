"""One pricing rule on every path: the same call gets the same cost and price_version from the
tracer, the collector (gRPC and HTTP, fed by the real OpenTelemetry SDK exporters), the metrics
and replay, including a call whose response model the price table does not know."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asynctelemetry import AsyncCollector, AsyncTracer, LLMCall, MemoryStore, PriceTable, replay
from asynctelemetry.metrics import MetricsRecorder

USAGE = {"input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 1024}


def _send_with_sdk(transport: str, endpoint: str, response_model: str) -> None:
    """One GenAI span through the OTel SDK and its own OTLP exporter (blocking: in a thread)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter: Any
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )

        exporter = HTTPSpanExporter(endpoint=endpoint, timeout=10)
    provider = TracerProvider(resource=Resource.create({"service.name": "app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("app").start_as_current_span("chat gpt-4o") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": response_model,
                "gen_ai.usage.input_tokens": USAGE["input_tokens"],
                "gen_ai.usage.output_tokens": USAGE["output_tokens"],
                "gen_ai.usage.cache_read.input_tokens": USAGE["cached_input_tokens"],
            }
        )
    provider.shutdown()


def _metered_cost(metrics: MetricsRecorder) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics.generate_latest())
        for sample in family.samples
        if sample.name == "asynctelemetry_cost_usd_total"
    )


@pytest.mark.parametrize(
    "response_model",
    [
        pytest.param("acme-gpt-4o-finetune-7", id="response-model-unknown-to-the-table"),
        pytest.param("gpt-4o-2024-08-06", id="known-snapshot"),
    ],
)
async def test_every_path_prices_the_same_call_the_same(response_model: str) -> None:
    """Tracer, collector over gRPC and over HTTP, metrics and replay: equal cost and version."""
    table = PriceTable.default()
    assert table.lookup("gpt-4o") is not None
    expected_cost = table.price_call(response_model, "gpt-4o", "openai", **USAGE)
    assert expected_cost is not None and expected_cost > 0

    tracer_metrics, collector_metrics = MetricsRecorder(), MetricsRecorder()
    async with AsyncTracer(in_memory=True, metrics=tracer_metrics) as tracer:
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.set_usage(**USAGE)
            call.set(response_model=response_model)
    [traced] = tracer.spans

    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, metrics=collector_metrics) as collector:
        await asyncio.to_thread(_send_with_sdk, "grpc", collector.endpoint, response_model)
        http = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        await asyncio.to_thread(_send_with_sdk, "http", http, response_model)
        await collector.flush()
    over_grpc, over_http = await store.query()

    # Replay prices a call stored without a cost, and keeps the cost of one that has it.
    unpriced = MemoryStore()
    await unpriced.add(traced.model_copy(update={"cost_usd": None, "price_version": None}))
    await unpriced.add(traced.model_copy(update={"call_id": "priced-copy"}))
    replayed = MemoryStore()
    assert await replay(unpriced, into=replayed) == 2

    calls: list[LLMCall] = [traced, over_grpc, over_http, *await replayed.query()]
    assert {c.model for c in calls} == {response_model}
    assert [c.cost_usd for c in calls] == [pytest.approx(expected_cost)] * 5
    assert {c.price_version for c in calls} == {table.version}
    assert _metered_cost(tracer_metrics) == pytest.approx(expected_cost)
    assert _metered_cost(collector_metrics) == pytest.approx(2 * expected_cost)
