"""Replay pacing: the one implementation every store's ``replay()`` uses.

``replay(source, into=...)``, which re-emits calls through a pipeline, is one layer up, in
:mod:`asynctelemetry._replay`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._record import LLMCall, TraceSpan

R = TypeVar("R", "LLMCall", "TraceSpan", "LLMCall | TraceSpan")

__all__ = ["paced"]


async def paced(calls: AsyncIterator[R], speed: float | None) -> AsyncIterator[R]:
    """Yield ``calls`` (records, oldest first); with ``speed``, keep their original intervals /
    speed.

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
