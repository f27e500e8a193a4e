"""SQLiteStore reads at volume: summary and time series over a day of 1,000,000 calls.

One SQLite file holds 1,000,000 calls spread evenly over the last 24 hours (four models, two
providers, 2% errors, log-normal latencies). Measured through the public API of an open
``SQLiteStore`` (best of 3): ``summary(by="model", since=a day ago)``, ``timeseries(bucket="5m",
since=a day ago)``, the same two for the last hour, and ``timeseries(bucket="1m")`` for the
last hour. Goal: under 1 s for a day, under 100 ms for the last hour. Beside each, in the same
run, the baseline: the same answer computed by the previous approach (the raw rows, grouped and
ranked in SQL by window queries; run once, it takes seconds), and the largest relative
difference of any percentile between the two (the approximate rule's bound is 1%).

The file is built fast and thrown away: encoded rows inserted with ``executemany`` and the
rollups built from them by the schema migration's own function, as a file written by the
store's writer would hold them. Nothing is cached in the repository.

Run: ``.venv/bin/python benchmarks/bench_reads.py`` (``--quick``: 100,000 calls).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine, table

from asynctelemetry import SQLiteStore
from asynctelemetry._stores import _base
from asynctelemetry._stores.sqlite import rollup as _rollup
from asynctelemetry._stores.sqlite.schema import COLUMNS, INSERT_SQL, prepare, to_ns

MODELS = ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini")
PROVIDERS = ("openai", "anthropic", "google", "openai")


def build(path: Path, n: int, end: datetime) -> float:
    """Write ``n`` calls spread over the day before ``end``; return the seconds it took."""
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away file
    prepare(conn, str(path))
    column = {name: i for i, name in enumerate(COLUMNS)}
    end_ns = to_ns(end)
    step = 86_400 * 10**9 // n
    rnd = random.Random(12)
    template: list[Any] = [None] * len(COLUMNS)
    template[column["operation"]] = "chat"
    template[column["source"]] = "collector"
    template[column["tool_calls"]] = 0
    batch: list[list[Any]] = []
    for i in range(n):
        m = i % 4
        row = template.copy()
        row[column["call_id"]] = f"{i:016x}"
        row[column["model"]] = row[column["request_model"]] = MODELS[m]
        row[column["provider"]] = PROVIDERS[m]
        row[column["session_id"]] = f"s{i % 5000}"
        row[column["status"]] = "error" if i % 50 == 7 else "ok"
        row[column["input_tokens"]] = 200 + i % 1800
        row[column["output_tokens"]] = 20 + i % 400
        row[column["cached_input_tokens"]] = (i % 3) * 64
        row[column["duration_ms"]] = rnd.lognormvariate(6.5, 0.6)
        row[column["ttft_ms"]] = rnd.lognormvariate(5.0, 0.5)
        row[column["cost_usd"]] = 1e-6 * (1 + i % 997)
        row[column["timestamp_ns"]] = end_ns - (n - i) * step
        batch.append(row)
        if len(batch) == 50_000 or i == n - 1:
            conn.execute("BEGIN")
            conn.executemany(INSERT_SQL, batch)
            conn.execute("COMMIT")
            batch.clear()
    conn.execute("BEGIN")
    _rollup.rebuild(conn)  # what the writer keeps as it goes, built at once
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


async def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` awaits of ``fn()``, and its last answer."""
    best, answer = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = await fn()
        best = min(best, time.perf_counter() - started)
    return best, answer


def worst_error(fast: list[Any], exact: list[Any]) -> float:
    """The largest relative difference of any percentile between two lists of equal rows."""
    worst = 0.0
    for a, b in zip(fast, exact, strict=True):
        assert (a.key, a.calls, a.cost_usd) == (b.key, b.calls, b.cost_usd), (a, b)
        for name in ("p50_latency_ms", "p95_latency_ms", "p50_ttft_ms"):
            x, y = getattr(a, name), getattr(b, name)
            if y:
                worst = max(worst, abs(x - y) / y)
    return worst


async def main(quick: bool) -> None:
    n = 100_000 if quick else 1_000_000
    now = datetime.now(UTC).replace(microsecond=0)
    day, hour = now - timedelta(days=1), now - timedelta(hours=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reads.db"
        seconds = build(path, n, now)
        print(f"{n:,} calls written and rolled up in {seconds:.1f} s ({machine()})\n")
        reads = {
            "summary(by=model), last day": lambda s: s.summary(by="model", since=day),
            "timeseries(5m), last day": lambda s: s.timeseries(bucket="5m", since=day),
            "summary(by=model), last hour": lambda s: s.summary(by="model", since=hour),
            "timeseries(5m), last hour": lambda s: s.timeseries(bucket="5m", since=hour),
            "timeseries(1m, by=model), last hour": lambda s: s.timeseries(
                bucket="1m", by="model", since=hour
            ),
        }
        rows = []
        async with SQLiteStore(path) as store:
            for name, read in reads.items():
                fast, answer = await timed(lambda read=read: read(store), 3)
                # The previous approach: every call of the window ranked in SQL (exact), then the
                # same rule applied, so the answers can be compared row by row.
                limit = _base.EXACT_LIMIT
                _base.EXACT_LIMIT = 10**12
                try:
                    slow, exact = await timed(lambda read=read: read(store), 1)
                finally:
                    _base.EXACT_LIMIT = limit
                error = worst_error(answer, exact)
                rows.append(
                    (
                        name,
                        f"{sum(r.calls for r in answer):,}",
                        f"{fast * 1000:,.1f} ms",
                        f"{slow * 1000:,.0f} ms",
                        f"{slow / fast:,.0f}x",
                        f"{error:.3%}",
                    )
                )
        print(
            table(
                f"SQLiteStore reads over {n:,} calls (rollups vs raw rows ranked in SQL)",
                rows,
                ("read", "calls", "rollups", "baseline", "speed-up", "worst pct. error"),
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 calls")
    asyncio.run(main(parser.parse_args().quick))
