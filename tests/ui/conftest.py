"""Fixtures of the dashboard tests: calls of the last hour, a served store, and Chromium.

The browser tests are synchronous (Playwright's sync API) and serve the store and the dashboard
from an event loop in a thread of their own, the way an application serves it from its loop.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from asynctelemetry import LLMCall, SQLiteStore
from asynctelemetry.ui import Dashboard
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterator, Sequence
    from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROUTES = ("support-chat", "summarize", None)
#: Longest wait for the page (Playwright's default is 30 s); live updates poll every 2 s.
WAIT_MS = 15_000


def recent_calls(n: int = 60, now: datetime | None = None) -> list[LLMCall]:
    """``n`` calls spread over the last 50 minutes: three models, errors, sessions, routes,
    cached and reasoning tokens, and one trace of nested calls."""
    now = now or datetime.now(UTC)
    calls = []
    for i in range(n):
        calls.append(
            make_call(
                i,
                timestamp=now - timedelta(seconds=50 * (n - i)),
                route_name=ROUTES[i % 3],
                cached_input_tokens=(40 if i % 2 else 0),
                reasoning_tokens=(10 if i % 3 == 0 else None),
                output_tokens=20 + i % 50 + (10 if i % 3 == 0 else 0),
                cost_usd=0.001 * (1 + i % 5),
                attributes={"app.user": f"u{i % 3}"},
            )
        )
    return calls


def trace_calls(now: datetime | None = None) -> list[LLMCall]:
    """An agent's request: a root call, two children, a grandchild (trace ``trace-a``)."""
    now = now or datetime.now(UTC)
    shape = [("root", None), ("plan", "root"), ("tool", "plan"), ("answer", "root")]
    return [
        make_call(
            1000 + k,
            call_id=f"agent-{name}",
            timestamp=now - timedelta(seconds=100 - k),
            trace_id="trace-a",
            span_id=f"span-{name}",
            parent_span_id=None if parent is None else f"span-{parent}",
            status="ok",
        )
        for k, (name, parent) in enumerate(shape)
    ]


class Served:
    """A SQLite store and a :class:`Dashboard` on an event loop running in a thread."""

    def __init__(self, path: Path, *, token: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = SQLiteStore(path)
        self.dashboard = Dashboard(self.store, port=0, auth_token=token)
        self.run(self._start())

    async def _start(self) -> None:
        await self.store.open()
        await self.dashboard.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the dashboard's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def add(self, calls: Sequence[LLMCall]) -> None:
        """Keep ``calls`` and flush them, so the next read sees them."""

        async def add() -> None:
            await self.store.add_many(calls)
            await self.store.flush()

        self.run(add())

    @property
    def url(self) -> str:
        """The page's address."""
        return self.dashboard.url

    def close(self) -> None:
        """Stop the dashboard, close the store, stop the loop."""

        async def close() -> None:
            await self.dashboard.stop()
            await self.store.aclose()

        try:
            self.run(close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A dashboard over a SQLite store holding :func:`recent_calls` and :func:`trace_calls`."""
    server = Served(tmp_path / "calls.db")
    try:
        server.add([*recent_calls(), *trace_calls()])
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright, shared by the browser tests.

    Module-scoped, not session-scoped: Playwright's sync API keeps its event loop marked as
    running in this thread while it is alive, and pytest-asyncio cannot run an async test in
    a thread whose loop is running; pytest ends the fixture as soon as the worker moves on to
    another module's test, so async tests after it run normally.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page and what it did: console errors, page errors, requests, response sizes."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    bytes_in: int = 0

    def open(self, url: str) -> None:
        """Open ``url`` and wait for the page's first complete refresh."""
        self.page.goto(url)
        self.refreshed(1)

    def refreshed(self, at_least: int) -> None:
        """Wait until the page has drawn everything ``at_least`` times."""
        self.page.wait_for_function(
            f"() => Number(document.body.dataset.refreshes || 0) >= {at_least}", timeout=WAIT_MS
        )

    def showing(self, *parts: str) -> None:
        """Wait until the page shows a query holding every one of ``parts`` (``model=x``)."""
        wanted = " && ".join(f"q.includes({part!r})" for part in parts)
        self.page.wait_for_function(
            f"() => {{ const q = document.body.dataset.query || ''; return {wanted}; }}",
            timeout=WAIT_MS,
        )

    def column(self, index: int) -> list[str]:
        """The text of one column of the recent-calls table (0-based)."""
        texts: list[str] = self.page.eval_on_selector_all(
            "#calls tbody tr.call", f"rows => rows.map(r => r.cells[{index}].textContent)"
        )
        return texts


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    """A fresh browser context and page, watched; fails the test on errors or remote requests."""
    context = browser.new_context(viewport={"width": 1360, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    seen = Watched(page)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
    page.on("request", lambda r: seen.requests.append(r.url))

    def count(response: Any) -> None:
        try:
            seen.bytes_in += len(response.body())
        except Exception:  # a redirect has no body
            pass

    page.on("response", count)
    try:
        yield seen
        assert seen.console_errors == []
        assert seen.page_errors == []
        assert seen.requests, "the page made no request"
        for url in seen.requests:
            assert urlsplit(url).hostname == "127.0.0.1", url
    finally:
        context.close()
