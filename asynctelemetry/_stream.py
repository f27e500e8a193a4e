"""Streams: a traced call that ends exactly once, however its consumer leaves the stream.

``tracer.wrap_stream(stream, call)`` wraps an async iterator of chunks. The first chunk that
carries output (text, reasoning, a tool call; not an opening role-only frame) marks the first
token; usage chunks (OpenAI's final ``usage`` chunk, Anthropic's ``message_start`` and
``message_delta`` events) fill the token counts. When the wrapper owns the call (the handle was
not entered with ``async with``), it records the call exactly once:

- the stream is exhausted: ``ok``;
- the consumer calls ``aclose()`` (or the instrumented SDK stream's ``close()``): ``ok``, with
  what was received (the usage seen so far);
- the consumer ``break``s and drops the stream: ``ok`` when the wrapper is garbage-collected, or
  when the tracer closes if that comes first, timed to the last chunk the consumer took;
- the stream raises: ``error`` with the exception's class name and HTTP status when it carries
  one (the exception propagates);
- the consuming task is cancelled while waiting for a chunk: ``cancelled`` (it propagates).

The call is never the current span of the consumer's context: a stream may be finished in another
task than the one that started it, and nothing is attached to a context that would have to be
detached there. When the handle is inside ``async with tracer.llm_call(...)``, the block's exit
records the call and the wrapper only marks tokens and usage.

Layer 5 (producer side), above :mod:`._call` and below :mod:`._instrument` and the tracer, which
it knows only as a :class:`StreamRecorder`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from ._batching import ClosesOnExit, report_internal_error
from ._call import Recorder

if TYPE_CHECKING:
    import weakref
    from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

    from ._call import CallHandle
    from ._usage import ChunkInfo

__all__ = ["StreamRecorder", "TracedStream"]

T = TypeVar("T")


class StreamRecorder(Recorder, Protocol):
    """What a :class:`TracedStream` needs of its tracer beyond a :class:`~._call.Recorder`: the
    set of open streams (recorded as abandoned when the tracer closes), leaving the context, and
    background delivery for a stream finished without a caller to await it."""

    @property
    def _streams(self) -> weakref.WeakSet[TracedStream[Any]]: ...

    def _detach(self, handle: CallHandle) -> None: ...

    def _spawn(self, work: Awaitable[None]) -> None: ...


class TracedStream(ClosesOnExit, Generic[T]):
    """An async iterator of chunks that records its call when the stream ends (see module doc)."""

    __slots__ = (
        "__weakref__",
        "_busy",
        "_done",
        "_handle",
        "_iterator",
        "_last_ns",
        "_loop",
        "_on_end",
        "_owns",
        "_reader",
        "_source",
        "_thread",
        "_tracer",
    )

    def __init__(
        self,
        tracer: StreamRecorder,
        stream: AsyncIterable[T],
        handle: CallHandle,
        *,
        owns: bool | None = None,
        reader: Callable[[object], ChunkInfo] | None = None,
        on_end: Callable[[CallHandle], None] | None = None,
    ) -> None:
        self._tracer = tracer
        self._source = stream
        self._iterator: AsyncIterator[T] = stream.__aiter__()
        self._handle = handle
        self._reader = reader
        self._on_end = on_end
        self._done = False
        self._busy = False
        # A handle not yet entered is ours to begin and to end; ``owns=True`` takes over one that
        # was begun elsewhere (the instrumented SDK call that returned this stream).
        begin = not handle._start_ns and not handle._ended
        self._owns = begin if owns is None else owns
        if begin and self._owns:
            tracer._begin(handle)
        if handle._token is not None and self._owns:
            tracer._detach(handle)  # never current in a context: see the module docstring
        self._last_ns = 0
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._thread = threading.get_ident()
        if self._owns:
            tracer._streams.add(self)

    @property
    def call(self) -> CallHandle:
        """The call this stream belongs to."""
        return self._handle

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._loop is None:  # made outside the loop that reads it
            self._loop = asyncio.get_running_loop()
            self._thread = threading.get_ident()
        if self._done:  # recorded already: the source still answers (or raises) as it would
            return await self._iterator.__anext__()
        self._busy = True
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            await self._end(None)
            raise
        except BaseException as exc:
            self._handle.note_error(exc)
            await self._end(type(exc))
            raise
        finally:
            self._busy = False
        reader = self._reader
        if reader is None:
            self._handle.record_chunk(chunk)
        else:
            content, usage = reader(chunk)
            if content and self._handle._first_token_ns is None:
                self._handle._first_token_ns = time.perf_counter_ns()
            if usage is not None:
                self._handle._apply(usage, add_tool_calls=True)
        self._last_ns = time.perf_counter_ns()
        return chunk

    async def aclose(self) -> None:
        """Stop consuming: close the underlying stream and record the call as received so far."""
        if self._done:
            return
        try:
            close = getattr(self._iterator, "aclose", None) or getattr(self._source, "aclose", None)
            if close is not None:
                await close()
        finally:
            await self._end(None)

    async def closed_by_consumer(self) -> None:
        """The consumer closed what this stream reads from (an SDK stream's ``close()``): record
        the call now, unless a read in progress is about to end it with its own outcome."""
        if not self._busy:
            await self._end(None)

    async def __aenter__(self) -> Self:
        return self

    def _settle(self) -> None:
        if self._owns:
            self._tracer._streams.discard(self)
            if self._on_end is not None:
                try:
                    self._on_end(self._handle)
                except Exception as exc:
                    report_internal_error("finishing a traced stream", exc)

    async def _end(self, exc_type: type[BaseException] | None) -> None:
        if self._done:
            return
        self._done = True
        if not self._owns:
            return
        self._settle()
        batch = self._tracer._finish(self._handle, exc_type)
        if batch is not None:
            pending = self._tracer.pipeline.submit_priced(batch)
            if pending is not None:
                await pending

    def abandoned(self) -> None:
        """Record the call as the consumer left it (ok, what was received, timed to the last
        chunk taken): the stream was dropped, or the tracer is closing. Synchronous; the async
        sinks get the record from a background task."""
        if self._done or not self._owns:
            return
        self._done = True
        self._settle()
        _record_abandoned(self._tracer, self._handle, self._last_ns)

    def __del__(self) -> None:
        # Dropped without being exhausted or closed (a ``break`` in ``async for``): the call is
        # over for the consumer. A finalizer may run anywhere: inside an import, under a lock the
        # collecting thread holds, in another thread. So it only hands the recording to the
        # loop (no pricing, no I/O, no lock here); with no loop left to run it, the call is
        # counted as lost (``stats.sink_errors``).
        if self._done or not self._owns:
            return
        self._done = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            args = (self._tracer, self._handle, self._on_end, self._last_ns)
            try:
                if threading.get_ident() == self._thread:
                    loop.call_soon(_finish_dropped, *args)  # a deque append
                else:
                    loop.call_soon_threadsafe(_finish_dropped, *args)
                return
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._tracer.pipeline.count_error()


def _finish_dropped(
    tracer: StreamRecorder,
    handle: CallHandle,
    on_end: Callable[[CallHandle], None] | None,
    last_ns: int,
) -> None:
    if on_end is not None:
        try:
            on_end(handle)
        except Exception as exc:
            report_internal_error("finishing a traced stream", exc)
    _record_abandoned(tracer, handle, last_ns)


def _record_abandoned(tracer: StreamRecorder, handle: CallHandle, last_ns: int) -> None:
    duration = None
    if last_ns and handle._start_ns:
        duration = (last_ns - handle._start_ns) / 1e6
    batch = tracer._finish(handle, None, duration_ms=duration)
    if batch is None:
        return
    pending = tracer.pipeline.submit_priced(batch)
    if pending is not None:
        tracer._spawn(pending)
