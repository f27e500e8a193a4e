"""The store protocol, the summary row, and the one implementation of filters and percentiles.

Filter semantics (every store follows them): ``since`` is inclusive, ``until`` exclusive (a naive
datetime is taken to be UTC); ``model``, ``provider``, ``session_id`` and ``status`` match
exactly; results are oldest first (by ``timestamp``, ties in insertion order) unless
``newest_first``; ``limit`` applies after ordering. Filters of the wrong type raise
``ValueError``.

Percentiles are nearest-rank: for ``n`` sorted values the p-th percentile is the value at rank
``ceil(p / 100 * n)`` (1-based), so it is always an observed value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence
    from types import TracebackType

    from .._record import LLMCall

__all__ = [
    "GROUP_FIELDS",
    "CallStore",
    "CallSummary",
    "Filters",
    "GroupBy",
    "check_limit",
    "nearest_rank",
    "percentile",
    "summarize",
]

GroupBy = Literal["model", "provider", "session", "route"]
#: ``summary(by=...)`` → the LLMCall field it groups on.
GROUP_FIELDS: dict[str, str] = {
    "model": "model",
    "provider": "provider",
    "session": "session_id",
    "route": "route_name",
}


def nearest_rank(n: int, p: float) -> int:
    """The 1-based rank of the p-th percentile (0 < p <= 100) among ``n`` sorted values."""
    if n <= 0:
        raise ValueError("no values")
    return max(1, math.ceil(p / 100.0 * n))


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank p-th percentile of already sorted values; ``None`` when there are none."""
    if not sorted_values:
        return None
    return sorted_values[nearest_rank(len(sorted_values), p) - 1]


def check_limit(limit: object) -> None:
    """``limit`` is None or an int >= 0, or ``ValueError``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")


@dataclass(frozen=True, slots=True)
class Filters:
    """The query filters every store accepts (see the module docstring for their semantics)."""

    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    provider: str | None = None
    session_id: str | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        """Check the filters' types; a naive ``since``/``until`` is taken to be UTC (as records
        are), an aware one is converted to UTC."""
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is None:
                continue
            if not isinstance(moment, datetime):
                raise ValueError(f"{name} must be a datetime, got {type(moment).__name__}")
            utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            object.__setattr__(self, name, utc)
        for name in ("model", "provider", "session_id", "status"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a str, got {type(value).__name__}")

    def matches(self, call: LLMCall) -> bool:
        """Whether ``call`` passes every filter that is set."""
        return (
            (self.since is None or call.timestamp >= self.since)
            and (self.until is None or call.timestamp < self.until)
            and (self.model is None or call.model == self.model)
            and (self.provider is None or call.provider == self.provider)
            and (self.session_id is None or call.session_id == self.session_id)
            and (self.status is None or call.status == self.status)
        )

    @property
    def empty(self) -> bool:
        """True when no filter is set."""
        return all(getattr(self, name) is None for name in self.__slots__)


class CallSummary(BaseModel):
    """One group of calls (a model, provider, session or route) with its totals."""

    model_config = ConfigDict(frozen=True)

    key: str | None
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float
    unpriced_calls: int
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p50_ttft_ms: float | None
    median_tokens_per_sec: float | None


def summarize(calls: Iterable[LLMCall], by: str = "model") -> list[CallSummary]:
    """Group ``calls`` and total each group; rows sorted by cost, then calls, descending."""
    try:
        field = GROUP_FIELDS[by]
    except KeyError:
        raise ValueError(f"by must be one of {sorted(GROUP_FIELDS)}, not {by!r}") from None
    groups: dict[str | None, list[LLMCall]] = {}
    for call in calls:
        groups.setdefault(getattr(call, field), []).append(call)
    rows = [_summary_row(key, members) for key, members in groups.items()]
    rows.sort(key=lambda r: (-r.cost_usd, -r.calls, r.key or ""))
    return rows


def _summary_row(key: str | None, calls: list[LLMCall]) -> CallSummary:
    latencies = sorted(c.duration_ms for c in calls if c.duration_ms is not None)
    ttfts = sorted(c.ttft_ms for c in calls if c.ttft_ms is not None)
    speeds = sorted(s for c in calls if (s := c.tokens_per_sec) is not None)
    return CallSummary(
        key=key,
        calls=len(calls),
        errors=sum(c.status == "error" for c in calls),
        input_tokens=sum(c.input_tokens or 0 for c in calls),
        output_tokens=sum(c.output_tokens or 0 for c in calls),
        cached_input_tokens=sum(c.cached_input_tokens or 0 for c in calls),
        reasoning_tokens=sum(c.reasoning_tokens or 0 for c in calls),
        cost_usd=math.fsum(c.cost_usd for c in calls if c.cost_usd is not None),
        unpriced_calls=sum(c.cost_usd is None for c in calls),
        p50_latency_ms=percentile(latencies, 50),
        p95_latency_ms=percentile(latencies, 95),
        p50_ttft_ms=percentile(ttfts, 50),
        median_tokens_per_sec=percentile(speeds, 50),
    )


@runtime_checkable
class CallStore(Protocol):
    """Where calls are kept: :class:`MemoryStore`, :class:`SQLiteStore`, or your own.

    A store is a sink (it has the :class:`~asynctelemetry.Sink` methods ``emit``, ``flush`` and
    ``aclose``): a tracer, a collector or ``replay`` hands it calls through ``emit``, with no
    adapter. ``emit`` must be quick: a store that does I/O queues the calls for a background
    writer and awaits only for room (backpressure), as :class:`SQLiteStore` does.
    """

    async def add(self, call: LLMCall) -> None:
        """Keep one call."""

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """The sink method: keep many calls, in order (the same as :meth:`add_many`)."""

    async def add_many(self, calls: Sequence[LLMCall]) -> None:
        """Keep many calls, in order."""

    async def query(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        model: str | None = None,
        provider: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[LLMCall]:
        """Calls that pass the filters."""
        ...

    async def count(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        model: str | None = None,
        provider: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
    ) -> int:
        """How many calls pass the filters."""
        ...

    async def summary(
        self,
        *,
        by: GroupBy = "model",
        since: datetime | None = None,
        until: datetime | None = None,
        model: str | None = None,
        provider: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
    ) -> list[CallSummary]:
        """One row per group of the calls that pass the filters."""
        ...

    async def flush(self) -> None:
        """Return once every call added before is durable."""

    def replay(
        self,
        *,
        speed: float | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        model: str | None = None,
        provider: str | None = None,
        session_id: str | None = None,
        status: str | None = None,
    ) -> AsyncIterator[LLMCall]:
        """The calls that pass the filters, oldest first, optionally paced."""
        ...

    async def aclose(self) -> None:
        """Flush and release the store. Idempotent."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
