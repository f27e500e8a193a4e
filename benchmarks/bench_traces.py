"""Trace reads in SQLite and PostgreSQL: ``get_trace`` and pages of ``traces(...)`` over 1,000,000 calls and 3,000,000 steps.

Each store holds N traces over the last day, each an agent run of one LLM call and three steps
(the agent at the root, a tool, a retrieval): N calls and 3N steps. A trace's user is one of
1,000, its session one of N/50 (50 traces each); 1 trace in 100 has a failed tool (status
"error"); 1 in 1,000 is run by the agent "auditor", the others by "planner". Measured through
the public API of an open store (best of 3): ``get_trace`` of one trace and pages of 50
``traces(...)``, newest first, unfiltered and with each filter. Beside each, in the same run, a
plain indexed query of the same size: ``store.trace(trace_id)`` (one trace's calls by their
index), ``query(limit=50, newest_first=True)`` (the newest page of calls) and
``query(session_id=..., limit=50)``. Goal of the issue: every read under 50 ms in both engines.

The data is generated inside the engine (``INSERT … SELECT`` over a recursive CTE in SQLite,
``generate_series`` in PostgreSQL, two connections at once) into the stores' own schema, then
read back through the stores' codecs. SQLite: a temporary file; PostgreSQL: a private server
(``tests/pg.py``, Debian's binaries, default durability), ``ANALYZE`` after the load.

Run: ``.venv/bin/python benchmarks/bench_traces.py`` (``--quick``: 20,000 traces; default
1,000,000; ``--traces N``; ``--engine sqlite|postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from _common import generate_in_postgres, machine, table

from asynctelemetry import PostgresStore, SQLiteStore
from asynctelemetry._stores.postgres.schema import ensure_partitions
from asynctelemetry._stores.sqlite.schema import prepare, to_ns
from tests.pg import fresh_schema, start_server, stop_server

REPEAT = 3
CHUNK = 100_000
SPAN = timedelta(days=1)

#: One trace i in each engine's SQL: {hex}(x, w) is x as w hex digits; {at} its start; {i} i;
#: {sessions} how many sessions. The same values in both engines.
CALLS = """
INSERT INTO calls (call_id, {ts}, model, request_model, provider, operation, source, trace_id,
  span_id, parent_span_id, session_id, status, input_tokens, output_tokens, duration_ms,
  tool_calls, cost_usd, user_id, agent_name)
SELECT 'c' || {hex15}, {at_call}, 'gpt-4o', 'gpt-4o', 'openai', 'chat', 'collector', {hex32},
  'c' || {hex15}, 'r' || {hex15}, 's' || ({i} % {sessions}), 'ok', 500, 50, 400.0, 0, 0.001,
  'u' || ({i} % 1000), CASE WHEN {i} % 1000 = 3 THEN 'auditor' ELSE 'planner' END
FROM {series}
"""
SPANS = """
INSERT INTO spans (span_id, trace_id, parent_span_id, name, kind, {ts}, duration_ms, status,
  error_type, source, session_id, user_id, agent_name, tool_name)
SELECT k || {hex15}, {hex32}, CASE WHEN k = 'r' THEN NULL ELSE 'r' || {hex15} END,
  CASE k WHEN 'r' THEN CASE WHEN {i} % 1000 = 3 THEN 'auditor' ELSE 'planner' END
    WHEN 't' THEN 'search' ELSE 'docs' END,
  CASE k WHEN 'r' THEN 'agent' WHEN 't' THEN 'tool' ELSE 'retrieval' END,
  {at_step}, CASE k WHEN 'r' THEN 600.0 WHEN 't' THEN 500.0 ELSE 400.0 END,
  CASE WHEN k = 't' AND {i} % 100 = 0 THEN 'error' ELSE 'ok' END,
  CASE WHEN k = 't' AND {i} % 100 = 0 THEN 'LookupError' END, 'collector',
  's' || ({i} % {sessions}), 'u' || ({i} % 1000),
  CASE WHEN {i} % 1000 = 3 THEN 'auditor' ELSE 'planner' END,
  CASE WHEN k = 't' THEN 'search' END
FROM {series} CROSS JOIN (SELECT 'r' AS k UNION ALL SELECT 't' UNION ALL SELECT 'q') AS kinds
"""


def _sqlite_sql(template: str, sessions: int) -> str:
    series = "s"
    at = "(? + s.i * ?)"
    return "WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?) " + (
        template.format(
            ts="timestamp_ns",
            hex15="printf('%015x', s.i)",
            hex32="printf('%032x', s.i)",
            i="s.i",
            sessions=sessions,
            series=series,
            at_call=f"{at} + 5000000",
            at_step=f"{at} + 1000000 * (CASE k WHEN 'r' THEN 0 WHEN 't' THEN 1 ELSE 2 END)",
        )
    )


def _pg_sql(template: str, sessions: int) -> str:
    at = "($1::timestamptz + (i * $2::float8) * interval '1 microsecond')"
    step = "(CASE k WHEN 'r' THEN 0 WHEN 't' THEN 1 ELSE 2 END)"
    return template.format(
        ts="ts",
        hex15="lpad(to_hex(i), 15, '0')",
        hex32="lpad(to_hex(i), 32, '0')",
        i="i",
        sessions=sessions,
        series="generate_series($3::bigint, $4::bigint) AS i",
        at_call=f"{at} + interval '5 milliseconds'",
        at_step=f"{at} + {step} * interval '1 millisecond'",
    )


def build_sqlite(path: Path, n: int, end: datetime) -> float:
    """``n`` traces over the day before ``end`` into a new SQLite file; seconds."""
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away file
    prepare(conn, str(path))
    first, spacing = to_ns(end - SPAN), SPAN // timedelta(microseconds=1) // n * 1000
    sessions = max(1, n // 50)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n) - 1
        conn.execute("BEGIN")
        for template in (CALLS, SPANS):
            conn.execute(_sqlite_sql(template, sessions), (lo, hi, first, spacing))
        conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


async def build_postgres(dsn: str, n: int, end: datetime) -> float:
    """``n`` traces over the day before ``end`` into the store's schema; seconds."""
    first = end - SPAN
    spacing = SPAN / timedelta(microseconds=1) / n
    sessions = max(1, n // 50)
    conn = await asyncpg.connect(dsn)
    try:
        await ensure_partitions(conn, {first.date(), end.date()}, set())
    finally:
        await conn.close()

    async def chunk(conn: Any, lo: int, hi: int) -> None:
        async with conn.transaction():
            for template in (CALLS, SPANS):
                await conn.execute(_pg_sql(template, sessions), first, spacing, lo, hi)

    return await generate_in_postgres(dsn, n, CHUNK, chunk, ("calls", "spans"))


async def best(fn: Any) -> float:
    """The best of :data:`REPEAT` runs of ``await fn()``, in milliseconds."""
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


async def measure(store: Any, n: int) -> list[tuple[str, float, float, str]]:
    """Each read, its milliseconds, its baseline's and the baseline's name (checking what
    each read returns first)."""
    trace = f"{n // 2:032x}"
    session = f"s{(n - 1) % max(1, n // 50)}"
    found = await store.get_trace(trace)
    assert found is not None and found.llm_calls == 1 and len(found.spans) == 3
    page = await store.traces(limit=50)
    assert len(page) == 50 and page[0].trace_id == f"{n - 1:032x}"
    assert all(r.status == "error" for r in await store.traces(status="error", limit=50))
    assert len(await store.traces(session_id=session, limit=50)) == min(50, n // max(1, n // 50))
    newest = (
        "query(limit=50, newest_first=True)",
        lambda: store.query(limit=50, newest_first=True),
    )
    by_session = (
        "query(session_id=..., limit=50)",
        lambda: store.query(session_id=session, limit=50, newest_first=True),
    )
    reads: list[tuple[str, Any, tuple[str, Any]]] = [
        ("get_trace(one trace)", lambda: store.get_trace(trace),
         ("store.trace(trace_id)", lambda: store.trace(trace))),
        ("traces(limit=50)", lambda: store.traces(limit=50), newest),
        ("traces(session_id=..., limit=50): 50 traces", lambda: store.traces(session_id=session, limit=50), by_session),
        ("traces(user_id=..., limit=50): 1 trace in 1,000", lambda: store.traces(user_id="u7", limit=50), newest),
        ("traces(agent='planner', limit=50): 999 in 1,000", lambda: store.traces(agent="planner", limit=50), newest),
        ("traces(agent='auditor', limit=50): 1 in 1,000", lambda: store.traces(agent="auditor", limit=50), newest),
        ("traces(status='error', limit=50): 1 in 100", lambda: store.traces(status="error", limit=50), newest),
        ("traces(status='ok', limit=50): 99 in 100", lambda: store.traces(status="ok", limit=50), newest),
        ("traces(limit=50, newest_first=False)", lambda: store.traces(limit=50, newest_first=False), newest),
        ("traces(session_id=..., limit=50, newest_first=False)", lambda: store.traces(session_id=session, limit=50, newest_first=False), by_session),
    ]  # fmt: skip
    rows = []
    for name, read, (baseline, base) in reads:
        rows.append((name, await best(read), await best(base), baseline))
    return rows


async def run_sqlite(n: int) -> tuple[list[tuple[str, float, float, str]], float]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "traces.db"
        seconds = await asyncio.to_thread(build_sqlite, path, n, datetime.now(UTC))
        async with SQLiteStore(path, read_only=True) as store:
            return await measure(store, n), seconds


async def run_postgres(n: int) -> tuple[list[tuple[str, float, float, str]], float]:
    server = await asyncio.to_thread(start_server, durable=True)
    try:
        dsn = await fresh_schema(server)
        now = datetime.now(UTC)
        async with PostgresStore(dsn) as store:
            seconds = await build_postgres(dsn, n, now)
            return await measure(store, n), seconds
    finally:
        await asyncio.to_thread(stop_server, server)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 traces")
    parser.add_argument("--traces", type=int, default=None, help="how many traces")
    parser.add_argument("--engine", choices=("sqlite", "postgres"), help="only this engine")
    args = parser.parse_args()
    n = args.traces or (20_000 if args.quick else 1_000_000)
    print(machine())
    engines = {"SQLite": run_sqlite, "PostgreSQL": run_postgres}
    for engine, run in engines.items():
        if args.engine and not engine.lower().startswith(args.engine):
            continue
        rows, seconds = await run(n)
        shown = [(name, f"{ms:.2f}", f"{base:.2f}", baseline) for name, ms, base, baseline in rows]
        print(
            table(
                f"Trace reads over {n:,} calls and {3 * n:,} steps ({engine}, ms, best of "
                f"{REPEAT}; goal: under 50 ms)",
                shown,
                ("read", "ms", "baseline ms", "baseline"),
            )
        )
        print(
            f"{engine}: generated in {seconds:.0f} s; slowest read {max(r[1] for r in rows):.1f} ms"
        )
        print()


if __name__ == "__main__":
    asyncio.run(main())
