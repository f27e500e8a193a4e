"""SQLiteStore replay figures beside raw sqlite3 reads of the same rows, in the same run.

Replays 1,000,000 stored calls (``--quick``: 200,000) through ``store.replay()`` as LLMCall
objects and reports calls/s (target >= 200,000/s) and peak RSS over the baseline taken just
before the replay (target < 100 MB). Beside it: plain ``sqlite3`` fetching the same rows in the
same order as tuples, with no records built: the floor any SQLite-backed replay stands on.

The file is generated in a child process, so that generating it does not raise this process's
peak RSS. Run: ``.venv/bin/python benchmarks/bench_replay.py`` (``--quick`` for fewer calls).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine, peak_rss_mb, table
from bench_sqlite import load

from asynctelemetry import SQLiteStore


def generate(path: str, n: int) -> None:
    """Write ``n`` full calls to a new store file (run in a child process).

    Rows are 1,000 full calls encoded once and repeated with fresh ids and timestamps, so making
    the fixture takes seconds, not minutes; every row is still a complete, distinct call.
    """
    from bench_sqlite import full_call

    from asynctelemetry._stores._door import enter
    from asynctelemetry._stores.sqlite.schema import (
        _INDEXES,
        COLUMNS,
        INSERT_SQL,
        encode_call,
        prepare,
    )

    ts = COLUMNS.index("timestamp_ns")
    templates = [encode_call(enter(full_call(i))) for i in range(1000)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # a fixture: durability is not what is measured
    prepare(conn, path)
    for sql in _INDEXES:  # bulk load, then index: much faster than indexing row by row
        conn.execute(f"DROP INDEX {sql.split()[5]}")
    t0 = templates[0][ts]
    for start in range(0, n, 50_000):
        rows = [
            (f"{i:016x}", *t[1:ts], t0 + i * 1_003_000, *t[ts + 1 :])
            for i in range(start, min(n, start + 50_000))
            for t in (templates[i % 1000],)
        ]
        conn.execute("BEGIN")
        conn.executemany(INSERT_SQL, rows)
        conn.execute("COMMIT")
    for sql in _INDEXES:
        conn.execute(sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def raw_fetch(path: Path) -> tuple[int, float]:
    """(rows, seconds) for sqlite3 to fetch every row in replay order, 1000 at a time."""
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    cursor = conn.execute("SELECT * FROM calls ORDER BY timestamp_ns, id")
    count = 0
    while rows := cursor.fetchmany(1000):
        count += len(rows)
    elapsed = time.perf_counter() - started
    conn.close()
    return count, elapsed


async def store_replay(path: Path) -> tuple[int, float, float]:
    """(calls, seconds, peak RSS over baseline in MiB) for ``store.replay()`` of every call."""
    async with SQLiteStore(path) as store:
        baseline = peak_rss_mb()
        started = time.perf_counter()
        count = 0
        tokens = 0
        async for call in store.replay():
            count += 1
            tokens += call.output_tokens or 0  # touch each record, as a consumer would
        elapsed = time.perf_counter() - started
        grown = peak_rss_mb() - baseline
    return count, elapsed, grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 calls instead of 1,000,000")
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs of each path")
    parser.add_argument("--generate", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate[0], int(args.generate[1]))
        return
    n = 200_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replay.db"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(path), str(n)], check=True)
        made = time.perf_counter() - started
        # Alternate the two paths and keep the best of each: the machine may be shared. The
        # first replay's peak RSS is the one reported (later runs start from a higher peak).
        before = load()
        ours, ours_s, grown = asyncio.run(store_replay(path))
        raw, raw_s = raw_fetch(path)
        for _ in range(args.repeat - 1):
            ours_s = min(ours_s, asyncio.run(store_replay(path))[1])
            raw_s = min(raw_s, raw_fetch(path)[1])
    assert ours == raw == n, (ours, raw, n)
    print(
        f"{machine()}; {n:,} full calls ({path.name} generated in {made:.0f} s), "
        f"best of {args.repeat} alternating runs"
    )
    print(f"started at {before}; finished at {load()}")
    print()
    print(
        table(
            f"Replay of {n:,} stored calls",
            [
                ("raw sqlite3 fetch, tuples only", f"{raw / raw_s:,.0f}", "1.00", "", ""),
                (
                    "SQLiteStore.replay() -> LLMCall",
                    f"{ours / ours_s:,.0f}",
                    f"{(ours / ours_s) / (raw / raw_s):.2f}",
                    f"{grown:.1f} MiB",
                    ">= 200,000/s, < 100 MB",
                ),
            ],
            ("path", "calls/s", "ratio", "peak RSS over baseline", "target"),
        )
    )


if __name__ == "__main__":
    main()
