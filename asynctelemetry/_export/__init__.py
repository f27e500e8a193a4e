"""OTLP exporters (gRPC and HTTP) and the console sink: the sinks that send calls elsewhere.

Every exporter is a :class:`~asynctelemetry._emit.Sink`: ``emit`` queues without waiting, a
background task sends batches, ``flush``/``aclose`` deliver within a deadline.
"""

from __future__ import annotations

from ._base import ExporterStats, OTLPExporterBase
from ._console import ConsoleSink, format_call
from ._encode import SpanEncoder, encode_calls
from ._grpc import OTLPGrpcExporter
from ._http import OTLPHttpExporter
from ._metrics import MetricsExportStats, OTLPMetricsExporter

__all__ = [
    "ConsoleSink",
    "ExporterStats",
    "MetricsExportStats",
    "OTLPExporterBase",
    "OTLPGrpcExporter",
    "OTLPHttpExporter",
    "OTLPMetricsExporter",
    "SpanEncoder",
    "encode_calls",
    "format_call",
]
