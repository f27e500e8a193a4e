"""Replay: the one pacing both stores use, and ``replay(source, into=...)`` to re-emit calls."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime

    from .._record import LLMCall
    from ._base import CallStore

__all__ = ["Emits", "paced", "replay"]


async def paced(calls: AsyncIterator[LLMCall], speed: float | None) -> AsyncIterator[LLMCall]:
    """Yield ``calls`` (oldest first); with ``speed``, keep their original intervals / speed.

    ``speed=None`` yields as fast as the source allows; ``speed=1.0`` reproduces the original
    spacing of the calls' timestamps; ``10.0`` is ten times faster. Pacing is measured from the
    first call with a monotonic clock, so a slow consumer does not accumulate drift.
    """
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    first_ts: float | None = None
    started = 0.0
    async for call in calls:
        if speed is not None:
            ts = call.timestamp.timestamp()
            if first_ts is None:
                first_ts, started = ts, time.monotonic()
            else:
                due = started + (ts - first_ts) / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        yield call


class Emits(Protocol):
    """Anything replayed calls can go into: a sink (``emit``), e.g. a tracer's emitter."""

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Take records."""


class _Source(Protocol):
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
    ) -> AsyncIterator[LLMCall]: ...


async def replay(
    source: _Source,
    into: CallStore | Emits,
    *,
    speed: float | None = None,
    batch_size: int = 512,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    provider: str | None = None,
    session_id: str | None = None,
    status: str | None = None,
) -> int:
    """Re-emit the calls of ``source`` that pass the filters into ``into``; return how many.

    ``into`` is a store (``add_many``) or any sink with ``emit`` (``tracer.emitter`` re-exports
    the calls over OTLP and re-counts them in metrics). Each copy has ``source="replay"``. Calls go
    in batches of ``batch_size``, or one by one when paced (``speed`` set), so they arrive on time.
    ``into`` is not flushed: flush or close it when you need the calls delivered.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    deliver = into.emit if hasattr(into, "emit") else into.add_many
    size = 1 if speed is not None else batch_size
    stream = source.replay(
        speed=speed,
        since=since,
        until=until,
        model=model,
        provider=provider,
        session_id=session_id,
        status=status,
    )
    batch: list[LLMCall] = []
    total = 0
    async for call in stream:
        batch.append(call.model_copy(update={"source": "replay"}))
        if len(batch) >= size:
            await deliver(batch)
            total += len(batch)
            batch = []
    if batch:
        await deliver(batch)
        total += len(batch)
    return total
