"""Client instrumentation: ``tracer.instrument(client)`` and ``tracer.uninstrument(client)``.

Layer 5 (producer), below the tracer, which it knows only as a :class:`._hook.Tracer`. Which SDK
a client belongs to is decided from the modules already imported (a client of an SDK means that
SDK is imported), so no SDK is ever imported here. The shared wrapping is :mod:`._hook` (and
:mod:`._methods` for SDKs without one ``request`` method); :mod:`._openai`, :mod:`._anthropic`
:mod:`._google`, :mod:`._mistral` and :mod:`._litellm` say which calls are traced.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import ConfigError
from . import _anthropic, _google, _litellm, _mistral, _openai
from ._hook import install, installed_tracer, remove

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._hook import Tracer
    from ._methods import Method

__all__ = ["installed_tracer", "instrument", "uninstrument"]

C = TypeVar("C")
_SUPPORTED = (
    "openai.AsyncOpenAI, openai.AsyncAzureOpenAI, anthropic.AsyncAnthropic, google.genai.Client, "
    "mistralai.client.Mistral or the litellm module"
)


def instrument(tracer: Tracer, client: C, *, stream_usage: bool = False) -> C:
    """Trace ``client``'s calls with ``tracer`` (see :meth:`AsyncTracer.instrument`)."""
    openai = sys.modules.get("openai")
    if openai is not None and isinstance(client, openai.AsyncOpenAI):
        api = _openai.api_for(openai, client)
        install(tracer, client, replace(api, stream_usage=stream_usage))
        return client
    anthropic = sys.modules.get("anthropic")
    if anthropic is not None and isinstance(client, anthropic.AsyncAnthropic):
        install(tracer, client, _anthropic.api_for(anthropic, client))  # streams report usage
        return client
    genai = sys.modules.get("google.genai")
    if genai is not None and (models := _google.models_of(genai, client)) is not None:
        _google.instrument(tracer, models)
        return client
    if (targets := _mistral_targets(client)) is not None:
        _mistral.instrument(tracer, targets)
        return client
    if _litellm.is_litellm(client):
        _litellm.instrument(tracer, client)
        return client
    raise ConfigError(_refusal(client, openai, anthropic))


def uninstrument(tracer: Tracer, client: object) -> None:
    """Stop tracing ``client`` (see :meth:`AsyncTracer.uninstrument`)."""
    genai = sys.modules.get("google.genai")
    if genai is not None and (models := _google.models_of(genai, client)) is not None:
        _google.uninstrument(tracer, models)
        return
    if (targets := _mistral_targets(client)) is not None:
        _mistral.uninstrument(tracer, targets)
        return
    if _litellm.is_litellm(client):
        _litellm.uninstrument(tracer, client)
        return
    remove(tracer, client)


def _mistral_targets(client: object) -> list[tuple[Any, Sequence[Method]]] | None:
    for name in ("mistralai.client", "mistralai"):  # where Mistral lives now, and in 1.x
        module = sys.modules.get(name)
        if module is not None and (targets := _mistral.targets_of(module, client)) is not None:
            return targets
    return None


def _refusal(client: object, openai: Any, anthropic: Any) -> str:
    """The message for a client that cannot be instrumented: for a synchronous one, the async
    class to use instead."""
    kind = type(client)
    name = f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    for module, sync_names in ((openai, ("AzureOpenAI", "OpenAI")), (anthropic, ("Anthropic",))):
        if module is None:
            continue
        for sync_name in sync_names:
            sync_class = getattr(module, sync_name, None)
            if isinstance(sync_class, type) and isinstance(client, sync_class):
                async_name = f"{module.__name__}.Async{sync_name}"
                return (
                    f"{name} is a synchronous client; asynctelemetry instruments async clients: "
                    f"use {async_name} instead"
                )
    return f"instrument() takes an {_SUPPORTED} client, got {name}"
