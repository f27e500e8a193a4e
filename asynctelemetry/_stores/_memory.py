"""MemoryStore: a bounded ring buffer of calls, in the event loop's memory.

Calls are kept as compact rows (:mod:`asynctelemetry._rows`), not as records: about 350 bytes a
call instead of 1.2 KB. Records are built again on read (no validation: the values were checked
when the call was made), so a read returns records equal to those added, field by field, though
not the same objects. A :class:`~asynctelemetry._rows.Rows` batch (the collector's) is kept as
it comes, without building a record.
"""

from __future__ import annotations

from collections import deque
from datetime import timedelta
from heapq import heapify, heappop
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Final, Self

from .._batching import ClosesOnExit, Lifecycle, Slice
from .._exceptions import StoreClosedError, require_int
from .._record import TraceSpan
from .._rows import FIELDS, TIMESTAMP, Row, Rows, record_of, row_of
from .._stats import StoreStats
from ._base import (
    CallSummary,
    Filters,
    GroupBy,
    StoreCounts,
    StoreReads,
    TimeBucket,
    check_id,
    check_limit,
    summarize,
    timeseries,
)
from ._door import call_id_of, enter, enter_all, log_rejected, refusal
from ._errors import error_groups
from ._pages import page_rows, sort_key
from ._replay import paced
from ._traces import summarize_traces

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence
    from datetime import datetime

    from .._pricing import PriceTable
    from .._record import LLMCall
    from ._errors import ErrorGroup
    from ._pages import PageRead, PageRow
    from ._traces import TraceFilters

_record: Final = record_of


#: Calls ``add_many`` keeps between two turns of the event loop (0.1 to 0.5 ms of work).
ADD_SLICE: Final = 64
_row_timestamp: Final = itemgetter(TIMESTAMP)
_CALL_ID: Final = FIELDS.index("call_id")
_TRACE_ID: Final = FIELDS.index("trace_id")
_COST, _DURATION, _INPUT, _OUTPUT = map(
    FIELDS.index, ("cost_usd", "duration_ms", "input_tokens", "output_tokens")
)
#: Rows a page reads past ``limit`` at a time when its filters leave some out.
_PAGE_CHUNK: Final = 64
#: A trace's rows are a list until it holds this many, then a deque: the ring evicts a trace's
#: oldest row first, and a deque drops it in O(1) however long the trace (a list would shift).
_LONG_TRACE: Final = 64


__all__ = ["MemoryStore"]


class MemoryStore(StoreReads, StoreCounts, ClosesOnExit):
    """Keeps the latest ``capacity`` calls; adding to a full store drops the oldest.

    ``add`` is O(1) and never waits. ``dropped`` counts the calls pushed out by newer ones. A
    :class:`~asynctelemetry.SyncSink`: a pipeline hands it calls with :meth:`emit_nowait`, on the
    caller's path, at no coroutine's cost. ``call_id`` is unique, as in every store: a call whose
    id is already held (a retrying exporter, a replay run twice) is not kept again and is
    counted in ``duplicates``; the ids held are a dict kept in step with the ring (an id pushed
    out may come back). The same dict finds a call by id (:meth:`get`); a second one, the calls
    of a trace (:meth:`trace`), is built at the first read of a trace and kept in step with the
    ring from then on: both O(1) per call added.
    Queries scan the buffer (at most ``capacity`` records) and sort by timestamp. Calls are held
    as compact rows and read back as equal records (see the module docstring).
    """

    def __init__(self, capacity: int = 1000) -> None:
        require_int("capacity", capacity)
        self.capacity = capacity
        self._dropped = 0
        self._duplicates = 0
        self._rejected = 0
        self._rows: deque[Row] = deque(maxlen=capacity)
        #: The insertion number of the ring's oldest row (pages' tie-break: it only grows).
        self._first_seq = 0
        #: call_id → its row, for every row held (dedupe and :meth:`get`).
        self._ids: dict[str, Row] = {}
        #: trace_id → its row (a trace of one call, most of them) or its rows, in the order
        #: added; None until the first read of a trace (see :meth:`_trace_index`).
        self._traces: dict[str, Row | list[Row] | deque[Row]] | None = None
        #: span_id → step, in the order added (the steps' own ring of ``capacity``).
        self._spans: dict[str, TraceSpan] = {}
        #: trace_id → the span ids of its steps held, in the order added.
        self._span_traces: dict[str, list[str]] = {}
        self._life = Lifecycle("MemoryStore")

    @property
    def dropped(self) -> int:
        """How many calls newer ones pushed out of the full buffer."""
        return self._dropped

    @property
    def stats(self) -> StoreStats:
        """A snapshot of what this store has done (see :class:`~asynctelemetry.StoreStats`); a
        MemoryStore has no writer queue (``queue`` is None)."""
        return StoreStats(
            duplicates=self._duplicates, dropped=self._dropped, rejected=self._rejected
        )

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return (
            f"MemoryStore(capacity={self.capacity}, calls={len(self)}, dropped={self.dropped}, "
            f"duplicates={self.duplicates})"
        )

    # -- writing --------------------------------------------------------------------------------
    def _keep_all(self, items: Iterable[Row | TraceSpan]) -> None:
        """Keep calls (rows: through the door already) and steps, in order."""
        if self._life.ended:
            raise StoreClosedError("MemoryStore is closed")
        keep_row, keep_span = self._keep_row, self._keep_span
        for item in items:
            if item.__class__ is TraceSpan:
                keep_span(item)
            else:
                keep_row(item)  # type: ignore[arg-type]

    def _keep_span(self, span: TraceSpan) -> None:
        """Keep a step unless its span id is held; the oldest step goes when the ring is full."""
        spans = self._spans
        if span.span_id in spans:
            self._duplicates += 1
            return
        if len(spans) >= self.capacity:
            oldest = spans.pop(next(iter(spans)))
            members = self._span_traces[oldest.trace_id]
            members.remove(oldest.span_id)  # the oldest of its trace: found at once
            if not members:
                del self._span_traces[oldest.trace_id]
            self._dropped += 1
        spans[span.span_id] = span
        self._span_traces.setdefault(span.trace_id, []).append(span.span_id)

    def _keep_row(self, row: Row) -> None:
        """Append ``row`` unless the door refuses it or its id is held; the indexes follow the
        ring's evictions."""
        why = refusal(row)
        if why is not None:
            self._rejected += 1
            log_rejected("MemoryStore", [(call_id_of(row), why)])
            return
        ids = self._ids
        call_id = row[_CALL_ID]
        if call_id in ids:
            self._duplicates += 1
            return
        rows = self._rows
        traces = self._traces
        if len(rows) == self.capacity:  # the ring pushes out its oldest: forget it
            oldest = rows[0]
            del ids[oldest[_CALL_ID]]
            if traces is not None:
                _unindex(traces, oldest)
            self._dropped += 1
            self._first_seq += 1
        rows.append(row)
        ids[call_id] = row
        if traces is not None:
            _index(traces, row)

    def _trace_index(self) -> dict[str, Row | list[Row] | deque[Row]]:
        """trace_id → its row or rows, in the order added: built from the ring at the first
        read of a trace, then kept in step with it (a store nobody reads by trace never pays
        for it on the write path)."""
        traces = self._traces
        if traces is None:
            traces = self._traces = {}
            for row in self._rows:
                _index(traces, row)
        return traces

    def _reindex(self) -> None:
        """Build the indexes again from the ring (after its rows were replaced)."""
        self._ids.clear()
        self._traces = None
        rows = list(self._rows)
        self._rows.clear()
        for row in rows:
            self._keep_row(row)

    async def add(self, call: LLMCall | TraceSpan) -> None:
        """Keep one call or step; the oldest is dropped (and counted) when the store is full."""
        self._keep_all((enter(call),))

    async def add_many(self, calls: Sequence[LLMCall | TraceSpan]) -> None:
        """Keep many calls and steps, in order; the loop gets a turn after every
        :data:`ADD_SLICE` calls (a collector's request of 512 calls would hold it for
        milliseconds)."""
        items = enter_all(calls)
        if len(items) <= ADD_SLICE:
            self._keep_all(items)
            return
        slice_ = Slice(0.0)  # a turn after every slice of ADD_SLICE calls
        for start in range(0, len(items), ADD_SLICE):
            self._keep_all(items[start : start + ADD_SLICE])
            await slice_.breathe()

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Keep steps (the :class:`~asynctelemetry.SpanSink` method)."""
        self._keep_all(spans)

    def spans_snapshot(self) -> list[TraceSpan]:
        """Every step held, in the order added (a synchronous read, for ``tracer.steps``)."""
        return list(self._spans.values())

    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Keep many calls without awaiting (the :class:`SyncSink` method; same as
        ``add_many``): the door (:func:`~._door.enter_all`) for calls only, inlined for the
        tracer's path."""
        if self._life.ended:
            raise StoreClosedError("MemoryStore is closed")
        keep = self._keep_row
        # (the tracer hands a tuple, for which an ABC's isinstance would cost more than the rest)
        if calls.__class__ is not tuple and isinstance(calls, Rows):
            for row in calls.rows:
                keep(row)
        else:
            for call in calls:
                keep(row_of(call.__dict__))

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Sink interface: the same as :meth:`add_many`."""
        await self.add_many(calls)

    async def flush(self) -> None:
        """Nothing to do: memory is as durable as a MemoryStore gets."""

    def snapshot(self) -> list[LLMCall]:
        """Every call held, in the order added (a synchronous read, for ``tracer.spans``)."""
        return list(map(_record, list(self._rows)))

    def clear(self) -> None:
        """Forget every call and step held (``dropped`` and ``duplicates`` keep counting)."""
        self._first_seq += len(self._rows)
        self._rows.clear()
        self._ids.clear()
        self._traces = None
        self._spans.clear()
        self._span_traces.clear()

    async def _reprice(self, table: PriceTable, filters: Filters) -> int:
        version = table.version
        changed = 0
        kept: list[Row] = []
        for row in self._rows:
            call = _record(row)
            if filters.matches(call):
                cost = table.cost(call)
                if cost is not None and (cost != call.cost_usd or call.price_version != version):
                    row = row_of({**call.__dict__, "cost_usd": cost, "price_version": version})
                    changed += 1
            kept.append(row)
        self._rows.clear()
        self._rows.extend(kept)
        self._reindex()
        return changed

    # -- reading --------------------------------------------------------------------------------
    def _records(self, filters: Filters) -> Iterable[LLMCall]:
        """The stored calls that pass ``filters``, in the order they were added."""
        calls = map(_record, list(self._rows))
        return calls if filters.empty else filter(filters.matches, calls)

    def _select(
        self, filters: Filters, newest_first: bool = False, limit: int | None = None
    ) -> list[LLMCall]:
        if filters.empty:  # order the rows, build only the records returned
            rows = sorted(self._rows, key=_row_timestamp, reverse=newest_first)
            return list(map(_record, rows if limit is None else rows[:limit]))
        calls = list(self._records(filters))
        calls.sort(key=_timestamp, reverse=newest_first)
        return calls if limit is None else calls[:limit]

    async def _query(
        self, filters: Filters, limit: int | None, newest_first: bool
    ) -> list[LLMCall]:
        return self._select(filters, newest_first, limit)

    async def _page(self, read: PageRead) -> list[PageRow]:
        """The rule itself (:func:`~._pages.page_rows`) over the rows that can be on the page.

        One pass over the ring orders its rows by their keys (:func:`~._pages.sort_key` read
        through a view of the row: no record is built) and cuts them at the cursor; a heap then
        gives them in the page's order, and records are built only for those, a chunk at a
        time, until the rule has kept ``limit`` of them. The insertion number is the ring's
        oldest one's plus the position: keyset pages stay put while calls arrive."""
        view = _RowView()
        sort = read.sort
        sign = -1 if read.descending else 1
        after = read.after
        heap: list[tuple[tuple[Any, ...], int, Row]] = []
        if read.known:
            cut: tuple[Any, ...] | None = (
                None if after is None else (sign * after[0], sign * after[1])
            )
            for seq, row in enumerate(self._rows, self._first_seq):
                view.row = row
                key = sort_key(view, sort)  # type: ignore[arg-type]
                if key is not None and (cut is None or (sign * key, sign * seq) > cut):
                    heap.append(((sign * key, sign * seq), seq, row))
        else:
            cut = None if after is None else (sign * after[1],)
            for seq, row in enumerate(self._rows, self._first_seq):
                view.row = row
                if sort_key(view, sort) is None and (cut is None or (sign * seq,) > cut):  # type: ignore[arg-type]
                    heap.append(((sign * seq,), seq, row))
        heapify(heap)
        page: list[PageRow] = []
        while heap and len(page) < read.limit:
            chunk = [heappop(heap) for _ in range(min(len(heap), read.limit + _PAGE_CHUNK))]
            page += page_rows(((seq, _record(row)) for _, seq, row in chunk), read)
        return page[: read.limit]

    async def get(self, call_id: str) -> LLMCall | None:
        """The call whose ``call_id`` this is, or ``None``: a dict lookup."""
        row = self._ids.get(check_id("call_id", call_id))
        return None if row is None else _record(row)

    async def trace(self, trace_id: str, *, limit: int | None = None) -> list[LLMCall]:
        """The calls of ``trace_id``, oldest first (ties in the order added), at most ``limit``:
        a dict lookup, then the trace's own rows sorted."""
        check_limit(limit)
        members = self._trace_index().get(check_id("trace_id", trace_id))
        if members is None:
            return []
        held = (members,) if isinstance(members, tuple) else members  # one row, or its rows
        rows = sorted(held, key=_row_timestamp)
        return list(map(_record, rows if limit is None else rows[:limit]))

    async def _trace_spans(self, trace_id: str) -> list[TraceSpan]:
        spans = self._spans
        return [spans[span_id] for span_id in self._span_traces.get(trace_id, ())]

    async def _trace_ids(self, filters: TraceFilters, limit: int, newest_first: bool) -> list[str]:
        """The reference rules over every call and step held."""
        calls = map(_record, list(self._rows))
        rows = summarize_traces(calls, list(self._spans.values()), filters, limit, newest_first)
        return [row.trace_id for row in rows]

    async def _count(self, filters: Filters) -> int:
        if filters.empty:
            return len(self._rows)
        return sum(1 for _ in self._records(filters))

    async def _summary(
        self, by: GroupBy, filters: Filters, limit: int | None, order_by: str
    ) -> list[CallSummary]:
        return summarize(self._records(filters), by, limit, order_by)

    async def _timeseries(
        self, width_ns: int, by: GroupBy | None, filters: Filters
    ) -> list[TimeBucket]:
        return timeseries(self._records(filters), timedelta(microseconds=width_ns // 1000), by)

    async def _error_groups(self, filters: Filters, limit: int) -> list[ErrorGroup]:
        return error_groups(self._records(filters), limit)

    def _replay(self, speed: float | None, filters: Filters) -> AsyncIterator[LLMCall]:
        return paced(_iterate(self._select(filters)), speed)

    async def _span_page(self, filters: Filters, after: Any) -> tuple[list[TraceSpan], Any]:
        """Every step held that passes, in one page (a list already in memory)."""
        spans = sorted(self._spans.values(), key=attrgetter("timestamp"))  # stable: as added
        return [s for s in spans if filters.matches_step(s)], None

    # -- lifetime -------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Refuse further writes. Idempotent; what is held stays readable."""
        await self._life.close()

    async def __aenter__(self) -> Self:
        self._life.check()
        self._life.opened()
        return self


def _index(traces: dict[str, Row | list[Row] | deque[Row]], row: Row) -> None:
    """Add ``row`` (the newest of the ring) to the trace index."""
    trace_id = row[_TRACE_ID]
    if trace_id is None:
        return
    members = traces.get(trace_id)
    if members is None:  # most traces hold one call: the row itself, no list
        traces[trace_id] = row
    elif isinstance(members, tuple):
        traces[trace_id] = [members, row]
    else:
        members.append(row)
        if len(members) == _LONG_TRACE and isinstance(members, list):
            traces[trace_id] = deque(members)


def _unindex(traces: dict[str, Row | list[Row] | deque[Row]], oldest: Row) -> None:
    """Take the ring's oldest row (also the oldest of its trace's rows) out of the index."""
    trace_id = oldest[_TRACE_ID]
    if trace_id is not None:
        members = traces[trace_id]
        if isinstance(members, tuple) or len(members) == 1:
            del traces[trace_id]
        elif isinstance(members, deque):
            members.popleft()
        else:
            del members[0]


class _RowView:
    """A row read by the names :func:`~._pages.sort_key` asks a call for (one view is moved
    along the ring: no record is built for a row that is not on the page)."""

    __slots__ = ("row",)

    def __init__(self) -> None:
        self.row: Row = ()

    timestamp = property(lambda self: self.row[TIMESTAMP])
    cost_usd = property(lambda self: self.row[_COST])
    duration_ms = property(lambda self: self.row[_DURATION])
    input_tokens = property(lambda self: self.row[_INPUT])
    output_tokens = property(lambda self: self.row[_OUTPUT])


def _timestamp(call: LLMCall) -> datetime:
    return call.timestamp


async def _iterate(calls: list[LLMCall]) -> AsyncIterator[LLMCall]:
    for call in calls:
        yield call
