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
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import aiosqlite
import anyio

from ..._batching import QueueSettings, QueueValues, Retryable
from ..._exceptions import ConfigError, StoreClosedError, StoreError, require_int
from .._base import (
    CallSummary,
    Filters,
    GroupBy,
    TimeBucket,
    check_id,
    check_limit,
    split_records,
)
from .._bounds import parse_max_age, parse_max_rows
from .._replay import paced
from .._shell import WriterStore, Written
from . import reads as q
from .retention import Retention, auto_vacuum_mode, vacuum_into_incremental
from .schema import ROW_ID, ROW_TS, SPAN_COLUMNS, TRACE_SPANS_SQL, decode_rows, decode_spans
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
    from collections.abc import AsyncIterator, Callable, Coroutine
    from datetime import timedelta

    from ..._pricing import PriceTable
    from ..._record import LLMCall, TraceSpan
    from ..._rows import Row
    from .._errors import ErrorGroup
    from .._pages import PageRead, PageRow
    from .._traces import TraceFilters

__all__ = ["Durability", "SQLiteStore"]

logger = logging.getLogger("asynctelemetry")
Durability = Literal["normal", "full"]
#: SQLite primary result codes worth retrying: busy/locked (another writer), out of memory,
#: I/O error and disk full (space may come back).
_RETRYABLE: Final = frozenset({5, 6, 7, 10, 13})
#: Rows per replay page: large enough to amortise a thread hop, small enough to bound memory.
REPLAY_PAGE: Final = 1000
SPAN_SELECT: Final = ", ".join(SPAN_COLUMNS)
SPAN_TS: Final = SPAN_COLUMNS.index("timestamp_ns")
#: Calls per repricing transaction.
REPRICE_BATCH: Final = 500
#: The queue settings a SQLiteStore runs with unless given others.
SQLITE_QUEUE: Final = QueueValues(
    max_queue=50_000, batch_size=32_768, flush_interval=0.05, close_timeout=10.0
)


class SQLiteStore(WriterStore):
    """Calls kept in a SQLite file (WAL), durable across restarts, written in batches.

    ``add`` and ``add_many`` queue calls for a background writer that commits up to
    ``batch_size`` calls per transaction, waiting at most ``flush_interval`` seconds for a batch to
    fill. When ``max_queue`` calls are queued, ``add`` waits (backpressure); nothing is dropped.
    A batch that fails with a retryable error (database locked, disk full) stays queued and is
    retried with backoff; ``flush()`` raises that error (as :class:`StoreError`) while it lasts.

    The store opens on ``async with``, ``await store.open()``, or its first use.

    Args:
        path: the database file (created if missing), or ``":memory:"``.
        batch_size: most calls per transaction (32,768).
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

    _engine = "SQLite"

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
        self.path = os.fspath(path)
        self._start_shell(SQLITE_QUEUE, given, queue, where=self.path, read_only=read_only)
        _check_settings(
            counts={"cache_mib": cache_mib, "retention_batch": retention_batch},
            busy_timeout=busy_timeout,
            durability=durability,
            retention_interval=retention_interval,
        )
        #: Add the call store's tables to a file holding another program's tables.
        self.adopt = adopt
        self._read_only_uri = _read_only_uri(self.path, read_only, max_age, max_rows)
        self.durability: Durability = durability
        self.busy_timeout = busy_timeout
        self.cache_mib = cache_mib
        #: Retention bounds, counters (``deleted``, ``vacuumed_pages``, ``passes``) and state.
        self.retention: Retention = Retention(
            self._write,
            max_age=parse_max_age(max_age),
            max_rows=parse_max_rows(max_rows),
            interval=retention_interval,
            batch=retention_batch,
        )
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    def _upkeep(self) -> Coroutine[Any, Any, None] | None:
        return self.retention.run_forever() if self.retention.active else None

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

    async def _release(self) -> None:
        with anyio.CancelScope(shield=True):
            for conn in {id(c): c for c in (self._reader, self._writer) if c}.values():
                await conn.close()

    async def _connected(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        await self._ready()
        assert self._writer is not None and self._reader is not None
        return self._writer, self._reader

    # -- writing --------------------------------------------------------------------------------
    async def _write_records(self, batch: list[Row | TraceSpan]) -> Written:
        writer = self._writer
        if writer is None:  # closed under us; BatchQueue counts the batch as lost
            raise StoreClosedError(f"{self!r} is closed")
        calls, spans = split_records(batch)  # type: ignore[arg-type]
        inserted, rejected = 0, []
        try:
            if spans:
                inserted, rejected = await run(writer, insert_spans, spans)
            if calls:
                stored, refused = await run(writer, insert_rows, calls)
                inserted += stored
                rejected += refused
        except sqlite3.Error as exc:
            raise self._write_error(exc, len(batch)) from exc
        return inserted, rejected

    def _write_error(self, exc: sqlite3.Error, count: int) -> Exception:
        """The error a failed write raises: retryable (the records stay queued) or final."""
        error = StoreError(f"writing {count} calls or steps to {self.path} failed: {exc}")
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in _RETRYABLE:
            return Retryable(error)
        logger.error("asynctelemetry: %s; the batch is dropped", error)
        return error

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
        writer, _ = await self._connected()
        try:
            return await run(writer, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"{fn.__name__.strip('_')} on {self.path} failed: {exc}") from exc

    # -- reading --------------------------------------------------------------------------------
    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        _, reader = await self._connected()
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

    async def _page(self, read: PageRead) -> list[PageRow]:
        """One phase of a page, by keyset on the index of its key."""
        sql, params = q.call_page_sql(read)
        rows = await self._read(fetch, sql, params)
        calls = decode_rows([row[:-1] for row in rows])
        return [(call, row[-1], row[-2]) for call, row in zip(calls, rows, strict=True)]

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
        ids: list[str] = await self._read(q.find_trace_ids, filters, limit, newest_first)
        return ids

    async def _traces_records(self, trace_ids: list[str]) -> tuple[list[LLMCall], list[TraceSpan]]:
        found: tuple[list[LLMCall], list[TraceSpan]] = await self._read(q.trace_records, trace_ids)
        return found

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

    async def _error_groups(self, filters: Filters, limit: int) -> list[ErrorGroup]:
        result: list[ErrorGroup] = await self._read(q.error_groups_sql, filters, limit)
        return result

    def _replay(self, speed: float | None, filters: Filters) -> AsyncIterator[LLMCall]:
        """Streams in pages by keyset (timestamp, rowid), so memory stays bounded however many
        calls there are; calls committed during the replay appear if they sort after the page."""
        pages = self._pages(filters)
        return pages if speed is None else paced(pages, speed)

    async def _span_page(self, filters: Filters, after: Any) -> tuple[list[TraceSpan], Any]:
        """Steps by keyset (timestamp_ns, rowid), :data:`REPLAY_PAGE` at a time."""
        clause, params = q.where(filters, "(timestamp_ns, id) > (?, ?)")
        sql = f"SELECT {SPAN_SELECT}, id FROM spans{clause} ORDER BY timestamp_ns, id LIMIT ?"
        key = (-(2**63), -1) if after is None else after
        rows = await self._read(fetch, sql, (*params, *key, REPLAY_PAGE))
        spans = decode_spans([row[:-1] for row in rows])
        last = rows[-1] if len(rows) == REPLAY_PAGE else None
        return spans, None if last is None else (last[SPAN_TS], last[-1])

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


async def connect(path: str, **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect`` whose worker thread is a daemon thread: a store nobody closed
    cannot keep the interpreter alive at exit (aiosqlite's own threads are not daemons: the
    interpreter would wait for them for ever). What it still held is reported as lost (see
    ``_shell.report_unclosed``)."""
    conn = aiosqlite.connect(path, **kwargs)
    # aiosqlite >= 0.21 keeps its thread in ``_thread``; older versions are the thread.
    thread = getattr(conn, "_thread", conn)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True
    return await conn
