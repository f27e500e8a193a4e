"""The session view: /api/sessions/{id} over a real SQLite store, and the conversation in
Chromium (turns in order, roles, tool calls; links to it from every place a session id is
shown; hostile content stays text)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from asynctelemetry import LLMCall, SQLiteStore, TraceSpan
from asynctelemetry.ui import Dashboard
from tests.conftest import make_call

from .conftest import Served, Watched, recent_calls, trace_calls
from .test_api import get

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

HOSTILE = '<img src=x onerror="window.__pwned=1">'
SYSTEM = {"role": "system", "content": "You are a travel agent."}


def conversation(now: datetime | None = None, session: str = "chat-1") -> list[LLMCall]:
    """Three turns of one chat (each call sends the history again, OpenAI-shaped), the second
    calling a tool; each turn its own trace; captured content."""
    now = now or datetime.now(UTC)
    asks = ["Where should I go in May?", "What is the weather in Lisbon?", "Book it. " + HOSTILE]
    answers = ["Lisbon is lovely in May.", "22C and sunny.", "Booked: Lisbon, 3 nights."]
    history: list[dict[str, Any]] = [SYSTEM]
    calls = []
    for k, (ask, answer) in enumerate(zip(asks, answers, strict=True)):
        history.append({"role": "user", "content": ask})
        if k == 1:  # the model called a tool; its result went back in the same turn
            history.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call-w",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                        }
                    ],
                }
            )
            history.append({"role": "tool", "tool_call_id": "call-w", "content": '{"c": 22}'})
        content = {
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.output.messages": json.dumps([{"role": "assistant", "content": answer}]),
        }  # fmt: skip
        calls.append(
            make_call(
                2000 + k,
                call_id=f"turn-{k}",
                session_id=session,
                model="gpt-4o",
                provider="openai",
                trace_id=f"{session}-trace-{k}",
                span_id=f"{session}-span-{k}",
                timestamp=now - timedelta(seconds=300 - 60 * k),
                status="ok",
                input_tokens=100 * (k + 1),
                output_tokens=10 + k,
                cost_usd=0.01 * (k + 1),
                attributes=content,
            )
        )
        history.append({"role": "assistant", "content": answer})
    return calls


def tool_step(now: datetime | None = None) -> TraceSpan:
    """The tool step of the second turn's trace."""
    now = now or datetime.now(UTC)
    return TraceSpan(
        span_id="chat-1-tool",
        trace_id="chat-1-trace-1",
        parent_span_id="chat-1-span-1",
        name="get_weather",
        kind="tool",
        tool_name="get_weather",
        session_id="chat-1",
        timestamp=now - timedelta(seconds=239),
        duration_ms=120.0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A SQLite store holding the conversation, a tool step, and other calls."""
    async with SQLiteStore(tmp_path / "calls.db") as opened:
        await opened.add_many([*recent_calls(), *trace_calls(), *conversation(), tool_step()])
        await opened.flush()
        yield opened


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_session_route_pages_turns_with_totals_and_traces(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """/api/sessions/{id}: the session's calls oldest first with their messages, the totals of
    every call of the session, its traces (with their steps) in order; ``next`` pages on."""
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(client, board, "/api/sessions/chat-1")
        assert status == 200, body
        assert [c["call_id"] for c in body["calls"]] == ["turn-0", "turn-1", "turn-2"]
        assert body["next"] is None
        totals = body["totals"]
        assert (totals["key"], totals["calls"], totals["input_tokens"]) == ("chat-1", 3, 600)
        assert totals["cost_usd"] == pytest.approx(0.06)
        assert [t["trace_id"] for t in body["traces"]] == [f"chat-1-trace-{k}" for k in range(3)]
        assert [t["spans"] for t in body["traces"]] == [0, 1, 0]
        second = body["calls"][1]["messages"]
        assert [m["role"] for m in second] == ["system", "user", "assistant", "user", "assistant",
                                               "tool", "assistant"]  # fmt: skip
        assert second[4]["parts"][0]["name"] == "get_weather"

        status, first, _ = await get(client, board, "/api/sessions/chat-1?limit=2")
        assert [c["call_id"] for c in first["calls"]] == ["turn-0", "turn-1"]
        after = first["next"]
        status, rest, _ = await get(client, board, f"/api/sessions/chat-1?limit=2&after={after}")
        assert [c["call_id"] for c in rest["calls"]] == ["turn-2"] and rest["next"] is None
        assert rest["totals"]["calls"] == 3 and len(rest["traces"]) == 1


async def test_session_route_lists_traces_tied_by_a_step_only(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A trace whose only tie to the session is a step (an agent step with the session id,
    its calls without one) is listed on the page whose span holds its start, once."""
    now = datetime.now(UTC)
    chat = conversation(now)
    agent = TraceSpan(
        span_id="agent-root",
        trace_id="agent-trace",
        name="planner",
        kind="agent",
        session_id="chat-1",
        timestamp=now - timedelta(seconds=230),  # between turn-1 and turn-2
        duration_ms=500.0,
    )
    inner = make_call(
        3000, call_id="agent-call", trace_id="agent-trace", parent_span_id="agent-root",
        timestamp=now - timedelta(seconds=229), session_id=None,
    )  # fmt: skip
    async with SQLiteStore(tmp_path / "calls.db") as store:
        await store.add_many([*chat, agent, inner])
        await store.flush()
        async with Dashboard(store, port=0) as board:
            _, body, _ = await get(client, board, "/api/sessions/chat-1")
            assert [t["trace_id"] for t in body["traces"]] == [
                "chat-1-trace-0", "chat-1-trace-1", "agent-trace", "chat-1-trace-2",
            ]  # fmt: skip
            _, first, _ = await get(client, board, "/api/sessions/chat-1?limit=2")
            assert [t["trace_id"] for t in first["traces"]] == ["chat-1-trace-0", "chat-1-trace-1"]
            path = f"/api/sessions/chat-1?limit=2&after={first['next']}"
            _, rest, _ = await get(client, board, path)
            assert [t["trace_id"] for t in rest["traces"]] == ["agent-trace", "chat-1-trace-2"]
            assert rest["traces"][0]["llm_calls"] == 1


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        pytest.param("/api/sessions/nope", 404, "no call of session", id="unknown"),
        pytest.param("/api/sessions/chat-1?window=1h", 400, "takes only", id="window"),
        pytest.param("/api/sessions/chat-1?limit=0", 400, "1..200", id="limit-low"),
        pytest.param("/api/sessions/chat-1?limit=201", 400, "1..200", id="limit-high"),
        pytest.param("/api/sessions/chat-1?limit=x", 400, "whole number", id="limit-text"),
        pytest.param("/api/sessions/chat-1?after=zzz", 400, "after must be", id="cursor"),
        pytest.param("/api/sessions/chat-1?limit=1&limit=2", 400, "more than once", id="twice"),
    ],
)
async def test_session_route_refuses_what_it_cannot_answer(
    store: SQLiteStore, client: aiohttp.ClientSession, path: str, status: int, message: str
) -> None:
    """An unknown session is 404; a window, a bad limit or cursor, a repeated parameter 400."""
    async with Dashboard(store, port=0) as board:
        got, body, _ = await get(client, board, path)
        assert (got, message in body["error"]) == (status, True), body


async def test_call_route_reads_captured_content_as_messages(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """/api/calls/{id} gives the captured content as messages too (the call dialog's), and an
    empty list for a call without captured content."""
    async with Dashboard(store, port=0) as board:
        _, body, _ = await get(client, board, "/api/calls/turn-0")
        assert [m["role"] for m in body["call"]["messages"]] == ["system", "user", "assistant"]
        _, body, _ = await get(client, board, "/api/calls/agent-root")
        assert body["call"]["messages"] == []


# -- in Chromium --------------------------------------------------------------------------------
@pytest.fixture
def chat(served: Served) -> Iterator[Served]:
    """The served dashboard with the conversation and its tool step added."""
    served.add([*conversation(), tool_step()])
    yield served


def _open_from_calls_table(watched: Watched) -> Any:
    page = watched.page
    row = page.locator('#calls tbody tr[data-call-id="turn-1"]')
    row.locator("a.session-link").click()
    page.wait_for_selector('#session-view[data-session-id="chat-1"][data-turns="3"]')
    return page


def test_a_session_conversation_renders_in_order_with_roles(chat: Served, watched: Watched) -> None:
    """The session view: three turns in time order, each showing what it added to the chat
    (the history sent again is not repeated), roles, the tool call and its result, tokens and
    cost per turn, totals, the traces; hostile text stays text."""
    watched.open(chat.url)
    page = _open_from_calls_table(watched)
    turns = page.locator("#session-view .turn")
    assert [turns.nth(k).get_attribute("data-call-id") for k in range(3)] == [
        "turn-0",
        "turn-1",
        "turn-2",
    ]
    roles = [
        turns.nth(k).locator(".msg").evaluate_all("ms => ms.map(m => m.dataset.role)")
        for k in range(3)
    ]
    assert roles == [
        ["system", "user", "assistant"],
        ["user", "assistant", "tool", "assistant"],
        ["user", "assistant"],
    ]
    second = turns.nth(1)
    assert "get_weather" in second.locator(".tool-call").inner_text()
    assert '"city": "Lisbon"' in second.locator(".tool-call pre").inner_text()
    assert "22" in second.locator(".tool-result").inner_text()
    assert "3 earlier messages" in second.locator(".repeated").inner_text()
    assert "200 → 11 tok" in second.locator(".turn-figures").inner_text()
    assert "Book it. " + HOSTILE in turns.nth(2).locator(".msg.role-user").inner_text()
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#session-view img").count() == 0
    totals = page.text_content("#session-totals") or ""
    assert totals.startswith("3 calls · 0 errors · 600 in / 33 out tokens")
    traces = page.locator("#session-view .session-traces-table tbody tr")
    assert traces.count() == 3 and "get_weather" not in traces.nth(0).inner_text()
    traces.nth(1).click()  # a trace of the session opens its waterfall
    page.wait_for_selector("#waterfall-totals")
    assert "1 steps" in (page.text_content("#waterfall-totals") or "")


def test_session_links_open_the_view_from_everywhere(chat: Served, watched: Watched) -> None:
    """A session id is a link wherever it is shown: the calls table, the traces table, the
    top sessions, a call's fields; each opens the same session view."""
    watched.open(chat.url)
    page = watched.page
    page.locator('#traces tbody tr[data-trace-id="chat-1-trace-2"] a.session-link').click()
    page.wait_for_selector('#session-view[data-session-id="chat-1"]')
    page.click("#detail-close")
    page.locator("#top-session a.session-link").first.click()
    page.wait_for_selector("#session-view")
    page.click("#detail-close")
    page.locator('#calls tbody tr[data-call-id="turn-2"]').click()  # the call dialog
    page.wait_for_selector(".messages .msg")
    assert page.locator("#detail-body > .messages .msg").count() == 9
    assert page.locator("details.raw-content").get_attribute("open") is None
    page.locator("table.fields a.session-link").click()
    page.wait_for_selector('#session-view[data-session-id="chat-1"][data-turns="3"]')
