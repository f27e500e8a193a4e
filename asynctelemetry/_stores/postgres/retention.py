"""Retention and partition upkeep for :class:`PostgresStore`.

``max_age`` never deletes rows: a day's partition is detached (``DETACH PARTITION …
CONCURRENTLY``: reads and writes of ``calls`` go on meanwhile) and dropped once its whole day is
older than ``max_age``, so no index bloats and nothing needs ``VACUUM``. The bound is therefore
kept to the day: a call stays readable until every call of its UTC day is past ``max_age``.

``max_rows`` keeps the newest calls: whole partitions go while the excess covers them; the rest
of the excess is deleted from the oldest partition, oldest first (by ``ts``, then ``id``), in
transactions of at most ``batch`` rows. A pass takes a session advisory lock, so two processes
sharing a database never both trim it; the one that finds the lock taken skips its pass.

Every partition change is serialised with every writer: a writer's transaction holds the
partition lock (``LOCK_PARTITIONS``) shared, and each change — creating a day, detaching and
dropping one (with its rollups), deleting the oldest rows — holds it exclusively. So a late call
for the day being dropped waits for the drop to finish, then finds no partition and makes the
day again (it is older than ``max_age``, and goes at the next pass); it never lands in a table
about to be dropped, and the rollups always count what the table holds. A partition is counted
and judged under the lock, so the calls written meanwhile are never dropped uncounted.

Each pass also creates the partitions of the coming days, so writers rarely wait on one.

The rollups follow: rows deleted one by one leave them in the deleting transaction; a dropped
day's periods are deleted between its detach and its drop (a process that dies in that moment
leaves them to the next pass of retention over that day, if a call of it arrives again).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from .._bounds import Retention
from . import rollup as _pg_rollup
from . import sessions as _pg_sessions
from .schema import LOCK_PARTITIONS, ensure_partitions, existing_partitions

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    import asyncpg

__all__ = ["PgRetention"]

_LOCK_RETENTION: Final = (0x61746C6D, 3)


class PgRetention(Retention):
    """The retention bounds of one PostgresStore, its passes and counters.

    Args:
        connection: an async context manager that lends a pool connection.
        max_age: whole days of calls older than this go (their partitions are dropped).
        max_rows: at most this many calls are kept (the newest).
        interval: seconds between background passes.
        batch: most rows one ``max_rows`` delete removes.
        ahead: days of partitions created ahead of today.
        known: the store's set of days whose partitions exist (kept in step).
    """

    owner = "PostgresStore"

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]],
        *,
        max_age: timedelta | None,
        max_rows: int | None,
        interval: float,
        batch: int,
        ahead: int,
        known: set[date],
    ) -> None:
        super().__init__(max_age=max_age, max_rows=max_rows, interval=interval, batch=batch)
        self._connection = connection
        self.ahead = ahead
        self._known = known
        #: Partitions (days) dropped by retention since the store opened.
        self.dropped_partitions = 0

    @property
    def active(self) -> bool:
        """Always: even without bounds, passes create the coming days' partitions."""
        return True

    async def create_ahead(self, conn: asyncpg.Connection) -> None:
        """Make sure today's partition and the next ``ahead`` days' exist."""
        today = datetime.now(UTC).date()
        days = [today + timedelta(days=n) for n in range(self.ahead + 1) if today < date.max]
        await ensure_partitions(conn, days, self._known)

    async def run_pass(self) -> int:
        """Create partitions ahead; drop/delete what is past the bounds; return calls removed."""
        async with self._lock, self._connection() as conn:
            await self.create_ahead(conn)
            deleted = 0
            if self.max_age is not None or self.max_rows is not None:
                async with _session_lock(conn, _LOCK_RETENTION, wait=False) as held:
                    if held:
                        deleted = await self._trim(conn)
            self.passes += 1
            return deleted

    async def _trim(self, conn: asyncpg.Connection) -> int:
        deleted = 0
        async with _session_lock(conn, LOCK_PARTITIONS):
            await _finish_detaches(conn)
        if self.max_age is not None:
            cutoff = datetime.now(UTC) - self.max_age
            for day, name in sorted((await existing_partitions(conn)).items()):
                if datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) > cutoff:
                    break  # some of this day (and every later one) is within max_age
                deleted += await self._drop(conn, day, name) or 0
        if self.max_rows is not None:
            # Only retention removes calls (one pass at a time): writers only make the excess
            # grow, so this count never overstates it.
            excess = int(await conn.fetchval("SELECT count(*) FROM calls")) - self.max_rows
            for day, name in sorted((await existing_partitions(conn)).items()):
                if excess <= 0:
                    break
                dropped = await self._drop(conn, day, name, most=excess)
                if dropped is not None:
                    excess -= dropped
                    deleted += dropped
                    continue
                deleted += await self._delete_oldest(conn, day, name, excess)
                break
        await self._trim_steps(conn)
        return deleted

    async def _trim_steps(self, conn: asyncpg.Connection) -> None:
        """The same bounds for steps (``spans``, not partitioned): older than ``max_age``,
        past the newest ``max_rows``; in deletes of at most ``batch`` rows."""
        if self.max_age is not None:
            cutoff = datetime.now(UTC) - self.max_age
            while True:
                status = await conn.execute(
                    "DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE ts < $1 "
                    "ORDER BY ts, id LIMIT $2)",
                    cutoff,
                    self.batch,
                )
                n = int(status.rsplit(" ", 1)[-1])
                self.deleted_spans += n
                if n < self.batch:
                    break
        if self.max_rows is not None:
            excess = int(await conn.fetchval("SELECT count(*) FROM spans")) - self.max_rows
            while excess > 0:
                status = await conn.execute(
                    "DELETE FROM spans WHERE id IN (SELECT id FROM spans ORDER BY ts, id LIMIT $1)",
                    min(self.batch, excess),
                )
                n = int(status.rsplit(" ", 1)[-1])
                if n == 0:
                    break
                self.deleted_spans += n
                excess -= n

    async def _drop(
        self, conn: asyncpg.Connection, day: date, name: str, most: int | None = None
    ) -> int | None:
        """Detach (concurrently) and drop one partition, its rollups with it, under the
        partition lock (no write runs meanwhile); return how many calls it held. With ``most``,
        only if it holds at most that many (counted under the lock), else ``None``."""
        async with _session_lock(conn, LOCK_PARTITIONS):
            rows = int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            if most is not None and rows > most:
                return None
            # Our own name (calls_YYYYMMDD, read back from the catalog and checked): no
            # parameters in DDL. CONCURRENTLY waits for the reads that use the partition
            # instead of blocking every other one.
            await conn.execute(f"ALTER TABLE calls DETACH PARTITION {name} CONCURRENTLY")
            await _pg_rollup.forget_day(conn, day)
            await _pg_sessions.forget_day(conn, day)
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            self._known.discard(day)
        self.dropped_partitions += 1
        self.deleted += rows
        return rows

    async def _delete_oldest(
        self, conn: asyncpg.Connection, day: date, name: str, count: int
    ) -> int:
        deleted = 0
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        while count > 0:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_PARTITIONS)
                # Through ``calls`` (its day only), so the session totals' triggers see them.
                gone = await conn.fetch(
                    f"DELETE FROM calls WHERE ts >= $2 AND ts < $3 AND id IN "
                    f"(SELECT id FROM {name} ORDER BY ts, id LIMIT $1) "
                    f"RETURNING {_pg_rollup.RAW_SQL}",
                    min(self.batch, count),
                    start,
                    start + timedelta(days=1),
                )
                await _pg_rollup.forget(conn, [_pg_rollup.raw_of(row) for row in gone])
            n = len(gone)
            if n == 0:
                break
            deleted += n
            self.deleted += n
            count -= n
            await asyncio.sleep(0)
        return deleted


async def _finish_detaches(conn: asyncpg.Connection) -> None:
    """A pass cut short mid-detach leaves the partition "detach pending": finish and drop it."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'calls'::regclass AND i.inhdetachpending"
    )
    for (name,) in rows:
        if name.startswith("calls_") and name[6:].isdigit():
            await conn.execute(f"ALTER TABLE calls DETACH PARTITION {name} FINALIZE")
            day = date(int(name[6:10]), int(name[10:12]), int(name[12:14]))
            await _pg_rollup.forget_day(conn, day)
            await _pg_sessions.forget_day(conn, day)
            await conn.execute(f"DROP TABLE IF EXISTS {name}")


class _session_lock:
    """An advisory lock held for the session while inside: waited for, or only tried
    (``wait=False``); yields whether it was taken. A connection that breaks, or goes back to
    the pool, releases it with its session (asyncpg's reset unlocks them all)."""

    def __init__(
        self, conn: asyncpg.Connection, key: tuple[int, int], *, wait: bool = True
    ) -> None:
        self._conn = conn
        self._key = key
        self._wait = wait
        self._held = False

    async def __aenter__(self) -> bool:
        if self._wait:
            await self._conn.execute("SELECT pg_advisory_lock($1, $2)", *self._key)
            self._held = True
        else:
            self._held = bool(
                await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *self._key)
            )
        return self._held

    async def __aexit__(self, *exc: object) -> None:
        if self._held and not self._conn.is_closed():
            await self._conn.execute("SELECT pg_advisory_unlock($1, $2)", *self._key)
