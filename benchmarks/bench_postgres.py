"""PostgresStore figures beside raw asyncpg in the same run, on a private PostgreSQL server.

1. Sustained ``add_many`` + ``flush`` rate (full LLMCall rows, the store's default batch size)
   beside raw asyncpg ``copy_records_to_table`` of the same rows, already encoded, into the same
   table (day-partitioned, same indexes), in transactions of the same size; the calls in 5,000
   sessions and four models, at random times over one day (so every batch touches most rollup
   rows of the day). Target >= 0.7x.
2. Event-loop lag (p50/p99) in the writing process while it writes flat out. Target p99 < 5 ms
   for ``held``, the part of the lag that was work on the loop's thread (see
   ``_common.LagMonitor``; the wall-clock lag also counts time the OS gave other processes).
   Beside it, in the same run: the lag while raw asyncpg COPY writes the same calls, and that of
   an idle loop for the same time: on a machine shared with other processes that is the floor
   (the loop waits for a core, not for the store).
3. With N calls stored (generated server-side over 30 days with ``INSERT … SELECT
   generate_series``, then the rollups built from them): ``summary(by="model")`` and
   ``timeseries`` of the last day (5-minute buckets) and of the last 7 days (1-hour buckets),
   each beside the same read ranked in SQL over every call (the store without rollups, in the
   same run), and retention dropping one day's partition. Target < 1 s each.

The server is started for the run (initdb into a temp dir, default durability: fsync on) from
Debian's binaries, or ``$ASYNCTELEMETRY_TEST_POSTGRES`` is used.

Run: ``.venv/bin/python benchmarks/bench_postgres.py [--quick] [--calls N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from _common import LagMonitor, machine, table

from asynctelemetry import LLMCall, PostgresStore
from asynctelemetry._rows import row_of
from asynctelemetry._stores import _base
from asynctelemetry._stores.postgres import rollup as _pg_rollup
from asynctelemetry._stores.postgres.schema import (
    COPY_COLUMNS,
    ensure_partitions,
    existing_partitions,
    pg_row,
)
from asynctelemetry._stores.postgres.store import POSTGRES_QUEUE
from tests.pg import fresh_schema, start_server, stop_server

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

#: The store's rule: windows of more calls than this are read from the rollups.
EXACT_LIMIT = _base.EXACT_LIMIT

MODELS = ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini")
PROVIDERS = ("openai", "anthropic", "google", "openai")
CHUNK = 512
#: The writes' calls: in one of this many sessions, at random times over one day (the load of
#: #24's target, as bench_collector.py writes it).
SESSIONS = 5000
TRANSACTION: int = POSTGRES_QUEUE.batch_size  # the store's default batch


def full_call(i: int, when: datetime) -> LLMCall:
    """A call at ``when`` with every field set (a quarter of them with attributes), as the
    collector makes."""
    m = i % 4
    return LLMCall.model_validate(
        {
            "call_id": f"{i:016x}{'0' * 16}",
            "timestamp": when,
            "model": MODELS[m],
            "request_model": MODELS[m],
            "provider": PROVIDERS[m],
            "service_name": "bench",
            "source": "collector",
            "trace_id": f"{i:032x}",
            "span_id": f"{i:016x}",
            "session_id": f"s{i % SESSIONS}",
            "route_name": "chat",
            "is_streaming": i % 2 == 0,
            "status": "error" if i % 20 == 0 else "ok",
            "status_code": 200,
            "input_tokens": 100 + i % 900,
            "output_tokens": 10 + i % 300,
            "total_tokens": 110 + i % 1200,
            "cached_input_tokens": i % 50,
            "duration_ms": 200.0 + i % 5000,
            "ttft_ms": 50.0 + i % 400,
            "cost_usd": 0.0001 * (i % 97),
            "price_version": "genai-prices 0.0.40",
            "attributes": {"gen_ai.system": "openai", "n": i} if i % 4 == 0 else {},
        }
    )


async def write_store(dsn: str, calls: list[LLMCall]) -> tuple[float, LagMonitor]:
    async with PostgresStore(dsn) as store:
        with LagMonitor() as lag:
            started = time.perf_counter()
            for start in range(0, len(calls), CHUNK):
                await store.add_many(calls[start : start + CHUNK])
                await asyncio.sleep(0)  # an app does other work between batches
            await store.flush()
            seconds = time.perf_counter() - started
        assert store.duplicates == 0 and store.rejected == 0
    return seconds, lag


async def idle_lag(seconds: float) -> LagMonitor:
    """The lag of a loop doing nothing else, for ``seconds``."""
    with LagMonitor() as lag:
        await asyncio.sleep(seconds)
    return lag


def lag_row(what: str, lag: LagMonitor) -> tuple[str, ...]:
    """A row of the lag table: the wall-clock lag, then the part of it that was work on the
    loop's thread (``held``: what the code under test makes the loop wait, without the time the
    OS gave to other processes)."""
    return (
        what,
        f"{pct(lag.lags, 50):.2f}",
        f"{pct(lag.lags, 99):.2f}",
        f"{max(lag.lags, default=0.0) * 1000:.1f}",
        f"{pct(lag.held, 99):.2f}",
        f"{max(lag.held, default=0.0) * 1000:.1f}",
    )


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile, in ms."""
    ordered = sorted(values)
    return ordered[max(0, int(p / 100 * len(ordered) + 0.999999) - 1)] * 1000 if ordered else 0.0


async def write_raw(dsn: str, calls: list[LLMCall]) -> tuple[float, LagMonitor]:
    rows = [pg_row(row_of(c.__dict__)) for c in calls]  # pre-encoded: no encoding work
    async with PostgresStore(dsn):
        pass  # the same schema
    conn = await asyncpg.connect(dsn)
    try:
        await ensure_partitions(conn, {c.timestamp.date() for c in calls}, set())
        with LagMonitor() as lag:
            started = time.perf_counter()
            for start in range(0, len(rows), TRANSACTION):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "calls", records=rows[start : start + TRANSACTION], columns=COPY_COLUMNS
                    )
            return time.perf_counter() - started, lag
    finally:
        await conn.close()


GENERATE = """
INSERT INTO calls (call_id, ts, model, request_model, provider, operation, service_name, source,
  session_id, status, input_tokens, output_tokens, cached_input_tokens, duration_ms, ttft_ms,
  tool_calls, cost_usd)
SELECT 'g' || i, $1::timestamptz + (i * $2::float8) * interval '1 second',
  (ARRAY['gpt-4o','claude-sonnet-4-5','gemini-2.5-flash','gpt-4o-mini'])[i % 4 + 1],
  (ARRAY['gpt-4o','claude-sonnet-4-5','gemini-2.5-flash','gpt-4o-mini'])[i % 4 + 1],
  (ARRAY['openai','anthropic','google','openai'])[i % 4 + 1], 'chat', 'bench', 'collector',
  's' || (i % 1000), CASE WHEN i % 20 = 0 THEN 'error' ELSE 'ok' END,
  100 + i % 900, 10 + i % 300, i % 50, 200.0 + i % 5000, 50.0 + i % 400, 0,
  (i % 97) * 0.0001
FROM generate_series($3::bigint, $4::bigint) AS i
"""


async def best_of_3(read: Callable[[], Awaitable[object]]) -> float:
    """The fastest of three runs of ``read``, in seconds."""
    times = []
    for _ in range(3):
        began = time.perf_counter()
        await read()
        times.append(time.perf_counter() - began)
    return min(times)


async def volume(dsn: str, total: int) -> list[tuple[str, str]]:
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    spacing = 30 * 86400 / total
    async with PostgresStore(dsn, partitions_ahead=1) as store:
        conn = await asyncpg.connect(dsn)
        try:
            days = {(start + timedelta(days=d)).date() for d in range(32)}
            await ensure_partitions(conn, days, set())
            began = time.perf_counter()
            step = 500_000
            for first in range(0, total, step):
                await conn.execute(GENERATE, start, spacing, first, min(first + step, total) - 1)
            generated = time.perf_counter() - began
            await conn.execute("ANALYZE calls")
            # Calls written around the store are not in its rollups: build them, as the
            # migration of a schema-2 database does.
            began = time.perf_counter()
            async with conn.transaction():
                partitions = await existing_partitions(conn)
                await _pg_rollup.rebuild(conn, [partitions[d] for d in sorted(partitions)])
            rebuilt = time.perf_counter() - began
        finally:
            await conn.close()
        day = now - timedelta(days=1)
        week = now - timedelta(days=7)
        rows: list[tuple[str, str]] = [
            (f"generate {total:,} calls server-side (+ANALYZE)", f"{generated:.1f} s"),
            ("build the rollups from them (the migration's step)", f"{rebuilt:.1f} s"),
        ]
        reads = (
            ("summary(by='model') of the last day", lambda: store.summary(since=day)),
            (
                "timeseries(bucket='5m') of the last day",
                lambda: store.timeseries(bucket="5m", since=day, until=now),
            ),
            ("summary(by='model') of the last 7 days", lambda: store.summary(since=week)),
            (
                "timeseries(bucket='1h') of the last 7 days",
                lambda: store.timeseries(bucket="1h", since=week, until=now),
            ),
        )
        for name, read in reads:
            rolled = await best_of_3(read)
            _base.EXACT_LIMIT = 10**12  # the baseline: every call ranked in SQL, no rollups
            try:
                exact = await best_of_3(read)
            finally:
                _base.EXACT_LIMIT = EXACT_LIMIT
            rows.append((name, f"{rolled * 1000:.0f} ms (exact SQL: {exact * 1000:.0f} ms)"))
        rows.append(("count() of everything", f"{await best_of_3(store.count) * 1000:.0f} ms"))
        count = await store.count(since=day)
        rows.append(("calls in the last day", f"{count:,}"))
        first_end = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), UTC)
        store.retention.max_age = now - (first_end + timedelta(hours=1))  # only that day is past
        began = time.perf_counter()
        dropped = await store.enforce_retention()
        rows.append(
            (
                f"retention: drop the oldest day's partition ({dropped:,} calls)",
                f"{(time.perf_counter() - began) * 1000:.0f} ms",
            )
        )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int, help="calls stored for the read figures")
    args = parser.parse_args()
    writes = 20_000 if args.quick else 100_000
    stored = args.calls or (200_000 if args.quick else 2_000_000)
    server = await asyncio.to_thread(start_server, durable=True)
    try:
        rng = random.Random(24)
        day = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time_of_day.min, UTC)
        calls = [
            full_call(i, day + timedelta(microseconds=rng.randrange(86_400 * 10**6)))
            for i in range(writes)
        ]
        store_s: list[float] = []
        raw_s: list[float] = []
        lags = LagMonitor()  # the samples of every run, gathered
        idle = LagMonitor()
        raw_lags = LagMonitor()
        for _ in range(2 if args.quick else 3):  # interleaved, each into a fresh schema
            seconds, lag = await write_raw(await fresh_schema(server), calls)
            raw_s.append(seconds)
            raw_lags.lags += lag.lags
            raw_lags.held += lag.held
            seconds, lag = await write_store(await fresh_schema(server), calls)
            store_s.append(seconds)
            lags.lags += lag.lags
            lags.held += lag.held
            quiet = await idle_lag(seconds)
            idle.lags += quiet.lags
            idle.held += quiet.held
        best_store, best_raw = min(store_s), min(raw_s)
        print(machine())
        print(
            table(
                f"Writes: {writes:,} full calls (transactions of {TRANSACTION:,}; "
                f"{SESSIONS:,} sessions, 4 models, one day)",
                [
                    (
                        "raw asyncpg copy_records_to_table (pre-encoded)",
                        f"{writes / best_raw:,.0f}",
                        "1.00x",
                    ),
                    (
                        "PostgresStore add_many + flush",
                        f"{writes / best_store:,.0f}",
                        f"{best_raw / best_store:.2f}x",
                    ),
                ],
                ("path", "calls/s", "vs raw"),
            )
        )
        print()
        print(
            table(
                "Event-loop lag",
                [
                    lag_row("while the store writes flat out", lags),
                    lag_row("while raw asyncpg COPY writes the same calls", raw_lags),
                    lag_row("idle loop, same time (the machine's floor)", idle),
                ],
                ("loop", "p50 ms", "p99 ms", "max ms", "held p99 ms", "held max ms"),
            )
        )
        print()
        rows = await volume(await fresh_schema(server), stored)
        print(
            table(f"Reads and retention with {stored:,} calls stored", rows, ("operation", "time"))
        )
    finally:
        await asyncio.to_thread(stop_server, server)


if __name__ == "__main__":
    asyncio.run(main())
