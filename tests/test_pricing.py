"""Pricing: arithmetic against genai-prices, pinned figures, name resolution, overrides, files."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage as GenaiUsage

from asynctelemetry import (
    DEFAULT_COST_TABLE,
    ConfigError,
    ModelPricing,
    PriceTable,
    compute_cost,
)
from asynctelemetry._pricing import PriceTier, _table
from asynctelemetry._pricing._names import candidates
from asynctelemetry._pricing._table import _DATA
from tests.conftest import make_call

NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
FIRST_PARTIES = ("openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "aws", "azure")


@pytest.fixture
def table() -> PriceTable:
    """A fresh table over the default data (its own memo)."""
    return PriceTable()


# -- arithmetic: genai-prices is the reference ------------------------------------------------


def test_every_first_party_model_matches_genai_prices_calc_price() -> None:
    """Our flat rates and float arithmetic give genai-prices' Decimal total for every model."""
    catalog = _DATA.catalog
    providers = {p.id: p for p in catalog._providers}
    rng = random.Random(7)
    checked = 0
    for provider_id, model in catalog.iter_models():
        if provider_id not in FIRST_PARTIES:
            continue
        if getattr(model.get_prices(NOON), "requests_kcount", None) is not None:
            continue  # a per-request fee is not a token price
        pricing = catalog.pricing(model, NOON)
        if pricing is None:
            continue
        for total_in in (1_000, 199_999, 200_001, 300_000):
            usage = {
                "input_tokens": total_in,
                "output_tokens": (out := rng.randint(1, 9_000)),
                "cached_input_tokens": rng.randint(0, total_in // 2),
                "cache_creation_tokens": rng.randint(0, total_in // 4),
                "reasoning_tokens": rng.randint(0, out),
            }
            reference = model.calc_price(
                GenaiUsage(
                    input_tokens=usage["input_tokens"],
                    output_tokens=usage["output_tokens"],
                    cache_read_tokens=usage["cached_input_tokens"],
                    cache_write_tokens=usage["cache_creation_tokens"],
                    output_reasoning_tokens=usage["reasoning_tokens"],
                ),
                providers[provider_id],
                genai_request_timestamp=NOON,
            ).total_price
            assert pricing.cost(**usage) == pytest.approx(float(reference), rel=1e-9, abs=1e-15), (
                provider_id,
                model.id,
                usage,
            )
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        pytest.param("gpt-4o-2024-08-06", None, id="openai-dated"),
        pytest.param("claude-3-5-sonnet-20241022", None, id="anthropic-dated"),
        pytest.param("gemini-2.5-pro", None, id="google-tiered"),
        pytest.param("claude-sonnet-4-5", "anthropic", id="anthropic-tiered"),
        pytest.param("mistral-large-latest", None, id="mistral"),
        pytest.param("o3-mini", "openai", id="openai-reasoning"),
    ],
)
def test_table_cost_matches_genai_calc_price_by_name(
    table: PriceTable, model: str, provider: str | None
) -> None:
    """Resolving a name and pricing it agrees with genai_prices.calc_price for that name."""
    for total_in in (10_000, 250_000):
        ours = table.cost_of(
            model,
            provider,
            input_tokens=total_in,
            output_tokens=4_000,
            cached_input_tokens=3_000,
            reasoning_tokens=1_000,
        )
        reference = genai_prices.calc_price(
            GenaiUsage(
                input_tokens=total_in,
                output_tokens=4_000,
                cache_read_tokens=3_000,
                output_reasoning_tokens=1_000,
            ),
            model,
            provider_id=provider,
            genai_request_timestamp=NOON,
        ).total_price
        assert ours == pytest.approx(float(reference), rel=1e-9)


# Figures worked out by hand from genai-prices 0.2.3's data (USD per 1M tokens in comments).
# Upgrading genai-prices may move a price; then update the figure and note it in the changelog.
PINNED = [
    # gpt-4o 2.5 / 10, cached 1.25: 600 uncached + 400 cached + 500 out
    pytest.param(
        "gpt-4o",
        dict(input_tokens=1_000, output_tokens=500, cached_input_tokens=400),
        0.007,
        id="gpt-4o",
    ),
    # gpt-4o-mini 0.15 / 0.6
    pytest.param(
        "gpt-4o-mini-2024-07-18",
        dict(input_tokens=10_000, output_tokens=1_000),
        0.0021,
        id="gpt-4o-mini",
    ),
    # o3-mini 1.1 / 4.4 (reasoning at the output rate)
    pytest.param(
        "o3-mini",
        dict(input_tokens=2_000, output_tokens=3_000, reasoning_tokens=2_500),
        0.0154,
        id="o3-mini",
    ),
    # text-embedding-3-small 0.02
    pytest.param("text-embedding-3-small", dict(input_tokens=1_000_000), 0.02, id="embedding"),
    # claude-3-5-sonnet 3 / 15, cache read 0.3, cache write 3.75
    pytest.param(
        "claude-3-5-sonnet-20241022",
        dict(
            input_tokens=10_000,
            output_tokens=1_000,
            cached_input_tokens=6_000,
            cache_creation_tokens=2_000,
        ),
        0.0303,
        id="claude-3-5-sonnet",
    ),
    # claude-3-haiku 0.25 / 1.25
    pytest.param(
        "claude-3-haiku-20240307",
        dict(input_tokens=1_000_000, output_tokens=100_000),
        0.375,
        id="claude-3-haiku",
    ),
    # claude-sonnet-4-5 above 200k input: 6 / 22.5 for every token
    pytest.param(
        "claude-sonnet-4-5-20250929",
        dict(input_tokens=250_000, output_tokens=1_000),
        1.5225,
        id="claude-sonnet-4-5-long",
    ),
    pytest.param(
        "claude-sonnet-4-5-20250929",
        dict(input_tokens=150_000, output_tokens=1_000),
        0.465,
        id="claude-sonnet-4-5-short",
    ),
    # gemini-2.5-pro 1.25 / 10, above 200k: 2.5 / 15
    pytest.param(
        "gemini-2.5-pro",
        dict(input_tokens=100_000, output_tokens=10_000),
        0.225,
        id="gemini-2.5-pro-short",
    ),
    pytest.param(
        "gemini-2.5-pro",
        dict(input_tokens=300_000, output_tokens=10_000),
        0.9,
        id="gemini-2.5-pro-long",
    ),
    # exactly at the threshold is still the base tier (the tier starts strictly above it)
    pytest.param("gemini-2.5-pro", dict(input_tokens=200_000), 0.25, id="gemini-threshold"),
    # gemini-2.0-flash 0.1 / 0.4, cached 0.025
    pytest.param(
        "models/gemini-2.0-flash",
        dict(input_tokens=1_000_000, output_tokens=1_000_000, cached_input_tokens=200_000),
        0.485,
        id="gemini-2.0-flash",
    ),
    # mistral-large 2 / 6
    pytest.param(
        "mistral-large-latest",
        dict(input_tokens=1_000, output_tokens=1_000),
        0.008,
        id="mistral-large",
    ),
    # codestral 0.3 / 0.9
    pytest.param(
        "codestral-latest",
        dict(input_tokens=1_000_000, output_tokens=1_000_000),
        1.2,
        id="codestral",
    ),
    # deepseek-chat standard (prevailing) rate 0.27 / 1.1, cache hit 0.07
    pytest.param(
        "deepseek-chat",
        dict(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=500_000),
        0.28,
        id="deepseek-chat",
    ),
    # deepseek-reasoner 0.55 / 2.19
    pytest.param(
        "deepseek-reasoner",
        dict(input_tokens=100_000, output_tokens=50_000),
        0.1645,
        id="deepseek-reasoner",
    ),
]


@pytest.mark.parametrize(("model", "usage", "expected"), PINNED)
def test_pinned_costs(
    table: PriceTable, model: str, usage: dict[str, int], expected: float
) -> None:
    """Known figures for models of OpenAI, Anthropic, Google, Mistral and DeepSeek."""
    assert table.cost_of(model, **usage) == pytest.approx(expected, rel=1e-12)


def test_negative_remainders_are_clamped() -> None:
    """More cached than input, or more reasoning than output, never gives a negative part."""
    pricing = ModelPricing(2.0, 8.0, cached_input_per_million=1.0, reasoning_per_million=16.0)
    cost = pricing.cost(
        input_tokens=100, cached_input_tokens=300, output_tokens=10, reasoning_tokens=50
    )
    assert cost == pytest.approx((300 * 1.0 + 50 * 16.0) / 1e6)
    assert pricing.cost() == 0.0


def test_rate_fallbacks() -> None:
    """Missing cached/write rates fall back to input; a missing reasoning rate to output."""
    pricing = ModelPricing(2.0, 8.0)
    assert pricing.cost(
        input_tokens=1_000,
        cached_input_tokens=500,
        cache_creation_tokens=100,
        output_tokens=100,
        reasoning_tokens=60,
    ) == pytest.approx((1_000 * 2.0 + 100 * 8.0) / 1e6)


def test_reasoning_rate_applies_when_given() -> None:
    """A distinct reasoning rate prices reasoning tokens, the rest of output at the output rate."""
    pricing = ModelPricing(1.0, 4.0, reasoning_per_million=10.0)
    assert pricing.cost(output_tokens=1_000, reasoning_tokens=400) == pytest.approx(
        (600 * 4.0 + 400 * 10.0) / 1e6
    )


def test_tiers_override_only_given_rates() -> None:
    """A tier's missing rates keep the base rates; the highest tier exceeded applies."""
    pricing = ModelPricing(
        1.0,
        2.0,
        cached_input_per_million=0.5,
        tiers=(
            PriceTier(above_input_tokens=100, input_per_million=3.0),
            PriceTier(above_input_tokens=1_000, input_per_million=5.0, output_per_million=7.0),
        ),
    )
    assert pricing.cost(input_tokens=100, output_tokens=10) == pytest.approx((100 + 20) / 1e6)
    assert pricing.cost(input_tokens=101, output_tokens=10) == pytest.approx((303 + 20) / 1e6)
    assert pricing.cost(input_tokens=2_000, output_tokens=10, cached_input_tokens=1_000) == (
        pytest.approx((1_000 * 5.0 + 1_000 * 0.5 + 10 * 7.0) / 1e6)
    )


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"input_per_million": -1.0, "output_per_million": 1.0}, id="negative"),
        pytest.param({"input_per_million": math.nan, "output_per_million": 1.0}, id="nan"),
        pytest.param({"input_per_million": 1.0, "output_per_million": math.inf}, id="inf"),
        pytest.param({"input_per_million": 1.0}, id="missing-output"),
        pytest.param({"input_per_million": 1.0, "output_per_million": 1.0, "bogus": 1}, id="extra"),
        pytest.param(
            {
                "input_per_million": 1,
                "output_per_million": 1,
                "tiers": [{"above_input_tokens": 5}, {"above_input_tokens": 2}],
            },
            id="tiers-unsorted",
        ),
    ],
)
def test_model_pricing_rejects_bad_prices(bad: dict[str, object]) -> None:
    """Negative, non-finite, missing or unknown rates are refused."""
    with pytest.raises(ValueError):
        ModelPricing.model_validate(bad)


def test_model_pricing_positional_and_frozen() -> None:
    """The two base rates may be positional (contract); instances are immutable."""
    pricing = ModelPricing(2.5, 10.0, cached_input_per_million=1.25)
    assert (pricing.input_per_million, pricing.output_per_million) == (2.5, 10.0)
    with pytest.raises(ValueError):
        pricing.input_per_million = 1.0  # type: ignore[misc]


# -- name resolution --------------------------------------------------------------------------

GPT_4O = (2.5, 10.0)
SONNET = (3.0, 15.0)
FLASH = (0.1, 0.4)


@pytest.mark.parametrize(
    ("name", "provider", "expected"),
    [
        pytest.param("gpt-4o", None, GPT_4O, id="exact"),
        pytest.param("GPT-4o", None, GPT_4O, id="case"),
        pytest.param("  gpt-4o ", None, GPT_4O, id="spaces"),
        pytest.param("gpt-4o-2024-08-06", None, GPT_4O, id="dated-snapshot"),
        pytest.param("gpt-4o-2024-05-13", None, (5.0, 15.0), id="dated-own-entry"),
        pytest.param("openai/gpt-4o", None, GPT_4O, id="provider-prefix"),
        pytest.param("azure/gpt-4o", None, GPT_4O, id="azure-prefix"),
        pytest.param("claude-3-5-sonnet-20241022", None, SONNET, id="claude-dated"),
        pytest.param("claude-3-5-sonnet-latest", None, SONNET, id="latest"),
        pytest.param("anthropic/claude-3-5-sonnet-20241022", None, SONNET, id="anthropic-prefix"),
        pytest.param("claude-3-5-sonnet@20241022", "gcp.vertex_ai", SONNET, id="vertex-at-date"),
        pytest.param("anthropic.claude-3-5-sonnet-20241022-v2:0", None, SONNET, id="bedrock"),
        pytest.param(
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0", None, SONNET, id="bedrock-region"
        ),
        pytest.param(
            "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", None, SONNET, id="bedrock-prefix"
        ),
        pytest.param("models/gemini-2.0-flash", None, FLASH, id="models-prefix"),
        pytest.param("gemini-2.0-flash-001", None, FLASH, id="gemini-version"),
        pytest.param(
            "projects/p-1/locations/us-central1/publishers/google/models/gemini-2.0-flash",
            None,
            FLASH,
            id="vertex-resource",
        ),
        pytest.param("gemini-2.0-flash", "gateway", FLASH, id="unknown-provider-hint"),
        pytest.param("claude-3-5-sonnet-20241022", "openai", SONNET, id="wrong-provider-hint"),
        pytest.param("gpt-4o", "azure", GPT_4O, id="azure-hint"),
        pytest.param("mistral-large-latest", "mistral_ai", (2.0, 6.0), id="otel-provider-name"),
        pytest.param("text-embedding-3-large", None, (0.13, 0.0), id="openai-embedding"),
        pytest.param("text-embedding-ada-002", None, (0.1, 0.0), id="ada"),
        pytest.param("text-embedding-004", None, (0.1, 0.0), id="google-embedding-supplement"),
        pytest.param("gemini-embedding-001", "google", (0.15, 0.0), id="gemini-embedding"),
    ],
)
def test_name_resolution(
    table: PriceTable, name: str, provider: str | None, expected: tuple[float, float]
) -> None:
    """Each spelling a SDK, gateway or span may use finds the model's price."""
    pricing = table.lookup(name, provider)
    assert pricing is not None
    assert (pricing.input_per_million, pricing.output_per_million) == expected


@pytest.mark.parametrize("name", ["no-such-model", "gpt-99-ultra", "", "   ", "whisper-1"])
def test_unknown_models(table: PriceTable, name: str) -> None:
    """Unknown (or not token-priced) models have no price: None, and compute_cost gives 0.0."""
    assert table.lookup(name) is None
    assert table.cost_of(name, input_tokens=10, output_tokens=10) is None
    assert compute_cost(name, 10, 10) == 0.0


def test_candidates_order() -> None:
    """Names are tried most specific first: as given, prefix stripped, then -latest and dates."""
    assert candidates("OpenAI/GPT-4o-2024-08-06", None) == [
        ("openai/gpt-4o-2024-08-06", None),
        ("gpt-4o-2024-08-06", "openai"),
        ("gpt-4o", "openai"),
    ]
    assert candidates("claude-3-5-sonnet-latest", "anthropic") == [
        ("claude-3-5-sonnet-latest", "anthropic"),
        ("claude-3-5-sonnet", "anthropic"),
    ]


def test_each_name_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo answers repeated lookups and costs without resolving again."""
    calls: list[tuple[str, str | None]] = []
    original = PriceTable._resolve

    def counting(self: PriceTable, model: str, provider: str | None) -> ModelPricing | None:
        calls.append((model, provider))
        return original(self, model, provider)

    monkeypatch.setattr(PriceTable, "_resolve", counting)
    table = PriceTable()
    for _ in range(3):
        table.lookup("gpt-4o")
        table.cost_of("gpt-4o", input_tokens=1)
        table.cost_of("nope", input_tokens=1)
    table.lookup("gpt-4o", "openai")
    assert calls == [("gpt-4o", None), ("nope", None), ("gpt-4o", "openai")]


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Endless distinct names cannot grow the memo past MAX_MEMO."""
    monkeypatch.setattr(_table, "MAX_MEMO", 5)
    table = PriceTable()
    for i in range(12):
        table.cost_of(f"unknown-{i}", input_tokens=1)
    assert len(table._rates) <= 5
    assert table.cost_of("gpt-4o", input_tokens=1_000_000) == pytest.approx(2.5)


def test_time_of_day_prices_use_the_prevailing_rate() -> None:
    """DeepSeek's off-peak window does not make the memo depend on the hour it was filled."""
    catalog = _DATA.catalog
    model = catalog.find("deepseek-chat", "deepseek")
    at_night = catalog.pricing(model, NOON.replace(hour=20))
    at_noon = catalog.pricing(model, NOON)
    assert at_night == at_noon
    assert at_noon is not None and at_noon.input_per_million == 0.27


# -- the call, compute_cost, DEFAULT_COST_TABLE, version ----------------------------------------


def test_cost_of_a_call_and_request_model_fallback(table: PriceTable) -> None:
    """cost(call) prices the tokens of a record; an unknown model falls back to request_model."""
    call = make_call(
        0,
        model="gpt-4o",
        provider="openai",
        input_tokens=1_000,
        output_tokens=500,
        cached_input_tokens=400,
    )
    assert table.cost(call) == pytest.approx(0.007)
    aliased = make_call(
        1,
        model="my-deployment",
        request_model="gpt-4o",
        provider="azure",
        input_tokens=1_000_000,
        output_tokens=0,
    )
    assert table.cost(aliased) == pytest.approx(2.5)
    assert table.cost(make_call(2, model="unknown-x", provider=None)) is None


def test_compute_cost_is_racto_compatible() -> None:
    """compute_cost(model, input, output) prices from the default table."""
    assert compute_cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)


def test_default_cost_table_mapping() -> None:
    """DEFAULT_COST_TABLE lists every known model and resolves aliases on indexing."""
    assert len(DEFAULT_COST_TABLE) > 1000
    assert "gpt-4o" in DEFAULT_COST_TABLE and "text-embedding-004" in DEFAULT_COST_TABLE
    assert DEFAULT_COST_TABLE["gpt-4o-2024-08-06"].input_per_million == 2.5
    assert DEFAULT_COST_TABLE["claude-3-5-sonnet"].output_per_million == 15.0
    assert "no-such-model" not in DEFAULT_COST_TABLE
    with pytest.raises(KeyError):
        DEFAULT_COST_TABLE["no-such-model"]
    assert all(isinstance(v, ModelPricing) for v in list(DEFAULT_COST_TABLE.values())[:50])


def test_default_is_shared_and_versioned() -> None:
    """default() is one instance; version names the installed genai-prices."""
    assert PriceTable.default() is PriceTable.default()
    assert PriceTable.default().version == f"genai-prices {version('genai-prices')}"


def test_genai_prices_is_imported_lazily_and_offline(tmp_path: Path) -> None:
    """Importing and PriceTable.default() do not import genai-prices; lookups need no network."""
    script = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import asynctelemetry\n"
        "table = asynctelemetry.PriceTable.default()\n"
        "assert 'genai_prices' not in sys.modules, 'imported too early'\n"
        "assert table.cost_of('gpt-4o', input_tokens=1_000_000) == 2.5\n"
        "assert 'genai_prices' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- overrides and files -----------------------------------------------------------------------


def test_overrides_take_precedence(table: PriceTable) -> None:
    """Overrides win over genai-prices, cover dated and prefixed names, and leave the base alone."""
    custom = table.with_overrides(
        {
            "gpt-4o": {"input_per_million": 1.0, "output_per_million": 2.0},
            "my-model": ModelPricing(3.0, 4.0),
            "azure/gpt-4o-mini": {"input_per_million": 9.0, "output_per_million": 9.0},
        }
    )
    assert custom.cost_of("gpt-4o", input_tokens=1_000_000) == pytest.approx(1.0)
    assert custom.cost_of("openai/gpt-4o-2024-08-06", input_tokens=1_000_000) == pytest.approx(1.0)
    assert custom.cost_of("MY-MODEL", output_tokens=1_000_000) == pytest.approx(4.0)
    assert custom.lookup("gpt-4o-mini", "azure") == ModelPricing(9.0, 9.0)
    assert custom.lookup("gpt-4o-mini", "openai") == table.lookup("gpt-4o-mini")
    assert table.cost_of("gpt-4o", input_tokens=1_000_000) == pytest.approx(2.5)
    assert table.lookup("my-model") is None
    assert custom.version.startswith(f"{table.version}+overrides:")
    stacked = custom.with_overrides({"gpt-4o": {"input_per_million": 5, "output_per_million": 5}})
    assert stacked.cost_of("gpt-4o", input_tokens=1_000_000) == pytest.approx(5.0)
    assert stacked.lookup("my-model") == ModelPricing(3.0, 4.0)


@pytest.mark.parametrize("count", [-1, 1.5, "10", True])
def test_cost_of_refuses_token_counts_that_are_not_counts(count: object) -> None:
    """A negative, fractional, text or bool count raises ValueError instead of pricing to 0."""
    with pytest.raises(ValueError, match="token counts must be ints >= 0"):
        PriceTable.default().cost_of("gpt-4o", input_tokens=count)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token counts must be ints >= 0"):
        PriceTable.default().cost_of("gpt-4o", input_tokens=10, reasoning_tokens=count)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"m": {"input_per_million": -1, "output_per_million": 1}}, id="negative"),
        pytest.param({"m": {"input_per_million": float("nan"), "output_per_million": 1}}, id="nan"),
        pytest.param({"m": {"input_per_million": "cheap", "output_per_million": 1}}, id="text"),
        pytest.param({"m": 3.0}, id="not-a-table"),
        pytest.param({"": {"input_per_million": 1, "output_per_million": 1}}, id="empty-name"),
    ],
)
def test_bad_overrides_raise_config_error(overrides: dict[str, object]) -> None:
    """Bad override values raise ConfigError (a ValueError) naming the model."""
    with pytest.raises(ConfigError):
        PriceTable.default().with_overrides(overrides)  # type: ignore[arg-type]


def test_from_file_json_and_toml(tmp_path: Path) -> None:
    """JSON (flat or under "models") and TOML files override the default table."""
    flat = tmp_path / "prices.json"
    flat.write_text(json.dumps({"acme-1": {"input_per_million": 1.5, "output_per_million": 3}}))
    nested = tmp_path / "nested.json"
    nested.write_text(
        json.dumps({"models": {"gpt-4o": {"input_per_million": 0.5, "output_per_million": 1}}})
    )
    toml = tmp_path / "prices.toml"
    toml.write_text(
        '[models."acme-2"]\ninput_per_million = 2.0\noutput_per_million = 4.0\n'
        "cached_input_per_million = 0.2\n"
        '[[models."acme-2".tiers]]\nabove_input_tokens = 1000\ninput_per_million = 3.0\n'
    )
    assert PriceTable.from_file(flat).lookup("acme-1") == ModelPricing(1.5, 3.0)
    from_nested = PriceTable.from_file(str(nested))
    assert from_nested.cost_of("gpt-4o", input_tokens=1_000_000) == pytest.approx(0.5)
    assert from_nested.lookup("claude-3-5-sonnet") is not None  # the default table underneath
    from_toml = PriceTable.from_file(toml)
    assert from_toml.cost_of("acme-2", input_tokens=2_000) == pytest.approx(2_000 * 3.0 / 1e6)
    assert "+file:" in from_toml.version and from_toml.version != PriceTable.from_file(flat).version


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        pytest.param("bad.json", "{not json", "not valid JSON", id="bad-json"),
        pytest.param("bad.toml", "[models\nx = ", "not valid TOML", id="bad-toml"),
        pytest.param(
            "neg.json",
            '{"m": {"input_per_million": -2, "output_per_million": 1}}',
            "greater than or equal to 0",
            id="negative",
        ),
        pytest.param(
            "nan.json",
            '{"m": {"input_per_million": NaN, "output_per_million": 1}}',
            "NaN is not a price",
            id="nan",
        ),
        pytest.param("list.json", "[1, 2]", "expected a table of models", id="not-a-table"),
        pytest.param("models.json", '{"models": 3}', "'models' must be a table", id="models"),
    ],
)
def test_from_file_errors(tmp_path: Path, name: str, content: str, reason: str) -> None:
    """Unreadable, malformed or invalid files raise ConfigError with the path and the reason."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=reason) as raised:
        PriceTable.from_file(path)
    assert str(path) in str(raised.value)


def test_from_file_missing(tmp_path: Path) -> None:
    """A missing file raises ConfigError naming it."""
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="cannot read") as raised:
        PriceTable.from_file(path)
    assert str(path) in str(raised.value)
