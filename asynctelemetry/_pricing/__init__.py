"""Pricing: :class:`ModelPricing`, :class:`PriceTable`, the default table and ``compute_cost``.

Layer 2 (imports only ``_exceptions`` and, lazily, genai-prices). ``_model`` holds the one
implementation of cost arithmetic, ``_names`` the name-resolution rules, ``_genai`` the adapter to
genai-prices' bundled data, ``_table`` the memoised table, overrides and files.
"""

from __future__ import annotations

from ._model import ModelPricing, PriceTier
from ._table import DEFAULT_COST_TABLE, MAX_MEMO, PriceTable, compute_cost

__all__ = [
    "DEFAULT_COST_TABLE",
    "MAX_MEMO",
    "ModelPricing",
    "PriceTable",
    "PriceTier",
    "compute_cost",
]
