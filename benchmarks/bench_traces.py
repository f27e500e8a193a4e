"""SQLiteStore trace reads: ``get_trace`` and a page of ``traces(...)`` over calls and steps.

One SQLite file holds N traces over the last day, each an agent run of one LLM call and three
steps (an agent, a tool, a retrieval): N calls and 3N steps. Measured through the public API of
an open ``SQLiteStore`` (best of 3): ``get_trace`` of one trace, ``traces(limit=50)`` (the
newest page), and ``traces(user_id=..., limit=50)``. Beside each, in the same run, the baseline:
a plain indexed query of the same size (``store.trace(trace_id)``: the calls of one trace by
their index; ``query(limit=50, newest_first=True)``: the newest page of calls). The goal of the
issue is under 50 ms for both reads over 1,000,000 calls and 3,000,000 steps.

The file is built fast and thrown away: rows encoded by the store's own codecs and inserted with
``executemany``. Nothing is cached in the repository.

Run: ``.venv/bin/python benchmarks/bench_traces.py`` (``--quick``: 20,000 traces; default
200,000; ``--traces N``).
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

from _common import machine, table

from asynctelemetry import LLMCall, SQLiteStore, TraceSpan
from asynctelemetry._stores.sqlite.schema import (
    INSERT_SPAN_SQL,
    INSERT_SQL,
    encode_call,
    encode_span,
    prepare,
)

KINDS = (("agent", "planner"), ("tool", "search"), ("retrieval", "docs"))


def build(path: Path, n: int, end: datetime) -> float:
    """Write ``n`` traces (a call and three steps each) over the day before ``end``."""
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away file
    prepare(conn, str(path))
    step = timedelta(seconds=86_400 / n)
    first = end - timedelta(days=1)
    calls: list[Any] = []
    spans: list[Any] = []
    for i in range(n):
        trace = f"{i:032x}"
        at = first + step * i
        root = f"{i:015x}a"
        calls.append(
            encode_call(
                LLMCall.model_construct(
                    call_id=f"{i:015x}c", timestamp=at + timedelta(milliseconds=5),
                    model="gpt-4o", request_model="gpt-4o", provider="openai",
                    operation="chat", source="collector", trace_id=trace,
                    span_id=f"{i:015x}c", parent_span_id=root, status="ok",
                    input_tokens=500, output_tokens=50, duration_ms=400.0,
                    cost_usd=0.001, user_id=f"u{i % 1000}", agent_name="planner", tags=(),
                    attributes={}, tool_calls=0,
                )
            )
        )  # fmt: skip
        for k, (kind, name) in enumerate(KINDS):
            spans.append(
                encode_span(
                    TraceSpan.model_construct(
                        span_id=root if k == 0 else f"{i:015x}{k}", trace_id=trace,
                        parent_span_id=None if k == 0 else root, name=name, kind=kind,
                        timestamp=at + timedelta(milliseconds=k), duration_ms=600.0 - 100 * k,
                        status="ok", source="collector", user_id=f"u{i % 1000}",
                        agent_name="planner", tool_name=name if kind == "tool" else None,
                        attributes={}, error_type=None, error_message=None, service_name=None,
                        session_id=None,
                    )
                )
            )  # fmt: skip
        if len(calls) == 20_000 or i == n - 1:
            conn.execute("BEGIN")
            conn.executemany(INSERT_SQL, calls)
            conn.executemany(INSERT_SPAN_SQL, spans)
            conn.execute("COMMIT")
            calls.clear()
            spans.clear()
    conn.close()
    return time.perf_counter() - started


async def best(fn: Any, repeat: int = 3) -> float:
    """The best of ``repeat`` runs of ``await fn()``, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


async def measure(path: Path, n: int) -> list[tuple[Any, ...]]:
    async with SQLiteStore(path, read_only=True) as store:
        trace = f"{n // 2:032x}"
        found = await store.get_trace(trace)
        assert found is not None and found.llm_calls == 1 and len(found.spans) == 3
        page = await store.traces(limit=50)
        assert len(page) == 50 and page[0].trace_id == f"{n - 1:032x}"
        rows = [
            (
                "get_trace(one trace)",
                f"{await best(lambda: store.get_trace(trace)):.2f}",
                f"{await best(lambda: store.trace(trace)):.2f}",
                "store.trace(trace_id)",
            ),
            (
                "traces(limit=50)",
                f"{await best(lambda: store.traces(limit=50)):.1f}",
                f"{await best(lambda: store.query(limit=50, newest_first=True)):.2f}",
                "query(limit=50, newest_first=True)",
            ),
            (
                "traces(user_id=..., limit=50)",
                f"{await best(lambda: store.traces(user_id='u7', limit=50)):.1f}",
                f"{await best(lambda: store.query(limit=50, newest_first=True)):.2f}",
                "query(limit=50, newest_first=True)",
            ),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 traces")
    parser.add_argument("--traces", type=int, default=None, help="how many traces")
    args = parser.parse_args()
    n = args.traces or (20_000 if args.quick else 200_000)
    print(machine())
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "traces.db"
        seconds = build(path, n, datetime.now(UTC))
        rows = asyncio.run(measure(path, n))
    print(
        table(
            f"Trace reads over {n:,} calls and {3 * n:,} steps (SQLite, ms, best of 3)",
            rows,
            ("read", "ms", "baseline ms", "baseline"),
        )
    )
    print(f"built in {seconds:.0f} s")


if __name__ == "__main__":
    main()
