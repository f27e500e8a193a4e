"""Prometheus metrics for LLM calls: :class:`MetricsRecorder` and :class:`PrometheusExporter`.

prometheus-client is the ``prometheus`` extra (``pip install 'asynctelemetry[prometheus]'``).
The recorder is a sink (the tracer's ``metrics=`` and the collector feed it every call) and keeps
RactoGateway's ``GatewayMetricsMiddleware`` methods; ``namespace="ractogateway"`` gives its exact
metric names. Each recorder owns an isolated ``CollectorRegistry`` unless given one.

Histogram buckets follow the OpenTelemetry GenAI metric conventions: ``gen_ai.client.operation
.duration`` for request durations, ``gen_ai.server.time_to_first_token`` and
``gen_ai.server.time_per_output_token`` for the streaming figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ._conventions import GEN_AI_DURATION_BUCKETS
from ._exceptions import ConfigError, require
from ._metrics_http import PrometheusExporter
from ._stats import MetricsStats, ScrapeStats

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._budgets import BudgetStatus
    from ._pricing import ModelPricing, PriceTable
    from ._record import LLMCall

__all__ = [
    "DURATION_BUCKETS",
    "TIME_PER_OUTPUT_TOKEN_BUCKETS",
    "TIME_TO_FIRST_TOKEN_BUCKETS",
    "TOKEN_TYPES",
    "GatewayMetricsMiddleware",
    "MetricsRecorder",
    "MetricsStats",
    "PrometheusExporter",
    "ScrapeStats",
]

#: ``gen_ai.client.operation.duration`` advisory boundaries, seconds.
DURATION_BUCKETS: Final = GEN_AI_DURATION_BUCKETS
#: ``gen_ai.server.time_to_first_token`` advisory boundaries, seconds.
TIME_TO_FIRST_TOKEN_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
#: ``gen_ai.server.time_per_output_token`` advisory boundaries, seconds.
TIME_PER_OUTPUT_TOKEN_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
#: Values of the ``token_type`` label, with the record field each one counts.
TOKEN_TYPES: Final = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cached_input": "cached_input_tokens",
    "cache_creation": "cache_creation_tokens",
    "reasoning": "reasoning_tokens",
}
#: Label value used for a call's unknown provider, and for tool calls of unknown name.
UNKNOWN: Final = "unknown"
#: Label value that stands for every model (or tool, provider…) beyond the cardinality cap.
OTHER: Final = "other"
#: ``cache_type`` of a record's cache miss: no cache layer answered.
ANY_CACHE: Final = "any"
# Label children kept per (provider, model, operation, status) so recording skips .labels().
_MAX_CACHED_SERIES: Final = 10_000


class _LabelGuard:
    """Keeps at most ``limit`` distinct values of one label; later ones become ``"other"``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self.overflowed = 0

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        self.overflowed += 1
        return OTHER


class MetricsRecorder:
    """Counts LLM calls into Prometheus counters and histograms.

    Args:
        price_table: the prices :meth:`record_request` uses (its caller gives tokens, not a
            cost): a ``PriceTable``, a ``dict[str, ModelPricing]`` of overrides on the default
            table, or ``None`` (the default table). :meth:`record` never prices: it counts the
            cost the record carries, which the pipeline that delivered it computed (tracer,
            collector and replay price every call once, by one rule).
        registry: a ``prometheus_client.CollectorRegistry``; a new, isolated one by default.
        namespace: metric name prefix (``"ractogateway"`` for RactoGateway's names).
        max_models: most distinct ``model`` label values (also providers, tool names and cache
            types); further ones are counted under ``"other"`` so a misbehaving client cannot
            blow up the series count.
        max_operations: most distinct ``operation`` label values (also ``status`` values);
            further ones are counted under ``"other"``.
        max_series: most distinct (provider, model, operation, status) combinations; calls of
            further combinations are counted under ``"other"`` in every label, so the
            exposition stays bounded whatever the mix of names.

    Raises:
        MissingDependencyError: prometheus-client is not installed.
    """

    def __init__(
        self,
        *,
        price_table: PriceTable | Mapping[str, ModelPricing] | None = None,
        registry: Any = None,
        namespace: str = "asynctelemetry",
        max_models: int = 200,
        max_operations: int = 32,
        max_series: int = 1000,
    ) -> None:
        prom: Any = require("prometheus_client", "prometheus", "MetricsRecorder")
        for name, value in (
            ("max_models", max_models),
            ("max_operations", max_operations),
            ("max_series", max_series),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, not {value!r}")
        self._prom = prom
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.namespace = namespace
        self._price_table = price_table
        self._table: PriceTable | None = None
        self._models = _LabelGuard(max_models)
        self._providers = _LabelGuard(max_models)
        self._tools = _LabelGuard(max_models)
        self._cache_types = _LabelGuard(max_models)
        self._keys = _LabelGuard(max_models)  # budget keys (users, sessions…): bounded too
        self._operations = _LabelGuard(max_operations)
        self._statuses = _LabelGuard(max_operations)
        self.max_series = max_series
        self._calls = 0  # read through ``stats``
        self._combinations: set[tuple[str, str, str, str]] = set()
        self._children: dict[tuple[str, str, str, str], _Series] = {}
        self._define_metrics()

    def _define_metrics(self) -> None:
        """The counters and histograms, in :attr:`registry` under :attr:`namespace`."""
        prom, place = self._prom, {"namespace": self.namespace, "registry": self.registry}
        per_call = ["provider", "model", "operation"]
        self.requests = prom.Counter(
            "requests_total", "LLM requests.", [*per_call, "status"], **place
        )
        self.request_duration = prom.Histogram(
            "request_duration_seconds", "Wall-clock latency of LLM requests.", per_call,
            buckets=DURATION_BUCKETS, **place,
        )  # fmt: skip
        self.tokens = prom.Counter(
            "tokens_total", "Tokens by type (input includes cached_input and cache_creation;"
            " output includes reasoning).", ["provider", "model", "token_type"], **place,
        )  # fmt: skip
        self.cost = prom.Counter(
            "cost_usd_total", "Estimated cost in US dollars.", ["provider", "model"], **place
        )
        self.cache_hits = prom.Counter(
            "cache_hits_total", "Response cache hits.", ["cache_type"], **place
        )
        self.cache_misses = prom.Counter(
            "cache_misses_total", "Response cache misses.", ["cache_type"], **place
        )
        self.tool_calls = prom.Counter(
            "tool_calls_total", "Tool calls requested by models.", ["tool_name"], **place
        )
        self.time_to_first_token = prom.Histogram(
            "time_to_first_token_seconds", "Time to the first token of successful responses.",
            per_call, buckets=TIME_TO_FIRST_TOKEN_BUCKETS, **place,
        )  # fmt: skip
        self.time_per_output_token = prom.Histogram(
            "time_per_output_token_seconds",
            "Time per output token after the first, successful responses.",
            per_call, buckets=TIME_PER_OUTPUT_TOKEN_BUCKETS, **place,
        )  # fmt: skip
        self.budget_remaining = prom.Gauge(
            "budget_remaining_usd", "USD left in each budget's current window (per key).",
            ["budget", "key"], **place,
        )  # fmt: skip
        self.alerts_firing = prom.Gauge(
            "alerts_firing", "Keys for which each alert rule is firing now.", ["alert"], **place
        )

    # -- pricing --------------------------------------------------------------------------------
    @property
    def price_table(self) -> PriceTable:
        """The table :meth:`record_request` prices with."""
        if self._table is None:
            from ._pipeline import resolve_price_table

            self._table = resolve_price_table(self._price_table)
        return self._table

    # -- recording ------------------------------------------------------------------------------
    def _series(self, provider: str | None, model: str, operation: str, status: str) -> _Series:
        key = (provider or UNKNOWN, model, operation, status)
        series = self._children.get(key)
        if series is None:
            labels = (
                self._providers(key[0]),
                self._models(model),
                self._operations(operation),
                self._statuses(status),
            )
            if labels not in self._combinations:
                if len(self._combinations) < self.max_series:
                    self._combinations.add(labels)
                else:
                    labels = (OTHER, OTHER, OTHER, OTHER)
            series = _Series(self, *labels)
            if len(self._children) < _MAX_CACHED_SERIES:
                self._children[key] = series
        return series

    def record(self, call: LLMCall) -> None:
        """Count one call: request, duration, tokens, cost, cache, tool calls, TTFT and TPOT.

        The cost counted is the record's ``cost_usd`` (a call without one adds no cost). The
        ``model`` label is the model asked for (``request_model``), falling back to the model
        that answered: a model's failures (recorded under the name asked for) and its successes
        (answered by a dated snapshot) share its series, as everywhere calls are grouped.
        """
        self._calls += 1
        model = call.request_model or call.model
        series = self._series(call.provider, model, call.operation, call.status)
        series.requests.inc()
        if call.duration_ms is not None:
            series.duration.observe(call.duration_ms / 1000)
        values = call.__dict__
        for token_type, field in TOKEN_TYPES.items():
            count = values[field]
            if count:
                series.add_tokens(token_type, count)
        usd = call.cost_usd  # priced by the pipeline that delivered the call, never here
        if usd:
            series.cost.inc(usd)
        if call.cache_hit:
            if call.cache_hit == "miss":
                self.cache_misses.labels(ANY_CACHE).inc()
            else:
                self.cache_hits.labels(self._cache_types(call.cache_hit)).inc()
        if call.tool_calls:
            self.tool_calls.labels(UNKNOWN).inc(call.tool_calls)
        if call.status == "ok":
            if call.ttft_ms is not None:
                series.observe_ttft(call.ttft_ms / 1000)
            tpt = call.tpt_ms
            if tpt is not None:
                series.observe_tpot(tpt / 1000)

    def record_request(
        self,
        *,
        provider: str,
        model: str,
        operation: str,
        status: str,
        latency_s: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        tool_calls: Sequence[Any] | None = None,
    ) -> None:
        """Record a finished request (RactoGateway's signature), priced with :attr:`price_table`
        by the one rule (:meth:`PriceTable.price_call`).

        ``tool_calls`` items may be objects with a ``name`` or ``tool_name`` attribute, dicts
        with such a key, or plain names.

        Raises:
            ValueError: a negative or non-finite latency, or negative token counts.
        """
        if not math.isfinite(latency_s) or latency_s < 0:
            raise ValueError(f"latency_s must be a finite number >= 0, not {latency_s!r}")
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        self._calls += 1
        series = self._series(provider, model, operation, status)
        series.requests.inc()
        series.duration.observe(latency_s)
        if input_tokens:
            series.add_tokens("input", input_tokens)
        if output_tokens:
            series.add_tokens("output", output_tokens)
        if input_tokens or output_tokens:
            usd = self.price_table.price_call(
                model, None, provider, input_tokens=input_tokens, output_tokens=output_tokens
            )
            if usd:
                series.cost.inc(usd)
        for tool in tool_calls or ():
            self.tool_calls.labels(self._tools(_tool_name(tool))).inc()

    def record_budgets(self, statuses: Sequence[BudgetStatus]) -> None:
        """Set ``{ns}_budget_remaining_usd`` from budget statuses (an ``AlertMonitor`` with
        ``metrics=`` does it each evaluation); keys no longer listed are removed."""
        gauge = self.budget_remaining
        gauge.clear()
        for status in statuses:
            gauge.labels(status.name, self._keys(status.key or "")).set(status.remaining_usd)

    def record_alerts(self, rules: Sequence[str], firing: Sequence[str]) -> None:
        """Set ``{ns}_alerts_firing``: for each rule, how many of its keys fire now."""
        for rule in rules:
            self.alerts_firing.labels(rule).set(sum(1 for name in firing if name == rule))

    def record_cache_hit(self, cache_type: str) -> None:
        """Count a response-cache hit of ``cache_type`` (``"exact"``, ``"semantic"``…)."""
        self.cache_hits.labels(self._cache_types(cache_type)).inc()

    def record_cache_miss(self, cache_type: str) -> None:
        """Count a response-cache miss of ``cache_type``."""
        self.cache_misses.labels(self._cache_types(cache_type)).inc()

    @property
    def stats(self) -> MetricsStats:
        """A snapshot of what this recorder has counted (see :class:`MetricsStats`)."""
        guards = (self._models, self._providers, self._tools, self._cache_types, self._statuses)
        overflowed = sum(guard.overflowed for guard in (*guards, self._operations))
        return MetricsStats(self._calls, overflowed)

    def generate_latest(self) -> str:
        """The registry in the Prometheus text exposition format."""
        text: bytes = self._prom.generate_latest(self.registry)
        return text.decode()

    # -- the SyncSink protocol --------------------------------------------------------------------
    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Record every call (counters in memory: the pipeline calls this without awaiting)."""
        record = self.record
        for call in calls:
            record(call)

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Record every call (the same as :meth:`emit_nowait`)."""
        self.emit_nowait(calls)

    async def flush(self) -> None:
        """Nothing to flush: metrics are read when scraped."""

    async def aclose(self) -> None:
        """Nothing to release."""


class _Series:
    """The label children of one (provider, model, operation, status), made on first use.

    Children are created lazily so that a series appears only once it has a value (no empty
    TTFT histograms for embeddings, no zero counters for token types a provider never reports).
    """

    __slots__ = ("_tokens", "_tpot", "_ttft", "cost", "duration", "labels", "recorder", "requests")

    def __init__(
        self, recorder: MetricsRecorder, provider: str, model: str, operation: str, status: str
    ) -> None:
        self.recorder = recorder
        self.labels = (provider, model, operation)
        self.requests: Any = recorder.requests.labels(provider, model, operation, status)
        self.duration: Any = recorder.request_duration.labels(provider, model, operation)
        self.cost: Any = recorder.cost.labels(provider, model)
        self._tokens: dict[str, Any] = {}
        self._ttft: Any = None
        self._tpot: Any = None

    def add_tokens(self, token_type: str, count: int) -> None:
        child = self._tokens.get(token_type)
        if child is None:
            provider, model, _ = self.labels
            child = self._tokens[token_type] = self.recorder.tokens.labels(
                provider, model, token_type
            )
        child.inc(count)

    def observe_ttft(self, seconds: float) -> None:
        if self._ttft is None:
            self._ttft = self.recorder.time_to_first_token.labels(*self.labels)
        self._ttft.observe(seconds)

    def observe_tpot(self, seconds: float) -> None:
        if self._tpot is None:
            self._tpot = self.recorder.time_per_output_token.labels(*self.labels)
        self._tpot.observe(seconds)


def _tool_name(tool: Any) -> str:
    if isinstance(tool, str):
        return tool or UNKNOWN
    if isinstance(tool, Mapping):
        name = tool.get("name") or tool.get("tool_name")
    else:
        name = getattr(tool, "name", None) or getattr(tool, "tool_name", None)
    return str(name) if name else UNKNOWN


#: RactoGateway's name for the recorder.
GatewayMetricsMiddleware = MetricsRecorder
