"""MemoryStore: a bounded ring buffer of calls, in the event loop's memory."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Self

from .._exceptions import StoreClosedError
from ._base import CallSummary, Filters, GroupBy, summarize
from ._replay import paced

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime
    from types import TracebackType

    from .._record import LLMCall

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps the latest ``capacity`` calls; adding to a full store drops the oldest.

    ``add`` is O(1) and never waits. ``dropped`` counts the calls pushed out by newer ones.
    Queries scan the buffer (at most ``capacity`` records) and sort by timestamp.
    """

    #: ``add`` never does I/O, so the tracer may call it on the caller's path.
    nonblocking_add = True

    def __init__(self, capacity: int = 1000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._dropped = 0
        self._calls: deque[LLMCall] = deque(maxlen=capacity)
        self._closed = False

    @property
    def dropped(self) -> int:
        """How many calls newer ones pushed out of the full buffer."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._calls)

    def __repr__(self) -> str:
        return f"MemoryStore(capacity={self.capacity}, calls={len(self)}, dropped={self.dropped})"

    # -- writing --------------------------------------------------------------------------------
    def add_nowait(self, call: LLMCall) -> None:
        """Keep one call without awaiting (the same as ``await add(call)``)."""
        if self._closed:
            raise StoreClosedError("MemoryStore is closed")
        if len(self._calls) == self.capacity:
            self._dropped += 1
        self._calls.append(call)

    async def add(self, call: LLMCall) -> None:
        """Keep one call; the oldest is dropped (and counted) when the store is full."""
        self.add_nowait(call)

    async def add_many(self, calls: Sequence[LLMCall]) -> None:
        """Keep many calls, in order."""
        self.emit_nowait(calls)

    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Keep many calls without awaiting (the sink fast path; same as ``add_many``)."""
        if self._closed:
            raise StoreClosedError("MemoryStore is closed")
        overflow = len(self._calls) + len(calls) - self.capacity
        if overflow > 0:
            self._dropped += overflow
        self._calls.extend(calls)

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Sink interface: the same as :meth:`add_many`."""
        await self.add_many(calls)

    async def flush(self) -> None:
        """Nothing to do: memory is as durable as a MemoryStore gets."""

    # -- reading --------------------------------------------------------------------------------
    def _select(self, filters: Filters, newest_first: bool = False) -> list[LLMCall]:
        calls = (
            list(self._calls) if filters.empty else [c for c in self._calls if filters.matches(c)]
        )
        calls.sort(key=_timestamp, reverse=newest_first)
        return calls

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
        """Calls that pass the filters, oldest first unless ``newest_first``, at most ``limit``."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        calls = self._select(
            Filters(since, until, model, provider, session_id, status), newest_first
        )
        return calls if limit is None else calls[:limit]

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
        filters = Filters(since, until, model, provider, session_id, status)
        if filters.empty:
            return len(self._calls)
        return sum(1 for c in self._calls if filters.matches(c))

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
        """One row per model, provider, session or route of the calls that pass the filters."""
        filters = Filters(since, until, model, provider, session_id, status)
        return summarize((c for c in self._calls if filters.matches(c)), by)

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
        """The calls that pass the filters, oldest first, paced by ``speed`` (see ``paced``)."""
        snapshot = self._select(Filters(since, until, model, provider, session_id, status))
        return paced(_iterate(snapshot), speed)

    # -- lifetime -------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Refuse further writes. Idempotent; what is held stays readable."""
        self._closed = True

    async def __aenter__(self) -> Self:
        if self._closed:
            raise StoreClosedError("MemoryStore is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _timestamp(call: LLMCall) -> datetime:
    return call.timestamp


async def _iterate(calls: list[LLMCall]) -> AsyncIterator[LLMCall]:
    for call in calls:
        yield call
