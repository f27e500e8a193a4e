"""Retention for :class:`SQLiteStore`: ``max_age`` and ``max_rows``, enforced in small batches.

A pass deletes what is past the bounds, oldest first by timestamp (ties by insertion order), in
transactions of at most ``batch`` rows, each its own ``BEGIN IMMEDIATE`` on the store's writer
connection: they queue in the same thread as the insert batches, so an insert waits for at most
one delete batch, and other processes' writers wait at most that long for the lock. Between
batches the pass yields to the event loop. Readers are never blocked (WAL).

After deleting, a pass gives the freed pages back to the file system with ``PRAGMA
incremental_vacuum`` (new files are created with ``auto_vacuum = INCREMENTAL``), at most
:data:`VACUUM_PAGES` pages per transaction, then runs a
``PASSIVE`` WAL checkpoint so the database file shrinks on disk without waiting for readers.
Files created before that keep ``auto_vacuum = NONE``: deleted pages are reused by later inserts
(the file stops growing) but not returned; ``SQLiteStore.vacuum()`` converts such a file once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from .. import _bounds
from . import rollup as _rollup
from . import sessions as _sessions
from .schema import to_ns
from .writer import in_transaction

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Awaitable, Callable

__all__ = ["Retention"]


#: Pages returned to the file system per ``incremental_vacuum`` transaction (4 MiB of 4 KiB).
VACUUM_PAGES: Final = 1024


class Retention(_bounds.Retention):
    """The bounds of one SQLiteStore, its passes and counters.

    Args:
        write: runs ``fn(sqlite3_connection, *args)`` on the store's writer connection, mapping
            SQLite errors to :class:`StoreError`.
        max_age: calls older than this (by their timestamp, against the wall clock) are deleted.
        max_rows: at most this many calls are kept (the newest).
        interval: seconds between background passes.
        batch: most rows deleted per transaction.
    """

    owner = "SQLiteStore"

    def __init__(
        self,
        write: Callable[..., Awaitable[Any]],
        *,
        max_age: timedelta | None,
        max_rows: int | None,
        interval: float,
        batch: int,
    ) -> None:
        super().__init__(max_age=max_age, max_rows=max_rows, interval=interval, batch=batch)
        self._write = write
        #: Whether the file gives freed pages back (``auto_vacuum = INCREMENTAL``).
        self.incremental = False
        #: Pages given back to the file system since the store opened.
        self.vacuumed_pages = 0

    async def run_pass(self) -> int:
        """Delete what is past the bounds, give the space back; return the calls deleted."""
        async with self._lock:  # two passes at once could each delete the same excess
            deleted = 0
            if self.max_age is not None:
                cutoff = to_ns(datetime.now(UTC) - self.max_age)
                deleted += await self._delete_while(_delete_older, cutoff)
            if self.max_rows is not None:
                excess: int = await self._write(_count) - self.max_rows
                while excess > 0:
                    n = await self._delete(_delete_oldest, min(self.batch, excess))
                    if n == 0:
                        break
                    deleted += n
                    excess -= n
                    await asyncio.sleep(0)
            steps = await self._trim_spans()
            if (deleted or steps) and self.incremental:
                await self._vacuum()
            self.passes += 1
            return deleted

    async def _trim_spans(self) -> int:
        """The same bounds for the steps of traces: older than ``max_age``, past the newest
        ``max_rows`` steps. Counted in :attr:`deleted_spans`."""
        deleted = 0
        if self.max_age is not None:
            cutoff = to_ns(datetime.now(UTC) - self.max_age)
            while True:
                n = await self._write(in_transaction, _delete_spans_older, cutoff, self.batch)
                deleted += n
                if n < self.batch:
                    break
                await asyncio.sleep(0)
        if self.max_rows is not None:
            excess: int = await self._write(_count_spans) - self.max_rows
            while excess > 0:
                n = await self._write(in_transaction, _delete_spans_oldest, min(self.batch, excess))
                if n == 0:
                    break
                deleted += n
                excess -= n
                await asyncio.sleep(0)
        self.deleted_spans += deleted
        return deleted

    async def _delete_while(self, fn: Callable[..., int], *args: Any) -> int:
        deleted = 0
        while True:
            n = await self._delete(fn, *args, self.batch)
            deleted += n
            if n < self.batch:
                return deleted
            await asyncio.sleep(0)  # let queued inserts and other tasks in between batches

    async def _delete(self, fn: Callable[..., int], *args: Any) -> int:
        n: int = await self._write(in_transaction, fn, *args)
        self.deleted += n
        return n

    async def _vacuum(self) -> None:
        while True:
            freed, left = await self._write(_vacuum_step, VACUUM_PAGES)
            self.vacuumed_pages += freed
            if left == 0 or freed == 0:
                break
            await asyncio.sleep(0)
        await self._write(_checkpoint)


# -- run in the writer connection's thread ------------------------------------------------------
def _delete(conn: sqlite3.Connection, ids_sql: str, params: tuple[Any, ...]) -> int:
    """Delete the calls ``ids_sql`` selects (a deterministic order and limit: the same rows
    twice in one transaction), taking them out of the rollups first."""
    _rollup.forget(conn, ids_sql, params)
    _sessions.forget(conn, ids_sql, params)
    return conn.execute(f"DELETE FROM calls WHERE id IN ({ids_sql})", params).rowcount


def _delete_older(conn: sqlite3.Connection, cutoff_ns: int, limit: int) -> int:
    return _delete(
        conn,
        "SELECT id FROM calls WHERE timestamp_ns < ? ORDER BY timestamp_ns, id LIMIT ?",
        (cutoff_ns, limit),
    )


def _delete_oldest(conn: sqlite3.Connection, limit: int) -> int:
    return _delete(conn, "SELECT id FROM calls ORDER BY timestamp_ns, id LIMIT ?", (limit,))


def _delete_spans_older(conn: sqlite3.Connection, cutoff_ns: int, limit: int) -> int:
    return conn.execute(
        "DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE timestamp_ns < ? "
        "ORDER BY timestamp_ns, id LIMIT ?)",
        (cutoff_ns, limit),
    ).rowcount


def _delete_spans_oldest(conn: sqlite3.Connection, limit: int) -> int:
    return conn.execute(
        "DELETE FROM spans WHERE id IN (SELECT id FROM spans ORDER BY timestamp_ns, id LIMIT ?)",
        (limit,),
    ).rowcount


def _count_spans(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


def _vacuum_step(conn: sqlite3.Connection, pages: int) -> tuple[int, int]:
    """Free up to ``pages`` pages (one transaction); return (pages freed, pages still free)."""
    (before,) = conn.execute("PRAGMA freelist_count").fetchone()
    # PRAGMA takes no parameters; ``pages`` is our own int. fetchall(): it frees a page a step.
    conn.execute(f"PRAGMA incremental_vacuum({int(pages):d})").fetchall()
    (after,) = conn.execute("PRAGMA freelist_count").fetchone()
    return before - after, after


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def auto_vacuum_mode(conn: sqlite3.Connection) -> int:
    """The file's ``auto_vacuum`` (0 none, 1 full, 2 incremental)."""
    return int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])


def vacuum_into_incremental(conn: sqlite3.Connection) -> None:
    """Switch the file to incremental auto-vacuum and rebuild it (``VACUUM``: exclusive, slow)."""
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("VACUUM")
