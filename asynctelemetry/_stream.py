"""Streams: a traced call that ends exactly once, however its consumer leaves the stream.

``tracer.wrap_stream(stream, call)`` wraps an async iterator of chunks. The first chunk marks the
first token; usage chunks (OpenAI's final ``usage`` chunk, Anthropic's ``message_start`` and
``message_delta`` events) fill the token counts. When the wrapper owns the call (the handle was
not entered with ``async with``), it records the call exactly once:

- the stream is exhausted: ``ok``;
- the consumer ``break``s or drops the stream, or calls ``aclose()``: ``ok``, with what was
  received (the usage seen so far);
- the stream raises: ``error`` with the exception's class name (the exception propagates);
- the consuming task is cancelled while waiting for a chunk: ``cancelled`` (it propagates).

When the handle is inside ``async with tracer.llm_call(...)``, the block's exit records the call
and the wrapper only marks tokens and usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Self, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator
    from types import TracebackType

    from ._call import CallHandle
    from ._tracer import AsyncTracer

__all__ = ["TracedStream"]

T = TypeVar("T")


class TracedStream(Generic[T]):
    """An async iterator of chunks that records its call when the stream ends (see module doc)."""

    __slots__ = ("_done", "_handle", "_iterator", "_owns", "_source", "_tracer")

    def __init__(self, tracer: AsyncTracer, stream: AsyncIterable[T], handle: CallHandle) -> None:
        self._tracer = tracer
        self._source = stream
        self._iterator: AsyncIterator[T] = stream.__aiter__()
        self._handle = handle
        # A handle not yet entered is ours to begin and to end.
        self._owns = not handle._start_ns and not handle._ended
        self._done = False
        if self._owns:
            tracer._begin(handle)

    @property
    def call(self) -> CallHandle:
        """The call this stream belongs to."""
        return self._handle

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            await self._end(None)
            raise
        except BaseException as exc:
            await self._end(type(exc))
            raise
        self._handle.record_chunk(chunk)
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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _end(self, exc_type: type[BaseException] | None) -> None:
        if self._done:
            return
        self._done = True
        if not self._owns:
            return
        record = self._tracer._finish(self._handle, exc_type)
        if record is not None:
            pending = self._tracer.pipeline.submit_priced((record,))
            if pending is not None:
                await pending

    def __del__(self) -> None:
        # Dropped without being exhausted or closed (a ``break`` in ``async for``): the call is
        # over for the consumer, so it is recorded now, as ok with what was received.
        if self._done or not self._owns:
            return
        self._done = True
        record = self._tracer._finish(self._handle, None)
        if record is None:
            return
        pending = self._tracer.pipeline.submit_priced((record,))
        if pending is not None:
            self._tracer._spawn(pending)
