"""A SQLiteStore nobody closed: the process still exits, the queue is written while the loop
runs, and what could not be written is said to be lost, naming the store."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asynctelemetry import SQLiteStore
from tests.conftest import make_call

ROOT = Path(__file__).resolve().parents[2]
ROOT_ON_PATH = "import sys; sys.path.insert(0, {root!r})\n"


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a script in ``tmp_path`` with ResourceWarnings shown; bounded in time."""
    script = tmp_path / "script.py"
    script.write_text(ROOT_ON_PATH.format(root=str(ROOT)) + textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,  # a hang at exit fails here instead of blocking the suite
        check=False,
    )


def stored(path: Path) -> int:
    """Calls in the file, read with plain sqlite3."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


def test_unclosed_store_at_the_end_of_asyncio_run(tmp_path: Path) -> None:
    """A store kept in a global and never closed: asyncio.run's end writes its queue, the
    process exits, and the exit report names the store."""
    result = run_script(
        tmp_path,
        """
        import asyncio
        from asynctelemetry import SQLiteStore
        from tests.conftest import make_call

        store = SQLiteStore("calls.db", flush_interval=60)

        async def main():
            await store.add_many([make_call(i) for i in range(3)])

        asyncio.run(main())
        print("done", store.pending)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done 0\n"
    assert stored(tmp_path / "calls.db") == 3
    assert "ResourceWarning: SQLiteStore('calls.db'" in result.stderr
    assert "still open at exit without aclose(): nothing queued was lost" in result.stderr


def test_unclosed_store_whose_loop_never_ends(tmp_path: Path) -> None:
    """A loop left without shutting down cannot write: the process still exits, and the calls
    are reported lost, with their number and the store's name."""
    result = run_script(
        tmp_path,
        """
        import asyncio
        from asynctelemetry import SQLiteStore
        from tests.conftest import make_call

        store = SQLiteStore("calls.db", flush_interval=60)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(store.add_many([make_call(i) for i in range(3)]))
        print("done", store.pending)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done 3\n"
    assert stored(tmp_path / "calls.db") == 0
    lines = [line for line in result.stderr.splitlines() if "3 queued calls were lost" in line]
    assert any(line.startswith("asynctelemetry: SQLiteStore('calls.db'") for line in lines)
    assert any("ResourceWarning" in line for line in lines)


async def test_garbage_collected_open_store_wrote_its_queue_and_warns(tmp_path: Path) -> None:
    """A store dropped unclosed while the loop runs writes what it had queued, and its
    collection raises a ResourceWarning naming it."""
    path = tmp_path / "calls.db"
    store = SQLiteStore(path, flush_interval=0.01)
    await store.add_many([make_call(i) for i in range(2)])
    del store
    for _ in range(200):  # the writer keeps the store alive until its queue is written
        if stored(path) == 2:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    with pytest.warns(ResourceWarning, match=r"SQLiteStore\(.*calls\.db.*nothing queued was lost"):
        gc.collect()
    assert stored(path) == 2


def test_a_store_collected_with_calls_queued_logs_on_the_loop_not_in_the_collector(
    tmp_path: Path,
) -> None:
    """#23's rule for finalizers: a store garbage-collected with calls still queued says they
    were lost, but the log line (a handler writes and takes locks) is written on the next turn
    of the loop, not inside the garbage collection."""
    result = run_script(
        tmp_path,
        """
        import asyncio, gc, logging
        from asynctelemetry import SQLiteStore
        from tests.conftest import make_call

        collecting = False


        def watch(phase, info):
            global collecting
            collecting = phase == "start"


        gc.callbacks.append(watch)


        class Seen(logging.Handler):
            def emit(self, record):
                if "were lost" in record.getMessage():
                    print("logged", "in the collection" if collecting else "on the loop")


        logging.getLogger("asynctelemetry").addHandler(Seen())
        first = asyncio.new_event_loop()
        store = SQLiteStore("calls.db", flush_interval=60)
        first.run_until_complete(store.add_many([make_call(i) for i in range(3)]))
        first.close()  # its writer will never run again: the queue cannot be written


        async def main():
            global store, first
            del store, first
            gc.collect()
            await asyncio.sleep(0.01)
            print("done")


        asyncio.run(main())
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "logged on the loop" in result.stdout, result.stdout
    assert "in the collection" not in result.stdout
