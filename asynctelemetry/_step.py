"""The handle of one step of a trace: ``async with tracer.agent(name) as step`` (or ``tool``,
``span``), also a decorator of async functions.

Layer 5 (producer side), beside :mod:`._call`. A step times itself like ``llm_call`` (monotonic
clock; an exception gives status "error" with its type and message and propagates; a
cancellation gives "cancelled"), and everything started inside it (calls, instrumented SDK
calls, other steps) is its child: the tracer keeps the innermost step or call of each context in
a :class:`contextvars.ContextVar`, so this holds across ``await`` and into tasks created inside.
The tracer turns the handle into one :class:`~asynctelemetry.TraceSpan` when the block exits and
hands it to the pipeline's span sinks.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._call import check_text, error_text, put_attribute
from ._exceptions import ConfigError
from ._record import MAX_MODEL_LENGTH, SPAN_KINDS, bounded_message

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from ._pipeline import Pipeline
    from ._record import AttributeValue, TraceSpan

__all__ = ["StepHandle", "StepRecorder"]

R = TypeVar("R")


class StepRecorder(Protocol):
    """What a :class:`StepHandle` needs of its tracer (:class:`~asynctelemetry.AsyncTracer`)."""

    @property
    def capture_content(self) -> bool:
        """Whether prompt and completion text is kept."""
        ...

    @property
    def pipeline(self) -> Pipeline:
        """Hands records to the sinks."""
        ...

    def _begin_step(self, handle: StepHandle) -> None: ...

    def _finish_step(
        self, handle: StepHandle, exc_type: type[BaseException] | None
    ) -> TraceSpan | None: ...


class StepHandle:
    """One step in progress (an agent run, a tool, a workflow, …). Set what you learn; the
    tracer records it when the block ends. Used as a decorator, each call of the decorated
    coroutine function is a step of its own.

    Attributes:
        name: the step's name.
        kind: "agent", "tool", "workflow", "retrieval", "guardrail", "evaluator", "http" or
            "internal".
        trace_id: the trace the step belongs to (hex), once entered.
        span_id: the step's span id (hex), once entered.
        parent_span_id: the enclosing step's, call's or OTel span's id (hex), if any.
        agent_name: the innermost agent the step runs under (itself, for an agent).
    """

    __slots__ = (
        "_agent_token",
        "_ended",
        "_failed",
        "_otel_span",
        "_start_ns",
        "_token",
        "_tracer",
        "agent_name",
        "attributes",
        "error_message",
        "error_type",
        "kind",
        "name",
        "parent_span_id",
        "session_id",
        "span_id",
        "start_unix_ns",
        "trace_id",
        "user_id",
    )

    def __init__(
        self,
        tracer: StepRecorder,
        name: object,
        kind: object,
        attributes: dict[str, Any],
    ) -> None:
        try:
            name = check_text("name", name)
            if not 0 < len(name) <= MAX_MODEL_LENGTH:
                raise ValueError(f"a step's name must have 1 to {MAX_MODEL_LENGTH} characters")
            if kind not in SPAN_KINDS:
                raise ValueError(f"kind must be one of {list(SPAN_KINDS)}, got {kind!r}")
            self.attributes: dict[str, AttributeValue] = {}
            for key, value in attributes.items():
                put_attribute(self.attributes, key, value, tracer.capture_content)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._tracer = tracer
        self.name: str = name
        self.kind: str = kind
        self._failed = False
        self._ended = False
        self._otel_span: Any = None
        self._token: Any = None
        self._agent_token: Any = None
        self._start_ns = 0
        self.start_unix_ns = 0
        self.trace_id = self.span_id = ""
        self.parent_span_id: str | None = None
        self.agent_name: str | None = None
        self.session_id: str | None = None
        self.user_id: str | None = None
        self.error_type: str | None = None
        self.error_message: str | None = None

    async def __aenter__(self) -> StepHandle:
        if self._ended or self._start_ns:
            raise RuntimeError("a step handle can be entered only once; decorate, or make another")
        self._tracer._begin_step(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Returning None lets the caller's exception or cancellation propagate unchanged.
        if exc is not None and self.error_message is None:
            self.error_message = error_text(exc)
        record = self._tracer._finish_step(self, exc_type)
        if record is not None:
            await self._tracer.pipeline.emit_spans((record,))

    def __call__(self, fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        """Decorate a coroutine function: each of its calls runs inside a new step like this
        one (same tracer, name, kind and attributes).

        Raises:
            ConfigError: ``fn`` is not a coroutine function.
        """
        if not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"a step decorates an async function, not {getattr(fn, '__name__', fn)!r}"
            )
        tracer, name, kind, attributes = self._tracer, self.name, self.kind, self.attributes

        @functools.wraps(fn)
        async def traced(*args: Any, **kwargs: Any) -> R:
            async with StepHandle(tracer, name, kind, attributes):
                return await fn(*args, **kwargs)

        return traced

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Keep an extra attribute on the step and its span (the bounds of LLMCall's).

        Raises:
            ValueError: a value that is not str, int, float or bool, a non-finite float, a
                string longer than 4096 characters, or more than 128 attributes.
        """
        put_attribute(self.attributes, key, value, self._tracer.capture_content)

    def fail(self, error_type: str, *, message: str | None = None) -> None:
        """Mark the step failed without raising (an error the code handled itself)."""
        self.error_type = check_text("error_type", error_type)
        if message is not None:
            self.error_message = bounded_message(check_text("message", message))
        self._failed = True

    @property
    def failed(self) -> bool:
        """Whether :meth:`fail` was called."""
        return self._failed

    def __repr__(self) -> str:
        return f"StepHandle(kind={self.kind!r}, name={self.name!r}, span_id={self.span_id!r})"
