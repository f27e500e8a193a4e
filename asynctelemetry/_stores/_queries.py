"""SQL for the SQLite store's reads: the filters, ordering, keyset pages and summaries.

Filters follow :class:`~asynctelemetry._stores._base.Filters` exactly (``since`` inclusive,
``until`` exclusive, exact matches); order is timestamp then rowid (insertion order).

Summaries are computed in SQL so that a large group never comes into Python whole: one
``GROUP BY`` for the totals, and per percentile a window query (``ROW_NUMBER`` and ``COUNT`` over
the group) that returns only the few rows near the wanted rank; Python then picks the row whose
rank is exactly :func:`~asynctelemetry._stores._base.nearest_rank` (the one percentile
definition). Costs are summed by an aggregate that gives ``math.fsum``'s correctly rounded result,
so rows equal :func:`~asynctelemetry._stores._base.summarize` of the same calls.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from ._base import GROUP_FIELDS, CallSummary, nearest_rank
from ._schema import SELECT_COLUMNS, to_ns

if TYPE_CHECKING:
    import sqlite3

    from ._base import Filters

__all__ = ["group_column", "page_sql", "register", "select_sql", "summarize_sql", "where"]

_FSUM: Final = "asynctelemetry_fsum"
#: Columns a filter may compare to, by Filters field name; the values are bound parameters.
_EQUALS: Final = ("model", "provider", "session_id", "status")


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
    for name in _EQUALS:
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            params.append(value)
    clauses.extend(extra)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def select_sql(filters: Filters, limit: int | None, newest_first: bool) -> tuple[str, list[Any]]:
    """A query for the calls that pass ``filters``; ties stay in insertion order either way."""
    clause, params = where(filters)
    order = "timestamp_ns DESC, id" if newest_first else "timestamp_ns, id"
    params.append(-1 if limit is None else limit)
    return f"SELECT {SELECT_COLUMNS} FROM calls{clause} ORDER BY {order} LIMIT ?", params


def page_sql(filters: Filters) -> tuple[str, list[Any]]:
    """A keyset page query: bind the last (timestamp_ns, id) seen, then the page size.

    The key of the next page is the last row's ``timestamp_ns`` and ``id`` (at
    :data:`~._schema.ROW_TS` and :data:`~._schema.ROW_ID`).
    """
    clause, params = where(filters, "(timestamp_ns, id) > (?, ?)")
    sql = f"SELECT {SELECT_COLUMNS} FROM calls{clause} ORDER BY timestamp_ns, id LIMIT ?"
    return sql, params


def group_column(by: str) -> str:
    """The column ``summary(by=...)`` groups on (from a fixed table, never from input)."""
    try:
        return GROUP_FIELDS[by]
    except KeyError:
        raise ValueError(f"by must be one of {sorted(GROUP_FIELDS)}, not {by!r}") from None


class _FSum:
    """SQL aggregate with ``math.fsum``'s result: exact partials (Shewchuk), rounded once."""

    def __init__(self) -> None:
        self.partials: list[float] = []

    def step(self, value: float | None) -> None:
        if value is None:
            return
        x = float(value)
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def finalize(self) -> float:
        return math.fsum(self.partials)


def register(conn: sqlite3.Connection) -> None:
    """Add the functions the summary SQL uses to ``conn``."""
    # typeshed types aggregates as int-valued; SQLite takes any SQL value.
    conn.create_aggregate(_FSUM, 1, _FSum)  # type: ignore[arg-type]


# Tokens per second exactly as LLMCall.tokens_per_sec computes it (same IEEE operations).
_GENERATING: Final = "(duration_ms - COALESCE(ttft_ms, 0.0))"
_SPEED: Final = f"1000.0 / ({_GENERATING} / output_tokens)"
#: name → (value expression, condition for the value to exist, percentiles wanted)
_PERCENTILES: Final[dict[str, tuple[str, str, tuple[int, ...]]]] = {
    "latency": ("duration_ms", "duration_ms IS NOT NULL", (50, 95)),
    "ttft": ("ttft_ms", "ttft_ms IS NOT NULL", (50,)),
    "speed": (
        _SPEED,
        f"duration_ms IS NOT NULL AND output_tokens > 0 AND {_GENERATING} > 0",
        (50,),
    ),
}


def summarize_sql(conn: sqlite3.Connection, column: str, filters: Filters) -> list[CallSummary]:
    """The summary rows of the calls that pass ``filters``, grouped by ``column``.

    Runs in the reader's thread. Groups come in order of first insertion, then are sorted as
    ``summarize`` sorts them (cost, then calls, descending), so ties fall the same way.
    """
    clause, params = where(filters)
    totals = conn.execute(
        f"SELECT {column}, COUNT(*), SUM(status = 'error'), "
        "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
        "COALESCE(SUM(cached_input_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
        f"{_FSUM}(cost_usd), SUM(cost_usd IS NULL) "
        f"FROM calls{clause} GROUP BY {column} ORDER BY MIN(id)",
        params,
    ).fetchall()
    found: dict[tuple[str, int], dict[str | None, float]] = {}
    for name, (value, condition, wanted) in _PERCENTILES.items():
        clause, params = where(filters, condition)
        # Only rows within one rank of p% of the group's size come back.
        near = " OR ".join(
            f"(r BETWEEN n * {p / 100!r} - 1 AND n * {p / 100!r} + 1)" for p in wanted
        )
        rows = conn.execute(
            f"SELECT g, n, r, v FROM (SELECT {column} AS g, {value} AS v, "
            f"ROW_NUMBER() OVER (PARTITION BY {column} ORDER BY {value}) AS r, "
            f"COUNT(*) OVER (PARTITION BY {column}) AS n FROM calls{clause}) WHERE {near}",
            params,
        ).fetchall()
        for p in wanted:
            found[name, p] = {g: v for g, n, r, v in rows if r == nearest_rank(n, p)}
    summaries = [
        CallSummary(
            key=key,
            calls=calls,
            errors=errors,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            reasoning_tokens=reasoning,
            cost_usd=cost,
            unpriced_calls=unpriced,
            p50_latency_ms=found["latency", 50].get(key),
            p95_latency_ms=found["latency", 95].get(key),
            p50_ttft_ms=found["ttft", 50].get(key),
            median_tokens_per_sec=found["speed", 50].get(key),
        )
        for key, calls, errors, input_tokens, output_tokens, cached, reasoning, cost, unpriced in (
            totals
        )
    ]
    summaries.sort(key=lambda r: (-r.cost_usd, -r.calls, r.key or ""))
    return summaries
