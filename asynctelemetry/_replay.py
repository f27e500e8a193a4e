"""``replay(source, into=...)``: a store's calls and steps, oldest first, re-emitted through a
pipeline.

Layer 4, beside the pipeline: replay builds a :class:`~asynctelemetry._pipeline.Pipeline` around
``into`` (a store, an exporter, a tracer's ``pipeline``, any :class:`~asynctelemetry.Sink`), so a
replayed call that was stored without a cost is priced by the same rule as a traced or collected
one, and a call that carries a cost keeps it. The steps of traces
(:class:`~asynctelemetry.TraceSpan`) go with them, merged in start order, to the sinks that take
steps; a step already held by the target (its ``span_id``) is kept once there, as a call is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from ._pipeline import Pipeline
from ._record import LLMCall, TraceSpan
from ._stores._base import Filters, ReplayFilters, StoreReads
from ._stores._replay import paced

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from ._pipeline import Sink
    from ._pricing import ModelPricing, PriceTable
    from ._stores import CallStore

__all__ = ["replay"]


async def replay(
    source: CallStore,
    into: Sink,
    *,
    speed: float | None = None,
    batch_size: int = 512,
    price_table: PriceTable | Mapping[str, ModelPricing] | None = None,
    **filters: Unpack[ReplayFilters],
) -> int:
    """Re-emit the calls of ``source`` that pass the filters into ``into``, and the steps of
    traces with them; return how many records (calls and steps).

    ``into`` is any :class:`~asynctelemetry.Sink`: a store, an exporter, or ``tracer.pipeline``
    (which re-exports the calls over OTLP and re-counts them in metrics). Each copy has
    ``source="replay"``; a call stored without a cost is priced (``price_table``, the default
    table unless given), one with a cost keeps it. Steps (of a store of this package) go to the
    sinks that take them (stores, OTLP exporters), merged with the calls in start order: those
    that start within ``since``/``until`` and have the ``session_id`` and ``status`` asked;
    with ``model`` or ``provider`` asked, calls only (a step has neither). Records go in batches
    of ``batch_size``, or one by one when paced (``speed`` set), so they arrive on time.
    ``into`` is not flushed: flush or close it when you need them delivered.

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
    asked = Filters(**filters)
    stream = source.replay(speed=None, **filters)
    records: AsyncIterator[LLMCall | TraceSpan] = stream
    if isinstance(source, StoreReads):  # the stores of this package keep steps too
        records = _merged(stream, source._replay_spans(asked))
    calls: list[LLMCall] = []
    spans: list[TraceSpan] = []
    total = 0
    async for record in paced(records, speed) if speed is not None else records:
        copy = record.model_copy(update={"source": "replay"})
        if isinstance(copy, TraceSpan):
            spans.append(copy)
        else:
            calls.append(copy)
        if len(calls) + len(spans) >= size:
            total += await _emit(pipeline, calls, spans)
            calls, spans = [], []
    return total + await _emit(pipeline, calls, spans)


async def _emit(pipeline: Pipeline, calls: list[LLMCall], spans: list[TraceSpan]) -> int:
    """Hand a batch on: steps first (a call's parent is then there before it), calls after."""
    if spans:
        await pipeline.emit_spans(spans)
    if calls:
        await pipeline.emit(calls)
    return len(calls) + len(spans)


async def _merged(
    calls: AsyncIterator[LLMCall], spans: AsyncIterator[TraceSpan]
) -> AsyncIterator[LLMCall | TraceSpan]:
    """Two streams in start order merged into one (a step before a call on a tie)."""
    call = await anext(calls, None)
    span = await anext(spans, None)
    while call is not None or span is not None:
        if span is not None and (call is None or span.timestamp <= call.timestamp):
            yield span
            span = await anext(spans, None)
        else:
            assert call is not None
            yield call
            call = await anext(calls, None)
