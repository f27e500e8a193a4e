"""PostgresStore: calls kept in PostgreSQL, shared by many processes, written in batches.

Two dedicated writer connections, fed by a :class:`BatchQueue` (two batches at once: the next
one's calls go in while the last one's rollups are added and it commits), send each batch with
binary ``COPY`` straight into ``calls``; a batch holding a call stored before (a duplicate)
goes into a per-connection temporary staging table instead and is merged with ``INSERT … ON
CONFLICT DO NOTHING`` in the same transaction (see :mod:`.writer`); a pool of ``pool_size``
connections serves reads. Schema, partitions and codec: :mod:`._pg_schema`; reads:
:mod:`._pg_reads`; retention: :mod:`._pg_retention`. asyncpg is imported when the store opens
(extra ``postgres``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ..._batching import QueueSettings, QueueValues
from ..._exceptions import (
    ConfigError,
    StoreClosedError,
    StoreError,
    mask_secrets,
    require,
    require_int,
)
from .. import _base
from .._base import (
    CallSummary,
    Filters,
    GroupBy,
    TimeBucket,
    check_id,
    check_limit,
    group_field,
    rank_key,
    top,
)
from .._bounds import parse_max_age, parse_max_rows
from .._replay import paced
from .._rollup import Acc, buckets_of, summaries_of
from .._sessions import ranks
from .._shell import WriterStore, Written
from .._traces import walk_traces
from . import reads as r
from . import rollup as _pg_rollup
from . import sessions as _pg_sessions
from .retention import PgRetention
from .schema import TRACE_SPANS_SQL, check_readable, decode, decode_spans
from .writer import LANES, PgWriter, is_db_error, reason

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence

    Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
    from datetime import datetime, timedelta
    from decimal import Decimal

    import asyncpg

    from ..._pricing import PriceTable
    from ..._record import LLMCall, TraceSpan
    from ..._rows import Row
    from .._errors import ErrorGroup
    from .._pages import PageRead, PageRow
    from .._traces import TraceFilters

__all__ = ["PostgresStore"]

#: Rows per replay/query page: bounded memory, few round trips.
PAGE: Final = 2000
#: The queue settings a PostgresStore runs with unless given others.
POSTGRES_QUEUE: Final = QueueValues(
    max_queue=50_000, batch_size=5000, flush_interval=0.05, close_timeout=10.0
)


class PostgresStore(WriterStore):
    """Calls kept in PostgreSQL: many app processes and collectors share one database.

    ``add`` and ``add_many`` queue calls for a background writer that sends up to
    ``batch_size`` calls per transaction (binary ``COPY`` into a staging table, merged into the
    day-partitioned ``calls`` table). When ``max_queue`` calls are queued, ``add`` waits
    (backpressure); nothing is dropped. A dropped connection or a server restart keeps the
    batch queued and retries it with backoff; ``flush()`` raises :class:`StoreError` while that
    lasts and returns once everything added before it is committed. ``call_id`` is unique for
    every writer: a call stored before (same ``call_id`` and timestamp) is skipped and counted
    in ``duplicates``.

    The store opens on ``async with``, ``await store.open()``, or its first use; a server that
    cannot be reached within ``connect_timeout`` is a :class:`StoreError` there.

    Args:
        dsn: ``postgresql://user:password@host:5432/database`` (``postgres://`` too; libpq
            options such as ``sslmode``, and server settings such as ``search_path`` to use a
            schema, as query parameters).
        pool_size: most connections serving reads (the writer has two more of its own).
        batch_size: most calls per transaction (5,000).
        flush_interval: seconds a partial batch waits for more calls (0.05).
        max_queue: most calls queued and not yet committed before ``add`` waits (50,000).
        close_timeout: seconds ``aclose()`` spends writing what is queued (10).
        connect_timeout: seconds to connect (at open, and each reconnect of the writer).
        max_age: retention: whole UTC days of calls older than this (seconds, a timedelta, or
            text like ``"7d"``) are dropped, partition by partition.
        max_rows: retention: at most this many calls are kept, the newest by timestamp.
        retention_interval: seconds between background passes (retention and partitions
            created ahead).
        retention_batch: most rows one ``max_rows`` delete removes.
        partitions_ahead: days of partitions created ahead of today.
        queue: the four queue settings together, a :class:`~asynctelemetry.QueueSettings`
            (a keyword given beside it must not say otherwise: ``TypeError``).
    """

    _engine = "PostgreSQL"
    _overlap = LANES  # the next batch's calls go in while the last one's rollups do

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 4,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_queue: int | None = None,
        close_timeout: float | None = None,
        connect_timeout: float = 10.0,
        max_age: float | timedelta | str | None = None,
        max_rows: int | None = None,
        retention_interval: float = 60.0,
        retention_batch: int = 5000,
        partitions_ahead: int = 3,
        queue: QueueSettings | None = None,
        read_only: bool = False,
    ) -> None:
        if not isinstance(dsn, str) or urlsplit(dsn).scheme not in ("postgresql", "postgres"):
            shown = mask_secrets(dsn) if isinstance(dsn, str) else dsn
            raise ConfigError(f"dsn must be a postgresql:// URL, got {shown!r}")
        given = QueueSettings(max_queue, batch_size, flush_interval, close_timeout)
        #: The DSN as messages show it (its secrets masked).
        self._shown = mask_secrets(dsn)
        self._start_shell(POSTGRES_QUEUE, given, queue, where=self._shown, read_only=read_only)
        require_int("pool_size", pool_size)
        require_int("retention_batch", retention_batch)
        require_int("partitions_ahead", partitions_ahead, minimum=0)
        _check(connect_timeout > 0, f"connect_timeout must be > 0, got {connect_timeout!r}")
        _check(
            retention_interval > 0, f"retention_interval must be > 0, got {retention_interval!r}"
        )
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        #: Pool connections lent or being acquired (:meth:`_connection`): a read takes a second
        #: one only while one is to spare (:meth:`_Snapshot.another`), never waiting for it.
        self._lent = 0
        self._writer = PgWriter(None, dsn, connect_timeout)
        #: Retention bounds and counters (``deleted``, ``dropped_partitions``, ``passes``).
        self.retention: PgRetention = PgRetention(
            self._connection,
            max_age=parse_max_age(max_age),
            max_rows=parse_max_rows(max_rows),
            interval=retention_interval,
            batch=retention_batch,
            ahead=partitions_ahead,
            known=self._writer.known_days,
        )
        self._pool: asyncpg.Pool | None = None

    def _upkeep(self) -> Coroutine[Any, Any, None] | None:
        return None if self.read_only else self.retention.run_forever()

    async def _connect(self) -> None:
        pg: Any = require("asyncpg", "postgres", "PostgresStore")
        self._writer.pg = pg
        if self.read_only:  # read-only sessions; no writer, no partitions, no retention
            self._pool = await self._pool_of(
                pg,
                lambda conn: check_readable(conn, self._shown),
                server_settings={"default_transaction_read_only": "on"},
            )
            return
        await self._writer.open()
        try:
            self._pool = await self._pool_of(pg, self.retention.create_ahead)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._writer.close()
            raise

    async def _pool_of(
        self,
        pg: Any,
        ready: Callable[[asyncpg.Connection], Awaitable[None]],
        **settings: Any,
    ) -> asyncpg.Pool:
        """A pool of up to ``pool_size`` connections, one of them given to ``ready`` first (the
        schema checked, partitions made); a database failure is a :class:`StoreError`."""
        pool = None
        try:
            pool = await pg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                **settings,
            )
            async with pool.acquire() as conn:
                await ready(conn)
        except BaseException as exc:
            if pool is not None:
                pool.terminate()
            if isinstance(exc, Exception) and self._is_db_error(exc):
                raise StoreError(f"cannot open {self._shown}: {reason(exc)}") from exc
            raise
        return pool

    async def _release(self) -> None:
        await self._writer.close()
        pool = self._pool
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=max(self.close_timeout, 1.0))
            except Exception:
                pool.terminate()

    def _is_db_error(self, exc: BaseException) -> bool:
        return is_db_error(self._writer.pg, exc)

    async def _write_records(self, batch: list[Row | TraceSpan]) -> Written:
        if self._pool is None:  # closed under us; BatchQueue counts the batch as lost
            raise StoreClosedError(f"{self!r} is closed")
        return await self._writer.write(batch)

    async def _connected(self) -> asyncpg.Pool:
        await self._ready()
        assert self._pool is not None
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pool connection; database failures become :class:`StoreError`."""
        pool = await self._connected()
        self._lent += 1
        try:
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                yield conn
        except StoreError:
            raise
        except Exception as exc:
            if self._is_db_error(exc):
                raise StoreError(f"{self._shown}: {reason(exc)}") from exc
            raise
        finally:
            self._lent -= 1

    def _spare(self) -> bool:
        """Whether the pool has a connection no one holds or waits for."""
        return self._lent < self.pool_size

    # -- writing --------------------------------------------------------------------------------
    async def _reprice(self, table: PriceTable, filters: Filters) -> int:
        """Reads keyset pages and writes each page's changes in one transaction (memory bounded
        by a page); calls written meanwhile are repriced if they sort after the page read."""
        return await r.reprice(self._fetch, self._reprice_page, table, filters, PAGE)

    async def _reprice_page(
        self, ids: list[str], stamps: list[datetime], costs: list[Decimal], version: str
    ) -> None:
        """One transaction: the page's calls leave the rollups with their old costs, take the
        new ones, and join the rollups again."""
        async with self._connection() as conn, conn.transaction():
            old = await conn.fetch(r.REPRICED_SQL, ids, stamps)
            await _pg_rollup.forget(conn, [_pg_rollup.raw_of(row) for row in old])
            new = await conn.fetch(r.REPRICE_SQL, ids, stamps, costs, version)
            await _pg_rollup.remember(conn, [_pg_rollup.raw_of(row) for row in new])

    # -- retention ------------------------------------------------------------------------------
    async def enforce_retention(self) -> int:
        """Run one retention pass now; return how many calls it removed.

        Raises:
            StoreError: the database failed.
        """
        await self._ready()
        return await self.retention.run_pass()

    # -- reading --------------------------------------------------------------------------------
    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        for attempt in (1, 2):
            async with self._connection() as conn:
                try:
                    rows: list[Any] = await conn.fetch(sql, *params)
                except Exception as exc:
                    if not self._is_db_error(exc):
                        raise
                    if attempt == 1 and conn.is_closed():
                        continue  # a pooled connection the server dropped (a restart): once more
                    raise StoreError(f"reading {self._shown} failed: {reason(exc)}") from exc
                return rows
        raise AssertionError("unreachable")  # pragma: no cover

    async def _trace_spans(self, trace_id: str) -> list[TraceSpan]:
        """The committed steps of a trace (the index ``spans_trace_ts``)."""
        return decode_spans(await self._fetch(TRACE_SPANS_SQL, (trace_id,)))

    async def _trace_ids(self, filters: TraceFilters, limit: int, newest_first: bool) -> list[str]:
        """:func:`~.._traces.walk_traces` driven here, one query per request."""
        walk = walk_traces(filters, limit, newest_first)
        try:
            request = next(walk)
            while True:
                if isinstance(request, list):
                    answers: list[list[Any]] = [[] for _ in request]
                    for k, trace_id, ts in await self._fetch(*r.trace_walk_sql(request)):
                        answers[k].append((trace_id, ts))
                    request = walk.send(answers)
                else:
                    sql, params = r.trace_check_sql(filters, request.trace_ids)
                    request = walk.send(await self._fetch(sql, params))
        except StopIteration as done:
            ids: list[str] = done.value
            return ids

    async def _traces_records(self, trace_ids: list[str]) -> tuple[list[LLMCall], list[TraceSpan]]:
        calls, spans = await asyncio.gather(  # two pool connections at once
            self._fetch(r.TRACES_CALLS_SQL, (trace_ids,)),
            self._fetch(r.TRACES_SPANS_SQL, (trace_ids,)),
        )
        return decode(calls), decode_spans(spans)

    async def _query(
        self, filters: Filters, limit: int | None, newest_first: bool
    ) -> list[LLMCall]:
        """Read in keyset pages, so the server never holds a huge result for us."""
        return [c async for c in self._pages(filters, newest_first=newest_first, limit=limit)]

    async def _page(self, read: PageRead) -> list[PageRow]:
        """One phase of a page, by keyset on the index of its key (``(key, id)``)."""
        sql, params = r.call_page_sql(read)
        rows = await self._fetch(sql, params)
        keys = [_page_key(row[-1], read.sort) for row in rows]
        return list(zip(decode(rows), keys, (row[-2] for row in rows), strict=True))

    async def get(self, call_id: str) -> LLMCall | None:
        """The committed call whose ``call_id`` this is, or ``None`` (the ``call_id`` index).

        Two calls may share an id if their timestamps differ (see the schema's ``UNIQUE
        (call_id, ts)``): the first stored is returned.
        """
        rows = await self._fetch(r.GET_SQL, (check_id("call_id", call_id),))
        found = decode(rows)
        return found[0] if found else None

    async def trace(self, trace_id: str, *, limit: int | None = None) -> list[LLMCall]:
        """The committed calls of ``trace_id``, oldest first (ties in insertion order), at most
        ``limit`` (the index ``calls_trace_ts``)."""
        check_limit(limit)
        return decode(await self._fetch(r.TRACE_SQL, (check_id("trace_id", trace_id), limit)))

    async def _error_groups(self, filters: Filters, limit: int) -> list[ErrorGroup]:
        sql, params = r.error_groups_sql(filters, limit)
        return r.error_groups_rows(await self._fetch(sql, params))

    async def _count(self, filters: Filters) -> int:
        sql, params = r.count_sql(filters)
        rows = await self._fetch(sql, params)
        return int(rows[0][0])

    async def _summary(
        self, by: GroupBy, filters: Filters, limit: int | None, order_by: str
    ) -> list[CallSummary]:
        """From the rollups for a large window, else computed by the server; with ``limit``,
        the server totals every group, the top ones are chosen, and only their percentiles
        are computed (except by p95 latency, which needs every group's)."""
        if group_field(by) == "session_id" and limit and ranks(filters, limit, order_by):
            return await self._top_sessions(filters, limit, order_by)
        cells = await self._large(filters, group_field(by), None, ("latency", "ttft", "speed"))
        if cells is not None:
            return top(summaries_of(cells), limit, order_by)
        if limit is None or order_by == "p95_latency":
            sql, params = r.summary_sql(by, filters)
            return top(r.summary_rows(await self._fetch(sql, params)), limit, order_by)
        sql, params = r.totals_sql(by, filters)
        totals = await self._fetch(sql, params)
        window = r.window_of(totals)
        ranked = sorted(
            totals,
            key=lambda t: rank_key(order_by, t[0], t[1], t[2], float(t[3]), None),
        )
        chosen = [t[0] for t in ranked[:limit]]
        if not chosen:
            return []
        sql, params = r.summary_sql(by, filters, chosen)
        return top(r.summary_rows(await self._fetch(sql, params), window), limit, order_by)

    async def _top_sessions(self, filters: Filters, limit: int, order_by: str) -> list[CallSummary]:
        """The top ``limit`` sessions of the window (:mod:`.._sessions`): the candidates from
        the session totals, then their rows summed exactly; one snapshot for both."""
        async with self._snapshot() as fetch:
            chosen, window = await _pg_sessions.candidates(fetch, filters, limit, order_by)
            if not chosen:
                return []
            sql, params = r.summary_sql("session", filters, chosen)
            rows = await fetch(sql, params)
        return top(r.summary_rows(rows, window), limit, order_by)

    async def _timeseries(
        self, width_ns: int, by: GroupBy | None, filters: Filters
    ) -> list[TimeBucket]:
        column = None if by is None else group_field(by)
        cells = await self._large(filters, column, width_ns, ("latency", "ttft"))
        if cells is not None:
            return buckets_of(cells)
        sql, params = r.timeseries_sql(width_ns // 1000, by, filters)
        return r.timeseries_rows(await self._fetch(sql, params))

    async def _large(
        self,
        filters: Filters,
        column: str | None,
        width_ns: int | None,
        hists: tuple[str, ...],
    ) -> dict[tuple[int | None, Any], Acc] | None:
        """The window's cells from the rollups when it holds more than ``EXACT_LIMIT`` calls
        (its percentiles then follow the approximate rule, which the histograms give); else
        ``None``: the exact SQL answers. One snapshot for every part (a long window's two
        halves at once on two connections when the pool has one to spare)."""
        async with self._snapshot() as snapshot:
            cells = await _pg_rollup.rolled(
                snapshot, filters, column, width_ns, hists, another=snapshot.another
            )
        if cells is None or sum(acc.calls for acc in cells.values()) <= _base.EXACT_LIMIT:
            return None
        return cells

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[_Snapshot]:
        """Reads of several statements on one connection, one snapshot for all: yields their
        ``fetch(sql, params)`` (a :class:`_Snapshot`)."""
        async with contextlib.AsyncExitStack() as stack:
            yield await _Snapshot.begin(self, stack)

    def _replay(self, speed: float | None, filters: Filters) -> AsyncIterator[LLMCall]:
        """Streams in keyset pages of (ts, id), so memory stays bounded however many calls
        there are; calls committed during the replay appear if they sort after the page."""
        pages = self._pages(filters)
        return pages if speed is None else paced(pages, speed)

    async def _span_page(self, filters: Filters, after: Any) -> tuple[list[TraceSpan], Any]:
        """Steps by keyset (ts, id), :data:`PAGE` at a time."""
        sql, params = r.span_page_sql(filters, PAGE, after)
        rows = await self._fetch(sql, params)
        spans = decode_spans([row[:-1] for row in rows])
        last = rows[-1] if len(rows) == PAGE else None
        return spans, None if last is None else (last[r.SPAN_TS], last[-1])

    def _pages(
        self, filters: Filters, *, newest_first: bool = False, limit: int | None = None
    ) -> AsyncIterator[LLMCall]:
        return r.pages(self._fetch, filters, PAGE, newest_first=newest_first, limit=limit)


#: What ``pg_export_snapshot()`` returns (``%08X-%08X-%d``), checked before it goes into SQL.
_SNAPSHOT_ID: Final = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


class _Snapshot:
    """Reads in one snapshot (a read-only repeatable-read transaction on a pool connection, held
    until ``stack`` closes): ``await snapshot(sql, params)`` fetches; :meth:`another` gives the
    same snapshot on one more connection, for reads made at once."""

    def __init__(
        self, store: PostgresStore, conn: asyncpg.Connection, stack: contextlib.AsyncExitStack
    ) -> None:
        self._store = store
        self._conn = conn
        self._stack = stack
        self._exported: str | None = None

    @classmethod
    async def begin(
        cls, store: PostgresStore, stack: contextlib.AsyncExitStack, exported: str | None = None
    ) -> _Snapshot:
        """A connection of ``store``'s pool in a new transaction (in the ``exported`` snapshot
        if given), both closed with ``stack``."""
        conn = await stack.enter_async_context(store._connection())
        await stack.enter_async_context(
            conn.transaction(isolation="repeatable_read", readonly=True)
        )
        if exported is not None:  # checked against _SNAPSHOT_ID: the server's own name
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")
        return cls(store, conn, stack)

    async def __call__(self, sql: str, params: Sequence[Any]) -> list[Any]:
        rows: list[Any] = await self._conn.fetch(sql, *params)
        return rows

    async def another(self) -> Fetch | None:
        """The same snapshot on another pool connection (``pg_export_snapshot``, then ``SET
        TRANSACTION SNAPSHOT``), until this one closes; ``None`` when the pool has none to
        spare: a read never waits for a second connection (nor holds one while it waits). Not
        while a statement of this one runs."""
        if not self._store._spare():
            return None
        if self._exported is None:
            exported = await self._conn.fetchval("SELECT pg_export_snapshot()")
            if not isinstance(exported, str) or not _SNAPSHOT_ID.fullmatch(exported):
                return None
            self._exported = exported
            if not self._store._spare():  # taken meanwhile (from here on, nothing awaits
                return None  # until the connection is counted as lent)
        return await _Snapshot.begin(self._store, self._stack, self._exported)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _page_key(value: Any, sort: str) -> Any:
    """A page key as the cursor holds it: time in integer nanoseconds, a cost as the float
    whose exact value the column keeps."""
    if value is None:
        return None
    if sort == "time":
        return _base.to_ns(value)
    return float(value) if sort == "cost" else value
