"""Bounded batching, retry with backoff, and shielded closing: the helpers every slow sink uses.

Layer 2: below the stores, the exporters and the pipeline, so none of them imports upward. A
:class:`BatchQueue` is a bounded queue drained in batches by one asyncio task (handling up to
``overlap`` batches at once, each counted delivered in queue order), with retry and
exponential backoff with jitter. It is the only implementation of batching with retry in the
package.

Overflow policy is the owner's choice: ``"wait"`` (the producer awaits room: backpressure, nothing
is dropped) or ``"drop_oldest"`` (the producer never waits; the oldest queued item is dropped and
counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import os
import random
import time
from collections import deque
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, NamedTuple, TypeVar

from ._exceptions import ConfigError, ExportError, StoreClosedError, require_int

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence

__all__ = [
    "SLICE_SECONDS",
    "STRICT_ENV",
    "BatchQueue",
    "ClosesOnExit",
    "Lifecycle",
    "Listens",
    "QueueOwner",
    "QueueSettings",
    "QueueStats",
    "QueueValues",
    "QueuedSpanProcessor",
    "RetryPolicy",
    "Retryable",
    "Slice",
    "State",
    "both",
    "finish",
    "give_turn",
    "report_internal_error",
    "run_now",
    "run_sliced",
]

logger = logging.getLogger("asynctelemetry")
T = TypeVar("T")
V = TypeVar("V")

#: Set (to anything but "" or "0") to re-raise internal errors instead of logging them; the test
#: suite sets it so that bugs surface.
STRICT_ENV = "ASYNCTELEMETRY_STRICT"
_reported: set[tuple[str, type[BaseException]]] = set()


def report_internal_error(where: str, exc: Exception) -> None:
    """Log an internal failure once per place and kind; re-raise it under the test suite."""
    if os.environ.get(STRICT_ENV, "") not in ("", "0"):
        raise exc
    key = (where, type(exc))
    if key not in _reported:
        _reported.add(key)
        logger.error(
            "asynctelemetry: %s failed (%s: %s); counting and carrying on",
            where,
            type(exc).__name__,
            exc,
        )


class State(enum.Enum):
    """Where a service is in its life: ``NEW`` (made, or stopped and free to start again),
    ``OPEN`` (started, opened, serving), ``CLOSING`` (the first close is running), ``CLOSED``."""

    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Lifecycle:
    """The one lifecycle of every service (stores, exporters, the collector, the dashboard, the
    metrics server, the tracer): new → open → closing → closed.

    The first :meth:`close` runs the service's closing in a task of its own, shielded from the
    caller's cancellation and bounded by ``timeout``; later and concurrent callers wait for it
    to end (they do not see its error: the first caller got it). Once closing, :meth:`check`
    refuses work with :class:`StoreClosedError`.
    """

    __slots__ = ("_task", "ended", "name", "state")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = State.NEW
        #: Closing or closed: no more work is taken (``state`` said as one bool for hot paths).
        self.ended = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Lifecycle {self.name} {self.state.value}>"

    @property
    def is_open(self) -> bool:
        """Opened (started) and not closing or closed."""
        return self.state is State.OPEN

    def check(self) -> None:
        """Refuse work once closing.

        Raises:
            StoreClosedError: :meth:`close` was called.
        """
        if self.ended:
            raise StoreClosedError(f"{self.name} is closed")

    def opened(self) -> None:
        """The service is open (a close that began meanwhile wins)."""
        if self.state is State.NEW:
            self.state = State.OPEN

    def stopped(self) -> None:
        """A server that may start again stopped: back to ``NEW``."""
        if self.state is State.OPEN:
            self.state = State.NEW

    async def close(
        self, body: Callable[[], Awaitable[None]] | None = None, timeout: float | None = None
    ) -> None:
        """Run ``body`` (the service's closing) once, whoever asks first, and wait for its end.
        Without a body (nothing to release) the service is closed at once.

        Raises:
            Exception: what ``body`` raised, to the first caller only.
        """
        task = self._task
        if task is not None:
            await asyncio.wait((task,))  # the first caller's close: waited for, not re-raised
            return
        self.state = State.CLOSING
        self.ended = True
        if body is None:
            self.state = State.CLOSED
            return
        task = self._task = asyncio.get_running_loop().create_task(
            self._close(body, timeout), name=f"asynctelemetry close {self.name}"
        )
        await finish(task)

    async def _close(self, body: Callable[[], Awaitable[None]], timeout: float | None) -> None:
        bound = asyncio.timeout(timeout)
        try:
            async with bound:
                await body()
        except TimeoutError:
            if not bound.expired():
                raise
            logger.warning(
                "asynctelemetry: closing %s took more than %s s; given up", self.name, timeout
            )
        finally:
            self.state = State.CLOSED


#: Longest run of work the event loop's thread does between two turns of the loop, in seconds:
#: every long piece of work (pricing a batch, converting a request, encoding, retention) is cut
#: into slices of about this much, so no unit of work holds the loop more than a few ms (a timer
#: falls due during one slice at worst, and other tasks' steps run beside it: 2 ms leaves room).
SLICE_SECONDS: Final = 0.002


async def give_turn() -> None:
    """Let what fell due while this task worked run before it works again.

    asyncio queues the timers and the I/O callbacks that came due during a step behind the
    callbacks already ready, this task's own resumption among them: after one ``sleep(0)`` the
    next slice would run first, and a timer would wait two slices. After the second pause, they
    have run.
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


class Slice:
    """The one way long work shares the event loop: a clock of :data:`SLICE_SECONDS` slices.

    In a coroutine, ``await slice.breathe()`` after each unit of work (a clock read, and a turn
    of the loop once the slice is spent). In a generator of steps (work a caller may run at
    once or in slices: :func:`run_now`, :func:`run_sliced`), ``if slice.spent(): yield`` then
    :meth:`renew`.
    """

    __slots__ = ("_deadline", "seconds")

    def __init__(self, seconds: float = SLICE_SECONDS) -> None:
        self.seconds = seconds
        self._deadline = time.perf_counter() + seconds

    def spent(self) -> bool:
        """Whether this slice's time is used up: give the loop its turn before more work."""
        return time.perf_counter() >= self._deadline

    def renew(self) -> None:
        """A new slice begins (the loop just had its turn)."""
        self._deadline = time.perf_counter() + self.seconds

    async def breathe(self) -> None:
        """Give the loop a turn if the slice is spent (else only a clock read). A slice shared
        by pieces of work running at once is theirs together: the first back after the turn
        starts a new one, the others only take what is left of it."""
        deadline = self._deadline
        if time.perf_counter() >= deadline:
            await give_turn()
            if self._deadline == deadline:  # nobody began a new slice meanwhile
                self._deadline = time.perf_counter() + self.seconds

    async def each(self, items: Iterable[T], step: int = 32) -> AsyncIterator[T]:
        """``items`` one by one for a consumer that iterates asynchronously and does work per
        item on the loop's thread (asyncpg encodes a COPY's rows as it takes them), breathing
        every ``step`` items."""
        for count, item in enumerate(items, 1):
            yield item
            if not count % step:
                await self.breathe()


def run_now(steps: Generator[None, None, T]) -> T:
    """Run a generator of slices (see :class:`Slice`) to its end without pausing; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def run_sliced(steps: Generator[None, None, T], turn: asyncio.Lock | None = None) -> T:
    """Run a generator of slices (see :class:`Slice`), giving the loop a turn between two
    slices; its result. ``turn``: a lock that pieces of work running at once share, each
    holding it over one slice and the pause after it, so they take turns slice by slice."""
    while True:
        async with turn if turn is not None else _NO_TURN:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            await give_turn()


_NO_TURN: Final = contextlib.nullcontext()


class ClosesOnExit:
    """Mixin of every service: leaving ``async with`` awaits its ``aclose()`` (which the
    service defines), whether the block raised or not."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Release the service (each service says how)."""
        raise NotImplementedError

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Listens(ClosesOnExit):
    """Mixin of a service that listens (the collector, the dashboard, the metrics server)."""

    __slots__ = ()
    _life: Lifecycle

    @property
    def is_running(self) -> bool:
        """Whether it is serving: started, and not stopped or closed."""
        return self._life.is_open


async def both(first: Awaitable[T], second: Awaitable[V]) -> tuple[T, V]:
    """Both awaited at once; when one fails, the other is cancelled and awaited, and the first
    failure propagates as it is (a ``StoreError`` stays one)."""
    a = asyncio.ensure_future(first)
    b = asyncio.ensure_future(second)
    try:
        return await a, await b
    except BaseException:
        for task in (a, b):
            task.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
        raise


async def finish(task: asyncio.Future[T]) -> T:
    """Await ``task`` to its end even if the caller is cancelled meanwhile, then re-raise that.

    Cleanup (closing a store, flushing an exporter) must not be cut short by the cancellation of
    whoever asked for it: anyio's shields do not stop a native ``Task.cancel()``, this does. The
    task itself bounds how long it runs.
    """
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The settings of a service's background queue, one name each everywhere (stores,
    exporters, collector), passed together as ``queue=QueueSettings(...)`` (as httpx takes a
    ``Timeout`` or ``Limits``) or one by one as keywords of the same names.

    A field left ``None`` keeps the service's own default (a SQLite store commits up to 32,768
    calls per batch, an exporter sends 512), so ``QueueSettings(max_queue=1000)`` changes the
    bound only. A service's ``queue`` attribute gives back the settings it runs with, every
    field filled in.

    Attributes:
        max_queue: most items held before ``add`` waits (stores, collector) or the oldest is
            dropped (exporters).
        batch_size: most items handed on at once (calls per transaction or export; the
            collector's requests per hand-off to its sinks).
        flush_interval: seconds a partial batch waits to fill.
        close_timeout: seconds closing spends delivering what is queued (the collector's
            default ``stop()`` grace).

    Raises:
        ConfigError: a count below 1 or not an int, or seconds that are negative or not finite.
    """

    max_queue: int | None = None
    batch_size: int | None = None
    flush_interval: float | None = None
    close_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in _COUNTS:
            value = getattr(self, name)
            if value is not None:
                require_int(name, value)
        for name in _SECONDS:
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and 0 <= value < math.inf
            ):
                raise ConfigError(f"{name} must be finite seconds >= 0, not {value!r}")


_COUNTS: Final = ("max_queue", "batch_size")
_SECONDS: Final = ("flush_interval", "close_timeout")


class QueueValues(NamedTuple):
    """A service's queue settings with every field set: its defaults, then what it was given."""

    max_queue: int
    batch_size: int
    flush_interval: float
    close_timeout: float

    def resolve(
        self,
        owner: str,
        given: QueueSettings,
        queue: QueueSettings | None = None,
    ) -> QueueValues:
        """These defaults overridden by the keywords given one by one (``given``: the service's
        four keywords, None where not given) and by ``queue=``.

        Raises:
            TypeError: ``queue`` is not a :class:`QueueSettings`, or one setting given twice
                with two values (``queue=`` and a keyword).
            ConfigError: a value that cannot work (see :class:`QueueSettings`).
        """
        if queue is not None and not isinstance(queue, QueueSettings):
            raise TypeError(f"{owner}(queue=...) takes a QueueSettings, not {queue!r}")
        values = {name: value for name in _FIELDS if (value := getattr(given, name)) is not None}
        for name in _FIELDS if queue is not None else ():
            theirs = getattr(queue, name)
            if theirs is not None and values.setdefault(name, theirs) != theirs:
                raise TypeError(
                    f"{owner}() got {name}={values[name]!r} and queue={queue!r}: "
                    f"give {name} once, or the same value in both"
                )
        return self._replace(**values)

    def settings(self) -> QueueSettings:
        """These values as the public :class:`QueueSettings`."""
        return QueueSettings(*self)


_FIELDS: Final = ("max_queue", "batch_size", "flush_interval", "close_timeout")


class _QueueValue(Generic[V]):
    """One queue setting read as an attribute of its service (``store.max_queue``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, service: QueueOwner, kind: type | None = None) -> V:
        value: V = getattr(service._queue_values, self._name)
        return value

    def __set__(self, service: QueueOwner, value: V) -> None:
        raise AttributeError(f"{self._name} is read-only: give it when making the service")


class QueueOwner:
    """Mixin of a service with a background queue: its settings, read as attributes
    (``max_queue``, ``batch_size``, ``flush_interval``, ``close_timeout``; see
    :class:`QueueSettings`) and together as :attr:`queue`."""

    __slots__ = ()
    _queue_values: QueueValues
    max_queue: _QueueValue[int] = _QueueValue()
    batch_size: _QueueValue[int] = _QueueValue()
    flush_interval: _QueueValue[float] = _QueueValue()
    close_timeout: _QueueValue[float] = _QueueValue()

    @property
    def queue(self) -> QueueSettings:
        """The queue settings this service runs with (every field filled in)."""
        return self._queue_values.settings()


class Retryable(Exception):
    """Raised by a batch handler: the batch failed but may succeed later; try it again.

    Args:
        cause: the underlying error, kept for ``flush()`` callers and the log.
        delay: seconds the peer asked us to wait (gRPC ``RetryInfo``, HTTP ``Retry-After``).
    """

    def __init__(self, cause: BaseException, delay: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.delay = delay


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter between ``initial`` and ``maximum`` seconds.

    ``max_attempts=None`` retries for ever (a store that must not lose what it was given);
    otherwise the batch is dropped and counted after that many failed attempts.
    """

    initial: float = 0.05
    maximum: float = 5.0
    max_attempts: int | None = 6

    def delay(self, attempt: int, asked: float | None = None) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        if asked is not None:
            return min(max(asked, 0.0), self.maximum * 4)
        ceiling = min(self.maximum, self.initial * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What a background queue has done: a snapshot, taken when ``stats`` is read.

    It never changes afterwards, so two snapshots differ by exactly the work done between them;
    assigning to a field raises. ``accepted`` = ``delivered`` + ``dropped`` + ``pending``.

    Attributes:
        accepted: items taken (``put``/``emit``).
        delivered: items the handler took without error (written, sent).
        pending: items queued or being handled at the moment of the snapshot.
        dropped_overflow: items dropped because the queue was full (``drop_oldest`` queues).
        dropped_failed: items given up on after failing (non-retryable, or out of attempts).
        dropped_on_close: items still queued when ``aclose()`` ran out of time.
        retries: batch attempts that failed and were tried again.
        failed_batches: batches given up on.
        last_error: the last delivery error, as ``"Type: message"``.
    """

    accepted: int = 0
    delivered: int = 0
    pending: int = 0
    dropped_overflow: int = 0
    dropped_failed: int = 0
    dropped_on_close: int = 0
    retries: int = 0
    failed_batches: int = 0
    last_error: str | None = None

    @property
    def dropped(self) -> int:
        """Items lost for any reason: overflow, failed batches, undelivered at close."""
        return self.dropped_overflow + self.dropped_failed + self.dropped_on_close


@dataclass(slots=True)
class _QueueCounts:
    """The live, mutable counters behind :class:`QueueStats` (private to one queue)."""

    accepted: int = 0
    delivered: int = 0
    dropped_overflow: int = 0
    dropped_failed: int = 0
    dropped_on_close: int = 0
    retries: int = 0
    failed_batches: int = 0
    last_error: str | None = None


#: The names of a queue's live counters (every QueueStats field but ``pending``).
_COUNTED: Final = tuple(f.name for f in fields(_QueueCounts))


class _Handling(Generic[T]):
    """A batch being handled: its items, its task, whether it was delivered."""

    __slots__ = ("done", "items", "task")

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self.task: asyncio.Task[None]
        self.done = False


class BatchQueue(Generic[T]):
    """A bounded queue drained in batches by one asyncio task, with retry and backoff.

    Args:
        handler: awaited with each batch (a list, oldest first). Raise :class:`Retryable` to have
            the same batch tried again after a backoff; any other exception drops the batch
            (counted in ``stats.dropped_failed``).
        max_size: most items held (queued plus the batch being handled).
        batch_size: most items per batch.
        flush_interval: seconds to wait for a batch to fill before handling a partial one.
        overflow: ``"wait"`` (``put`` awaits room) or ``"drop_oldest"`` (``put`` never waits).
        retry: the backoff policy for :class:`Retryable` failures.
        name: used in log lines.
        drain_on_cancel: when the draining task is cancelled by someone else than ``aclose()``
            (``asyncio.run`` cancels every task as its loop ends, so a queue nobody closed gets
            here), spend up to this many seconds delivering what is queued first. ``None``:
            stop at once (what is queued stays queued, counted by ``pending``).
        overlap: most batches handled at once (each by its own call of ``handler``, started in
            queue order; the handler orders what must not overlap). A batch counts as
            delivered, for ``flush``, only once every batch before it is: a retried batch holds
            the ones after it back, and may be stored after them.
    """

    def __init__(
        self,
        handler: Callable[[list[T]], Awaitable[None]],
        *,
        max_size: int = 10_000,
        batch_size: int = 512,
        flush_interval: float = 0.05,
        overflow: Literal["wait", "drop_oldest"] = "wait",
        retry: RetryPolicy | None = None,
        name: str = "queue",
        drain_on_cancel: float | None = None,
        overlap: int = 1,
    ) -> None:
        if max_size < 1 or batch_size < 1 or flush_interval < 0 or overlap < 1:
            raise ValueError("max_size, batch_size and overlap must be >= 1, flush_interval >= 0")
        self._handler = handler
        self.max_size = max_size
        self.batch_size = min(batch_size, max_size)
        self.flush_interval = flush_interval
        self.overflow = overflow
        self.retry = retry or RetryPolicy()
        self.name = name
        self.drain_on_cancel = drain_on_cancel
        self.overlap = overlap
        #: Batches being handled, oldest first.
        self._running: deque[_Handling[T]] = deque()
        self._counts = _QueueCounts()
        self._items: deque[T] = deque()
        self._in_flight = 0
        self._settled = 0  # items delivered or given up on, for flush()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._urgent = 0  # flush() callers waiting: do not wait for a batch to fill
        self._life = Lifecycle(name)
        self._stopped = False  # the draining task was stopped for good (closing)
        self._error: BaseException | None = None
        self._error_seq = 0

    @classmethod
    def of(
        cls, handler: Callable[[list[T]], Awaitable[None]], values: QueueValues, **options: Any
    ) -> BatchQueue[T]:
        """A queue bounded and batched by a service's :class:`QueueValues` (``options`` as in
        the constructor: ``overflow``, ``retry``, ``name``, ``drain_on_cancel``)."""
        return cls(
            handler,
            max_size=values.max_queue,
            batch_size=values.batch_size,
            flush_interval=values.flush_interval,
            **options,
        )

    @property
    def stats(self) -> QueueStats:
        """A snapshot of what this queue has done so far (it does not change afterwards)."""
        counts = self._counts
        pending = len(self._items) + self._in_flight
        return QueueStats(pending=pending, **{n: getattr(counts, n) for n in _COUNTED})

    # -- producer side --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Items queued or being handled."""
        return len(self._items) + self._in_flight

    def put_nowait(self, item: T) -> bool:
        """Queue ``item`` without waiting. False (nothing queued) when full under ``"wait"``."""
        if self._life.ended:
            raise StoreClosedError(f"{self.name} is closed")
        if self.pending >= self.max_size:
            if self.overflow == "wait":
                return False
            if self._items:
                self._items.popleft()
                self._counts.dropped_overflow += 1
                self._settled += 1
            else:  # everything held is in flight: the new item is the one that cannot be kept
                self._counts.dropped_overflow += 1
                self._counts.accepted += 1
                self._settled += 1
                return True
        self._items.append(item)
        self._counts.accepted += 1
        self._kick()
        return True

    async def put(self, item: T) -> None:
        """Queue ``item``, awaiting room under ``"wait"`` (backpressure)."""
        while not self.put_nowait(item):
            await self._wait_for_room()

    async def put_many(self, items: Sequence[T]) -> None:
        """Queue every item, in order, awaiting room as needed."""
        for item in items:
            if not self.put_nowait(item):
                await self.put(item)

    # -- control --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the draining task in the running loop (``put`` starts it too)."""
        if self._task is None and not self._stopped:
            self._wakeup = asyncio.Event()
            self._progress = asyncio.Event()
            self._room = asyncio.Event()
        if (self._task is None or self._task.done()) and not self._stopped:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"asynctelemetry {self.name}"
            )

    async def flush(self, timeout: float | None = None) -> None:
        """Return once everything queued before the call is delivered.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            ExportError: some of it was given up on (dropped after failing), with the cause.
            Exception: the handler's error, when a batch fails while waiting: the caller learns
                of the fault at once; a batch being retried stays queued and is delivered later.
        """
        given_up = self._counts.dropped_failed
        async with asyncio.timeout(timeout):
            await self._settle(self._counts.accepted, raise_errors=True)
        lost = self._counts.dropped_failed - given_up
        if lost:
            raise ExportError(f"{self.name} gave up on {lost} items: {self._counts.last_error}")

    async def aclose(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then stop. Idempotent.

        Safe to call concurrently and from a task that gets cancelled: the closing runs to its
        end (bounded by ``timeout``) either way. What is still queued at the deadline is counted
        in ``stats.dropped_on_close`` and logged, and the last delivery error, if there was one,
        is raised.
        """
        await self._life.close(lambda: self._close(timeout))

    async def _close(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._settle(self._counts.accepted, raise_errors=False)
        except TimeoutError:
            pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._stopped = True
        lost = len(self._items)
        if lost:
            self._counts.dropped_on_close += lost
            self._settled += lost
            self._items.clear()
            logger.warning("asynctelemetry: %s closed with %d items undelivered", self.name, lost)
            if self._error is not None:
                raise self._error

    async def _settle(self, target: int, *, raise_errors: bool) -> None:
        if self._settled >= target:
            return
        self.start()
        seen_error = self._error_seq
        self._urgent += 1
        self._kick()
        try:
            while self._settled < target:
                if raise_errors and self._error_seq != seen_error and self._error is not None:
                    raise self._error
                assert self._progress is not None
                self._progress.clear()
                await self._progress.wait()
        finally:
            self._urgent -= 1

    # -- the draining task ----------------------------------------------------------------------
    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self.start()
        elif self._wakeup is not None:
            self._wakeup.set()

    async def _wait_for_room(self) -> None:
        self.start()
        assert self._room is not None
        self._room.clear()
        if self.pending >= self.max_size:
            await self._room.wait()

    def _notify(self) -> None:
        assert self._progress is not None and self._room is not None
        self._progress.set()
        if self.pending < self.max_size:
            self._room.set()

    async def _drain(self) -> None:
        try:
            await self._drain_forever()
        except asyncio.CancelledError:
            if self._life.ended or self.drain_on_cancel is None or not self._items:
                raise
            await self._drain_before_cancel(self.drain_on_cancel)
            raise

    async def _drain_before_cancel(self, deadline: float) -> None:
        """Deliver what is queued within ``deadline`` seconds; the cancellation then goes on."""
        try:
            async with asyncio.timeout(deadline):
                while self._items:
                    count = min(self.batch_size, len(self._items))
                    batch = [self._items.popleft() for _ in range(count)]
                    self._in_flight = count
                    try:
                        await self._deliver(batch)
                    except BaseException:
                        self._items.extendleft(reversed(batch))
                        raise
                    finally:
                        self._in_flight = 0
                    self._settled += count
        except TimeoutError:
            pass  # still queued: counted by ``pending`` and reported by the owner
        finally:
            if self._progress is not None:
                self._notify()

    async def _drain_forever(self) -> None:
        assert self._wakeup is not None
        running = self._running
        try:
            while True:
                if not self._items:
                    if running:
                        await running[0].task
                        continue
                    # Idle: the task ends (the next put starts another), so an idle queue holds
                    # no pending task that a dropped, unclosed owner would leave to be destroyed.
                    return
                if len(running) >= self.overlap:
                    await running[0].task
                    continue
                if len(self._items) < self.batch_size and not (self._urgent or self._life.ended):
                    # Let a partial batch fill for up to flush_interval.
                    self._wakeup.clear()
                    try:
                        async with asyncio.timeout(self.flush_interval):
                            while len(self._items) < self.batch_size and not self._urgent:
                                await self._wakeup.wait()
                                self._wakeup.clear()
                    except TimeoutError:
                        pass
                count = min(self.batch_size, len(self._items))
                batch = _Handling([self._items.popleft() for _ in range(count)])
                self._in_flight += count
                batch.task = asyncio.get_running_loop().create_task(
                    self._handle(batch), name=f"asynctelemetry {self.name} batch"
                )
                running.append(batch)
        except asyncio.CancelledError:
            # Closing: the batches not delivered go back, in order, for aclose() to count.
            for handling in running:
                handling.task.cancel()
            unfinished = [handling.task for handling in running if not handling.task.done()]
            if unfinished:  # (the one this task was waiting for has finished already)
                await asyncio.gather(*unfinished, return_exceptions=True)
            while running:
                handling = running.pop()
                if handling.done:  # delivered, waiting for an older batch: settled
                    self._settled += len(handling.items)
                else:
                    self._items.extendleft(reversed(handling.items))
            self._in_flight = 0
            raise

    async def _handle(self, batch: _Handling[T]) -> None:
        """Deliver one batch; then count it and every delivered batch after it settled, once
        every batch before it is."""
        await self._deliver(batch.items)
        batch.done = True
        running = self._running
        while running and running[0].done:
            count = len(running.popleft().items)
            self._in_flight -= count
            self._settled += count
        self._notify()

    async def _deliver(self, batch: list[T]) -> None:
        attempt = 0
        while True:
            try:
                await self._handler(batch)
            except Retryable as exc:
                attempt += 1
                self._fail(exc.cause)
                limit = self.retry.max_attempts
                if limit is not None and attempt >= limit:
                    self._counts.dropped_failed += len(batch)
                    self._counts.failed_batches += 1
                    logger.warning(
                        "asynctelemetry: %s dropped a batch of %d after %d attempts: %s",
                        self.name,
                        len(batch),
                        attempt,
                        exc.cause,
                    )
                    return
                self._counts.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, exc.delay))
            except Exception as exc:
                self._fail(exc)
                self._counts.dropped_failed += len(batch)
                self._counts.failed_batches += 1
                logger.warning(
                    "asynctelemetry: %s dropped a batch of %d: %s: %s",
                    self.name,
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
                return
            else:
                self._counts.delivered += len(batch)
                self._error = None
                return

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._error_seq += 1
        self._counts.last_error = f"{type(exc).__name__}: {exc}"
        assert self._progress is not None
        self._progress.set()


class QueuedSpanProcessor:
    """An OpenTelemetry SDK span processor (duck-typed: the SDK is an optional extra) whose
    ended spans wait in a :class:`BatchQueue` on the loop, never a thread: past ``max_queue``
    the oldest is dropped and counted; a batch that fails with :class:`Retryable` is tried
    again, three attempts at most. A subclass hands its ``_handle`` (one batch) to
    ``__init__``, and may override :meth:`on_end`.
    """

    def __init__(
        self, handle: Callable[[list[Any]], Awaitable[None]], *, max_queue: int, name: str
    ) -> None:
        self.queue: BatchQueue[Any] = BatchQueue(
            handle,
            max_size=max_queue,
            flush_interval=0.2,
            overflow="drop_oldest",
            retry=RetryPolicy(max_attempts=3),
            name=name,
        )

    def on_start(self, span: object, parent_context: object = None) -> None:
        """Nothing to do when a span starts."""

    def _on_ending(self, span: object) -> None:
        """Nothing to do before a span ends (SDK hook)."""

    def on_end(self, span: Any) -> None:
        """Queue the ended span (on the loop's thread)."""
        self.queue.put_nowait(span)

    def shutdown(self) -> None:
        """The SDK's synchronous shutdown: the tracer's ``aclose`` does the real work."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """The SDK's synchronous flush cannot wait on the loop; ``await tracer.flush()`` does."""
        return True

    async def flush(self) -> None:
        """Every span ended before this call is handled."""
        await self.queue.flush()

    async def aclose(self) -> None:
        await self.queue.aclose()
