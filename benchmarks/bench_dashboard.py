"""Dashboard API routes over 1,000,000 calls in SQLite, each beside the store method it calls.

Fills a SQLiteStore with 1,000,000 calls (``--quick``: 100,000) spread over the last 7 days
(eight models, four providers, 20,000 sessions, five routes, errors, traces), serves it with
``asynctelemetry.ui.Dashboard`` on 127.0.0.1, and times every request the page makes (its
summaries by model, its top-10 sessions and routes, its charts' time series, its recent calls
and its live poll) and the lookups by id over the 1-hour, 24-hour and 7-day windows with a real
HTTP client (aiohttp). Beside each route: the store methods the route
calls, timed directly in the same run (the baseline: what the store itself costs). The goal is
each API call under 1 s; the route's own cost is the difference (parsing, JSON encoding, HTTP).

Run: ``.venv/bin/python benchmarks/bench_dashboard.py`` (``--quick`` for fewer calls).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine, table

from asynctelemetry import LLMCall, SQLiteStore
from asynctelemetry.ui import Dashboard

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "o3-mini",
    "mistral-large",
)
PROVIDERS = ("openai", "openai", "anthropic", "anthropic", "google", "google", "openai", "mistral")
WINDOWS = ("1h", "24h", "7d")
#: Distinct sessions (a week of a busy app: the page's top-10 sessions must stay cheap).
SESSIONS = 20_000
SPAN = timedelta(days=7)
REPEAT = 3
WHOLE = timedelta(days=36525)  # the one bucket /api/summary asks for (the window's percentiles)


def call(i: int, n: int, now: datetime) -> LLMCall:
    """Call ``i`` of ``n``, spread evenly over the 7 days before ``now`` (oldest first)."""
    m = i % len(MODELS)
    return LLMCall.trusted(
        {
            "call_id": f"bench-{i:09d}",
            "timestamp": now - SPAN + SPAN * (i / n),
            "model": MODELS[m],
            "request_model": MODELS[m],
            "provider": PROVIDERS[m],
            "operation": "chat",
            "source": "collector",
            "trace_id": f"{i // 4:032x}",
            "span_id": f"{i:016x}",
            "parent_span_id": f"{i - 1:016x}" if i % 4 else None,
            "session_id": f"session-{i % SESSIONS}",
            "route_name": f"route-{i % 5}",
            "status": "error" if i % 23 == 0 else "ok",
            "input_tokens": 500 + i % 1000,
            "output_tokens": 50 + i % 300,
            "cached_input_tokens": i % 256,
            "reasoning_tokens": i % 64,
            "duration_ms": 200.0 + (i % 5000) * 0.37,
            "ttft_ms": 20.0 + (i % 300) * 0.11,
            "tool_calls": 0,
            "cost_usd": (i % 1000) * 1e-5,
            "attributes": {},
        }
    )


async def fill(store: SQLiteStore, n: int, now: datetime) -> float:
    """Write ``n`` calls through the store's own API; seconds taken."""
    started = time.perf_counter()
    step = 20_000
    for start in range(0, n, step):
        await store.add_many([call(i, n, now) for i in range(start, min(n, start + step))])
    await store.flush()
    return time.perf_counter() - started


async def paired(
    api: Callable[[], Awaitable[Any]], store: Callable[[], Awaitable[Any]]
) -> tuple[float, float]:
    """The route and its store baseline, run in turn ``REPEAT`` times (once when a run takes
    over 2 s); the fastest of each, in milliseconds. Alternating keeps the two under the same
    load on a busy machine."""
    api_times: list[float] = []
    store_times: list[float] = []
    for _ in range(REPEAT):
        for fn, times in ((api, api_times), (store, store_times)):
            started = time.perf_counter()
            await fn()
            times.append(time.perf_counter() - started)
        if max(api_times[-1], store_times[-1]) > 2.0:
            break
    return min(api_times) * 1000, min(store_times) * 1000


async def time_routes(store: Any, url: str, n: int) -> list[tuple[Any, ...]]:
    """Every API route of the dashboard serving ``store`` at ``url``, each beside the store
    methods it calls, over the 1-hour, 24-hour and 7-day windows, then the lookups by id
    (of calls made by :func:`call` over ``n`` calls: the store's own or generated alike)."""
    import aiohttp

    from asynctelemetry.ui._params import auto_bucket

    newest = n - 1234  # a call near the newest, its trace, and the oldest call
    target_call, oldest_call, target_trace = (
        f"bench-{newest:09d}",
        "bench-000000000",
        f"{newest // 4:032x}",
    )
    rows: list[tuple[Any, ...]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:

        async def get(path: str) -> None:
            async with http.get(url.rstrip("/") + path) as response:
                assert response.status == 200, (path, await response.text())
                await response.read()

        for window in WINDOWS:
            # the route's own window ends when the request arrives; the baseline uses one of
            # the same length ending now
            def span(w: str = window) -> dict[str, Any]:
                length = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": SPAN}[w]
                end = datetime.now(UTC)
                return {"since": end - length, "until": end}

            length = span()["until"] - span()["since"]
            bucket = auto_bucket(length)
            # Every request the page makes (app.js ``refresh`` and ``poll``), then the others.
            cases: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = [
                (
                    f"/api/summary?window={window}&by=request_model",
                    "summary(by=request_model) + timeseries(1 bucket)",
                    lambda: _both(
                        store.summary(by="request_model", **span()),
                        store.timeseries(bucket=WHOLE, **span()),
                    ),
                ),
                *(
                    (
                        f"/api/summary?window={window}&by={by}&total=false&limit=10",
                        f"summary(by={by}, limit=10)",
                        lambda by=by: store.summary(by=by, limit=10, **span()),
                    )
                    for by in ("session", "route")
                ),
                (
                    f"/api/timeseries?window={window}&by=request_model",
                    f"timeseries(bucket={bucket.total_seconds():g}s, by=request_model)",
                    lambda b=bucket: store.timeseries(bucket=b, by="request_model", **span()),
                ),
                (
                    f"/api/calls?window={window}&limit=100",
                    "query(limit=100, newest_first=True)",
                    lambda: store.query(limit=100, newest_first=True, **span()),
                ),
                (
                    f"/api/calls?window={window}&limit=1",
                    "query(limit=1, newest_first=True) (the live poll)",
                    lambda: store.query(limit=1, newest_first=True, **span()),
                ),
                (
                    f"/api/timeseries?window={window}&by=provider",
                    f"timeseries(bucket={bucket.total_seconds():g}s, by=provider)",
                    lambda b=bucket: store.timeseries(bucket=b, by="provider", **span()),
                ),
                (
                    f"/api/summary?window={window}&by=session&total=false",
                    "summary(by=session), every session (before top-N)",
                    lambda: store.summary(by="session", **span()),
                ),
            ]
            for path, baseline, direct in cases:
                api_ms, store_ms = await paired(lambda p=path: get(p), direct)
                rows.append(_row(path, baseline, api_ms, store_ms))
        # lookups by id: the store's index, whatever the window
        lookups: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = [
            (
                f"/api/calls/{target_call}",
                "get(call_id)",
                lambda: store.get(target_call),
            ),
            (
                f"/api/calls/{oldest_call}",
                "get(call_id), the oldest call",
                lambda: store.get(oldest_call),
            ),
            (
                f"/api/traces/{target_trace}",
                "trace(trace_id, limit=10001)",
                lambda: store.trace(target_trace, limit=10_001),
            ),
        ]
        for path, baseline, direct in lookups:
            api_ms, store_ms = await paired(lambda p=path: get(p), direct)
            rows.append(_row(path, baseline, api_ms, store_ms))
    return rows


#: Columns of the routes' table.
COLUMNS = ("route", "store baseline", "API ms", "store ms", "route's own ms", "under 1 s")


async def main(quick: bool) -> None:
    n = 100_000 if quick else 1_000_000
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        async with SQLiteStore(Path(tmp) / "calls.db") as store:
            fill_s = await fill(store, n, now)
            async with Dashboard(store, port=0) as board:
                rows = await time_routes(store, board.url, n)
    print(
        f"{machine()}; {n:,} calls over 7 days in SQLite (written in {fill_s:.1f} s through "
        f"add_many); route and store in turn, best of {REPEAT} (of 1 when a run takes over 2 s), "
        "milliseconds"
    )
    print()
    print(table(f"Dashboard API over {n:,} calls in SQLite (goal: each under 1 s)", rows, COLUMNS))


async def _both(first: Awaitable[Any], second: Awaitable[Any]) -> None:
    await first
    await second


def _row(path: str, baseline: str, api_ms: float, store_ms: float) -> tuple[Any, ...]:
    shown = path if len(path) <= 60 else path[:57] + "..."
    return (
        f"`{shown}`",
        baseline,
        f"{api_ms:.1f}",
        f"{store_ms:.1f}",
        f"{api_ms - store_ms:.1f}",
        "yes" if api_ms < 1000 else "**no**",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 calls instead of 1,000,000")
    asyncio.run(main(parser.parse_args().quick))
