"""asynctelemetry: asyncio-native telemetry for applications that call large language models.

One record, :class:`LLMCall`, flows one way: the tracer and the collector make records, they are
priced, and sinks keep them (stores), export them (OTLP) and count them (Prometheus).
"""

from __future__ import annotations

from ._exceptions import (
    ConfigError,
    ExportError,
    MissingDependencyError,
    SchemaVersionError,
    StoreClosedError,
    StoreError,
    TelemetryError,
)
from ._record import LLMCall, SpanRecord
from ._stores import CallStore, CallSummary, MemoryStore

__version__ = "0.1.0"

__all__ = [
    "CallStore",
    "CallSummary",
    "ConfigError",
    "ExportError",
    "LLMCall",
    "MemoryStore",
    "MissingDependencyError",
    "SchemaVersionError",
    "SpanRecord",
    "StoreClosedError",
    "StoreError",
    "TelemetryError",
    "__version__",
]
