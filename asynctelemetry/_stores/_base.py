"""The store protocol, the summary row, and the one implementation of filters and percentiles.

Filter semantics (every store follows them): ``since`` is inclusive, ``until`` exclusive (a naive
datetime is taken to be UTC); ``model``, ``provider``, ``session_id`` and ``status`` match
exactly, except ``model``, which matches a call whose ``model`` *or* ``request_model`` is
that name (what users mean by "a model": a dated snapshot answers to the name asked for, and a
failed call that never got a response model is found with its model's calls); results are oldest
first (by ``timestamp``, ties in insertion order) unless
``newest_first``; ``limit`` applies after ordering. Filters of the wrong type raise
``ValueError``.

Percentiles are nearest-rank: for ``n`` sorted values the p-th percentile is the value at rank
``ceil(p / 100 * n)`` (1-based), so it is always an observed value — exactly so while the window
(every call that passes the filters of one ``summary``/``timeseries`` call, all groups and
buckets together) holds at most :data:`EXACT_LIMIT` calls. Past that, every percentile of the
answer is :func:`approximate` of that exact value: the representative of its log bucket, at most
1% from it (relative), which lets a store read large windows from histograms kept as calls are
written (SQLite's rollups). The rule, for every store (a new store follows it as it is):

1. compute the exact nearest-rank percentile as above;
2. if the window holds more than ``EXACT_LIMIT`` calls, report ``approximate(value)`` instead.

Because :func:`histogram_index` is monotone, ``approximate`` of the exact rank-``r`` value is the
representative of the bucket holding rank ``r`` in a histogram of the values, so a store may
compute step 2 from per-bucket counts (:func:`histogram_percentile`) and give equal rows.
``approximate(v) = 2 * GAMMA**i / (GAMMA + 1)`` with ``i = ceil(log(v) / log(GAMMA))`` and
``GAMMA = 1.02``: for ``v`` in ``(GAMMA**(i-1), GAMMA**i]`` the relative error is at most
``(GAMMA - 1) / (GAMMA + 1)`` < 0.99%; ``0.0`` stays ``0.0``. Always call these functions (one
implementation): do not re-derive them in SQL.
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    Protocol,
    Self,
    TypedDict,
    Unpack,
    runtime_checkable,
)

from pydantic import BaseModel, ConfigDict

from .._record import TraceSpan
from .._rows import Rows
from ._errors import DEFAULT_ERROR_GROUPS, ErrorGroup, check_group_limit
from ._pages import CallPage, PageRead, PageRow, PageSort, check_page, read_page
from ._sessions import SessionPage, check_session_limit
from ._traces import (
    Trace,
    TraceFilters,
    TraceSummary,
    build_trace,
    check_filters,
    check_trace_limit,
    summarize_trace,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence
    from types import TracebackType

    from .._pricing import PriceTable
    from .._record import LLMCall

__all__ = [
    "EXACT_LIMIT",
    "GAMMA",
    "GROUP_FIELDS",
    "MULTI_GROUPS",
    "ORDER_BY",
    "ZERO_INDEX",
    "CallFilters",
    "CallPage",
    "CallStore",
    "CallSummary",
    "ErrorFilters",
    "Filters",
    "GroupBy",
    "OrderBy",
    "PageSort",
    "ReplayFilters",
    "StoreCounts",
    "StoreReads",
    "TimeBucket",
    "TraceQuery",
    "approximate",
    "bucket_ns",
    "bucket_of",
    "bucket_start_ns",
    "check_id",
    "check_limit",
    "from_ns",
    "group_field",
    "group_key",
    "group_sql",
    "histogram_index",
    "histogram_percentile",
    "histogram_value",
    "nearest_rank",
    "percentile",
    "rank_key",
    "series_field",
    "split_records",
    "summarize",
    "summary_of",
    "timeseries",
    "to_ns",
    "top",
    "window_percentile",
]

GroupBy = Literal["model", "request_model", "provider", "session", "route", "agent", "user", "tag"]
#: ``summary(by=...)`` and ``timeseries(by=...)`` → the LLMCall field it groups on.
GROUP_FIELDS: dict[str, str] = {
    "model": "model",
    "request_model": "request_model",
    "provider": "provider",
    "session": "session_id",
    "route": "route_name",
    "agent": "agent_name",
    "user": "user_id",
    "tag": "tags",
}
#: Groups of a field with several values per call (``summary`` only): a call counts once under
#: each of its values, and once under ``None`` when it has none. The window (for the rule of
#: percentiles) is still the number of calls.
MULTI_GROUPS: frozenset[str] = frozenset({"tag"})


def group_field(by: object) -> str:
    """The LLMCall field ``by=`` groups on, or ``ValueError``.

    ``request_model`` is the one key users think in: the model asked for, falling back to the
    model that answered when no request model is known (:func:`group_key`), so a call built
    as ``LLMCall(model=...)`` is grouped under its model, never under ``None``.
    """
    try:
        return GROUP_FIELDS[by]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"by must be one of {sorted(GROUP_FIELDS)}, not {by!r}") from None


def series_field(by: object) -> str:
    """:func:`group_field` for ``timeseries``, which groups on one value per call."""
    if by in MULTI_GROUPS:
        raise ValueError(f"timeseries cannot group by {by!r}; summary(by={by!r}) can")
    return group_field(by)


OrderBy = Literal["cost", "calls", "errors", "p95_latency"]
#: ``summary(order_by=...)``: what the largest groups are largest in.
ORDER_BY: Final = ("cost", "calls", "errors", "p95_latency")


def check_order(order_by: object) -> None:
    """``order_by`` is one of :data:`ORDER_BY`, or ``ValueError``."""
    if order_by not in ORDER_BY:
        raise ValueError(f"order_by must be one of {list(ORDER_BY)}, not {order_by!r}")


def rank_key(
    order_by: str, key: str | None, calls: int, errors: int, cost: float, p95: float | None
) -> tuple[Any, ...]:
    """The sort key of a group, largest first: by ``order_by``, then calls, cost and key (a
    group without a p95 latency last). ``"cost"`` is the order of every summary."""
    name = key or ""
    if order_by == "cost":
        return (-cost, -calls, name)
    if order_by == "calls":
        return (-calls, -cost, name)
    if order_by == "errors":
        return (-errors, -calls, -cost, name)
    return (p95 is None, -(p95 or 0.0), -calls, -cost, name)


def top(rows: Iterable[CallSummary], limit: int | None, order_by: str) -> list[CallSummary]:
    """``rows`` largest first by ``order_by`` (:func:`rank_key`), at most ``limit``."""
    ordered = sorted(
        rows,
        key=lambda r: rank_key(order_by, r.key, r.calls, r.errors, r.cost_usd, r.p95_latency_ms),
    )
    return ordered if limit is None else ordered[:limit]


def group_key(call: LLMCall, field: str) -> str | None:
    """The group of ``call`` under ``field`` (from :func:`group_field`): the field's value,
    except ``request_model``, which falls back to ``model``."""
    if field == "request_model":
        return call.request_model or call.model
    value: str | None = getattr(call, field)
    return value


def group_sql(field: str) -> str:
    """The SQL expression of :func:`group_key` (``field`` from :func:`group_field`, a fixed
    name, never text from a caller); the same in SQLite and PostgreSQL."""
    return "COALESCE(request_model, model)" if field == "request_model" else field


_BUCKET_TEXT = re.compile(r"(\d+)(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_from_timestamp = datetime.fromtimestamp
#: Microseconds under which ``fromtimestamp(micros / 1e6)`` is exact: below 2**32 seconds the
#: float is within 0.25 µs of the true time, and ``fromtimestamp`` rounds to the nearest µs.
_FLOAT_EXACT = 2**32 * 1_000_000


def bucket_ns(bucket: object) -> int:
    """The width of a time bucket in integer nanoseconds.

    ``bucket`` is a positive :class:`~datetime.timedelta` or text: a whole number and a unit,
    ``s``, ``m``, ``h`` or ``d`` (``"10s"``, ``"1m"``, ``"5m"``, ``"1h"``, ``"1d"``).

    Raises:
        ValueError: anything else, including a zero or negative width.
    """
    if isinstance(bucket, timedelta):
        micros = bucket // timedelta(microseconds=1)
    elif isinstance(bucket, str) and (match := _BUCKET_TEXT.fullmatch(bucket.strip())):
        micros = int(match[1]) * _UNIT_SECONDS[match[2]] * 1_000_000
    else:
        raise ValueError(
            f"bucket must be a timedelta or text like '10s', '1m', '5m', '1h', '1d'; got {bucket!r}"
        )
    if micros <= 0:
        raise ValueError(f"bucket must be longer than zero, got {bucket!r}")
    return micros * 1000


def bucket_start_ns(ns: int, width_ns: int) -> int:
    """The start of the bucket holding ``ns`` (nanoseconds since the epoch): buckets are aligned
    to the epoch, so a 5-minute bucket starts at :00, :05, … UTC (floor, also before 1970)."""
    return ns - ns % width_ns


def to_ns(moment: datetime) -> int:
    """Integer nanoseconds since the epoch, UTC; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def from_ns(ns: int) -> datetime:
    """The aware UTC datetime of integer nanoseconds since the epoch, cut to the microsecond."""
    micros = ns // 1000
    if -_FLOAT_EXACT < micros < _FLOAT_EXACT:  # (every time from 1834 to 2106: the tracer's)
        return _from_timestamp(micros / 1e6, UTC)  # half the cost of adding a timedelta
    return _EPOCH + timedelta(microseconds=micros)


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


#: Windows of more calls than this report :func:`approximate` percentiles (module docstring).
EXACT_LIMIT = 10_000
#: Ratio between the bounds of a log bucket: relative error <= (GAMMA - 1) / (GAMMA + 1) < 1%.
GAMMA = 1.02
_LOG_GAMMA = math.log(GAMMA)
#: The bucket of ``0.0`` (below every positive value's bucket) and of infinity (a derived
#: tokens-per-second can overflow).
ZERO_INDEX = -(2**31)
_INF_INDEX = 2**31


def histogram_index(value: float) -> int:
    """The log bucket of ``value`` (>= 0): ``ceil(log(value) / log(GAMMA))``, or ZERO_INDEX."""
    if value <= 0.0:
        return ZERO_INDEX
    if value == math.inf:
        return _INF_INDEX
    return math.ceil(math.log(value) / _LOG_GAMMA)


def histogram_value(index: int) -> float:
    """The representative of a log bucket: ``2 * GAMMA**index / (GAMMA + 1)``."""
    if index == ZERO_INDEX:
        return 0.0
    if index == _INF_INDEX:
        return math.inf
    try:
        return 2.0 * math.exp(index * _LOG_GAMMA) / (GAMMA + 1.0)
    except OverflowError:  # only values within 2% of the largest float
        return sys.float_info.max


def approximate(value: float | None) -> float | None:
    """``value`` as a large window reports it: its log bucket's representative (<1% off)."""
    return None if value is None else histogram_value(histogram_index(value))


def window_percentile(value: float | None, window_calls: int) -> float | None:
    """An exact percentile as reported for a window of ``window_calls`` calls (the rule)."""
    return value if window_calls <= EXACT_LIMIT else approximate(value)


def histogram_percentile(counts: dict[int, int], p: float) -> float | None:
    """The nearest-rank p-th percentile of values given as ``{histogram_index: count}``: the
    representative of the bucket holding the rank (= ``approximate`` of the exact value)."""
    total = sum(counts.values())
    if not total:
        return None
    rank = nearest_rank(total, p)
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return histogram_value(index)
    raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover


def check_id(name: str, value: object) -> str:
    """``value`` as a lookup key (``get``'s ``call_id``, ``trace``'s ``trace_id``): a str, or
    ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str, got {type(value).__name__}")
    return value


def split_records(
    records: Sequence[LLMCall | TraceSpan],
) -> tuple[Sequence[LLMCall], list[TraceSpan]]:
    """``add_many``'s records as (calls, steps), each in order; a batch of calls only (the usual
    case, and every collector ``Rows`` batch) is returned as it is."""
    if records.__class__ is Rows:
        return records, []
    spans = [r for r in records if r.__class__ is TraceSpan]
    if not spans:
        return records, []  # type: ignore[return-value]
    return [r for r in records if r.__class__ is not TraceSpan], spans  # type: ignore[misc]


def check_limit(limit: object) -> None:
    """``limit`` is None or an int >= 0, or ``ValueError``."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")


_TEXT_FILTERS: Final = (
    "model", "provider", "session_id", "status", "error_type", "error_message"
)  # fmt: skip


class _WhereFilters(TypedDict, total=False):
    """The keyword filters every read of calls takes (see the module docstring)."""

    since: datetime | None
    until: datetime | None
    model: str | None
    provider: str | None
    session_id: str | None


class ReplayFilters(_WhereFilters, total=False):
    """The keyword filters of ``replay`` and ``reprice``: time window, model, provider,
    session and status (see the module docstring for their semantics)."""

    status: str | None


class ErrorFilters(_WhereFilters, total=False):
    """The keyword filters of ``error_groups``: ``replay``'s but ``status``, and the error's
    type and message."""

    error_type: str | None
    error_message: str | None


class CallFilters(ReplayFilters, ErrorFilters, total=False):
    """The keyword filters of ``query``, ``count``, ``summary``, ``timeseries`` and ``page``:
    every field of :class:`Filters`, each written once here for every read's signature."""


class TraceQuery(TypedDict, total=False):
    """The keyword filters of ``traces`` (the fields of :class:`~._traces.TraceFilters`)."""

    since: datetime | None
    until: datetime | None
    session_id: str | None
    user_id: str | None
    agent: str | None
    status: Literal["ok", "error", "cancelled"] | None


@dataclass(frozen=True, slots=True)
class Filters:
    """The query filters every store accepts (see the module docstring for their semantics)."""

    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    provider: str | None = None
    session_id: str | None = None
    status: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    def __post_init__(self) -> None:
        """Check the filters' types; a naive ``since``/``until`` is taken to be UTC (as records
        are), an aware one is converted to UTC."""
        check_filters(self, ("since", "until"), _TEXT_FILTERS)

    def matches(self, call: LLMCall) -> bool:
        """Whether ``call`` passes every filter that is set."""
        return (
            (self.since is None or call.timestamp >= self.since)
            and (self.until is None or call.timestamp < self.until)
            and (self.model is None or call.model == self.model or call.request_model == self.model)
            and (self.provider is None or call.provider == self.provider)
            and (self.session_id is None or call.session_id == self.session_id)
            and (self.status is None or call.status == self.status)
            and (self.error_type is None or call.error_type == self.error_type)
            and (self.error_message is None or call.error_message == self.error_message)
        )

    def matches_step(self, span: TraceSpan) -> bool:
        """Whether a step passes the filters a step can pass (not ``model``, ``provider``)."""
        return (
            (self.since is None or span.timestamp >= self.since)
            and (self.until is None or span.timestamp < self.until)
            and (self.session_id is None or span.session_id == self.session_id)
            and (self.status is None or span.status == self.status)
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


class TimeBucket(BaseModel):
    """The calls of one time bucket (and one group, with ``by=``), with their totals.

    ``start`` is the bucket's start (aware, UTC, aligned to the epoch); ``key`` the group
    (``None`` without ``by=``, or for calls without a value for the group's field).
    Percentiles are nearest-rank, as in :class:`CallSummary`.
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    key: str | None
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p50_ttft_ms: float | None


#: A summary row's fields after ``key``: its totals, then its percentiles.
_SUMMARY_FIELDS: Final = tuple(CallSummary.model_fields)[1:]
#: A time bucket's fields after ``start`` and ``key``: its totals, then its percentiles.
_BUCKET_FIELDS: Final = tuple(TimeBucket.model_fields)[2:]


def summary_of(
    key: str | None, totals: Sequence[Any], percentiles: Sequence[float | None]
) -> CallSummary:
    """A summary row, as every store builds one: ``totals`` (calls, errors, input, output,
    cached input and reasoning tokens, cost, unpriced calls) and ``percentiles`` (p50 and p95
    latency, p50 TTFT, median tokens per second), in :class:`CallSummary`'s field order."""
    values = zip(_SUMMARY_FIELDS, (*totals, *percentiles), strict=True)
    return CallSummary(key=key, **dict(values))


def bucket_of(
    start_ns: int, key: str | None, totals: Sequence[Any], percentiles: Sequence[float | None]
) -> TimeBucket:
    """A time bucket, as every store builds one: ``totals`` (calls, errors, input, output and
    cached input tokens, cost) and ``percentiles`` (p50 and p95 latency, p50 TTFT), in
    :class:`TimeBucket`'s field order."""
    values = zip(_BUCKET_FIELDS, (*totals, *percentiles), strict=True)
    return TimeBucket(start=from_ns(start_ns), key=key, **dict(values))


def timeseries(
    calls: Iterable[LLMCall], bucket: timedelta | str = "1m", by: str | None = None
) -> list[TimeBucket]:
    """Group ``calls`` in fixed time buckets (and by ``by``); oldest bucket first, then key
    (``None`` first). Every store's ``timeseries`` gives these rows for the same calls."""
    width = bucket_ns(bucket)
    field = None if by is None else series_field(by)
    groups: dict[tuple[int, str | None], list[LLMCall]] = {}
    for call in calls:
        start = bucket_start_ns(to_ns(call.timestamp), width)
        key = None if field is None else group_key(call, field)
        groups.setdefault((start, key), []).append(call)
    window = sum(map(len, groups.values()))
    return [
        _bucket_row(start, key, members, window)
        for (start, key), members in sorted(groups.items(), key=_bucket_order)
    ]


def _bucket_order(item: tuple[tuple[int, str | None], object]) -> tuple[int, bool, str]:
    (start, key), _ = item
    return start, key is not None, key or ""


def _bucket_row(start: int, key: str | None, calls: list[LLMCall], window: int) -> TimeBucket:
    latencies = sorted(c.duration_ms for c in calls if c.duration_ms is not None)
    ttfts = sorted(c.ttft_ms for c in calls if c.ttft_ms is not None)

    def rank(values: list[float], p: float) -> float | None:
        return window_percentile(percentile(values, p), window)

    totals = _totals(calls)
    return bucket_of(
        start,
        key,
        (*totals[:5], totals[6]),
        (rank(latencies, 50), rank(latencies, 95), rank(ttfts, 50)),
    )


def _totals(calls: list[LLMCall]) -> tuple[Any, ...]:
    """The totals of a summary row (see :func:`summary_of`)."""
    return (
        len(calls),
        sum(c.status == "error" for c in calls),
        sum(c.input_tokens or 0 for c in calls),
        sum(c.output_tokens or 0 for c in calls),
        sum(c.cached_input_tokens or 0 for c in calls),
        sum(c.reasoning_tokens or 0 for c in calls),
        math.fsum(c.cost_usd for c in calls if c.cost_usd is not None),
        sum(c.cost_usd is None for c in calls),
    )


def summarize(
    calls: Iterable[LLMCall],
    by: str = "model",
    limit: int | None = None,
    order_by: str = "cost",
) -> list[CallSummary]:
    """Group ``calls`` and total each group; rows sorted by cost, then calls, descending (or by
    ``order_by``, :func:`rank_key`), at most ``limit`` (the top groups).

    ``by="tag"``: a call counts once under each of its tags (under ``None`` without tags)."""
    field = group_field(by)
    groups: dict[str | None, list[LLMCall]] = {}
    window = 0
    if by in MULTI_GROUPS:
        for call in calls:
            window += 1
            for key in getattr(call, field) or (None,):
                groups.setdefault(key, []).append(call)
    else:
        for call in calls:
            window += 1
            groups.setdefault(group_key(call, field), []).append(call)
    rows = [_summary_row(key, members, window) for key, members in groups.items()]
    return top(rows, limit, order_by)


def _summary_row(key: str | None, calls: list[LLMCall], window: int) -> CallSummary:
    latencies = sorted(c.duration_ms for c in calls if c.duration_ms is not None)
    ttfts = sorted(c.ttft_ms for c in calls if c.ttft_ms is not None)
    speeds = sorted(s for c in calls if (s := c.tokens_per_sec) is not None)

    def rank(values: list[float], p: float) -> float | None:
        return window_percentile(percentile(values, p), window)

    return summary_of(
        key,
        _totals(calls),
        (rank(latencies, 50), rank(latencies, 95), rank(ttfts, 50), rank(speeds, 50)),
    )


class StoreCounts:
    """The counts every store keeps, one meaning in each."""

    __slots__ = ()
    _rejected: int
    _duplicates: int

    @property
    def rejected(self) -> int:
        """Calls refused, logged and counted: at the store's door (a timestamp out of range, a
        key too long: see ``_door``), or by the database (text it cannot hold)."""
        return self._rejected

    @property
    def duplicates(self) -> int:
        """Calls not stored because a call with the same ``call_id`` already was."""
        return self._duplicates


class StoreReads:
    """The reads and ``reprice`` of every store, their keyword filters written once: each checks
    its arguments, builds :class:`Filters` and hands them to the store's own ``_query``,
    ``_count``, ``_summary``, ``_timeseries``, ``_reprice`` and ``_replay``."""

    __slots__ = ()

    async def query(
        self,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        **filters: Unpack[CallFilters],
    ) -> list[LLMCall]:
        """Calls that pass the filters, oldest first unless ``newest_first``; ties in timestamp
        come in insertion order either way; at most ``limit``, applied after ordering."""
        check_limit(limit)
        return await self._query(Filters(**filters), limit, newest_first)

    async def count(self, **filters: Unpack[CallFilters]) -> int:
        """How many calls pass the filters."""
        return await self._count(Filters(**filters))

    async def summary(
        self,
        *,
        by: GroupBy = "model",
        limit: int | None = None,
        order_by: OrderBy = "cost",
        **filters: Unpack[CallFilters],
    ) -> list[CallSummary]:
        """One row per group (``by``) of the calls that pass the filters, by cost, then calls;
        equal to :func:`summarize` of the same calls in every store.

        ``limit=N`` keeps the top ``N`` groups by ``order_by`` (``"cost"``, ``"calls"``,
        ``"errors"`` or ``"p95_latency"``; largest first), chosen in the store: only their
        percentiles are computed, so a top 10 of 20,000 sessions is cheap."""
        group_field(by)  # a bad ``by`` is a ValueError, even in an empty store
        check_limit(limit)
        check_order(order_by)
        return await self._summary(by, Filters(**filters), limit, order_by)

    async def timeseries(
        self,
        *,
        bucket: timedelta | str = "1m",
        by: GroupBy | None = None,
        **filters: Unpack[CallFilters],
    ) -> list[TimeBucket]:
        """The calls that pass the filters in fixed buckets (aligned to the epoch, UTC), per
        group when ``by`` is given; oldest first, then key; equal to :func:`timeseries`."""
        width_ns = bucket_ns(bucket)  # a bad bucket or ``by`` is a ValueError, even when empty
        if by is not None:
            series_field(by)
        return await self._timeseries(width_ns, by, Filters(**filters))

    async def reprice(self, table: PriceTable, **filters: Unpack[ReplayFilters]) -> int:
        """Price the calls that pass the filters again with ``table`` and keep the new costs
        (``price_version`` set to ``table.version``); return how many changed.

        The rule of every store: a call is priced by ``table.cost(call)`` (its response model,
        then its request model); a call the table cannot price keeps its stored cost and
        version; a call whose cost and version are already those is left alone. Summaries,
        time series and rollups follow the new costs.
        """
        asked = Filters(**filters)
        if not table.loaded:  # the price data's first load: in a thread, not on the loop
            await asyncio.to_thread(table.load)
        return await self._reprice(table, asked)

    def replay(
        self, *, speed: float | None = None, **filters: Unpack[ReplayFilters]
    ) -> AsyncIterator[LLMCall]:
        """The calls that pass the filters, oldest first, paced by ``speed`` (``None``: as fast
        as they are read; ``2.0``: the original intervals halved)."""
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        return self._replay(speed, Filters(**filters))

    async def error_groups(
        self, *, limit: int = DEFAULT_ERROR_GROUPS, **filters: Unpack[ErrorFilters]
    ) -> list[ErrorGroup]:
        """The failed calls that pass the filters, grouped by error type and message: calls,
        first and last seen, models; most calls first, at most ``limit`` (0 to 1,000) groups;
        equal to :func:`~._errors.error_groups` of the same calls in every store."""
        limit = check_group_limit(limit)
        return await self._error_groups(Filters(**filters, status="error"), limit)

    async def page(
        self,
        *,
        sort: PageSort = "time",
        descending: bool = True,
        after: str | None = None,
        limit: int = 100,
        search: str | None = None,
        **filters: Unpack[CallFilters],
    ) -> CallPage:
        """One page of the calls that pass the filters (and ``search``: a call id, trace id,
        session or user), by ``sort`` (``"time"``, ``"cost"``, ``"latency"``, ``"tokens"``),
        largest first unless ``descending=False``, unknown values last either way; ``after``
        is the ``next`` of the page before (keyset: calls stored since never shift a page).
        The rule is :mod:`asynctelemetry._stores._pages`'s."""
        check_page(sort, limit)
        if search is not None and not isinstance(search, str):
            raise ValueError(f"search must be a str, got {type(search).__name__}")
        return await read_page(
            self._page,
            Filters(**filters),
            sort=sort,
            descending=bool(descending),
            search=search,
            after=after,
            limit=limit,
        )

    async def get_trace(self, trace_id: str) -> Trace | None:
        """Every call and step of ``trace_id`` (their ``trace_id`` indexes): a
        :class:`~asynctelemetry.Trace` with its ``tree()`` and totals, or ``None`` when the
        store holds nothing of it."""
        trace_id = check_id("trace_id", trace_id)
        calls: list[LLMCall] = await self.trace(trace_id)  # type: ignore[attr-defined]
        spans = await self._trace_spans(trace_id)
        if not calls and not spans:
            return None
        return build_trace(trace_id, calls, spans)

    async def traces(
        self, *, limit: int = 50, newest_first: bool = True, **filters: Unpack[TraceQuery]
    ) -> list[TraceSummary]:
        """One row per trace (its calls and steps), newest first by start unless
        ``newest_first=False``, at most ``limit`` (0 to 1,000); ``since``/``until`` filter on
        the trace's start, ``session_id``/``user_id``/``agent`` keep traces with a record that
        has that value, ``status`` the trace's status (see :mod:`._traces`)."""
        limit = check_trace_limit(limit)
        ids: list[str] = await self._trace_ids(TraceFilters(**filters), limit, newest_first)
        calls, spans = await self._traces_records(ids) if ids else ([], [])
        members: dict[str, tuple[list[LLMCall], list[TraceSpan]]] = {i: ([], []) for i in ids}
        for call in calls:
            members[call.trace_id][0].append(call)  # type: ignore[index]
        for span in spans:
            members[span.trace_id][1].append(span)
        return [  # a trace gone since (retention): the page is one row shorter
            summarize_trace(build_trace(trace_id, *records))
            for trace_id, records in members.items()
            if records != ([], [])
        ]

    async def session(
        self, session_id: str, *, limit: int = 100, after: str | None = None
    ) -> SessionPage:
        """One page of the calls of ``session_id``, oldest first (ties in insertion order): at
        most ``limit`` (1 to 1,000), from ``after`` (the ``next`` of the page before). A
        :meth:`page` by time, oldest first, with the session filter: its keyset and cursor, in
        every store's session index and order."""
        session_id = check_id("session_id", session_id)
        limit = check_session_limit(limit)
        found = await self.page(
            sort="time", descending=False, after=after, limit=limit, session_id=session_id
        )
        return SessionPage(session_id=session_id, calls=found.calls, next=found.next)

    # -- what each store implements ---------------------------------------------------------
    async def _trace_spans(self, trace_id: str) -> list[TraceSpan]:
        raise NotImplementedError

    async def _trace_ids(self, filters: TraceFilters, limit: int, newest_first: bool) -> list[str]:
        """The ids of the traces a ``traces(...)`` page shows, in its order."""
        raise NotImplementedError

    async def _traces_records(self, trace_ids: list[str]) -> tuple[list[LLMCall], list[TraceSpan]]:
        """Every call and step of these traces (a store with SQL reads them at once)."""
        calls: list[LLMCall] = []
        spans: list[TraceSpan] = []
        for trace_id in trace_ids:
            calls += await self.trace(trace_id)  # type: ignore[attr-defined]
            spans += await self._trace_spans(trace_id)
        return calls, spans

    async def _query(
        self, filters: Filters, limit: int | None, newest_first: bool
    ) -> list[LLMCall]:
        raise NotImplementedError

    async def _page(self, read: PageRead) -> list[PageRow]:
        """One phase of a page (:class:`~._pages.PageRead`): (call, key, insertion number)."""
        raise NotImplementedError

    async def _count(self, filters: Filters) -> int:
        raise NotImplementedError

    async def _summary(
        self, by: GroupBy, filters: Filters, limit: int | None, order_by: str
    ) -> list[CallSummary]:
        raise NotImplementedError

    async def _timeseries(
        self, width_ns: int, by: GroupBy | None, filters: Filters
    ) -> list[TimeBucket]:
        raise NotImplementedError

    async def _reprice(self, table: PriceTable, filters: Filters) -> int:
        raise NotImplementedError

    async def _error_groups(self, filters: Filters, limit: int) -> list[ErrorGroup]:
        raise NotImplementedError

    def _replay(self, speed: float | None, filters: Filters) -> AsyncIterator[LLMCall]:
        raise NotImplementedError

    async def _replay_spans(self, filters: Filters) -> AsyncIterator[TraceSpan]:
        """The steps ``replay(source, into=...)`` carries beside the calls, oldest first (ties in
        the order stored): those that start within ``since``/``until`` and have the
        ``session_id`` and ``status`` asked; none when ``model`` or ``provider`` is asked (a
        step has neither). Read in keyset pages (:meth:`_span_page`)."""
        if filters.model is not None or filters.provider is not None:
            return
        after: Any = None
        while True:
            spans, after = await self._span_page(filters, after)
            for span in spans:
                yield span
            if after is None:
                return

    async def _span_page(self, filters: Filters, after: Any) -> tuple[list[TraceSpan], Any]:
        """One page of :meth:`_replay_spans` after the key ``after`` (``None``: the first) and
        the next page's key (``None``: this was the last)."""
        raise NotImplementedError


@runtime_checkable
class CallStore(Protocol):
    """Where calls are kept: :class:`MemoryStore`, :class:`SQLiteStore`, or your own.

    A store is a sink (it has the :class:`~asynctelemetry.Sink` methods ``emit``, ``flush`` and
    ``aclose``): a tracer, a collector or ``replay`` hands it calls through ``emit``, with no
    adapter. ``emit`` must be quick: a store that does I/O queues the calls for a background
    writer and awaits only for room (backpressure), as :class:`SQLiteStore` does.

    ``get`` and ``trace`` find calls by id through an index (a dict in :class:`MemoryStore`, a
    B-tree in SQLite and PostgreSQL): their cost does not grow with the store, so the dashboard
    opens any call or trace at once however many calls are kept.
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
        limit: int | None = None,
        newest_first: bool = False,
        **filters: Unpack[CallFilters],
    ) -> list[LLMCall]:
        """Calls that pass the filters."""
        ...

    async def get(self, call_id: str) -> LLMCall | None:
        """The call whose ``call_id`` this is, or ``None`` (an indexed lookup, not a scan)."""
        ...

    async def page(
        self,
        *,
        sort: PageSort = "time",
        descending: bool = True,
        after: str | None = None,
        limit: int = 100,
        search: str | None = None,
        **filters: Unpack[CallFilters],
    ) -> CallPage:
        """One page of the calls that pass the filters and ``search``, by ``sort``, from the
        cursor ``after`` (the page before's ``next``); see :mod:`._pages` for the rule."""
        ...

    async def trace(self, trace_id: str, *, limit: int | None = None) -> list[LLMCall]:
        """The calls whose ``trace_id`` this is, oldest first (ties in insertion order), at
        most ``limit`` (the oldest); an indexed lookup, not a scan."""
        ...

    async def count(self, **filters: Unpack[CallFilters]) -> int:
        """How many calls pass the filters."""
        ...

    async def summary(
        self,
        *,
        by: GroupBy = "model",
        limit: int | None = None,
        order_by: OrderBy = "cost",
        **filters: Unpack[CallFilters],
    ) -> list[CallSummary]:
        """One row per group of the calls that pass the filters (the top ``limit`` by
        ``order_by``)."""
        ...

    async def timeseries(
        self,
        *,
        bucket: timedelta | str = "1m",
        by: GroupBy | None = None,
        **filters: Unpack[CallFilters],
    ) -> list[TimeBucket]:
        """The calls that pass the filters in fixed time buckets (see :func:`timeseries`)."""
        ...

    async def reprice(self, table: PriceTable, **filters: Unpack[ReplayFilters]) -> int:
        """Price the calls that pass the filters again with ``table`` and keep the new costs
        and ``price_version`` (``table.version``); return how many calls changed. A call is
        priced by ``table.cost(call)``; one the table cannot price keeps its stored cost."""
        ...

    async def error_groups(
        self, *, limit: int = DEFAULT_ERROR_GROUPS, **filters: Unpack[ErrorFilters]
    ) -> list[ErrorGroup]:
        """The failed calls that pass the filters by error type and message, most first."""
        ...

    async def get_trace(self, trace_id: str) -> Trace | None:
        """Every call and step of a trace, with its tree and totals, or ``None``."""
        ...

    async def traces(
        self, *, limit: int = 50, newest_first: bool = True, **filters: Unpack[TraceQuery]
    ) -> list[TraceSummary]:
        """One row per trace, newest first by start, filtered."""
        ...

    async def session(
        self, session_id: str, *, limit: int = 100, after: str | None = None
    ) -> SessionPage:
        """One page of a session's calls, oldest first (``next``: the following page's
        ``after``)."""
        ...

    async def flush(self) -> None:
        """Return once every call added before is durable."""

    def replay(
        self, *, speed: float | None = None, **filters: Unpack[ReplayFilters]
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
