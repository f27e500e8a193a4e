"""The grpc.aio OTLP collector: spans of every convention in, LLMCall records out."""

from .._http_limits import HttpLimits
from ._convert import span_to_llm_call
from ._server import AsyncCollector, CollectorStats

__all__ = ["AsyncCollector", "CollectorStats", "HttpLimits", "span_to_llm_call"]
