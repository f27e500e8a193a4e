"""The demo's third-party app: plain OpenTelemetry SDK, GenAI attributes, OTLP/gRPC export.

It imports nothing from asynctelemetry on purpose: it stands for any service instrumented with the
OpenTelemetry GenAI semantic conventions. Each request is a server span (not an LLM call: the
collector counts and ignores it) with a client ``chat`` span inside, carrying ``gen_ai.*``
attributes; a few calls fail with ``error.type``.

usage: python -m asynctelemetry.cli._demo_sdk_app --endpoint http://127.0.0.1:4317
       [--calls 30] [--speed 1.0] [--seed 11]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from collections.abc import Sequence

# (provider, requested model, response model, median TTFT s, tokens/s, weight)
MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.30, 120.0, 3),
    ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 0.35, 150.0, 2),
    ("google", "gemini-2.0-flash", "gemini-2.0-flash", 0.30, 220.0, 2),
)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


async def _request(tracer: object, rng: random.Random, speed: float, index: int) -> None:
    provider, model, response_model, ttft, rate, _ = rng.choices(
        MODELS, weights=[m[5] for m in MODELS]
    )[0]
    prompt = int(_lognormal(rng, 600, 0.5)) + 10
    answer = int(_lognormal(rng, 140, 0.7)) + 1
    first = _lognormal(rng, ttft, 0.4)
    generating = answer / _lognormal(rng, rate, 0.2)
    fails = rng.random() < 0.07
    with tracer.start_as_current_span(  # type: ignore[attr-defined]
        "POST /v1/answer",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/v1/answer"},
    ):
        with tracer.start_as_current_span(  # type: ignore[attr-defined]
            f"chat {model}", kind=SpanKind.CLIENT
        ) as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", provider)
            span.set_attribute("gen_ai.request.model", model)
            span.set_attribute("gen_ai.request.stream", True)
            span.set_attribute("gen_ai.conversation.id", f"sdk-conversation-{index % 5}")
            await asyncio.sleep(first / speed)
            if fails:
                span.set_attribute("error.type", "RateLimitError")
                span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
                return
            await asyncio.sleep(generating / speed)
            span.set_attribute("gen_ai.response.model", response_model)
            span.set_attribute("gen_ai.response.time_to_first_chunk", first / speed)
            span.set_attribute("gen_ai.usage.input_tokens", prompt)
            span.set_attribute("gen_ai.usage.output_tokens", answer)
            span.set_attribute("gen_ai.response.finish_reasons", ["stop"])


class _Counting(SpanExporter):
    """Wraps the OTLP exporter to count spans that could not be delivered."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


async def _run(tracer: object, calls: int, speed: float, seed: int) -> None:
    rng = random.Random(seed)
    queue = list(range(calls))

    async def worker(worker_rng: random.Random) -> None:
        while queue:
            await _request(tracer, worker_rng, speed, queue.pop())

    await asyncio.gather(*(worker(random.Random(rng.random())) for _ in range(8)))


def main(argv: list[str] | None = None) -> int:
    """Export ``--calls`` GenAI chat spans to ``--endpoint``; exit 1 if some were not delivered."""
    parser = argparse.ArgumentParser(prog="python -m asynctelemetry.cli._demo_sdk_app")
    parser.add_argument("--endpoint", required=True, help="OTLP/gRPC endpoint, http://host:port")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    exporter = _Counting(OTLPSpanExporter(endpoint=args.endpoint, insecure=True, timeout=10))
    provider = TracerProvider(resource=Resource.create({"service.name": "demo-sdk-app"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    try:
        asyncio.run(_run(provider.get_tracer("demo-sdk-app"), args.calls, args.speed, args.seed))
    finally:
        provider.shutdown()  # flushes the batch processor: every span is exported or failed
    if exporter.failed:
        print(f"{exporter.failed} spans could not be exported to {args.endpoint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
