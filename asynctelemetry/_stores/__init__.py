"""Stores: where calls are kept, queried, summarised and replayed."""

from ._base import CallStore, CallSummary, Filters, nearest_rank, percentile, summarize
from ._memory import MemoryStore

__all__ = [
    "CallStore",
    "CallSummary",
    "Filters",
    "MemoryStore",
    "nearest_rank",
    "percentile",
    "summarize",
]
