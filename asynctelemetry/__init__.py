"""asynctelemetry: asyncio-native telemetry for applications that call large language models.

One record, :class:`LLMCall`, flows one way: the tracer and the collector make records, they are
priced, and sinks keep them (stores), export them (OTLP) and count them (Prometheus).
"""

from __future__ import annotations

from ._alerts import Alert, AlertEvent, AlertMonitor, AlertStats
from ._batching import QueueSettings, QueueStats, RetryPolicy
from ._budgets import Budget, BudgetStatus
from ._call import CallHandle
from ._collector import AsyncCollector, CollectorStats, HttpLimits, span_to_llm_call
from ._context import CallContext
from ._exceptions import (
    BudgetExceededError,
    ConfigError,
    ExportError,
    MissingDependencyError,
    SchemaVersionError,
    StoreClosedError,
    StoreError,
    TelemetryError,
)
from ._export import (
    ConsoleSink,
    ExporterStats,
    MetricsExportStats,
    OTLPGrpcExporter,
    OTLPHttpExporter,
    OTLPMetricsExporter,
)
from ._pipeline import Pipeline, Sink, SpanSink, SyncSink
from ._pricing import ModelPricing, PriceTable
from ._racto import DEFAULT_COST_TABLE, RactoTracer, SpanRecord, compute_cost
from ._record import LLMCall, TraceSpan
from ._replay import replay
from ._stats import PipelineStats, StoreStats, TracerStats
from ._step import StepHandle
from ._stores import (
    CallPage,
    CallStore,
    CallSummary,
    ErrorGroup,
    Filters,
    MemoryStore,
    PostgresStore,
    SessionPage,
    SQLiteStore,
    TimeBucket,
    Trace,
    TraceNode,
    TraceSummary,
    open_store,
)
from ._stream import TracedStream
from ._tracer import AsyncTracer
from ._usage import Usage, usage_from_response
from ._version import __version__

__all__ = [
    "DEFAULT_COST_TABLE",
    "Alert",
    "AlertEvent",
    "AlertMonitor",
    "AlertStats",
    "AsyncCollector",
    "AsyncTracer",
    "Budget",
    "BudgetExceededError",
    "BudgetStatus",
    "CallContext",
    "CallHandle",
    "CallPage",
    "CallStore",
    "CallSummary",
    "CollectorStats",
    "ConfigError",
    "ConsoleSink",
    "ErrorGroup",
    "ExportError",
    "ExporterStats",
    "Filters",
    "HttpLimits",
    "LLMCall",
    "MemoryStore",
    "MetricsExportStats",
    "MissingDependencyError",
    "ModelPricing",
    "OTLPGrpcExporter",
    "OTLPHttpExporter",
    "OTLPMetricsExporter",
    "Pipeline",
    "PipelineStats",
    "PostgresStore",
    "PriceTable",
    "QueueSettings",
    "QueueStats",
    "RactoTracer",
    "RetryPolicy",
    "SQLiteStore",
    "SchemaVersionError",
    "SessionPage",
    "Sink",
    "SpanRecord",
    "SpanSink",
    "StepHandle",
    "StoreClosedError",
    "StoreError",
    "StoreStats",
    "SyncSink",
    "TelemetryError",
    "TimeBucket",
    "Trace",
    "TraceNode",
    "TraceSpan",
    "TraceSummary",
    "TracedStream",
    "TracerStats",
    "Usage",
    "__version__",
    "compute_cost",
    "open_store",
    "replay",
    "span_to_llm_call",
    "usage_from_response",
]
