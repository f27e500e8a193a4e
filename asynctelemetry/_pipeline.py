"""The pipeline: every call is priced once, by one rule, then handed to every sink.

Layer 4: ARCHITECTURE.md's ``LLMCall → price → sinks`` in code. The tracer, the collector and
:func:`~asynctelemetry.replay` each build one :class:`Pipeline`; none of them prices a call or
talks to a sink any other way.

- **Pricing.** A call that has no ``cost_usd`` is priced with
  :meth:`PriceTable.price_call <asynctelemetry.PriceTable.price_call>` (its response model, then
  its request model), and ``price_version`` is set whenever a cost is computed; a call that
  carries a cost keeps it (and its ``price_version``).
- **Fan-out.** Sinks receive calls in the order they were given. A :class:`SyncSink` (it takes
  calls without waiting: a ``MemoryStore``, the metrics, the exporters' queues) is called
  directly, so a call that reaches only such sinks costs no coroutine; the others are awaited
  (their ``emit`` may wait only for room: backpressure). A failing sink is counted in
  :attr:`Pipeline.errors` and logged once; it never reaches the producer nor stops the others.
- **Price data off the loop.** The table's data (genai-prices' import, about a second the first
  time in a process) is loaded in a thread: :meth:`Pipeline.warm` when a tracer is entered or a
  collector starts, else :meth:`Pipeline.start_loading` at the first call. A record the tracer
  finishes before it is loaded is kept, in order, and priced and handed on when it is (on the
  loop, in slices); :meth:`Pipeline.flush` waits for that. Nothing on the loop waits for the
  import or its lock.
- **Flush and close order.** :meth:`Pipeline.flush` flushes every sink in order;
  :meth:`Pipeline.aclose` closes the sinks the pipeline owns and flushes the ones lent to it (a
  store passed to a tracer or a collector is flushed, never closed: its owner closes it).
"""

from __future__ import annotations

import asyncio
import math
import time
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from ._batching import Retryable, Slice, report_internal_error, run_now, run_sliced
from ._exceptions import ConfigError, StoreClosedError
from ._record import LLMCall, TraceSpan
from ._rows import FIELDS, Rows, row_of
from ._stats import PipelineStats

if TYPE_CHECKING:
    from collections.abc import Awaitable, Generator, Mapping, Sequence

    from ._pricing import ModelPricing, PriceTable

__all__ = [
    "MAX_NEW_PRICES_PER_BATCH",
    "Pipeline",
    "Sink",
    "SpanSink",
    "SyncSink",
    "price_record",
    "resolve_price_table",
]


@runtime_checkable
class Sink(Protocol):
    """Somewhere finished :class:`~asynctelemetry.LLMCall` records go: a store, an exporter, the
    metrics, a list of your own.

    Implement the three methods to plug your own destination into a tracer (``sinks=``), a
    collector (``sinks=``) or :func:`~asynctelemetry.replay`. Every store is a sink.
    """

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Take records. Must be quick: queue slow work; await only to apply backpressure."""

    async def flush(self) -> None:
        """Return once everything emitted before has been delivered."""

    async def aclose(self) -> None:
        """Flush what can be flushed and release resources. Idempotent."""


@runtime_checkable
class SyncSink(Sink, Protocol):
    """A :class:`Sink` that also takes calls synchronously, without ever waiting.

    The pipeline calls :meth:`emit_nowait` instead of awaiting :meth:`Sink.emit`, which keeps
    the tracer's hot path free of coroutines. Implement it only when taking calls is a memory
    operation (an in-memory ring, counters, a bounded queue that drops rather than waits).
    """

    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Take records now (the same effect as ``await emit(calls)``)."""


@runtime_checkable
class SpanSink(Sink, Protocol):
    """A :class:`Sink` that also takes :class:`~asynctelemetry.TraceSpan` steps (stores, the
    OTLP exporters). Sinks without it get calls only."""

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Take steps. Must be quick, as :meth:`Sink.emit` is."""


_COST: Final = FIELDS.index("cost_usd")
_VERSION: Final = FIELDS.index("price_version")
_PRICING_INPUTS: Final = (
    "model",
    "request_model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "status",
    "status_code",
)
_MODEL, _REQUEST_MODEL, _PROVIDER = (FIELDS.index(name) for name in _PRICING_INPUTS[:3])
#: What :func:`_cost` takes after the table, from a record's field dict and from a row.
_PRICING_OF_FIELDS: Final = itemgetter(*_PRICING_INPUTS)
_PRICING_OF_ROW: Final = itemgetter(*map(FIELDS.index, _PRICING_INPUTS))
#: Calls given to a synchronous sink at a time when the pipeline's async ``emit`` fans out a
#: large batch (see :meth:`Pipeline.emit`).
FANOUT_CHUNK: Final = 256
#: Most model names not resolved before that one batch may have the price table resolve.
MAX_NEW_PRICES_PER_BATCH: Final = 256
if _VERSION != _COST + 1:  # rows are priced by replacing the two adjacent slots
    raise RuntimeError("LLMCall.price_version must follow cost_usd")


def resolve_price_table(arg: Any) -> PriceTable:
    """A :class:`PriceTable` from ``price_table=``: a table, a dict of overrides, or None."""
    from ._pricing import PriceTable

    if arg is None:
        return PriceTable.default()
    if isinstance(arg, PriceTable):
        return arg
    if isinstance(arg, dict) or hasattr(arg, "items"):
        return PriceTable.default().with_overrides(arg)
    raise ConfigError(
        f"price_table must be a PriceTable or a dict of ModelPricing, not {type(arg).__name__}"
    )


def _cost(table: PriceTable, inputs: tuple[Any, ...]) -> float | None:
    """The one rule's cost (:meth:`PriceTable.price_call`), or None (unknown models or usage; a
    table's bug, logged once); ``inputs``: the values of :data:`_PRICING_INPUTS`, in order,
    checked (a record's or a row's)."""
    try:
        cost = table._checked_cost(*inputs)
    except Exception as exc:  # a price table's bug must not lose the call
        report_internal_error("pricing a call", exc)
        return None
    return cost if cost is not None and 0 <= cost < math.inf else None


def price_record(call: LLMCall, table: PriceTable) -> LLMCall:
    """``call`` priced by ``table`` when it has no cost (a new record), else ``call`` itself."""
    if call.cost_usd is not None:
        return call
    data = call.__dict__
    cost = _cost(table, _PRICING_OF_FIELDS(data))
    if cost is None:
        return call
    return LLMCall._adopt({**data, "cost_usd": cost, "price_version": table.version})


def _load_in_thread(table: PriceTable) -> None:
    # The loop's thread is waiting for this one to start, and would wait for the GIL for a
    # whole switch interval (5 ms) while the import runs: give it back first.
    time.sleep(0.001)
    table.load()


class _Budget:
    """New model names one batch may have the table resolve (:data:`MAX_NEW_PRICES_PER_BATCH`):
    a name resolved before, found or not, is a dictionary hit and costs nothing; a new one costs
    up to ~2 ms, so a batch naming thousands of new models must not hold the loop for seconds.
    Calls past the budget stay unpriced (``asynctelemetry reprice`` can price them later) and
    are counted."""

    __slots__ = ("left", "skipped", "table")

    def __init__(self, table: PriceTable) -> None:
        self.table = table
        self.left = MAX_NEW_PRICES_PER_BATCH
        self.skipped = 0

    def allows(self, model: str, request_model: str | None, provider: str | None) -> bool:
        known = self.table.is_resolved
        if known(model, provider) and (
            not request_model or request_model == model or known(request_model, provider)
        ):
            return True
        if self.left <= 0:
            self.skipped += 1
            return False
        self.left -= 1
        return True


def _pricing(calls: Sequence[LLMCall], budget: _Budget) -> Generator[None, None, Sequence[LLMCall]]:
    """Price every call of ``calls`` that has no cost, pausing (``yield``) whenever a
    :class:`~asynctelemetry._batching.Slice` is spent; returns the calls (the same object when
    none changed; a collector's :class:`Rows` stay rows)."""
    slice_ = Slice()
    table = budget.table
    version = table.version
    rows = calls.rows if isinstance(calls, Rows) else None
    items: Sequence[Any] = calls if rows is None else rows
    out: list[Any] | None = None
    priced: Any
    left = budget.left
    for i, item in enumerate(items):
        # A known name costs a dictionary hit: look at the clock every 64 calls; a new name
        # costs up to ~2 ms: look after each one.
        if (not i & 63 or budget.left != left) and slice_.spent():
            yield
            slice_.renew()
        left = budget.left
        if rows is None:
            if item.cost_usd is not None:
                continue
            model, request_model, provider = item.model, item.request_model, item.provider
        else:
            if item[_COST] is not None:
                continue
            model, request_model, provider = item[_MODEL], item[_REQUEST_MODEL], item[_PROVIDER]
        if not budget.allows(model, request_model, provider):
            continue
        if rows is None:
            priced = price_record(item, table)
            if priced is item:
                continue
        else:
            cost = _cost(table, _PRICING_OF_ROW(item))
            if cost is None:
                continue
            priced = (*item[:_COST], cost, version, *item[_VERSION + 1 :])
        if out is None:
            out = list(items)
        out[i] = priced
    if out is None:
        return calls
    return out if rows is None else Rows(out)


class Pipeline:
    """Prices calls once and hands them to sinks; owns flush and close order.

    Args:
        sinks: where calls go, in order.
        price_table: a :class:`~asynctelemetry.PriceTable`, a dict of model name to
            :class:`~asynctelemetry.ModelPricing` overriding the default table, or None (the
            default table, loaded on first use).
        owned: the sinks among ``sinks`` that :meth:`aclose` closes; the others it flushes.
        primary: a sink whose failure fails the whole :meth:`emit` as a
            :class:`~asynctelemetry._batching.Retryable` instead of being counted (the
            collector's store: the client is told to send the calls again).

    Raises:
        ConfigError: a sink that is not a :class:`Sink`, or a bad ``price_table``.
    """

    def __init__(
        self,
        sinks: Sequence[Sink] = (),
        *,
        price_table: PriceTable | Mapping[str, ModelPricing] | None = None,
        owned: Sequence[Sink] = (),
        primary: Sink | None = None,
    ) -> None:
        # None: the default table, made on first use (reading genai-prices takes a while).
        self._table = None if price_table is None else resolve_price_table(price_table)
        self._sinks: tuple[Sink, ...] = ()
        self._nowait: tuple[tuple[Sink, Any], ...] = ()
        self._awaited: tuple[Sink, ...] = ()
        self._span_sinks: tuple[SpanSink, ...] = ()
        self._owned = list(owned)
        self._primary = primary
        self._errors = 0  # sink failures, counted (and logged once per sink and kind)
        self._pricing_skipped = 0  # calls left unpriced: their batch resolved its share of names
        self._loaded = False  # the price data is in memory: records are priced as they come
        self._loading: asyncio.Task[None] | None = None  # loading it in a thread
        self._parked: list[LLMCall] = []  # records made before it was loaded, oldest first
        for sink in sinks:
            self.add(sink)

    # -- configuration --------------------------------------------------------------------------
    @property
    def stats(self) -> PipelineStats:
        """A snapshot of what this pipeline has done (see :class:`PipelineStats`)."""
        return PipelineStats(len(self._sinks), self._errors, self._pricing_skipped)

    @property
    def errors(self) -> int:
        """Sink failures counted (and logged once per sink and kind); ``stats.errors``."""
        return self._errors

    @property
    def pricing_skipped(self) -> int:
        """Calls left unpriced because their batch had resolved its share of new model names;
        ``stats.pricing_skipped``."""
        return self._pricing_skipped

    def count_error(self) -> None:
        """Count a failure to deliver that happened outside the pipeline's own calls (a record
        a producer could not hand to the async sinks), as a sink failure."""
        self._errors += 1

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks, in the order they receive calls."""
        return self._sinks

    @property
    def price_table(self) -> PriceTable:
        """The table that prices calls without a cost."""
        if self._table is None:
            self._table = resolve_price_table(None)
        return self._table

    @property
    def loaded(self) -> bool:
        """Whether records are priced as they come: the price data is in memory and every record
        that waited for it was handed on."""
        return self._loaded or self._check_loaded()

    def start_loading(self) -> None:
        """Begin loading the price data in a thread when it is not in memory (nothing to do
        without a running loop: :meth:`record` then loads it on first use)."""
        if self._loaded or self._loading is not None or self._check_loaded():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._loading = loop.create_task(self._load())

    async def warm(self) -> None:
        """Load the price data in a thread (about a second of imports the first time in a
        process) and return once the records that waited for it were handed on. A caller
        cancelled meanwhile does not stop the loading."""
        self.start_loading()
        if self._loading is not None and not self._loaded:
            await asyncio.shield(self._loading)

    def _may_load_here(self) -> bool:
        """Whether pricing now is allowed: loaded, or outside any event loop (may block)."""
        if self._check_loaded():
            return True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    def _check_loaded(self) -> bool:
        if self._loading is None and (self._table or self.price_table).loaded:
            self._loaded = True
        return self._loaded

    async def _load(self) -> None:
        table = self._table or self.price_table
        try:
            try:
                await asyncio.to_thread(_load_in_thread, table)
            except Exception as exc:  # a broken install: each call priced reports it again
                report_internal_error("loading the price data", exc)
            while self._parked:  # the records that came meanwhile, in order
                parked, self._parked = self._parked, []
                await self._emit(parked)
        except asyncio.CancelledError:  # the loop is shutting down under an unclosed tracer
            self._errors += len(self._parked)
            self._parked = []
            raise
        finally:
            self._loaded = True

    def _park(self, calls: Sequence[LLMCall]) -> Sequence[LLMCall] | None:
        """Before the price data is loaded: keep ``calls`` until it is (None), or, with no loop
        to load it in, price them now (a blocking load, outside any event loop)."""
        self.start_loading()
        if self._loading is None:
            return calls if self._loaded else self.price(calls)
        self._parked.extend(calls)
        return None

    def add(self, sink: Sink, *, owned: bool = False) -> None:
        """Append a sink (closed by :meth:`aclose` when ``owned``, else only flushed).

        Raises:
            ConfigError: ``sink`` does not implement :class:`Sink`.
        """
        if not isinstance(sink, Sink):
            raise ConfigError(
                f"{type(sink).__name__} is not a sink: it needs async emit(calls), flush() "
                "and aclose() (every store has them)"
            )
        self._sinks = (*self._sinks, sink)
        if isinstance(sink, SyncSink):
            self._nowait = (*self._nowait, (sink, sink.emit_nowait))
        else:
            self._awaited = (*self._awaited, sink)
        if isinstance(sink, SpanSink):
            self._span_sinks = (*self._span_sinks, sink)
        if owned:
            self._owned.append(sink)

    # -- pricing --------------------------------------------------------------------------------
    def record(self, fields: dict[str, Any]) -> LLMCall:
        """The priced record of a complete field dict the producer filled (and gives away).

        Pricing the dict before it becomes a record costs no copy. Hand the record on with
        :meth:`submit_priced`.
        """
        self._price_fields(fields)
        return LLMCall._adopt(fields)

    def batch(self, fields: dict[str, Any], *, record: bool = False) -> Rows:
        """The priced batch of one call from a complete field dict the producer filled (and gives
        away): the tracer's hot path. The call is its row (:func:`~._rows.row_of`, the row a
        store keeps: made once, here), and a record only when ``record`` (the producer reads
        it), else when a sink first reads one. Hand the batch on with :meth:`submit_priced`.
        """
        self._price_fields(fields)
        return Rows([row_of(fields)], [LLMCall._adopt(fields)] if record else None)

    def _price_fields(self, fields: dict[str, Any]) -> None:
        """Price a field dict in place by the one rule (when it has no cost; not before the
        price data is loaded on a loop: the call is priced when it is, see submit_priced)."""
        if fields["cost_usd"] is None and (self._loaded or self._may_load_here()):
            table = self._table or self.price_table
            cost = _cost(table, _PRICING_OF_FIELDS(fields))
            if cost is not None:
                fields["cost_usd"] = cost
                fields["price_version"] = table.version

    def price(self, calls: Sequence[LLMCall]) -> Sequence[LLMCall]:
        """``calls`` with every call that has no cost priced (records that change are copies).

        At most :data:`MAX_NEW_PRICES_PER_BATCH` model names the table has not resolved before
        are resolved per batch; calls past that stay unpriced, counted in
        :attr:`pricing_skipped`.
        """
        steps = self._pricing(calls)
        return calls if steps is None else run_now(steps)

    async def price_in_slices(self, calls: Sequence[LLMCall]) -> Sequence[LLMCall]:
        """:meth:`price` for the event loop: it gets control back after every slice of work
        (see :class:`~asynctelemetry._batching.Slice`; resolving a new model name is the slow
        part)."""
        steps = self._pricing(calls)
        return calls if steps is None else await run_sliced(steps)

    def _pricing(self, calls: Sequence[LLMCall]) -> Generator[None, None, Sequence[LLMCall]] | None:
        """The pricing of ``calls`` as a generator of slices, or None: nothing to price."""
        if calls.__class__ is not Rows:
            for call in calls:
                if call.cost_usd is None:
                    break
            else:
                return None  # every call carries its cost (the tracer's records)
        return self._priced(calls)

    def _priced(self, calls: Sequence[LLMCall]) -> Generator[None, None, Sequence[LLMCall]]:
        budget = _Budget(self._table or self.price_table)
        priced = yield from _pricing(calls, budget)
        self._pricing_skipped += budget.skipped
        return priced

    # -- fan-out --------------------------------------------------------------------------------
    def submit(self, calls: Sequence[LLMCall]) -> Awaitable[None] | None:
        """Price ``calls``, give them to the synchronous sinks now, and return an awaitable for
        the others (``None`` when every sink took them already)."""
        return self.submit_priced(self.price(calls))

    def submit_priced(self, calls: Sequence[LLMCall]) -> Awaitable[None] | None:
        """:meth:`submit` for records already priced by :meth:`record` (the tracer's path).

        Before the price data is loaded, the records are kept and handed on (priced) once it is:
        ``None`` is returned, and :meth:`flush` waits for them."""
        if not self._loaded:
            kept = self._park(calls)
            if kept is None:
                return None
            calls = kept
        self._give(self._nowait, calls)
        return self._emit_to(calls) if self._awaited else None

    def _fan_out(self, calls: Sequence[LLMCall]) -> Awaitable[None] | None:
        self._give(self._nowait, calls)
        return self._emit_to(calls) if self._awaited else None

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Price ``calls`` (in slices: the loop gets control back every few milliseconds) and
        give them to every sink (a pipeline is itself a sink). A large batch reaches the
        synchronous sinks other than the primary one (metrics: thousands of new label values
        cost tens of milliseconds) in chunks of :data:`FANOUT_CHUNK`, the loop getting a turn
        between them. Before the price data is loaded, it waits for it (in a thread)."""
        if not self._loaded:
            await self.warm()
        await self._emit(calls)

    async def _emit(self, calls: Sequence[LLMCall]) -> None:
        priced = await self.price_in_slices(calls)
        if len(priced) <= FANOUT_CHUNK:
            pending = self._fan_out(priced)
        else:
            pending = await self._submit_in_chunks(priced)
        if pending is not None:
            await pending

    async def _submit_in_chunks(self, calls: Sequence[LLMCall]) -> Awaitable[None] | None:
        rows = calls.rows if isinstance(calls, Rows) else None
        slice_ = Slice()
        for sink, emit_nowait in self._nowait:
            if sink is self._primary:
                self._give(((sink, emit_nowait),), calls)
                continue
            for start in range(0, len(calls), FANOUT_CHUNK):
                stop = start + FANOUT_CHUNK
                chunk = calls[start:stop] if rows is None else Rows(rows[start:stop])
                self._give(((sink, emit_nowait),), chunk)
                await slice_.breathe()
        return self._emit_to(calls) if self._awaited else None

    def _give(self, sinks: Sequence[tuple[Sink, Any]], calls: Sequence[LLMCall]) -> None:
        """Hand ``calls`` to synchronous ``sinks`` (pairs of a sink and its ``emit_nowait``); a
        sink's failure is counted, the primary sink's asks for the batch again."""
        for sink, emit_nowait in sinks:
            try:
                emit_nowait(calls)
            except Exception as exc:  # a sink's failure must not reach the caller's LLM call
                if sink is self._primary and not isinstance(exc, StoreClosedError):
                    raise Retryable(exc) from exc
                self._failed(sink, "emit_nowait", exc)

    async def _emit_to(self, calls: Sequence[LLMCall]) -> None:
        for sink in self._awaited:
            try:
                await sink.emit(calls)
            except Retryable:
                raise  # the sink asks for the whole emit again
            except Exception as exc:  # a sink's failure must not reach the caller's LLM call
                if sink is self._primary and not isinstance(exc, StoreClosedError):
                    # The store is failing (down, full, locked): the caller keeps the batch and
                    # tries again, rather than losing calls it already acknowledged.
                    raise Retryable(exc) from exc
                self._failed(sink, "emit", exc)

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Give steps (:class:`~asynctelemetry.TraceSpan`) to every sink that takes them, in
        order (a pipeline is itself a :class:`SpanSink`); failures as for :meth:`emit`."""
        for sink in self._span_sinks:
            try:
                await sink.emit_spans(spans)
            except Retryable:
                raise
            except Exception as exc:
                if sink is self._primary and not isinstance(exc, StoreClosedError):
                    raise Retryable(exc) from exc
                self._failed(sink, "emit_spans", exc)

    def _failed(self, sink: Sink, method: str, exc: Exception) -> None:
        self._errors += 1
        report_internal_error(f"sink {type(sink).__name__}.{method}", exc)

    # -- flush and close ------------------------------------------------------------------------
    async def flush(self) -> None:
        """Flush every sink, in order; the first error is raised after all were tried. Records
        waiting for the price data are handed on first."""
        await self._settled()
        await self._each(lambda sink: sink.flush())

    async def aclose(self) -> None:
        """Close the owned sinks and flush the lent ones, in order; the first error is raised
        after all were tried."""
        await self._settled()
        owned = self._owned
        await self._each(lambda sink: sink.aclose() if sink in owned else sink.flush())

    async def _settled(self) -> None:
        if self._loading is not None and not self._loaded:
            await asyncio.shield(self._loading)

    async def _each(self, step: Any) -> None:
        first: BaseException | None = None
        for sink in self._sinks:
            try:
                await step(sink)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first
