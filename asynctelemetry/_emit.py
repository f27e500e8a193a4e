"""The sink protocol and the fan-out to sinks.

Layer 4. Every producer (tracer, collector, replay) hands records to an :class:`Emitter`, which
gives them to each :class:`Sink` in turn. Sinks that do slow work (the SQLite writer, the OTLP
exporters, forwarding) put it behind a :class:`~asynctelemetry._batching.BatchQueue`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._batching import Retryable, report_internal_error

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._record import LLMCall

__all__ = ["Emitter", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Somewhere finished :class:`LLMCall` records go: a store, an exporter, metrics, a list."""

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Take records. Must be quick; may await only to apply backpressure."""

    async def flush(self) -> None:
        """Return once everything emitted before has been delivered."""

    async def aclose(self) -> None:
        """Flush what can be flushed and release resources. Idempotent."""


class Emitter:
    """Hands each record to every sink; a failing sink is counted and never stops the others.

    A sink that also has a synchronous ``emit_nowait(calls)`` (it never waits, e.g. a
    MemoryStore or the metrics recorder) is called directly, so a call that only reaches such
    sinks costs no coroutine at all. A sink that raises :class:`Retryable` stops the emit and the
    error propagates, for a caller behind a :class:`BatchQueue` to try the batch again.
    """

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self._sinks: tuple[Sink, ...] = ()
        self._plan: tuple[tuple[Sink, Callable[[Sequence[LLMCall]], None] | None], ...] = ()
        self.errors = 0
        for sink in sinks:
            self.add(sink)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks, in the order they receive records."""
        return self._sinks

    def add(self, sink: Sink) -> None:
        """Append a sink."""
        self._sinks = (*self._sinks, sink)
        self._plan = (*self._plan, (sink, getattr(sink, "emit_nowait", None)))

    def submit(self, calls: Sequence[LLMCall]) -> Awaitable[None] | None:
        """Give ``calls`` to the synchronous sinks now; return an awaitable for the others.

        Returns ``None`` when every sink took the calls already.
        """
        waiting: list[Sink] | None = None
        for sink, nowait in self._plan:
            if nowait is None:
                if waiting is None:
                    waiting = []
                waiting.append(sink)
                continue
            try:
                nowait(calls)
            except Exception as exc:  # a sink's failure must not reach the caller's LLM call
                self._failed(sink, "emit_nowait", exc)
        return None if waiting is None else self._emit_to(waiting, calls)

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Give ``calls`` to every sink."""
        pending = self.submit(calls)
        if pending is not None:
            await pending

    async def _emit_to(self, sinks: list[Sink], calls: Sequence[LLMCall]) -> None:
        for sink in sinks:
            try:
                await sink.emit(calls)
            except Retryable:
                raise  # the sink asks for the whole emit again (the collector's store is down)
            except Exception as exc:  # a sink's failure must not reach the caller's LLM call
                self._failed(sink, "emit", exc)

    def _failed(self, sink: Sink, method: str, exc: Exception) -> None:
        self.errors += 1
        report_internal_error(f"sink {type(sink).__name__}.{method}", exc)

    async def flush(self) -> None:
        """Flush every sink; the first error is raised after all were tried."""
        await self._each("flush")

    async def aclose(self) -> None:
        """Close every sink; the first error is raised after all were tried."""
        await self._each("aclose")

    async def _each(self, method: str) -> None:
        first: BaseException | None = None
        for sink in self._sinks:
            try:
                await getattr(sink, method)()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first
