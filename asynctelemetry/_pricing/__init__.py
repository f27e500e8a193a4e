"""Pricing: :class:`ModelPricing`, :class:`PriceTable` and the default table's models.

Layer 2 (imports only ``_exceptions`` and, lazily, genai-prices). ``_model`` holds the one
implementation of cost arithmetic, ``_names`` the name-resolution rules, ``_genai`` the adapter to
genai-prices' bundled data, ``_table`` the memoised table, overrides and files.
"""

from __future__ import annotations

from ._model import ModelPricing, PriceTier
from ._table import MAX_MEMO, PriceTable, default_models

__all__ = [
    "MAX_MEMO",
    "ModelPricing",
    "PriceTable",
    "PriceTier",
    "default_models",
]
