"""The plumbing behind the live view: a sink that taps the calls, and the refresh loop.

:class:`CallTap` is a sink given every call the collector stores (through the collector's
``metrics=`` hook); it keeps a bounded window of the latest calls and, when asked, prints each call
as a line or a JSON object (for pipes). :class:`LiveView` redraws :func:`~._view.render` about
twice a second from the store's summaries and the tap's window, without a thread (rich's
auto-refresh thread is off; the loop is an asyncio task).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Final, Self, TextIO

from rich.live import Live

from .._budgets._sql import stored_budgets
from .._exceptions import ConfigError, StoreError
from ._view import GROUP_ROWS, ViewState, render

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rich.console import Console

    from .._alerts import AlertMonitor
    from .._budgets import BudgetStatus
    from .._record import LLMCall
    from .._stores import CallStore

__all__ = ["CallTap", "LiveView", "silence_stdout"]

#: Seconds between two reads of the budgets kept in the store (a query of their own).
BUDGETS_EVERY: Final = 5.0


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null once its reader is gone.

    Python would otherwise report the broken pipe again when it flushes stdout at exit.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (captured output)
        pass


class CallTap:
    """A sink that remembers the latest ``window`` calls and optionally prints each one.

    Args:
        window: most calls remembered (newest first in :attr:`latest`).
        line: formats one call for printing (a log line or JSON); ``None`` prints nothing.
        stream: where lines go (``sys.stdout`` at the time of writing by default).
        on_broken_pipe: called once when the reader of ``stream`` has gone away (``| head``);
            printing stops and the calls are still kept.
    """

    def __init__(
        self,
        window: int = 1000,
        line: Callable[[LLMCall], str] | None = None,
        stream: TextIO | None = None,
        on_broken_pipe: Callable[[], None] | None = None,
    ) -> None:
        self._window: deque[LLMCall] = deque(maxlen=window)
        self._line = line
        self._stream = stream
        self._on_broken_pipe = on_broken_pipe
        self.seen = 0
        self.last_error: LLMCall | None = None

    @property
    def latest(self) -> list[LLMCall]:
        """The remembered calls, newest first."""
        return list(reversed(self._window))

    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Remember (and print) ``calls``; never waits."""
        self._window.extend(calls)
        self.seen += len(calls)
        for call in calls:
            if call.status == "error":
                self.last_error = call
        if self._line is not None and calls:
            stream = self._stream or sys.stdout
            try:
                stream.write("".join(self._line(call) + "\n" for call in calls))
                stream.flush()
            except BrokenPipeError:
                self._line = None
                silence_stdout()
                if self._on_broken_pipe is not None:
                    self._on_broken_pipe()

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Sink interface: the same as :meth:`emit_nowait`."""
        self.emit_nowait(calls)

    async def flush(self) -> None:
        """Nothing is buffered."""

    async def aclose(self) -> None:
        """Nothing to release."""


class LiveView:
    """Redraws the live view of ``store`` and ``tap`` on ``console`` every ``interval`` seconds.

    Use it as ``async with LiveView(...):``; leaving draws the final state and keeps it on screen
    (or clears it, with ``transient=True``).
    """

    def __init__(
        self,
        store: CallStore,
        tap: CallTap,
        console: Console,
        *,
        title: str,
        counters: Callable[[], dict[str, int]] = dict,
        interval: float = 0.5,
        transient: bool = False,
        alerts: AlertMonitor | None = None,
    ) -> None:
        self.store = store
        self.tap = tap
        self.console = console
        self.title = title
        self.counters = counters
        self.interval = interval
        self.alerts = alerts
        self._budgets: list[BudgetStatus] = []
        self._budgets_read = -math.inf  # budgets are read every BUDGETS_EVERY seconds
        self._started = time.monotonic()
        self._live = Live(console=console, auto_refresh=False, transient=transient)
        self._task: asyncio.Task[None] | None = None

    async def snapshot(self) -> ViewState:
        """The current state: the store's summaries, the tap's window, the counters."""
        by_model = await self.store.summary(by="request_model")
        # Only the rows the table shows: one more, for the calls of no route (not shown).
        group_by = "route"
        by_group = await self.store.summary(by="route", limit=GROUP_ROWS + 1)
        if all(row.key is None for row in by_group):
            group_by = "session"
            by_group = await self.store.summary(by="session", limit=GROUP_ROWS + 1)
        if time.monotonic() - self._budgets_read >= BUDGETS_EVERY:
            self._budgets_read = time.monotonic()
            try:
                self._budgets = await stored_budgets(self.store)
            except (ConfigError, StoreError):  # a memory store keeps none; a failed read: later
                self._budgets = []
        firing = [
            f"{alert} [{key}]" if key is not None else alert
            for alert, key, _ in (self.alerts.firing() if self.alerts is not None else ())
        ]
        return ViewState(
            title=self.title,
            budgets=self._budgets,
            alerts_firing=firing,
            uptime_s=time.monotonic() - self._started,
            by_model=by_model,
            by_group=by_group,
            group_by=group_by,
            window=self.tap.latest,
            last_error=self.tap.last_error,
            counters=self.counters(),
        )

    async def refresh(self) -> None:
        """Draw the current state once."""
        state = await self.snapshot()
        self._live.update(render(state, self.console.width), refresh=True)

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Self:
        self._live.start()
        self._task = asyncio.create_task(self._loop(), name="asynctelemetry live view")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            if exc_type is None:
                await self.refresh()
        finally:
            self._live.stop()
