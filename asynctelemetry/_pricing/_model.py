"""Prices of one model (:class:`ModelPricing`) and the one implementation of cost arithmetic.

Token semantics, the same everywhere in asynctelemetry:

* ``input_tokens`` counts every prompt token, *including* cache reads (``cached_input_tokens``)
  and cache writes (``cache_creation_tokens``), as OpenAI usage and the OTel GenAI conventions do.
* ``output_tokens`` counts every generated token, *including* ``reasoning_tokens``.

Cost of a call, with every rate in USD per million tokens::

    (input - cached - cache_creation) * input rate
  + cached                         * cached-input rate  (falls back to the input rate)
  + cache_creation                 * cache-write rate   (falls back to the input rate)
  + (output - reasoning)           * output rate
  + reasoning                      * reasoning rate     (falls back to the output rate)

A remainder that would be negative (more cached tokens than input tokens, more reasoning than
output, inconsistent usage from a buggy source) is clamped to zero: the parts are charged as
given and the plain remainder is never negative. Missing counts (``None``) are zero.

Tiered (long-context) prices follow genai-prices' "cliff" model: when the call's total
``input_tokens`` is strictly above a tier's threshold, *every* token of the call is charged at that
tier's rates (not only the tokens above it).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "PRICED_TOKENS",
    "ModelPricing",
    "PriceTier",
    "Rates",
    "TokenCounts",
    "cost_from_rates",
    "rates_of",
]

_Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_OptionalPrice = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]
_PER_MILLION: Final = 1_000_000.0
#: The token counts a price applies to, in the order :func:`cost_from_rates` takes them.
PRICED_TOKENS: Final = (
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_tokens",
    "reasoning_tokens",
)  # fmt: skip


class TokenCounts(TypedDict, total=False):
    """The token counts of one call, as keywords (``None`` or absent: unknown, counted as 0):
    ``input_tokens`` includes cached reads and cache writes, ``output_tokens`` includes
    reasoning tokens (see ``docs/pricing.md``)."""

    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_creation_tokens: int | None
    reasoning_tokens: int | None


class PriceTier(BaseModel):
    """Rates that replace the base rates when a call's input tokens exceed ``above_input_tokens``.

    A rate left ``None`` here keeps the corresponding base rate of the :class:`ModelPricing`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    above_input_tokens: Annotated[int, Field(ge=0)]
    input_per_million: _OptionalPrice = None
    output_per_million: _OptionalPrice = None
    cached_input_per_million: _OptionalPrice = None
    cache_write_per_million: _OptionalPrice = None
    reasoning_per_million: _OptionalPrice = None


class ModelPricing(BaseModel):
    """Prices of one model in USD per million tokens; frozen.

    ``cached_input_per_million`` and ``cache_write_per_million`` fall back to the input rate when
    ``None``; ``reasoning_per_million`` falls back to the output rate. ``tiers`` hold long-context
    prices (see :class:`PriceTier`), sorted by threshold.

    Example:
        >>> ModelPricing(2.5, 10.0, cached_input_per_million=1.25).input_per_million
        2.5
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_million: _Price
    output_per_million: _Price
    cached_input_per_million: _OptionalPrice = None
    cache_write_per_million: _OptionalPrice = None
    reasoning_per_million: _OptionalPrice = None
    tiers: tuple[PriceTier, ...] = ()

    def __init__(
        self,
        input_per_million: float | None = None,
        output_per_million: float | None = None,
        /,
        **data: Any,
    ) -> None:
        # The contract allows the two base rates positionally, as RactoGateway's pricing does.
        if input_per_million is not None:
            data["input_per_million"] = input_per_million
        if output_per_million is not None:
            data["output_per_million"] = output_per_million
        super().__init__(**data)

    @model_validator(mode="after")
    def _sorted_tiers(self) -> ModelPricing:
        starts = [tier.above_input_tokens for tier in self.tiers]
        if starts != sorted(set(starts)):
            raise ValueError("tiers must have distinct above_input_tokens, in ascending order")
        return self

    def cost(self, **tokens: Unpack[TokenCounts]) -> float:
        """The cost in USD of one call with this usage (see the module docstring for the rule)."""
        counts: list[Any] = [tokens.get(name) for name in PRICED_TOKENS]
        return cost_from_rates(rates_of(self), *counts)


#: Flat rates per token (not per million) with fallbacks applied:
#: ``(input, output, cached, cache_write, reasoning, tiers)`` where ``tiers`` is a tuple of
#: ``(above_input_tokens, rates-without-tiers)`` sorted by threshold, highest first.
Rates = tuple[float, float, float, float, float, tuple[tuple[int, "Rates"], ...]]


def _five(
    input_pm: float,
    output_pm: float,
    cached_pm: float | None,
    write_pm: float | None,
    reasoning_pm: float | None,
) -> Rates:
    return (
        input_pm / _PER_MILLION,
        output_pm / _PER_MILLION,
        (input_pm if cached_pm is None else cached_pm) / _PER_MILLION,
        (input_pm if write_pm is None else write_pm) / _PER_MILLION,
        (output_pm if reasoning_pm is None else reasoning_pm) / _PER_MILLION,
        (),
    )


def rates_of(pricing: ModelPricing) -> Rates:
    """Flatten a :class:`ModelPricing` into the tuple the hot path multiplies with."""
    p = pricing
    tiers: list[tuple[int, Rates]] = []
    for tier in p.tiers:

        def pick(tier_value: float | None, base: float | None) -> float | None:
            return base if tier_value is None else tier_value

        tier_input = pick(tier.input_per_million, p.input_per_million)
        tier_output = pick(tier.output_per_million, p.output_per_million)
        assert tier_input is not None and tier_output is not None  # base rates are required
        tiers.append(
            (
                tier.above_input_tokens,
                _five(
                    tier_input,
                    tier_output,
                    pick(tier.cached_input_per_million, p.cached_input_per_million),
                    pick(tier.cache_write_per_million, p.cache_write_per_million),
                    pick(tier.reasoning_per_million, p.reasoning_per_million),
                ),
            )
        )
    base = _five(
        p.input_per_million,
        p.output_per_million,
        p.cached_input_per_million,
        p.cache_write_per_million,
        p.reasoning_per_million,
    )
    return (*base[:5], tuple(reversed(tiers)))


def cost_from_rates(
    rates: Rates,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_input_tokens: int | None,
    cache_creation_tokens: int | None,
    reasoning_tokens: int | None,
) -> float:
    """The one implementation of cost arithmetic (USD). ``None`` counts are zero.

    Written for the hot path: zero and ``None`` counts skip their multiplication, and a remainder
    that would be negative (more cached than input, more reasoning than output) adds nothing.
    """
    r_in, r_out, r_cached, r_write, r_reasoning, tiers = rates
    if tiers and input_tokens:
        for above, tier_rates in tiers:
            if input_tokens > above:
                r_in, r_out, r_cached, r_write, r_reasoning, _ = tier_rates
                break
    cost = 0.0
    uncached = input_tokens or 0
    if cached_input_tokens:
        uncached -= cached_input_tokens
        cost += cached_input_tokens * r_cached
    if cache_creation_tokens:
        uncached -= cache_creation_tokens
        cost += cache_creation_tokens * r_write
    if uncached > 0:
        cost += uncached * r_in
    plain_out = output_tokens or 0
    if reasoning_tokens:
        plain_out -= reasoning_tokens
        cost += reasoning_tokens * r_reasoning
    if plain_out > 0:
        cost += plain_out * r_out
    return cost
