"""The writer of a :class:`PostgresStore`: its own connection, the COPY and the merge.

The calls the store's door refuses (:mod:`._door`: a time out of range, a key too long for an
index) are rejected first. Each batch then goes by binary ``COPY`` straight into ``calls``; when
the unique index refuses it (a call of the batch is stored already) or the server refuses a row
of it, the batch goes into the connection's temporary staging table and is merged with ``INSERT
… ON CONFLICT DO NOTHING`` in one transaction; if the server refuses a row there too, the batch
is halved, and halved again, each part in its own savepoint, until the rows it refuses stand
alone: those are rejected, every other row is stored (a few bad rows cost a few merges each, and
every merge is awaited, so the loop is never held). Every write transaction holds the partition
lock shared, so a partition change (:mod:`.retention`) never runs beside it.

Failures are sorted: a broken connection, a server restart, a deadlock or a full disk is
:class:`~asynctelemetry._batching.Retryable` (the batch stays queued); a value the server cannot
hold (a data exception, a missing ``NOT NULL`` value, an index entry too large) rejects that call
only; anything else drops the batch with a :class:`StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from ..._batching import Retryable, Slice, give_turn
from ..._exceptions import StoreError, mask_secrets
from .._base import split_records
from .._door import admit, call_id_of
from .._rollup import derive
from . import rollup as _pg_rollup
from .schema import (
    COPY_COLUMNS,
    MERGE_SQL,
    STAGING,
    STAGING_SQL,
    days_of,
    ensure_partitions,
    hold_partitions,
    insert_spans,
    pg_row,
    prepare,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import date

    import asyncpg

    from ..._record import TraceSpan
    from ..._rows import Row

__all__ = ["LANES", "PgWriter", "is_db_error", "reason"]

logger = logging.getLogger("asynctelemetry")
#: Calls checked, encoded or sent per step: the event loop gets control back between steps.
_STEP: Final = 32
#: Batches written at once, each on its own connection (:class:`PgWriter`).
LANES: Final = 2
#: A COPY row → the values the rollups count, in ``_pg_rollup.RAW_SQL`` order.
_RAW_OF_COPY: Final = itemgetter(
    *(COPY_COLUMNS.index(name.strip()) for name in _pg_rollup.RAW_SQL.split(","))
)
#: The staging merge, returning what the rollups count of each call it stored.
_MERGE_RETURNING: Final = f"{MERGE_SQL} RETURNING {_pg_rollup.RAW_SQL}"
#: Staged rows merged within a savepoint leave before the next part is staged.
_EMPTY_STAGING: Final = f"DELETE FROM {STAGING}"
#: SQLSTATE classes worth retrying: connection, transaction rollback (deadlock, serialization),
#: insufficient resources (disk full), lock not available, operator intervention (shutdown,
#: restart), system error, internal error.
_RETRY_CLASSES: Final = frozenset({"08", "40", "53", "55", "57", "58", "XX"})
#: "no partition of relation found for row": a partition was dropped under the writer.
_NO_PARTITION: Final = "23514"
#: Times a batch is tried when retention drops one of its days under it (in this process).
_DAY_ATTEMPTS: Final = 3
#: SQLSTATEs that refuse one row, besides class 22 (data exception): a missing ``NOT NULL``
#: value, an index entry larger than a btree page holds.
_ROW_STATES: Final = frozenset({"23502", "54000"})


def is_db_error(pg: Any, exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database or the network (``pg``: the asyncpg module)."""
    return isinstance(exc, OSError | TimeoutError | pg.PostgresError | pg.InterfaceError)


class PgWriter:
    """One store's writer: its connections (one per lane), the days whose partitions exist.

    Two batches are written at once (:data:`LANES`; the store's queue hands over that many),
    each in its own transaction on its own connection, taking turns to encode and send their
    calls (:attr:`copying`, in the order the queue gave them): the next batch's calls go in
    while the last one's rollups are added and it commits. The server orders the rest: the
    statement that stores a batch's calls takes the rollup lock as it ends (the session totals'
    trigger), so the rollups of two batches are never added at once.

    Args:
        pg: the asyncpg module.
        dsn: where to connect.
        connect_timeout: seconds each (re)connection may take.
    """

    def __init__(self, pg: Any, dsn: str, connect_timeout: float) -> None:
        self.pg = pg
        self.dsn = dsn
        #: The DSN as messages show it (its secrets masked).
        self.shown = mask_secrets(dsn)
        self.connect_timeout = connect_timeout
        #: Each lane's connection (made when a batch first needs it).
        self.conns: list[asyncpg.Connection | None] = [None] * LANES
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for lane in range(LANES):
            self._free.put_nowait(lane)
        #: Held while a batch's calls are admitted, encoded and sent: one batch at a time.
        self.copying = asyncio.Lock()
        #: The clock every step of the writer's batches shares the loop by: two batches at
        #: once still hand the loop back within one slice.
        self.slice_ = Slice()
        #: Days whose partitions exist (shared with retention, which drops some).
        self.known_days: set[date] = set()

    async def close(self) -> None:
        """Close the connections (terminate each that takes more than 2 s to close)."""
        conns, self.conns = self.conns, [None] * LANES
        for conn in conns:
            if conn is not None:
                try:
                    await asyncio.wait_for(conn.close(), timeout=2.0)
                except Exception:
                    conn.terminate()

    async def open(self) -> None:
        """Connect every lane, the schema created or migrated first (by the first)."""
        await self.connect(prepare_schema=True)
        try:
            for lane in range(1, LANES):
                await self.connect(lane=lane)
        except BaseException:
            await self.close()
            raise

    async def connect(self, *, prepare_schema: bool = False, lane: int = 0) -> asyncpg.Connection:
        """Connect a lane (within ``connect_timeout``), its staging table ready (and the schema
        first, with ``prepare_schema``); the connection is returned."""
        try:
            conn = await self.pg.connect(self.dsn, timeout=self.connect_timeout)
        except Exception as exc:
            if self._is_db_error(exc):
                raise StoreError(f"cannot connect to {self.shown}: {reason(exc)}") from exc
            raise
        try:
            if prepare_schema:
                await prepare(conn, self.shown)
            await conn.execute(STAGING_SQL)
        except BaseException:
            conn.terminate()
            raise
        self.conns[lane] = conn
        return conn

    def _is_db_error(self, exc: BaseException) -> bool:
        return is_db_error(self.pg, exc)

    async def write(self, batch: list[Row | TraceSpan]) -> tuple[int, list[tuple[str, str]]]:
        """Store one batch on a free lane: reconnect if needed, merge; return how many records
        it stored and ``(call_id, reason)`` for each call refused (the store's shell counts and
        logs them).

        Raises:
            Retryable: the connection, the server or a lock failed; try the batch again later.
            StoreError: the server refused the batch for good (it is dropped and logged).
        """
        await give_turn()  # the batch's slices start after the last batch's end and hand-off
        lane = await self._free.get()
        try:
            return await self._write_on(lane, batch)
        finally:
            self._free.put_nowait(lane)

    async def _write_on(
        self, lane: int, batch: list[Row | TraceSpan]
    ) -> tuple[int, list[tuple[str, str]]]:
        try:
            conn = self.conns[lane]
            if conn is None or conn.is_closed():
                conn = await self.connect(lane=lane)
            calls, spans = split_records(batch)  # type: ignore[arg-type]
            inserted, rejected = await self._merge(conn, calls) if calls else (0, [])  # type: ignore[arg-type]
            if spans:
                inserted += await insert_spans(conn, spans)
        except StoreError as exc:  # could not reconnect
            raise self._retry(exc, len(batch)) from exc
        except Exception as exc:
            if not self._is_db_error(exc):
                raise
            code = getattr(exc, "sqlstate", None) or ""
            if code == _NO_PARTITION:
                self.known_days.clear()  # a partition went (retention): make it again
            elif code and code[:2] not in _RETRY_CLASSES:
                error = StoreError(f"writing {len(batch)} calls failed: {reason(exc)}")
                logger.error("asynctelemetry: %s; the batch is dropped", error)
                raise error from exc
            if not code or code[:2] in ("08", "57"):  # the connection is gone or going
                self._drop_lane(lane)
            raise self._retry(exc, len(batch)) from exc
        return inserted, rejected

    def _retry(self, exc: BaseException, size: int) -> Retryable:
        error = StoreError(f"writing {size} calls to {self.shown} failed: {reason(exc)}")
        return Retryable(error)

    def _drop_lane(self, lane: int) -> None:
        conn, self.conns[lane] = self.conns[lane], None
        if conn is not None:
            conn.terminate()

    async def _merge(
        self, conn: asyncpg.Connection, batch: list[Row]
    ) -> tuple[int, list[tuple[str, str]]]:
        """Store ``batch`` atomically; returns (inserted, rejected rows).

        First, optimistically, one binary COPY straight into ``calls`` (the raw path: rows go in
        with multi-row heap inserts), each row encoded as asyncpg takes it (:class:`_Stream`), so
        the server stores the first rows while the last are encoded, and a row lives only a
        moment (the collector's heap is not swept for it). When a call is stored already (a
        retried or replayed batch, another writer's copy, or twice in this batch) the unique
        index refuses the whole COPY, which leaves nothing behind; the batch then goes the safe
        way: COPY into the staging table and ``INSERT … ON CONFLICT DO NOTHING``, in one
        transaction, halving the batch around the rows the server refuses (:meth:`_isolate`).
        """
        async with _Turn(self.copying) as turn:  # the calls of one batch sent at a time
            slice_ = self.slice_
            kept, rejected = await _admitted(batch, slice_)
            if not kept:
                return 0, rejected
            days = days_of(kept)
            for attempt in range(_DAY_ATTEMPTS):
                await ensure_partitions(conn, days, self.known_days)
                try:
                    inserted = await self._write_once(
                        conn, kept, days, rejected, attempt, slice_, turn
                    )
                except _DayGone:
                    continue
                return inserted, rejected
        raise AssertionError("unreachable: the last attempt never raises _DayGone")

    async def _write_once(
        self,
        conn: asyncpg.Connection,
        calls: list[Row],
        days: set[date],
        rejected: list[tuple[str, str]],
        attempt: int,
        slice_: Slice,
        turn: _Turn,
    ) -> int:
        """One attempt of :meth:`_merge` (the COPY, else the staging merge); returns how many
        calls it stored. Once the calls are sent, the next batch takes its ``turn``."""
        try:
            async with conn.transaction():
                await self._hold(conn, days, attempt)
                stream = _Stream(calls, slice_)
                await conn.copy_records_to_table(
                    "calls", records=stream.rows(), columns=COPY_COLUMNS
                )
                turn.give()
                await _pg_rollup.add(conn, stream.batch)
            return len(calls)
        except self.pg.UniqueViolationError:
            pass
        except Exception as exc:
            if not self._is_row_error(exc):
                raise
        async with conn.transaction():
            await self._hold(conn, days, attempt)
            stored = await self._isolate(conn, calls, rejected, slice_)
            await _pg_rollup.remember(conn, [_pg_rollup.raw_of(row) for row in stored])
        return len(stored)

    async def _hold(self, conn: asyncpg.Connection, days: set[date], attempt: int) -> None:
        """Hold the partition lock for this transaction; raise :class:`_DayGone` if retention
        dropped a day of the batch meanwhile (its partition is then made again), except on the
        last attempt (a write then finds no partition: retried, as when another process's
        retention drops it)."""
        await hold_partitions(conn)
        if attempt < _DAY_ATTEMPTS - 1 and not days <= self.known_days:
            raise _DayGone

    async def _isolate(
        self,
        conn: asyncpg.Connection,
        calls: list[Row],
        rejected: list[tuple[str, str]],
        slice_: Slice,
    ) -> list[Any]:
        """Merge ``calls`` through the staging table in a savepoint; when the server refuses a
        row, the two halves each again, down to the single rows it refuses (added to
        ``rejected``). Returns what the rollups count of each call stored, in order. The staging
        table is empty on entry and holds the rows merged on return (emptied at commit)."""
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    STAGING, records=slice_.each(map(pg_row, calls)), columns=COPY_COLUMNS
                )
                stored: list[Any] = await conn.fetch(_MERGE_RETURNING)
            return stored
        except Exception as exc:
            if not self._is_row_error(exc):
                raise
            if len(calls) == 1:
                rejected.append((call_id_of(calls[0]), reason(exc)))
                return []
        half = len(calls) // 2
        first = await self._isolate(conn, calls[:half], rejected, slice_)
        await conn.execute(_EMPTY_STAGING)  # the first half's rows, merged: not again
        return first + await self._isolate(conn, calls[half:], rejected, slice_)

    def _is_row_error(self, exc: BaseException) -> bool:
        """A value the server or the codec cannot take: class 22 (data exception), a missing
        ``NOT NULL`` value, an index entry too large (54000)."""
        if isinstance(exc, UnicodeError | ValueError | OverflowError | TypeError):
            return True
        if isinstance(exc, self.pg.DataError):
            return True
        state = str(getattr(exc, "sqlstate", "") or "")
        return state.startswith("22") or state in _ROW_STATES


async def _admitted(batch: list[Row], slice_: Slice) -> tuple[list[Row], list[tuple[str, str]]]:
    """The batch's calls the store's door lets in, and those it refuses, a step at a time."""
    kept: list[Row] = []
    refused: list[tuple[str, str]] = []
    for start in range(0, len(batch), _STEP):
        step_kept, step_refused = admit(batch[start : start + _STEP])
        kept += step_kept
        refused += step_refused
        await slice_.breathe()
    return kept, refused


class _Stream:
    """A batch's COPY rows made as the COPY takes them, a step of calls at a time, with what
    each call adds to the rollups (:func:`~.._rollup.derive`) summed on the way: after the
    COPY, :attr:`batch` is the batch's (:class:`_pg_rollup.Batch`).

    asyncpg encodes a row as it takes it and sends every 512 KiB, so the server stores the
    batch's first rows while its last are made; the loop gets a turn whenever the batch's
    slice is spent; no COPY row outlives its step (a batch's rows held at once were promoted
    into the collector's oldest generation, whose sweeps held the loop for tens of ms).
    """

    __slots__ = ("batch", "calls", "slice_")

    def __init__(self, calls: list[Row], slice_: Slice) -> None:
        self.calls = calls
        self.slice_ = slice_
        self.batch = _pg_rollup.Batch(slice_=slice_)

    async def rows(self) -> AsyncIterator[list[Any]]:
        calls, batch, raw_of = self.calls, self.batch, _pg_rollup.raw_of
        for start in range(0, len(calls), _STEP):
            step = list(map(pg_row, calls[start : start + _STEP]))
            batch.take(derive([raw_of(_RAW_OF_COPY(row)) for row in step], batch.groups))
            for row in step:
                yield row
            await self.slice_.breathe()


class _Turn:
    """A batch's hold on :attr:`PgWriter.copying`, given up as soon as its calls are sent
    (:meth:`give`), else when the batch is done."""

    __slots__ = ("held", "lock")

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock
        self.held = False

    async def __aenter__(self) -> _Turn:
        await self.lock.acquire()
        self.held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.give()

    def give(self) -> None:
        """Let the next batch send its calls."""
        if self.held:
            self.held = False
            self.lock.release()


class _DayGone(Exception):
    """Retention dropped a day of the batch between making its partition and the write."""


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
