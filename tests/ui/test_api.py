"""The dashboard's JSON API and server, over a real SQLite store, with aiohttp as the client."""

from __future__ import annotations

import asyncio
import math
import sys
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from asynctelemetry import (
    ConfigError,
    MemoryStore,
    MissingDependencyError,
    PostgresStore,
    SQLiteStore,
    TraceSpan,
)
from asynctelemetry.ui import Dashboard, _api
from asynctelemetry.ui._server import COOKIE
from tests.conftest import make_call
from tests.pg import fresh_schema, start_server, stop_server

from .conftest import recent_calls, trace_calls

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from asynctelemetry._stores._pages import CallPage

ROUTES = (
    "/",
    "/static/app.js",
    "/static/charts.js",
    "/static/style.css",
    "/static/favicon.svg",
    "/api/summary",
    "/api/timeseries",
    "/api/calls",
    "/api/calls/agent-root",
    "/api/traces/trace-a",
    "/api/traces",
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A SQLite store holding recent calls and one trace."""
    async with SQLiteStore(tmp_path / "calls.db") as opened:
        await opened.add_many([*recent_calls(), *trace_calls()])
        await opened.flush()
        yield opened


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that keeps no cookies between tests."""
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    client: aiohttp.ClientSession, board: Dashboard, path: str, **kwargs: Any
) -> tuple[int, Any, Any]:
    """``GET`` a path; the status, the JSON body (or text) and the headers."""
    async with client.get(board.url.rstrip("/") + path, **kwargs) as response:
        if response.content_type == "application/json":
            return response.status, await response.json(), response.headers
        return response.status, await response.text(), response.headers


async def test_summary_matches_the_store(store: SQLiteStore, client: aiohttp.ClientSession) -> None:
    """/api/summary gives the store's own rows and the window's totals with its percentiles."""
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(client, board, "/api/summary?window=1h&by=session")
    assert status == 200
    since = datetime.fromisoformat(body["query"]["since"])
    until = datetime.fromisoformat(body["query"]["until"])
    rows = await store.summary(by="session", since=since, until=until)
    assert body["groups"] == [r.model_dump(mode="json") for r in rows]
    inside = await store.query(since=since, until=until)
    total = body["total"]
    assert total["calls"] == len(inside) == 64
    assert total["errors"] == sum(c.status == "error" for c in inside)
    assert total["error_rate"] == total["errors"] / total["calls"]
    assert math.isclose(total["cost_usd"], math.fsum(c.cost_usd or 0 for c in inside))
    assert total["reasoning_tokens"] == sum(c.reasoning_tokens or 0 for c in inside)
    latencies = sorted(c.duration_ms for c in inside if c.duration_ms is not None)
    assert total["p50_latency_ms"] == latencies[math.ceil(0.5 * len(latencies)) - 1]
    assert total["p95_latency_ms"] == latencies[math.ceil(0.95 * len(latencies)) - 1]
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(client, board, "/api/summary?by=route&total=false")
    assert status == 200 and "total" not in body and len(body["groups"]) == 3


async def test_summary_top_groups(store: SQLiteStore, client: aiohttp.ClientSession) -> None:
    """/api/summary?limit=N&order=…&total=false gives the store's top N groups; limit needs
    total=false, and order names a known order (400 otherwise)."""
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(
            client, board, "/api/summary?window=1h&by=session&total=false&limit=2&order=calls"
        )
        assert status == 200
        since = datetime.fromisoformat(body["query"]["since"])
        until = datetime.fromisoformat(body["query"]["until"])
        rows = await store.summary(
            by="session", since=since, until=until, limit=2, order_by="calls"
        )
        assert len(rows) == 2
        assert body["groups"] == [r.model_dump(mode="json") for r in rows]
        every = await store.summary(by="session", since=since, until=until)
        assert [r.key for r in rows] == [
            r.key for r in sorted(every, key=lambda r: (-r.calls, -r.cost_usd, r.key or ""))
        ][:2]
        for path, message in (
            ("/api/summary?by=session&limit=2", "limit= needs total=false"),
            ("/api/summary?by=session&total=false&order=size", "order='size'"),
            ("/api/summary?by=session&total=false&limit=0", "limit='0'"),
        ):
            status, body, _ = await get(client, board, path)
            assert status == 400 and message in body["error"], (path, body)


async def test_summary_by_tag_totals_each_call_once(client: aiohttp.ClientSession) -> None:
    """/api/summary?by=tag: a call with two tags is in both rows, the totals count it once;
    a time series cannot group by tag (400)."""
    store = MemoryStore()
    await store.add_many(
        [
            make_call(0, tags=("a", "b"), timestamp=datetime.now(UTC)),
            make_call(1, tags=("b",), timestamp=datetime.now(UTC)),
            make_call(2, agent_name="planner", user_id="u", timestamp=datetime.now(UTC)),
        ]
    )
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(client, board, "/api/summary?window=1h&by=tag")
        assert status == 200
        assert {g["key"]: g["calls"] for g in body["groups"]} == {"a": 1, "b": 2, None: 1}
        assert body["total"]["calls"] == 3
        for by, key in (("agent", "planner"), ("user", "u")):
            status, body, _ = await get(client, board, f"/api/summary?window=1h&by={by}")
            assert status == 200 and key in {g["key"] for g in body["groups"]}
        status, body, _ = await get(client, board, "/api/timeseries?window=1h&by=tag")
    assert status == 400 and "by='tag'" in body["error"]


async def test_traces_and_the_waterfall_match_the_store(client: aiohttp.ClientSession) -> None:
    """/api/traces is store.traces for the window and filters; /api/traces/{id} gives the
    waterfall of calls and steps (depth, offset from the trace's start, length) and totals;
    a trace of steps only is found too."""
    store = MemoryStore()
    now = datetime.now(UTC) - timedelta(minutes=1)
    agent = TraceSpan(
        span_id="a0",
        trace_id="t-1",
        name="planner",
        kind="agent",
        timestamp=now,
        duration_ms=1000.0,
        user_id="ann",
    )
    call = make_call(
        1,
        trace_id="t-1",
        span_id="c1",
        parent_span_id="a0",
        timestamp=now + timedelta(milliseconds=200),
        duration_ms=300.0,
    )
    lone = TraceSpan(span_id="x0", trace_id="t-2", name="nightly", kind="workflow",
                     timestamp=now + timedelta(seconds=1), duration_ms=5.0)  # fmt: skip
    await store.add_many([agent, call, lone])
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(client, board, "/api/traces?window=1h&user=ann")
        assert status == 200
        rows = await store.traces(user_id="ann", since=now - timedelta(hours=1))
        assert body["traces"] == [r.model_dump(mode="json") for r in rows]
        status, body, _ = await get(client, board, "/api/traces/t-1")
        assert status == 200
        assert [(r["depth"], r["type"], r["name"]) for r in body["waterfall"]] == [
            (0, "agent", "planner"), (1, "call", "chat claude-sonnet-4-5")]  # fmt: skip
        assert [(r["offset_ms"], r["duration_ms"]) for r in body["waterfall"]] == [
            (0.0, 1000.0), (200.0, 300.0)]  # fmt: skip
        assert body["totals"]["llm_calls"] == 1 and body["totals"]["steps"] == 1
        status, body, _ = await get(client, board, "/api/traces/t-2")
        assert status == 200 and body["calls"] == [] and body["waterfall"][0]["name"] == "nightly"
        status, body, _ = await get(client, board, "/api/traces?order=sideways")
        assert status == 400 and "order" in body["error"]


async def test_timeseries_matches_the_store(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """/api/timeseries is store.timeseries for the window, bucket and grouping asked for."""
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(
            client, board, "/api/timeseries?window=1h&by=provider&bucket=5m&status=ok"
        )
        assert status == 200
        since = datetime.fromisoformat(body["query"]["since"])
        until = datetime.fromisoformat(body["query"]["until"])
        rows = await store.timeseries(
            bucket="5m", by="provider", since=since, until=until, status="ok"
        )
        assert body["buckets"] == [r.model_dump(mode="json") for r in rows]
        assert body["bucket_seconds"] == 300 and body["by"] == "provider"
        status, auto, _ = await get(client, board, "/api/timeseries?window=24h")
        assert status == 200 and auto["bucket_seconds"] == 900 and auto["by"] is None


async def test_calls_newest_first_with_limit_and_filters(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """/api/calls: newest first, ``limit``, the filters, and attributes split from content."""
    async with Dashboard(store, port=0) as board:
        _, body, _ = await get(client, board, "/api/calls?limit=5")
        stamps = [c["timestamp"] for c in body["calls"]]
        assert len(stamps) == 5 and stamps == sorted(stamps, reverse=True)
        _, body, _ = await get(client, board, "/api/calls?model=gpt-4o&status=error&limit=1000")
        assert body["calls"] and {(c["model"], c["status"]) for c in body["calls"]} == {
            ("gpt-4o", "error")
        }
        _, body, _ = await get(client, board, "/api/calls?session=s1&order=oldest")
        stamps = [c["timestamp"] for c in body["calls"]]
        assert stamps == sorted(stamps) and {c["session_id"] for c in body["calls"]} == {"s1"}
        assert body["calls"][0]["attributes"] == {
            "app.user": body["calls"][0]["attributes"]["app.user"]
        }
        assert body["calls"][0]["content"] == {}


async def test_calls_page_by_keyset_in_any_order(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """/api/calls pages by ``sort`` and ``order`` with the ``next`` cursor: the pages hold the
    window's calls once each, in the store's order, the last page has no ``next``; a cursor of
    another order is a 400; ``q`` finds a call by id, a trace, a session or a user."""
    async with Dashboard(store, port=0) as board:
        for sort, order in [
            ("time", "desc"),
            ("cost", "asc"),
            ("latency", "desc"),
            ("tokens", "asc"),
        ]:
            whole = await store.page(
                sort=sort,
                descending=order == "desc",
                limit=1000,  # type: ignore[arg-type]
                since=datetime.now(UTC) - timedelta(hours=1),
            )
            seen: list[str] = []
            path = f"/api/calls?sort={sort}&order={order}&limit=7"
            while True:
                status, body, _ = await get(client, board, path)
                assert status == 200 and body["sort"] == sort and body["order"] == order
                seen += [c["call_id"] for c in body["calls"]]
                if body["next"] is None:
                    break
                path = f"/api/calls?sort={sort}&order={order}&limit=7&after={body['next']}"
            assert seen == [c.call_id for c in whole.calls] and len(seen) == 64
        _, body, _ = await get(client, board, "/api/calls?sort=cost&limit=3")
        status, answer, _ = await get(
            client, board, f"/api/calls?sort=latency&after={body['next']}"
        )
        assert status == 400 and "by cost desc" in answer["error"]
        for q, field in [("call-000042", "call_id"), ("trace-a", "trace_id"), ("s2", "session_id")]:
            _, body, _ = await get(client, board, f"/api/calls?q={q}&limit=1000")
            assert body["calls"] and {c[field] for c in body["calls"]} == {q}
        assert [c["call_id"] for c in body["calls"]] == [
            c.call_id for c in (await store.page(search="s2", limit=1000)).calls
        ]


async def test_a_filter_that_matches_nothing_gets_hints(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """A model or provider that matches no call of the window comes back with the closest
    values the window holds; a filter that matches calls (or a page past the first) has none."""
    async with Dashboard(store, port=0) as board:
        _, body, _ = await get(client, board, "/api/calls?model=gpt4o")
        assert body["calls"] == [] and body["hints"] == {"model": ["gpt-4o"]}
        _, body, _ = await get(client, board, "/api/calls?model=claude-sonet&provider=antropic")
        assert body["hints"] == {"model": ["claude-sonnet-4-5"], "provider": ["anthropic"]}
        _, body, _ = await get(client, board, "/api/calls?model=gpt-4o&provider=google")
        assert body["calls"] == [] and body["hints"] == {}  # each matches calls; not together
        _, body, _ = await get(client, board, "/api/calls?model=zzzzzz")
        assert body["hints"] == {"model": []}
        _, body, _ = await get(client, board, "/api/calls?model=gpt-4o")
        assert body["calls"] and "hints" not in body


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_call_by_id_and_content_only_when_captured(
    tmp_path: Path, client: aiohttp.ClientSession, kind: str
) -> None:
    """/api/calls/{id} finds a call by id in the whole store, however old (no window is read);
    captured content comes apart from the other attributes; an unknown id is 404."""
    now = datetime.now(UTC)
    captured = make_call(
        1,
        call_id="with/content",
        timestamp=now - timedelta(days=400),
        attributes={"gen_ai.input.messages": "[hi]", "app.user": "u1"},
    )
    store: Any = MemoryStore(capacity=5000) if kind == "memory" else SQLiteStore(tmp_path / "c.db")
    async with store:
        await store.add_many([captured, *recent_calls(2500, now=now)])
        await store.flush()
        async with Dashboard(store, port=0) as board:
            status, body, _ = await get(client, board, "/api/calls/with%2Fcontent")
            assert status == 200
            assert body["call"]["content"] == {"gen_ai.input.messages": "[hi]"}
            assert body["call"]["attributes"] == {"app.user": "u1"}
            assert body["call"]["timestamp"] == captured.timestamp.isoformat().replace(
                "+00:00", "Z"
            )
            status, body, _ = await get(client, board, "/api/calls/call-000000")
            assert status == 200 and body["call"]["call_id"] == "call-000000"
            status, body, _ = await get(client, board, "/api/calls/no-such-call")
            assert status == 404 and "no-such-call" in body["error"]


async def test_trace_in_time_order_with_nesting(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """/api/traces/{id}: each call after its parent, siblings in time order, with depth."""
    async with Dashboard(store, port=0) as board:
        status, body, _ = await get(client, board, "/api/traces/trace-a")
        assert status == 200
        assert [(i["call"]["call_id"], i["depth"]) for i in body["calls"]] == [
            ("agent-root", 0),
            ("agent-plan", 1),
            ("agent-tool", 2),
            ("agent-answer", 1),
        ]
        assert body["complete"] is True and body["trace_id"] == "trace-a"
        status, body, _ = await get(client, board, "/api/traces/nope")
        assert status == 404


async def test_a_trace_longer_than_the_bound_shows_its_oldest(
    client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace of more than MAX_TRACE calls (remote spans may share any trace id) answers its
    oldest MAX_TRACE calls with ``complete`` false."""
    monkeypatch.setattr(_api, "MAX_TRACE", 5)
    now = datetime.now(UTC)
    calls = [
        make_call(k, trace_id="big", timestamp=now - timedelta(seconds=60 - k)) for k in range(8)
    ]
    async with MemoryStore() as store, Dashboard(store, port=0) as board:
        await store.add_many(calls)
        status, body, _ = await get(client, board, "/api/traces/big")
    assert status == 200 and body["complete"] is False
    assert [i["call"]["call_id"] for i in body["calls"]] == [c.call_id for c in calls[:5]]


async def test_trace_with_a_parent_cycle_shows_every_call_once(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Remote spans whose parent ids form a loop still give each call once."""
    now = datetime.now(UTC)
    looped = [
        make_call(
            k,
            call_id=f"c{k}",
            timestamp=now - timedelta(seconds=10 - k),
            trace_id="t",
            span_id=f"s{k}",
            parent_span_id=f"s{(k + 1) % 3}",
        )
        for k in range(3)
    ]
    async with MemoryStore() as store, Dashboard(store, port=0) as board:
        await store.add_many(looped)
        status, body, _ = await get(client, board, "/api/traces/t")
    assert status == 200
    assert sorted(i["call"]["call_id"] for i in body["calls"]) == ["c0", "c1", "c2"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        pytest.param("/api/calls?bogus=1", "unknown parameter 'bogus'", id="unknown"),
        pytest.param("/api/calls?window=forever", "window='forever'", id="window"),
        pytest.param("/api/calls?window=0m", "more than 0", id="zero-window"),
        pytest.param("/api/calls?window=400d", "366 days", id="long-window"),
        pytest.param("/api/calls?since=yesterday", "ISO 8601", id="since"),
        pytest.param("/api/calls?until=2026-01-01", "until needs since", id="until-alone"),
        pytest.param(
            "/api/calls?since=2026-01-02&until=2026-01-01", "later than since", id="backwards"
        ),
        pytest.param("/api/calls?window=1h&since=2026-01-01", "not both", id="window-and-since"),
        pytest.param("/api/calls?status=maybe", "status='maybe'", id="status"),
        pytest.param("/api/calls?limit=0", "1..1000", id="limit-zero"),
        pytest.param("/api/calls?limit=5000", "1..1000", id="limit-big"),
        pytest.param("/api/calls?limit=ten", "whole number", id="limit-text"),
        pytest.param("/api/calls?order=random", "order='random'", id="order"),
        pytest.param("/api/calls?model=a&model=b", "more than once", id="repeated"),
        pytest.param("/api/calls?sort=price", "sort='price'", id="sort"),
        pytest.param("/api/calls?after=garbage", "after='garbage'", id="cursor"),
        pytest.param("/api/calls?model=", "empty", id="empty"),
        pytest.param("/api/summary?by=colour", "by='colour'", id="by"),
        pytest.param("/api/summary?total=no", "total='no'", id="total"),
        pytest.param("/api/summary?order=3", "order='3'", id="order"),
        pytest.param("/api/timeseries?limit=3", "unknown parameter 'limit'", id="other-route"),
        pytest.param("/api/timeseries?bucket=1s&window=7d", "2000 buckets", id="buckets"),
        pytest.param("/api/timeseries?bucket=5 minutes", "bucket='5 minutes'", id="bucket"),
        pytest.param("/api/calls/x?at=noon", "takes no parameters", id="lookup-at"),
        pytest.param("/api/traces/x?window=1h", "takes no parameters", id="lookup-window"),
    ],
)
async def test_bad_parameters_are_400_with_a_reason(
    store: SQLiteStore, client: aiohttp.ClientSession, path: str, says: str
) -> None:
    """A parameter the API cannot use is answered 400 with a message naming it."""
    async with Dashboard(store, port=0) as board:
        status, body, headers = await get(client, board, path)
    assert status == 400
    assert says in body["error"]
    assert headers["Content-Type"].startswith("application/json")


async def test_unknown_paths_are_404(store: SQLiteStore, client: aiohttp.ClientSession) -> None:
    """Other paths, other static files and path tricks are 404; the API lists its routes."""
    async with Dashboard(store, port=0) as board:
        for path in ("/nope", "/static/../_server.py", "/static/index.html", "/static/x.js"):
            status, _, _ = await get(client, board, path)
            assert status == 404, path
        status, body, _ = await get(client, board, "/api/nope")
        assert status == 404 and "/api/summary" in body["routes"]


async def test_a_store_that_fails_is_503_and_the_dashboard_recovers(
    client: aiohttp.ClientSession,
) -> None:
    """PostgreSQL stopped under the dashboard: /api/summary (its two reads made at once) and
    the other routes answer 503 naming the failure, nothing is left running; once the server
    is back the same routes answer 200 again."""
    server = await asyncio.to_thread(start_server, private=True)
    try:
        dsn = await fresh_schema(server)
        async with (
            PostgresStore(dsn, connect_timeout=2, pool_size=2) as store,
            Dashboard(store, port=0) as board,
        ):
            await store.add_many(recent_calls(50))
            await store.flush()
            status, body, _ = await get(client, board, "/api/summary?window=24h")
            assert status == 200 and body["total"]["calls"] == 50
            await asyncio.to_thread(server.stop, "fast")  # a clean stop keeps the calls
            for path in ("/api/summary?window=24h", "/api/calls", "/api/calls/call-000001"):
                status, body, _ = await get(client, board, path)
                assert status == 503 and "the store failed" in body["error"], path
            await asyncio.to_thread(server.start)
            status, body, _ = await get(client, board, "/api/summary?window=24h")
            assert status == 200 and body["total"]["calls"] == 50
    finally:
        await asyncio.to_thread(stop_server, server)


class ReadOnly:
    """A real store behind the read half of the protocol: any other call fails the test."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in (
            "query",
            "page",
            "count",
            "summary",
            "timeseries",
            "get",
            "trace",
            "get_trace",
            "traces",
        ):
            self.reads.append(name)
            return getattr(self.inner, name)
        raise AssertionError(f"the dashboard used store.{name}")


async def test_read_only(store: SQLiteStore, client: aiohttp.ClientSession) -> None:
    """No route writes: other methods are 405 on every path, the dashboard only calls the
    store's read methods, and the store holds the same calls afterwards."""
    before = await store.query()
    reader = ReadOnly(store)
    async with Dashboard(reader, port=0) as board:  # type: ignore[arg-type]
        for path in ROUTES:
            status, _, _ = await get(client, board, path)
            assert status == 200, path
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                async with client.request(method, board.url.rstrip("/") + path, data=b"{}") as r:
                    assert r.status == 405, (method, path)
                    assert r.headers["Allow"] == "GET, HEAD"
        reads = {"page", "count", "summary", "timeseries", "get", "trace", "get_trace", "traces"}
    assert set(reader.reads) <= reads
    assert set(reader.reads) >= reads - {"count"}
    await store.flush()
    assert await store.query() == before


async def test_security_headers_on_every_answer(
    store: SQLiteStore, client: aiohttp.ClientSession
) -> None:
    """Every answer, errors included, carries the CSP (no inline script) and nosniff."""
    async with Dashboard(store, port=0, auth_token="t") as board:
        for path in ("/", "/api/calls", "/nope", "/api/calls?bogus=1"):
            for auth in ({}, {"Authorization": "Bearer t"}):
                _, _, headers = await get(client, board, path, headers=auth)
                csp = headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp
                assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
                assert headers["X-Content-Type-Options"] == "nosniff"


async def test_token_guards_every_route(store: SQLiteStore, client: aiohttp.ClientSession) -> None:
    """With auth_token: 401 without or with a wrong token, on pages and API alike; the right
    bearer works; ``/?token=`` sets an HttpOnly SameSite cookie that then works too."""
    async with Dashboard(store, port=0, auth_token="s3cret") as board:
        for path in ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                status, _, answer = await get(client, board, path, headers=headers)
                assert status == 401, (path, headers)
                assert answer["WWW-Authenticate"] == "Bearer"
            status, _, _ = await get(
                client, board, path, headers={"Authorization": "Bearer s3cret"}
            )
            assert status == 200, path
        status, _, _ = await get(client, board, "/?token=wrong", allow_redirects=False)
        assert status == 401
        status, _, headers = await get(client, board, "/?token=s3cret", allow_redirects=False)
        assert status == 303 and headers["Location"] == "/"
        link = "/?model=gpt-4o&token=s3cret&call=c%201"  # a deep link keeps its view
        status, _, headers = await get(client, board, link, allow_redirects=False)
        assert status == 303 and headers["Location"] == "/?model=gpt-4o&call=c+1"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret" not in cookie
        jar = SimpleCookie(cookie)
        sent = {"Cookie": f"{COOKIE}={jar[COOKIE].value}"}
        status, body, _ = await get(client, board, "/api/calls?limit=1", headers=sent)
        assert status == 200 and len(body["calls"]) == 1
        status, _, _ = await get(client, board, "/", headers={"Cookie": f"{COOKIE}=forged"})
        assert status == 401
        status, _, _ = await get(client, board, "/api/calls?token=s3cret")
        assert status == 401  # only the page's ?token= link logs a browser in


async def test_lifecycle_port_and_url(store: SQLiteStore, client: aiohttp.ClientSession) -> None:
    """port=0 binds a free port; url names it; start/stop are idempotent; it may restart."""
    board = Dashboard(store, port=0)
    assert board.host == "127.0.0.1" and not board.is_running
    await board.start()
    await board.start()
    try:
        assert board.port > 0 and board.url == f"http://127.0.0.1:{board.port}/"
        status, text, headers = await get(client, board, "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert '<script src="/static/app.js"' in text
    finally:
        await board.stop()
        await board.stop()
    assert not board.is_running
    await board.start()
    await board.stop()


async def test_default_binds_loopback_port_4320(store: SQLiteStore) -> None:
    """By default the dashboard binds 127.0.0.1:4320."""
    board = Dashboard(store)
    assert (board.host, board.port, board.url) == ("127.0.0.1", 4320, "http://127.0.0.1:4320/")


async def test_taken_port_and_bad_settings_are_config_errors(store: SQLiteStore) -> None:
    """A port in use, a port out of range and an empty token are ConfigError."""
    async with Dashboard(store, port=0) as first:
        with pytest.raises(ConfigError, match="cannot bind"):
            await Dashboard(store, port=first.port).start()
    for bad in (-1, 70000, True, "80"):
        with pytest.raises(ConfigError, match="port"):
            Dashboard(store, port=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="auth_token"):
        Dashboard(store, auth_token="")


async def test_missing_aiohttp_names_the_extra(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without aiohttp the dashboard raises MissingDependencyError naming the ui extra."""
    monkeypatch.setitem(sys.modules, "aiohttp.web", None)
    with pytest.raises(MissingDependencyError, match=r"asynctelemetry\[ui\]"):
        Dashboard(store)


class Gated(MemoryStore):
    """A MemoryStore whose pages wait for a gate: requests stay in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = 0

    async def page(self, **filters: Any) -> CallPage:  # type: ignore[override]
        self.waiting += 1
        await self.gate.wait()
        return await super().page(**filters)


async def test_requests_over_the_bound_are_429(client: aiohttp.ClientSession) -> None:
    """More requests in flight than max_in_flight are answered 429 with Retry-After."""
    store = Gated()
    async with Dashboard(store, port=0, max_in_flight=2) as board:
        waiting = [asyncio.create_task(get(client, board, "/api/calls")) for _ in range(2)]
        while store.waiting < 2:
            await asyncio.sleep(0.01)
        status, _, headers = await get(client, board, "/api/calls")
        assert status == 429 and headers["Retry-After"] == "1"
        store.gate.set()
        assert [s for s, _, _ in await asyncio.gather(*waiting)] == [200, 200]


async def test_collected_while_serving_warns(store: SQLiteStore) -> None:
    """A dashboard dropped while serving warns with ResourceWarning, as the stores do."""
    board = Dashboard(store, port=0)
    await board.start()
    try:
        with pytest.warns(ResourceWarning, match="garbage-collected while serving"):
            board.__del__()
        assert "serving" in repr(board)
    finally:
        await board.stop()
    assert "stopped" in repr(board)


async def test_connections_past_the_cap_make_room(store: SQLiteStore) -> None:
    """At 64 open connections that send nothing, one more from the same address is served: the
    oldest silent one is closed to admit it."""
    async with Dashboard(store, port=0) as board:
        held = [await asyncio.open_connection("127.0.0.1", board.port) for _ in range(64)]
        async with aiohttp.ClientSession() as client:
            status, _, _ = await get(client, board, "/api/calls")
        assert status == 200
        try:
            gone = await asyncio.wait_for(held[0][0].read(), timeout=10)
        except ConnectionResetError:  # the server aborts it: a reset, or an empty read
            gone = b""
        assert gone == b""
        assert (board.admission.refused, board.admission.shed) == (0, 1)
        for _, w in held:
            w.close()


async def test_errors_by_type_and_message(client: aiohttp.ClientSession, tmp_path: Path) -> None:
    """/api/errors: the store's error groups of the window (type, message, calls, first and
    last seen, models); error_type= and error_message= filter every route; status=ok has none."""
    now = datetime.now(UTC)
    failures = [
        ("RateLimitError", "slow down", "gpt-4o"),
        ("RateLimitError", "slow down", "claude-sonnet-4-5"),
        ("RateLimitError", "quota", "gpt-4o"),
        ("APITimeoutError", "timed out", "gpt-4o"),
    ]
    calls = [
        make_call(7000 + i, timestamp=now - timedelta(minutes=10 - i), status="error",
                  error_type=kind, error_message=message, model=model, request_model=None)
        for i, (kind, message, model) in enumerate(failures)
    ]  # fmt: skip
    async with SQLiteStore(tmp_path / "calls.db") as store:
        await store.add_many([*calls, make_call(7100, timestamp=now, status="ok")])
        await store.flush()
        async with Dashboard(store, port=0) as board:
            status, body, _ = await get(client, board, "/api/errors?window=1h")
            assert status == 200
            expected = await store.error_groups(since=now - timedelta(hours=1))
            assert [(g["error_type"], g["error_message"], g["calls"]) for g in body["groups"]] == [
                (g.error_type, g.error_message, g.calls) for g in expected
            ]
            assert body["groups"][0] == {
                "error_type": "RateLimitError",
                "error_message": "slow down",
                "calls": 2,
                "first_seen": calls[0].timestamp.isoformat().replace("+00:00", "Z"),
                "last_seen": calls[1].timestamp.isoformat().replace("+00:00", "Z"),
                "models": ["claude-sonnet-4-5", "gpt-4o"],
            }
            one = "error_type=RateLimitError&error_message=slow%20down"
            _, body, _ = await get(client, board, f"/api/calls?{one}")
            assert sorted(c["call_id"] for c in body["calls"]) == sorted(
                c.call_id for c in calls[:2]
            )
            _, body, _ = await get(client, board, f"/api/summary?{one}")
            assert body["total"]["calls"] == 2 and body["query"]["error_type"] == "RateLimitError"
            _, body, _ = await get(client, board, "/api/timeseries?error_type=RateLimitError")
            assert sum(b["calls"] for b in body["buckets"]) == 3
            _, body, _ = await get(client, board, "/api/errors?status=ok")
            assert body["groups"] == []
            status, body, _ = await get(client, board, "/api/errors?limit=0")
            assert status == 400 and "limit" in body["error"]
