"""AsyncTracer: times LLM calls in the caller's event loop and hands them to its pipeline.

Layer 5 (producer). The tracer times calls and assigns their ids; its
:class:`~asynctelemetry._pipeline.Pipeline` prices them (the one rule) and hands them to the
sinks. The hot path (:meth:`AsyncTracer._begin` / :meth:`AsyncTracer._finish`) reads two clocks
and fills one field dict, which :meth:`Pipeline.record` prices with a memoised lookup and adopts
as the record; it does no I/O. Slow work (SQLite writes, OTLP export) happens in background tasks
behind bounded queues owned by the sinks.

Spans: by default the tracer makes no OpenTelemetry SDK span objects. It takes trace and span ids
from the current context (an enclosing OTel span or an enclosing ``llm_call``) and the OTLP
exporters encode spans straight from the records, which costs a fraction of an SDK span. When you
pass ``custom_exporter=`` or ``tracer_provider=``, each call is also a live SDK span that really
spans the call, is the current span inside the block, and is a child of the current span.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import random
import time
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry.trace import (
    INVALID_SPAN,
    Span,
    Status,
    StatusCode,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace import SpanKind as OTelSpanKind

from ._batching import (
    ClosesOnExit,
    Lifecycle,
    QueuedSpanProcessor,
    Retryable,
    report_internal_error,
)
from ._budgets import Budgets, BudgetStatus, ledger_for
from ._call import CallHandle, check_millis, check_text
from ._context import CallContext, current_scope
from ._conventions import (
    EXCEPTION_EVENT,
    call_attributes,
    exception_event,
    span_name,
    step_attributes,
    step_span_name,
)
from ._exceptions import ConfigError, StoreClosedError, require
from ._pipeline import Pipeline, Sink, SpanSink
from ._record import FIELD_DEFAULTS, MAX_DURATION_MS, MAX_MODEL_LENGTH, LLMCall, TraceSpan
from ._stats import TracerStats
from ._step import StepHandle
from ._stores import CallStore, MemoryStore
from ._stores._base import from_ns
from ._stream import TracedStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence

    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import TracerProvider

    from ._budgets import Budget
    from ._collector._processor import RecordingSpanProcessor
    from ._collector._steps import KeepSpans
    from ._pricing import ModelPricing, PriceTable
    from ._record import SpanKind
    from ._rows import Rows

__all__ = ["AsyncTracer"]

_STATUSES: Final = frozenset({"ok", "error", "cancelled"})
#: The innermost ``llm_call`` or step of this context: (trace_id, span_id, the OTel context and
#: the OTel span current at entry).
_current: contextvars.ContextVar[tuple[str, str, object, Span] | None] = contextvars.ContextVar(
    "asynctelemetry_current_call", default=None
)
#: The name of the innermost ``tracer.agent(...)`` of this context.
_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "asynctelemetry_current_agent", default=None
)
_MAX_STEP_MS: Final = MAX_DURATION_MS
_getrandbits = random.getrandbits
T = TypeVar("T")
C = TypeVar("C")


_LOW_64: Final = 2**64 - 1


def _span_id() -> str:
    return (_getrandbits(64) or 1).to_bytes(8, "big").hex()


def _new_ids() -> str:
    """A new trace id (32 hex digits) and span id (16) in one draw; neither may be all zeros."""
    ids = _getrandbits(192)
    if ids >> 64 and ids & _LOW_64:
        return ids.to_bytes(24, "big").hex()  # bytes.hex: a third of the cost of int formatting
    return _new_ids()


def _otel_context_getter() -> Callable[[], otel_context.Context]:
    """``opentelemetry.context.get_current``, or the ``ContextVar.get`` it ends in when the
    runtime context is the default one (two Python calls fewer on every call's entry)."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if isinstance(var, contextvars.ContextVar):
        return cast("Callable[[], otel_context.Context]", var.get)
    return otel_context.get_current


_otel_current: Final = _otel_context_getter()


def _checked_arguments(
    model: object,
    provider: object,
    operation: object,
    session_id: object,
    route_name: object,
    is_streaming: object,
) -> tuple[str, str | None, str, str | None, str | None]:
    """``llm_call``'s text arguments as plain strings, or ``ConfigError`` naming the bad one."""
    try:
        if not (is_streaming is None or isinstance(is_streaming, bool)):
            raise ValueError(f"is_streaming must be a bool, got {type(is_streaming).__name__}")
        if not operation:
            raise ValueError("operation must be a non-empty str")
        return (
            check_text("model", model),
            None if provider is None else check_text("provider", provider),
            check_text("operation", operation),
            None if session_id is None else check_text("session_id", session_id),
            None if route_name is None else check_text("route_name", route_name),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class AsyncTracer(ClosesOnExit):
    """Times LLM calls and emits them, priced, to stores, OTLP, metrics and memory.

    Args:
        store: a :class:`CallStore` that receives every call (flushed, not closed, by the
            tracer). Stores are sinks: the tracer hands calls to the store's own queue.
        service_name: ``service.name`` of the spans and records.
        otlp_endpoint: OTLP/gRPC endpoint (``http://127.0.0.1:4317``) to export spans to.
        otlp_http_endpoint: OTLP/HTTP endpoint (``http://127.0.0.1:4318``), ``otlp`` extra.
        console: print one line per call to stderr.
        in_memory: keep calls in :attr:`spans` (an int sets the capacity; ``True`` keeps 100,000).
        custom_exporter: an OpenTelemetry SDK ``SpanExporter``; calls become live SDK spans.
        price_table: a :class:`PriceTable`, or a mapping of model name to :class:`ModelPricing`
            that overrides the default table.
        metrics: a sink such as :class:`~asynctelemetry.metrics.MetricsRecorder` (not closed here).
        capture_content: keep prompt and completion text set with ``call.set_attribute`` under
            content keys; off by default.
        tracer_provider: an OpenTelemetry SDK ``TracerProvider`` to create live spans with.
        sinks: more :class:`Sink` objects to emit to (closed with the tracer).
        resource_attributes: extra OTel resource attributes for exported spans.
        otlp_headers: headers sent with every OTLP export, e.g.
            ``{"authorization": "Bearer <token>"}`` for a collector started with a token.
        sampler: an OpenTelemetry ``Sampler`` that thins exported spans (OTLP, console, the SDK
            provider the tracer makes). Stores, metrics and :attr:`spans` still see every call.
        budgets: :class:`Budget` limits enforced before each call is sent. Kept in the
            ``store``'s database when it is PostgreSQL or SQLite (shared by every process using
            it), else in this process's memory. See ``docs/budgets.md``.
        metrics_exporters: metric sinks such as :class:`~asynctelemetry.OTLPMetricsExporter`
            that see every call (never sampled) and are closed with the tracer.
    """

    def __init__(
        self,
        *,
        store: CallStore | None = None,
        service_name: str = "asynctelemetry",
        otlp_endpoint: str | None = None,
        otlp_http_endpoint: str | None = None,
        console: bool = False,
        in_memory: bool | int = False,
        custom_exporter: SpanExporter | None = None,
        price_table: PriceTable | Mapping[str, ModelPricing] | None = None,
        metrics: Sink | None = None,
        capture_content: bool = False,
        tracer_provider: TracerProvider | None = None,
        sinks: Sequence[Sink] = (),
        resource_attributes: Mapping[str, str] | None = None,
        sampler: Sampler | None = None,
        otlp_headers: Mapping[str, str] | None = None,
        budgets: Sequence[Budget] = (),
        metrics_exporters: Sequence[Sink] = (),
    ) -> None:
        self.service_name = service_name
        if sampler is not None and not callable(getattr(sampler, "should_sample", None)):
            raise ConfigError(
                "sampler must be an OpenTelemetry Sampler (e.g. TraceIdRatioBased(0.1)), "
                f"not {type(sampler).__name__}"
            )
        self.capture_content = capture_content
        self._life = Lifecycle("AsyncTracer")
        self._used = False
        self._calls = 0  # calls recorded: read through ``stats``
        self._background: set[asyncio.Task[None]] = set()
        resource = {"service.name": service_name, **(resource_attributes or {})}
        self.pipeline = Pipeline(price_table=price_table)
        self._budgets: Budgets | None = None
        if budgets:
            self._budgets = Budgets(budgets, ledger_for(store), self.pipeline.price_table)
        self._memory: MemoryStore | None = None
        if in_memory:
            self._memory = MemoryStore(100_000 if in_memory is True else int(in_memory))
            self.pipeline.add(self._memory, owned=True)
        if store is not None:
            self.pipeline.add(cast("Sink", store))  # lent: flushed on close, never closed
        if metrics is not None:
            self.pipeline.add(metrics)
        for exporter in metrics_exporters:  # aggregates of every call: never sampled
            self.pipeline.add(exporter, owned=True)
        exporters = _exporters(otlp_endpoint, otlp_http_endpoint, console, resource, otlp_headers)
        for sink in (*exporters, *sinks):
            self.pipeline.add(sink if sampler is None else _SampledSink(sink, sampler), owned=True)
        #: Every sink keeps rows (stores): a call's record is built only if something reads it;
        #: else (exporters, metrics) it is built with the row, from the field dict (cheaper).
        self._rows_only = all(isinstance(sink, CallStore) for sink in self.pipeline.sinks)
        #: Streams whose call is still open (recorded as abandoned when the tracer closes).
        self._streams: weakref.WeakSet[TracedStream[Any]] = weakref.WeakSet()
        self._sdk_tracer: Any = None
        self._agents_processor: Any = None  # the openai-agents processor, once registered
        self._span_processor: _AsyncSpanProcessor | None = None
        self._recorders: list[RecordingSpanProcessor] = []  # span_processor()s handed out
        if custom_exporter is not None or tracer_provider is not None:
            self._sdk_tracer = self._make_sdk_tracer(
                custom_exporter, tracer_provider, resource, sampler
            )

    def _make_sdk_tracer(
        self,
        exporter: SpanExporter | None,
        provider: TracerProvider | None,
        resource: Mapping[str, str],
        sampler: Sampler | None,
    ) -> Any:
        if provider is None:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider

            provider = SDKTracerProvider(resource=Resource.create(dict(resource)), sampler=sampler)
        if exporter is not None:
            self._span_processor = _AsyncSpanProcessor(exporter)
            provider.add_span_processor(self._span_processor)  # type: ignore[attr-defined]
        from ._version import __version__

        return provider.get_tracer("asynctelemetry", __version__)

    # -- public API -----------------------------------------------------------------------------
    @property
    def price_table(self) -> PriceTable:
        """The table that prices calls (the default one unless given)."""
        return self.pipeline.price_table

    def llm_call(
        self,
        *,
        model: str,
        provider: str | None = None,
        operation: str = "chat",
        session_id: str | None = None,
        route_name: str | None = None,
        is_streaming: bool | None = None,
        estimate_usd: float | None = None,
        **attributes: str | int | float | bool,
    ) -> CallHandle:
        """Time one LLM call: ``async with tracer.llm_call(model=..., provider=...) as call:``.

        On exit the call is recorded with status ``ok``; ``error`` and the exception's class name
        when the block raises (the exception propagates); ``cancelled`` when the task is
        cancelled (the cancellation propagates). Extra keyword arguments become attributes.
        With budgets, entering the block reserves ``estimate_usd`` (0 when not given) and raises
        :class:`BudgetExceededError` when it does not fit.

        Raises:
            StoreClosedError: the tracer was closed.
            ConfigError: (a ``ValueError``) a model name that is not a string of 1 to 512
                characters, an argument of the wrong type, or a bad attribute.
        """
        if self._life.ended:
            raise StoreClosedError("AsyncTracer is closed")
        scope = current_scope.get()
        user_id = None
        tags: tuple[str, ...] = ()
        if scope is not None:  # inside tracer.context(...): explicit arguments win
            if session_id is None:
                session_id = scope.session_id
            if route_name is None:
                route_name = scope.route_name
            if scope.attributes:
                attributes = {**scope.attributes, **attributes}
            user_id = scope.user_id
            tags = scope.tags
        if (  # one cheap test on the hot path; the slow one says what is wrong, or normalises
            model.__class__ is not str
            or not 0 < len(model) <= MAX_MODEL_LENGTH
            or operation.__class__ is not str
            or not operation
            or not (provider is None or provider.__class__ is str)
            or not (session_id is None or session_id.__class__ is str)
            or not (route_name is None or route_name.__class__ is str)
            or not (is_streaming is None or is_streaming.__class__ is bool)
        ):
            model, provider, operation, session_id, route_name = _checked_arguments(
                model, provider, operation, session_id, route_name, is_streaming
            )
        if is_streaming is None and operation == "stream":
            is_streaming = True
        # The handle fills a complete record dict from the start; the record adopts it on exit.
        fields = FIELD_DEFAULTS.copy()
        fields["request_model"] = model
        fields["provider"] = provider
        fields["operation"] = operation
        fields["session_id"] = session_id
        fields["route_name"] = route_name
        fields["is_streaming"] = is_streaming
        fields["user_id"] = user_id
        fields["tags"] = tags
        fields["agent_name"] = _agent.get()
        handle = CallHandle(self, fields, operation)
        for key, value in attributes.items():
            handle.set_attribute(key, value)
        if estimate_usd is not None:
            handle.estimate_usd = _checked_estimate(estimate_usd)
        return handle

    def agent(self, name: str, **attributes: str | int | float | bool) -> StepHandle:
        """A step that is an agent run: ``async with tracer.agent("planner") as step:``, or
        ``@tracer.agent("planner")`` on an async function.

        Timed like ``llm_call`` (an exception gives status "error" with its type and message
        and propagates; a cancellation gives "cancelled"). Every call and step started inside is
        its child and every call inside carries ``agent_name=name`` (the innermost agent's).
        Its OTel span is ``invoke_agent {name}`` with ``gen_ai.agent.name``.

        Raises:
            ConfigError: a name that is not text of 1 to 512 characters, or a bad attribute.
        """
        return StepHandle(self, name, "agent", attributes)

    def tool(self, name: str, **attributes: str | int | float | bool) -> StepHandle:
        """A step that is a tool's execution (``tool_name == name``), as :meth:`agent`; its
        OTel span is ``execute_tool {name}`` with ``gen_ai.tool.name``."""
        return StepHandle(self, name, "tool", attributes)

    def span(
        self, name: str, *, kind: SpanKind = "internal", **attributes: str | int | float | bool
    ) -> StepHandle:
        """Any other step (``kind``: "workflow", "retrieval", "guardrail", "evaluator", "http",
        "internal", or "agent"/"tool"), as :meth:`agent`. A workflow's span is
        ``invoke_workflow {name}``, a retrieval's ``retrieval {name}``, the others' their name.

        Raises:
            ConfigError: an unknown kind, a bad name or attribute.
        """
        return StepHandle(self, name, kind, attributes)

    def wrap_stream(
        self,
        stream: AsyncIterable[T],
        call: CallHandle | None = None,
        *,
        model: str | None = None,
        provider: str | None = None,
        **fields: Any,
    ) -> TracedStream[T]:
        """Trace a stream of chunks: first token, usage chunks, and one record however it ends.

        Pass the ``call`` of an ``async with tracer.llm_call(...)`` block to mark tokens and
        usage only, or a handle not entered (or ``model=``/``provider=`` to make one) for the
        wrapper to own the call: it starts now and is recorded when the stream is exhausted,
        closed, dropped after a ``break``, raises or is cancelled (see :mod:`._stream`).
        """
        if call is None:
            if not model:
                raise ConfigError("wrap_stream needs a call handle or a model")
            fields.setdefault("operation", "stream")
            call = self.llm_call(model=model, provider=provider, **fields)
        return TracedStream(self, stream, call)

    def instrument(self, client: C, *, stream_usage: bool = False) -> C:
        """Trace every call an ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``),
        ``anthropic.AsyncAnthropic``, ``google.genai.Client`` (its ``.aio`` models and chats) or
        ``mistralai.client.Mistral`` client makes, or the ``litellm`` module's ``acompletion``
        and ``aembedding``, streams included: one record per call.

        Only this client instance (and the copies ``with_options()`` makes of it) is changed;
        what its methods return is untouched. See ``docs/instrumenting.md``.

        Args:
            client: the SDK client.
            stream_usage: ask OpenAI-compatible chat streams for their usage
                (``stream_options={"include_usage": True}`` unless the call sets
                ``include_usage`` itself), so they can be priced. The caller's stream then
                ends with one more chunk: ``choices`` empty, ``usage`` set. Without it, such
                a stream's usage is unknown and the call unpriced (``cost_usd=None``).

        Returns:
            The same client.

        Raises:
            ConfigError: a synchronous client (the message names the async class to use), an
                object that is not a supported client, or a client another tracer instruments.
            StoreClosedError: the tracer was closed.
        """
        if self._life.ended:
            raise StoreClosedError("AsyncTracer is closed")
        from ._instrument import instrument

        return instrument(self, client, stream_usage=stream_usage)

    def instrument_agents(self, *, exclusive: bool = False) -> None:
        """Record the openai-agents SDK's runs (package ``agents``, extra ``agents``): its agent,
        tool (function), handoff and guardrail spans become steps
        (:class:`~asynctelemetry.TraceSpan`), its generation and response spans priced
        :class:`~asynctelemetry.LLMCall` records, each run one trace with a workflow root.

        ``exclusive=True`` replaces the SDK's own trace processors (which export to OpenAI's
        trace backend) rather than adding to them. Calling it again changes nothing. Do not
        also ``instrument()`` the client the agents use: each call would be recorded twice.

        Raises:
            MissingDependencyError: the ``agents`` package is not installed.
            StoreClosedError: the tracer was closed.
        """
        if self._life.ended:
            raise StoreClosedError("AsyncTracer is closed")
        tracing: Any = require("agents.tracing", "agents", "tracer.instrument_agents()")
        from ._instrument._agents import AgentsProcessor

        known = self._agents_processor is not None
        if self._agents_processor is None:
            self._agents_processor = AgentsProcessor(self)
        if exclusive:
            tracing.set_trace_processors([self._agents_processor])
        elif not known:
            tracing.add_trace_processor(self._agents_processor)

    def span_processor(self, *, keep_spans: KeepSpans = "ai") -> RecordingSpanProcessor:
        """An OpenTelemetry SDK span processor that records, in this process, the spans another
        instrumentation makes (pydantic-ai's GenAI spans, OpenLLMetry, OpenInference): add it
        to the ``TracerProvider`` that instrumentation uses. Ended spans are read as the
        collector reads them (``keep_spans`` as its own: agent and tool steps, the root of
        their trace, LLM calls), and the calls and steps go to this tracer's sinks, priced as
        traced calls are. The spans of this tracer itself are skipped. ``await
        tracer.flush()`` delivers what has ended; the tracer's close closes it. Call it on the
        tracer's event loop (spans may end in any thread).

        Raises:
            MissingDependencyError: the OTLP encoder (extra ``otel``) is not installed.
            StoreClosedError: the tracer was closed.
        """
        if self._life.ended:
            raise StoreClosedError("AsyncTracer is closed")
        from ._collector._processor import RecordingSpanProcessor

        processor = RecordingSpanProcessor(
            self.pipeline,
            asyncio.get_running_loop(),
            capture_content=self.capture_content,
            keep_spans=keep_spans,
        )
        self._recorders.append(processor)
        return processor

    def uninstrument(self, client: object) -> None:
        """Stop tracing ``client`` (streams already returned keep being traced). Idempotent."""
        from ._instrument import uninstrument

        uninstrument(self, client)

    def context(
        self,
        *,
        session_id: str | None = None,
        route_name: str | None = None,
        user_id: str | None = None,
        tags: Sequence[str] = (),
        **attributes: str | int | float | bool,
    ) -> CallContext:
        """A ``with`` / ``async with`` block whose values every call started inside carries.

        Follows ``await`` and tasks created inside the block (contextvars); blocks nest (an
        inner block's session, route and user win; tags add up), and arguments given to
        ``llm_call`` win over the block's. ``user_id``: the end user the calls serve;
        ``tags``: labels (at most 64 distinct, each 1 to 256 characters).

        Raises:
            ConfigError: a value of the wrong type, or text that no record may hold.
        """
        return CallContext(session_id, route_name, attributes, user_id, tags)

    async def record_chat_span(
        self,
        *,
        provider: str,
        model: str,
        latency_ms: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_hit: str = "miss",
        tool_calls: int = 0,
        status: str = "ok",
        error_type: str | None = None,
        operation: str = "chat",
        ttft_ms: float | None = None,
        session_id: str | None = None,
    ) -> LLMCall:
        """Record a chat or stream call timed by the caller (RactoGateway's method, awaitable).

        Returns:
            The record, as every sink received it.
        """
        handle = self.llm_call(
            model=model, provider=provider, operation=operation, session_id=session_id
        )
        handle.set_usage(input_tokens=input_tokens, output_tokens=output_tokens)
        handle.set(cache_hit=cache_hit, tool_calls=tool_calls)
        return await self._record_timed(handle, latency_ms, status, error_type, ttft_ms)

    async def record_embed_span(
        self,
        *,
        provider: str,
        model: str,
        latency_ms: float,
        input_tokens: int = 0,
        status: str = "ok",
        error_type: str | None = None,
    ) -> LLMCall:
        """Record an embedding call timed by the caller (RactoGateway's method, awaitable)."""
        handle = self.llm_call(model=model, provider=provider, operation="embed")
        handle.set_usage(input_tokens=input_tokens, output_tokens=0)
        return await self._record_timed(handle, latency_ms, status, error_type, None)

    async def budget_status(self) -> list[BudgetStatus]:
        """Where each budget stands: spent, reserved and left, per key, in its current window."""
        if self._budgets is None:
            return []
        return await self._budgets.status()

    @property
    def stats(self) -> TracerStats:
        """A snapshot of what this tracer has done: calls recorded, streams still open, sink
        failures, and the live-span queue (see :class:`~asynctelemetry.TracerStats`)."""
        processor = self._span_processor
        return TracerStats(
            calls=self._calls,
            open_streams=len(self._streams),
            sink_errors=self.pipeline.errors,
            budget_refusals=self._budgets.refused if self._budgets is not None else 0,
            spans=processor.queue.stats if processor is not None else None,
        )

    @property
    def spans(self) -> list[LLMCall]:
        """Calls kept in memory (``in_memory=True``), oldest first."""
        return self._memory.snapshot() if self._memory is not None else []

    @property
    def steps(self) -> list[TraceSpan]:
        """Steps (agents, tools, …) kept in memory (``in_memory=True``), in the order they
        ended."""
        return self._memory.spans_snapshot() if self._memory is not None else []

    def clear_spans(self) -> None:
        """Forget the calls kept in memory."""
        if self._memory is not None:
            self._memory.clear()

    async def flush(self) -> None:
        """Return once every sink has delivered what it was given."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for recorder in self._recorders:
            await recorder.flush()
        await self.pipeline.flush()
        if self._span_processor is not None:
            await self._span_processor.queue.flush()

    async def aclose(self) -> None:
        """Flush every sink, close the ones the tracer made, and refuse new calls. Idempotent.

        Safe to call concurrently; a caller cancelled meanwhile does not cut the closing short
        (a sink left unclosed would keep its background task running).
        """
        if self._agents_processor is not None:
            self._agents_processor.closed = True  # the SDK's later spans are not recorded
        await self._life.close(self._close)

    async def _close(self) -> None:
        for stream in list(self._streams):  # streams still open: recorded as left so far
            stream.abandoned()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for recorder in self._recorders:
            await recorder.aclose()  # its last spans reach the pipeline before it closes
        try:
            await self.pipeline.aclose()
        finally:
            if self._span_processor is not None:
                await self._span_processor.aclose()
            if self._budgets is not None:
                await self._budgets.ledger.aclose()

    async def __aenter__(self) -> Self:
        """Start the tracer: the price data is loaded in a thread before the block runs, so the
        first calls are priced at once (about a second, once per process)."""
        self._life.check()
        await self.pipeline.warm()
        self._life.opened()
        return self

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._used and not self._life.ended:
            _warn(f"unclosed {self!r}", ResourceWarning, source=self, stacklevel=1)

    def __repr__(self) -> str:
        return f"AsyncTracer(service_name={self.service_name!r}, sinks={len(self.pipeline.sinks)})"

    def _spawn(self, work: Awaitable[None]) -> None:
        """Finish handing a record to async sinks in the background (no caller to await it)."""
        try:
            task = asyncio.get_running_loop().create_task(_awaited(work))
        except RuntimeError:  # no running loop: nothing can deliver to the async sinks now
            if inspect.iscoroutine(work):
                work.close()
            self.pipeline.count_error()
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the hot path ---------------------------------------------------------------------------
    def _begin(self, handle: CallHandle, start_unix_ns: int | None = None) -> None:
        if not self._used:  # the first call: the price data loads in a thread meanwhile
            self._used = True
            self.pipeline.start_loading()
        handle.start_unix_ns = time.time_ns() if start_unix_ns is None else start_unix_ns
        if self._sdk_tracer is not None:
            self._begin_sdk_span(
                handle, f"{handle.operation} {handle.fields['request_model']}", client=True
            )
        else:
            self._place(handle)
        handle.call_id = handle.span_id
        handle._start_ns = time.perf_counter_ns()

    @staticmethod
    def _place(handle: CallHandle | StepHandle) -> None:
        """The ids of a call or step without SDK spans: a child of the innermost enclosing call,
        step or OTel span, else the root of a new trace; it becomes the innermost itself."""
        outer = _current.get()
        otel_ctx = _otel_current()
        if outer is not None and outer[2] is otel_ctx:
            otel_span = outer[3]  # the context the innermost of ours was entered in: its span
        else:  # an empty context (the usual case) holds no span
            otel_span = get_current_span(otel_ctx) if otel_ctx else INVALID_SPAN
        if outer is not None and outer[3] is otel_span:
            # The innermost enclosing thing is one of our calls or steps.
            handle.trace_id, handle.parent_span_id = outer[0], outer[1]
            handle.span_id = _span_id()
        elif otel_span is INVALID_SPAN or not (ctx := otel_span.get_span_context()).is_valid:
            draw = _getrandbits(192)  # the root of a new trace (what _new_ids does, inline)
            ids = draw.to_bytes(24, "big").hex() if draw >> 64 and draw & _LOW_64 else _new_ids()
            handle.trace_id, handle.span_id = ids[:32], ids[32:]
        else:  # a child of the current OTel span
            handle.trace_id = f"{ctx.trace_id:032x}"
            handle.parent_span_id = f"{ctx.span_id:016x}"
            handle.span_id = _span_id()
        handle._token = _current.set((handle.trace_id, handle.span_id, otel_ctx, otel_span))

    def _begin_step(self, handle: StepHandle) -> None:
        if self._life.ended:
            raise StoreClosedError("AsyncTracer is closed")
        self._used = True
        handle.start_unix_ns = time.time_ns()
        scope = current_scope.get()
        if scope is not None:
            handle.session_id = scope.session_id
            handle.user_id = scope.user_id
        if handle.kind == "agent":
            handle.agent_name = handle.name
            handle._agent_token = _agent.set(handle.name)
        else:
            handle.agent_name = _agent.get()
        if self._sdk_tracer is not None:
            self._begin_sdk_span(handle, step_span_name(handle.kind, handle.name), client=False)
        else:
            self._place(handle)
        handle._start_ns = time.perf_counter_ns()

    def _finish_step(
        self, handle: StepHandle, exc_type: type[BaseException] | None
    ) -> TraceSpan | None:
        """End a step: status, record, span. The caller hands the record to the sinks."""
        end_ns = time.perf_counter_ns()
        if not self._leave(handle):
            return None
        if handle._agent_token is not None:
            try:
                _agent.reset(handle._agent_token)
            except ValueError:  # exited in another context: it went away with its value
                pass
        status = _outcome(exc_type, handle.failed)
        if exc_type is not None and status == "error":
            handle.error_type = exc_type.__name__
        duration: float | None = (end_ns - handle._start_ns) / 1e6
        try:
            record = TraceSpan.model_construct(
                span_id=handle.span_id,
                trace_id=handle.trace_id,
                parent_span_id=handle.parent_span_id,
                name=handle.name,
                kind=handle.kind,
                timestamp=from_ns(handle.start_unix_ns),
                duration_ms=duration if duration <= _MAX_STEP_MS else None,  # type: ignore[operator]
                status=status,
                error_type=handle.error_type if status == "error" else None,
                error_message=handle.error_message if status == "error" else None,
                service_name=self.service_name,
                source="tracer",
                session_id=handle.session_id,
                user_id=handle.user_id,
                agent_name=handle.agent_name,
                tool_name=handle.name if handle.kind == "tool" else None,
                attributes=handle.attributes,
            )
            if handle._otel_span is not None:
                self._end_otel(
                    handle._otel_span,
                    step_attributes(record),
                    record.status,
                    record.error_type,
                    record.error_message,
                    handle.start_unix_ns,
                    record.duration_ms,
                )
        except Exception as exc:
            report_internal_error("AsyncTracer recording a step", exc)
            return None
        return record

    def _begin_sdk_span(self, handle: CallHandle | StepHandle, name: str, *, client: bool) -> None:
        span = self._sdk_tracer.start_span(
            name,
            kind=OTelSpanKind.CLIENT if client else OTelSpanKind.INTERNAL,
            start_time=handle.start_unix_ns,
        )
        ctx = span.get_span_context()
        handle.trace_id = f"{ctx.trace_id:032x}"
        handle.span_id = f"{ctx.span_id:016x}"
        # A span the sampler dropped is a NonRecordingSpan, which has no .parent.
        parent = getattr(span, "parent", None) or get_current_span().get_span_context()
        handle.parent_span_id = f"{parent.span_id:016x}" if parent.is_valid else None
        handle._otel_span = span
        handle._token = otel_context.attach(set_span_in_context(span))

    def _finish(
        self,
        handle: CallHandle,
        exc_type: type[BaseException] | None,
        *,
        duration_ms: float | None = None,
        status: str | None = None,
    ) -> Rows | None:
        """End the call: status, price, row, span. The caller hands the batch to the sinks.

        The hot path: the handle's field dict, complete from the start, is filled in place and
        made the call's row by :meth:`Pipeline.batch` (priced there, by the one rule); the
        record is made there too when the tracer reads it (a live span's attributes, budgets),
        else only when a sink reads one (a store keeps the row as it is)."""
        end_ns = time.perf_counter_ns()
        if handle._ended:  # (what _leave does, inline)
            return None
        handle._ended = True
        token = handle._token
        if token is not None:
            if handle._otel_span is None:  # (what _detach does, inline for the usual case)
                handle._token = None
                try:
                    _current.reset(token)
                except ValueError:  # exited in another context than it was entered in
                    pass
            else:
                self._detach(handle)
        fields = handle.fields
        if status is None:
            if exc_type is None and not handle._failed:
                status = "ok"
            else:
                status = _outcome(exc_type, handle._failed)
                if exc_type is not None and status == "error":
                    fields["error_type"] = exc_type.__name__
        try:
            start_ns = handle._start_ns
            if duration_ms is None:
                duration_ms = (end_ns - start_ns) / 1e6
            first = handle._first_token_ns
            fields["ttft_ms"] = (
                None if first is None else min((first - start_ns) / 1e6, duration_ms)
            )
            fields["model"] = fields.pop("response_model", None) or fields["request_model"]
            input_tokens = fields["input_tokens"]
            output_tokens = fields["output_tokens"]
            if (
                input_tokens is not None
                and output_tokens is not None
                and fields["total_tokens"] is None
            ):
                fields["total_tokens"] = input_tokens + output_tokens
            fields["call_id"] = handle.call_id
            fields["timestamp"] = from_ns(handle.start_unix_ns)
            fields["service_name"] = self.service_name
            fields["trace_id"] = handle.trace_id
            fields["span_id"] = handle.span_id
            fields["parent_span_id"] = handle.parent_span_id
            fields["status"] = status
            fields["duration_ms"] = duration_ms
            fields["attributes"] = handle.attributes
            span = handle._otel_span
            budgets = self._budgets
            batch = self.pipeline.batch(
                fields, record=span is not None or budgets is not None or not self._rows_only
            )
            if span is not None:
                self._end_sdk_span(handle, batch[0])
        except Exception as exc:
            if self._budgets is not None:
                self._settle(handle, None)
            report_internal_error("AsyncTracer recording a call", exc)
            return None
        self._calls += 1
        if budgets is not None:
            self._settle(handle, batch[0])
        return batch

    def _settle(self, handle: CallHandle, record: LLMCall | None) -> None:
        """The call's actual cost replaces its reservation (in memory now, else on the loop)."""
        assert self._budgets is not None
        try:
            work = self._budgets.settle(handle._holds, record)
        except Exception as exc:
            report_internal_error("settling a budget", exc)
            return
        handle._holds = []
        if work is not None:
            self._spawn(work)

    def _leave(self, handle: CallHandle | StepHandle) -> bool:
        """Mark a call or step ended and restore the context it was entered in; False when it
        had ended already."""
        if handle._ended:
            return False
        handle._ended = True
        if handle._token is not None:
            self._detach(handle)
        return True

    def _detach(self, handle: CallHandle | StepHandle) -> None:
        token = handle._token
        handle._token = None
        try:
            if handle._otel_span is not None:
                otel_context.detach(token)
            else:
                _current.reset(token)
        except ValueError:
            # Exited in another context than it was entered in (e.g. an async generator closed
            # from elsewhere): the context that held the token is gone with it.
            pass

    def _end_sdk_span(self, handle: CallHandle, record: LLMCall) -> None:
        span = handle._otel_span
        span.update_name(span_name(record))
        self._end_otel(
            span,
            call_attributes(record),
            record.status,
            record.error_type,
            record.error_message,
            handle.start_unix_ns,
            record.duration_ms,
        )

    @staticmethod
    def _end_otel(
        span: Any,
        attributes: Mapping[str, Any],
        status: str,
        error_type: str | None,
        error_message: str | None,
        start_unix_ns: int,
        duration_ms: float | None,
    ) -> None:
        """End a live SDK span of a call or step: attributes, error status and event, end."""
        span.set_attributes(attributes)
        if status == "error":
            event = exception_event(error_type, error_message)
            if event is not None:
                span.add_event(EXCEPTION_EVENT, event)
            span.set_status(Status(StatusCode.ERROR, error_message))
        span.end(end_time=start_unix_ns + round((duration_ms or 0.0) * 1e6))

    async def _record_timed(
        self,
        handle: CallHandle,
        latency_ms: float,
        status: str,
        error_type: str | None,
        ttft_ms: float | None,
    ) -> LLMCall:
        latency_ms = check_millis("latency_ms", latency_ms)
        if status.__class__ is not str or status not in _STATUSES:
            raise ValueError(f"status must be one of {sorted(_STATUSES)}, got {status!r}")
        await self.pipeline.warm()  # the record returned is priced (a thread loads the data)
        if error_type is not None:
            handle.set(error_type=error_type)
        if ttft_ms is not None:
            ttft_ns = int(check_millis("ttft_ms", ttft_ms) * 1e6)
        self._begin(handle, start_unix_ns=time.time_ns() - int(latency_ms * 1e6))
        if ttft_ms is not None:
            handle._first_token_ns = handle._start_ns + ttft_ns
        batch = self._finish(handle, None, duration_ms=latency_ms, status=status)
        assert batch is not None
        pending = self.pipeline.submit_priced(batch)
        if pending is not None:
            await pending
        return batch[0]


def _checked_estimate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"estimate_usd must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"estimate_usd must be finite and >= 0, got {value!r}")
    return float(value)


def _outcome(exc_type: type[BaseException] | None, failed: bool) -> str:
    """A call's or step's status from how its block ended."""
    if exc_type is None:
        return "error" if failed else "ok"
    if issubclass(exc_type, asyncio.CancelledError):
        return "cancelled"
    return "error"


def _exporters(
    otlp_endpoint: str | None,
    otlp_http_endpoint: str | None,
    console: bool,
    resource: Mapping[str, str],
    headers: Mapping[str, str] | None,
) -> list[Sink]:
    """The exporters the tracer's keyword arguments ask for (the ``_export`` layer is imported
    only when one is)."""
    if not (otlp_endpoint or otlp_http_endpoint or console):
        return []
    from . import _export

    service_name = resource["service.name"]
    made: list[Sink] = []
    if otlp_endpoint:
        made.append(
            _export.OTLPGrpcExporter(
                otlp_endpoint,
                service_name=service_name,
                resource_attributes=resource,
                headers=headers,
            )
        )
    if otlp_http_endpoint:
        made.append(
            _export.OTLPHttpExporter(
                otlp_http_endpoint,
                service_name=service_name,
                resource_attributes=resource,
                headers=headers,
            )
        )
    if console:
        made.append(_export.ConsoleSink())
    return made


async def _awaited(work: Awaitable[None]) -> None:
    await work


class _SampledSink:
    """Passes to an exporter only the calls the sampler keeps (decided on the trace id)."""

    def __init__(self, sink: Sink, sampler: Sampler) -> None:
        self.sink = sink
        self.sampler = sampler

    def _kept(self, calls: Sequence[LLMCall]) -> list[LLMCall]:
        kept = []
        for call in calls:
            trace_id = int(call.trace_id, 16) if call.trace_id else 0
            result = self.sampler.should_sample(None, trace_id, span_name(call))
            if result.decision.is_sampled():  # type: ignore[no-untyped-call]
                kept.append(call)
        return kept

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        kept = self._kept(calls)
        if kept:
            await self.sink.emit(kept)

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Steps of the traces the sampler keeps, to a sink that takes steps."""
        if not isinstance(self.sink, SpanSink):
            return
        kept = [
            span
            for span in spans
            if self.sampler.should_sample(
                None, int(span.trace_id, 16), span.name
            ).decision.is_sampled()  # type: ignore[no-untyped-call]
        ]
        if kept:
            await self.sink.emit_spans(kept)

    async def flush(self) -> None:
        await self.sink.flush()

    async def aclose(self) -> None:
        await self.sink.aclose()


class _AsyncSpanProcessor(QueuedSpanProcessor):
    """An OTel SDK span processor that batches ended spans in an asyncio task, not a thread.

    A user's ``SpanExporter.export`` is synchronous and may do network I/O, so each batch is
    handed to it through ``asyncio.to_thread``; the batching and the queue stay on the loop.
    """

    def __init__(self, exporter: SpanExporter, max_queue: int = 32_768) -> None:
        self.exporter = exporter
        super().__init__(self._export, max_queue=max_queue, name="span exporter")

    async def _export(self, batch: list[ReadableSpan]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = await asyncio.to_thread(self.exporter.export, batch)
        if result is not SpanExportResult.SUCCESS:
            raise Retryable(RuntimeError(f"{type(self.exporter).__name__} returned {result}"))

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.to_thread(self.exporter.shutdown)
