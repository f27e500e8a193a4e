"""SQLiteStore under retention: file size and read latency during a steady ingest (issue 8).

Three runs of the same length and the same steady ingest (full LLMCall rows, a batch every 10 ms),
side by side: no retention (the baseline), ``max_rows``, and ``max_age``. While each runs, a
reader asks for the newest 50 calls every 10 ms (``query(limit=50, newest_first=True)``) and its
latency is recorded; the file's size (database + WAL) is sampled every 0.25 s. Reported: p50,
p99 and max read latency, the largest and final file size, calls kept, and what retention
deleted and gave back.

Run: ``.venv/bin/python benchmarks/bench_retention.py`` (``--quick`` for 5 s runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine, table
from bench_sqlite import full_call, lag_figures, load

from asynctelemetry import SQLiteStore

TICK = 0.01


@dataclass
class Run:
    """What one run measured."""

    name: str
    written: int = 0
    kept: int = 0
    deleted: int = 0
    vacuumed_pages: int = 0
    passes: int = 0
    reads: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    final_db: int = 0
    final_wal: int = 0
    load: str = ""


def _sizes(path: Path) -> tuple[int, int]:
    """(database, WAL) sizes in bytes."""
    out = []
    for p in (path, Path(f"{path}-wal")):
        try:
            out.append(p.stat().st_size)
        except FileNotFoundError:
            out.append(0)
    return out[0], out[1]


def _size(path: Path) -> int:
    return sum(_sizes(path))


async def run(name: str, path: Path, seconds: float, rate: int, **retention: Any) -> Run:
    """Ingest ``rate`` calls/s for ``seconds`` while reading and sampling the file's size."""
    result = Run(name)
    per_tick = max(1, int(rate * TICK))
    templates = [full_call(i) for i in range(1000)]
    async with SQLiteStore(path, **retention) as store:

        async def reader() -> None:
            while True:
                started = time.perf_counter()
                await store.query(limit=50, newest_first=True)
                result.reads.append(time.perf_counter() - started)
                await asyncio.sleep(TICK)

        async def sizes() -> None:
            while True:
                result.sizes.append(await asyncio.to_thread(_size, path))
                await asyncio.sleep(0.25)

        tasks = [asyncio.create_task(reader()), asyncio.create_task(sizes())]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        next_tick = loop.time()
        i = 0
        try:
            while loop.time() < deadline:
                now = datetime.now(UTC)
                batch = [
                    templates[(i + k) % 1000].model_copy(
                        update={"call_id": f"c{i + k:09d}", "timestamp": now}
                    )
                    for k in range(per_tick)
                ]
                i += per_tick
                await store.add_many(batch)
                next_tick += TICK
                await asyncio.sleep(max(0.0, next_tick - loop.time()))
            await store.flush()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        result.written = i
        result.kept = await store.count()
        result.deleted = store.retention.deleted
        result.vacuumed_pages = store.retention.vacuumed_pages
        result.passes = store.retention.passes
        result.final_db, result.final_wal = _sizes(path)  # before close checkpoints the WAL
    result.sizes.append(_size(path))
    result.load = load()
    return result


def mib(n: int) -> str:
    """Bytes as MiB."""
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s runs instead of 15 s")
    parser.add_argument("--rate", type=int, default=5000, help="calls/s ingested (default 5000)")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 15.0
    keep_s = 2.0 if args.quick else 5.0
    max_rows = int(args.rate * keep_s)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in (
            ("no retention", {}),
            (f"max_rows={max_rows:,}", {"max_rows": max_rows}),
            (f"max_age={keep_s:g}s", {"max_age": keep_s}),
        ):
            path = Path(tmp) / f"{len(runs)}.db"
            runs.append(asyncio.run(run(name, path, seconds, args.rate, **options)))
    print(
        f"{machine()}; {seconds:g} s of steady ingest at {args.rate:,} calls/s per run "
        f"(full rows, a batch every {TICK * 1000:g} ms), retention_interval=1 s, "
        f"retention_batch=1000"
    )
    print("load average after each run: " + "; ".join(f"{r.name}: {r.load}" for r in runs))
    print()
    print(
        table(
            "Read latency: query(limit=50, newest_first=True) every 10 ms during the ingest",
            [(r.name, len(r.reads), *lag_figures(r.reads)) for r in runs],
            ("store", "reads", "p50", "p99", "max"),
        )
    )
    print()
    base = runs[0]
    print(
        table(
            "File size (database + WAL) and rows",
            [
                (
                    r.name,
                    f"{r.written:,}",
                    f"{r.kept:,}",
                    f"{r.deleted:,}",
                    f"{r.vacuumed_pages:,}",
                    r.passes,
                    mib(max(r.sizes)),
                    f"{mib(r.final_db)} + {mib(r.final_wal)}",
                    f"{r.final_db / base.final_db:.2f}",
                )
                for r in runs
            ],
            (
                "store",
                "written",
                "kept",
                "deleted",
                "pages vacuumed",
                "passes",
                "largest db+WAL",
                "at the end: db + WAL",
                "db vs none",
            ),
        )
    )
    print(f"finished at {load()}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
