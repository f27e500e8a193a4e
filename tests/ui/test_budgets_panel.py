"""Budgets and alerts on the dashboard: ``/api/budgets`` and the page's panel in Chromium."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from asynctelemetry import (
    Alert,
    AlertMonitor,
    AsyncTracer,
    Budget,
    BudgetExceededError,
    MemoryStore,
    ModelPricing,
)
from asynctelemetry.ui import Dashboard
from tests.conftest import T0, make_call

if TYPE_CHECKING:
    from .conftest import Served, Watched

TABLE = {"budget-model": ModelPricing(input_per_million=1.0, output_per_million=1.0)}


async def _spend(store: Any) -> None:
    budgets = [Budget(0.01, by="user", name="users"), Budget(1.0, per="day", name="daily")]
    async with AsyncTracer(store=store, price_table=TABLE, budgets=budgets) as tracer:
        for user, tokens in (("alice", 12_000), ("bob", 3_000), ("alice", 1_000)):
            try:
                with tracer.context(user_id=user):
                    async with tracer.llm_call(model="budget-model") as call:
                        call.set_usage(input_tokens=tokens, output_tokens=0)
            except BudgetExceededError:
                pass


async def test_api_shows_budgets_and_alerts() -> None:
    """With a tracer and a monitor, ``/api/budgets`` lists each budget's state and the rules
    firing now, with their history newest first."""
    store = MemoryStore()
    for i in range(4):
        await store.add(make_call(i, timestamp=T0 + timedelta(seconds=i), status="error"))
    monitor = AlertMonitor(store, [Alert("errors", above=2, window="5m")], notify=lambda e: _none())
    await monitor.evaluate(T0 + timedelta(minutes=1))
    async with AsyncTracer(price_table=TABLE, budgets=[Budget(0.5, name="all")]) as tracer:
        async with tracer.llm_call(model="budget-model") as call:
            call.set_usage(input_tokens=100_000, output_tokens=0)
        async with Dashboard(store, port=0, budgets=tracer, alerts=monitor) as board:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{board.url}api/budgets") as response:
                    assert response.status == 200
                    body = await response.json()
                async with http.get(f"{board.url}api/budgets?x=1") as response:
                    assert response.status == 400
    await monitor.aclose()
    [budget] = body["budgets"]
    assert (budget["name"], budget["key"]) == ("all", None)
    assert budget["spent_usd"] == pytest.approx(0.1)
    assert budget["used"] == pytest.approx(0.2)
    assert body["alerts"]["firing"] == [{"alert": "errors>2/5m", "key": None, "value": 4.0}]
    assert [e["state"] for e in body["alerts"]["history"]] == ["firing"]


async def _none() -> None:
    pass


async def test_api_without_budgets_is_empty() -> None:
    """A memory store and no tracer: no budgets, no alerts (null), not an error."""
    async with Dashboard(MemoryStore(), port=0) as board:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{board.url}api/budgets") as response:
                assert await response.json() == {"budgets": [], "alerts": None}


def test_page_shows_budget_bars(served: Served, watched: Watched) -> None:
    """Budgets kept in the store's file appear on the page, a bar each, the spent one marked;
    the panel stays hidden on a store without budgets (the other browser tests)."""
    served.run(_spend(served.store))
    watched.open(served.url)
    page = watched.page
    page.wait_for_selector("#budgets-section:not([hidden])")
    rows = page.eval_on_selector_all(
        "#budgets tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    by_key = {(r[0], r[1]): r for r in rows}
    assert set(by_key) == {("users", "alice"), ("users", "bob"), ("daily", "(all)")}
    assert by_key[("users", "alice")][3].strip() == "120%"
    assert by_key[("users", "bob")][6] == "$0.00700"
    meters = page.eval_on_selector_all("#budgets meter", "ms => ms.map(m => m.value)")
    assert sorted(meters) == pytest.approx([0.015, 0.3, 1.0])
    assert page.eval_on_selector("#budgets tbody tr.error", "r => r.cells[1].textContent") == (
        "alice"
    )
    assert page.is_hidden("#alerts-section")
