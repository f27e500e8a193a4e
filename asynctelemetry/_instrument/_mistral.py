"""Mistral (``mistralai.client.Mistral``): which calls are traced, and how their content is read
when ``capture_content=True``. Mistral's API is OpenAI-shaped (usage in ``prompt_tokens`` and
``completion_tokens``, chunks with ``choices[].delta``), so usage is read by ``_usage``'s OpenAI
Chat reader, and content by the OpenAI adapter's readers.

Traced: ``chat.complete_async``, ``chat.stream_async`` and ``embeddings.create_async`` of one
client (the hooks are instance attributes of its ``chat`` and ``embeddings``). A stream is the
SDK's own ``EventStreamAsync``: its ``generator`` is wrapped in a
:class:`~asynctelemetry._stream.TracedStream` and its HTTP response's ``aclose`` tells the traced
stream that ``close()`` (or ``async with``) ended it, as for OpenAI's streams. The SDK module is
the caller's: nothing here imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._usage import ChunkInfo, _get, read_openai_chat_chunk
from ._hook import Route, body_prompt, nothing, trace_in_place
from ._methods import Method, install_methods, remove_methods
from ._openai import chat_chunk_text, chat_output, chat_prompt

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    from .._call import CallHandle
    from ._hook import Tracer

__all__ = ["PROVIDER", "instrument", "targets_of", "uninstrument"]

#: The provider name of Mistral's calls (OpenTelemetry's ``gen_ai.provider.name`` for Mistral).
PROVIDER: Final = "mistral_ai"


def _read_event(event: object) -> ChunkInfo:
    return read_openai_chat_chunk(_get(event, "data"))


def _event_text(event: object) -> str | None:
    return chat_chunk_text(_get(event, "data"))


def _trace_events(tracer: Tracer, handle: CallHandle, stream: Any, route: Route) -> Any:
    if not hasattr(stream, "generator"):
        return None
    trace_in_place(tracer, handle, stream, route, "generator")
    return stream


CHAT = Route("chat", _read_event, _event_text, chat_prompt, chat_output)
EMBED = Route("embed", read_openai_chat_chunk, nothing, body_prompt("inputs"), nothing)
#: The traced methods of each of the client's sub-SDKs.
METHODS: Final = {
    "chat": (
        Method("complete_async", CHAT),
        Method("stream_async", CHAT, _trace_events, streams=True),
    ),
    "embeddings": (Method("create_async", EMBED),),
}


def targets_of(mistralai: ModuleType, client: Any) -> list[tuple[Any, Sequence[Method]]] | None:
    """The objects of a ``Mistral`` client whose methods are traced, else ``None``."""
    mistral = getattr(mistralai, "Mistral", None)
    if not isinstance(mistral, type) or not isinstance(client, mistral):
        return None
    # Its sub-SDKs are made on first use, then kept: the same objects every time.
    return [(getattr(client, name), methods) for name, methods in METHODS.items()]


def instrument(tracer: Tracer, targets: list[tuple[Any, Sequence[Method]]]) -> None:
    """Trace the client's chat and embeddings calls."""
    for target, methods in targets:
        install_methods(tracer, target, PROVIDER, methods)


def uninstrument(tracer: Tracer, targets: list[tuple[Any, Sequence[Method]]]) -> None:
    """Undo :func:`instrument`."""
    for target, methods in targets:
        remove_methods(tracer, target, methods)
