"""Traces: the calls and steps that share a ``trace_id``, as one tree with totals.

The one implementation of what a trace is, for every store: :class:`Trace` (``get_trace``) built
from a trace's records by :func:`build_trace`, and :class:`TraceSummary` (a row of ``traces``)
made from the same records by :func:`summarize_trace`. A store only finds records: the calls and
steps of one trace (through its ``trace_id`` indexes), and the ids of the traces a page of
``traces(...)`` shows (:class:`TraceFilters` says which).

Rules:

- a trace starts at its earliest record and ends at its latest end (start + duration);
- its root is its earliest record whose parent is not in the trace (steps before calls on a
  tie); ``root_name`` is a step's name, or a call's span name (``"chat gpt-4o"``);
- ``errors`` counts records (calls and steps) with status "error"; the trace's status is
  "error" when it has one, else "cancelled" when a record was cancelled, else "ok";
- ``cost_usd`` sums the known costs of its calls (``None`` when it has calls and none is
  priced); ``session_id`` and ``user_id`` are the root's, else the first record's that has one;
- filters: ``since``/``until`` on the start; ``session_id``, ``user_id`` and ``agent`` match a
  trace when any of its records has that value; ``status`` the trace's status.

How a SQL store finds a page without grouping every record: :func:`walk_traces`, one algorithm
for every engine, asks the store for records newest first through an index (:class:`Walk`) and
for the start and filter verdict of the traces they belong to (:class:`Check`), until no trace
it has not seen can still enter the page. See its docstring for why that is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

from pydantic import BaseModel, ConfigDict

from .._conventions import span_name
from .._record import LLMCall, TraceSpan

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Sequence
    from typing import Any

__all__ = [
    "MAX_TRACE_LIMIT",
    "Check",
    "Trace",
    "TraceFilters",
    "TraceNode",
    "TraceSummary",
    "Walk",
    "build_trace",
    "span_values",
    "spans_of",
    "summarize_trace",
    "summarize_traces",
    "walk_traces",
]

#: Most rows one ``traces(...)`` call returns.
MAX_TRACE_LIMIT: Final = 1000
_STATUSES: Final = ("ok", "error", "cancelled")

TraceRecord = LLMCall | TraceSpan


def _end(record: TraceRecord) -> datetime:
    duration = record.duration_ms
    if duration is None:
        return record.timestamp
    return record.timestamp + timedelta(microseconds=round(duration * 1000))


def _order(record: TraceRecord) -> tuple[datetime, int]:
    return record.timestamp, record.__class__ is LLMCall  # steps before calls on a tie


def _name(record: TraceRecord) -> str:
    return record.name if isinstance(record, TraceSpan) else span_name(record)


@dataclass(slots=True)
class TraceNode:
    """A call or step of a trace, with its children in start order."""

    record: TraceRecord
    children: list[TraceNode] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A step's name, or a call's span name (``"chat gpt-4o"``)."""
        return _name(self.record)

    @property
    def is_call(self) -> bool:
        """Whether the record is an :class:`~asynctelemetry.LLMCall`."""
        return isinstance(self.record, LLMCall)


@dataclass(frozen=True, slots=True)
class Trace:
    """Every call and step of one trace (``store.get_trace(trace_id)``), in start order."""

    trace_id: str
    calls: list[LLMCall]
    spans: list[TraceSpan]

    def records(self) -> list[TraceRecord]:
        """Calls and steps together, in start order (steps first on a tie)."""
        return sorted([*self.spans, *self.calls], key=_order)

    def tree(self) -> list[TraceNode]:
        """The roots (records whose parent is not in the trace), each with its children, in
        start order. A record in a cycle of parents is a root too: nothing is left out."""
        records = self.records()
        nodes = {id(r): TraceNode(r) for r in records}
        by_span = {r.span_id: nodes[id(r)] for r in records if r.span_id is not None}
        roots: list[TraceNode] = []
        for record in records:
            node = nodes[id(record)]
            parent = by_span.get(record.parent_span_id or "")
            if parent is None or parent is node:
                roots.append(node)
            else:
                parent.children.append(node)
        reached = set()
        stack = list(roots)
        while stack:  # no recursion: a chain of 100,000 steps is as deep as it is long
            node = stack.pop()
            reached.add(id(node.record))
            stack.extend(node.children)
        for record in records:  # parents that form a cycle: its members become roots
            if id(record) not in reached:
                node = nodes[id(record)]
                roots.append(node)
                stack = [node]
                while stack:
                    current = stack.pop()
                    reached.add(id(current.record))
                    stack.extend(c for c in current.children if id(c.record) not in reached)
        roots.sort(key=lambda n: _order(n.record))
        return roots

    @property
    def started(self) -> datetime | None:
        """The earliest start of a record (None for an empty trace)."""
        records: list[TraceRecord] = [*self.calls, *self.spans]
        return min((r.timestamp for r in records), default=None)

    @property
    def duration_ms(self) -> float | None:
        """From the first start to the last end, in milliseconds."""
        records: list[TraceRecord] = [*self.calls, *self.spans]
        if not records:
            return None
        start = min(r.timestamp for r in records)
        return (max(map(_end, records)) - start) / timedelta(milliseconds=1)

    @property
    def cost_usd(self) -> float | None:
        """The sum of the calls' known costs; ``None`` when calls are there and none is priced."""
        known = [c.cost_usd for c in self.calls if c.cost_usd is not None]
        if not known and self.calls:
            return None
        return math.fsum(known)

    @property
    def input_tokens(self) -> int:
        """Input tokens of every call (unknown counts as none)."""
        return sum(c.input_tokens or 0 for c in self.calls)

    @property
    def output_tokens(self) -> int:
        """Output tokens of every call (unknown counts as none)."""
        return sum(c.output_tokens or 0 for c in self.calls)

    @property
    def llm_calls(self) -> int:
        """How many LLM calls the trace holds."""
        return len(self.calls)

    @property
    def errors(self) -> int:
        """Calls and steps with status "error"."""
        records: list[TraceRecord] = [*self.calls, *self.spans]
        return sum(r.status == "error" for r in records)

    @property
    def status(self) -> str:
        """ "error" with an error, else "cancelled" with a cancelled record, else "ok"."""
        records: list[TraceRecord] = [*self.calls, *self.spans]
        return _status(records)


def _status(records: Iterable[TraceRecord]) -> str:
    statuses = {r.status for r in records}
    if "error" in statuses:
        return "error"
    return "cancelled" if "cancelled" in statuses else "ok"


class TraceSummary(BaseModel):
    """One trace as a row of ``store.traces(...)``."""

    model_config = ConfigDict(frozen=True)

    trace_id: str
    root_name: str
    started: datetime
    duration_ms: float
    llm_calls: int
    spans: int
    cost_usd: float | None
    errors: int
    status: str
    session_id: str | None
    user_id: str | None


def build_trace(trace_id: str, calls: Sequence[LLMCall], spans: Sequence[TraceSpan]) -> Trace:
    """The :class:`Trace` of one trace's records (each list in start order)."""
    return Trace(trace_id, sorted(calls, key=_order), sorted(spans, key=_order))


def summarize_trace(trace: Trace) -> TraceSummary:
    """The row of a trace that holds at least one record."""
    records = trace.records()
    roots = trace.tree()
    root = roots[0].record
    first = [root, *records]
    return TraceSummary(
        trace_id=trace.trace_id,
        root_name=_name(root),
        started=records[0].timestamp,
        duration_ms=trace.duration_ms or 0.0,
        llm_calls=len(trace.calls),
        spans=len(trace.spans),
        cost_usd=trace.cost_usd,
        errors=trace.errors,
        status=trace.status,
        session_id=next((r.session_id for r in first if r.session_id is not None), None),
        user_id=next((r.user_id for r in first if r.user_id is not None), None),
    )


@dataclass(frozen=True, slots=True)
class TraceFilters:
    """What ``traces(...)`` keeps (see the module docstring)."""

    since: datetime | None = None
    until: datetime | None = None
    session_id: str | None = None
    user_id: str | None = None
    agent: str | None = None
    status: Literal["ok", "error", "cancelled"] | None = None

    def __post_init__(self) -> None:
        """Check the types; naive datetimes are UTC, aware ones converted."""
        check_filters(self, ("since", "until"), ("session_id", "user_id", "agent"))
        if self.status is not None and self.status not in _STATUSES:
            raise ValueError(f"status must be one of {list(_STATUSES)}, got {self.status!r}")

    def matches(self, trace: Trace, summary: TraceSummary) -> bool:
        """Whether a trace passes every filter that is set."""
        records: list[TraceRecord] = [*trace.calls, *trace.spans]
        return (
            (self.since is None or summary.started >= self.since)
            and (self.until is None or summary.started < self.until)
            and (self.session_id is None or any(r.session_id == self.session_id for r in records))
            and (self.user_id is None or any(r.user_id == self.user_id for r in records))
            and (self.agent is None or any(r.agent_name == self.agent for r in records))
            and (self.status is None or summary.status == self.status)
        )


def check_trace_limit(limit: object) -> int:
    """``traces``' ``limit``: an int from 0 to :data:`MAX_TRACE_LIMIT`, or ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_TRACE_LIMIT:
        raise ValueError(f"limit must be an int from 0 to {MAX_TRACE_LIMIT}, got {limit!r}")
    return limit


def summarize_traces(
    calls: Iterable[LLMCall],
    spans: Iterable[TraceSpan],
    filters: TraceFilters,
    limit: int,
    newest_first: bool,
) -> list[TraceSummary]:
    """The reference ``traces(...)``: every record grouped by trace, filtered, ordered by start
    (then trace id), at most ``limit``. Records without a trace id are in no trace."""
    members: dict[str, tuple[list[LLMCall], list[TraceSpan]]] = {}
    for call in calls:
        if call.trace_id is not None:
            members.setdefault(call.trace_id, ([], []))[0].append(call)
    for span in spans:
        members.setdefault(span.trace_id, ([], []))[1].append(span)
    rows = []
    for trace_id, (its_calls, its_spans) in members.items():
        trace = build_trace(trace_id, its_calls, its_spans)
        summary = summarize_trace(trace)
        if filters.matches(trace, summary):
            rows.append(summary)
    return order_traces(rows, newest_first)[:limit]


def order_traces(rows: list[TraceSummary], newest_first: bool) -> list[TraceSummary]:
    """Rows by start (newest first unless told), ties by trace id."""
    rows.sort(key=lambda r: r.trace_id)
    rows.sort(key=lambda r: r.started, reverse=newest_first)
    return rows


@dataclass(frozen=True, slots=True)
class Walk:
    """What :func:`walk_traces` asks a store: ``(trace_id, start)`` of records of ``table``
    (``"calls"`` with a trace id, or ``"spans"``) whose ``column`` is ``value`` (``None``: every
    record), starting at or after ``since`` and before ``until`` (each ``None``: unbounded),
    beyond ``after`` in walking order (``None``: from the first), walking newest first or
    oldest first: the first ``n`` of them *and* every other one that shares the ``n``-th's
    start (so a page never ends inside a run of equal starts). Order of the answer: any."""

    table: Literal["calls", "spans"]
    column: Literal["session_id", "user_id", "agent_name", "status"] | None
    value: str | None
    since: datetime | None
    until: datetime | None
    after: Any
    n: int
    newest_first: bool


@dataclass(frozen=True, slots=True)
class Check:
    """What :func:`walk_traces` asks a store: for each of ``trace_ids`` that has a record,
    ``(trace_id, start, matches)``: its earliest record's start (both tables) and whether the
    trace passes every filter that is set (the ``HAVING`` of the module docstring's rules)."""

    trace_ids: list[str]


#: Records a first :class:`Walk` asks for per row of the page (at least :data:`_FIRST_WALK`);
#: each next walk of a table asks for twice as many as its last, up to :data:`_MAX_WALK`.
_WALK_PER_ROW: Final = 4
_FIRST_WALK: Final = 64
_MAX_WALK: Final = 4096
#: Most trace ids one :class:`Check` names (SQLite binds each twice, under its 32,766).
_MAX_CHECK: Final = 1000


def _driver(
    filters: TraceFilters,
) -> tuple[Literal["session_id", "user_id", "agent_name", "status"] | None, str | None]:
    """The column whose index a walk may follow: a filter that a matching trace's records must
    hold at least once (see :func:`walk_traces`)."""
    if filters.session_id is not None:
        return "session_id", filters.session_id
    if filters.user_id is not None:
        return "user_id", filters.user_id
    if filters.agent is not None:
        return "agent_name", filters.agent
    if filters.status in ("error", "cancelled"):
        return "status", filters.status
    return None, None


@dataclass(slots=True)
class _Stream:
    """One table's records walked through one index, and how far the walk has come."""

    table: Literal["calls", "spans"]
    column: Literal["session_id", "user_id", "agent_name", "status"] | None
    value: str | None
    until: datetime | None
    size: int  # records the next walk asks for
    edge: Any = None  # the start of the last record walked (None: not walked yet)
    live: bool = True  # False once a walk came back short: every record of the index met
    read: int = 0  # records walked so far


def walk_traces(
    filters: TraceFilters, limit: int, newest_first: bool
) -> Generator[list[Walk] | Check, list[Any], list[str]]:
    """The ids of a ``traces(...)`` page, in its order, found without reading every record.

    A generator that yields requests (a list of :class:`Walk`, answered by a list of rows per
    walk; a :class:`Check`, answered by its rows); it returns the ids. The store drives it (in
    its reader thread for SQLite, with awaits for PostgreSQL): the algorithm is written once.

    Newest first: walk each table's records newest first through an index, following one
    filter every matching trace must hold on at least one record (session, user, agent, an
    error or cancelled status; else every record). Every trace met is checked once (its start,
    its verdict on every filter). After a walk of a table has taken every record at or after
    ``edge[table]``, a trace not met yet has all its followed records before every table's
    edge, so it starts before the latest edge (the *frontier*); a matching trace met that
    starts at or after the frontier therefore comes before every trace not met. The page is
    done when ``limit`` of them are there, or when both walks are exhausted (every trace met).

    Oldest first is the mirror image walking every record (a trace's first record is its
    start, so a trace not met starts after the earliest edge). A followed filter's records say
    nothing of a trace's start (it may begin with records that do not hold it), but once they
    are all walked every matching trace has been met: with such a filter both walks run, the
    one with fewer records read so far going next, and the page is done when either is.

    Costs: about ``limit`` traces' records and one check per page for the first page; a rare
    filter value walks about its own records (oldest first: twice as many).
    """
    if limit == 0:
        return []
    column, value = _driver(filters)
    size = max(_FIRST_WALK, _WALK_PER_ROW * limit)
    tables: tuple[Literal["calls", "spans"], ...] = ("calls", "spans")
    # A matching trace's records all start at or after its own start (>= since); oldest first,
    # its first record is its start (< until). Newest first, a trace that started before
    # ``until`` may have records after it, as may a followed filter's records oldest first.
    since = filters.since
    if newest_first or column is None:
        until = None if newest_first else filters.until
        bounding = covering = [_Stream(t, column, value, until, size) for t in tables]
    else:
        bounding = [_Stream(t, None, None, filters.until, size) for t in tables]
        covering = [_Stream(t, column, value, None, size) for t in tables]
    streams = bounding if covering is bounding else [*bounding, *covering]
    seen: set[str] = set()
    found: dict[str, Any] = {}  # trace id -> start, the matching traces met

    def ahead(start: Any, frontier: Any) -> bool:
        return bool(start >= frontier if newest_first else start <= frontier)

    while True:
        due = [s for s in streams if s.live and s.edge is None]  # first: all (one round trip)
        if not due:
            if covering is not bounding and sum(s.read for s in covering) <= sum(
                s.read for s in bounding
            ):
                due = [s for s in covering if s.live]
            else:
                pick = max if newest_first else min
                due = [pick((s for s in bounding if s.live), key=lambda s: s.edge)]
        requests = [
            Walk(s.table, s.column, s.value, since, s.until, s.edge, s.size, newest_first)
            for s in due
        ]
        answers = yield requests
        new: dict[str, None] = {}
        for stream, request, rows in zip(due, requests, answers, strict=True):
            stream.read += len(rows)
            if len(rows) < request.n:
                stream.live = False
            else:
                stream.edge = (min if newest_first else max)(row[1] for row in rows)
                stream.size = min(_MAX_WALK, 2 * stream.size)
            new.update((row[0], None) for row in rows if row[0] not in seen)
        fresh = list(new)
        seen.update(fresh)
        for at in range(0, len(fresh), _MAX_CHECK):
            checked = yield Check(fresh[at : at + _MAX_CHECK])
            found.update((trace_id, start) for trace_id, start, ok in checked if ok)
        ordered = sorted(found.items(), key=lambda item: item[0])
        ordered.sort(key=lambda item: item[1], reverse=newest_first)
        if not any(s.live for s in covering) or not any(s.live for s in bounding):
            return [trace_id for trace_id, _ in ordered[:limit]]
        frontier = (max if newest_first else min)(s.edge for s in bounding if s.live)
        if len(ordered) >= limit and ahead(ordered[limit - 1][1], frontier):
            return [trace_id for trace_id, _ in ordered[:limit]]


#: A step's fields in stored column order (the model's); ``timestamp`` is stored as the
#: store's own time type and ``attributes`` as JSON text.
SPAN_FIELDS: Final = tuple(TraceSpan.model_fields)
_TIMESTAMP: Final = SPAN_FIELDS.index("timestamp")


def span_values(
    span: TraceSpan, stamp: Callable[[datetime], Any], dumps: Callable[[Any], str]
) -> tuple[Any, ...]:
    """A step's stored values in :data:`SPAN_FIELDS` order (``stamp`` converts the start)."""
    data = span.__dict__
    values = [data[name] for name in SPAN_FIELDS]
    values[_TIMESTAMP] = stamp(values[_TIMESTAMP])
    attributes = values[-1]
    values[-1] = dumps(attributes) if attributes else None
    return tuple(values)


def spans_of(
    rows: Iterable[Sequence[Any]], moment: Callable[[Any], datetime], loads: Callable[[str], Any]
) -> list[TraceSpan]:
    """Steps from stored rows in :data:`SPAN_FIELDS` order (our own data: trusted)."""
    out = []
    for row in rows:
        data = dict(zip(SPAN_FIELDS, row, strict=True))
        data["timestamp"] = moment(data["timestamp"])
        attributes = data["attributes"]
        data["attributes"] = loads(attributes) if attributes else {}
        out.append(TraceSpan.model_construct(**data))
    return out


def check_filters(filters: object, moments: Sequence[str], texts: Sequence[str]) -> None:
    """Check a frozen filters object in place: ``moments`` are datetimes (a naive one taken to
    be UTC, an aware one converted), ``texts`` are str; else ``ValueError``."""
    for name in moments:
        moment = getattr(filters, name)
        if moment is None:
            continue
        if not isinstance(moment, datetime):
            raise ValueError(f"{name} must be a datetime, got {type(moment).__name__}")
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        object.__setattr__(filters, name, utc)
    for name in texts:
        value = getattr(filters, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a str, got {type(value).__name__}")
