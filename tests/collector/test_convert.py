"""span_to_llm_call: conventions, precedence, bad values, privacy, the lossless round trip."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from asynctelemetry import LLMCall, MemoryStore, PriceTable, span_to_llm_call
from asynctelemetry._collector._attributes import attribute_cache
from asynctelemetry._collector._convert import REJECTED, _convert_slowly, convert_request
from asynctelemetry._collector._convert import convert_span as convert_row
from asynctelemetry._collector._wire import lean_span
from asynctelemetry._conventions import FIELD_KEYS
from asynctelemetry._record import (
    MAX_ATTRIBUTE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_ERROR_MESSAGE,
    MAX_TOKENS,
)
from asynctelemetry._rows import Rows, record_of
from tests.hardening.strategies import attributes as hardening_attributes

from .helpers import any_value, llm_span, request_for, request_of, span_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def convert_span(*args: Any) -> object:
    """convert_span with its row read back as a record (None and REJECTED as they are)."""
    result = convert_row(*args)
    return record_of(result) if isinstance(result, tuple) else result


def varied_calls() -> list[LLMCall]:
    """Calls that between them set every field, with None and default values mixed in."""
    calls = []
    for i in range(24):
        values: dict[str, object] = {
            "call_id": f"req-{i}" if i % 3 else f"{i + 1:016x}",
            "timestamp": T0 + timedelta(seconds=i, microseconds=i * 37 + 1),
            "model": ("gpt-4o-2024-08-06", "claude-sonnet-4-5", "text-embedding-3-small")[i % 3],
            "operation": ("chat", "stream", "embed", "completion")[i % 4],
            "source": "tracer",
            "trace_id": f"{i + 7:032x}",
            "span_id": f"{i + 1:016x}",
            "status": ("ok", "error", "cancelled")[i % 3],
            "tool_calls": i % 4,
        }
        if i % 2:
            values |= {
                "request_model": "gpt-4o",
                "provider": "openai",
                "service_name": f"svc-{i % 3}",
                "parent_span_id": f"{i + 100:016x}",
                "session_id": f"s{i}",
                "route_name": "default",
                "is_streaming": i % 4 == 1,
                "status_code": 200 + i,
                "error_type": "RateLimitError" if i % 3 == 1 else None,
                "error_message": "429 Too Many Requests: slow ✓ down" if i % 3 == 1 else None,
                "user_id": f"user-{i % 5}",
                "agent_name": ("planner", "writer")[i % 2],
                "tags": ("beta", f"t{i % 3}")[: 1 + i % 2],
                "input_tokens": 1000 + i,
                "output_tokens": 50 + i,
                "total_tokens": 1050 + 2 * i,
                "cached_input_tokens": 512,
                "cache_creation_tokens": i,
                "reasoning_tokens": 7,
                "duration_ms": 1234.567 + i / 3,
                "ttft_ms": 87.125 + i,
                "cache_hit": ("exact", "semantic", "miss")[i % 3],
                "routing_strategy": "cost",
                "routing_reason": "cheapest healthy",
                "cost_usd": 0.00123 * i,
                "price_version": "genai-prices 0.0.99",
                "attributes": {
                    "app.user_tier": "gold",
                    "app.retries": i,
                    "app.sampled": True,
                    "app.score": 0.25 * i,
                },
            }
        calls.append(LLMCall.model_validate(values))
    return calls


def test_round_trip_every_field_equal() -> None:
    """A record written as our tracer writes spans comes back equal, field by field."""
    originals = varied_calls()
    calls, received, ignored, rejected = convert_request(request_for(originals), False, {})
    assert (received, ignored, rejected) == (len(originals), 0, 0)
    by_id = {call.call_id: call for call in calls}
    assert len(by_id) == len(originals)
    for original in originals:
        back = by_id[original.call_id]
        assert back.source == "collector"
        assert back.model_dump(exclude={"source"}) == original.model_dump(exclude={"source"})


def test_round_trip_through_the_exporters_encoder() -> None:
    """The OTLP exporters' own encoder and the collector agree on every field."""
    from asynctelemetry._export._encode import encode_calls

    originals = [c for c in varied_calls() if c.service_name is not None]
    request = encode_calls(originals, service_name="fallback")
    calls, *_ = convert_request(request, False, {})
    by_id = {call.call_id: call.model_dump(exclude={"source"}) for call in calls}
    assert by_id == {call.call_id: call.model_dump(exclude={"source"}) for call in originals}


GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 812,
    "gen_ai.usage.output_tokens": 95,
    "gen_ai.usage.cache_read.input_tokens": 512,
    "gen_ai.usage.cache_creation.input_tokens": 64,
    "gen_ai.usage.reasoning.output_tokens": 30,
    "gen_ai.conversation.id": "conv-1",
    "gen_ai.response.finish_reasons": ["stop"],
    "server.address": "api.openai.com",
    "error.type": "timeout",
}


def test_genai_conventions() -> None:
    """OTel GenAI keys map to the fields; unknown keys are kept; duration from the span times."""
    call = span_to_llm_call(llm_span(GENAI), service_name="app")
    assert call is not None
    assert (call.model, call.request_model, call.provider) == (
        "gpt-4o-2024-08-06",
        "gpt-4o",
        "openai",
    )
    assert (call.input_tokens, call.output_tokens) == (812, 95)
    assert (call.cached_input_tokens, call.cache_creation_tokens, call.reasoning_tokens) == (
        512,
        64,
        30,
    )
    assert call.session_id == "conv-1"
    assert call.error_type == "timeout"
    assert call.duration_ms == 250.0
    assert call.service_name == "app"
    assert call.call_id == bytes(range(1, 9)).hex()
    assert call.trace_id == bytes(range(1, 17)).hex()
    assert call.attributes == {
        "gen_ai.response.finish_reasons": '["stop"]',
        "server.address": "api.openai.com",
    }


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {
                "llm.request.type": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.prompt_tokens": 10,
                "gen_ai.usage.completion_tokens": 4,
                "llm.usage.total_tokens": 14,
                "gen_ai.usage.cache_read_input_tokens": 3,
                "gen_ai.usage.reasoning_tokens": 2,
                "llm.is_streaming": True,
            },
            {
                "model": "gpt-4o-mini",
                "provider": "openai",
                "operation": "stream",
                "input_tokens": 10,
                "output_tokens": 4,
                "total_tokens": 14,
                "cached_input_tokens": 3,
                "reasoning_tokens": 2,
                "is_streaming": True,
            },
            id="openllmetry",
        ),
        pytest.param(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-2024-08-06",
                "llm.provider": "openai",
                "llm.system": "openai",
                "llm.token_count.prompt": 20,
                "llm.token_count.completion": 5,
                "llm.token_count.total": 25,
                "llm.token_count.prompt_details.cache_read": 8,
                "llm.token_count.prompt_details.cache_write": 2,
                "llm.token_count.completion_details.reasoning": 1,
                "session.id": "sess",
                "llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0}',
            },
            {
                "model": "gpt-4o-2024-08-06",
                "request_model": "gpt-4o",
                "provider": "openai",
                "operation": "chat",
                "input_tokens": 20,
                "output_tokens": 5,
                "total_tokens": 25,
                "cached_input_tokens": 8,
                "cache_creation_tokens": 2,
                "reasoning_tokens": 1,
                "session_id": "sess",
            },
            id="openinference",
        ),
        pytest.param(
            {
                "openinference.span.kind": "EMBEDDING",
                "llm.invocation_parameters": '{"model": "e5"}',
            },
            {"model": "e5", "request_model": "e5", "operation": "embed"},
            id="openinference-model-from-invocation-parameters",
        ),
        pytest.param(
            {
                "model.requested": "router/auto",
                "llm.model": "gpt-4o",
                "llm.provider": "openai",
                "llm.usage.prompt_tokens": 100,
                "llm.usage.completion_tokens": 10,
                "llm.usage.total_tokens": 110,
                "llm.usage.cached_input_tokens": 40,
                "llm.usage.cache_creation_tokens": 5,
                "llm.usage.reasoning_tokens": 3,
                "llm.time_to_first_token": 120.5,
                "llm.duration_ms": 900.25,
                "llm.is_streaming": False,
                "plano.session_id": "ps",
                "plano.route.name": "fast",
                "routing.strategy": "latency",
                "routing.selection_reason": "p95",
                "http.status_code": 200,
                "request_id": "r-9",
            },
            {
                "model": "gpt-4o",
                "request_model": "router/auto",
                "input_tokens": 100,
                "output_tokens": 10,
                "total_tokens": 110,
                "cached_input_tokens": 40,
                "cache_creation_tokens": 5,
                "reasoning_tokens": 3,
                "ttft_ms": 120.5,
                "duration_ms": 900.25,
                "is_streaming": False,
                "session_id": "ps",
                "route_name": "fast",
                "routing_strategy": "latency",
                "routing_reason": "p95",
                "status_code": 200,
                "call_id": "r-9",
            },
            id="plano-gateway",
        ),
        pytest.param(
            {
                "llm.provider": "anthropic",
                "llm.model": "claude-sonnet-4-5",
                "llm.operation": "chat",
                "llm.latency_ms": 321.0,
                "llm.input_tokens": 7,
                "llm.output_tokens": 8,
                "llm.cost_usd": 0.5,
                "llm.cache_hit": "semantic",
                "llm.tool_calls": 2,
                "llm.error_type": "APIError",
            },
            {
                "model": "claude-sonnet-4-5",
                "provider": "anthropic",
                "duration_ms": 321.0,
                "input_tokens": 7,
                "output_tokens": 8,
                "cost_usd": 0.5,
                "cache_hit": "semantic",
                "tool_calls": 2,
                "error_type": "APIError",
            },
            id="ractogateway-tracer",
        ),
        pytest.param(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5",
                "gen_ai.usage.input_tokens": 900,
                "gen_ai.usage.output_tokens": 60,
                "gen_ai.usage.cache_read.input_tokens": 500,
                "gen_ai.usage.cache_write.input_tokens": 300,
                "gen_ai.usage.reasoning.output_tokens": 20,
                "gen_ai.response.time_to_first_chunk": 0.25,
                "gen_ai.request.stream": True,
            },
            {
                "provider": "anthropic",
                "operation": "stream",
                "cached_input_tokens": 500,
                "cache_creation_tokens": 300,
                "reasoning_tokens": 20,
                "ttft_ms": 250.0,
                "is_streaming": True,
            },
            id="genai-2026",
        ),
        pytest.param(
            {
                "telemetry.sdk.name": "openlit",
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.stream": True,
                "gen_ai.server.time_to_first_token": 0.125,
                "gen_ai.usage.input_tokens": 812,
                "gen_ai.usage.output_tokens": 95,
                "gen_ai.client.token.usage": 907,
                "gen_ai.usage.cost": 0.0002,
            },
            {
                "provider": "openai",
                "operation": "stream",
                "is_streaming": True,
                "ttft_ms": 125.0,
                "total_tokens": 907,
                "cost_usd": 0.0002,
                "price_version": None,
            },
            id="openlit",
        ),
        pytest.param(
            {
                "telemetry.sdk.name": "openlit",
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.is_stream": True,
                "gen_ai.server.ttft": 0.5,
                "gen_ai.usage.total_tokens": 14,
                "gen_ai.usage.cost": 0.25,
            },
            {
                "provider": "openai",
                "operation": "stream",
                "is_streaming": True,
                "ttft_ms": 500.0,
                "total_tokens": 14,
                "cost_usd": 0.25,
            },
            id="openlit-older-keys",
        ),
    ],
)
def test_other_conventions(attributes: dict[str, object], expected: dict[str, object]) -> None:
    """OpenLLMetry, OpenInference, the Plano gateway, the RactoGateway tracer, the 2026 GenAI
    names and OpenLIT are read."""
    call = span_to_llm_call(llm_span(attributes), service_name=None)
    assert call is not None
    assert {name: getattr(call, name) for name in expected} == expected
    assert set(call.attributes) <= {"telemetry.sdk.name"}


_CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(
            {"user.id": "u1", "gen_ai.conversation.id": "c1", "gen_ai.agent.name": "planner",
             "tag.tags": ["beta", "gold", "beta"]},
            {"user_id": "u1", "session_id": "c1", "agent_name": "planner",
             "tags": ("beta", "gold")},
            id="otel-genai-openinference",
        ),
        pytest.param(
            {"enduser.id": "u2", "session.id": "s2", "agent.name": "writer"},
            {"user_id": "u2", "session_id": "s2", "agent_name": "writer", "tags": ()},
            id="older-otel-openinference",
        ),
        pytest.param(
            {"traceloop.association.properties.user_id": "u3",
             "traceloop.association.properties.session_id": "s3"},
            {"user_id": "u3", "session_id": "s3"},
            id="openllmetry-association-properties",
        ),
        pytest.param(
            {"langfuse.user.id": "u4", "langfuse.session.id": "s4",
             "langfuse.trace.tags": '["a", "b"]'},
            {"user_id": "u4", "session_id": "s4", "tags": ("a", "b")},
            id="langfuse-json-tags",
        ),
        pytest.param({"tag.tags": "solo"}, {"tags": ("solo",)}, id="one-tag-as-text"),
        pytest.param(
            {"user.id": "first", "enduser.id": "second"}, {"user_id": "first"}, id="precedence"
        ),
    ],
)  # fmt: skip
def test_users_sessions_agents_and_tags_in_every_convention(
    attributes: dict[str, object], expected: dict[str, object]
) -> None:
    """User, session, agent and tags are read from each convention's keys, none kept twice
    as an extra attribute."""
    call = span_to_llm_call(llm_span({**_CHAT, **attributes}), service_name=None)
    assert call is not None
    assert {name: getattr(call, name) for name in expected} == expected
    assert call.attributes == {}


@pytest.mark.parametrize(
    ("value", "defect"),
    [
        pytest.param(["ok", 3], "bad_value", id="not-all-text"),
        pytest.param(["x" * 257], "bad_value", id="tag-too-long"),
        pytest.param([f"t{i}" for i in range(65)], "bad_value", id="too-many"),
        pytest.param("[not json", "bad_value", id="bad-json-text"),
        pytest.param(7, "wrong_type", id="a-number"),
    ],
)
def test_bad_tags_are_counted_and_the_call_kept(value: object, defect: str) -> None:
    defects: dict[str, int] = {}
    span = llm_span({**_CHAT, "tag.tags": value})
    call = convert_span(lean_span(span), None, False, defects)
    assert isinstance(call, LLMCall) and call.tags == ()
    assert defects == {defect: 1}


def _exception_event(span: Span, message: str, name: str = "exception") -> None:
    event = span.events.add(name=name, time_unix_nano=span.end_time_unix_nano)
    event.attributes.extend(
        [
            KeyValue(key="exception.type", value=AnyValue(string_value="ValueError")),
            KeyValue(key="exception.message", value=AnyValue(string_value=message)),
        ]
    )


def test_error_message_from_the_status_description_then_the_exception_event() -> None:
    """A failed span's message: its status description, else its exception event's
    ``exception.message`` (``record_exception``), else an ``exception.message`` or
    ``error.message`` attribute; never for a span that did not fail; bounded."""
    error = Status(code=Status.STATUS_CODE_ERROR, message="upstream said no")
    span = llm_span(_CHAT, status=error)
    _exception_event(span, "from the event")
    assert span_to_llm_call(span, service_name=None).error_message == "upstream said no"  # type: ignore[union-attr]

    span = llm_span(_CHAT, status=Status(code=Status.STATUS_CODE_ERROR))
    _exception_event(span, "other", name="log")
    _exception_event(span, "from the event ✓")
    assert span_to_llm_call(span, service_name=None).error_message == "from the event ✓"  # type: ignore[union-attr]

    span = llm_span({**_CHAT, "exception.message": "an attribute"}, status=error)
    assert span_to_llm_call(span, service_name=None).error_message == "an attribute"  # type: ignore[union-attr]

    span = llm_span(_CHAT)  # ok: a message means nothing
    _exception_event(span, "handled and retried")
    assert span_to_llm_call(span, service_name=None).error_message is None  # type: ignore[union-attr]

    span = llm_span(_CHAT, status=Status(code=Status.STATUS_CODE_ERROR, message="é" * 5000))
    message = span_to_llm_call(span, service_name=None).error_message  # type: ignore[union-attr]
    assert message is not None and len(message) == MAX_ERROR_MESSAGE and message.endswith("…")


def test_cache_write_is_read_before_its_old_name() -> None:
    """gen_ai.usage.cache_write.input_tokens wins over cache_creation; either alone is read."""
    current = "gen_ai.usage.cache_write.input_tokens"
    old = "gen_ai.usage.cache_creation.input_tokens"
    for attributes, expected in (({current: 7, old: 9}, 7), ({old: 9}, 9), ({current: 7}, 7)):
        span = llm_span({"gen_ai.request.model": "m", **attributes})
        call = span_to_llm_call(span, service_name=None)
        assert call is not None
        assert call.cache_creation_tokens == expected


def test_precedence_first_valid_key_wins() -> None:
    """Gateway keys beat GenAI keys; an invalid higher-precedence value falls through."""
    defects: dict[str, int] = {}
    span = llm_span(
        {
            "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": 5,
            "llm.usage.prompt_tokens": 9,
            "llm.usage.completion_tokens": -1,
            "gen_ai.usage.output_tokens": 3,
        }
    )
    call = convert_span(lean_span(span), None, False, defects)
    assert isinstance(call, LLMCall)
    assert (call.input_tokens, call.output_tokens) == (9, 3)
    assert defects == {"negative": 1}


def test_precedence_order_documented() -> None:
    """Every field lists our / gateway keys before GenAI, and GenAI before OpenInference."""
    keys = FIELD_KEYS["input_tokens"]
    assert keys.index("llm.usage.prompt_tokens") < keys.index("gen_ai.usage.input_tokens")
    assert keys.index("gen_ai.usage.input_tokens") < keys.index("llm.token_count.prompt")


@pytest.mark.parametrize(
    ("value", "defect"),
    [
        pytest.param(AnyValue(int_value=-5), "negative", id="negative"),
        pytest.param(AnyValue(int_value=MAX_TOKENS + 1), "too_large", id="above-2**53"),
        pytest.param(AnyValue(double_value=math.nan), "non_finite", id="nan"),
        pytest.param(AnyValue(double_value=math.inf), "non_finite", id="inf"),
        pytest.param(AnyValue(double_value=1.5), "wrong_type", id="fractional"),
        pytest.param(AnyValue(string_value="many"), "wrong_type", id="text"),
        pytest.param(AnyValue(bool_value=True), "wrong_type", id="bool"),
    ],
)
def test_bad_token_values_become_none_and_count(value: AnyValue, defect: str) -> None:
    """Bad token counts leave the field None, keep the call, and count the defect by kind."""
    span = llm_span({"gen_ai.request.model": "m"})
    span.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=value))
    defects: dict[str, int] = {}
    call = convert_span(lean_span(span), None, False, defects)
    assert isinstance(call, LLMCall)
    assert call.input_tokens is None
    assert defects == {defect: 1}


@pytest.mark.parametrize(
    ("key", "value", "field", "defect"),
    [
        pytest.param(
            "gen_ai.usage.cache_write.input_tokens",
            AnyValue(int_value=-3),
            "cache_creation_tokens",
            "negative",
            id="cache-write-negative",
        ),
        pytest.param(
            "gen_ai.usage.cache_write.input_tokens",
            AnyValue(string_value="lots"),
            "cache_creation_tokens",
            "wrong_type",
            id="cache-write-text",
        ),
        pytest.param(
            "gen_ai.usage.reasoning.output_tokens",
            AnyValue(double_value=2.5),
            "reasoning_tokens",
            "wrong_type",
            id="reasoning-fractional",
        ),
        pytest.param(
            "gen_ai.response.time_to_first_chunk",
            AnyValue(double_value=-0.5),
            "ttft_ms",
            "negative",
            id="first-chunk-negative",
        ),
        pytest.param(
            "gen_ai.response.time_to_first_chunk",
            AnyValue(double_value=90_000.0),
            "ttft_ms",
            "too_large",
            id="first-chunk-beyond-a-day",
        ),
        pytest.param(
            "gen_ai.response.time_to_first_chunk",
            AnyValue(string_value="soon"),
            "ttft_ms",
            "wrong_type",
            id="first-chunk-text",
        ),
        pytest.param(
            "gen_ai.request.stream",
            AnyValue(string_value="true"),
            "is_streaming",
            "wrong_type",
            id="stream-text",
        ),
        pytest.param(
            "gen_ai.usage.cost",
            AnyValue(double_value=-0.01),
            "cost_usd",
            "negative",
            id="openlit-cost-negative",
        ),
        pytest.param(
            "gen_ai.usage.cost",
            AnyValue(double_value=math.inf),
            "cost_usd",
            "non_finite",
            id="openlit-cost-inf",
        ),
        pytest.param(
            "gen_ai.usage.cost",
            AnyValue(bool_value=True),
            "cost_usd",
            "wrong_type",
            id="openlit-cost-bool",
        ),
        pytest.param(
            "gen_ai.server.ttft",
            AnyValue(double_value=-1.0),
            "ttft_ms",
            "negative",
            id="openlit-ttft-negative",
        ),
        pytest.param(
            "gen_ai.server.time_to_first_token",
            AnyValue(double_value=math.nan),
            "ttft_ms",
            "non_finite",
            id="openlit-ttft-nan",
        ),
        pytest.param(
            "gen_ai.request.is_stream",
            AnyValue(int_value=1),
            "is_streaming",
            "wrong_type",
            id="openlit-stream-int",
        ),
        pytest.param(
            "gen_ai.client.token.usage",
            AnyValue(int_value=-907),
            "total_tokens",
            "negative",
            id="openlit-total-negative",
        ),
    ],
)
def test_bad_values_in_current_and_openlit_keys_count(
    key: str, value: AnyValue, field: str, defect: str
) -> None:
    """The 2026 GenAI keys and OpenLIT's keys are checked as the others: a bad value leaves the
    field None, keeps the call, and counts the defect by kind."""
    span = llm_span({"gen_ai.request.model": "m"})
    span.attributes.append(KeyValue(key=key, value=value))
    defects: dict[str, int] = {}
    call = convert_span(lean_span(span), None, False, defects)
    assert isinstance(call, LLMCall)
    assert getattr(call, field) is None
    assert defects == {defect: 1}


def test_bad_durations_and_strings() -> None:
    """Durations beyond a day or negative, long model names and bad statuses are defects."""
    defects: dict[str, int] = {}
    span = llm_span(
        {
            "gen_ai.request.model": "m",
            "gen_ai.response.model": "x" * 600,
            "llm.duration_ms": 86_400_001.0,
            "llm.time_to_first_token": -3.0,
            "asynctelemetry.status": "exploded",
            "http.status_code": 1234,
        },
        end_time_unix_nano=1_767_225_600_000_000_000 + 2 * 86_400 * 10**9,
    )
    call = convert_span(lean_span(span), None, False, defects)
    assert isinstance(call, LLMCall)
    assert call.model == "m"
    assert (call.duration_ms, call.ttft_ms, call.status_code, call.status) == (
        None,
        None,
        None,
        "ok",
    )
    assert defects == {"too_long": 1, "too_large": 2, "negative": 1, "bad_value": 2}


@pytest.mark.parametrize(
    "when",
    [
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
        datetime(2106, 2, 7, 6, 28, 15, 999999, tzinfo=UTC),  # the last of the float path
        datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC),  # the first past it
        datetime(2262, 4, 10, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_start_times_are_exact_to_the_microsecond(when: datetime) -> None:
    """A span's start becomes the call's timestamp to the microsecond, on both sides of the
    float fast path's bound (2**32 s), nanoseconds cut."""
    start = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000 + 999
    span = llm_span({"gen_ai.request.model": "m"}, start_time_unix_nano=start)
    call = convert_span(lean_span(span), None, False, {})
    assert isinstance(call, LLMCall) and call.timestamp == when


def test_string_numbers_and_integral_doubles_are_accepted() -> None:
    """Token counts sent as doubles (JSON exporters) or decimal text are read exactly."""
    span = llm_span({"gen_ai.request.model": "m"})
    span.attributes.append(
        KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(double_value=12.0))
    )
    span.attributes.append(
        KeyValue(key="gen_ai.usage.output_tokens", value=AnyValue(string_value="7"))
    )
    call = span_to_llm_call(span, service_name=None)
    assert call is not None
    assert (call.input_tokens, call.output_tokens) == (12, 7)


def test_failed_call_without_response_model_counts() -> None:
    """A failed call with only a requested model is a call, with status error from the span."""
    span = llm_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "error.type": "APITimeoutError",
        },
        status=Status(code=Status.STATUS_CODE_ERROR, message="timed out"),
    )
    call = span_to_llm_call(span, service_name=None)
    assert call is not None
    assert (call.model, call.status, call.error_type) == ("gpt-4o", "error", "APITimeoutError")


@pytest.mark.parametrize(
    ("attributes", "message", "expected"),
    [
        pytest.param({}, "429 Too Many Requests", 429, id="status-message"),
        pytest.param({}, "  503", 503, id="bare-code"),
        pytest.param({"http.response.status_code": 400}, "429 Too Many Requests", 400, id="attr"),
        pytest.param({}, "timed out after 30 s", None, id="no-code"),
        pytest.param({}, "4290 things", None, id="not-a-status"),
        pytest.param({}, "\udcff 429", None, id="not-at-start"),
    ],
)
def test_http_status_from_the_span_status_message(
    attributes: dict[str, object], message: str, expected: int | None
) -> None:
    """The HTTP status a span's status message starts with is the call's status_code, unless
    an http.*status_code attribute gives one."""
    span = llm_span(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", **attributes},
        status=Status(code=Status.STATUS_CODE_ERROR),
    )
    span.status.message = message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    call = span_to_llm_call(span, service_name=None)
    assert call is not None and call.status == "error"
    assert call.status_code == expected


def test_a_status_message_that_is_not_utf8_costs_nothing() -> None:
    """Bytes that are not UTF-8 in a status message do not fail the span's request."""
    span = llm_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    raw = bytearray(span.SerializeToString())
    raw += b"\x7a\x06" + b"\x12\x04\xff\xfe42"  # status { message: b"\xff\xfe42" }
    lean = lean_span(Span.FromString(bytes(span.SerializeToString())))
    lean.MergeFromString(bytes(raw[len(span.SerializeToString()) :]))
    row = convert_row(lean, None, False, {})
    assert isinstance(row, tuple)


@pytest.mark.parametrize(
    ("attributes", "verdict"),
    [
        pytest.param({"http.method": "GET", "http.status_code": 200}, None, id="http-span"),
        pytest.param(
            {"gen_ai.operation.name": "execute_tool", "gen_ai.request.model": "m"}, None, id="tool"
        ),
        pytest.param(
            {"openinference.span.kind": "CHAIN", "llm.model_name": "m"}, None, id="oi-chain"
        ),
        pytest.param({"gen_ai.operation.name": "chat"}, REJECTED, id="declared-no-model"),
        pytest.param(
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": ""},
            REJECTED,
            id="empty-model",
        ),
        pytest.param({"openinference.span.kind": "LLM"}, REJECTED, id="oi-llm-no-model"),
    ],
)
def test_what_is_not_a_call(attributes: dict[str, object], verdict: object) -> None:
    """Non-LLM spans are ignored (None); LLM spans without a model are rejected and counted."""
    defects: dict[str, int] = {}
    assert convert_span(lean_span(llm_span(attributes)), None, False, defects) is verdict
    assert defects == ({"no_model": 1} if verdict is REJECTED else {})


CONTENT = {
    "gen_ai.input.messages": '[{"role": "user"}]',
    "gen_ai.output.messages": "[]",
    "gen_ai.prompt.0.content": "hello",
    "gen_ai.completion.0.content": "hi",
    "input.value": "hello",
    "output.value": "hi",
    "llm.input_messages.0.message.content": "hello",
    "llm.output_messages.0.message.content": "hi",
    "embedding.embeddings.0.embedding.text": "hello",
    "gen_ai.content.reasoning": "thinking",  # OpenLIT
    "gen_ai.tool.args": '{"city": "Paris"}',
    "gen_ai.content.revised_prompt": "a cat",
}


def test_content_dropped_unless_captured() -> None:
    """Prompt and completion attributes of every convention are dropped by default."""
    span = llm_span({"gen_ai.request.model": "m", "app.kept": 1, **CONTENT})
    private = span_to_llm_call(span, service_name=None)
    captured = span_to_llm_call(span, service_name=None, capture_content=True)
    assert private is not None and captured is not None
    assert private.attributes == {"app.kept": 1}
    assert captured.attributes == {"app.kept": 1, **CONTENT}


def test_attribute_bounds() -> None:
    """Extra attributes stop at MAX_ATTRIBUTES; long strings are cut; maps are not kept."""
    attributes: dict[str, object] = {
        "gen_ai.request.model": "m",
        "long": "y" * (MAX_ATTRIBUTE_LENGTH + 10),
    }
    attributes |= {f"extra.{i}": i for i in range(MAX_ATTRIBUTES + 20)}
    span = llm_span(attributes)
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="a", value=AnyValue(int_value=1)))
    span.attributes.insert(1, KeyValue(key="nested", value=nested))
    defects: dict[str, int] = {}
    call = convert_span(lean_span(span), None, False, defects)
    assert isinstance(call, LLMCall)
    assert len(call.attributes) == MAX_ATTRIBUTES
    assert call.attributes["long"] == "y" * MAX_ATTRIBUTE_LENGTH
    assert "nested" not in call.attributes
    assert defects == {
        "attribute_truncated": 1,
        "attribute_unsupported": 1,
        "attributes_dropped": 21,
    }
    LLMCall.model_validate(call.model_dump())  # the trusted record passes full validation


def test_kept_cost_and_pricing() -> None:
    """A span's own llm.cost_usd is kept; otherwise the price table prices it by the one rule:
    its response model, then its request model."""
    from asynctelemetry import ModelPricing

    table = PriceTable.default().with_overrides(
        {"m": ModelPricing(input_per_million=10_000.0, output_per_million=0.0)}
    )
    priced = span_to_llm_call(
        llm_span({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3}),
        service_name=None,
        price_table=table,
    )
    fallback = span_to_llm_call(
        llm_span(
            {
                "gen_ai.request.model": "m",
                "gen_ai.response.model": "m-finetune-unknown",
                "gen_ai.usage.input_tokens": 3,
            }
        ),
        service_name=None,
        price_table=table,
    )
    kept = span_to_llm_call(
        llm_span(
            {"gen_ai.request.model": "m", "llm.cost_usd": 9.5, "asynctelemetry.price_version": "v0"}
        ),
        service_name=None,
        price_table=table,
    )
    unknown = span_to_llm_call(
        llm_span({"gen_ai.request.model": "unknown-model-x"}), service_name=None, price_table=table
    )
    assert priced is not None and kept is not None and unknown is not None
    assert fallback is not None and fallback.model == "m-finetune-unknown"
    assert (priced.cost_usd, priced.price_version) == (pytest.approx(0.03), table.version)
    assert (fallback.cost_usd, fallback.price_version) == (pytest.approx(0.03), table.version)
    assert (kept.cost_usd, kept.price_version) == (9.5, "v0")
    assert (unknown.cost_usd, unknown.price_version) == (None, None)


def test_priced_with_the_default_table() -> None:
    """The real default PriceTable prices a GenAI span that carries no cost."""

    span = llm_span({"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1_000_000})
    call = span_to_llm_call(span, service_name=None, price_table=PriceTable.default())
    assert call is not None
    assert call.cost_usd is not None and call.cost_usd > 0
    assert call.price_version == PriceTable.default().version


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=8),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=5), st.floats()), max_size=4),
)
_keys = st.one_of(
    st.sampled_from(sorted({k for keys in FIELD_KEYS.values() for k in keys})), st.text(max_size=20)
)


def _value(value: object) -> AnyValue:
    return AnyValue() if value is None else any_value(value)


@settings(max_examples=300, deadline=None)
@given(
    attributes=st.lists(st.tuples(_keys, _scalars), max_size=25),
    start=st.integers(0, 2**64 - 1),
    end=st.integers(0, 2**64 - 1),
    status=st.sampled_from([0, 1, 2, 7]),
)
def test_converter_never_raises(
    attributes: list[tuple[str, object]], start: int, end: int, status: int
) -> None:
    """Whatever the attribute values, the converter returns a valid record, None or REJECTED."""
    span = Span(start_time_unix_nano=start, end_time_unix_nano=end)
    span.status.code = status  # type: ignore[assignment]
    span.attributes.extend(KeyValue(key=k, value=_value(v)) for k, v in attributes)
    result = convert_span(lean_span(span), "svc", False, {})
    if isinstance(result, LLMCall):
        LLMCall.model_validate(result.model_dump())
    else:
        assert result is None or result is REJECTED


def test_span_of_helper_matches_tracer_span_shape() -> None:
    """The test encoder writes status ERROR for failed calls (as the tracer does)."""
    call = varied_calls()[1]
    assert call.status == "error"
    assert span_of(call).status.code == Status.STATUS_CODE_ERROR


@settings(max_examples=300, deadline=None)
@given(raw_attributes=st.lists(st.binary(max_size=40), max_size=12))
def test_converter_never_raises_on_malformed_attribute_bytes(raw_attributes: list[bytes]) -> None:
    """The lean parser does not look inside attributes; garbage there is counted, not raised."""
    from asynctelemetry._collector._wire import LeanSpan

    span = LeanSpan(start_time_unix_nano=1, end_time_unix_nano=2)
    good = KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="m"))
    span.attributes.extend([good.SerializeToString(), *raw_attributes])
    result = convert_span(span, "svc", False, {})
    assert isinstance(result, LLMCall)
    LLMCall.model_validate(result.model_dump())


def test_repeated_attributes_come_from_the_cache_with_the_same_result() -> None:
    """Converting the same span twice (second time from the attribute cache) gives equal calls;
    defects are counted every time, not only on first sight."""
    span = lean_span(llm_span({**GENAI, "gen_ai.usage.output_tokens": -1}))
    first: dict[str, int] = {}
    second: dict[str, int] = {}
    a = convert_span(span, "s", False, first)
    b = convert_span(span, "s", False, second)
    assert isinstance(a, LLMCall) and isinstance(b, LLMCall)
    assert a.model_dump() == b.model_dump()
    assert first == second == {"negative": 1}


@settings(max_examples=300, deadline=None)
@given(
    kvs=hardening_attributes(max_size=30),
    model=st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "no-such-model"]),
    capture=st.booleans(),
)
def test_planned_rows_equal_the_slow_path(kvs: list[KeyValue], model: str, capture: bool) -> None:
    """A span of a planned shape is laid out by its compiled row getter; whatever the
    attributes, that row (and the defects counted) equals what the one-attribute-at-a-time
    path builds for the same span."""
    span = llm_span({"gen_ai.request.model": model})
    span.attributes.extend(kvs)
    lean = lean_span(span)
    cache = attribute_cache(capture)
    for _ in range(2):  # the second time the shape's plan and builder exist
        fast_defects: dict[str, int] = {}
        fast = convert_row(lean, "svc", capture, fast_defects)
        slow_defects: dict[str, int] = {}
        entries = list(map(cache.__getitem__, lean.attributes))
        slow = _convert_slowly(entries, lean, "svc", slow_defects)
        assert fast == slow
        assert fast_defects == slow_defects


def test_rows_read_as_the_records_they_stand_for() -> None:
    """A converted request's Rows batch reads as records equal to span_to_llm_call's, and a
    MemoryStore keeps the rows as they are."""
    spans = [
        llm_span(
            {"gen_ai.request.model": f"gpt-4o-{i % 2}", "app.i": i, "gen_ai.usage.input_tokens": i},
            span_id=bytes([i + 1] * 8),  # distinct calls: a store keeps one per call_id
        )
        for i in range(5)
    ]
    rows, received, ignored, rejected = convert_request(request_of(spans, "svc"), False, {})
    assert isinstance(rows, Rows) and (received, ignored, rejected) == (5, 0, 0)
    assert list(rows) == [span_to_llm_call(span, service_name="svc") for span in spans]
    assert rows[1].attributes == {"app.i": 1}
    store = MemoryStore(capacity=10)
    store.emit_nowait(rows)
    assert list(store._rows) == rows.rows
    assert [c.call_id for c in store.snapshot()] == [c.call_id for c in rows]
