"""SQLiteStore: calls kept in a SQLite file, written in batches by a background task.

Two aiosqlite connections (each with its own thread): a writer fed by a :class:`BatchQueue` that
commits one ``BEGIN IMMEDIATE`` transaction per batch, and a reader for queries and replay, so
reads never wait behind writes (WAL). The event loop only encodes rows and decodes small pages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import anyio

from ..._batching import (
    BatchQueue,
    ClosesOnExit,
    Closing,
    QueueOwner,
    QueueSettings,
    QueueValues,
    Retryable,
    RetryPolicy,
)
from ..._exceptions import ConfigError, StoreClosedError, StoreError, require_int
from ..._rows import Row, Rows
from ..._stats import StoreStats
from .._base import (
    CallSummary,
    Filters,
    GroupBy,
    StoreReads,
    TimeBucket,
    check_id,
    check_limit,
    split_records,
)
from .._bounds import parse_max_age, parse_max_rows
from .._door import log_rejected
from .._replay import paced
from . import reads as q
from .retention import Retention, auto_vacuum_mode, vacuum_into_incremental
from .schema import ROW_ID, ROW_TS, TRACE_SPANS_SQL, decode_rows
from .unclosed import connect, forget, log_later, lost_message, remember, reported
from .writer import (
    SYNCHRONOUS,
    fetch,
    fetch_calls,
    fetch_spans,
    insert_rows,
    insert_spans,
    run,
    setup_read_only,
    setup_reader,
    setup_writer,
    update_costs,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from datetime import timedelta

    import aiosqlite

    from ..._batching import QueueStats
    from ..._pricing import PriceTable
    from ..._record import LLMCall, TraceSpan
    from .._traces import TraceFilters

__all__ = ["Durability", "SQLiteStore"]

logger = logging.getLogger("asynctelemetry")
Durability = Literal["normal", "full"]
#: SQLite primary result codes worth retrying: busy/locked (another writer), out of memory,
#: I/O error and disk full (space may come back).
_RETRYABLE: Final = frozenset({5, 6, 7, 10, 13})
#: Rows per replay page: large enough to amortise a thread hop, small enough to bound memory.
REPLAY_PAGE: Final = 1000
#: Calls per repricing transaction.
REPRICE_BATCH: Final = 500
#: The queue settings a SQLiteStore runs with unless given others.
SQLITE_QUEUE: Final = QueueValues(
    max_queue=50_000, batch_size=8192, flush_interval=0.05, close_timeout=10.0
)


class SQLiteStore(StoreReads, QueueOwner, ClosesOnExit):
    """Calls kept in a SQLite file (WAL), durable across restarts, written in batches.

    ``add`` and ``add_many`` queue calls for a background writer that commits up to
    ``batch_size`` calls per transaction, waiting at most ``flush_interval`` seconds for a batch to
    fill. When ``max_queue`` calls are queued, ``add`` waits (backpressure); nothing is dropped.
    A batch that fails with a retryable error (database locked, disk full) stays queued and is
    retried with backoff; ``flush()`` raises that error (as :class:`StoreError`) while it lasts.

    The store opens on ``async with``, ``await store.open()``, or its first use.

    Args:
        path: the database file (created if missing), or ``":memory:"``.
        batch_size: most calls per transaction (8,192).
        flush_interval: seconds a partial batch waits for more calls (0.05).
        max_queue: most calls queued and not yet written before ``add`` waits (50,000).
        durability: ``"normal"`` (``synchronous=NORMAL``: a process crash loses nothing
            committed, a power loss may lose the last transactions) or ``"full"``
            (``synchronous=FULL``: committed transactions survive a power loss too).
        busy_timeout: seconds SQLite waits for another process's write lock before a batch
            counts as failed and is retried.
        cache_mib: the writer's page cache, in MiB (SQLite's default is 2). Each call updates
            seven B-trees (the table and six indexes); once they outgrow the cache every insert
            reads pages back from the OS, which costs about half the write time at 50,000
            calls. Used as the file grows, never more.
        close_timeout: seconds ``aclose()`` spends writing what is queued (10).
        max_age: retention: calls whose timestamp is older than this (seconds, a timedelta, or
            text like ``"7d"``) are deleted by a background pass.
        max_rows: retention: at most this many calls are kept, the newest by timestamp.
        retention_interval: seconds between retention passes.
        retention_batch: most rows one retention transaction deletes.
        read_only: open an existing call store for reading only (the CLI's ``calls``,
            ``summary`` and ``replay`` do): nothing is created, migrated or written, the journal
            mode is left as it is; a file that is not a call store of this schema version is
            refused untouched, and writes raise :class:`StoreError`.
        queue: the four queue settings together, a :class:`~asynctelemetry.QueueSettings`
            (a keyword given beside it must not say otherwise: ``TypeError``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_queue: int | None = None,
        durability: Durability = "normal",
        busy_timeout: float = 5.0,
        cache_mib: int = 64,
        close_timeout: float | None = None,
        max_age: float | timedelta | str | None = None,
        max_rows: int | None = None,
        retention_interval: float = 1.0,
        retention_batch: int = 1000,
        read_only: bool = False,
        adopt: bool = False,
        queue: QueueSettings | None = None,
    ) -> None:
        given = QueueSettings(max_queue, batch_size, flush_interval, close_timeout)
        self._queue_values = SQLITE_QUEUE.resolve("SQLiteStore", given, queue)
        _check_settings(
            counts={"cache_mib": cache_mib, "retention_batch": retention_batch},
            busy_timeout=busy_timeout,
            durability=durability,
            retention_interval=retention_interval,
        )
        self.path = os.fspath(path)
        #: Opened for reading only: nothing is created, migrated or written (see :meth:`open`).
        self.read_only = read_only
        #: Add the call store's tables to a file holding another program's tables.
        self.adopt = adopt
        self._read_only_uri = _read_only_uri(self.path, read_only, max_age, max_rows)
        self.durability: Durability = durability
        self.busy_timeout = busy_timeout
        self.cache_mib = cache_mib
        self._rejected = 0
        self._duplicates = 0
        self._queue = self._writer_queue()
        #: Retention bounds, counters (``deleted``, ``vacuumed_pages``, ``passes``) and state.
        self.retention = Retention(
            self._write,
            max_age=parse_max_age(max_age),
            max_rows=parse_max_rows(max_rows),
            interval=retention_interval,
            batch=retention_batch,
        )
        self._retention_task: asyncio.Task[None] | None = None
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._opening: anyio.Lock | None = None
        self._closed = False
        self._closing = Closing()
        self._failing = False

    def _writer_queue(self) -> BatchQueue[LLMCall | Row]:
        """The writer's queue: backpressure (``add`` waits when full), retried for ever (a
        store never drops what it was given)."""
        return BatchQueue.of(
            self._write_batch,
            self._queue_values,
            overflow="wait",
            retry=RetryPolicy(max_attempts=None),
            name=f"SQLiteStore({self.path})",
            # Not closed, and its loop is ending (asyncio.run cancels every task): write the
            # queue before the loop goes, as aclose() would.
            drain_on_cancel=self.close_timeout,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._writer else "unopened"
        return f"SQLiteStore({self.path!r}, {state}, pending={self.pending})"

    @property
    def is_open(self) -> bool:
        """Opened and not closed yet."""
        return self._writer is not None and not self._closed

    @property
    def pending(self) -> int:
        """Calls added and not yet committed."""
        return self._queue.pending

    @property
    def retention_deleted(self) -> int:
        """Calls deleted by retention (``max_age``/``max_rows``) since the store opened."""
        return self.retention.deleted

    @property
    def rejected(self) -> int:
        """Calls SQLite could not take (e.g. text that is not valid Unicode), logged and counted."""
        return self._rejected

    @property
    def duplicates(self) -> int:
        """Calls not stored because a call with the same ``call_id`` already was."""
        return self._duplicates

    @property
    def stats(self) -> StoreStats:
        """A snapshot of what this store has done (see :class:`~asynctelemetry.StoreStats`):
        duplicates, rejected, retention deletions and the writer queue."""
        return StoreStats(
            duplicates=self._duplicates,
            rejected=self._rejected,
            retention_deleted=self.retention.deleted,
            queue=self._queue.stats,
        )

    @property
    def queue_stats(self) -> QueueStats:
        """The writer queue's snapshot: the same as ``stats.queue``."""
        return self._queue.stats

    # -- lifetime -------------------------------------------------------------------------------
    async def open(self) -> Self:
        """Open the file: WAL, pragmas, schema created or migrated. Idempotent.

        Raises:
            StoreClosedError: the store was closed.
            SchemaVersionError: the file was written by a newer asynctelemetry.
            StoreError: the file is not a SQLite database, is corrupt, or cannot be opened.
        """
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        if self._writer is not None:
            return self
        if self._opening is None:
            self._opening = anyio.Lock()
        async with self._opening:
            if self._writer is None and not self._closed:
                await self._connect()
                if self.retention.active:
                    self._retention_task = asyncio.get_running_loop().create_task(
                        self.retention.run_forever(), name=f"{self!r} retention"
                    )
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        return self

    async def _connect(self) -> None:
        if self.read_only:
            await self._connect_read_only()
            return
        writer = reader = None
        try:
            writer = await connect(self.path, isolation_level=None)
            await run(
                writer,
                setup_writer,
                self.path,
                self.durability,
                self.busy_timeout,
                self.cache_mib,
                self.adopt,
            )
            self.retention.incremental = await run(writer, auto_vacuum_mode) == 2
            if self.path == ":memory:":
                reader = writer
            else:
                reader = await connect(self.path, isolation_level=None)
                await run(reader, setup_reader, self.busy_timeout)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                for conn in {id(c): c for c in (reader, writer) if c is not None}.values():
                    await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open {self.path} as a call store: {exc}") from exc
            raise
        self._writer, self._reader = writer, reader
        remember(self)

    async def _connect_read_only(self) -> None:
        """One connection that cannot write: ``mode=ro``, ``query_only``; the file must already
        be a call store of this schema version, or it is refused before anything is read."""
        conn = None
        try:
            conn = await connect(self._read_only_uri, uri=True)
            await run(conn, setup_read_only, self.path, self.busy_timeout)
        except BaseException as exc:
            if conn is not None:
                with anyio.CancelScope(shield=True):
                    await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open {self.path} as a call store: {exc}") from exc
            raise
        self._writer = self._reader = conn
        remember(self)

    async def aclose(self) -> None:
        """Write what is queued (within ``close_timeout``), then close the file. Idempotent: a
        later or concurrent call returns once the first one has closed the file.

        Raises:
            StoreError: some calls could not be written before the deadline (they are lost; the
                count and the last error are in the message and the log).
        """
        if not await self._closing.begin():
            return  # closed, or being closed by a concurrent aclose() that has now finished
        self._closed = True
        forget(self)
        try:
            await self._close()
        finally:
            self._closing.end()

    async def _close(self) -> None:
        error: BaseException | None = None
        ended: BaseException | None = None
        before = self._queue.stats.dropped_on_close
        try:
            if self._retention_task is not None:
                self._retention_task.cancel()
                with anyio.CancelScope(shield=True):
                    (ended,) = await asyncio.gather(self._retention_task, return_exceptions=True)
            try:
                await self._queue.aclose(timeout=self.close_timeout)
            except Exception as exc:
                error = exc
            lost = self._queue.stats.dropped_on_close - before
            if lost:
                reason = f": {error}" if error is not None else " (close deadline)"
                error = StoreError(f"{lost} calls could not be written to {self.path}{reason}")
        finally:
            with anyio.CancelScope(shield=True):
                if self._opening is not None:
                    await self._opening.acquire()  # an open() in progress finishes first
                for conn in {id(c): c for c in (self._reader, self._writer) if c}.values():
                    await conn.close()
        if error is not None:
            logger.error("asynctelemetry: %s", error)
            raise error
        if isinstance(ended, Exception):  # a retention bug, re-raised under ASYNCTELEMETRY_STRICT
            raise ended

    async def __aenter__(self) -> Self:
        return await self.open()

    def __del__(self) -> None:
        if getattr(self, "_writer", None) is not None and not getattr(self, "_closed", True):
            if reported(self):
                return
            message = lost_message(self, "garbage-collected")
            if self.pending:
                log_later(message)  # no logging inside a finalizer: on the loop, or at exit
            warnings.warn(message, ResourceWarning, stacklevel=2, source=self)

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} was opened read-only (SQLiteStore(read_only=True))")

    async def _ready(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        if self._writer is None:
            await self.open()
        assert self._writer is not None and self._reader is not None
        return self._writer, self._reader

    # -- writing --------------------------------------------------------------------------------
    async def add(self, call: LLMCall | TraceSpan) -> None:
        """Queue one call or step for writing; waits while ``max_queue`` records are queued."""
        self._writable()
        await self._ready()
        await self._queue.put(call)  # type: ignore[arg-type]

    async def add_many(self, calls: Sequence[LLMCall | TraceSpan]) -> None:
        """Queue many calls and steps, in order; waits for room as needed."""
        self._writable()
        await self._ready()
        # A collector's batch is queued as compact rows, encoded by the writer as records are.
        await self._queue.put_many(calls.rows if isinstance(calls, Rows) else calls)  # type: ignore[arg-type]

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Queue steps (the :class:`~asynctelemetry.SpanSink` method); the same writer and queue
        as calls, so ``flush()`` covers both."""
        await self.add_many(spans)

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Sink interface: the same as :meth:`add_many`."""
        await self.add_many(calls)

    async def flush(self) -> None:
        """Return once every call added before is committed (durable per ``durability``).

        Raises:
            StoreError: a batch is failing (disk full, locked); the calls stay queued.
        """
        if self._closed or self._writer is None:
            return
        await self._queue.flush()

    async def _write_batch(self, batch: list[LLMCall | Row]) -> None:
        writer = self._writer
        if writer is None:  # closed under us; BatchQueue counts the batch as lost
            raise StoreClosedError(f"{self!r} is closed")
        calls, spans = split_records(batch)  # type: ignore[arg-type]
        if spans:
            await self._write_spans(writer, spans)
            if not calls:
                return
        await self._write_calls(writer, calls)  # type: ignore[arg-type]

    async def _write_spans(self, writer: aiosqlite.Connection, spans: list[TraceSpan]) -> None:
        try:
            inserted, rejected = await run(writer, insert_spans, spans)
        except sqlite3.Error as exc:
            raise self._write_error(exc, len(spans)) from exc
        for span_id, reason in rejected:
            logger.error("asynctelemetry: step %r rejected by SQLite: %s", span_id, reason)
        self._rejected += len(rejected)
        self._duplicates += len(spans) - inserted - len(rejected)

    def _write_error(self, exc: sqlite3.Error, count: int) -> Exception:
        """The error a failed write raises: retryable (the records stay queued) or final."""
        error = StoreError(f"writing {count} calls or steps to {self.path} failed: {exc}")
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in _RETRYABLE:
            if not self._failing:
                self._failing = True
                logger.warning("asynctelemetry: %s; they stay queued, retrying", error)
            return Retryable(error)
        logger.error("asynctelemetry: %s; the batch is dropped", error)
        return error

    async def _write_calls(self, writer: aiosqlite.Connection, batch: list[LLMCall | Row]) -> None:
        try:
            inserted, rejected = await run(writer, insert_rows, batch)
        except sqlite3.Error as exc:
            raise self._write_error(exc, len(batch)) from exc
        if self._failing:
            self._failing = False
            logger.warning("asynctelemetry: %s is writing again", self.path)
        log_rejected("SQLite", rejected)
        self._rejected += len(rejected)
        self._duplicates += len(batch) - inserted - len(rejected)

    async def _reprice(self, table: PriceTable, filters: Filters) -> int:
        """Streams the store in pages and writes batches of :data:`REPRICE_BATCH` calls, each
        one transaction (rollups follow in it)."""
        await self.flush()
        version = table.version
        updates: list[tuple[float, str, str]] = []
        changed = 0
        calls = self._replay(None, filters)
        async for call in calls:
            cost = table.cost(call)
            if cost is None or (cost == call.cost_usd and call.price_version == version):
                continue
            updates.append((cost, version, call.call_id))
            if len(updates) == REPRICE_BATCH:
                changed += await self._write(update_costs, updates)
                updates = []
        if updates:
            changed += await self._write(update_costs, updates)
        return changed

    # -- retention ------------------------------------------------------------------------------
    async def enforce_retention(self) -> int:
        """Run one retention pass now (the background task runs one every
        ``retention_interval``); return how many calls it deleted (0 without bounds).

        Raises:
            StoreError: a delete failed (e.g. the file is locked past ``busy_timeout``).
        """
        await self._ready()
        return await self.retention.run_pass() if self.retention.active else 0

    async def vacuum(self) -> None:
        """Rebuild the file with ``auto_vacuum = INCREMENTAL`` (``VACUUM``), once per old file.

        Files created before retention existed keep ``auto_vacuum = NONE``: retention frees
        their pages for reuse but cannot give them back. This converts such a file and compacts
        it. It holds the write lock for the whole rebuild (seconds per GB: every writer, in any
        process, waits) and needs free disk space about the size of the file; call it when
        that is acceptable. Queued calls are written first.

        Raises:
            StoreError: the rebuild failed (disk full, locked).
        """
        await self._ready()
        await self.flush()
        await self._write(vacuum_into_incremental)
        self.retention.incremental = await self._write(auto_vacuum_mode) == 2

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(conn, *args)`` on the writer connection, queued behind the insert batches."""
        self._writable()
        writer, _ = await self._ready()
        try:
            return await run(writer, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"{fn.__name__.strip('_')} on {self.path} failed: {exc}") from exc

    # -- reading --------------------------------------------------------------------------------
    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        _, reader = await self._ready()
        try:
            return await run(reader, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self.path} failed: {exc}") from exc

    async def _query(
        self, filters: Filters, limit: int | None, newest_first: bool
    ) -> list[LLMCall]:
        sql, params = q.select_sql(filters, limit, newest_first)
        result: list[LLMCall] = await self._read(fetch_calls, sql, params)
        return result

    async def get(self, call_id: str) -> LLMCall | None:
        """The committed call whose ``call_id`` this is, or ``None`` (the ``call_id`` index)."""
        found: list[LLMCall] = await self._read(
            fetch_calls, q.GET_SQL, (check_id("call_id", call_id),)
        )
        return found[0] if found else None

    async def trace(self, trace_id: str, *, limit: int | None = None) -> list[LLMCall]:
        """The committed calls of ``trace_id``, oldest first (ties in insertion order), at most
        ``limit`` (the index ``calls_trace``)."""
        check_limit(limit)
        params = (check_id("trace_id", trace_id), -1 if limit is None else limit)
        found: list[LLMCall] = await self._read(fetch_calls, q.TRACE_SQL, params)
        return found

    async def _trace_spans(self, trace_id: str) -> list[TraceSpan]:
        """The committed steps of a trace (the index ``spans_trace``)."""
        found: list[TraceSpan] = await self._read(fetch_spans, TRACE_SPANS_SQL, (trace_id,))
        return found

    async def _trace_ids(self, filters: TraceFilters, limit: int, newest_first: bool) -> list[str]:
        sql, params = q.trace_ids_sql(filters, limit, newest_first)
        rows = await self._read(fetch, sql, params)
        return [row[0] for row in rows]

    async def _count(self, filters: Filters) -> int:
        where, params = q.where(filters)
        rows = await self._read(fetch, f"SELECT COUNT(*) FROM calls{where}", params)
        return int(rows[0][0])

    async def _summary(
        self, by: GroupBy, filters: Filters, limit: int | None, order_by: str
    ) -> list[CallSummary]:
        """Computed in SQL (from the rollups for large windows); with ``limit``, only the top
        groups' percentiles are computed."""
        result: list[CallSummary] = await self._read(
            q.summarize_sql, q.group_column(by), filters, limit, order_by
        )
        return result

    async def _timeseries(
        self, width_ns: int, by: GroupBy | None, filters: Filters
    ) -> list[TimeBucket]:
        column = None if by is None else q.group_column(by)
        result: list[TimeBucket] = await self._read(q.timeseries_sql, width_ns, column, filters)
        return result

    def _replay(self, speed: float | None, filters: Filters) -> AsyncIterator[LLMCall]:
        """Streams in pages by keyset (timestamp, rowid), so memory stays bounded however many
        calls there are; calls committed during the replay appear if they sort after the page."""
        pages = self._pages(filters)
        return pages if speed is None else paced(pages, speed)

    async def _pages(self, filters: Filters) -> AsyncIterator[LLMCall]:
        sql, params = q.page_sql(filters)

        def page(after: tuple[int, int]) -> asyncio.Future[list[Any]]:
            return asyncio.ensure_future(self._read(fetch, sql, (*params, *after, REPLAY_PAGE)))

        pending: asyncio.Future[list[Any]] | None = page((-(2**63), -1))
        try:
            while pending is not None:
                rows = await pending
                pending = None
                if len(rows) == REPLAY_PAGE:
                    # Read the next page in the reader's thread while this one is decoded here.
                    last = rows[-1]
                    pending = page((last[ROW_TS], last[ROW_ID]))
                for call in decode_rows(rows):
                    yield call
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)


def _check_settings(
    *,
    counts: dict[str, object],
    busy_timeout: float,
    durability: object,
    retention_interval: float,
) -> None:
    """Refuse, with a ``ConfigError`` naming it, a setting that cannot work."""
    for name, count in counts.items():
        require_int(name, count)
    _check(busy_timeout >= 0, f"busy_timeout must be >= 0, got {busy_timeout!r}")
    _check(durability in SYNCHRONOUS, f"durability must be 'normal' or 'full', not {durability!r}")
    _check(retention_interval > 0, f"retention_interval must be > 0, got {retention_interval!r}")


def _read_only_uri(path: str, read_only: bool, max_age: object, max_rows: object) -> str:
    """The ``mode=ro`` URI a read-only store opens (SQLite opens the file without write access;
    a missing file is an error), after refusing settings that would write."""
    if read_only:
        _check(path != ":memory:", "a :memory: store cannot be read-only")
        _check(
            max_age is None and max_rows is None,
            "a read-only SQLiteStore cannot apply retention (max_age/max_rows)",
        )
    return f"{Path(os.path.abspath(path)).as_uri()}?mode=ro"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
