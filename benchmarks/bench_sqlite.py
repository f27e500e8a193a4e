"""SQLiteStore write figures beside raw sqlite3 in the same run.

1. Sustained ``add_many`` rate (calls of 512 full LLMCall rows, until ``flush()`` returns; the store
   commits up to its default ``batch_size`` per transaction) beside raw ``sqlite3.executemany`` of
   the same rows, already encoded, into the same schema with the same pragmas and transactions of
   the same size. Target ratio >= 0.6.
2. Cardinality: the same number of calls written by ``add_many`` + ``flush``, once as one session
   of one model (calls 1 ms apart), once as 5,000 sessions and 50 models spread over a day (the
   rollups then touch many cells per batch). Target: the second as fast as the first (>= 0.9).
3. Event-loop lag (p50/p99/max) while an app writes 200,000 calls (a task sleeping 1 ms records
   how late it wakes). Target p99 < 5 ms. Beside it, in the same run and for the same time: the
   lag of an idle loop, and of a loop beside a thread that burns CPU without holding the GIL
   (``hashlib`` on a large buffer). On a machine shared with other processes the second is the
   floor any background writer thread sits on: the loop then waits for a core, not for the GIL.

Run: ``.venv/bin/python benchmarks/bench_sqlite.py`` (``--quick`` for smaller sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import LagMonitor, machine, table

from asynctelemetry import LLMCall, SQLiteStore
from asynctelemetry._stores._door import enter
from asynctelemetry._stores.sqlite.schema import INSERT_SQL, encode_call, prepare
from asynctelemetry._stores.sqlite.store import SQLITE_QUEUE

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODELS = ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini")
PROVIDERS = ("openai", "anthropic", "google", "openai")
BATCH = 512
#: Calls per transaction: the store's default ``batch_size``, for both sides.
TRANSACTION: int = SQLITE_QUEUE.batch_size  # the store's default batch


def full_call(i: int) -> LLMCall:
    """A call with every field set (a quarter of them with attributes), as the collector makes."""
    m = i % 4
    return LLMCall.trusted(
        {
            "call_id": f"{i:016x}-{(i * 7919) & 0xFFFFFFFF:08x}",
            "timestamp": T0 + timedelta(microseconds=i * 1003),
            "model": MODELS[m],
            "request_model": MODELS[m],
            "provider": PROVIDERS[m],
            "operation": "stream" if i % 5 == 0 else "chat",
            "service_name": "bench-app",
            "source": "collector",
            "trace_id": f"{i:032x}",
            "span_id": f"{i:016x}",
            "parent_span_id": f"{i + 1:016x}" if i % 3 == 0 else None,
            "session_id": f"session-{i % 97}",
            "route_name": f"route-{i % 5}",
            "is_streaming": i % 5 == 0,
            "status": "error" if i % 17 == 0 else "ok",
            "status_code": 429 if i % 17 == 0 else 200,
            "error_type": "RateLimitError" if i % 17 == 0 else None,
            "input_tokens": 500 + i % 1000,
            "output_tokens": 50 + i % 300,
            "total_tokens": 550 + i % 1000 + i % 300,
            "cached_input_tokens": i % 256,
            "cache_creation_tokens": 0,
            "reasoning_tokens": i % 64,
            "duration_ms": 200.0 + (i % 5000) * 0.37,
            "ttft_ms": 20.0 + (i % 300) * 0.11,
            "cache_hit": "miss",
            "tool_calls": i % 3,
            "routing_strategy": "cost",
            "routing_reason": "cheapest",
            "cost_usd": (i % 1000) * 1e-5,
            "price_version": "genai-prices 0.0.30",
            "attributes": {"gen_ai.system": "openai", "retry": i % 3, "temperature": 0.7}
            if i % 4 == 0
            else {},
        }
    )


def spread_call(i: int, n: int, *, sessions: int, models: int, seconds: float) -> LLMCall:
    """:func:`full_call` ``i`` of ``n``, in one of ``sessions`` sessions and ``models`` models,
    the ``n`` calls spread evenly over ``seconds``."""
    model = f"model-{i % models}"
    return full_call(i).model_copy(
        update={
            "session_id": f"session-{i % sessions}",
            "model": model,
            "request_model": model,
            "timestamp": T0 + timedelta(microseconds=int(i * seconds * 1e6 / n)),
        }
    )


def raw_executemany(path: Path, rows: list[tuple[object, ...]]) -> float:
    """Seconds for plain sqlite3 to insert ``rows`` in transactions of the store's default
    batch size (same schema)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    prepare(conn, str(path))
    started = time.perf_counter()
    for start in range(0, len(rows), TRANSACTION):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_SQL, rows[start : start + TRANSACTION])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def store_add_many(path: Path, calls: list[LLMCall]) -> float:
    """Seconds from the first add_many until flush() returns, batches of BATCH."""
    async with SQLiteStore(path) as store:
        started = time.perf_counter()
        for start in range(0, len(calls), BATCH):
            await store.add_many(calls[start : start + BATCH])
        await store.flush()
        elapsed = time.perf_counter() - started
        assert await store.count() == len(calls)
    return elapsed


def load() -> str:
    """The machine's load averages (1, 5, 15 min), to print beside every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def lag_figures(lags: list[float]) -> tuple[str, str, str]:
    """p50, p99 and max of ``lags`` (seconds) in ms, nearest rank."""
    ordered = sorted(lags) or [0.0]

    def rank(p: float) -> float:
        return ordered[max(0, -int(-p * len(ordered) // 100) - 1)] * 1000

    return f"{rank(50):.2f} ms", f"{rank(99):.2f} ms", f"{ordered[-1] * 1000:.2f} ms"


async def lag_while_writing(path: Path, calls: list[LLMCall]) -> tuple[list[float], float]:
    """(lags, seconds) while an app adds ``calls`` in batches of BATCH."""
    async with SQLiteStore(path) as store:
        with LagMonitor() as monitor:
            started = time.perf_counter()
            for start in range(0, len(calls), BATCH):
                await store.add_many(calls[start : start + BATCH])
                await asyncio.sleep(0)  # an app does other work between batches
            await store.flush()
            elapsed = time.perf_counter() - started
    return monitor.lags, elapsed


async def lag_floor(seconds: float, *, busy_thread: bool) -> list[float]:
    """Lags of a loop doing nothing for ``seconds``, beside a GIL-free busy thread or not."""
    stop = threading.Event()
    data = b"x" * 4_000_000

    def burn() -> None:
        while not stop.is_set():
            hashlib.sha256(data).digest()  # releases the GIL for buffers over 2 KiB

    thread = threading.Thread(target=burn) if busy_thread else None
    if thread is not None:
        thread.start()
    try:
        with LagMonitor() as monitor:
            await asyncio.sleep(seconds)
    finally:
        stop.set()
        if thread is not None:
            thread.join()
    return monitor.lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 calls instead of 200,000")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each path")
    args = parser.parse_args()
    n = 50_000 if args.quick else 200_000
    calls = [full_call(i) for i in range(n)]
    rows = [encode_call(enter(c)) for c in calls]
    raws: list[float] = []
    stores: list[float] = []
    few = [spread_call(i, n, sessions=1, models=1, seconds=n / 1000) for i in range(n)]
    many = [spread_call(i, n, sessions=5000, models=50, seconds=86400) for i in range(n)]
    ones: list[float] = []
    manys: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Alternate the two paths and keep the best of each: the machine may be shared.
        for rep in range(args.repeat):
            raws.append(raw_executemany(Path(tmp) / f"raw{rep}.db", rows))
            stores.append(asyncio.run(store_add_many(Path(tmp) / f"store{rep}.db", calls)))
            ones.append(asyncio.run(store_add_many(Path(tmp) / f"one{rep}.db", few)))
            manys.append(asyncio.run(store_add_many(Path(tmp) / f"many{rep}.db", many)))
        write_load = load()
        lags, lag_run = asyncio.run(lag_while_writing(Path(tmp) / "lag.db", calls))
        lag_load = load()
        floor_busy = asyncio.run(lag_floor(min(lag_run, 10.0), busy_thread=True))
        floor_idle = asyncio.run(lag_floor(min(lag_run, 10.0), busy_thread=False))
    raw, ours = min(raws), min(stores)
    print(
        f"{machine()}; {n:,} calls, add_many of {BATCH}, transactions of {TRANSACTION:,}, "
        "WAL, synchronous=NORMAL, "
        f"best of {args.repeat} alternating runs"
    )
    print(f"writes measured at {write_load}; lag at {lag_load}; finished at {load()}")
    print()
    print(
        table(
            "Sustained writes (calls/s)",
            [
                ("raw sqlite3.executemany (pre-encoded rows)", f"{n / raw:,.0f}", "1.00", ""),
                ("SQLiteStore.add_many + flush", f"{n / ours:,.0f}", f"{raw / ours:.2f}", ">= 0.6"),
            ],
            ("path", "calls/s", "ratio", "target"),
        )
    )
    print()
    one, spread = min(ones), min(manys)
    print(
        table(
            "Cardinality: SQLiteStore.add_many + flush (calls/s)",
            [
                ("1 session, 1 model, calls 1 ms apart", f"{n / one:,.0f}", "1.00", ""),
                (
                    "5,000 sessions, 50 models, over a day",
                    f"{n / spread:,.0f}",
                    f"{one / spread:.2f}",
                    ">= 0.9",
                ),
            ],
            ("calls", "calls/s", "ratio", "target"),
        )
    )
    print()
    print(
        table(
            f"Event-loop lag (1 ms ticker) while writing {n:,} calls, and its floors",
            [
                ("idle loop (same machine, same run)", *lag_figures(floor_idle), ""),
                ("loop beside a GIL-free busy thread", *lag_figures(floor_busy), ""),
                ("loop while SQLiteStore writes", *lag_figures(lags), "p99 < 5 ms"),
            ],
            ("loop", "p50", "p99", "max", "target"),
        )
    )
    print(f"(lag run wrote {n / lag_run:,.0f} calls/s with the 1 ms ticker running)")


if __name__ == "__main__":
    main()
