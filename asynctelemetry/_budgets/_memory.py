"""The in-process ledger: reservations in a dict, exact under any number of tasks.

Layer 4. A reservation checks and holds with no ``await`` in between, so on one event loop no
two tasks can both see room that only one of them may take. Entries of windows that have ended
are dropped when a budget's window rolls over, so memory holds one entry per key per window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Budget, BudgetStatus, Hold, fits, statuses

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MemoryLedger"]

_Key = tuple[str, str, float]


class MemoryLedger:
    """Budgets for one process: exact, and lost when it exits (use a database to share them)."""

    def __init__(self) -> None:
        #: (budget name, key, window start) -> [spent, reserved]
        self._entries: dict[_Key, list[float]] = {}
        self._windows: dict[str, float] = {}  # the newest window seen per budget

    def _entry(self, budget: Budget, key: str, window: float) -> list[float]:
        name = budget.label
        if self._windows.get(name, window) < window:  # a new window: forget the ended ones
            self._entries = {
                k: v for k, v in self._entries.items() if k[0] != name or k[2] >= window
            }
        if window >= self._windows.get(name, window):
            self._windows[name] = window
        entry = self._entries.get((name, key, window))
        if entry is None:
            entry = self._entries[(name, key, window)] = [0.0, 0.0]
        return entry

    async def reserve(self, hold: Hold) -> tuple[float, float] | None:
        """Hold ``hold.amount`` if it fits, else the (spent, reserved) that refused it."""
        return self.reserve_now(hold)

    def reserve_now(self, hold: Hold) -> tuple[float, float] | None:
        """:meth:`reserve` without a coroutine (the tracer's hot path)."""
        entry = self._entry(hold.budget, hold.key, hold.window)
        spent, reserved = entry
        limit = hold.budget.limit_usd
        if not fits(spent + reserved, hold.amount, limit):
            return spent, reserved
        entry[1] = reserved + hold.amount
        return None

    async def settle(self, holds: Sequence[Hold], actual: float) -> None:
        """Release each hold and add ``actual`` to its budget's spend."""
        self.settle_now(holds, actual)

    def settle_now(self, holds: Sequence[Hold], actual: float) -> None:
        """:meth:`settle` without a coroutine (safe anywhere: no I/O, no lock)."""
        for hold in holds:
            entry = self._entry(hold.budget, hold.key, hold.window)
            entry[1] = max(0.0, entry[1] - hold.amount)
            entry[0] += actual

    async def status(self, budgets: Sequence[Budget]) -> list[BudgetStatus]:
        """Each budget's keys in its current window, sorted by budget then key."""
        return statuses(
            (
                (name, key, window, 0.0, spent, reserved)
                for (name, key, window), (spent, reserved) in self._entries.items()
            ),
            budgets,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
