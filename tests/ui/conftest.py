"""Fixtures of the dashboard tests: calls of the last hour, a served store, and Chromium.

The browser tests are synchronous (Playwright's sync API) and serve the store and the dashboard
from an event loop in a thread of their own, the way an application serves it from its loop.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

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
