"""The OpenAI SDK (``openai.AsyncOpenAI``, ``AsyncAzureOpenAI``): which calls are traced, and how
their content is read when ``capture_content=True``. Usage is read by ``_usage`` only.

Traced routes: ``/chat/completions`` (``create`` plain and streamed, ``parse``, the ``stream()``
helper), ``/responses`` (``create`` plain and streamed, ``parse``, ``stream()``) and
``/embeddings``. The SDK module is the caller's: nothing here imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._usage import _get, _items, _type_of, read_openai_chat_chunk, read_responses_event
from ._hook import Api, Route, body_prompt, joined_text, nothing, typed_text

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["api_for", "chat_chunk_text", "chat_output", "chat_prompt"]


chat_prompt = body_prompt("messages")


def chat_chunk_text(chunk: object) -> str | None:
    return joined_text(
        _get(_get(choice, "delta"), "content") for choice in _items(_get(chunk, "choices"))
    )


def chat_output(response: object) -> str | None:
    return joined_text(
        _get(_get(choice, "message"), "content") for choice in _items(_get(response, "choices"))
    )


def _responses_chunk_text(event: object) -> str | None:
    if _type_of(event) != "response.output_text.delta":
        return None
    return joined_text((_get(event, "delta"),))


def _responses_output(response: object) -> str | None:
    return joined_text(
        typed_text(_get(item, "content"), "output_text")
        for item in _items(_get(response, "output"))
        if _type_of(item) == "message"
    )


CHAT = Route(
    "chat", read_openai_chat_chunk, chat_chunk_text, chat_prompt, chat_output, usage_option=True
)
RESPONSES = Route(
    "chat",
    read_responses_event,
    _responses_chunk_text,
    body_prompt("input", "instructions"),
    _responses_output,
)
EMBEDDINGS = Route("embed", read_openai_chat_chunk, nothing, body_prompt("input"), nothing)
ROUTES = {"/chat/completions": CHAT, "/responses": RESPONSES, "/embeddings": EMBEDDINGS}


def api_for(openai: ModuleType, client: object) -> Api:
    """The traced routes of an async OpenAI client (Azure clients report provider "azure")."""
    azure = getattr(openai, "AsyncAzureOpenAI", None)
    provider = "azure" if azure is not None and isinstance(client, azure) else "openai"
    return Api(provider, ROUTES, openai.AsyncStream)
