"""``replay(source, into=...)``: a store's calls, oldest first, re-emitted through a pipeline.

Layer 4, beside the pipeline: replay builds a :class:`~asynctelemetry._pipeline.Pipeline` around
``into`` (a store, an exporter, a tracer's ``pipeline``, any :class:`~asynctelemetry.Sink`), so a
replayed call that was stored without a cost is priced by the same rule as a traced or collected
one, and a call that carries a cost keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._pipeline import Pipeline

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from ._pipeline import Sink
    from ._pricing import ModelPricing, PriceTable
    from ._record import LLMCall
    from ._stores import CallStore

__all__ = ["replay"]


async def replay(
    source: CallStore,
    into: Sink,
    *,
    speed: float | None = None,
    batch_size: int = 512,
    price_table: PriceTable | Mapping[str, ModelPricing] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    provider: str | None = None,
    session_id: str | None = None,
    status: str | None = None,
) -> int:
    """Re-emit the calls of ``source`` that pass the filters into ``into``; return how many.

    ``into`` is any :class:`~asynctelemetry.Sink`: a store, an exporter, or ``tracer.pipeline``
    (which re-exports the calls over OTLP and re-counts them in metrics). Each copy has
    ``source="replay"``; a call stored without a cost is priced (``price_table``, the default
    table unless given), one with a cost keeps it. Calls go in batches of ``batch_size``, or one
    by one when paced (``speed`` set), so they arrive on time. ``into`` is not flushed: flush or
    close it when you need the calls delivered.

    Raises:
        ConfigError: ``into`` is not a sink.
        ValueError: ``batch_size`` < 1 or ``speed`` not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    pipeline = (
        into
        if isinstance(into, Pipeline) and price_table is None
        else Pipeline([into], price_table=price_table)
    )
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
            await pipeline.emit(batch)
            total += len(batch)
            batch = []
    if batch:
        await pipeline.emit(batch)
        total += len(batch)
    return total
