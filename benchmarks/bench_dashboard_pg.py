"""Dashboard API routes over 10,000,000 calls in PostgreSQL, each beside the store method it calls.

Starts a private PostgreSQL server (as ``bench_postgres.py`` does: initdb into a temp dir,
Debian's binaries, default durability; or ``$ASYNCTELEMETRY_TEST_POSTGRES``), opens a
``PostgresStore`` (its real schema: day partitions, indexes), and fills it server-side with
``INSERT … SELECT generate_series`` with the very calls ``bench_dashboard.py`` writes to SQLite
(10,000,000 over the 7 days before the load started; ``--quick``: 1,000,000; ``--calls N``),
two connections at once, then ``ANALYZE``; the calls went around the store's writer, so its
rollups are then built from them (what migrating a schema-2 database does). Then every JSON
route of ``asynctelemetry.ui.Dashboard`` is timed over the 1-hour, 24-hour and 7-day windows
ending at the newest call, with a real HTTP client, beside the store methods it calls, and the
page's main-thread tasks are watched in Chromium (``bench_dashboard.time_routes`` and
``page_tasks``). Goal: each under 1 s, no task over 200 ms.

The server's data directory is kept between runs in ``$TMPDIR/asynctelemetry-bench`` (keyed by
the number of calls; ``--fresh`` generates it again), so a second run starts in seconds instead
of minutes; ``PostgresStore`` migrates a database kept from an older schema forward on open.

Run: ``.venv/bin/python benchmarks/bench_dashboard_pg.py`` (``--quick`` for 1,000,000 calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from _common import generate_in_postgres, machine, table
from bench_dashboard import (
    CACHE,
    COLUMNS,
    DATA_VERSION,
    ERROR_TYPES,
    MODELS,
    PAGE_COLUMNS,
    PROVIDERS,
    REPEAT,
    SESSIONS,
    SPAN,
    page_tasks,
    time_routes,
)

from asynctelemetry import PostgresStore
from asynctelemetry._stores.postgres import rollup as _pg_rollup
from asynctelemetry._stores.postgres.schema import ensure_partitions, existing_partitions
from asynctelemetry.ui import Dashboard
from tests.pg import Server, fresh_schema, start_server


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


#: ``bench_dashboard.call(i, n, now)`` in SQL: $1 the first timestamp, $2 microseconds between
#: calls, $3..$4 the range of ``i``. Costs go in as the decimals of the float's value.
GENERATE = f"""
INSERT INTO calls (call_id, ts, model, request_model, provider, operation, source, trace_id,
  span_id, parent_span_id, session_id, route_name, status, error_type, error_message,
  input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, duration_ms, ttft_ms,
  tool_calls, cost_usd)
SELECT 'bench-' || lpad(i::text, 9, '0'),
  $1::timestamptz + (i * $2::float8) * interval '1 microsecond',
  ({_array(MODELS)})[i % {len(MODELS)} + 1], ({_array(MODELS)})[i % {len(MODELS)} + 1],
  ({_array(PROVIDERS)})[i % {len(PROVIDERS)} + 1], 'chat', 'collector',
  lpad(to_hex(i / 4), 32, '0'), lpad(to_hex(i), 16, '0'),
  CASE WHEN i % 4 <> 0 THEN lpad(to_hex(i - 1), 16, '0') END,
  'session-' || (i % {SESSIONS}), 'route-' || (i % 5), CASE WHEN i % 23 = 0 THEN 'error' ELSE 'ok' END,
  CASE WHEN i % 23 = 0 THEN ({_array(ERROR_TYPES)})[i % {len(ERROR_TYPES)} + 1] END,
  CASE WHEN i % 23 = 0 THEN 'upstream said no (' || (i % 40) || ')' END,
  500 + i % 1000, 50 + i % 300, i % 256, i % 64,
  200.0 + (i % 5000) * 0.37, 20.0 + (i % 300) * 0.11, 0, (i % 1000) * 0.00001
FROM generate_series($3::bigint, $4::bigint) AS i
"""
STEP = 250_000


async def load(dsn: str, n: int, now: datetime) -> float:
    """Generate ``n`` calls over the 7 days before ``now`` into the store's schema; seconds."""
    first = now - SPAN
    spacing = SPAN / timedelta(microseconds=1) / n
    conn = await asyncpg.connect(dsn)
    try:
        days = {(first + timedelta(days=d)).date() for d in range(SPAN.days + 2)}
        await ensure_partitions(conn, days, set())
    finally:
        await conn.close()

    async def chunk(conn: asyncpg.Connection, lo: int, hi: int) -> None:
        await conn.execute(GENERATE, first, spacing, lo, hi)

    return await generate_in_postgres(dsn, n, STEP, chunk, ("calls",))


async def build_rollups(dsn: str) -> float:
    """Count the generated calls into the store's rollups (they went around the writer), as a
    schema-2 database's migration does; seconds."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            partitions = await existing_partitions(conn)
            await _pg_rollup.rebuild(conn, [partitions[day] for day in sorted(partitions)])
    finally:
        await conn.close()
    return time.perf_counter() - started


async def generated(n: int, fresh: bool) -> tuple[Server, str, datetime, str]:
    """The server holding ``n`` generated calls (generated now, or kept from an earlier run),
    the DSN of their schema, the ``now`` they end at, and how they were made."""
    root = CACHE / f"dashboard-pg-{n}-data{DATA_VERSION}"  # migrated forward on open
    meta = root / "bench.json"
    if not fresh and meta.exists():
        known = json.loads(meta.read_text())
        server = await asyncio.to_thread(start_server, durable=True, root=str(root))
        dsn = f"{server.dsn}?search_path={known['schema']}"
        return server, dsn, datetime.fromisoformat(known["now"]), "kept from an earlier run"
    shutil.rmtree(root, ignore_errors=True)  # a run cut short, or --fresh
    CACHE.mkdir(exist_ok=True)
    server = await asyncio.to_thread(start_server, durable=True, root=str(root))
    try:
        dsn = await fresh_schema(server)
        now = datetime.now(UTC)
        async with PostgresStore(dsn):  # its schema: tables, partitions, indexes
            pass
        load_s = await load(dsn, n, now)
        rollup_s = await build_rollups(dsn)
    except BaseException:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(root, ignore_errors=True)
        raise
    schema = dsn.rsplit("search_path=", 1)[1]
    meta.write_text(json.dumps({"now": now.isoformat(), "schema": schema, "calls": n}))
    how = (
        f"generated server-side in {load_s:.0f} s, +ANALYZE, rollups built from them in "
        f"{rollup_s:.0f} s"
    )
    return server, dsn, now, how


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000,000 calls")
    parser.add_argument("--calls", type=int, help="calls stored (default 10,000,000)")
    parser.add_argument("--fresh", action="store_true", help="generate the calls again")
    args = parser.parse_args()
    n = args.calls or (1_000_000 if args.quick else 10_000_000)
    server, dsn, now, how = await generated(n, args.fresh)
    try:
        async with PostgresStore(dsn) as store:
            assert await store.count() == n
            async with Dashboard(store, port=0) as board:
                rows = await time_routes(store, board.url, n, now)
                tasks = await page_tasks(board.url)
    finally:
        await asyncio.to_thread(server.stop)
    print(
        f"{machine()}; {n:,} calls over 7 days in PostgreSQL (a private server, shared_buffers "
        f"128MB; {how}); route and store in turn, "
        f"best of {REPEAT} (of 1 when a run takes over 2 s), milliseconds"
    )
    print()
    print(
        table(f"Dashboard API over {n:,} calls in PostgreSQL (goal: each under 1 s)", rows, COLUMNS)
    )
    print()
    print(table(f"The page in Chromium over {n:,} calls in PostgreSQL", [tasks], PAGE_COLUMNS))


if __name__ == "__main__":
    asyncio.run(main())
