"""The statistics shape: every service answers "what have you done?" the same way.

Layer 2. A service's ``stats`` property returns a frozen snapshot taken at the moment of
reading (as anyio's ``statistics()`` does): it never changes afterwards, so a caller can keep one,
do some work, read another and diff them field by field; assigning to a field raises. The live
counters stay private and mutable inside each service. Every background queue's figures are a
:class:`~asynctelemetry.QueueStats` under the same name wherever they appear (``store.stats.queue``,
``exporter.stats.queue``, ``collector.stats.ingest``, ``tracer.stats.spans``).

The snapshot types of the services live here, except those of the queue (``_batching``), the
exporters (``_export``) and the collector (``_collector``), which sit beside their counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._batching import QueueStats

__all__ = [
    "MetricsStats",
    "PipelineStats",
    "QueueStats",
    "ScrapeStats",
    "StoreStats",
    "TracerStats",
]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a store has done: a snapshot taken when ``store.stats`` is read.

    Attributes:
        duplicates: calls not stored because a call with the same ``call_id`` already was.
        dropped: calls a full :class:`~asynctelemetry.MemoryStore` pushed out for newer ones
            (0 in the stores that wait instead of dropping).
        rejected: calls the database could not take (e.g. text that is not valid Unicode),
            logged and counted.
        retention_deleted: calls deleted by retention (``max_age``/``max_rows``).
        queue: the writer queue of a store that writes in the background (SQLite,
            PostgreSQL); None for a :class:`~asynctelemetry.MemoryStore`, which has none.
    """

    duplicates: int = 0
    dropped: int = 0
    rejected: int = 0
    retention_deleted: int = 0
    queue: QueueStats | None = None


@dataclass(frozen=True, slots=True)
class TracerStats:
    """What a tracer has done: a snapshot taken when ``tracer.stats`` is read.

    Attributes:
        calls: calls recorded and handed to the pipeline (every status).
        open_streams: traced streams whose call is still open.
        sink_errors: failures of a sink, logged once and counted (``pipeline.errors``).
        spans: the queue of live SDK spans to a ``custom_exporter``; None without one.
        budget_refusals: calls refused before they were sent because a budget had no room.
    """

    calls: int = 0
    open_streams: int = 0
    sink_errors: int = 0
    spans: QueueStats | None = None
    budget_refusals: int = 0


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """What a pipeline has done: a snapshot taken when ``pipeline.stats`` is read.

    Attributes:
        sinks: the sinks it hands calls to.
        errors: sink failures, logged once per sink and kind and counted.
        pricing_skipped: calls left unpriced because their batch had resolved its share of new
            model names (the bound that keeps a flood of unknown names from holding the loop).
    """

    sinks: int = 0
    errors: int = 0
    pricing_skipped: int = 0


@dataclass(frozen=True, slots=True)
class MetricsStats:
    """What a :class:`~asynctelemetry.metrics.MetricsRecorder` has done: a snapshot.

    Attributes:
        calls: calls counted (``record``, ``emit`` and ``record_request``).
        labels_overflowed: label values counted under ``"other"`` because their label had
            reached its cap of distinct values (``max_models``, ``max_operations``).
    """

    calls: int = 0
    labels_overflowed: int = 0


@dataclass(frozen=True, slots=True)
class ScrapeStats:
    """What a :class:`~asynctelemetry.metrics.PrometheusExporter` has served: a snapshot.

    Attributes:
        requests: scrapes answered.
        bad_requests: requests refused (malformed, too slow, or not a GET of ``/metrics``).
        open_connections: connections being served at the moment of the snapshot.
    """

    requests: int = 0
    bad_requests: int = 0
    open_connections: int = 0
