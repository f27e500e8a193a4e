"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Every test checks, on the way out, that the page logged no console error, raised no JavaScript
error, and sent every request to 127.0.0.1 (the page works offline: no CDN, no font, no beacon).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from asynctelemetry import TraceSpan
from tests.conftest import make_call

from .conftest import Served, Watched

if TYPE_CHECKING:
    from pathlib import Path

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _svg_sizes(page: Any, chart: str) -> list[float]:
    sizes: list[float] = page.eval_on_selector_all(
        f"#{chart} svg rect",
        "rects => rects.map(r => r.getBoundingClientRect()).map(b => b.width * b.height)",
    )
    return sizes


def test_charts_render_with_data(served: Served, watched: Watched, tmp_path: Path) -> None:
    """Every chart draws SVG bars of non-zero size; headline figures and tables show the data."""
    watched.open(served.url)
    page = watched.page
    for chart in ("chart-cost", "chart-calls", "chart-errors", "chart-latency", "chart-tokens"):
        sizes = _svg_sizes(page, chart)
        assert sizes and all(s > 0 for s in sizes), chart
    assert page.text_content("#h-calls") == "64"
    assert page.text_content("#h-errors").endswith("%")
    assert page.text_content("#h-errors") != "0.0%"
    for figure in ("#h-p50", "#h-p95", "#h-ttft"):  # a duration with its unit
        assert re.fullmatch(r"\d[\d,]*(\.\d+)? (ms|s)", page.text_content(figure)), figure
    assert page.text_content("#h-cost").startswith("$")
    for table in ("top-model", "top-session", "top-route"):
        assert page.locator(f"#{table} tbody tr").count() >= 2, table
    assert len(watched.column(1)) == 64


def test_page_weight_under_300_kb(served: Served, watched: Watched) -> None:
    """Everything the page loads (HTML, scripts, styles, icon, JSON) stays under 300 KB."""
    watched.open(served.url)
    watched.page.wait_for_load_state("networkidle")
    assert 0 < watched.bytes_in < 300 * 1024


def test_filters_change_the_table(served: Served, watched: Watched) -> None:
    """Choosing a model, then a status, narrows the recent-calls table (and the figures)."""
    watched.open(served.url)
    page = watched.page
    assert set(watched.column(1)) >= {"gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"}
    page.select_option("#model", "gpt-4o")
    watched.showing("model=gpt-4o")
    models = watched.column(1)
    assert models and set(models) == {"gpt-4o"}
    assert page.text_content("#h-calls") == str(len(models))
    page.select_option("#status", "error")
    watched.showing("model=gpt-4o", "status=error")
    statuses = watched.column(4)
    assert statuses and all(s.startswith("error") for s in statuses)
    assert len(statuses) < len(models)
    page.fill("#session", "s1")
    page.press("#session", "Enter")
    page.select_option("#model", "")
    page.select_option("#status", "")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#calls tbody tr.call'))"
        ".every(r => r.cells[3].textContent === 's1')"
    )
    assert set(watched.column(3)) == {"s1"}


def test_window_choice_changes_the_query(served: Served, watched: Watched) -> None:
    """The 15-minute window shows fewer calls than the hour; a custom window can be chosen."""
    watched.open(served.url)
    page = watched.page
    hour = len(watched.column(0))
    page.select_option("#window", "15m")
    watched.showing("window=15m")
    assert 0 < len(watched.column(0)) < hour
    page.select_option("#window", "custom")
    watched.showing("since=", "until=")
    assert page.is_visible("#since") and page.is_visible("#until")
    assert len(watched.column(0)) == hour  # the custom range starts as the last hour


def test_live_page_shows_new_calls(served: Served, watched: Watched) -> None:
    """A call added to the store appears in the open page without a reload."""
    watched.open(served.url)
    page = watched.page
    assert "gpt-live-9" not in watched.column(1)
    served.add([make_call(5000, model="gpt-live-9", timestamp=datetime.now(UTC))])
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#calls tbody tr.call'))"
        ".some(r => r.cells[1].textContent === 'gpt-live-9')"
    )
    page.wait_for_function("() => document.getElementById('h-calls').textContent === '65'")


def test_hostile_model_name_is_text(served: Served, watched: Watched) -> None:
    """A model name holding markup is shown as text everywhere; no script of it runs."""
    served.add(
        [
            make_call(
                7000,
                model=HOSTILE,
                timestamp=datetime.now(UTC),
                attributes={"note": "<b onmouseover=alert(1)>x</b>"},
            )
        ]
    )
    watched.open(served.url)
    page = watched.page
    assert HOSTILE in watched.column(1)
    assert HOSTILE in page.eval_on_selector_all(
        "#top-model td", "cells => cells.map(c => c.textContent)"
    )
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#calls img, #top-model img, .chart img").count() == 0
    row = page.locator("#calls tbody tr.call", has_text="<script>")
    row.click()
    page.wait_for_selector("#detail[open]")
    assert HOSTILE in page.text_content("#detail-body")
    assert "<b onmouseover=alert(1)>x</b>" in page.text_content("#detail-body")
    assert page.locator("#detail-body b, #detail-body script, #detail-body img").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_call_detail_and_trace_view(served: Served, watched: Watched) -> None:
    """A row opens every field of its call; its trace lists the agent's calls, nested."""
    watched.open(served.url)
    page = watched.page
    page.locator("#calls tbody tr[data-call-id='call-000007']").click()
    page.wait_for_selector("#detail[open]")
    body = page.text_content("#detail-body")
    for shown in ("call-000007", "app.user", "u1", "input_tokens", "not captured"):
        assert shown in body
    page.click("#detail-close")
    page.locator("#calls tbody tr[data-call-id='agent-tool'] a.trace").click()
    page.wait_for_selector("#detail table.waterfall")
    names = page.eval_on_selector_all(
        "#detail table.waterfall tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
    )
    assert [n.split()[0] for n in names] == ["chat"] * 4
    pads = page.eval_on_selector_all(
        "#detail table.waterfall tbody tr",
        "rows => rows.map(r => parseFloat(getComputedStyle(r.cells[0]).paddingLeft))",
    )
    # root, plan (child), tool (grandchild), answer (child): nesting shows as indentation
    assert pads[0] < pads[1] < pads[2] and pads[3] == pads[1]


def test_traces_view_and_waterfall(served: Served, watched: Watched) -> None:
    """The Traces table lists an agent run with its totals; its waterfall shows each step as a
    bar at its start and of its length, nested; clicking a step shows its fields."""
    now = datetime.now(UTC) - timedelta(seconds=30)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    agent = TraceSpan(
        span_id="a0",
        trace_id=trace,
        name="planner",
        kind="agent",
        timestamp=now,
        duration_ms=1000.0,
        agent_name="planner",
        user_id="ann",
    )
    tool = TraceSpan(
        span_id="t1",
        trace_id=trace,
        parent_span_id="a0",
        name="search",
        kind="tool",
        tool_name="search",
        agent_name="planner",
        status="error",
        error_type="LookupError",
        error_message="index offline",
        timestamp=now + timedelta(milliseconds=500),
        duration_ms=250.0,
    )
    call = make_call(
        9000,
        call_id="wf-call",
        trace_id=trace,
        span_id="c1",
        parent_span_id="a0",
        timestamp=now + timedelta(milliseconds=100),
        duration_ms=300.0,
        cost_usd=0.5,
        agent_name="planner",
        status="ok",
    )
    served.add([agent, tool, call])  # type: ignore[list-item]
    watched.open(served.url)
    page = watched.page
    row = page.locator(f"#traces tbody tr[data-trace-id='{trace}']")
    cells = row.locator("td").all_text_contents()
    assert cells[1:3] == ["planner", "1 error"] and cells[4:7] == ["1", "2", "$0.500"]
    row.click()
    page.wait_for_selector("#detail table.waterfall")
    totals = page.text_content("#waterfall-totals")
    assert "1.00 s" in totals and "1 LLM calls" in totals and "2 steps" in totals
    names = page.eval_on_selector_all(
        "#detail table.waterfall tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
    )
    assert names == ["planner", "chat gpt-4o", "search"]
    bars = page.eval_on_selector_all(
        "#detail table.waterfall .bar",
        "bars => bars.map(b => [parseFloat(b.style.left), parseFloat(b.style.width), b.className])",
    )
    assert [(round(left), round(width)) for left, width, _ in bars] == [
        (0, 100),
        (10, 30),
        (50, 25),
    ]
    assert "status-error" in bars[2][2] and "kind-call" in bars[1][2]
    lanes = page.eval_on_selector_all(
        "#detail table.waterfall .bar",
        "bars => bars.map(b => b.getBoundingClientRect().left"
        " - b.parentElement.getBoundingClientRect().left)",
    )
    assert lanes[0] < lanes[1] < lanes[2]  # drawn where they start
    page.locator("#detail table.waterfall tbody tr").nth(2).click()
    fields = page.text_content("#waterfall-fields")
    assert "index offline" in fields and "LookupError" in fields and "tool_name" in fields


def test_token_required(tmp_path: Path, watched: Watched) -> None:
    """With a token the page answers 401; the ?token= link sets an HttpOnly cookie and works."""
    server = Served(tmp_path / "calls.db", token="s3cret")
    try:
        server.add(recent_calls_now())
        page = watched.page
        response = page.goto(server.url)
        assert response is not None and response.status == 401
        api = page.request.get(server.url + "api/calls")
        assert api.status == 401
        watched.open(server.url + "?token=s3cret")
        assert page.url == server.url  # the token left the address bar
        assert page.text_content("#h-calls") == "3"
        cookies = page.context.cookies()
        assert [c["httpOnly"] for c in cookies] == [True]
        assert cookies[0]["sameSite"] == "Strict"
        assert "s3cret" not in cookies[0]["value"]
        assert page.evaluate("document.cookie") == ""
    finally:
        server.close()
    # the 401 answers above are expected, not page errors
    watched.console_errors.clear()


def recent_calls_now() -> list[Any]:
    """Three calls of the last minute."""
    now = datetime.now(UTC)
    return [make_call(i, timestamp=now - timedelta(seconds=i + 1)) for i in range(3)]


def _pct(rate: float) -> str:
    """An error rate as the page writes it."""
    return f"{100 * rate:.{2 if rate < 0.1 else 1}f}%"


def model_calls(now: datetime) -> list[Any]:
    """A model asked for by name and answered by its dated snapshot, its failures recorded
    under the name asked for; another recorded without a request model."""
    calls = []
    for i in range(9):
        failed = i % 3 == 2
        calls.append(
            make_call(
                8000 + i,
                timestamp=now - timedelta(minutes=i + 1),
                provider="anthropic",
                request_model="claude-sonnet-4-5",
                model="claude-sonnet-4-5" if failed else "claude-sonnet-4-5-20250929",
                status="error" if failed else "ok",
                error_type="RateLimitError" if failed else None,
                error_message="rate_limit_error: slow down" if failed else None,
                cost_usd=0.0 if failed else 0.75,
            )
        )
    for i in range(4):
        calls.append(
            make_call(
                8100 + i,
                timestamp=now - timedelta(minutes=i + 1),
                provider="openai",
                model="gpt-4o",
                request_model=None,
                status="error" if i == 0 else "ok",
                cost_usd=0.0 if i == 0 else 0.25,
            )
        )
    for i in range(2):  # a model nobody prices, and a stream of gpt-4o whose usage never came
        calls.append(
            make_call(8200 + i, timestamp=now - timedelta(minutes=i + 1), provider="acme",
                      model="house-model", request_model=None, status="ok", cost_usd=None)
        )  # fmt: skip
    calls.append(
        make_call(8300, timestamp=now - timedelta(minutes=1), provider="openai", model="gpt-4o",
                  request_model="gpt-4o", input_tokens=None, output_tokens=None, cost_usd=None)
    )  # fmt: skip
    return calls


def test_model_rows_agree_in_summary_api_and_page(tmp_path: Path, watched: Watched) -> None:
    """The same calls give the same per-model calls, errors, error rate and cost in the store's
    summary, in /api/summary (no ``by``) and in the page's top-models table: one row per
    requested model, its failures on it, the answering snapshot shown as detail."""
    server = Served(tmp_path / "calls.db")
    try:
        server.add(model_calls(datetime.now(UTC)))
        rows = server.run(server.store.summary(by="request_model"))
        assert [(r.key, r.calls, r.errors, r.unpriced_calls) for r in rows] == [
            ("claude-sonnet-4-5", 9, 3, 0),
            ("gpt-4o", 5, 1, 1),
            ("house-model", 2, 0, 2),
        ]
        watched.open(server.url)
        page = watched.page
        api = page.request.get(server.url + "api/summary?window=1h").json()
        assert [(g["key"], g["calls"], g["errors"], g["cost_usd"]) for g in api["groups"]] == [
            (r.key, r.calls, r.errors, r.cost_usd) for r in rows
        ]
        shown = page.eval_on_selector_all(
            "#top-model tbody tr",
            "rows => rows.map(r => Array.from(r.cells).slice(0, 5).map(c => c.textContent))",
        )
        assert shown == [  # unpriced calls are unknown, never "$0"
            ["claude-sonnet-4-5", "9", "3", _pct(3 / 9), "$4.50"],
            ["gpt-4o", "5", "1", _pct(1 / 5), "$0.750 + 1 unpriced"],
            ["house-model", "2", "0", "0.00%", "unknown"],
        ]
        assert page.text_content("#h-cost") == "$5.25 + 3 unpriced"
        assert watched.column(8).count("unknown") == 3
        assert watched.column(8).count("$0") == 4  # the failures the providers bill nothing for
        tops = [u for u in watched.requests if "by=session" in u or "by=route" in u]
        assert tops and all("limit=10" in u and "total=false" in u for u in tops)
        options = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
        assert options == ["", "claude-sonnet-4-5", "gpt-4o", "house-model"]
        errors = page.eval_on_selector_all(
            "#errors tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))"
        )
        assert [(e[0], e[1], e[2], e[5]) for e in errors if e[0] == "RateLimitError"] == [
            ("RateLimitError", "rate_limit_error: slow down", "3", "claude-sonnet-4-5")
        ]
        cells = watched.column(1)
        assert "claude-sonnet-4-5 claude-sonnet-4-5-20250929" in cells  # the snapshot as detail
        assert "gpt-4o" in cells
        page.select_option("#model", "claude-sonnet-4-5")
        watched.showing("model=claude-sonnet-4-5")
        assert page.text_content("#h-calls") == "9"
        assert page.text_content("#h-errors") == _pct(3 / 9)
    finally:
        server.close()


def test_deep_link_opens_the_same_view(served: Served, watched: Watched) -> None:
    """The window, the filters and the open call live in the URL: a link to it opens the same
    view, a reload keeps it, closing the call and going back and forward restore each view; the
    ids in the page are real links carrying that state."""
    page = watched.page
    watched.open(served.url + "?window=24h&model=gpt-4o&status=error&call=call-000009")
    watched.showing("window=24h", "model=gpt-4o", "status=error")
    page.wait_for_selector("#detail[open]")
    assert page.text_content("#detail-title") == "Call call-000009"
    assert page.input_value("#window") == "24h"
    assert page.input_value("#model") == "gpt-4o"
    assert page.input_value("#status") == "error"
    statuses = watched.column(4)
    assert statuses and all(s.startswith("error") for s in statuses)
    assert set(watched.column(1)) == {"gpt-4o"}
    # every call id in the table is a link to its call, with the filters of the page
    href = page.get_attribute("#calls tbody tr[data-call-id='call-000039'] td.id a", "href")
    assert href is not None
    assert {"window=24h", "model=gpt-4o", "status=error", "call=call-000039"} <= set(
        href.split("?", 1)[1].split("&")
    )
    page.reload()
    watched.refreshed(1)
    page.wait_for_selector("#detail[open]")
    assert page.text_content("#detail-title") == "Call call-000009"
    assert page.input_value("#model") == "gpt-4o"
    page.click("#detail-close")
    page.wait_for_function("() => !location.search.includes('call=')")
    assert not page.is_visible("#detail")
    page.go_back()
    page.wait_for_selector("#detail[open]")
    assert page.text_content("#detail-title") == "Call call-000009"
    page.go_forward()
    page.wait_for_function("() => !document.getElementById('detail').open")
    # a filter chosen in the page goes to the URL; back restores the view before it
    page.select_option("#status", "")
    page.wait_for_function("() => !location.search.includes('status=')")
    page.wait_for_function("() => !(document.body.dataset.query || '').includes('status=')")
    assert not all(s.startswith("error") for s in watched.column(4))
    page.go_back()
    watched.showing("status=error")
    assert page.input_value("#status") == "error"
    # the trace link of a call opens the trace; the call dialog's ids are links too
    page.goto(served.url + "?call=agent-plan")
    page.wait_for_selector("#detail[open]")
    page.locator("#detail-body a", has_text="trace-a").first.click()
    page.wait_for_selector("#detail table.waterfall")
    assert "trace=trace-a" in page.evaluate("location.search")
    assert "call=" not in page.evaluate("location.search")
    # a session's conversation (session.js) is in the URL too: its links are real links
    page.goto(served.url + "?conversation=s1")
    page.wait_for_selector("#detail[open] #session-view")
    href = page.get_attribute("#calls tbody tr.call td:nth-child(4) a", "href")
    assert href is not None and "conversation=" in href
    page.click("#detail-close")
    page.wait_for_function("() => !location.search.includes('conversation=')")
    page.go_back()
    page.wait_for_selector("#detail[open] #session-view")


def test_an_error_group_filters_the_page(served: Served, watched: Watched) -> None:
    """Errors are grouped by type and message with counts, first and last seen and models;
    clicking a group filters the whole page to its calls (headline, tables), and "show every
    call" clears it; Enter on a focused group does the same as a click."""
    now = datetime.now(UTC)
    failures = [
        make_call(5000 + i, call_id=f"timeout-{i}", timestamp=now - timedelta(minutes=3 + i),
                  status="error", error_type="APITimeoutError", error_message="Request timed out.",
                  model="gpt-4o", request_model=None)
        for i in range(4)
    ]  # fmt: skip
    served.add(failures)
    watched.open(served.url)
    page = watched.page
    row = page.locator("#errors tbody tr", has_text="APITimeoutError")
    cells = row.locator("td").all_text_contents()
    assert cells[:3] == ["APITimeoutError", "Request timed out.", "4"]
    assert cells[3].startswith(failures[3].timestamp.strftime("%Y-%m-%d %H:%M"))
    assert cells[4].startswith(failures[0].timestamp.strftime("%Y-%m-%d %H:%M"))
    assert cells[5] == "gpt-4o"
    row.click()
    watched.showing("error_type=APITimeoutError", "error_message=Request+timed+out.")
    assert page.text_content("#h-calls") == "4"
    assert page.text_content("#h-errors") == "100.0%"
    assert sorted(watched.column(1)) == ["gpt-4o"] * 4
    shown = page.eval_on_selector_all(
        "#calls tbody tr.call", "rows => rows.map(r => r.dataset.callId)"
    )
    assert sorted(shown) == sorted(c.call_id for c in failures)
    assert page.is_visible("#error-filter")
    assert page.input_value("#status") == "error"
    page.reload()  # the filter is in the URL: a reload (or a sent link) shows the same view
    watched.refreshed(1)
    assert "error_type=APITimeoutError" in page.evaluate("location.search")
    assert page.text_content("#h-calls") == "4" and page.is_visible("#error-filter")
    page.click("#error-filter-clear")
    page.wait_for_function("() => !(document.body.dataset.query || '').includes('error_type')")
    assert page.text_content("#h-calls") == "68"
    page.locator("#errors tbody tr", has_text="APITimeoutError").focus()
    page.keyboard.press("Enter")
    watched.showing("error_type=APITimeoutError")
    assert page.text_content("#h-calls") == "4"


def test_paging_reaches_the_oldest_call_of_the_window(served: Served, watched: Watched) -> None:
    """The calls table pages by keyset: "next page" walks the whole window, each call once,
    down to its oldest; back returns to the page before; sorting by cost puts the unpriced
    calls last, shown as unknown, in both directions."""
    now = datetime.now(UTC)
    more = [
        make_call(
            3000 + k,
            timestamp=now - timedelta(seconds=10 * k),
            cost_usd=None if k % 50 == 0 else 0.002,
        )
        for k in range(1, 151)
    ]
    served.add(more)
    page = watched.page
    watched.open(served.url)
    seen: list[str] = []
    cursors: list[str] = []
    pages = 0
    while True:
        ids = page.eval_on_selector_all(
            "#calls tbody tr.call", "rows => rows.map(r => r.dataset.callId)"
        )
        seen += ids
        pages += 1
        if not page.is_visible("#pager a:has-text('next page')"):
            break
        before = page.evaluate("document.body.dataset.refreshes")
        page.click("#pager a:has-text('next page')")
        watched.refreshed(int(before) + 1)
        cursors.append(page.evaluate("new URLSearchParams(location.search).get('after')"))
    second, third = cursors
    assert pages == 3 and len(seen) == len(set(seen)) == 64 + 150
    assert seen[-1] == "call-000000"  # the oldest call of the window, on the last page
    page.go_back()
    page.wait_for_function(
        f"() => (document.body.dataset.query || '').includes({second!r})"
        f" && !(document.body.dataset.query || '').includes({third!r})"
    )
    assert page.eval_on_selector("#calls tbody tr.call", "r => r.dataset.callId") == seen[100]
    # sort by cost, smallest first: the unpriced calls come last, shown as unknown
    page.click("#calls th[data-sort='cost'] a")
    watched.showing("sort=cost")
    assert "after=" not in page.evaluate("location.search")
    page.click("#calls th[data-sort='cost'] a")  # again: smallest first
    watched.showing("sort=cost", "order=asc")
    costs: list[str] = []
    while True:
        costs += watched.column(8)
        if not page.is_visible("#pager a:has-text('next page')"):
            break
        before = page.evaluate("document.body.dataset.refreshes")
        page.click("#pager a:has-text('next page')")
        watched.refreshed(int(before) + 1)
    unknown = [c for c in costs if c == "unknown"]
    assert len(unknown) == 3 and costs[-3:] == unknown and costs[0] == "$0"


def test_search_finds_a_call_by_id(served: Served, watched: Watched) -> None:
    """The search box finds a call by its id (and a session's calls); the search lives in the
    URL; a search that finds nothing says so."""
    page = watched.page
    watched.open(served.url)
    page.fill("#q", "call-000042")
    page.press("#q", "Enter")
    watched.showing("q=call-000042")
    ids = page.eval_on_selector_all(
        "#calls tbody tr.call", "rows => rows.map(r => r.dataset.callId)"
    )
    assert ids == ["call-000042"]
    page.click("#calls tbody tr.call td.id a")
    page.wait_for_selector("#detail[open]")
    assert page.text_content("#detail-title") == "Call call-000042"
    assert "q=call-000042" in page.evaluate("location.search")
    page.click("#detail-close")
    page.fill("#q", "s3")
    page.press("#q", "Enter")
    watched.showing("q=s3")
    assert set(watched.column(3)) == {"s3"} and len(watched.column(3)) == 15 + 1  # and a trace call
    page.fill("#q", "no-such-id")
    page.press("#q", "Enter")
    watched.showing("q=no-such-id")
    assert "No call, trace, session or user" in page.text_content("#hints")
    page.reload()
    watched.refreshed(1)
    assert page.input_value("#q") == "no-such-id"


def test_a_filter_that_matches_nothing_suggests_the_closest(
    served: Served, watched: Watched
) -> None:
    """A model typed wrong in a link (gpt4o) shows the closest model of the window as a link
    that filters on it."""
    page = watched.page
    watched.open(served.url + "?model=gpt4o")
    page.wait_for_selector("#hints a")
    assert "No calls of model \u201cgpt4o\u201d" in page.text_content("#hints")
    assert page.text_content("#hints a") == "gpt-4o"
    page.click("#hints a")
    watched.showing("model=gpt-4o")
    assert set(watched.column(1)) == {"gpt-4o"}
    assert not page.is_visible("#hints")
