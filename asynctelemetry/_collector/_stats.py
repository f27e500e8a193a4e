"""What the collector counts, and the two ways one request is refused.

Shared by the gRPC service (:mod:`._server`) and the OTLP/HTTP receiver (:mod:`._http`), which
both take requests through one ingest path; kept apart so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._batching import QueueStats

__all__ = ["CollectorStats", "MalformedRequest", "StoreBehind"]


@dataclass
class CollectorStats:
    """What a collector has seen. Spans of refused requests (backpressure) are not counted here:
    the client sends them again.

    Attributes:
        requests: Export requests accepted.
        received_spans: spans in accepted requests.
        llm_calls: spans turned into calls and queued for the store.
        ignored_spans: spans that are not LLM calls (HTTP, database, agent, tool spans…).
        rejected_spans: LLM spans that could not be kept (no model); reported to the client in
            ``partial_success``.
        defects: bad values set to None, attributes cut or dropped, by kind.
        malformed_requests: requests that were not valid protobuf (``INVALID_ARGUMENT``).
        refused_requests: requests answered ``UNAVAILABLE`` because the store was behind.
        unauthenticated: calls refused for a missing or wrong bearer token.
        stored: calls handed to the store and the other sinks.
        ingest: the ingest queue, whose items are the calls of one request each.
        forward: the forwarding queue, when ``forward_to`` is set.
        http_responses: the OTLP/HTTP receiver's answers by status code (200, 400, 401, 413,
            415, 429, 503…), when ``http_port`` is set.
    """

    requests: int = 0
    received_spans: int = 0
    llm_calls: int = 0
    ignored_spans: int = 0
    rejected_spans: int = 0
    defects: dict[str, int] = field(default_factory=dict)
    malformed_requests: int = 0
    refused_requests: int = 0
    unauthenticated: int = 0
    stored: int = 0
    ingest: QueueStats = field(default_factory=QueueStats)
    forward: QueueStats | None = None
    http_responses: dict[int, int] = field(default_factory=dict)


class MalformedRequest(Exception):
    """The request body is not a valid ExportTraceServiceRequest."""


class StoreBehind(Exception):
    """The store cannot keep up: nothing was kept; the client should retry later."""
