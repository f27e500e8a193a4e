"""Stores: where calls and steps are kept, queried, summarised and replayed."""

from ._base import (
    CallStore,
    CallSummary,
    Filters,
    TimeBucket,
    nearest_rank,
    percentile,
    summarize,
    timeseries,
)
from ._errors import ErrorGroup, error_groups
from ._memory import MemoryStore
from ._pages import CallPage
from ._sessions import SessionPage
from ._traces import Trace, TraceNode, TraceSummary
from ._url import open_store
from .postgres.store import PostgresStore
from .sqlite.store import SQLiteStore

__all__ = [
    "CallPage",
    "CallStore",
    "CallSummary",
    "ErrorGroup",
    "Filters",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "SessionPage",
    "TimeBucket",
    "Trace",
    "TraceNode",
    "TraceSummary",
    "error_groups",
    "nearest_rank",
    "open_store",
    "percentile",
    "summarize",
    "timeseries",
]
