"""The dashboard's JSON API: each route is one function of a store and a checked query.

The API reads stores only through the public :class:`~asynctelemetry.CallStore` protocol
(``query``, ``summary``, ``timeseries``, and the lookups ``get`` and ``trace``), so it works the
same on every store, and never writes: no route calls a method that changes a store.

==============================  =================================================================
route                           answer
==============================  =================================================================
``/api/summary``                totals of the window (``total``) and one row per group (``by``;
                                ``limit``/``order``: the top groups, with ``total=false``;
                                by default ``request_model``: the model asked for, else ``model``)
``/api/timeseries``             the window in buckets (``bucket``: ``auto`` or ``30s``, ``5m``…)
``/api/calls``                  a page of calls (``store.page``: ``sort``, ``order``, ``after``
                                ``q``, ``limit``, default 100, at most 1000), ``next``, ``hints``
``/api/errors``                 failed calls by error type and message (``store.error_groups``:
                                calls, first and last seen, models; ``limit``, default 20)
``/api/calls/{call_id}``        one call, by id (``store.get``: an index, not a window)
``/api/traces``                 one row per trace, newest first (``store.traces``: ``user``,
                                ``agent``, ``limit``, ``order``; the window is the traces' start)
``/api/traces/{trace_id}``      the calls of one trace (``store.trace``), with their nesting, and
                                the waterfall of its calls and steps (``store.get_trace``)
``/api/sessions/{session_id}``  one page of a session's calls, oldest first (``store.session``:
                                ``limit``, ``after``), its totals, and its traces on the page
``/api/budgets``                budgets (spent, reserved, left) and alerts (firing, history)
==============================  =================================================================
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from .._batching import both
from .._budgets._sql import stored_budgets
from .._conventions import is_content_key
from .._exceptions import ConfigError
from .._stores._base import MULTI_GROUPS, ORDER_BY, from_ns
from .._stores._errors import DEFAULT_ERROR_GROUPS
from .._stores._hints import HINTED, closest, known_values
from .._stores._pages import PAGE_SORTS, cursor_position
from .._stores._traces import MAX_TRACE_LIMIT, summarize_trace
from ._messages import messages
from ._params import ParamError, parse_bucket, parse_by, parse_limit

if TYPE_CHECKING:
    from .._alerts import AlertMonitor
    from .._record import LLMCall
    from .._stores import CallStore, CallSummary, SessionPage, TimeBucket, TraceSummary
    from ._params import Query

__all__ = [
    "NotFound",
    "budgets",
    "call_by_id",
    "call_json",
    "calls",
    "errors",
    "filter_hints",
    "session",
    "summary",
    "timeseries",
    "trace",
    "traces",
]

#: One bucket holding every call of any window this century: the whole window's percentiles,
#: which cannot be combined from per-group rows, come from ``timeseries`` with it.
_WHOLE: Final = timedelta(days=36525)
#: Timestamps are kept to the microsecond: the next one after a call's.
_MICROSECOND: Final = timedelta(microseconds=1)
#: Most calls one trace answer holds (a bound on the work of one request): a trace of more
#: (remote spans may share any trace id) shows its oldest, with ``complete`` false.
MAX_TRACE: Final = 10_000
#: Calls of one session page: by default, and at most (each page also reads the traces of its
#: calls, one indexed read per trace).
SESSION_PAGE: Final = 50
MAX_SESSION_PAGE: Final = 200


class NotFound(LookupError):
    """No call or trace with that id in the store (answered 404)."""


def call_json(call: LLMCall, *, conversation: bool = False) -> dict[str, Any]:
    """A call as JSON, its attributes split into ``attributes`` and captured ``content``; with
    ``conversation``, the content also read as chat ``messages`` (:mod:`._messages`)."""
    data = call.model_dump(mode="json")
    attributes: dict[str, Any] = data.pop("attributes")
    data["attributes"] = {k: v for k, v in attributes.items() if not is_content_key(k)}
    data["content"] = content = {k: v for k, v in attributes.items() if is_content_key(k)}
    if conversation:
        data["messages"] = messages(content) if content else []
    return data


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


async def summary(store: CallStore, query: Query) -> dict[str, Any]:
    """``/api/summary``: one row per group, by cost, and (unless ``total=false``) the window's
    totals, whose percentiles take one more store read, made at the same time as the first (a
    store with several connections, such as PostgreSQL's, answers both at once)."""
    by = parse_by(query, "request_model")  # the model asked for: its failures on its row
    want_total = query.option("total") or "true"
    if want_total not in ("true", "false"):
        raise ParamError(f"total={want_total!r}: expected 'true' or 'false'")
    limit = None if query.option("limit") is None else parse_limit(query, 0)
    order = query.option("order") or "cost"
    if order not in ORDER_BY:
        raise ParamError(f"order={order!r}: expected one of {list(ORDER_BY)}")
    if limit is not None and want_total == "true":
        raise ParamError("limit= needs total=false (the totals are over every group)")
    top: dict[str, Any] = {"limit": limit, "order_by": order}
    once = by not in MULTI_GROUPS  # by tag, the groups overlap: totals from groups by model
    if want_total == "true":
        counted, whole = await both(
            store.summary(by=by if once else "model", **query.filters),
            store.timeseries(bucket=_WHOLE, **query.filters),
        )
        groups = counted if once else await store.summary(by=by, **query.filters)
    else:
        groups = await store.summary(by=by, **top, **query.filters)
    body: dict[str, Any] = {
        "query": query.echo(),
        "by": by,
        "groups": [g.model_dump(mode="json") for g in groups],
    }
    if want_total == "true":
        body["total"] = _total(counted, whole)
    return body


def _total(groups: list[CallSummary], whole: list[TimeBucket]) -> dict[str, Any]:
    """The window's totals: sums over the groups, percentiles over every call of the window
    (``whole``: its one bucket)."""
    calls = sum(g.calls for g in groups)
    errors = sum(g.errors for g in groups)
    row = whole[0] if whole else None
    return {
        "calls": calls,
        "errors": errors,
        "error_rate": errors / calls if calls else None,
        "input_tokens": sum(g.input_tokens for g in groups),
        "output_tokens": sum(g.output_tokens for g in groups),
        "cached_input_tokens": sum(g.cached_input_tokens for g in groups),
        "reasoning_tokens": sum(g.reasoning_tokens for g in groups),
        "cost_usd": math.fsum(g.cost_usd for g in groups),
        "unpriced_calls": sum(g.unpriced_calls for g in groups),
        "p50_latency_ms": None if row is None else _finite(row.p50_latency_ms),
        "p95_latency_ms": None if row is None else _finite(row.p95_latency_ms),
        "p50_ttft_ms": None if row is None else _finite(row.p50_ttft_ms),
    }


async def timeseries(store: CallStore, query: Query) -> dict[str, Any]:
    """``/api/timeseries``: the window in fixed buckets, optionally per group."""
    by = parse_by(query, "model", series=True) if query.option("by") not in (None, "none") else None
    bucket = parse_bucket(query)
    rows = await store.timeseries(bucket=bucket, by=by, **query.filters)
    return {
        "query": query.echo(),
        "by": by,
        "bucket_seconds": bucket.total_seconds(),
        "buckets": [row.model_dump(mode="json") for row in rows],
    }


async def calls(store: CallStore, query: Query) -> dict[str, Any]:
    """``/api/calls``: one page of the window's calls, by ``sort`` (``time``, ``cost``,
    ``latency``, ``tokens``) in ``order`` (``desc``, the default, or ``asc``; ``newest`` and
    ``oldest`` say the same), unknown values last either way; ``after``: the ``next`` cursor of
    the page before; ``q``: a call id, trace id, session or user. A first page with no calls
    carries ``hints``: the closest values of a model or provider filter that matched nothing."""
    limit = parse_limit(query, 100)
    sort = query.option("sort") or "time"
    if sort not in PAGE_SORTS:
        raise ParamError(f"sort={sort!r}: expected one of {list(PAGE_SORTS)}")
    order = query.option("order") or "desc"
    if order not in _ORDERS:
        raise ParamError(f"order={order!r}: expected one of {list(_ORDERS)}")
    after = query.option("after")
    search = query.option("q")
    try:
        page = await store.page(
            sort=sort,  # type: ignore[arg-type]
            descending=_ORDERS[order],
            after=after,
            limit=limit,
            search=None if search is None else search.strip(),
            **query.filters,
        )
    except ValueError as exc:  # a cursor of another order, or no cursor at all
        raise ParamError(f"after={after!r}: {exc}" if after else str(exc)) from None
    body: dict[str, Any] = {
        "query": query.echo(),
        "sort": sort,
        "order": "desc" if _ORDERS[order] else "asc",
        "q": search,
        "calls": [call_json(c) for c in page.calls],
        "next": page.next,
    }
    if not page.calls and after is None:
        body["hints"] = await filter_hints(store, query)
    return body


#: ``order=``: descending or not.
_ORDERS: Final = {"desc": True, "newest": True, "asc": False, "oldest": False}


async def filter_hints(store: CallStore, query: Query) -> dict[str, list[str]]:
    """For each model or provider filter that matches no call of the window on its own, the
    closest values the window holds (did you mean ``gpt-4o`` for ``gpt4o``?)."""
    window: dict[str, Any] = {"since": query.since, "until": query.until}
    hints: dict[str, list[str]] = {}
    for field in HINTED:
        value = getattr(query, field)
        if value is None or await store.count(**window, **{field: value}):
            continue
        hints[field] = closest(value, await known_values(store, field, **window))
    return hints


async def errors(store: CallStore, query: Query) -> dict[str, Any]:
    """``/api/errors``: the window's failed calls grouped by error type and message, most
    first (``limit``: 1 to 1000, default 20); none when ``status`` asks for other calls."""
    limit = parse_limit(query, DEFAULT_ERROR_GROUPS)
    filters = {k: v for k, v in query.filters.items() if k != "status"}
    wanted = query.status in (None, "error")
    groups = await store.error_groups(limit=limit, **filters) if wanted else []
    return {"query": query.echo(), "groups": [g.model_dump(mode="json") for g in groups]}


def _newest_first(query: Query) -> bool:
    """The ``order=`` option of ``/api/traces``: ``newest`` (the default) or ``oldest``."""
    order = query.option("order") or "newest"
    if order not in ("newest", "oldest"):
        raise ParamError(f"order={order!r}: expected 'newest' or 'oldest'")
    return order == "newest"


async def call_by_id(store: CallStore, call_id: str) -> dict[str, Any]:
    """``/api/calls/{call_id}``: one call, every field, found by id in the whole store.

    Raises:
        NotFound: no call with that id.
    """
    found = await store.get(call_id)
    if found is None:
        raise NotFound(f"no call {call_id!r} in the store")
    return {"call": call_json(found, conversation=True)}


async def trace(store: CallStore, trace_id: str) -> dict[str, Any]:
    """``/api/traces/{trace_id}``: the calls sharing ``trace_id``, each after its parent.

    Calls are in time order among siblings (the store's order: ties in insertion order);
    ``depth`` is how many of the trace's calls are its ancestors (a call whose parent span is
    not an LLM call of the trace is a root). ``complete`` is false when the trace holds more
    than :data:`MAX_TRACE` calls: its oldest ``MAX_TRACE`` are shown.

    Raises:
        NotFound: no call of that trace in the store.
    """
    members = await store.trace(trace_id, limit=MAX_TRACE + 1)
    steps = await _waterfall(store, trace_id)
    if not members and not steps["waterfall"]:
        raise NotFound(f"no call or step of trace {trace_id!r} in the store")
    complete = len(members) <= MAX_TRACE
    del members[MAX_TRACE:]
    spans = {c.span_id for c in members if c.span_id}
    children: dict[str | None, list[LLMCall]] = {}
    for call in members:
        parent = call.parent_span_id if call.parent_span_id in spans else None
        if parent is not None and parent == call.span_id:
            parent = None  # a span cannot be its own parent
        children.setdefault(parent, []).append(call)
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()
    stack = [(call, 0) for call in reversed(children.get(None, []))]
    while stack:  # depth first, a loop rather than recursion: traces may nest deeply
        call, depth = stack.pop()
        if call.call_id in placed:
            continue  # a cycle in remote parent ids: show each call once
        placed.add(call.call_id)
        ordered.append({"depth": depth, "call": call_json(call)})
        if call.span_id:
            stack.extend((child, depth + 1) for child in reversed(children.get(call.span_id, [])))
    for call in members:  # calls caught in a parent cycle, never reached from a root
        if call.call_id not in placed:
            placed.add(call.call_id)
            ordered.append({"depth": 0, "call": call_json(call)})
    return {"trace_id": trace_id, "complete": complete, "calls": ordered, **steps}


async def budgets(store: CallStore, tracer: Any, monitor: AlertMonitor | None) -> dict[str, Any]:
    """``/api/budgets``: each budget's state (the tracer's, else those kept in the store's
    database; none for a memory store) and the alerts a monitor fires and has fired."""
    if tracer is not None:
        statuses = await tracer.budget_status()
    else:
        try:
            statuses = await stored_budgets(store)
        except ConfigError:  # a store that keeps no budgets
            statuses = []
    alerts: dict[str, Any] | None = None
    if monitor is not None:
        alerts = {
            "firing": [
                {"alert": alert, "key": key, "value": _finite(value)}
                for alert, key, value in monitor.firing()
            ],
            "history": [event.as_json() for event in reversed(monitor.history)],
            "rules": [
                {"name": a.label, "metric": a.metric, "above": a.above, "by": a.by}
                for a in monitor.alerts
            ],
        }
    return {
        "budgets": [{**status.as_json(), "used": _finite(status.used)} for status in statuses],
        "alerts": alerts,
    }


async def _waterfall(store: CallStore, trace_id: str) -> dict[str, Any]:
    """The trace's calls and steps as waterfall rows (each after its parent, with its depth,
    its start and length in milliseconds from the trace's start), and the trace's totals."""
    found = await store.get_trace(trace_id)
    if found is None:
        return {"waterfall": [], "totals": None}
    start = found.started
    rows: list[dict[str, Any]] = []
    stack = [(node, 0) for node in reversed(found.tree())]
    while stack and len(rows) < MAX_TRACE:  # a loop, not recursion: traces may nest deeply
        node, depth = stack.pop()
        record = node.record
        offset = (record.timestamp - start).total_seconds() * 1000 if start else 0.0
        fields = call_json(record) if node.is_call else record.model_dump(mode="json")  # type: ignore[arg-type]
        rows.append(
            {
                "depth": depth,
                "type": "call" if node.is_call else record.kind,  # type: ignore[union-attr]
                "name": node.name,
                "offset_ms": offset,
                "duration_ms": record.duration_ms,
                "status": record.status,
                "record": fields,
            }
        )
        stack.extend((child, depth + 1) for child in reversed(node.children))
    totals = {
        "duration_ms": found.duration_ms,
        "llm_calls": found.llm_calls,
        "steps": len(found.spans),
        "cost_usd": found.cost_usd,
        "input_tokens": found.input_tokens,
        "output_tokens": found.output_tokens,
        "errors": found.errors,
        "status": found.status,
    }
    return {"waterfall": rows, "totals": totals, "waterfall_complete": not stack}


async def traces(store: CallStore, query: Query) -> dict[str, Any]:
    """``/api/traces``: one row per trace that started in the window, newest first
    (``order=oldest``), at most ``limit`` (50; 1 to 1000); ``session``, ``status``, ``user``
    and ``agent`` filter."""
    limit = parse_limit(query, 50)
    rows = await store.traces(
        since=query.since,
        until=query.until,
        session_id=query.session_id,
        user_id=query.option("user"),
        agent=query.option("agent"),
        status=query.status,  # type: ignore[arg-type]
        limit=limit,
        newest_first=_newest_first(query),
    )
    return {"query": query.echo(), "traces": [row.model_dump(mode="json") for row in rows]}


async def session(store: CallStore, session_id: str, options: dict[str, str]) -> dict[str, Any]:
    """``/api/sessions/{session_id}``: a page of the session's calls, oldest first (``limit``
    calls, default 50, at most 200; ``after``: the ``next`` of the page before), the session's
    totals (over all its calls), and a row for each trace the page's calls belong to, in the
    order of its first call on the page (``store.get_trace``: indexed reads, one trace after
    the other, at most one per call of the page).

    Raises:
        NotFound: the store holds no call of that session.
    """
    text = options.get("limit")
    try:
        limit = SESSION_PAGE if text is None else int(text)
    except ValueError:
        raise ParamError(f"limit={text!r}: expected a whole number") from None
    if not 1 <= limit <= MAX_SESSION_PAGE:
        raise ParamError(f"limit={text!r}: must be in 1..{MAX_SESSION_PAGE}")
    after = options.get("after")
    try:
        page = await store.session(session_id, limit=limit, after=after)
    except ValueError as exc:
        raise ParamError(str(exc)) from None
    if not page.calls and "after" not in options:
        raise NotFound(f"no call of session {session_id!r} in the store")
    totals = await store.summary(by="session", session_id=session_id)
    return {
        "session_id": session_id,
        "calls": [call_json(c, conversation=True) for c in page.calls],
        "next": page.next,
        "totals": totals[0].model_dump(mode="json") if totals else None,
        "traces": [t.model_dump(mode="json") for t in await _session_traces(store, page, after)],
    }


async def _session_traces(
    store: CallStore, page: SessionPage, after: str | None
) -> list[TraceSummary]:
    """The traces a session page shows, by start: those of its calls, and those tied to the
    session by a step only (``store.traces(session_id=...)``) that start within the page's
    span (after the page before's last call, up to its own last call; the first page from the
    start, the last one on)."""
    since = until = None
    if after is not None:
        since = from_ns(cursor_position(after, "time", False)[0]) + _MICROSECOND
    if page.next is not None and page.calls:
        until = page.calls[-1].timestamp + _MICROSECOND
    found = {
        t.trace_id: t
        for t in await store.traces(
            session_id=page.session_id,
            since=since,
            until=until,
            limit=MAX_TRACE_LIMIT,
            newest_first=True,  # the walk follows the session's records (oldest first: all)
        )
    }
    for trace_id in dict.fromkeys(c.trace_id for c in page.calls if c.trace_id):
        if trace_id not in found and (trace := await store.get_trace(trace_id)) is not None:
            found[trace_id] = summarize_trace(trace)  # started on an earlier page
    return sorted(found.values(), key=lambda t: t.started)
