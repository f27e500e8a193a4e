"""The public surface: __all__ lists exactly what the package exports, and the contract names."""

from __future__ import annotations

import asynctelemetry

CONTRACT = {
    "LLMCall", "SpanRecord", "ModelPricing", "PriceTable", "DEFAULT_COST_TABLE", "compute_cost",
    "CallStore", "MemoryStore", "SQLiteStore", "open_store", "AsyncTracer", "AsyncCollector",
    "span_to_llm_call",
}  # fmt: skip


def test_all_matches_public_names() -> None:
    """Every public module attribute is in __all__, and everything in __all__ exists."""
    public = {
        name
        for name, value in vars(asynctelemetry).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("asynctelemetry")
    }
    assert set(asynctelemetry.__all__) - {"__version__"} >= public
    for name in asynctelemetry.__all__:
        assert hasattr(asynctelemetry, name), name


def test_contract_names_are_exported() -> None:
    """Every name of the public contract is importable from asynctelemetry."""
    assert CONTRACT <= set(asynctelemetry.__all__)
