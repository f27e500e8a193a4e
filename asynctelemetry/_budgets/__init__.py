"""Budgets: spend stops where the user said, before a request is sent.

Layer 4. A :class:`Budget` is a limit in USD over a window (``per``: an hour, a day, a month, or
for ever) for one key (``by``: the call's user, session, agent or a tag; or one budget for all).
:class:`Budgets` is what the tracer holds: at a call's entry it *reserves* an estimate of the
call's cost against every budget the call falls under, and refuses the call
(:class:`~asynctelemetry.BudgetExceededError`, no request sent) when a reservation does not fit
what is left; when the call ends its actual cost replaces the reservation.

Reservations live in a :class:`Ledger`: in memory for one process (exact, no ``await`` between the
check and the hold, so tasks cannot race), or in the tracer's PostgreSQL / SQLite database, where
one atomic statement checks and holds, so many processes share a limit (``_sql.py``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from .._exceptions import BudgetExceededError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Mapping, Sequence

    from .._pricing import PriceTable
    from .._record import LLMCall

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "Budget",
    "BudgetStatus",
    "Budgets",
    "Hold",
    "Ledger",
    "estimate_request",
    "fits",
    "ledger_for",
    "statuses",
]

PERIODS: Final = ("hour", "day", "month")
#: Output tokens assumed for a request that sets no output limit (``max_tokens`` and its kin).
DEFAULT_OUTPUT_TOKENS: Final = 4096
#: Characters per token assumed for a prompt (a generous rate: English text is ~4).
CHARS_PER_TOKEN: Final = 3
_BY_FIELDS: Final = {"user": "user_id", "session": "session_id", "agent": "agent_name"}
_OUTPUT_LIMIT_KEYS: Final = ("max_tokens", "max_completion_tokens", "max_output_tokens")
#: Slack for float sums: a spend equal to the limit within this is "at the limit", not past it.
EPSILON: Final = 1e-9


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit: ``limit_usd`` per window (``per``) and key (``by``).

    Args:
        limit_usd: the most the calls under this budget may cost in one window (finite, >= 0).
        per: ``"hour"``, ``"day"`` or ``"month"`` (windows start on UTC boundaries), or ``None``
            for one window for ever.
        by: ``None`` (one budget for every call), ``"user"``, ``"session"``, ``"agent"`` or
            ``"tag:NAME"`` (the call's attribute ``NAME``, or its tag ``NAME:value``). A call
            without that key is not limited by this budget.
        name: shown in errors, status and metrics; defaults to a name made of the others.

    Raises:
        ConfigError: a negative or non-finite limit, an unknown ``per`` or ``by``.
    """

    limit_usd: float
    per: str | None = None
    by: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        limit = self.limit_usd
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise ConfigError(f"limit_usd must be a number, got {type(limit).__name__}")
        if not (math.isfinite(limit) and limit >= 0):
            raise ConfigError(f"limit_usd must be finite and >= 0, got {limit!r}")
        object.__setattr__(self, "limit_usd", float(limit))
        if self.per is not None and self.per not in PERIODS:
            raise ConfigError(f"per must be one of {', '.join(PERIODS)} or None, got {self.per!r}")
        by = self.by
        if by is not None and by not in _BY_FIELDS and not _tag_name(by):
            raise ConfigError(
                f"by must be None, 'user', 'session', 'agent' or 'tag:NAME', got {by!r}"
            )
        if self.name is None:
            parts = [f"${self.limit_usd:g}"]
            if self.per:
                parts.append(f"per {self.per}")
            if by:
                parts.append(f"by {by}")
            object.__setattr__(self, "name", " ".join(parts))
        elif not isinstance(self.name, str) or not self.name:
            raise ConfigError("name must be a non-empty str")

    @property
    def label(self) -> str:
        """The budget's name (always set after construction)."""
        return self.name or ""

    def key_of(self, fields: Mapping[str, Any], attributes: Mapping[str, Any]) -> str | None:
        """The key a call with these fields falls under: ``""`` for an unkeyed budget, ``None``
        when the call carries no such key (the budget does not apply)."""
        by = self.by
        if by is None:
            return ""
        field = _BY_FIELDS.get(by)
        if field is not None:
            value = fields.get(field)
            return value if isinstance(value, str) and value else None
        name = by[4:]
        value = attributes.get(name)
        if value is not None and not isinstance(value, bool):
            return str(value)
        for tag in fields.get("tags") or ():
            for sep in (":", "="):
                head, found, rest = tag.partition(sep)
                if found and head == name and rest:
                    return str(rest)
        return None

    def window_start(self, now: float) -> float:
        """The start (Unix seconds, UTC) of the window holding ``now``; 0 for ``per=None``."""
        per = self.per
        if per is None:
            return 0.0
        if per == "hour":
            return now - now % 3600
        if per == "day":
            return now - now % 86400
        day = datetime.fromtimestamp(now, UTC)
        return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def _tag_name(by: object) -> bool:
    return isinstance(by, str) and by.startswith("tag:") and len(by) > 4


def fits(taken: float, amount: float, limit: float) -> bool:
    """Whether ``amount`` more fits under ``limit`` when ``taken`` (spent + reserved) is taken.

    A budget with nothing left refuses even a call estimated at 0 (one whose price is unknown).
    """
    return taken < limit - EPSILON and taken + amount <= limit + EPSILON


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget stands for one key and window (``await tracer.budget_status()``)."""

    name: str
    key: str | None
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    window_start: datetime

    def as_json(self) -> dict[str, Any]:
        """The status as JSON-ready values (the window start in ISO 8601)."""
        return {**asdict(self), "window_start": self.window_start.isoformat()}

    @property
    def used(self) -> float:
        """Spent and reserved as a fraction of the limit (1.0 when the limit is 0)."""
        if self.limit_usd <= 0:
            return 1.0
        return (self.spent_usd + self.reserved_usd) / self.limit_usd


def statuses(rows: Iterable[Sequence[Any]], budgets: Sequence[Budget]) -> list[BudgetStatus]:
    """Each budget's state in its current window from a ledger's rows ``(budget, key, window,
    limit, spent, reserved)``; an unkeyed budget no call has touched yet shows as untouched."""
    now = time.time()
    rows = list(rows)
    found: list[BudgetStatus] = []
    for budget in budgets:
        window = budget.window_start(now)
        mine = sorted(
            (r for r in rows if r[0] == budget.label and abs(r[2] - window) < 1e-6),
            key=lambda r: str(r[1]),
        )
        if not mine and budget.by is None:
            mine = [(budget.label, "", window, budget.limit_usd, 0.0, 0.0)]
        found.extend(
            BudgetStatus(
                name=budget.label,
                key=row[1] or None,
                limit_usd=budget.limit_usd,
                spent_usd=row[4],
                reserved_usd=row[5],
                remaining_usd=max(0.0, budget.limit_usd - row[4] - row[5]),
                window_start=datetime.fromtimestamp(window, UTC),
            )
            for row in mine
        )
    return found


@dataclass(slots=True)
class Hold:
    """One reservation: an amount held against one budget, key and window until settled."""

    budget: Budget
    key: str
    window: float
    amount: float
    hold_id: str = ""


class Ledger(Protocol):
    """Where reservations and spend are kept. ``reserve`` must check and hold atomically."""

    async def reserve(self, hold: Hold) -> tuple[float, float] | None:
        """Hold ``hold.amount``; ``None`` when held, else ``(spent, reserved)`` that refused it."""
        ...

    async def settle(self, holds: Sequence[Hold], actual: float) -> None:
        """Release ``holds`` and add ``actual`` to the spend of each one's budget; a hold with no
        ``hold_id`` was never reserved (a call recorded after the fact): only its spend counts."""
        ...

    async def status(self, budgets: Sequence[Budget]) -> list[BudgetStatus]:
        """The state of every key and window these budgets have seen (current windows only)."""
        ...

    async def aclose(self) -> None:
        """Release what the ledger holds (connections; a database's holds of this process)."""
        ...


def estimate_request(
    body: Mapping[str, Any] | None,
    model: str,
    provider: str | None,
    table: PriceTable,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
) -> float | None:
    """An upper-leaning estimate of a request's cost from what the SDK is about to send.

    Prompt tokens are the request's text length / :data:`CHARS_PER_TOKEN` (every message, system
    prompt and tool definition counted as its JSON); output tokens are the request's own limit
    (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``,
    ``generationConfig.maxOutputTokens``) or ``default_output_tokens``. ``None`` when the model's
    price is unknown.
    """
    pricing = table.lookup(model, provider)
    if pricing is None:
        return None
    body = body or {}
    prompt_chars = 0
    output_limit: int | None = None
    for key, value in body.items():
        if key in _OUTPUT_LIMIT_KEYS:
            if value.__class__ is int and value > 0:
                output_limit = value
        elif key == "generationConfig" and isinstance(value, dict):
            limit = value.get("maxOutputTokens")
            if limit.__class__ is int and limit > 0:
                output_limit = limit
        elif key not in ("model", "stream", "temperature", "top_p", "n"):
            prompt_chars += (
                len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
            )
    prompt_tokens = prompt_chars // CHARS_PER_TOKEN + 1
    output_tokens = output_limit if output_limit is not None else default_output_tokens
    return (
        prompt_tokens * pricing.input_per_million + output_tokens * pricing.output_per_million
    ) / 1e6


class Budgets:
    """The budgets of one tracer and the ledger that keeps their reservations.

    The tracer calls :meth:`reserve` at a call's entry (before any request is sent) and
    :meth:`settle` with the priced record when it ends.
    """

    def __init__(self, budgets: Iterable[Budget], ledger: Ledger, table: PriceTable) -> None:
        self.budgets: tuple[Budget, ...] = tuple(budgets)
        for budget in self.budgets:
            if not isinstance(budget, Budget):
                raise ConfigError(f"budgets must be Budget objects, got {type(budget).__name__}")
        names = [b.label for b in self.budgets]
        if len(set(names)) != len(names):
            raise ConfigError(f"budget names must be unique, got {names}")
        self.ledger = ledger
        self.table = table
        self.refused = 0  # calls refused (read through the tracer's stats)

    def estimate(self, body: Mapping[str, Any] | None, model: str, provider: str | None) -> float:
        """The estimate :meth:`reserve` holds for a request body (0 when the price is unknown)."""
        return estimate_request(body, model, provider, self.table) or 0.0

    def holds_for(self, fields: Mapping[str, Any], attributes: Mapping[str, Any]) -> list[Hold]:
        """The holds a call with these fields needs (one per budget that applies), amount 0."""
        now = time.time()
        holds = []
        for budget in self.budgets:
            key = budget.key_of(fields, attributes)
            if key is not None:
                holds.append(Hold(budget, key, budget.window_start(now), 0.0))
        return holds

    async def reserve(
        self, fields: Mapping[str, Any], attributes: Mapping[str, Any], estimate: float
    ) -> list[Hold]:
        """Hold ``estimate`` against every budget the call falls under, or refuse the call.

        Raises:
            BudgetExceededError: a budget has not ``estimate`` left (or nothing left at all);
                holds taken for the other budgets are released first.
        """
        holds = self.holds_for(fields, attributes)
        ledger = self.ledger
        now = getattr(ledger, "reserve_now", None)  # in memory: no await between check and hold
        taken: list[Hold] = []
        for hold in holds:
            hold.amount = estimate
            refused = now(hold) if now is not None else await ledger.reserve(hold)
            if refused is not None:
                if taken:
                    await ledger.settle(taken, 0.0)
                self.refused += 1
                spent, reserved = refused
                raise BudgetExceededError(
                    budget=hold.budget.label,
                    key=hold.key or None,
                    spent_usd=spent,
                    reserved_usd=reserved,
                    limit_usd=hold.budget.limit_usd,
                    estimate_usd=estimate,
                )
            taken.append(hold)
        return taken

    def actual_of(self, record: LLMCall | None, holds: Sequence[Hold]) -> float:
        """What a finished call spends: its cost; for a failed or cancelled call what the
        provider billed (its cost when usage arrived, else nothing); for a successful call of
        unknown cost its estimate (never 0: an unknown cost is not free)."""
        if record is None:  # the record could not be made: give the reservation back
            return 0.0
        cost = record.cost_usd
        if cost is not None:
            return cost
        if record.status != "ok":
            return 0.0
        return max((hold.amount for hold in holds), default=0.0)

    def settle(self, holds: Sequence[Hold], record: LLMCall | None) -> Awaitable[None] | None:
        """Replace the call's reservations by what it cost, or add the cost of a call recorded
        without reservation to every budget it falls under.

        In memory this is done when it returns (no I/O, no lock: safe anywhere); a database
        ledger's work is returned for the caller to run on the loop.
        """
        actual = self.actual_of(record, holds)
        if not holds:
            if actual <= 0 or record is None:
                return None
            holds = self._unreserved(record)
            if not holds:
                return None
        now = getattr(self.ledger, "settle_now", None)
        if now is not None:
            now(holds, actual)
            return None
        return self.ledger.settle(holds, actual)

    def _unreserved(self, record: LLMCall) -> list[Hold]:
        """Holds of no amount for a call recorded without reservation (its start's windows)."""
        fields = {
            name: getattr(record, name, None)
            for name in ("user_id", "session_id", "agent_name", "tags")
        }
        start = record.timestamp.timestamp()
        holds = []
        for budget in self.budgets:
            key = budget.key_of(fields, record.attributes)
            if key is not None:
                holds.append(Hold(budget, key, budget.window_start(start), 0.0))
        return holds

    async def status(self) -> list[BudgetStatus]:
        """Every budget's state for each key seen in its current window."""
        return await self.ledger.status(self.budgets)


def ledger_for(store: object) -> Ledger:
    """Where a tracer with this store keeps its budgets: the store's database when it is
    PostgreSQL or SQLite (shared by every process using it), else this process's memory."""
    from .._stores import PostgresStore, SQLiteStore
    from ._memory import MemoryLedger
    from ._sql import PostgresLedger, SQLiteLedger

    if isinstance(store, PostgresStore):
        return PostgresLedger(store.dsn)
    if isinstance(store, SQLiteStore):
        return SQLiteLedger(store.path)
    return MemoryLedger()
