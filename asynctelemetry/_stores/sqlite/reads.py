"""SQL for the SQLite store's reads: the filters, ordering, keyset pages and summaries.

Pages (``store.page``) by time seek ``calls_ts``; by cost, latency or tokens they pick the page's
rowids (the tie-break) from the same index, which holds those keys too (a window's top is read
from the index alone, never its rows), then read those rows.

Filters follow :class:`~asynctelemetry._stores._base.Filters` exactly (``since`` inclusive,
``until`` exclusive, exact matches but ``model``, which matches ``model`` or ``request_model``:
the indexes ``calls_model`` and ``calls_request_model`` serve the two sides of the ``OR``); order
is timestamp then rowid (insertion order).

Summaries and time series are computed in SQL so that a large group never comes into Python
whole: one ``GROUP BY`` for the totals, and per percentile a window query (``ROW_NUMBER`` and
``COUNT`` over the group) that returns only the few rows near the wanted rank; Python then picks
the row whose rank is exactly :func:`~asynctelemetry._stores._base.nearest_rank` (the one
percentile definition) and applies the window rule (``window_percentile``). Costs are summed by
an aggregate that gives ``math.fsum``'s correctly rounded result, so rows equal
:func:`~asynctelemetry._stores._base.summarize` of the same calls.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from ..._record import MIN_GENERATING_MS
from .. import _base
from .._base import (
    CallSummary,
    TimeBucket,
    bucket_of,
    group_field,
    group_sql,
    nearest_rank,
    rank_key,
    summary_of,
    top,
    window_percentile,
)
from .._errors import MODEL_KEY, group_of, groups_sql
from .._rollup import FSum, buckets_of, summaries_of
from .._sessions import ranks
from .._traces import walk_traces
from . import sessions as _sqlite_sessions
from .rollup import rolled
from .schema import SELECT_COLUMNS, SPAN_COLUMNS, decode_rows, decode_spans, from_ns, to_ns

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

    from ..._record import LLMCall, TraceSpan
    from .._base import Filters
    from .._errors import ErrorGroup
    from .._pages import PageRead
    from .._traces import TraceFilters, Walk

__all__ = [
    "GET_SQL",
    "PAGE_KEYS",
    "TRACE_SQL",
    "call_page_sql",
    "error_groups_sql",
    "find_trace_ids",
    "group_column",
    "page_sql",
    "register",
    "select_sql",
    "summarize_sql",
    "timeseries_sql",
    "trace_check_sql",
    "trace_records",
    "trace_walk_sql",
    "where",
]

_FSUM: Final = "asynctelemetry_fsum"
#: Columns a filter may compare to, by Filters field name; the values are bound parameters.
_EQUALS: Final = ("provider", "session_id", "status", "error_type", "error_message")


def where(filters: Filters, *extra: str) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (with a leading space, or empty) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.since is not None:
        clauses.append("timestamp_ns >= ?")
        params.append(to_ns(filters.since))
    if filters.until is not None:
        clauses.append("timestamp_ns < ?")
        params.append(to_ns(filters.until))
    if filters.model is not None:
        clauses.append("(model = ? OR request_model = ?)")
        params += (filters.model, filters.model)
    for name in _EQUALS:
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            params.append(value)
    if filters.status is not None and filters.status != "ok":
        clauses.append("status <> 'ok'")  # the partial index calls_status holds these
    clauses.extend(extra)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def select_sql(filters: Filters, limit: int | None, newest_first: bool) -> tuple[str, list[Any]]:
    """A query for the calls that pass ``filters``; ties stay in insertion order either way."""
    clause, params = where(filters)
    order = "timestamp_ns DESC, id" if newest_first else "timestamp_ns, id"
    params.append(-1 if limit is None else limit)
    return f"SELECT {SELECT_COLUMNS} FROM calls{clause} ORDER BY {order} LIMIT ?", params


#: One call by id (the index of ``call_id``'s ``UNIQUE`` constraint).
GET_SQL: Final = f"SELECT {SELECT_COLUMNS} FROM calls WHERE call_id = ?"
#: A trace's calls, oldest first, at most ``?`` (index ``calls_trace``).
TRACE_SQL: Final = (
    f"SELECT {SELECT_COLUMNS} FROM calls WHERE trace_id = ? ORDER BY timestamp_ns, id LIMIT ?"
)


def page_sql(filters: Filters) -> tuple[str, list[Any]]:
    """A keyset page query: bind the last (timestamp_ns, id) seen, then the page size.

    The key of the next page is the last row's ``timestamp_ns`` and ``id`` (at
    :data:`~._schema.ROW_TS` and :data:`~._schema.ROW_ID`).
    """
    clause, params = where(filters, "(timestamp_ns, id) > (?, ?)")
    sql = f"SELECT {SELECT_COLUMNS} FROM calls{clause} ORDER BY timestamp_ns, id LIMIT ?"
    return sql, params


#: The SQL of each ``page(sort=...)`` key, the expressions the page indexes are built on.
PAGE_KEYS: Final = {
    "time": "timestamp_ns",
    "cost": "cost_usd",
    "latency": "duration_ms",
    "tokens": "(input_tokens + output_tokens)",
}
#: ``page(search=...)``: the four ids, each served by its index.
_SEARCH: Final = "(call_id = ? OR trace_id = ? OR session_id = ? OR user_id = ?)"


def call_page_sql(read: PageRead) -> tuple[str, list[Any]]:
    """One phase of a page (:class:`~.._pages.PageRead`): rows selected with
    :data:`SELECT_COLUMNS` and then the key."""
    key = PAGE_KEYS[read.sort]
    way, op = ("DESC", "<") if read.descending else ("ASC", ">")
    extra: list[str] = []
    values: list[Any] = []
    if read.search is not None:
        extra.append(_SEARCH)
        values += [read.search] * 4
    if read.known:
        if read.sort != "time":
            extra.append(f"{key} IS NOT NULL")
        if read.after is not None:
            extra.append(f"({key}, id) {op} (?, ?)")
            values += read.after
        order = f"{key} {way}, id {way}"
    else:
        extra.append(f"{key} IS NULL")
        if read.after is not None:
            extra.append(f"id {op} ?")
            values.append(read.after[1])
        order = f"id {way}"
    clause, params = where(read.filters, *extra)
    params += values
    params.append(read.limit)
    if read.sort == "time":
        return f"SELECT {SELECT_COLUMNS}, {key} FROM calls{clause} ORDER BY {order} LIMIT ?", params
    # The page's rowids first (from the covering time index, or the filters' indexes), then
    # only those rows: the calls a window holds are never read whole to sort them.
    ids = f"SELECT id FROM calls{clause} ORDER BY {order} LIMIT ?"
    return (
        f"SELECT {SELECT_COLUMNS}, {key} FROM calls WHERE id IN ({ids}) ORDER BY {order}",
        params,
    )


def group_column(by: str) -> str:
    """The column ``by=`` groups on (from a fixed table, never from input)."""
    return group_field(by)


def register(conn: sqlite3.Connection) -> None:
    """Add the functions the summary SQL uses to ``conn``."""
    # typeshed types aggregates as int-valued; SQLite takes any SQL value.
    conn.create_aggregate(_FSUM, 1, FSum)  # type: ignore[arg-type]


# Tokens per second exactly as LLMCall.tokens_per_sec computes it (same IEEE operations).
_GENERATING: Final = "(duration_ms - COALESCE(ttft_ms, 0.0))"
_SPEED: Final = f"1000.0 / ({_GENERATING} / output_tokens)"
#: name → (value expression, condition for the value to exist, percentiles wanted)
_PERCENTILES: Final[dict[str, tuple[str, str, tuple[int, ...]]]] = {
    "latency": ("duration_ms", "duration_ms IS NOT NULL", (50, 95)),
    "ttft": ("ttft_ms", "ttft_ms IS NOT NULL", (50,)),
    "speed": (
        _SPEED,
        # the last test: a subnormal generating time over many tokens divides by 0.0 (NULL)
        f"duration_ms IS NOT NULL AND output_tokens > 0 "
        f"AND {_GENERATING} >= {MIN_GENERATING_MS!r} "
        f"AND {_SPEED} IS NOT NULL",
        (50,),
    ),
}


_TOTALS: Final = (
    "COUNT(*), SUM(status = 'error'), "
    "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
    "COALESCE(SUM(cached_input_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
    f"{_FSUM}(cost_usd), SUM(cost_usd IS NULL)"
)
Key = tuple[Any, ...]


#: ``summary(by="tag")``: each call once per tag (once with a NULL tag when it has none).
_TAGGED: Final = "calls LEFT JOIN json_each(calls.tags) AS tag"


def _grouped(
    conn: sqlite3.Connection,
    keys: Sequence[str],
    filters: Filters,
    wanted: Sequence[str],
    source: str = "calls",
    top: tuple[int, str] | None = None,
    picked: list[Any] | None = None,
    window: int | None = None,
) -> tuple[list[tuple[Any, ...]], dict[tuple[str, int], dict[Key, float | None]], int]:
    """Totals per group of ``keys`` (SQL expressions of our own) in order of first insertion,
    the ``wanted`` percentiles per group: ``{(name, p): {group: value}}``, and the window's
    calls. ``source``: the table, or :data:`_TAGGED` (a call in several groups; the window
    still counts it once). ``top`` (``(limit, order_by)``, one key only): only the groups that
    may be among the top ``limit`` (:func:`_candidates`, from a cheap first pass) are totalled
    exactly and get percentiles; or only the groups ``picked`` (one key only), in a window of
    ``window`` calls."""
    clause, params = where(filters)
    only: list[str] = []
    chosen: list[Any] = []
    if top is not None:
        ranked = conn.execute(
            f"SELECT {keys[0]}, COUNT(*), SUM(status = 'error'), TOTAL(cost_usd) "
            f"FROM {source}{clause} GROUP BY {keys[0]}",
            params,
        ).fetchall()
        if source == "calls":
            window = sum(row[1] for row in ranked)
        picked = _candidates(ranked, *top)
    if picked is not None:
        chosen = [key for key in picked if key is not None]
        # the bare expression (no "+"): an index on the column finds the few groups' rows
        expression = keys[0].lstrip("+")
        known = f"{expression} IN ({', '.join('?' * len(chosen))})" if chosen else "0"
        only.append(f"({known} OR {expression} IS NULL)" if None in picked else known)
    clause, params = where(filters, *only)
    groups = ", ".join(keys)
    totals = conn.execute(
        f"SELECT {groups}, {_TOTALS} FROM {source}{clause} GROUP BY {groups} "
        "ORDER BY MIN(calls.id)",
        [*params, *chosen],
    ).fetchall()
    width = len(keys)
    if window is not None:
        pass
    elif source == "calls" and top is None:
        window = sum(row[width] for row in totals)
    else:
        clause, params = where(filters)
        window = conn.execute(f"SELECT COUNT(*) FROM calls{clause}", params).fetchone()[0]
    found: dict[tuple[str, int], dict[Key, float | None]] = {}
    for name in wanted:
        value, condition, percents = _PERCENTILES[name]
        clause, params = where(filters, condition, *only)
        params = [*params, *chosen]
        # Only rows within one rank of p% of the group's size come back.
        near = " OR ".join(
            f"(r BETWEEN n * {p / 100!r} - 1 AND n * {p / 100!r} + 1)" for p in percents
        )
        aliases = ", ".join(f"g{i}" for i in range(width))
        selected = ", ".join(f"{key} AS g{i}" for i, key in enumerate(keys))
        rows = conn.execute(
            f"SELECT {aliases}, n, r, v FROM (SELECT {selected}, {value} AS v, "
            f"ROW_NUMBER() OVER (PARTITION BY {groups} ORDER BY {value}) AS r, "
            f"COUNT(*) OVER (PARTITION BY {groups}) AS n FROM {source}{clause}) WHERE {near}",
            params,
        ).fetchall()
        for p in percents:
            found[name, p] = {
                tuple(row[:width]): window_percentile(row[-1], window)
                for row in rows
                if row[width + 1] == nearest_rank(row[width], p)
            }
    return totals, found, window


#: Relative error allowed for a group's cost summed in floating point (``TOTAL``) against the
#: exact sum: at most (n - 1) * 2**-53 of it for n non-negative costs; 1e-6 covers 9e9 calls.
_SLACK: Final = 1e-6


def _candidates(ranked: list[tuple[Any, ...]], limit: int, order_by: str) -> list[Any]:
    """The keys of the groups (``(key, calls, errors, approximate cost)`` rows) that may be
    among the top ``limit`` by ``order_by`` once their cost is summed exactly: every group
    whose best possible rank key is not below the ``limit``-th group's worst possible one."""
    if limit == 0 or not ranked:
        return []

    def bound(row: tuple[Any, ...], scale: float) -> tuple[Any, ...]:
        cost = row[3] * scale + (1e-12 if scale > 1 else -1e-12)
        return rank_key(order_by, "", row[1], row[2] or 0, cost, None)[:-1]

    ordered = sorted(ranked, key=lambda row: bound(row, 1.0))
    if len(ordered) <= limit:
        return [row[0] for row in ordered]
    worst = bound(ordered[limit - 1], 1.0 - _SLACK)
    return [row[0] for row in ordered if bound(row, 1.0 + _SLACK) <= worst]


def _large(
    conn: sqlite3.Connection,
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    hists: tuple[str, ...] = ("latency", "ttft", "speed"),
) -> dict[tuple[int | None, Any], Any] | None:
    """The window's cells from the rollups when it holds more than ``EXACT_LIMIT`` calls (so
    its percentiles follow the approximate rule and histograms give them); else ``None``."""
    lo = None if filters.since is None else to_ns(filters.since)
    hi = None if filters.until is None else to_ns(filters.until)
    cells = rolled(conn, filters, column, width_ns, lo, hi, hists)
    if cells is None or sum(acc.calls for acc in cells.values()) <= _base.EXACT_LIMIT:
        return None
    return cells


def summarize_sql(
    conn: sqlite3.Connection,
    column: str,
    filters: Filters,
    limit: int | None = None,
    order_by: str = "cost",
) -> list[CallSummary]:
    """The summary rows of the calls that pass ``filters``, grouped by ``column``.

    Runs in the reader's thread. A window of more than ``EXACT_LIMIT`` calls is read from the
    rollups (:mod:`._rollup`); a smaller one from the raw rows. Groups are sorted as
    ``summarize`` sorts them (cost, then calls, descending; or ``order_by``), at most
    ``limit``: the top groups are chosen from the totals, and only their percentiles computed
    (except by p95 latency, which needs every group's).
    """
    wanted = ("latency", "ttft", "speed")
    if column == "session_id" and limit and ranks(filters, limit, order_by):
        picked, window = _sqlite_sessions.candidates(conn, filters, limit, order_by)
        if not picked:
            return []
        totals, found, _ = _grouped(
            conn, ("+session_id",), filters, wanted, picked=picked, window=window
        )
        return _summaries(totals, found, limit, order_by)
    cells = _large(conn, filters, column, None)
    if cells is not None:
        return top(summaries_of(cells), limit, order_by)
    top_n = None if limit is None or order_by == "p95_latency" else (limit, order_by)
    if column == "tags":  # several per call: no rollups, the raw rows (``json_each``)
        totals, found, _ = _grouped(conn, ("+tag.value",), filters, wanted, _TAGGED, top_n)
    else:
        key = f"+{group_sql(column)}"
        totals, found, _ = _grouped(conn, (key,), filters, wanted, "calls", top_n)
    return _summaries(totals, found, limit, order_by)


def _summaries(
    totals: list[tuple[Any, ...]],
    found: dict[tuple[str, int], dict[Key, float | None]],
    limit: int | None,
    order_by: str,
) -> list[CallSummary]:
    """The top summary rows of :func:`_grouped`'s groups."""
    summaries = [
        summary_of(key, sums, [found[kind, p].get((key,)) for kind, p in _SUMMARY_PERCENTILES])
        for key, *sums in totals
    ]
    return top(summaries, limit, order_by)


#: The percentiles of a summary row, in its field order (a time bucket has the first three).
_SUMMARY_PERCENTILES: Final = (("latency", 50), ("latency", 95), ("ttft", 50), ("speed", 50))


def timeseries_sql(
    conn: sqlite3.Connection, width_ns: int, column: str | None, filters: Filters
) -> list[TimeBucket]:
    """The time buckets of the calls that pass ``filters`` (``width_ns`` wide, aligned to the
    epoch), grouped by ``column`` too when given; oldest first, then key (``None`` first)."""
    # Floor to the bucket start, also for timestamps before 1970 (SQL's % truncates to zero).
    # ``width_ns`` is a validated int: formatted with %d, never text from a caller.
    cells = _large(conn, filters, column, width_ns, ("latency", "ttft"))
    if cells is not None:
        return buckets_of(cells)
    start = f"(timestamp_ns - ((timestamp_ns % {width_ns:d}) + {width_ns:d}) % {width_ns:d})"
    keys = (start,) if column is None else (start, f"+{group_sql(column)}")
    totals, found, _ = _grouped(conn, keys, filters, ("latency", "ttft"))
    buckets = []
    for row in totals:
        group = tuple(row[: len(keys)])
        calls, errors, input_tokens, output_tokens, cached, _, cost, _ = row[len(keys) :]
        buckets.append(
            bucket_of(
                group[0],
                None if column is None else group[1],
                (calls, errors, input_tokens, output_tokens, cached, cost),
                [found[kind, p].get(group) for kind, p in _SUMMARY_PERCENTILES[:3]],
            )
        )
    buckets.sort(key=lambda b: (b.start, b.key is not None, b.key or ""))
    return buckets


def find_trace_ids(
    conn: sqlite3.Connection, filters: TraceFilters, limit: int, newest_first: bool
) -> list[str]:
    """A ``traces(...)`` page's ids: :func:`~.._traces.walk_traces` driven in the reader's
    thread (one hop, one read transaction)."""
    walk = walk_traces(filters, limit, newest_first)
    owned = not conn.in_transaction  # one snapshot for the whole walk
    if owned:
        conn.execute("BEGIN")
    try:
        request = next(walk)
        while True:
            if isinstance(request, list):
                request = walk.send([conn.execute(*trace_walk_sql(w)).fetchall() for w in request])
            else:
                sql, params = trace_check_sql(filters, request.trace_ids)
                request = walk.send(conn.execute(sql, params).fetchall())
    except StopIteration as done:
        ids: list[str] = done.value
        return ids
    finally:
        if owned and conn.in_transaction:
            conn.execute("COMMIT")


def trace_records(
    conn: sqlite3.Connection, trace_ids: Sequence[str]
) -> tuple[list[LLMCall], list[TraceSpan]]:
    """Every call and step of these traces, oldest first (``calls_trace``, ``spans_trace``)."""
    ids = ", ".join("?" * len(trace_ids))
    calls = conn.execute(
        f"SELECT {SELECT_COLUMNS} FROM calls WHERE trace_id IN ({ids}) ORDER BY timestamp_ns, id",
        trace_ids,
    )
    spans = conn.execute(
        f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE trace_id IN ({ids}) "
        "ORDER BY timestamp_ns, id",
        trace_ids,
    )
    return decode_rows(calls.fetchall()), decode_spans(spans.fetchall())


def trace_walk_sql(walk: Walk) -> tuple[str, list[Any]]:
    """A :class:`~.._traces.Walk`: its records' ``(trace_id, timestamp_ns)``, the first
    ``n`` in walking order and every other one at the ``n``-th's start, through the index that
    ends with ``timestamp_ns`` on its column (``calls_ts``, ``calls_session``, ``calls_user``,
    ``calls_agent``, ``calls_status``; ``spans_ts``, ``spans_session``, …, ``spans_status``).
    The outer read's bound on the far side of the walk is one expression (the ``n``-th's start,
    else the window's edge): given two, SQLite would seek by one and scan the window."""
    clauses = ["trace_id IS NOT NULL"] if walk.table == "calls" else []
    params: list[Any] = []
    if walk.column == "status":  # the partial index spans_status holds the rows not "ok"
        clauses.append("status <> 'ok'")
    if walk.column is not None:
        clauses.append(f"{walk.column} = ?")  # a column from the Walk's fixed list
        params.append(walk.value)
    near: list[str] = []  # the walk starts there: the same bounds inside and out
    values: list[Any] = []
    edge = walk.since if walk.newest_first else walk.until
    start = walk.until if walk.newest_first else walk.since
    if walk.after is not None:  # within the window: the one bound on this side
        near.append(f"timestamp_ns {'<' if walk.newest_first else '>'} ?")
        values.append(walk.after)
    elif start is not None:
        near.append(f"timestamp_ns {'<' if walk.newest_first else '>='} ?")
        values.append(to_ns(start))
    far = _NS_MIN if walk.newest_first else _NS_MAX
    if edge is not None:
        far = to_ns(edge) if walk.newest_first else to_ns(edge) - 1  # until is exclusive
    inner = " AND ".join([*clauses, *near, f"timestamp_ns {'>=' if walk.newest_first else '<='} ?"])
    outer = " AND ".join([*clauses, *near]) or "1"
    order = "DESC" if walk.newest_first else "ASC"
    sql = (
        f"SELECT trace_id, timestamp_ns FROM {walk.table} WHERE {outer} AND timestamp_ns "
        f"{'>=' if walk.newest_first else '<='} COALESCE((SELECT timestamp_ns FROM "
        f"{walk.table} WHERE {inner} ORDER BY timestamp_ns {order} LIMIT 1 OFFSET ?), ?)"
    )
    return sql, [*params, *values, *params, *values, far, walk.n - 1, far]


_NS_MIN: Final = -(2**63)
_NS_MAX: Final = 2**63 - 1


def trace_check_sql(filters: TraceFilters, trace_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """A :class:`~.._traces.Check`: ``(trace_id, start, matches)`` of each trace of
    ``trace_ids`` that has records (the indexes ``calls_trace``, ``spans_trace``); ``matches``
    is every filter's rule of :mod:`._traces` at once."""
    having: list[str] = []
    params: list[Any] = []
    if filters.since is not None:
        having.append("MIN(ts) >= ?")
        params.append(to_ns(filters.since))
    if filters.until is not None:
        having.append("MIN(ts) < ?")
        params.append(to_ns(filters.until))
    for column, value in (
        ("session_id", filters.session_id),
        ("user_id", filters.user_id),
        ("agent_name", filters.agent),
    ):
        if value is not None:
            having.append(f"MAX({column} = ?) = 1")  # a column from this fixed list
            params.append(value)
    if filters.status is not None:
        having.append(TRACE_STATUS[filters.status])
    ids = ", ".join("?" * len(trace_ids))
    sql = (
        f"SELECT trace_id, MIN(ts), {' AND '.join(having) or '1'} FROM ("
        "SELECT trace_id, timestamp_ns AS ts, status, session_id, user_id, agent_name "
        f"FROM calls WHERE trace_id IN ({ids}) UNION ALL "
        "SELECT trace_id, timestamp_ns, status, session_id, user_id, agent_name FROM spans "
        f"WHERE trace_id IN ({ids})) GROUP BY trace_id"
    )
    return sql, [*params, *trace_ids, *trace_ids]


#: A trace's status as a ``HAVING`` condition (the rule of :mod:`._traces`).
TRACE_STATUS: Final = {
    "error": "SUM(status = 'error') > 0",
    "cancelled": "SUM(status = 'error') = 0 AND SUM(status = 'cancelled') > 0",
    "ok": "SUM(status <> 'ok') = 0",
}


def error_groups_sql(conn: sqlite3.Connection, filters: Filters, limit: int) -> list[ErrorGroup]:
    """The rule of :mod:`.._errors` in one statement (``filters`` has ``status="error"``: the
    index ``calls_status`` holds the window's failed calls together)."""
    clause, params = where(filters)
    models = f"json_group_array(DISTINCT {MODEL_KEY})"
    sql = groups_sql("calls", "timestamp_ns", clause, "?", models, "")
    rows = conn.execute(sql, [*params, limit]).fetchall()
    return [group_of(r, from_ns(r[3]), from_ns(r[4]), json.loads(r[5])) for r in rows]
