"""The shell of a store written by a background task (SQLite, PostgreSQL): one implementation.

:class:`WriterStore` owns everything around the write itself: the lifecycle (new → open →
closing → closed: :class:`~asynctelemetry._batching.Lifecycle`), the open lock, the writer queue
(a :class:`~asynctelemetry._batching.BatchQueue`: backpressure, retried for ever, drained before
an ``asyncio.run`` loop ends), the retention task, closing with its report of what was lost, the
``rejected`` and ``duplicates`` counts and ``stats``, the failing/recovered log lines, and the
``ResourceWarning`` (and the exit report) of a store left open. An engine supplies the hooks:

- ``_connect()``: open its connections, the schema ready (read-only when ``read_only``);
- ``_write_records(batch) -> (inserted, rejected)``: store one batch of calls (records or
  compact rows) and steps; raise :class:`~asynctelemetry._batching.Retryable` for a failure
  worth retrying (the batch stays queued), another error to drop the batch;
- ``_release()``: close its connections (shielded; an ``open()`` in progress ended first);
- ``_upkeep()``: the background pass loop to run while open (retention), or ``None``.

What is still queued when the interpreter exits is reported by :func:`report_unclosed` (an
``atexit`` hook) as lost, with a ``ResourceWarning`` naming the store, as a store garbage-collected
open is; finalizers only warn and hand their log line to the loop (:func:`log_later`).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import warnings
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

from .._batching import (
    BatchQueue,
    ClosesOnExit,
    Lifecycle,
    QueueOwner,
    QueueSettings,
    QueueValues,
    Retryable,
    RetryPolicy,
    State,
)
from .._exceptions import StoreError
from .._stats import StoreStats
from ._base import StoreCounts, StoreReads
from ._door import enter, enter_all, log_rejected

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

    from .._batching import QueueStats
    from .._record import LLMCall, TraceSpan
    from .._rows import Row

__all__ = ["WriterStore", "Written", "report_unclosed"]

logger = logging.getLogger("asynctelemetry")
#: What an engine's batch write gives back: records stored, and ``(id, reason)`` per refusal.
Written = tuple[int, list[tuple[str, str]]]
#: Seconds closing may take beyond draining the queue (``close_timeout``) and releasing the
#: connections (bounded by ``close_timeout`` again) before it is given up.
CLOSE_GRACE: Final = 5.0


class WriterStore(StoreReads, StoreCounts, QueueOwner, ClosesOnExit):
    """A store written in batches by a background task (see the module docstring)."""

    #: The engine's name in log lines: "SQLite", "PostgreSQL".
    _engine: ClassVar[str]
    #: Batches the engine writes at once (the queue's ``overlap``).
    _overlap: ClassVar[int] = 1
    #: The engine's retention: bounds, counters (``deleted``) and its background passes.
    retention: Any

    def _start_shell(
        self,
        defaults: QueueValues,
        given: QueueSettings,
        queue: QueueSettings | None,
        *,
        where: str,
        read_only: bool,
    ) -> None:
        """Set up the shell (first thing in ``__init__``): the queue settings (``defaults``,
        then the keywords ``given``, then ``queue=``), where the calls go as messages say it
        (a path, a masked DSN) and whether the store only reads."""
        kind = type(self).__name__
        self._queue_values = defaults.resolve(kind, given, queue)
        #: Opened for reading only: nothing is created, migrated or written.
        self.read_only = read_only
        self._where = where
        self._life = Lifecycle(f"{kind}({where})")
        self._opening: asyncio.Lock | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._rejected = 0
        self._duplicates = 0
        self._failing = False
        self._queue: BatchQueue[Row | TraceSpan] = BatchQueue.of(
            self._write_batch,
            self._queue_values,
            overflow="wait",  # backpressure: ``add`` waits when full
            retry=RetryPolicy(max_attempts=None),  # a store never drops what it was given
            name=f"{kind}({where})",
            # Not closed, and its loop is ending (asyncio.run cancels every task): write the
            # queue before the loop goes, as aclose() would.
            drain_on_cancel=self.close_timeout,
            overlap=self._overlap,
        )

    # -- the engine's hooks ---------------------------------------------------------------------
    async def _connect(self) -> None:
        """Open the connections, the schema ready."""
        raise NotImplementedError

    async def _write_records(self, batch: list[Row | TraceSpan]) -> Written:
        """Store one batch; return how many records it stored and ``(id, reason)`` for each
        one refused."""
        raise NotImplementedError

    async def _release(self) -> None:
        """Close the connections."""
        raise NotImplementedError

    def _upkeep(self) -> Coroutine[Any, Any, None] | None:
        """The background passes to run while open (retention), or ``None``."""
        return None

    # -- state and counters ---------------------------------------------------------------------
    def __repr__(self) -> str:
        state = self._life.state
        shown = "unopened" if state is State.NEW else state.value
        return f"{type(self).__name__}({self._where!r}, {shown}, pending={self.pending})"

    @property
    def is_open(self) -> bool:
        """Opened and not closed yet."""
        return self._life.is_open

    @property
    def pending(self) -> int:
        """Calls added and not yet committed."""
        return self._queue.pending

    @property
    def retention_deleted(self) -> int:
        """Calls deleted by retention (``max_age``/``max_rows``) since the store opened."""
        return int(self.retention.deleted)

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
        """Connect and make the schema ready (created or migrated). Idempotent; a store opens
        on its first use too.

        Raises:
            StoreClosedError: the store was closed.
            SchemaVersionError: the database was written by a newer asynctelemetry.
            StoreError: the database cannot be opened or reached.
        """
        life = self._life
        life.check()
        if life.is_open:
            return self
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if life.state is State.NEW:
                await self._connect()
                life.opened()
                _OPEN.add(self)
                upkeep = self._upkeep()
                if upkeep is not None:
                    self._retention_task = asyncio.get_running_loop().create_task(
                        upkeep, name=f"{self!r} retention"
                    )
        life.check()  # closed while opening
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def aclose(self) -> None:
        """Write what is queued (within ``close_timeout``), then close the connections.
        Idempotent: a later or concurrent call returns once the first one has closed them.

        Raises:
            StoreError: some calls could not be written before the deadline (they are lost; the
                count and the last error are in the message and the log).
        """
        _OPEN.discard(self)
        if self._retention_task is not None:  # at once: a pass must not start on a closing store
            self._retention_task.cancel()
        await self._life.close(self._close, 2 * self.close_timeout + CLOSE_GRACE)

    async def _close(self) -> None:
        error: BaseException | None = None
        ended: BaseException | None = None
        before = self._queue.stats.dropped_on_close
        try:
            if self._retention_task is not None:
                self._retention_task.cancel()
                (ended,) = await asyncio.gather(self._retention_task, return_exceptions=True)
            try:
                await self._queue.aclose(timeout=self.close_timeout)
            except Exception as exc:
                error = exc
            lost = self._queue.stats.dropped_on_close - before
            if lost:
                why = f": {error}" if error is not None else " (close deadline)"
                error = StoreError(f"{lost} calls could not be written to {self._where}{why}")
        finally:
            if self._opening is not None:
                await self._opening.acquire()  # an open() in progress finishes first
            await self._release()
        if error is not None:
            logger.error("asynctelemetry: %s", error)
            raise error
        if isinstance(ended, Exception):  # a retention bug, re-raised under ASYNCTELEMETRY_STRICT
            raise ended

    def __del__(self) -> None:
        life = getattr(self, "_life", None)
        if life is None or not life.is_open or self in _REPORTED:
            return
        message = lost_message(self, "garbage-collected")
        if self.pending:
            log_later(message)  # no logging inside a finalizer: on the loop, or at exit
        warnings.warn(message, ResourceWarning, stacklevel=2, source=self)

    async def _ready(self) -> None:
        """Open the store if it is not yet (closed: :class:`StoreClosedError`)."""
        if not self._life.is_open:
            await self.open()

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"{self._where} was opened read-only ({type(self).__name__}(read_only=True)): "
                "it takes no calls"
            )

    # -- writing --------------------------------------------------------------------------------
    async def add(self, call: LLMCall | TraceSpan) -> None:
        """Queue one call or step for writing; waits while ``max_queue`` records are queued."""
        self._writable()
        await self._ready()
        await self._queue.put(enter(call))

    async def add_many(self, calls: Sequence[LLMCall | TraceSpan]) -> None:
        """Queue many calls and steps, in order; waits for room as needed."""
        self._writable()
        await self._ready()
        await self._queue.put_many(enter_all(calls))

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """The sink method: the same as :meth:`add_many`."""
        await self.add_many(calls)

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Queue steps (the :class:`~asynctelemetry.SpanSink` method): the same writer and
        queue as calls, so ``flush()`` covers both."""
        await self.add_many(spans)

    async def flush(self) -> None:
        """Return once every call added before is committed.

        Raises:
            StoreError: a batch is failing (disk full, server down); the calls stay queued.
        """
        if self._life.is_open:
            await self._queue.flush()

    async def _write_batch(self, batch: list[Row | TraceSpan]) -> None:
        """The queue's handler: the engine writes, the shell counts and logs."""
        try:
            inserted, rejected = await self._write_records(batch)
        except Retryable as exc:
            if not self._failing:
                self._failing = True
                logger.warning("asynctelemetry: %s; they stay queued, retrying", exc.cause)
            raise
        if self._failing:
            self._failing = False
            logger.warning("asynctelemetry: %s is writing again", self._where)
        log_rejected(self._engine, rejected)
        self._rejected += len(rejected)
        self._duplicates += len(batch) - inserted - len(rejected)


# -- stores left open -------------------------------------------------------------------------
_OPEN: weakref.WeakSet[WriterStore] = weakref.WeakSet()
_REPORTED: weakref.WeakSet[WriterStore] = weakref.WeakSet()
#: Error lines finalizers left to be logged (a finalizer does no logging: a handler writes and
#: takes locks, and the collection may have interrupted that very handler).
_LATE: deque[str] = deque()


def lost_message(store: WriterStore, when: str) -> str:
    """``"<store> was <when> without aclose(): N queued calls were lost"`` (or nothing was)."""
    lost = store.pending
    what = (
        f"{lost:,} queued call{'' if lost == 1 else 's'} {'was' if lost == 1 else 'were'} lost"
        if lost
        else "nothing queued was lost"
    )
    return f"{store!r} was {when} without aclose(): {what}"


def log_later(message: str) -> None:
    """Log ``message`` (an error) for a finalizer: on the next turn of the loop running in this
    thread, else at exit. Called inside the finalizer; appends and schedules, nothing more."""
    _LATE.append(message)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop here: the exit hook logs it
    loop.call_soon(_log_late)


def _log_late() -> None:
    while _LATE:
        logger.error("asynctelemetry: %s", _LATE.popleft())


def report_unclosed() -> None:
    """At exit: a ``ResourceWarning`` for every store still open, an error log if it lost calls."""
    _log_late()
    for store in list(_OPEN):
        if not store.is_open:
            continue
        message = lost_message(store, "still open at exit")
        if store.pending:
            logger.error("asynctelemetry: %s", message)
        warnings.warn(message, ResourceWarning, stacklevel=1, source=store)
        _REPORTED.add(store)
    _OPEN.clear()


atexit.register(report_unclosed)
