"""SQLiteStore under faults, with real files and real processes: locks, disk full, kill -9."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from asynctelemetry import SQLiteStore, StoreError
from tests.conftest import make_call

ROOT = Path(__file__).resolve().parents[2]

#: A writer process: ``batches`` batches of ``per`` calls, flushing and printing after each one.
WRITER = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from asynctelemetry import LLMCall, SQLiteStore

async def main(path, prefix, batches, per):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with SQLiteStore(path, busy_timeout=10.0, flush_interval=0.001) as store:
        for b in range(batches):
            await store.add_many([
                LLMCall(call_id=f"{prefix}-{b}-{i}", timestamp=t0 + timedelta(milliseconds=i),
                        model="m", attributes={"b": b, "i": i})
                for i in range(per)
            ])
            await store.flush()
            print(b, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""

#: Holds the write lock of a file for a while, then commits.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


async def spawn(script: str, *args: object) -> asyncio.subprocess.Process:
    """Start ``script`` in a fresh interpreter that imports this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )


async def read_line(proc: asyncio.subprocess.Process) -> str:
    """The next line the process prints (within 20 s)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line, "the process ended early"
    return line.decode().strip()


def integrity(path: Path) -> str:
    """PRAGMA integrity_check of ``path``."""
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


async def test_write_lock_held_by_another_process_is_retried(tmp_path: Path) -> None:
    """While another process holds the write lock, batches retry with backoff; nothing is lost."""
    path = tmp_path / "calls.db"
    async with SQLiteStore(path, busy_timeout=0.02) as store:
        locker = await spawn(LOCKER, path, 0.6)
        assert await read_line(locker) == "locked"
        await store.add_many([make_call(i) for i in range(100)])
        errors = 0
        while True:
            try:
                await store.flush()
                break
            except StoreError as exc:
                assert "locked" in str(exc)
                errors += 1
        assert await locker.wait() == 0
        assert errors >= 1 and store.stats.queue.retries >= 1
        assert await store.count() == 100
        assert store.stats.queue.dropped_failed == 0


async def fill_until_full(store: SQLiteStore) -> None:
    """Cap the file at its current size (max_page_count) on the store's writer connection."""
    assert store._writer is not None  # the cap is per connection: it must be the writer's
    (pages,) = (await store._writer.execute_fetchall("PRAGMA page_count"))[0]  # type: ignore[index]
    await store._writer.execute(f"PRAGMA max_page_count = {pages}")


async def test_disk_full_reaches_flush_and_the_log_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Disk full: flush() raises StoreError, the log says so, calls stay queued and land later."""
    caplog.set_level(logging.WARNING, logger="asynctelemetry")
    async with SQLiteStore(tmp_path / "calls.db", batch_size=200) as store:
        await store.add_many([make_call(i) for i in range(10)])
        await store.flush()
        await fill_until_full(store)
        await store.add_many([make_call(i) for i in range(10, 2010)])
        with pytest.raises(StoreError, match="full"):
            await store.flush()
        assert "full" in caplog.text and "stay queued" in caplog.text
        assert store.pending > 0 and store.stats.queue.dropped_failed == 0
        assert store._writer is not None
        await store._writer.execute("PRAGMA max_page_count = 1073741823")
        await asyncio.wait_for(store.flush(), 30)
        assert await store.count() == 2010
        assert store.pending == 0


async def test_disk_full_at_close_raises_store_error(tmp_path: Path) -> None:
    """aclose() with calls it cannot write raises StoreError naming how many were lost."""
    store = SQLiteStore(tmp_path / "calls.db", close_timeout=0.3)
    await store.open()
    await fill_until_full(store)
    await store.add_many([make_call(i) for i in range(500)])
    with pytest.raises(StoreError, match=r"500 calls could not be written.*full"):
        await store.aclose()
    await store.aclose()  # idempotent, quiet
    assert integrity(tmp_path / "calls.db") == "ok"


async def test_kill_9_keeps_every_flushed_call(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream loses nothing it had flushed; the file is sound."""
    path = tmp_path / "calls.db"
    writer = await spawn(WRITER, path, "w", 10_000, 200)
    flushed = [int(await read_line(writer)) for _ in range(5)]
    writer.send_signal(signal.SIGKILL)
    await writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert integrity(path) == "ok"
    async with SQLiteStore(path) as store:
        assert await store.count() >= 200 * (flushed[-1] + 1)
        for b in flushed:
            ids = {c.call_id for c in await store.query(limit=None) if c.attributes["b"] == b}
            assert ids == {f"w-{b}-{i}" for i in range(200)}


async def test_two_processes_and_a_reader_share_one_file(tmp_path: Path) -> None:
    """Two writer processes fill one file while this process reads it; every call lands."""
    path = tmp_path / "calls.db"
    async with SQLiteStore(path):
        pass  # create the schema first, so both writers find it
    writers = [await spawn(WRITER, path, name, 20, 100) for name in ("a", "b")]
    seen: list[int] = []
    async with SQLiteStore(path) as reader:
        while any(w.returncode is None for w in writers):
            seen.append(await reader.count())
            # Two reads, two snapshots: the writers may commit between the count and the query.
            assert min(50, seen[-1]) <= len(await reader.query(limit=50, newest_first=True)) <= 50
            await asyncio.sleep(0.02)
        for w in writers:
            assert await w.wait() == 0
            assert w.stdout is not None
            assert (await w.stdout.read()).split()[-1:] == [b"19"]
        assert await reader.count() == 4000
        ids = {c.call_id async for c in reader.replay()}
    assert ids == {f"{n}-{b}-{i}" for n in "ab" for b in range(20) for i in range(100)}
    assert seen == sorted(seen)
    assert integrity(path) == "ok"
