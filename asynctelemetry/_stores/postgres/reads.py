"""SQL for PostgresStore's reads: filters, keyset pages, summaries, time series, and repricing.

Filters follow :class:`~asynctelemetry._stores._base.Filters` exactly (``since`` inclusive,
``until`` exclusive, ``model`` matching ``model`` or ``request_model``, the others exact), every
value a bound parameter. Order is ``(ts, id)``: timestamp, then insertion order.

Summaries and time series are computed by the server in one ``GROUP BY`` each. Percentiles are
``percentile_disc``, which *is* the nearest-rank rule of
:func:`~asynctelemetry._stores._base.nearest_rank` (the value at rank ``ceil(p * n)``, computed
with the same double arithmetic), over the non-null values of each group. Costs are stored as
the exact ``numeric`` value of each float, so their ``SUM`` is exact; Python rounds it to a float
once (``float(Decimal)`` is correctly rounded, subnormals included, where the server's cast
refuses them): ``math.fsum``'s result. Past ``EXACT_LIMIT`` calls in the window each
percentile is reported through :func:`~asynctelemetry._stores._base.window_percentile`, the one
rule. Rows are sorted in Python with the very keys the in-memory
implementation uses, so every store gives equal rows for equal calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from ..._batching import Slice
from ..._record import MIN_GENERATING_MS
from .. import _base
from .._base import (
    CallSummary,
    bucket_of,
    group_field,
    group_sql,
    series_field,
    summary_of,
    window_percentile,
)
from .._errors import MODEL_KEY, group_of, groups_sql
from . import rollup as _pg_rollup
from .schema import COPY_COLUMNS, SPAN_COLUMNS, decode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from ..._pricing import PriceTable
    from ..._record import LLMCall
    from .._base import Filters, TimeBucket
    from .._errors import ErrorGroup
    from .._pages import PageRead
    from .._traces import TraceFilters, Walk

__all__ = [
    "GET_SQL",
    "PAGE_KEYS",
    "REPRICED_SQL",
    "REPRICE_SQL",
    "SELECT_LIST",
    "TRACES_CALLS_SQL",
    "TRACES_SPANS_SQL",
    "TRACE_SQL",
    "call_page_sql",
    "count_sql",
    "error_groups_rows",
    "error_groups_sql",
    "page_sql",
    "pages",
    "reprice",
    "span_page_sql",
    "summary_rows",
    "summary_sql",
    "timeseries_rows",
    "timeseries_sql",
    "trace_check_sql",
    "trace_walk_sql",
    "where",
]

#: What reads select: every field in LLMCall order, then ``id`` (the keyset's tie-break).
SELECT_LIST: Final = ", ".join((*COPY_COLUMNS, "id"))
#: Positions of the keyset (ts, id) in a selected row.
ROW_TS: Final = COPY_COLUMNS.index("ts")
ROW_ID: Final = len(COPY_COLUMNS)
_EQUALS: Final = ("provider", "session_id", "status", "error_type", "error_message")


class _Params:
    """Bound parameters: ``add(value)`` returns its placeholder."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def where(filters: Filters, params: _Params, *extra: str) -> str:
    """The ``WHERE`` clause (with a leading space, or empty)."""
    clauses: list[str] = []
    if filters.since is not None:
        clauses.append(f"ts >= {params.add(filters.since)}")
    if filters.until is not None:
        clauses.append(f"ts < {params.add(filters.until)}")
    if filters.model is not None:
        name = params.add(filters.model)
        clauses.append(f"(model = {name} OR request_model = {name})")
    for field in _EQUALS:
        value = getattr(filters, field)
        if value is not None:
            clauses.append(f"{field} = {params.add(value)}")
    clauses.extend(extra)
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def span_page_sql(
    filters: Filters, size: int, after: tuple[datetime, int] | None
) -> tuple[str, list[Any]]:
    """One keyset page of steps (``replay``): ``size`` rows after ``after``, oldest first, each
    row's ``id`` last (``where`` reads the filters a step can pass: ``ts``, ``session_id``,
    ``status``; the caller asks no page when ``model`` or ``provider`` is set)."""
    params = _Params()
    extra = []
    if after is not None:
        extra.append(f"(ts, id) > ({params.add(after[0])}, {params.add(after[1])})")
    clause = where(filters, params, *extra)
    sql = (
        f"SELECT {', '.join(SPAN_COLUMNS)}, id FROM spans{clause} ORDER BY ts, id "
        f"LIMIT {params.add(size)}"
    )
    return sql, params.values


#: Where a step's start is in a :func:`span_page_sql` row.
SPAN_TS: Final = SPAN_COLUMNS.index("ts")


def count_sql(filters: Filters) -> tuple[str, list[Any]]:
    """How many calls pass ``filters``."""
    params = _Params()
    return f"SELECT count(*) FROM calls{where(filters, params)}", params.values


def page_sql(
    filters: Filters,
    size: int,
    *,
    newest_first: bool = False,
    after: tuple[datetime, int] | None = None,
) -> tuple[str, list[Any]]:
    """One keyset page: ``size`` rows after ``after`` (the last row's (ts, id)), in order.

    Oldest first is ``(ts, id)``; newest first is ``ts`` descending with ties still in insertion
    order (``id`` ascending), so the same keyset continues either way.
    """
    params = _Params()
    extra: list[str] = []
    if after is not None:
        ts, row_id = params.add(after[0]), params.add(after[1])
        if newest_first:
            extra.append(f"(ts < {ts} OR (ts = {ts} AND id > {row_id}))")
        else:
            extra.append(f"(ts, id) > ({ts}, {row_id})")
    clause = where(filters, params, *extra)
    order = "ts DESC, id" if newest_first else "ts, id"
    sql = f"SELECT {SELECT_LIST} FROM calls{clause} ORDER BY {order} LIMIT {params.add(size)}"
    return sql, params.values


#: The SQL of each ``page(sort=...)`` key, the expressions the page indexes are built on.
PAGE_KEYS: Final = {
    "time": "ts",
    "cost": "cost_usd",
    "latency": "duration_ms",
    "tokens": "(input_tokens + output_tokens)",
}


def call_page_sql(read: PageRead) -> tuple[str, list[Any]]:
    """One phase of a page (:class:`~.._pages.PageRead`): rows of :data:`SELECT_LIST`, then the
    key (a cursor's time is integer nanoseconds, its cost the float whose exact value is kept)."""
    key = PAGE_KEYS[read.sort]
    way, op = ("DESC", "<") if read.descending else ("ASC", ">")
    params = _Params()
    extra: list[str] = []
    if read.search is not None:
        found = params.add(read.search)
        extra.append(
            f"(call_id = {found} OR trace_id = {found} OR session_id = {found} "
            f"OR user_id = {found})"
        )
    if read.known:
        if read.sort != "time":
            extra.append(f"{key} IS NOT NULL")
        if read.after is not None:
            value, seq = read.after
            bound = _base.from_ns(value) if read.sort == "time" else value
            if read.sort == "cost":
                bound = Decimal(value)  # the exact value of the float, as costs are kept
            extra.append(f"({key}, id) {op} ({params.add(bound)}, {params.add(seq)})")
        order = f"{key} {way}, id {way}"
    else:
        extra.append(f"{key} IS NULL")
        if read.after is not None:
            extra.append(f"id {op} {params.add(read.after[1])}")
        order = f"id {way}"
    clause = where(read.filters, params, *extra)
    limit = params.add(read.limit)
    sql = f"SELECT {SELECT_LIST}, {key} FROM calls{clause} ORDER BY {order} LIMIT {limit}"
    return sql, params.values


#: One call by id: the first stored of any that share it (ids are unique per timestamp).
GET_SQL: Final = f"SELECT {SELECT_LIST} FROM calls WHERE call_id = $1 ORDER BY id LIMIT 1"
#: A trace's calls, oldest first (ties in insertion order), at most ``$2`` (NULL: all).
TRACE_SQL: Final = f"SELECT {SELECT_LIST} FROM calls WHERE trace_id = $1 ORDER BY ts, id LIMIT $2"

#: New costs for (call_id, ts) pairs: ``$1`` ids, ``$2`` timestamps, ``$3`` costs, ``$4`` version.
REPRICE_SQL: Final = (
    "UPDATE calls AS c SET cost_usd = v.cost, price_version = $4 "
    "FROM unnest($1::text[], $2::timestamptz[], $3::numeric[]) AS v(call_id, ts, cost) "
    "WHERE c.call_id = v.call_id AND c.ts = v.ts RETURNING "
    + ", ".join(f"c.{name.strip()}" for name in _pg_rollup.RAW_SQL.split(","))
)
#: The rows a repricing page changes, locked, as the rollups count them (before the change).
REPRICED_SQL: Final = (
    f"SELECT {', '.join(f'c.{name.strip()}' for name in _pg_rollup.RAW_SQL.split(','))} "
    "FROM calls AS c JOIN unnest($1::text[], $2::timestamptz[]) AS v(call_id, ts) "
    "ON c.call_id = v.call_id AND c.ts = v.ts FOR UPDATE OF c"
)

# Time per output token exactly as LLMCall.tpt_ms computes it (the same IEEE operations), NULL
# where it has none; tokens per second is ``1000 / tpt`` (computed in Python: the server would
# refuse the overflow to infinity that Python gives). Only generating times of at least
# MIN_GENERATING_MS count (the records' rule), so the quotient never rounds to 0.0.
_G: Final = "(duration_ms - COALESCE(ttft_ms, 0.0::float8))"
_TPT: Final = (
    f"CASE WHEN duration_ms IS NULL OR NOT output_tokens > 0 "
    f"OR NOT {_G} >= {MIN_GENERATING_MS!r}::float8 THEN NULL "
    f"ELSE {_G} / output_tokens::float8 END"
)
_TOTALS: Final = (
    "count(*), count(*) FILTER (WHERE status = 'error'), "
    "COALESCE(sum(input_tokens), 0)::bigint, COALESCE(sum(output_tokens), 0)::bigint, "
    "COALESCE(sum(cached_input_tokens), 0)::bigint, "
    "COALESCE(sum(reasoning_tokens), 0)::bigint, "
    "COALESCE(sum(cost_usd), 0), count(*) FILTER (WHERE cost_usd IS NULL), "
    "percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms), "
    "percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms), "
    "percentile_disc(0.5) WITHIN GROUP (ORDER BY ttft_ms)"
)


#: Columns of a summary row: key, totals and percentiles, speed, first id.
_SUMMARY_WIDTH: Final = 14


def _group_source(by: str) -> tuple[str, str]:
    """The key expression and the source of ``by``'s groups (from fixed tables, never text
    from the caller)."""
    key = group_sql(group_field(by))
    if key == "tags":  # a call once per tag (once with a NULL tag when it has none)
        return "t.tag", "calls LEFT JOIN LATERAL unnest(calls.tags) AS t(tag) ON true"
    return key, "calls"


def totals_sql(by: str, filters: Filters) -> tuple[str, list[Any]]:
    """Per group: key, calls, errors, cost (to choose the top groups), then the window's
    calls (each call once, also when a call is in several groups) on every row."""
    key, source = _group_source(by)
    params = _Params()
    clause = where(filters, params)
    counted = f"(SELECT count(*) FROM calls{where(filters, params)})"
    sql = (
        f"SELECT {key}, count(*), count(*) FILTER (WHERE status = 'error'), "
        f"COALESCE(sum(cost_usd), 0), {counted} FROM {source}{clause} GROUP BY {key}"
    )
    return sql, params.values


def window_of(totals: list[Any]) -> int:
    """The window's calls from :func:`totals_sql`'s rows."""
    return int(totals[0][4]) if totals else 0


def summary_sql(by: str, filters: Filters, only: list[Any] | None = None) -> tuple[str, list[Any]]:
    """One row per group: key, totals, percentiles, first id (for ties); only the groups whose
    key is in ``only`` when given (``None`` among them: the group without a value)."""
    key, source = _group_source(by)
    params = _Params()
    window = ""
    if source != "calls":
        # A call in several groups: the window (the rule of percentiles) still counts each
        # call once: the last column.
        window = f", (SELECT count(*) FROM calls{where(filters, params)})"
    extra: list[str] = []
    if only is not None:
        known = [k for k in only if k is not None]
        chosen = f"{key} = ANY({params.add(known)}::text[])"
        extra.append(f"({chosen} OR {key} IS NULL)" if len(known) < len(only) else chosen)
    sql = (
        # The median speed is 1000 / the median time per token taken from the top: speed falls
        # as tpt grows, so rank r of speeds ascending is rank r of tpt descending.
        f"SELECT {key}, {_TOTALS}, percentile_disc(0.5) WITHIN GROUP (ORDER BY {_TPT} DESC), "
        f"min(id){window} FROM {source}{where(filters, params, *extra)} GROUP BY {key} "
        "ORDER BY min(id)"
    )
    return sql, params.values


def summary_rows(rows: list[Any], window: int | None = None) -> list[CallSummary]:
    """The summaries, sorted as :func:`~asynctelemetry._stores._base.summarize` sorts them, with
    the percentiles reported as the rule says for the window (:func:`window_percentile`) of
    ``window`` calls (by default: the rows' calls)."""
    if window is not None:
        pass
    elif rows and len(rows[0]) > _SUMMARY_WIDTH:  # by="tag": the window is the last column
        window = rows[0][-1]
    else:
        window = sum(row[1] for row in rows)

    def rank(value: float | None) -> float | None:
        return window_percentile(value, window)

    summaries = [
        summary_of(
            key,
            (*totals[:6], float(totals[6]), totals[7]),
            (rank(p50), rank(p95), rank(ttft), rank(None if tpt is None else 1000.0 / tpt)),
        )
        for key, *totals, p50, p95, ttft, tpt in (row[: _SUMMARY_WIDTH - 1] for row in rows)
    ]
    summaries.sort(key=lambda r: (-r.cost_usd, -r.calls, r.key or ""))
    return summaries


def timeseries_sql(width_us: int, by: str | None, filters: Filters) -> tuple[str, list[Any]]:
    """One row per (bucket start in microseconds since the epoch, key) with its totals."""
    micros = "(extract(epoch FROM ts) * 1000000)::bigint"  # exact: extract gives numeric
    params = _Params()
    width = params.add(width_us)
    # Floor to the bucket start, aligned to the epoch (also before 1970: SQL's % truncates).
    start = f"({micros} - (({micros} % {width}) + {width}) % {width})"
    key = "NULL::text" if by is None else group_sql(series_field(by))
    clause = where(filters, params)
    sql = f"SELECT {start} AS bucket, {key} AS key, {_TOTALS} FROM calls{clause} GROUP BY 1, 2"
    return sql, params.values


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def timeseries_rows(rows: list[Any]) -> list[TimeBucket]:
    """The buckets, oldest first, then by key (``None`` first), as every store orders them."""
    window = sum(row[2] for row in rows)

    def rank(value: float | None) -> float | None:
        return window_percentile(value, window)

    buckets = [
        bucket_of(
            start * 1000,
            key,
            (calls, errors, input_tokens, output_tokens, cached, float(cost)),
            (rank(p50), rank(p95), rank(ttft)),
        )
        for (
            start,
            key,
            calls,
            errors,
            input_tokens,
            output_tokens,
            cached,
            _,
            cost,
            _,
            p50,
            p95,
            ttft,
        ) in rows
    ]
    buckets.sort(key=lambda b: (b.start, b.key is not None, b.key or ""))
    return buckets


async def pages(
    fetch: Callable[[str, Sequence[Any]], Awaitable[list[Any]]],
    filters: Filters,
    page: int,
    *,
    newest_first: bool = False,
    limit: int | None = None,
) -> AsyncIterator[LLMCall]:
    """The calls that pass ``filters`` in order, read ``page`` rows at a time by keyset."""
    after: tuple[datetime, int] | None = None
    left = limit
    while left is None or left > 0:
        size = page if left is None else min(page, left)
        sql, params = page_sql(filters, size, newest_first=newest_first, after=after)
        rows = await fetch(sql, params)
        for call in decode(rows):
            yield call
        if len(rows) < size:
            return
        if left is not None:
            left -= len(rows)
        after = (rows[-1][ROW_TS], rows[-1][ROW_ID])


async def reprice(
    fetch: Callable[[str, Sequence[Any]], Awaitable[list[Any]]],
    write: Callable[[list[str], list[datetime], list[Decimal], str], Awaitable[None]],
    table: PriceTable,
    filters: Filters,
    page: int,
) -> int:
    """Price the calls that pass ``filters`` again, a keyset page at a time, and ``write`` each
    page's changed costs (and ``table.version``); return how many changed."""
    version = table.version
    changed = 0
    after: tuple[datetime, int] | None = None
    slice_ = Slice()  # pricing is CPU work: the loop gets its turns
    while True:
        sql, params = page_sql(filters, page, after=after)
        rows = await fetch(sql, params)
        ids: list[str] = []
        stamps: list[datetime] = []
        costs: list[Decimal] = []
        for call in decode(rows):
            await slice_.breathe()
            cost = table.cost(call)
            if cost is not None and (cost != call.cost_usd or call.price_version != version):
                ids.append(call.call_id)
                stamps.append(call.timestamp)
                costs.append(Decimal(cost))
        if ids:
            await write(ids, stamps, costs, version)
            changed += len(ids)
        if len(rows) < page:
            return changed
        after = (rows[-1][ROW_TS], rows[-1][ROW_ID])


def trace_walk_sql(walks: Sequence[Walk]) -> tuple[str, list[Any]]:
    """:class:`~.._traces.Walk` requests in one statement (one round trip): rows
    ``(walk's position, trace_id, ts)``, through ``calls_ts_id``, ``calls_session_ts``,
    ``calls_user_ts``, …, ``spans_status_ts``. Each walk's first ``n`` rows come from an index in
    walking order; the rows that share the last one's start follow (some twice: harmless)."""
    params = _Params()
    parts = []
    for k, walk in enumerate(walks):
        clauses = ["trace_id IS NOT NULL"] if walk.table == "calls" else []
        if walk.column == "status":  # the partial index spans_status_ts: the rows not "ok"
            clauses.append("status <> 'ok'")
        if walk.column is not None:
            clauses.append(f"{walk.column} = {params.add(walk.value)}")  # from Walk's list
        if walk.since is not None:
            clauses.append(f"ts >= {params.add(walk.since)}")
        if walk.until is not None:
            clauses.append(f"ts < {params.add(walk.until)}")
        if walk.after is not None:
            clauses.append(f"ts {'<' if walk.newest_first else '>'} {params.add(walk.after)}")
        where = " AND ".join(clauses) or "true"
        n = params.add(walk.n)
        order, last = ("DESC", "min") if walk.newest_first else ("ASC", "max")
        parts.append(
            f"(WITH p AS (SELECT trace_id, ts FROM {walk.table} WHERE {where} "
            f"ORDER BY ts {order} LIMIT {n}) SELECT {k}, trace_id, ts FROM p UNION ALL "
            f"SELECT {k}, trace_id, ts FROM {walk.table} WHERE {where} AND "
            f"ts = (SELECT {last}(ts) FROM p) AND (SELECT count(*) FROM p) = {n})"
        )
    return " UNION ALL ".join(parts), params.values


def trace_check_sql(filters: TraceFilters, trace_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """A :class:`~.._traces.Check` (the rules of :mod:`._traces`, as SQLite's
    :func:`~..sqlite.reads.trace_check_sql`), through ``calls_trace_ts`` and ``spans_trace_ts``."""
    params = _Params()
    having: list[str] = []
    if filters.since is not None:
        having.append(f"min(ts) >= {params.add(filters.since)}")
    if filters.until is not None:
        having.append(f"min(ts) < {params.add(filters.until)}")
    for column, value in (
        ("session_id", filters.session_id),
        ("user_id", filters.user_id),
        ("agent_name", filters.agent),
    ):
        if value is not None:
            having.append(f"coalesce(bool_or({column} = {params.add(value)}), false)")
    if filters.status is not None:
        having.append(_TRACE_STATUS[filters.status])
    ids = params.add(list(trace_ids))
    sql = (
        f"SELECT trace_id, min(ts), {' AND '.join(having) or 'true'} FROM ("
        "SELECT trace_id, ts, status, session_id, user_id, agent_name "
        f"FROM calls WHERE trace_id = ANY({ids}::text[]) UNION ALL "
        "SELECT trace_id, ts, status, session_id, user_id, agent_name FROM spans "
        f"WHERE trace_id = ANY({ids}::text[])) AS r GROUP BY trace_id"
    )
    return sql, params.values


#: The calls and the steps of some traces, oldest first (``calls_trace_ts``, ``spans_trace_ts``).
TRACES_CALLS_SQL: Final = (
    f"SELECT {SELECT_LIST} FROM calls WHERE trace_id = ANY($1::text[]) ORDER BY ts, id"
)
TRACES_SPANS_SQL: Final = (
    f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE trace_id = ANY($1::text[]) ORDER BY ts, id"
)


_TRACE_STATUS: Final = {
    "error": "bool_or(status = 'error')",
    "cancelled": "NOT bool_or(status = 'error') AND bool_or(status = 'cancelled')",
    "ok": "bool_and(status = 'ok')",
}


def error_groups_sql(filters: Filters, limit: int) -> tuple[str, list[Any]]:
    """The rule of :mod:`.._errors` in one statement (``filters`` has ``status="error"``: the
    index ``calls_status_ts`` holds the window's failed calls together)."""
    params = _Params()
    clause = where(filters, params)
    models = f"array_agg(DISTINCT {MODEL_KEY})"
    sql = groups_sql("calls", "ts", clause, params.add(limit), models, ' COLLATE "C"')
    return sql, params.values


def error_groups_rows(rows: list[Any]) -> list[ErrorGroup]:
    """The groups of :func:`error_groups_sql`'s rows."""
    return [group_of(r, r[3].astimezone(UTC), r[4].astimezone(UTC), r[5]) for r in rows]
