"""RactoGateway's names, for code moving over from its telemetry module (CONTRACT.md).

Every name here is one of ours under RactoGateway's name, or a thin call into our one path:
``SpanRecord`` is :class:`~asynctelemetry.LLMCall`; ``RactoTracer`` is
:class:`~asynctelemetry.AsyncTracer` (its Racto-compatible ``record_chat_span`` and
``record_embed_span`` are methods of the tracer, calls into ``llm_call``);
``GatewayMetricsMiddleware`` is :class:`~asynctelemetry.metrics.MetricsRecorder` (importable
from ``asynctelemetry.metrics``, where the contract names it; its ``record_request`` records
through ``record``); ``compute_cost`` prices through the default
:class:`~asynctelemetry.PriceTable`; ``DEFAULT_COST_TABLE`` is that table's models as a mapping.
These are the contract, not deprecated names: they stay.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from ._pricing import ModelPricing, PriceTable, default_models
from ._record import LLMCall
from ._tracer import AsyncTracer
from .metrics import GatewayMetricsMiddleware

__all__ = [
    "DEFAULT_COST_TABLE",
    "GatewayMetricsMiddleware",
    "RactoTracer",
    "SpanRecord",
    "compute_cost",
]

#: The RactoGateway name for the record.
SpanRecord = LLMCall
#: The RactoGateway name of the tracer.
RactoTracer = AsyncTracer


def compute_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """The cost in USD from the default table, ``0.0`` for an unknown model."""
    cost = PriceTable.default().price_call(
        model, input_tokens=input_tokens, output_tokens=output_tokens
    )
    return 0.0 if cost is None or not math.isfinite(cost) else cost


class _DefaultCostTable(Mapping[str, ModelPricing]):
    """Every model the default table knows, by genai-prices id and supplement name; lazy.

    Iteration lists canonical ids; indexing also resolves aliases (``"gpt-4o-2024-08-06"``,
    ``"openai/gpt-4o"``) through :meth:`PriceTable.lookup`.
    """

    def __init__(self) -> None:
        self._all: dict[str, ModelPricing] | None = None

    def _models(self) -> dict[str, ModelPricing]:
        if self._all is None:
            self._all = default_models()
        return self._all

    def __getitem__(self, model: str) -> ModelPricing:
        if isinstance(model, str):
            found = self._models().get(model.lower()) or PriceTable.default().lookup(model)
            if found is not None:
                return found
        raise KeyError(model)

    def __iter__(self) -> Iterator[str]:
        return iter(self._models())

    def __len__(self) -> int:
        return len(self._models())

    def __repr__(self) -> str:
        return "DEFAULT_COST_TABLE(<genai-prices + supplement>)"


DEFAULT_COST_TABLE: Mapping[str, ModelPricing] = _DefaultCostTable()
