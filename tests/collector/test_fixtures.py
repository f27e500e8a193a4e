"""Spans recorded from the real instrumentation libraries (tests/fixtures/record_fixtures.py):
official OTel GenAI (v1.36 and latest conventions), OpenLLMetry, OpenInference and OpenLIT."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from asynctelemetry import AsyncCollector, LLMCall, MemoryStore, PriceTable
from asynctelemetry._collector._convert import convert_request
from asynctelemetry._conventions import is_content_key

from .helpers import export

FIXTURES = Path(__file__).parent.parent / "fixtures"
NAMES = ["genai_official", "genai_official_latest", "openllmetry", "openinference", "openlit"]


def load(name: str) -> ExportTraceServiceRequest:
    """A recorded request."""
    text = (FIXTURES / f"{name}.json").read_text()
    return json_format.Parse(text, ExportTraceServiceRequest())


def by_kind(calls: list[LLMCall]) -> dict[str, LLMCall]:
    """The four recorded calls: chat, streamed chat, embedding, failed chat."""
    out = {}
    for call in calls:
        if call.status == "error":
            out["error"] = call
        elif call.operation == "embed":
            out["embed"] = call
        elif "chat" in out:
            out["stream"] = call
        else:
            out["chat"] = call
    return out


@pytest.mark.parametrize("name", NAMES)
def test_recorded_spans_become_calls(name: str) -> None:
    """Every recorded span is a call with the model, provider, tokens and status it had."""
    calls, received, ignored, rejected = convert_request(load(name), False, {})
    assert (received, ignored, rejected) == (4, 0, 0)
    kinds = by_kind(sorted(calls, key=lambda c: c.timestamp))
    assert set(kinds) == {"chat", "stream", "embed", "error"}
    for kind in ("chat", "stream"):
        call = kinds[kind]
        assert call.model == "gpt-4o-mini-2024-07-18"
        assert call.provider == "openai"
        assert (call.input_tokens, call.output_tokens) == (812, 95)
        assert call.duration_ms is not None and call.duration_ms > 0
        assert call.service_name == f"fixture-{name}"
    assert kinds["embed"].model == "text-embedding-3-small"
    assert kinds["embed"].input_tokens == 5
    failed = kinds["error"]
    assert (failed.model, failed.status) == ("no-such-model", "error")


@pytest.mark.parametrize("name", NAMES)
def test_recorded_content_is_dropped(name: str) -> None:
    """No prompt, completion or embedding text survives without capture_content."""
    request = load(name)
    calls, *_ = convert_request(request, False, {})
    for call in calls:
        assert not [key for key in call.attributes if is_content_key(key)]
        assert "Say hello" not in str(call.attributes)
    captured, *_ = convert_request(request, True, {})
    if name != "genai_official":  # the others record content on the span
        assert any("Say hello" in str(call.attributes) for call in captured)


def test_cache_and_reasoning_tokens_where_recorded() -> None:
    """OpenLLMetry and OpenInference record cached and reasoning tokens; both are read."""
    for name in ("openllmetry", "openinference"):
        calls, *_ = convert_request(load(name), False, {})
        chat = by_kind(sorted(calls, key=lambda c: c.timestamp))["chat"]
        assert (chat.cached_input_tokens, chat.reasoning_tokens, chat.total_tokens) == (
            512,
            30,
            907,
        )


def test_streaming_is_recognised_where_recorded() -> None:
    """OpenLLMetry's gen_ai.is_streaming and OpenInference's invocation parameters → stream."""
    for name in ("openllmetry", "openinference"):
        calls, *_ = convert_request(load(name), False, {})
        kinds = by_kind(sorted(calls, key=lambda c: c.timestamp))
        assert kinds["stream"].operation == "stream"
        assert kinds["stream"].is_streaming is True
        assert kinds["chat"].operation == "chat"
        assert kinds["chat"].request_model == "gpt-4o-mini"


async def test_recordings_through_a_running_collector() -> None:
    """The recorded requests sent over gRPC give the same calls as the pure converter."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, price_table=None) as collector:
        for name in NAMES:
            await export(collector.endpoint, load(name))
        await collector.flush()
    assert len(store) == 4 * len(NAMES)
    assert collector.stats.llm_calls == 4 * len(NAMES)
    assert {c.service_name for c in await store.query()} == {f"fixture-{n}" for n in NAMES}


#: What OpenLIT priced the recorded calls at, from the price list the recorder gave it (USD per
#: 1,000 tokens: gpt-4o-mini 0.00015 in, 0.0006 out; text-embedding-3-small 0.00002).
OPENLIT_CHAT_COST = 812 / 1000 * 0.00015 + 95 / 1000 * 0.0006
OPENLIT_EMBED_COST = 5 / 1000 * 0.00002


def test_openlit_fields() -> None:
    """OpenLIT's spans give tokens, its cost, TTFT (seconds → ms), provider, models, streaming."""
    request = load("openlit")
    calls, *_ = convert_request(request, False, {})
    kinds = by_kind(sorted(calls, key=lambda c: c.timestamp))
    spans = {
        span.span_id.hex(): {kv.key: kv.value for kv in span.attributes}
        for span in request.resource_spans[0].scope_spans[0].spans
    }
    for kind in ("chat", "stream"):
        call = kinds[kind]
        assert (call.provider, call.model, call.request_model) == (
            "openai",
            "gpt-4o-mini-2024-07-18",
            "gpt-4o-mini",
        )
        assert (call.input_tokens, call.output_tokens, call.total_tokens) == (812, 95, 907)
        assert (call.cached_input_tokens, call.cache_creation_tokens) == (512, 0)
        assert call.cost_usd == pytest.approx(OPENLIT_CHAT_COST)
        assert call.price_version is None  # OpenLIT's price, not one of our tables
        seconds = spans[call.span_id or ""]["gen_ai.server.time_to_first_token"].double_value
        assert seconds > 0
        assert call.ttft_ms == pytest.approx(seconds * 1000)
    assert (kinds["stream"].operation, kinds["stream"].is_streaming) == ("stream", True)
    assert (kinds["chat"].operation, kinds["chat"].is_streaming) == ("chat", False)
    embed = kinds["embed"]
    assert (embed.model, embed.input_tokens, embed.is_streaming) == (
        "text-embedding-3-small",
        5,
        False,
    )
    assert embed.cost_usd == pytest.approx(OPENLIT_EMBED_COST)
    failed = kinds["error"]
    assert (failed.status, failed.error_type, failed.cost_usd) == ("error", "NotFoundError", None)


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_a_cost_that_arrives_is_kept_not_repriced(transport: str) -> None:
    """A collector with a price table keeps OpenLIT's cost, over gRPC and over OTLP/HTTP (what
    OpenLIT exports by default); the same calls arriving without a cost are priced."""
    store = MemoryStore()
    table = PriceTable()
    async with (
        AsyncCollector(store, port=0, http_port=0, price_table=table) as collector,
        httpx.AsyncClient() as client,
    ):
        for name in ("openlit", "openllmetry"):
            if transport == "grpc":
                await export(collector.endpoint, load(name))
            else:
                response = await client.post(
                    f"http://127.0.0.1:{collector.http_port}/v1/traces",
                    content=load(name).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                assert response.status_code == 200
        await collector.flush()
    calls = await store.query()
    by_service = {
        service: by_kind(
            sorted((c for c in calls if c.service_name == service), key=lambda c: c.timestamp)
        )
        for service in ("fixture-openlit", "fixture-openllmetry")
    }
    openlit, openllmetry = by_service["fixture-openlit"], by_service["fixture-openllmetry"]
    for kind in ("chat", "stream"):
        assert openlit[kind].cost_usd == pytest.approx(OPENLIT_CHAT_COST)
        assert openlit[kind].price_version is None
        priced = openllmetry[kind]  # the same call, with no cost on the span
        assert priced.cost_usd is not None and priced.price_version == table.version
        assert priced.cost_usd != pytest.approx(OPENLIT_CHAT_COST)
    assert openlit["embed"].cost_usd == pytest.approx(OPENLIT_EMBED_COST)
