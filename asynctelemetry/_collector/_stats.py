"""What the collector counts, and the two ways one request is refused.

Shared by the gRPC service (:mod:`._server`) and the OTLP/HTTP receiver (:mod:`._http`), which
both take requests through one ingest path; kept apart so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._batching import QueueStats

__all__ = ["CollectorCounts", "CollectorStats", "MalformedRequest", "StoreBehind"]


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """What a collector has done: a snapshot taken when ``collector.stats`` is read (it never
    changes afterwards; assigning to a field raises). Spans of refused requests (backpressure)
    are not counted here: the client sends them again.

    Attributes:
        requests: Export requests accepted.
        received_spans: spans in accepted requests.
        llm_calls: spans turned into calls and queued for the store.
        ignored_spans: spans that are not LLM calls (HTTP, database, agent, tool spans…).
        rejected_spans: LLM spans that could not be kept (no model); reported to the client in
            ``partial_success``.
        defects: bad values set to None, attributes cut or dropped, by kind (a copy).
        malformed_requests: requests that were not valid protobuf (``INVALID_ARGUMENT``).
        refused_requests: requests answered ``UNAVAILABLE`` because the store was behind.
        unauthenticated: calls refused for a missing or wrong bearer token.
        stored: calls handed to the store and the other sinks.
        ingest: the ingest queue, whose items are the calls of one request each.
        forward: the forwarding queue, when ``forward_to`` is set.
        http_responses: the OTLP/HTTP receiver's answers by status code (200, 400, 401, 413,
            415, 429, 503…), when ``http_port`` is set (a copy).
        steps: spans kept as steps (``keep_spans``), not counted in ``ignored_spans``.
        steps_dropped: steps past the per-trace bound (10,000), dropped and counted.
        roots_unclaimed: root spans (``keep_spans="ai"``) that arrived before any AI span of
            their trace and were let go because none came within 60 s (a trace of no AI
            work: most of them), because 4,096 newer roots were waiting, or because the
            collector stopped while they were held.
    """

    requests: int
    received_spans: int
    llm_calls: int
    ignored_spans: int
    rejected_spans: int
    defects: Mapping[str, int]
    malformed_requests: int
    refused_requests: int
    unauthenticated: int
    stored: int
    ingest: QueueStats
    forward: QueueStats | None
    http_responses: Mapping[int, int]
    steps: int = 0
    steps_dropped: int = 0
    roots_unclaimed: int = 0


@dataclass(slots=True)
class CollectorCounts:
    """The collector's live counters, bumped by both receivers; read through a snapshot."""

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
    http_responses: dict[int, int] = field(default_factory=dict)
    steps: int = 0

    def snapshot(self, ingest: QueueStats, forward: QueueStats | None) -> CollectorStats:
        """These counts now, with the queues' snapshots, as a frozen :class:`CollectorStats`."""
        return CollectorStats(
            requests=self.requests,
            received_spans=self.received_spans,
            llm_calls=self.llm_calls,
            ignored_spans=self.ignored_spans,
            rejected_spans=self.rejected_spans,
            defects=dict(self.defects),  # copies: later counts do not show
            malformed_requests=self.malformed_requests,
            refused_requests=self.refused_requests,
            unauthenticated=self.unauthenticated,
            stored=self.stored,
            ingest=ingest,
            forward=forward,
            http_responses=dict(self.http_responses),
            steps=self.steps,
        )


class MalformedRequest(Exception):
    """The request body is not a valid ExportTraceServiceRequest."""


class StoreBehind(Exception):
    """The store cannot keep up: nothing was kept; the client should retry later."""
