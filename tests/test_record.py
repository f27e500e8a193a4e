"""LLMCall: validation, derived figures, JSON round trip and the trusted constructor."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from asynctelemetry import LLMCall, SpanRecord
from tests.conftest import T0, make_call


def test_json_round_trip_is_exact() -> None:
    """model_dump_json / model_validate_json give back an equal record, every field."""
    call = make_call(
        3,
        cached_input_tokens=50,
        reasoning_tokens=7,
        attributes={"a": "x", "b": 1, "c": 1.5, "d": True},
        trace_id="ab" * 16,
        span_id="cd" * 8,
        price_version="genai-prices 1",
        ttft_ms=0.1 + 0.2,
    )
    again = LLMCall.model_validate_json(call.model_dump_json())
    assert again == call
    assert again.attributes == {"a": "x", "b": 1, "c": 1.5, "d": True}
    assert type(again.attributes["b"]) is int and type(again.attributes["d"]) is bool


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("input_tokens", -1, id="negative-tokens"),
        pytest.param("output_tokens", 2**53 + 1, id="absurd-tokens"),
        pytest.param("duration_ms", -0.5, id="negative-duration"),
        pytest.param("duration_ms", math.inf, id="infinite-duration"),
        pytest.param("ttft_ms", math.nan, id="nan-ttft"),
        pytest.param("cost_usd", -1.0, id="negative-cost"),
        pytest.param("tool_calls", -2, id="negative-tool-calls"),
        pytest.param("status", "weird", id="unknown-status"),
        pytest.param("model", "", id="empty-model"),
        pytest.param("attributes", {"x": math.inf}, id="non-finite-attribute"),
    ],
)
def test_bad_numbers_raise_value_error(field: str, value: object) -> None:
    """Local callers get ValueError for negative, absurd or non-finite values."""
    with pytest.raises(ValueError):
        make_call(1, **{field: value})


def test_too_many_attributes_raise() -> None:
    """Attributes are bounded in count and string length."""
    with pytest.raises(ValueError, match="at most 128"):
        make_call(1, attributes={f"k{i}": i for i in range(129)})
    with pytest.raises(ValueError, match="longer than"):
        make_call(1, attributes={"k": "x" * 5000})


def test_timestamps_are_utc() -> None:
    """Aware timestamps are converted to UTC; naive ones are taken as UTC."""
    paris = timezone(timedelta(hours=1))
    call = make_call(0, timestamp=datetime(2026, 1, 1, 13, 0, tzinfo=paris))
    assert call.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert call.timestamp.utcoffset() == timedelta(0)
    naive = make_call(0, timestamp=datetime(2026, 1, 1, 12, 0))
    assert naive.timestamp.tzinfo is not None and naive.timestamp == call.timestamp


def test_derived_figures() -> None:
    """latency_ms, tpt_ms and tokens_per_sec follow their definitions."""
    call = make_call(0, duration_ms=1100.0, ttft_ms=100.0, output_tokens=50)
    assert call.latency_ms == 1100.0
    assert call.tpt_ms == pytest.approx(20.0)
    assert call.tokens_per_sec == pytest.approx(50.0)
    assert make_call(0, output_tokens=0).tpt_ms is None
    assert make_call(0, duration_ms=None).tokens_per_sec is None
    no_ttft = make_call(0, duration_ms=500.0, ttft_ms=None, output_tokens=10)
    assert no_ttft.tpt_ms == pytest.approx(50.0)


def test_trusted_equals_validated() -> None:
    """LLMCall.trusted builds the same record as validation, with defaults filled in."""
    values = {"call_id": "x", "timestamp": T0, "model": "gpt-4o", "input_tokens": 3}
    trusted = LLMCall.trusted(values)
    assert trusted == LLMCall.model_validate(values)
    assert trusted.operation == "chat" and trusted.tool_calls == 0 and trusted.attributes == {}
    other = LLMCall.trusted({"call_id": "y", "timestamp": T0, "model": "m"})
    assert other.attributes is not trusted.attributes  # no shared mutable default
    copy = trusted.model_copy(update={"source": "replay"})
    assert copy.source == "replay" and trusted.source == "tracer"


def test_records_are_immutable_and_span_record_is_an_alias() -> None:
    """Records are frozen; SpanRecord is the RactoGateway name for LLMCall."""
    call = make_call(0)
    with pytest.raises(ValueError):
        call.model = "other"  # type: ignore[misc]
    assert SpanRecord is LLMCall
