"""How much pricing a call costs on the hot path, beside genai-prices' own calc_price.

Run: ``.venv/bin/python benchmarks/bench_pricing.py [--quick]``

Figures, all measured in this run:
* ``PriceTable.cost_of`` after the first call for a name (a memo hit plus float arithmetic),
  against ``genai_prices.calc_price`` for the same usage (what a straightforward version calls per
  record) and against a floor: one dict lookup and the same five multiplications inline.
* ``PriceTable.cost(call)`` on an ``LLMCall``.
* The first resolution of a name (cold; genai-prices already imported), and of an unknown name.
* ``usage_from_response`` on OpenAI, Anthropic and Google payloads.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from datetime import UTC, datetime

import genai_prices

from asynctelemetry import LLMCall, PriceTable, usage_from_response


def per_call_ns(stmt: object, number: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` nanoseconds per call of a zero-argument callable."""
    timer = timeit.Timer(stmt)  # type: ignore[arg-type]
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main() -> None:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000

    table = PriceTable()
    usage = dict(
        input_tokens=812,
        output_tokens=95,
        cached_input_tokens=512,
        cache_creation_tokens=0,
        reasoning_tokens=0,
    )
    table.cost_of("gpt-4o", "openai", **usage)  # resolve once
    genai_usage = genai_prices.Usage(input_tokens=812, output_tokens=95, cache_read_tokens=512)
    now = datetime.now(UTC)

    def ours() -> object:
        return table.cost_of(
            "gpt-4o",
            "openai",
            input_tokens=812,
            output_tokens=95,
            cached_input_tokens=512,
            cache_creation_tokens=0,
            reasoning_tokens=0,
        )

    def genai() -> object:
        return genai_prices.calc_price(
            genai_usage, "gpt-4o", provider_id="openai", genai_request_timestamp=now
        )

    floor_memo = {("gpt-4o", "openai"): (2.5e-6, 10e-6, 1.25e-6, 2.5e-6, 10e-6)}

    def floor() -> object:
        r = floor_memo[("gpt-4o", "openai")]
        return (812 - 512) * r[0] + 512 * r[2] + 0 * r[3] + 95 * r[1] + 0 * r[4]

    call = LLMCall(
        call_id="c1",
        timestamp=now,
        model="gpt-4o-2024-08-06",
        provider="openai",
        input_tokens=812,
        output_tokens=95,
        cached_input_tokens=512,
    )
    table.cost(call)

    ours_ns = per_call_ns(ours, n)
    genai_ns = per_call_ns(genai, max(n // 100, 200))
    floor_ns = per_call_ns(floor, n)
    call_ns = per_call_ns(lambda: table.cost(call), n)
    tiered = PriceTable()
    tiered.cost_of("gemini-2.5-pro", input_tokens=300_000)
    tiered_ns = per_call_ns(
        lambda: tiered.cost_of("gemini-2.5-pro", input_tokens=300_000, output_tokens=10), n
    )

    cold_names = [
        "gpt-4o-mini-2024-07-18",
        "claude-3-5-sonnet-20241022",
        "models/gemini-2.0-flash",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "mistral-large-latest",
        "deepseek-chat",
        "text-embedding-3-small",
    ]
    cold_ms = []
    for name in cold_names:
        fresh = PriceTable()
        start = time.perf_counter()
        fresh.lookup(name)
        cold_ms.append((time.perf_counter() - start) * 1e3)
    unknown = PriceTable()
    start = time.perf_counter()
    for i in range(20):
        unknown.lookup(f"no-such-model-{i}")
    unknown_ms = (time.perf_counter() - start) * 1e3 / 20

    payloads = {
        "openai chat": {
            "model": "gpt-4o",
            "choices": [{"message": {"tool_calls": [{"id": "c"}]}}],
            "usage": {
                "prompt_tokens": 812,
                "completion_tokens": 95,
                "total_tokens": 907,
                "prompt_tokens_details": {"cached_tokens": 512},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        },
        "anthropic": {
            "type": "message",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "tool_use"}],
            "usage": {
                "input_tokens": 300,
                "cache_read_input_tokens": 512,
                "cache_creation_input_tokens": 0,
                "output_tokens": 95,
            },
        },
        "google": {
            "candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]}}],
            "usageMetadata": {
                "promptTokenCount": 812,
                "candidatesTokenCount": 80,
                "thoughtsTokenCount": 15,
            },
            "modelVersion": "gemini-2.5-flash",
        },
    }
    usage_ns = {
        name: per_call_ns(lambda p=payload: usage_from_response(p), max(n // 10, 1000))
        for name, payload in payloads.items()
    }

    print(f"pricing hot path ({'quick' if args.quick else 'full'} run, best of 5)")
    print(f"  {'what':48} {'ns/call':>10} {'vs ours':>9}")
    rows = [
        ("PriceTable.cost_of (memo hit)", ours_ns),
        ("PriceTable.cost_of, tiered model above 200k", tiered_ns),
        ("PriceTable.cost(LLMCall)", call_ns),
        ("baseline: genai_prices.calc_price, same usage", genai_ns),
        ("floor: dict hit + 5 multiplications inline", floor_ns),
    ]
    for label, value in rows:
        print(f"  {label:48} {value:10.0f} {value / ours_ns:8.2f}x")
    print(f"  calc_price / cost_of = {genai_ns / ours_ns:.0f}x faster on the hot path")
    print("first resolution of a name (fresh table; genai-prices already imported)")
    for name, ms in zip(cold_names, cold_ms, strict=True):
        print(f"  {name:48} {ms:8.3f} ms")
    print(f"  {'unknown name (mean of 20)':48} {unknown_ms:8.3f} ms")
    print(f"  {'median known':48} {statistics.median(cold_ms):8.3f} ms")
    print("usage_from_response")
    for name, value in usage_ns.items():
        print(f"  {name:48} {value:10.0f} ns")


if __name__ == "__main__":
    main()
