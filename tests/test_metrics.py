"""Prometheus metrics: names, labels, buckets, cardinality, and /metrics served over HTTP."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from asynctelemetry import ConfigError
from asynctelemetry._pricing import ModelPricing, PriceTable
from asynctelemetry.metrics import (
    TIME_PER_OUTPUT_TOKEN_BUCKETS,
    TIME_TO_FIRST_TOKEN_BUCKETS,
    GatewayMetricsMiddleware,
    MetricsRecorder,
    PrometheusExporter,
)
from tests.conftest import make_call


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(text: str, name: str, **labels: str) -> float:
    return _samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_record_fills_every_contract_metric() -> None:
    """One call counts request, duration, each token type, cost, cache, tools, TTFT and TPOT."""
    recorder = MetricsRecorder()
    call = make_call(
        0,
        input_tokens=800,
        output_tokens=100,
        cached_input_tokens=500,
        cache_creation_tokens=20,
        reasoning_tokens=40,
        duration_ms=2100.0,
        ttft_ms=100.0,
        cost_usd=0.25,
        cache_hit="semantic",
        tool_calls=2,
    )
    await recorder.emit([call])
    text = recorder.generate_latest()
    ns = "asynctelemetry"
    base = {"provider": "openai", "model": "gpt-4o"}
    assert _value(text, f"{ns}_requests_total", operation="chat", status="ok", **base) == 1
    assert _value(text, f"{ns}_request_duration_seconds_sum", operation="chat", **base) == 2.1
    for token_type, count in [
        ("input", 800), ("output", 100), ("cached_input", 500), ("cache_creation", 20),
        ("reasoning", 40),
    ]:  # fmt: skip
        assert _value(text, f"{ns}_tokens_total", token_type=token_type, **base) == count
    assert _value(text, f"{ns}_cost_usd_total", **base) == 0.25
    assert _value(text, f"{ns}_cache_hits_total", cache_type="semantic") == 1
    assert _value(text, f"{ns}_tool_calls_total", tool_name="unknown") == 2
    ttft = f"{ns}_time_to_first_token_seconds_sum"
    assert _value(text, ttft, operation="chat", **base) == pytest.approx(0.1)
    tpot = f"{ns}_time_per_output_token_seconds_sum"
    assert _value(text, tpot, operation="chat", **base) == pytest.approx(0.02)


def test_histograms_use_the_genai_bucket_boundaries() -> None:
    """TTFT and TPOT buckets are the GenAI metric conventions' advisory boundaries."""
    recorder = MetricsRecorder()
    recorder.record(make_call(0))
    text = recorder.generate_latest()
    for metric, buckets in [
        ("time_to_first_token_seconds", TIME_TO_FIRST_TOKEN_BUCKETS),
        ("time_per_output_token_seconds", TIME_PER_OUTPUT_TOKEN_BUCKETS),
    ]:
        bounds = sorted(
            float(s.labels["le"])
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == f"asynctelemetry_{metric}_bucket"
        )
        assert bounds == [*buckets, float("inf")]
    assert TIME_TO_FIRST_TOKEN_BUCKETS[:3] == (0.001, 0.005, 0.01)
    assert TIME_PER_OUTPUT_TOKEN_BUCKETS[-1] == 2.5


def test_ractogateway_namespace_and_record_request() -> None:
    """namespace='ractogateway' gives its names; record_request prices with the table."""
    table = PriceTable.default().with_overrides(
        {"my-model": ModelPricing(input_per_million=1.0, output_per_million=2.0)}
    )
    metrics = GatewayMetricsMiddleware(price_table=table, namespace="ractogateway")

    @dataclass
    class ToolCallResult:
        name: str

    metrics.record_request(
        provider="openai", model="my-model", operation="chat", status="ok", latency_s=0.5,
        input_tokens=1_000_000, output_tokens=500_000,
        tool_calls=[ToolCallResult("search"), {"tool_name": "search"}, {"name": "calc"}],
    )  # fmt: skip
    metrics.record_cache_hit("exact")
    metrics.record_cache_miss("semantic")
    text = metrics.generate_latest()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {
        "ractogateway_requests", "ractogateway_request_duration_seconds",
        "ractogateway_tokens", "ractogateway_cost_usd", "ractogateway_cache_hits",
        "ractogateway_cache_misses", "ractogateway_tool_calls",
    } <= names  # fmt: skip
    base = {"provider": "openai", "model": "my-model"}
    assert _value(text, "ractogateway_cost_usd_total", **base) == pytest.approx(2.0)
    assert _value(text, "ractogateway_tool_calls_total", tool_name="search") == 2
    assert _value(text, "ractogateway_tool_calls_total", tool_name="calc") == 1
    assert _value(text, "ractogateway_cache_hits_total", cache_type="exact") == 1
    assert _value(text, "ractogateway_cache_misses_total", cache_type="semantic") == 1


def test_price_table_dict_is_overrides_on_the_default() -> None:
    """A dict price table overrides the default for record_request; record() counts the cost
    the record carries and never prices (an unpriced record adds no cost)."""
    metrics = MetricsRecorder(
        price_table={"gpt-4o": ModelPricing(input_per_million=10.0, output_per_million=0.0)}
    )
    metrics.record_request(
        provider="openai", model="gpt-4o", operation="chat", status="ok", latency_s=0.1,
        input_tokens=100_000,
    )  # fmt: skip
    metrics.record(make_call(0, input_tokens=100_000, output_tokens=0, cost_usd=None))
    metrics.record(make_call(3, input_tokens=100_000, output_tokens=0, cost_usd=7.0))
    text = metrics.generate_latest()
    cost = _value(text, "asynctelemetry_cost_usd_total", provider="openai", model="gpt-4o")
    assert cost == pytest.approx(1.0 + 7.0)


def test_bad_record_request_input_is_rejected() -> None:
    """Negative or non-finite latency and negative tokens are ValueErrors, nothing counted."""
    metrics = MetricsRecorder()
    args = {"provider": "p", "model": "m", "operation": "chat", "status": "ok"}
    for bad in ({"latency_s": -1.0}, {"latency_s": float("nan")},
                {"latency_s": 1.0, "input_tokens": -5}):  # fmt: skip
        with pytest.raises(ValueError):
            metrics.record_request(**args, **bad)  # type: ignore[arg-type]
    assert "asynctelemetry_requests_total{" not in metrics.generate_latest()


def test_model_label_cardinality_is_capped() -> None:
    """Beyond max_models distinct models, further ones are counted as 'other'."""
    metrics = MetricsRecorder(max_models=3)
    for i in range(10):
        metrics.record(make_call(0, model=f"model-{i}", cost_usd=None, input_tokens=None))
    text = metrics.generate_latest()
    models = {
        s.labels["model"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "asynctelemetry_requests_total"
    }
    assert models == {"model-0", "model-1", "model-2", "other"}
    assert _value(
        text, "asynctelemetry_requests_total", provider="openai", model="other",
        operation="chat", status="ok",
    ) == 7  # fmt: skip


def test_registries_are_isolated_by_default() -> None:
    """Two recorders do not collide; a shared registry can be passed explicitly."""
    first, second = MetricsRecorder(), MetricsRecorder()
    first.record(make_call(0))
    assert "gpt-4o" not in second.generate_latest()
    registry = CollectorRegistry()
    MetricsRecorder(registry=registry, namespace="a")
    MetricsRecorder(registry=registry, namespace="b")


async def _get(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return data


async def test_metrics_served_over_http_without_a_server_thread() -> None:
    """/metrics over real HTTP parses with prometheus-client's parser; no thread is left
    running (the scrape renders in a worker thread of the loop's executor, nothing else)."""
    recorder = MetricsRecorder()
    recorder.record(make_call(0))
    # Compare thread identities, not counts: a thread of an earlier test still winding down
    # (asyncio's executor shutdown, an aiosqlite worker) may end meanwhile and is not ours.
    before = set(threading.enumerate())
    async with PrometheusExporter(port=0, registry=recorder) as exporter:
        assert exporter.is_running and exporter.port > 0
        raw = await _get(exporter.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        started = set(threading.enumerate()) - before
        assert all(t.name.startswith("asyncio_") for t in started)
    assert not exporter.is_running
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    text = body.decode()
    assert _value(
        text, "asynctelemetry_requests_total", provider="openai", model="gpt-4o",
        operation="chat", status="ok",
    ) == 1  # fmt: skip


async def test_http_errors_and_hostile_clients() -> None:
    """404 elsewhere, 405 for POST, 400 for garbage; slow and oversized clients are cut off."""
    async with PrometheusExporter(port=0, registry=CollectorRegistry(), read_timeout=0.2) as exp:
        assert (await _get(exp.port, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await _get(exp.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert (await _get(exp.port, b"\x00\xff garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
        assert await _get(exp.port, b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 2000) == b""
        reader, writer = await asyncio.open_connection("127.0.0.1", exp.port)
        writer.write(b"GET /met")  # and then nothing: the read timeout closes it
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        ok = await _get(exp.port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200")
        assert exp.stats.bad_requests == 3


async def test_a_second_aclose_waits_for_the_first() -> None:
    """With a connection open, aclose() beside a running aclose() returns only once the first
    has ended the connection's handler and closed the server."""
    exporter = PrometheusExporter(port=0, registry=CollectorRegistry(), read_timeout=30)
    await exporter.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
    await asyncio.sleep(0.05)  # the server has a handler waiting for the request
    first = asyncio.create_task(exporter.aclose())
    await asyncio.sleep(0)
    await exporter.aclose()
    assert first.done() and not exporter.is_running
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_exporter_lifecycle() -> None:
    """start is idempotent, stop is safe twice, aclose refuses a later start."""
    exporter = PrometheusExporter(port=0, registry=CollectorRegistry())
    await exporter.stop()
    await exporter.start()
    port = exporter.port
    await exporter.start()
    assert exporter.port == port
    await exporter.stop()
    await exporter.stop()
    assert not exporter.is_running
    await exporter.aclose()
    with pytest.raises(Exception, match="closed"):
        await exporter.start()


def test_every_label_is_capped_and_the_series_are_bounded() -> None:
    """20,000 distinct operation names (and statuses, providers, models) give at most
    max_operations/max_models values of each label, "other" beyond, and at most max_series
    combinations: the exposition stays small whatever a client invents."""
    recorder = MetricsRecorder(max_models=5, max_operations=3, max_series=10)
    for i in range(20_000):
        recorder.record(
            make_call(i, operation=f"op-{i}", provider=f"p-{i % 7}", model=f"m-{i % 11}")
        )
        recorder.record_request(
            provider="openai", model="gpt-4o", operation=f"x-{i}", status=f"s-{i}", latency_s=0.1
        )
    text = recorder.generate_latest()
    labels: dict[str, set[str]] = {"operation": set(), "status": set(), "model": set()}
    combinations = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, seen in labels.items():
                if name in sample.labels:
                    seen.add(sample.labels[name])
            if sample.name == "asynctelemetry_requests_total":
                combinations.add(tuple(sorted(sample.labels.items())))
    assert len(labels["operation"]) <= 3 + 1 and "other" in labels["operation"]
    assert len(labels["status"]) <= 3 + 1 and len(labels["model"]) <= 5 + 1
    assert len(combinations) <= 10 + 1
    assert len(text.splitlines()) < 2_000
    requests = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "asynctelemetry_requests_total"
    )
    assert requests == 40_000, "nothing is lost: overflow is counted under other"


@pytest.mark.parametrize("field", ["max_operations", "max_series", "max_models"])
def test_label_caps_must_be_positive_ints(field: str) -> None:
    """A cap of 0 or a float is a ConfigError."""
    for bad in (0, 2.5):
        with pytest.raises(ConfigError):
            MetricsRecorder(**{field: bad})  # type: ignore[arg-type]


def test_model_label_is_the_requested_model_so_errors_share_its_series() -> None:
    """A call answered by a dated snapshot and a failed call of the same requested model count
    on one ``model`` series; a call without a request model counts under its model."""
    recorder = MetricsRecorder(registry=CollectorRegistry())
    recorder.record(
        make_call(
            1,
            model="claude-sonnet-4-5-20250929",
            request_model="claude-sonnet-4-5",
            provider="anthropic",
            status="ok",
        )
    )
    recorder.record(
        make_call(
            2,
            model="claude-sonnet-4-5",
            request_model="claude-sonnet-4-5",
            provider="anthropic",
            status="error",
        )
    )
    recorder.record(make_call(3, model="gpt-4o", request_model=None, provider="openai"))
    text = recorder.generate_latest()
    assert "claude-sonnet-4-5-20250929" not in text
    for status in ("ok", "error"):
        line = (
            f'asynctelemetry_requests_total{{model="claude-sonnet-4-5",operation="chat",'
            f'provider="anthropic",status="{status}"}} 1.0'
        )
        assert line in text
    assert 'model="gpt-4o"' in text
