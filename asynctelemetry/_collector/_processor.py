"""``tracer.span_processor()``: OpenTelemetry SDK spans of this process → records, no network.

A framework that makes its own OpenTelemetry spans (pydantic-ai's GenAI instrumentation,
OpenLLMetry, OpenInference) can feed the tracer in process: add the processor to the
``TracerProvider`` it uses. Each ended span is queued (bounded; on the event loop, whichever
thread ended it); a batch is encoded by the OpenTelemetry SDK's own OTLP encoder and read by the
collector's conversion (:mod:`._convert`, :mod:`._steps`: the one reading of every convention),
and its calls and steps go to the tracer's pipeline (priced there, like every traced call). The
spans our own tracer makes (scope ``asynctelemetry``) are skipped: they are records already.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from .._batching import QueuedSpanProcessor
from .._exceptions import require
from ._convert import convert_request_in_slices
from ._steps import StepKeeper
from ._wire import LeanRequest

if TYPE_CHECKING:
    import asyncio

    from opentelemetry.sdk.trace import ReadableSpan

    from .._pipeline import Pipeline

__all__ = ["RecordingSpanProcessor"]

#: The instrumentation scope of our own tracer's spans (skipped: already records).
OUR_SCOPE: Final = "asynctelemetry"


class RecordingSpanProcessor(QueuedSpanProcessor):
    """An OpenTelemetry SDK span processor whose ended spans become records of a pipeline.

    Made by :meth:`AsyncTracer.span_processor`; ``keep_spans`` as the collector's. Its queue
    holds ``max_queue`` spans (the oldest dropped and counted past it); a batch is converted in
    slices, so no batch holds the loop for long. ``stats`` is the queue's.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        loop: asyncio.AbstractEventLoop,
        *,
        capture_content: bool = False,
        keep_spans: Any = "ai",
        max_queue: int = 32_768,
    ) -> None:
        self._encode = require(
            "opentelemetry.exporter.otlp.proto.common.trace_encoder",
            "otel",
            "tracer.span_processor()",
        ).encode_spans  # type: ignore[attr-defined]
        self._pipeline = pipeline
        self._loop = loop
        self._thread = threading.get_ident()
        self._capture = capture_content
        self._keeper = StepKeeper(keep_spans)
        self.defects: dict[str, int] = {}
        super().__init__(self._convert, max_queue=max_queue, name="span processor")

    async def _convert(self, batch: list[ReadableSpan]) -> None:
        raw = self._encode(batch).SerializeToString()
        steps = self._keeper.request()
        calls, _, _, _ = await convert_request_in_slices(
            LeanRequest.FromString(raw), self._capture, self.defects, steps=steps
        )
        kept = steps.finish() if steps is not None else []
        if kept:
            await self._pipeline.emit_spans(kept)
        if calls:
            await self._pipeline.emit(calls)

    # -- the SDK's SpanProcessor interface (the rest is QueuedSpanProcessor's) ------------------
    def on_end(self, span: ReadableSpan) -> None:
        """Queue an ended span (from any thread); our own tracer's spans are skipped."""
        scope = span.instrumentation_scope
        if scope is not None and scope.name == OUR_SCOPE:
            return
        if threading.get_ident() == self._thread:
            self.queue.put_nowait(span)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.queue.put_nowait, span)
