"""LiteLLM (the ``litellm`` module): ``acompletion`` and ``aembedding``, streams included.

``tracer.instrument(litellm)`` replaces the module's ``acompletion`` and ``aembedding`` with
traced ones (``uninstrument`` puts LiteLLM's back): code that calls ``litellm.acompletion(...)``
is traced; a name imported before (``from litellm import acompletion``) is not. Every call is one
record whatever provider LiteLLM routes it to: LiteLLM answers in OpenAI's shape, so usage is read
by ``_usage``'s OpenAI Chat reader; the provider LiteLLM routed to comes from the response (its
``_hidden_params``), the stream or the exception, and LiteLLM's own cost is kept as the
``litellm.response_cost`` attribute beside ours.

A stream is LiteLLM's own ``CustomStreamWrapper``: the object's class is swapped for a subclass
(made once per class) whose ``__anext__`` and ``aclose`` go through a
:class:`~asynctelemetry._stream.TracedStream` reading LiteLLM's own ``__anext__``, so
``isinstance`` holds and every attribute and helper stays. The module is the caller's: nothing
here imports it.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any, Final

from .._usage import read_openai_chat_chunk
from ._hook import Route, body_prompt, nothing, trace_iterator
from ._methods import Method, install_methods, remove_methods
from ._openai import chat_chunk_text, chat_output, chat_prompt

if TYPE_CHECKING:
    from .._call import CallHandle
    from ._hook import Tracer

__all__ = ["COST_KEY", "instrument", "is_litellm", "uninstrument"]

#: LiteLLM's own cost of a call (USD), kept beside asynctelemetry's for comparison.
COST_KEY: Final = "litellm.response_cost"
_STREAM_KEY: Final = "_asynctelemetry_stream"


def _note(handle: CallHandle, outcome: object) -> None:
    """What LiteLLM says beyond usage, of a response or an exception: the provider it routed
    to, and its own cost."""
    hidden = _provider(handle, outcome)
    cost = hidden.get("response_cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
        handle.set_attribute(COST_KEY, float(cost))


def _provider(handle: CallHandle, outcome: object) -> dict[str, Any]:
    """Set the provider LiteLLM routed to (a response's ``custom_llm_provider`` or the prefix
    of its ``litellm_model_name``, a stream's ``custom_llm_provider``, an exception's
    ``llm_provider``); returns the outcome's ``_hidden_params``."""
    private = getattr(outcome, "__pydantic_private__", None)
    if isinstance(private, dict):  # a response: read without pydantic's slow __getattr__
        hidden = private.get("_hidden_params")
    else:  # a stream or an exception
        hidden = getattr(outcome, "_hidden_params", None)
    hidden = hidden if isinstance(hidden, dict) else {}
    provider = (
        hidden.get("custom_llm_provider")
        or getattr(outcome, "custom_llm_provider", None)
        or getattr(outcome, "llm_provider", None)
    )
    routed = hidden.get("litellm_model_name")  # "anthropic/claude-…": the model LiteLLM called
    if not provider and isinstance(routed, str) and "/" in routed:
        provider = routed.split("/", 1)[0]
    if isinstance(provider, str) and provider:
        handle.set(provider=provider)
    return hidden


class _Forward:
    """The iterator a traced LiteLLM stream reads: the stream's own class's ``__anext__``
    (weakly: the caller's stream object keeps the traced stream, never the reverse)."""

    __slots__ = ("_base", "_stream")

    def __init__(self, stream: object, base: type) -> None:
        self._stream = weakref.ref(stream)
        self._base: Any = base

    def __aiter__(self) -> _Forward:
        return self

    async def __anext__(self) -> Any:
        stream = self._stream()
        if stream is None:
            raise StopAsyncIteration
        return await self._base.__anext__(stream)


async def _anext(self: Any) -> Any:
    return await self.__dict__[_STREAM_KEY].__anext__()


async def _aclose(self: Any) -> None:
    """The consumer closes the stream (``aclose()``, ``async with``): LiteLLM's own ``aclose``,
    then the call is recorded, unless LiteLLM closes itself inside a read (on an error), whose
    outcome records it."""
    base: Any = type(self).__mro__[1]  # LiteLLM's own class
    try:
        await base.aclose(self)
    finally:
        await self.__dict__[_STREAM_KEY].closed_by_consumer()


_TRACED_CLASSES: dict[type, type] = {}


def _traced_class(base: type) -> type:
    found = _TRACED_CLASSES.get(base)
    if found is None:
        namespace = {
            "__anext__": _anext,
            "aclose": _aclose,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
        }
        found = _TRACED_CLASSES[base] = type(base.__name__, (base,), namespace)
    return found


def _trace_stream(tracer: Tracer, handle: CallHandle, stream: Any, route: Route) -> Any:
    base = type(stream)
    if not hasattr(base, "__anext__") or not hasattr(stream, "__dict__"):
        return None  # not a stream after all: read it as a response
    _provider(handle, stream)  # its cost is not known before its end
    traced = trace_iterator(tracer, handle, _Forward(stream, base), route)
    stream.__dict__[_STREAM_KEY] = traced
    stream.__class__ = _traced_class(base)
    return stream


COMPLETION = Route(
    "chat", read_openai_chat_chunk, chat_chunk_text, chat_prompt, chat_output, note=_note
)
EMBEDDING = Route(
    "embed", read_openai_chat_chunk, nothing, body_prompt("input"), nothing, note=_note
)
METHODS: Final = (
    Method("acompletion", COMPLETION, _trace_stream, streams=None),
    Method("aembedding", EMBEDDING),
)


def is_litellm(client: object) -> bool:
    """Whether ``client`` is the ``litellm`` module."""
    return getattr(client, "__name__", None) == "litellm" and hasattr(client, "acompletion")


def instrument(tracer: Tracer, litellm: Any) -> None:
    """Trace the module's ``acompletion`` and ``aembedding``."""
    install_methods(tracer, litellm, None, METHODS)


def uninstrument(tracer: Tracer, litellm: Any) -> None:
    """Undo :func:`instrument`."""
    remove_methods(tracer, litellm, METHODS)
