"""The Anthropic SDK (``anthropic.AsyncAnthropic``): which calls are traced, and how their content
is read when ``capture_content=True``. Usage is read by ``_usage`` only (cache reads and writes
are added into ``input_tokens``, as records count them).

Traced routes: ``/v1/messages`` (``messages.create`` plain and streamed, ``messages.stream()``,
``messages.parse``, and the same under ``client.beta``, which adds its ``beta=true`` as a query
parameter) and ``/v1/messages?beta=true`` (how earlier SDK versions spelled the beta path). The
SDK module is the caller's: nothing here imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._usage import _get, _type_of, read_anthropic_event
from ._hook import Api, Route, body_prompt, joined_text, typed_text

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["api_for"]


def _chunk_text(event: object) -> str | None:
    delta = _get(event, "delta")
    if _type_of(event) != "content_block_delta" or _type_of(delta) != "text_delta":
        return None
    return joined_text((_get(delta, "text"),))


def _output(message: object) -> str | None:
    return typed_text(_get(message, "content"), "text")


MESSAGES = Route(
    "chat", read_anthropic_event, _chunk_text, body_prompt("messages", "system"), _output
)
ROUTES = {"/v1/messages": MESSAGES, "/v1/messages?beta=true": MESSAGES}


def api_for(anthropic: ModuleType, client: object) -> Api:
    """The traced routes of an ``anthropic.AsyncAnthropic`` client."""
    return Api("anthropic", ROUTES, anthropic.AsyncStream)
