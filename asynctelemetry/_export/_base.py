"""What the OTLP exporters share: the queue, batching, encoding, retry hand-off and shutdown.

Both transports (gRPC and HTTP) are a :class:`OTLPExporterBase` with a ``_send`` method. The
queue is a :class:`~asynctelemetry._batching.BatchQueue` with ``overflow="drop_oldest"``:
``emit`` never waits (an LLM call must not slow down because a collector is slow or gone), a full
queue drops its oldest call and counts it, and ``_send`` raises
:class:`~asynctelemetry._batching.Retryable` for the failures the OTLP specification calls
retryable, so the batch is tried again after a backoff with jitter (or after the delay the server
asked for).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .._batching import (
    BatchQueue,
    ClosesOnExit,
    Lifecycle,
    QueueOwner,
    QueueSettings,
    QueueStats,
    QueueValues,
    RetryPolicy,
    Slice,
)
from .._exceptions import ConfigError, ExportError
from ._encode import SpanEncoder
from ._transport import TransportOptions, open_transport

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from typing import Self

    from .._record import LLMCall, TraceSpan
    from ._transport import Transport

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_QUEUE",
    "ExporterShell",
    "ExporterStats",
    "OTLPExporterBase",
    "export_queue",
    "settle",
]

logger = logging.getLogger("asynctelemetry")
T = TypeVar("T")

#: Calls held while waiting to be sent: a 20,000-call burst from a tight loop fits with room.
DEFAULT_MAX_QUEUE: Final = 32_768
#: Calls taken from the queue at once (the OTel SDK's default batch size too).
DEFAULT_BATCH_SIZE: Final = 512
#: Seconds a partial batch waits to fill before it is sent.
DEFAULT_FLUSH_INTERVAL: Final = 0.2
#: Seconds ``aclose()`` spends delivering what is queued before it gives up.
DEFAULT_CLOSE_TIMEOUT: Final = 5.0
#: The exporters' queue settings, together.
DEFAULT_QUEUE: Final = QueueValues(
    DEFAULT_MAX_QUEUE, DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL, DEFAULT_CLOSE_TIMEOUT
)
#: Default retry: 6 attempts, 0.1 s doubling to at most 5 s, full jitter (about 10 s in all).
DEFAULT_RETRY: Final = RetryPolicy(initial=0.1, maximum=5.0, max_attempts=6)
# Calls encoded between two yields to the event loop, so a 512-call batch never blocks it long.
_ENCODE_SLICE: Final = 32
# Most calls per export request (a batch larger than this goes out as several requests).
_REQUEST_CALLS: Final = 128


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """What an exporter has done: a snapshot taken when ``exporter.stats`` is read.

    Attributes:
        queue: the export queue: calls accepted, delivered, pending, dropped (overflow, failed
            batches, undelivered at close), retries and the last error. Calls the server
            rejected through ``partial_success`` count as delivered, and also in ``rejected``.
        rejected: calls the server refused (OTLP ``partial_success``).
        requests: export requests sent (attempts included).
    """

    queue: QueueStats
    rejected: int
    requests: int


async def settle(
    queue: BatchQueue[Any],
    timeout: float | None,
    what: str,
    first: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """An exporter's ``flush``: await ``first`` (if given), then wait until everything queued
    was delivered or given up on. A batch being retried is waited for, not reported.

    Raises:
        TimeoutError: ``timeout`` seconds passed first.
        ExportError: some of it was given up on (``stats.queue.dropped_failed``), naming
            ``what`` was lost.
    """
    failed = queue.stats.dropped_failed
    async with asyncio.timeout(timeout):
        if first is not None:
            await first()
        while True:
            try:
                await queue.flush()
                break
            except Exception:  # a failed attempt: wait until all is settled
                continue
    lost = queue.stats.dropped_failed - failed
    if lost:
        raise ExportError(f"{lost} {what} were not delivered: {queue.stats.last_error}")


def export_queue(
    handler: Callable[[list[T]], Awaitable[None]],
    values: QueueValues,
    retry: RetryPolicy | None,
    name: str,
) -> BatchQueue[T]:
    """An exporter's queue: a full one drops its oldest item (counted), a failed batch is
    retried by ``retry`` (:data:`DEFAULT_RETRY` unless given)."""
    return BatchQueue.of(
        handler, values, overflow="drop_oldest", retry=retry or DEFAULT_RETRY, name=name
    )


class ExporterShell(QueueOwner, ClosesOnExit):
    """What every OTLP exporter shares: its transport, its queue of work, the count of what
    the server refused (OTLP ``partial_success``), and one way to close.

    A subclass sets ``_transport`` (:func:`~asynctelemetry._export._transport.open_transport`)
    and ``_queue``, calls :meth:`_open_shell` in ``__init__``, and may run work before the
    queue closes (:meth:`_before_close`).
    """

    _kind = "otlp"
    #: What ``partial_success`` counts: ``"spans"`` or ``"data points"``.
    _unit = "spans"
    _transport: Transport
    _queue: BatchQueue[Any]

    def _open_shell(self) -> None:
        self._rejected = 0
        self._partial_logged = False
        self._requests = 0
        self._life = Lifecycle(type(self).__name__)

    async def _send(self, body: bytes, count: int = 0) -> None:
        """Deliver one serialized export request (counted) and count what the server refused."""
        self._requests += 1
        answer = await self._transport.send(body)
        if answer is not None:
            partial = answer.partial_success
            if self._unit == "spans":
                rejected = partial.rejected_spans
            else:
                rejected = partial.rejected_data_points
            self._partial_success(rejected, partial.error_message)

    def _partial_success(self, rejected: int, message: str) -> None:
        """Count what the server rejected (OTLP ``partial_success``) and log the reason."""
        if rejected <= 0 and not message:
            return
        self._rejected += max(rejected, 0)
        # Warn once; a server that keeps rejecting would otherwise flood the log.
        log = logger.debug if self._partial_logged else logger.warning
        self._partial_logged = True
        log(
            "asynctelemetry: %s export partially rejected (%d %s): %s",
            self._kind,
            rejected,
            self._unit,
            message or "no message",
        )

    async def _before_close(self) -> None:
        """Work to queue before the queue closes (the metrics exporter's last export)."""

    async def aclose(self, timeout: float | None = None) -> None:
        """Deliver what can be within ``timeout`` (default ``close_timeout``), then close.

        Never hangs on a dead endpoint: whatever is still queued at the deadline is dropped and
        counted in ``stats.queue.dropped_on_close``. Idempotent: a later or concurrent call returns
        once the first one has closed the transport.
        """
        await self._life.close(lambda: self._close(timeout))

    async def _close(self, timeout: float | None) -> None:
        try:
            await self._before_close()
            await self._queue.aclose(self.close_timeout if timeout is None else timeout)
        except Exception as exc:  # the last delivery error: already counted, log it once
            logger.warning("asynctelemetry: %s closed after an error: %s", self._kind, exc)
        finally:
            await self._transport.close()

    def _refuse_if_closed(self) -> None:
        self._life.check()

    def _took_work(self) -> bool:
        """Whether anything was given to this exporter (an unclosed one may then lose it)."""
        return bool(self._queue.stats.accepted)

    def __del__(self, _warn: object = warnings.warn) -> None:
        life = getattr(self, "_life", None)
        if life is not None and not life.ended and self._took_work():
            _warn(  # type: ignore[operator]
                f"{type(self).__name__} was not closed: queued work may be lost",
                ResourceWarning,
                stacklevel=1,
            )

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._life.ended


class OTLPExporterBase(ExporterShell):
    """A :class:`~asynctelemetry.SyncSink` that sends calls as OTLP spans over its class's
    ``_protocol`` (``"grpc"`` or ``"http"``); the transports subclass it (their docstrings name
    the arguments)."""

    _protocol = "grpc"

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str = "asynctelemetry",
        resource_attributes: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        compression: str | None = "gzip",
        timeout: float = 10.0,
        max_queue: int | None = None,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        credentials: Any = None,
        close_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        queue: QueueSettings | None = None,
    ) -> None:
        owner = type(self).__name__
        self.endpoint = endpoint
        self._transport = open_transport(
            self._protocol,
            endpoint,
            "traces",
            TransportOptions(headers, insecure, compression, credentials, timeout),
            owner,
        )
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0, not {timeout!r}")
        self.timeout = timeout
        settings = QueueSettings(max_queue, batch_size, flush_interval, close_timeout)
        self._queue_values = DEFAULT_QUEUE.resolve(owner, settings, queue)
        self._encoder = SpanEncoder(
            service_name=service_name, resource_attributes=resource_attributes
        )
        self._queue: BatchQueue[LLMCall] = export_queue(
            self._export_batch, self._queue_values, retry, f"{self._kind} exporter"
        )
        self._open_shell()
        # (batch, calls of it already sent, encoded body of the next request or b"")
        self._in_flight: list[Any] | None = None

    # -- the SyncSink protocol --------------------------------------------------------------------
    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Queue ``calls`` for export and return at once; never waits for the network (a full
        queue drops its oldest call, counted).

        Raises:
            StoreClosedError: the exporter was closed.
        """
        self._refuse_if_closed()
        put = self._queue.put_nowait
        for call in calls:
            put(call)

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Queue steps for export, in the same queue as calls (the
        :class:`~asynctelemetry.SpanSink` method).

        Raises:
            StoreClosedError: the exporter was closed.
        """
        self.emit_nowait(spans)  # type: ignore[arg-type]

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Queue ``calls`` for export (the same as :meth:`emit_nowait`).

        Raises:
            StoreClosedError: the exporter was closed.
        """
        self.emit_nowait(calls)

    async def flush(self, timeout: float | None = None) -> None:
        """Return once every call emitted before has been delivered or given up on.

        A batch being retried is waited for, not reported: only giving up is an error.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            ExportError: some of those calls were given up on (``stats.queue.dropped_failed``).
        """
        await settle(self._queue, timeout, "calls")

    async def __aenter__(self) -> Self:
        self._life.check()
        self._life.opened()
        self._queue.start()
        return self

    @property
    def stats(self) -> ExporterStats:
        """A snapshot of what this exporter accepted, delivered, retried and lost."""
        return ExporterStats(
            queue=self._queue.stats, rejected=self._rejected, requests=self._requests
        )

    # -- the batch handler ----------------------------------------------------------------------
    async def _export_batch(self, batch: list[LLMCall]) -> None:
        # A batch goes out as requests of at most _REQUEST_CALLS calls: one large message blocks
        # the loop while gRPC copies and compresses it. A retried batch is the same list: it
        # resumes at the request that failed and resends the same bytes (and generated ids).
        state = self._in_flight
        if state is None or state[0] is not batch:
            state = self._in_flight = [batch, 0, b""]
        while state[1] < len(batch):
            size = min(_REQUEST_CALLS, len(batch) - state[1])
            if not state[2]:
                state[2] = await self._encode(batch[state[1] : state[1] + size])
            await self._send(state[2], size)
            state[1] += size
            state[2] = b""
        self._in_flight = None

    async def _encode(self, batch: list[LLMCall]) -> bytes:
        encoder = self._encoder
        groups: dict[str, list[bytes]] = {}
        slice_ = Slice()
        for start in range(0, len(batch), _ENCODE_SLICE):
            if start:
                await slice_.breathe()
            for call in batch[start : start + _ENCODE_SLICE]:
                groups.setdefault(encoder.resource_of(call), []).append(encoder.record(call))
        return encoder.request(groups.items())
