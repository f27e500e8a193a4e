"""Hooks on SDK methods, for the SDKs whose calls do not share one ``request`` method (Google
GenAI, Mistral, LiteLLM).

Layer 5 (producer). Installing puts a wrapper in front of named async methods of *one object*: an
instance attribute that shadows the class's method (Google's ``AsyncModels``, Mistral's ``Chat``),
or, for LiteLLM, the module's own function. Each wrapped call goes through
:func:`._hook.traced_call`, the same path as the OpenAI and Anthropic hook: one record per call,
streams traced by :class:`~asynctelemetry._stream.TracedStream`. Removing puts back exactly what
was there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._hook import STATE, claim, owned, traced_call

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._hook import Route, StreamTracer, Tracer

__all__ = ["Method", "install_methods", "remove_methods"]

#: What the target's ``__dict__`` held under the wrapped names before (restored on removal).
_SAVED: Final = "_asynctelemetry_saved"


@dataclass(frozen=True, slots=True)
class Method:
    """One traced async method.

    Attributes:
        name: the attribute that holds it on the target.
        route: what its calls are and how their responses and chunks are read.
        trace_stream: how a streamed result is traced (``None``: the method never streams).
        streams: ``True`` when every call streams; ``None`` when a call streams if it is made
            with ``stream=True`` (LiteLLM).
    """

    name: str
    route: Route
    trace_stream: StreamTracer | None = None
    streams: bool | None = False


def install_methods(
    tracer: Tracer, target: Any, provider: str | None, methods: Sequence[Method]
) -> None:
    """Wrap ``methods`` of ``target`` (idempotent; another tracer's target is a ConfigError)."""
    if not claim(tracer, target):
        return
    attrs = target.__dict__
    saved = {method.name: attrs[method.name] for method in methods if method.name in attrs}
    for method in methods:
        attrs[method.name] = _wrap(tracer, provider, getattr(target, method.name), method)
    attrs[_SAVED] = saved
    attrs[STATE] = tracer


def remove_methods(tracer: Tracer, target: Any, methods: Sequence[Method]) -> None:
    """Undo :func:`install_methods` (nothing to do when ``target`` is not instrumented)."""
    if not owned(tracer, target):
        return
    attrs = target.__dict__
    saved = attrs.pop(_SAVED, {})
    for method in methods:
        if method.name in saved:
            attrs[method.name] = saved[method.name]
        else:
            attrs.pop(method.name, None)
    attrs.pop(STATE, None)


def _wrap(
    tracer: Tracer, provider: str | None, original: Callable[..., Any], method: Method
) -> Callable[..., Any]:
    route, trace_stream, streams = method.route, method.trace_stream, method.streams

    @functools.wraps(original)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        if tracer._life.ended:
            return await original(*args, **kwargs)
        stream = streams if streams is not None else kwargs.get("stream") is True
        return await traced_call(
            tracer,
            provider,
            route,
            kwargs,
            stream,
            lambda: original(*args, **kwargs),
            trace_stream if stream else None,
        )

    return traced
