"""Google GenAI (``google.genai.Client``, Gemini API and Vertex AI): which calls are traced, and
how their content is read when ``capture_content=True``. Usage is read by ``_usage`` only (the
``google`` shape: prompt plus tool-use prompt tokens in, candidates plus thoughts out, cached
content as cache reads), with the candidates' finish reasons.

Traced: the async models of the client (``client.aio.models``, which ``client.aio.chats`` uses
too). The hooks sit on the methods that send one HTTP request each (``_generate_content``,
``_generate_content_stream``, ``_embed_content``), below ``generate_content``'s automatic
function calling and continuation loops, so each request the SDK sends is one record with its
own usage. A stream is the SDK's async iterator of ``GenerateContentResponse`` chunks, wrapped in
a :class:`~asynctelemetry._stream.TracedStream` that the SDK's public stream consumes. The SDK
module is the caller's: nothing here imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._exceptions import ConfigError
from .._usage import Usage, _get, _items, google_parts, read_google_chunk, usage_from_response
from ._hook import INPUT_KEY, SYSTEM_KEY, Route, joined_text, nothing, trace_iterator
from ._methods import Method, install_methods, remove_methods

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType

    from .._call import CallHandle
    from .._usage import ChunkInfo
    from ._hook import StreamReading, Tracer

__all__ = ["instrument", "models_of", "uninstrument"]


def _prompt(body: Mapping[str, Any]) -> dict[str, object]:
    return {
        INPUT_KEY: body.get("contents"),
        SYSTEM_KEY: _get(body.get("config"), "system_instruction"),
    }


def _embed_prompt(body: Mapping[str, Any]) -> dict[str, object]:
    for key in ("contents", "content", "batch_contents"):
        if body.get(key) is not None:
            return {INPUT_KEY: body[key]}
    return {}


def _text(response: object) -> str | None:
    """The text of a response's (or chunk's) candidates, without thought summaries."""
    return joined_text(
        _get(part, "text")
        for candidate in _items(_get(response, "candidates"))
        for part in _items(_get(_get(candidate, "content"), "parts"))
        if not _get(part, "thought")
    )


def _reading() -> StreamReading:
    """One stream's reading: each chunk says whether it has output and counts its function
    calls; the usage, model and finish reasons are read once, at the end, from the last chunk
    that reported usage (Google's counts are cumulative: the last one holds them all)."""
    last: list[object] = []

    def reader(chunk: object) -> ChunkInfo:
        has_parts, calls = google_parts(chunk)
        if _get(chunk, "usage_metadata") is not None:
            last[:] = (chunk,)
        return has_parts, (Usage(tool_calls=calls) if calls else None)

    def on_end(handle: CallHandle) -> None:
        usage = usage_from_response(last[0]) if last else None
        if usage is not None:
            usage.tool_calls = 0  # counted chunk by chunk
            handle._apply(usage, add_tool_calls=True)

    return reader, on_end


GENERATE = Route("chat", read_google_chunk, _text, _prompt, _text, per_stream=_reading)
EMBED = Route("embed", read_google_chunk, nothing, _embed_prompt, nothing)
METHODS: Final = (
    Method("_generate_content", GENERATE),
    Method("_generate_content_stream", GENERATE, trace_iterator, streams=True),
    Method("_embed_content", EMBED),
)


def models_of(genai: ModuleType, client: object) -> object | None:
    """The async models object of a ``google.genai.Client`` (or of its ``.aio``), else ``None``."""
    if isinstance(client, genai.Client):
        client = client.aio
    async_client = getattr(getattr(genai, "client", None), "AsyncClient", None)
    if async_client is not None and isinstance(client, async_client):
        models: object = client.models
        return models
    return None


def instrument(tracer: Tracer, models: Any) -> None:
    """Trace the requests of ``models`` (a client's ``aio.models``)."""
    missing = [
        method.name for method in METHODS if not callable(getattr(models, method.name, None))
    ]
    if missing:
        raise ConfigError(
            f"this google-genai version has no {', '.join(missing)} on its async models "
            "(asynctelemetry instruments google-genai 3.x)"
        )
    vertex = getattr(getattr(models, "_api_client", None), "vertexai", False) is True
    install_methods(tracer, models, "vertex_ai" if vertex else "google", METHODS)


def uninstrument(tracer: Tracer, models: Any) -> None:
    """Undo :func:`instrument`."""
    remove_methods(tracer, models, METHODS)
