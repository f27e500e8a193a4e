"""The GenAI metrics of ``OTLPMetricsExporter``'s rules, recorded with the real OpenTelemetry
SDK (MeterProvider, PeriodicExportingMetricReader and the SDK's own OTLP metric exporter): the
reference the tests compare our points with, and the baseline of
``benchmarks/bench_otlp_metrics.py``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from asynctelemetry._conventions import GEN_AI_DURATION_BUCKETS, GEN_AI_TOKEN_BUCKETS

if TYPE_CHECKING:
    from asynctelemetry import LLMCall


class SdkRecorder:
    """The GenAI metrics of ``OTLPMetricsExporter``'s module doc, recorded with the real SDK
    (MeterProvider, PeriodicExportingMetricReader, the SDK's OTLP exporter)."""

    def __init__(self, exporter: Any, *, legacy: bool = False) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        self.reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        self.provider = MeterProvider(metric_readers=[self.reader])
        meter = self.provider.get_meter("asynctelemetry")
        seconds = list(GEN_AI_DURATION_BUCKETS)
        tokens = [float(b) for b in GEN_AI_TOKEN_BUCKETS]

        def hist(name: str, unit: str, bounds: list[float]) -> Any:
            return meter.create_histogram(
                name, unit=unit, explicit_bucket_boundaries_advisory=bounds
            )

        self.legacy = legacy
        self.duration = hist("gen_ai.client.inference.duration", "s", seconds)
        self.ttfc = hist("gen_ai.client.inference.time_to_first_chunk", "s", seconds)
        self.tpoc = hist("gen_ai.client.inference.time_per_output_chunk", "s", seconds)
        self.op_in = hist("gen_ai.client.inference.operation.input_tokens", "{token}", tokens)
        self.op_out = hist("gen_ai.client.inference.operation.output_tokens", "{token}", tokens)
        self.usage = [
            (meter.create_counter(f"gen_ai.client.inference.usage.{name}", unit="{token}"), f)
            for name, f in (
                ("input_tokens", "input_tokens"),
                ("output_tokens", "output_tokens"),
                ("cache_read.input_tokens", "cached_input_tokens"),
                ("cache_write.input_tokens", "cache_creation_tokens"),
                ("reasoning.output_tokens", "reasoning_tokens"),
            )
        ]
        if legacy:
            self.old_duration = hist("gen_ai.client.operation.duration", "s", seconds)
            self.old_tokens = hist("gen_ai.client.token.usage", "{token}", tokens)

    def record(self, call: LLMCall) -> None:
        ops = {"chat": "chat", "stream": "chat", "embed": "embeddings"}
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": ops.get(call.operation, call.operation),
            "gen_ai.provider.name": call.provider or "unknown",
        }
        if call.request_model is not None:
            attrs["gen_ai.request.model"] = call.request_model
        attrs["gen_ai.response.model"] = call.model
        if call.duration_ms is not None:
            timed = dict(attrs)
            if call.status != "ok":
                timed["error.type"] = call.error_type or "_OTHER"
            self.duration.record(call.duration_ms / 1000, timed)
            if self.legacy:
                self.old_duration.record(call.duration_ms / 1000, timed)
        if call.ttft_ms is not None and call.is_streaming is not False:
            self.ttfc.record(call.ttft_ms / 1000, attrs)
            if call.tpt_ms is not None:
                self.tpoc.record(call.tpt_ms / 1000, attrs)
        for histogram, kind, value in (
            (self.op_in, "input", call.input_tokens),
            (self.op_out, "output", call.output_tokens),
        ):
            if value is not None:
                histogram.record(value, attrs)
                if self.legacy:
                    self.old_tokens.record(value, {**attrs, "gen_ai.token.type": kind})
        modal = {**attrs, "gen_ai.token.modality": "unknown"}
        for counter, name in self.usage:
            counter.add(getattr(call, name) or 0, modal)

    async def flush(self) -> None:
        # The SDK's exporter is synchronous: off the loop, which serves the receiver.
        await asyncio.to_thread(self.provider.force_flush)

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.provider.shutdown)
