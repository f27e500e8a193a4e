"""The adapter to genai-prices: find a model with its own matchers, flatten its prices.

genai-prices is imported here only, lazily, on the first lookup that needs it. We build our own
``DataSnapshot`` over the data bundled with the installed package, so no lookup ever touches the
network and the price data is exactly the installed version's (``price_version``).

Flattening: genai-prices stores prices as ``ModelPrice`` objects whose values are Decimals or
``TieredPrices``, possibly chosen by date (a price change on a start date) or by time of day
(DeepSeek's off-peak discount), and per-request variants (service tiers). We keep what a token
count can be priced with: input, output, cache read, cache write and reasoning rates, with their
tiers. The price active *now* is used for start dates; for time-of-day prices, the price that
applies for most of the day (the prevailing rate) is used, so the memo does not depend on the
hour it was filled. Request variants (flex / priority service tiers) are not applied.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import TYPE_CHECKING, Any, Final

from ._model import ModelPricing, PriceTier

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["GenaiCatalog", "genai_prices_version"]

#: Our rate field → genai-prices price key.
_PRICE_KEYS: Final = {
    "input_per_million": "input_mtok",
    "output_per_million": "output_mtok",
    "cached_input_per_million": "cache_read_mtok",
    "cache_write_per_million": "cache_write_mtok",
    "reasoning_per_million": "output_reasoning_mtok",
}

#: Provider names seen in spans and SDKs that genai-prices' own provider matching misses.
PROVIDER_ALIASES: Final = {
    "x_ai": "x-ai",
    "grok": "x-ai",
    "mistral_ai": "mistral",
    "amazon_bedrock": "aws",
    "azure_openai": "azure",
    "azure.ai.inference": "azure",
    "vertex": "google",
    "vertexai": "google",
    "google_vertex": "google",
    "gcp.gen_ai": "google",
}

#: When neither the hint nor genai-prices' model matchers find a provider, these are tried in
#: order (their models are matched by name): first parties before resellers.
_FALLBACK_PROVIDERS: Final = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "deepseek",
    "x-ai",
    "cohere",
    "voyageai",
    "aws",
    "groq",
    "perplexity",
)

#: Samples per day used to find the prevailing time-of-day price (every 15 minutes).
_DAY_SAMPLES: Final = 96


@cache
def genai_prices_version() -> str:
    """The installed genai-prices version, read from package metadata once (no import)."""
    try:
        return _dist_version("genai-prices")
    except PackageNotFoundError:  # pragma: no cover - it is a runtime dependency
        return "unknown"


class GenaiCatalog:
    """genai-prices' bundled data, queried by model reference and provider hint."""

    def __init__(self) -> None:
        from genai_prices import types
        from genai_prices.data import providers
        from genai_prices.data_snapshot import DataSnapshot, find_provider_by_id

        self._types = types
        self._providers = providers
        self._snapshot_type = DataSnapshot
        self._find_provider_by_id = find_provider_by_id
        self._snapshot = DataSnapshot(providers=providers, from_auto_update=False)
        self._fallbacks = [
            p for name in _FALLBACK_PROVIDERS if (p := find_provider_by_id(providers, name))
        ]

    def compile_matchers(self) -> None:
        """Compile every regular expression genai-prices matches names with (about 70, 10-15 ms
        the first time): done with the load, in its thread, so that the first resolution of a
        name on the event loop finds them in ``re``'s cache."""
        regex = getattr(self._types, "ClauseRegex", None)
        pending = [getattr(p, "model_match", None) for p in self._providers]
        pending += [getattr(m, "match", None) for p in self._providers for m in p.models]
        while pending:
            clause = pending.pop()
            if regex is not None and isinstance(clause, regex):
                re.compile(clause.regex)
            for name in ("or_", "and_"):
                pending.extend(getattr(clause, name, None) or ())

    def reset_caches(self) -> None:
        """Drop genai-prices' own lookup caches (they grow with every distinct name asked)."""
        self._snapshot = self._snapshot_type(providers=self._providers, from_auto_update=False)

    def provider_id(self, hint: str | None) -> str | None:
        """The genai-prices provider id for a provider name, or ``None`` when unknown."""
        if not hint:
            return None
        hint = hint.strip().lower()
        hint = PROVIDER_ALIASES.get(hint, hint)
        provider = self._find_provider_by_id(self._providers, hint)
        return None if provider is None else str(provider.id)

    def find(self, model_ref: str, provider_id: str | None) -> Any | None:
        """The genai-prices ``ModelInfo`` for a reference, trying the hint, then without it."""
        snapshot = self._snapshot
        if provider_id is not None:
            try:
                return snapshot.find_provider_model(model_ref, None, provider_id, None)[1]
            except LookupError:
                pass
        try:
            return snapshot.find_provider_model(model_ref, None, None, None)[1]
        except LookupError:
            pass
        for provider in self._fallbacks:
            if model := provider.find_model(model_ref, all_providers=self._providers):
                return model
        return None

    def iter_models(self) -> Iterator[tuple[str, Any]]:
        """Every ``(provider id, ModelInfo)`` in the data, in genai-prices' order."""
        for provider in self._providers:
            for model in provider.models:
                yield provider.id, model

    def pricing(self, model: Any, now: datetime | None = None) -> ModelPricing | None:
        """Flatten a ``ModelInfo``'s prices; ``None`` when it has no per-token price."""
        now = now or datetime.now(UTC)
        prices = self._prevailing(model, now)
        values = {field: getattr(prices, key, None) for field, key in _PRICE_KEYS.items()}
        if values["input_per_million"] is None and values["output_per_million"] is None:
            return None  # priced per image, second, page or request: not a token model
        tiered = self._types.TieredPrices
        thresholds = sorted(
            {tier.start for v in values.values() if isinstance(v, tiered) for tier in v.tiers}
        )
        base: dict[str, float | None] = {}
        for field, value in values.items():
            base[field] = (
                None if value is None else float(value.base if isinstance(value, tiered) else value)
            )
        for field in ("input_per_million", "output_per_million"):
            if base[field] is None:
                base[field] = 0.0
        tiers = []
        for start in thresholds:
            rates: dict[str, float | None] = {}
            for field, value in values.items():
                if isinstance(value, tiered):
                    rate = value.base
                    for tier in value.tiers:  # sorted ascending by genai-prices
                        if tier.start <= start:
                            rate = tier.price
                    rates[field] = float(rate)
            tiers.append(PriceTier(above_input_tokens=start, **rates))
        return ModelPricing(**base, tiers=tuple(tiers))

    def _prevailing(self, model: Any, now: datetime) -> Any:
        prices = model.prices
        if isinstance(prices, self._types.ModelPrice):
            return prices
        by_clock = self._types.TimeOfDateConstraint
        if not any(isinstance(c.constraint, by_clock) for c in prices):
            return model.get_prices(now)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        step = timedelta(days=1) / _DAY_SAMPLES
        seen: dict[int, Any] = {}
        counts: Counter[int] = Counter()
        for k in range(_DAY_SAMPLES):
            chosen = model.get_prices(midnight + k * step)
            seen.setdefault(id(chosen), chosen)
            counts[id(chosen)] += 1
        return seen[counts.most_common(1)[0][0]]
