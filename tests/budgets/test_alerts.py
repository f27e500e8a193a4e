"""Alerts: a rule fires once when it crosses, resolves once when it falls back (no flapping),
and a slow or failing receiver is retried without holding anything up."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from asynctelemetry import (
    Alert,
    AlertEvent,
    AlertMonitor,
    AsyncTracer,
    Budget,
    ConfigError,
    MemoryStore,
)
from asynctelemetry._alerts import parse_alert

from ..conftest import T0, make_call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

NOW = T0 + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"metric": "latency", "above": 1}, "metric", id="metric"),
        pytest.param({"metric": "cost", "above": float("nan")}, "above", id="nan"),
        pytest.param({"metric": "cost", "above": 1, "window": "5 minutes"}, "window", id="window"),
        pytest.param({"metric": "cost", "above": 1, "by": "user"}, "by", id="by"),
        pytest.param({"metric": "cost", "above": 1, "min_calls": 0}, "min_calls", id="min"),
    ],
)
def test_bad_rules_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    """An unknown metric or key, a non-finite threshold, a window that is no duration."""
    with pytest.raises(ConfigError, match=message):
        Alert(**kwargs)


def test_cli_rule_form() -> None:
    """``metric>threshold/window`` as the CLI's --alert takes it; a bad one says the form."""
    rule = parse_alert("error_rate>0.05/10m")
    assert (rule.metric, rule.above, rule.window, rule.name) == (
        "error_rate",
        0.05,
        "10m",
        "error_rate>0.05/10m",
    )
    assert parse_alert("cost > 2.5").window == "5m"
    with pytest.raises(ConfigError, match="metric>threshold"):
        parse_alert("error_rate<0.05")


async def _noop(event: AlertEvent) -> None:
    pass


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_notify_must_be_callable_or_http() -> None:
    """A webhook that is not http(s), or a budget rule without budgets: refused at once."""
    store = MemoryStore()
    with pytest.raises(ConfigError, match="http"):
        AlertMonitor(store, [Alert("calls", above=1)], notify="ftp://example.org/hook")
    with pytest.raises(ConfigError, match="budgets"):
        AlertMonitor(store, [Alert("budget", above=0.8)], notify=_noop)


async def _calls(store: MemoryStore, start: int, errors: int, ok: int) -> None:
    base = NOW - timedelta(minutes=3)
    for i in range(errors + ok):
        call = make_call(
            start + i,
            timestamp=base + timedelta(seconds=i % 60),
            status="error" if i < errors else "ok",
        )
        await store.add(call)


async def test_fires_once_and_resolves_once_without_flapping() -> None:
    """error_rate over 5 minutes: above 20% fires once; staying above sends nothing; 19% (in
    the 10% band under the threshold) does not resolve; 10% resolves once."""
    store = MemoryStore(capacity=10_000)
    seen: list[AlertEvent] = []

    async def notify(event: AlertEvent) -> None:
        seen.append(event)

    monitor = AlertMonitor(store, [Alert("error_rate", above=0.2, window="5m")], notify=notify)
    try:  # evaluated by hand at NOW (not started: its own rounds would use the clock)
        await monitor.evaluate(NOW)
        await _calls(store, 0, errors=5, ok=5)  # 50%
        assert [e.state for e in await monitor.evaluate(NOW)] == ["firing"]
        assert await monitor.evaluate(NOW) == []
        await _calls(store, 100, errors=0, ok=16)  # 5/26 = 19.2%: inside the band
        assert await monitor.evaluate(NOW) == []
        await _calls(store, 200, errors=0, ok=24)  # 5/50 = 10%
        [resolved] = await monitor.evaluate(NOW)
        await _until(lambda: len(seen) == 2)
    finally:
        await monitor.aclose()
    assert resolved.state == "resolved"
    assert resolved.value == pytest.approx(0.1)
    assert [(e.state, e.alert, e.key) for e in seen] == [
        ("firing", "error_rate>0.2/5m", None),
        ("resolved", "error_rate>0.2/5m", None),
    ]
    assert seen[0].value == pytest.approx(0.5)
    assert monitor.stats.notified == 2


async def test_each_key_fires_on_its_own() -> None:
    """A rule with ``by`` fires for the models that cross it, not the others."""
    store = MemoryStore(capacity=10_000)
    base = NOW - timedelta(minutes=1)
    for i in range(30):
        model = "gpt-4o" if i < 20 else "claude-sonnet-4-5"
        await store.add(make_call(i, timestamp=base, model=model, provider="x", cost_usd=0.1))
    monitor = AlertMonitor(store, [Alert("cost", above=1.5, window="5m", by="model")], notify=_noop)
    events = await monitor.evaluate(NOW)
    assert [(e.key, round(e.value, 6)) for e in events] == [("gpt-4o", 2.0)]
    assert monitor.firing() == [("cost>1.5/5m", "gpt-4o", pytest.approx(2.0))]
    await monitor.aclose()


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]], dict[str, int]]]:
    """A local webhook receiver answering 500 twice, then 200; it keeps what it accepted."""
    received: list[dict[str, Any]] = []
    hits = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        hits["n"] += 1
        if hits["n"] <= 2:
            return web.Response(status=500)
        assert request.headers["authorization"] == "Bearer s3cret"
        received.append(json.loads(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", received, hits
    await runner.cleanup()


async def test_webhook_is_retried_until_it_takes_the_event(
    webhook: tuple[str, list[dict[str, Any]], dict[str, int]],
) -> None:
    """A webhook answering 500 gets the event again with backoff; it receives it once, as
    JSON with the rule, value, window and key."""
    url, received, hits = webhook
    store = MemoryStore()
    await store.add(make_call(1, timestamp=NOW - timedelta(seconds=30)))
    rule = Alert("calls", above=0, window="1m", name="any-call")
    monitor = AlertMonitor(store, [rule], notify=url, headers={"authorization": "Bearer s3cret"})
    try:
        await monitor.evaluate(NOW)
        await _until(lambda: bool(received))
    finally:
        await monitor.aclose()
    assert hits["n"] == 3
    assert received == [
        {
            "state": "firing",
            "alert": "any-call",
            "metric": "calls",
            "value": 1.0,
            "above": 0.0,
            "window": "1m",
            "key": None,
            "at": NOW.isoformat(),
        }
    ]


async def test_a_hanging_receiver_never_holds_evaluations() -> None:
    """A notify that never returns: evaluations go on at once; closing gives up on it after
    ``close_timeout`` and counts what was not delivered."""
    store = MemoryStore()
    started = asyncio.Event()

    async def hang(event: AlertEvent) -> None:
        started.set()
        await asyncio.sleep(3600)

    await store.add(make_call(1, timestamp=NOW - timedelta(seconds=30)))
    rules = [Alert("calls", above=0, window="1m"), Alert("errors", above=0.5, window="1m")]
    monitor = AlertMonitor(store, rules, notify=hang, close_timeout=0.2)
    await monitor.evaluate(NOW)
    await asyncio.wait_for(started.wait(), 5)
    begun = time.perf_counter()
    for i in range(20):
        await store.add(make_call(100 + i, timestamp=NOW - timedelta(seconds=5), status="error"))
        await monitor.evaluate(NOW)
    assert time.perf_counter() - begun < 1.0
    assert monitor.stats.firing == 2
    begun = time.perf_counter()
    await monitor.aclose()
    assert time.perf_counter() - begun < 2.0
    assert monitor.stats.notify_failed >= 1


async def test_budget_thresholds_are_alerts() -> None:
    """``Alert("budget", above=0.5)`` fires when a budget is more than half used."""
    async with AsyncTracer(budgets=[Budget(1.0, name="daily", per="day")]) as tracer:
        monitor = AlertMonitor(
            MemoryStore(), [Alert("budget", above=0.5, name="half")], notify=_noop, budgets=tracer
        )
        assert await monitor.evaluate(NOW) == []
        async with tracer.llm_call(model="m", estimate_usd=0.7):
            [event] = await monitor.evaluate(NOW)  # the reservation counts as used
        await monitor.aclose()
    assert (event.alert, event.key, event.value) == ("half", "daily", pytest.approx(0.7))


async def test_gauges_show_budgets_and_firing_rules() -> None:
    """With ``metrics=``, each evaluation sets ``budget_remaining_usd`` per budget and key and
    ``alerts_firing`` per rule, as a Prometheus scrape shows them."""
    from asynctelemetry.metrics import MetricsRecorder

    recorder = MetricsRecorder()
    store = MemoryStore()
    await store.add(make_call(1, timestamp=NOW - timedelta(seconds=30)))
    async with AsyncTracer(budgets=[Budget(2.0, by="user", name="users")]) as tracer:
        with tracer.context(user_id="bob"):
            async with tracer.llm_call(model="m", estimate_usd=0.5):
                monitor = AlertMonitor(
                    store,
                    [Alert("calls", above=0, window="1m", name="any"), Alert("errors", above=5)],
                    notify=_noop,
                    budgets=tracer,
                    metrics=recorder,
                )
                await monitor.evaluate(NOW)
                await monitor.aclose()
    text = recorder.generate_latest()
    assert 'asynctelemetry_budget_remaining_usd{budget="users",key="bob"} 1.5' in text
    assert 'asynctelemetry_alerts_firing{alert="any"} 1.0' in text
    assert 'asynctelemetry_alerts_firing{alert="errors>5/5m"} 0.0' in text
