"""GenAI client metrics over OTLP: :class:`OTLPMetricsExporter`, a sink that aggregates calls.

Each call is folded into the series of its attributes as it arrives (``emit_nowait``: a
dictionary hit, a bisect per histogram it touches and five integer additions; no I/O, no
allocation once the series exists). Every ``interval`` seconds a task on the event loop (no
thread) turns the series into one ``ExportMetricsServiceRequest`` (opentelemetry-proto, built in
slices so that the loop gets control back) and queues it for the transport the span exporters
use too (:class:`~asynctelemetry._export._grpc.GrpcTransport` or
:class:`~asynctelemetry._export._http.HttpTransport`): a bounded
:class:`~asynctelemetry._batching.BatchQueue` of requests (overflow drops the oldest, counted),
retried with backoff and jitter on the failures the OTLP specification calls retryable.

The metrics are those of the OpenTelemetry GenAI conventions for client inference
(semantic-conventions-genai, 2026), with their units and explicit bucket boundaries:

- ``gen_ai.client.inference.duration`` (s): every call with a duration, ``error.type`` on
  failed and cancelled ones;
- ``gen_ai.client.inference.time_to_first_chunk`` (s): calls with a time to first chunk that
  were not marked non-streaming;
- ``gen_ai.client.inference.time_per_output_chunk`` (s): those calls' mean time per output
  token after the first chunk (the record's ``tpt_ms``), one value per call (records keep no
  per-chunk times);
- the counters ``gen_ai.client.inference.usage.{input_tokens, output_tokens,
  cache_read.input_tokens, cache_write.input_tokens, reasoning.output_tokens}`` ({token}),
  added for every call, 0 when the provider reported no such usage (as the conventions ask),
  with ``gen_ai.token.modality="unknown"`` (records do not split usage by modality);
- ``gen_ai.client.inference.operation.{input,output}_tokens`` ({token}, histograms): the calls
  whose usage is known;
- with ``legacy_names=True`` also ``gen_ai.client.operation.duration`` and
  ``gen_ai.client.token.usage`` (``gen_ai.token.type`` input/output), from the same figures.

Every point carries ``gen_ai.operation.name``, ``gen_ai.provider.name`` (``"unknown"`` when the
record has no provider), ``gen_ai.request.model`` when known and ``gen_ai.response.model``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from .._batching import BatchQueue, QueueStats, QueueValues, RetryPolicy, Slice
from .._conventions import (
    ERROR_TYPE,
    ERROR_TYPE_OTHER,
    GEN_AI_DURATION_BUCKETS,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OPERATIONS,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_BUCKETS,
    GEN_AI_TOKEN_MODALITY,
    GEN_AI_TOKEN_TYPE,
    METRIC_INFERENCE_DURATION,
    METRIC_LEGACY_OPERATION_DURATION,
    METRIC_LEGACY_TOKEN_USAGE,
    METRIC_OPERATION_INPUT_TOKENS,
    METRIC_OPERATION_OUTPUT_TOKENS,
    METRIC_TIME_PER_OUTPUT_CHUNK,
    METRIC_TIME_TO_FIRST_CHUNK,
    METRIC_USAGE_CACHE_READ_TOKENS,
    METRIC_USAGE_CACHE_WRITE_TOKENS,
    METRIC_USAGE_INPUT_TOKENS,
    METRIC_USAGE_OUTPUT_TOKENS,
    METRIC_USAGE_REASONING_TOKENS,
)
from .._exceptions import ConfigError
from ._base import ExporterShell, export_queue, settle
from ._encode import SCOPE_NAME, resource_attributes
from ._transport import TransportOptions, open_transport

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Self

    from .._record import LLMCall

__all__ = ["MetricsExportStats", "OTLPMetricsExporter"]

logger = logging.getLogger("asynctelemetry")

#: Exports held while the receiver is slow or away (one per interval).
DEFAULT_MAX_QUEUE: Final = 16
#: Distinct attribute sets kept; calls beyond go to one overflow series (the OTel SDK's default
#: cardinality limit, and its ``otel.metric.overflow`` attribute).
DEFAULT_MAX_SERIES: Final = 2000
OVERFLOW_KEY: Final = "otel.metric.overflow"
_OVERFLOW: Final = (OVERFLOW_KEY,)  # the overflow series' key (no record's key has one element)
#: ``gen_ai.token.modality`` of every token count: records do not split usage by modality.
UNKNOWN_MODALITY: Final = "unknown"
UNKNOWN_PROVIDER: Final = "unknown"
# Most series per export request: each request is built and serialized in one go (about 16 KiB
# and well under a millisecond), the loop getting a turn between two; an export of 2,000 series
# goes out as 125 requests rather than one 8 MB message that would hold the loop for tens of ms.
_REQUEST_SERIES: Final = 16
_CUMULATIVE: Final = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_DELTA: Final = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
_DURATION_BOUNDS: Final = GEN_AI_DURATION_BUCKETS
_TOKEN_BOUNDS: Final = tuple(float(b) for b in GEN_AI_TOKEN_BUCKETS)
# The usage counters, in the order of _Series.usage, with the record field each one adds.
_USAGE: Final = (
    (METRIC_USAGE_INPUT_TOKENS, "input_tokens", "The number of input (prompt) tokens used."),
    (METRIC_USAGE_OUTPUT_TOKENS, "output_tokens", "The number of output tokens used."),
    (
        METRIC_USAGE_CACHE_READ_TOKENS,
        "cached_input_tokens",
        "The number of input tokens served from a provider-managed cache.",
    ),
    (
        METRIC_USAGE_CACHE_WRITE_TOKENS,
        "cache_creation_tokens",
        "The number of input tokens written to a provider-managed cache.",
    ),
    (
        METRIC_USAGE_REASONING_TOKENS,
        "reasoning_tokens",
        "The number of output tokens used for reasoning.",
    ),
)
_DESCRIPTIONS: Final = {
    METRIC_INFERENCE_DURATION: "GenAI client inference operation duration.",
    METRIC_TIME_TO_FIRST_CHUNK: "Time to receive the first chunk of a streamed response.",
    METRIC_TIME_PER_OUTPUT_CHUNK: "Time per output chunk after the first one.",
    METRIC_OPERATION_INPUT_TOKENS: "Input tokens per inference operation.",
    METRIC_OPERATION_OUTPUT_TOKENS: "Output tokens per inference operation.",
    METRIC_LEGACY_OPERATION_DURATION: "GenAI operation duration.",
    METRIC_LEGACY_TOKEN_USAGE: "Number of input and output tokens used.",
}


@dataclass(frozen=True, slots=True)
class MetricsExportStats:
    """What an :class:`OTLPMetricsExporter` has done: a snapshot taken when ``stats`` is read.

    Attributes:
        queue: the queue of exports (one per interval, each sent as requests of at most 16
            series): accepted, delivered, dropped (overflow when the receiver stays away longer
            than ``max_queue`` intervals, given up after retries, undelivered at close),
            retries and the last error.
        calls: calls aggregated.
        series: attribute sets held now (cumulative: since the start; delta: since the last
            export).
        overflow_calls: calls aggregated into the ``otel.metric.overflow`` series because
            ``max_series`` attribute sets were held.
        requests: export requests sent (attempts included).
        rejected: data points the receiver refused (OTLP ``partial_success``).
    """

    queue: QueueStats
    calls: int
    series: int
    overflow_calls: int
    requests: int
    rejected: int


class _Histogram:
    """An explicit-bucket histogram: counts per bucket (upper bounds inclusive, as in OTLP)."""

    __slots__ = ("bounds", "count", "counts", "high", "low", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value


class _Series:
    """The aggregates of one attribute set (service, operation, provider, models)."""

    __slots__ = (
        "attributes",
        "duration",
        "errors",
        "input_tokens",
        "output_tokens",
        "service",
        "tpoc",
        "ttfc",
        "usage",
    )

    def __init__(self, service: str, attributes: list[KeyValue]) -> None:
        self.service = service
        self.attributes = attributes
        self.duration = _Histogram(_DURATION_BOUNDS)  # calls that ended ok
        self.errors: dict[str, _Histogram] = {}  # failed and cancelled calls, by error.type
        self.ttfc = _Histogram(_DURATION_BOUNDS)
        self.tpoc = _Histogram(_DURATION_BOUNDS)
        self.input_tokens = _Histogram(_TOKEN_BOUNDS)
        self.output_tokens = _Histogram(_TOKEN_BOUNDS)
        self.usage = [0, 0, 0, 0, 0]


def _key_value(key: str, value: str | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


class OTLPMetricsExporter(ExporterShell):
    """Aggregates calls into the GenAI client metrics and exports them over OTLP.

    A :class:`~asynctelemetry.SyncSink`: give it to a tracer (``metrics_exporters=[...]`` or
    ``sinks=[...]``) or a collector (``sinks=[...]``). Everything runs on the event loop.

    Args:
        endpoint: gRPC: ``http://host:4317`` (plain), ``https://host:4317`` or ``host:4317``
            (TLS unless ``insecure=True``). HTTP: a base URL (``http://host:4318``);
            ``/v1/metrics`` is added unless present.
        protocol: ``"grpc"`` (default) or ``"http"`` (protobuf; the ``otlp`` extra, httpx).
        interval: seconds between two exports (60).
        headers: sent with every export (``authorization`` and the like).
        temporality: ``"cumulative"`` (default: every export carries the totals since the
            start) or ``"delta"`` (each export carries what happened since the previous one).
        legacy_names: also export ``gen_ai.client.operation.duration`` and
            ``gen_ai.client.token.usage``, the names the 2026 conventions replaced.
        service_name: ``service.name`` of the resource for calls that carry none.
        resource_attributes: extra resource attributes.
        insecure: gRPC: plain-text channel (``None`` decides from the scheme); HTTP: skip
            certificate verification of an ``https`` endpoint.
        compression: ``"gzip"`` (default) or ``None`` (gRPC also takes ``"deflate"``).
        timeout: seconds allowed for one export request.
        max_queue: exports held while the receiver is away (16, one per interval); beyond it the
            oldest is dropped and counted (with cumulative temporality the next one carries
            its figures anyway). Each export goes out as requests of at most 16 series.
        max_series: most attribute sets held (2000); calls beyond go to one series marked
            ``otel.metric.overflow=true``, counted in ``stats.overflow_calls``.
        credentials: gRPC ``grpc.ChannelCredentials`` or an ``ssl.SSLContext`` for HTTP.
        close_timeout: seconds ``aclose()`` spends delivering the last export (5).
        retry: backoff policy for retryable failures.

    Raises:
        ConfigError: a bad protocol, temporality, interval, compression or endpoint.
        MissingDependencyError: ``protocol="http"`` without httpx.
    """

    _kind = "OTLP metrics"
    _unit = "data points"

    def __init__(
        self,
        endpoint: str,
        *,
        protocol: Literal["grpc", "http"] = "grpc",
        interval: float = 60.0,
        headers: Mapping[str, str] | None = None,
        temporality: Literal["cumulative", "delta"] = "cumulative",
        legacy_names: bool = False,
        service_name: str = "asynctelemetry",
        resource_attributes: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        compression: str | None = "gzip",
        timeout: float = 10.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_series: int = DEFAULT_MAX_SERIES,
        credentials: Any = None,
        close_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not (isinstance(interval, int | float) and 0 < interval < float("inf")):
            raise ConfigError(f"interval must be a number of seconds > 0, not {interval!r}")
        if temporality not in ("cumulative", "delta"):
            raise ConfigError(f"temporality must be 'cumulative' or 'delta', not {temporality!r}")
        if timeout <= 0 or close_timeout < 0:
            raise ConfigError("timeout must be > 0 and close_timeout >= 0")
        if max_queue < 1 or max_series < 1:
            raise ConfigError("max_queue and max_series must be >= 1")
        self.endpoint = endpoint
        self.protocol = protocol
        self.interval = float(interval)
        self.temporality = temporality
        self.legacy_names = legacy_names
        self.service_name = service_name
        self.timeout = timeout
        self.max_series = max_series
        self._transport = open_transport(
            protocol,
            endpoint,
            "metrics",
            TransportOptions(headers, insecure, compression, credentials, timeout),
            "OTLPMetricsExporter",
        )
        self._resource_extra = dict(resource_attributes or {})
        self._resources: dict[str, list[KeyValue]] = {}
        from .._version import __version__

        self._scope = InstrumentationScope(name=SCOPE_NAME, version=__version__)
        self._series: dict[tuple[Any, ...], _Series] = {}
        self._calls = 0
        self._collected = 0  # ``_calls`` at the last export
        self._overflow_calls = 0
        self._start_ns = time.time_ns()  # cumulative: the start of every point
        self._last_ns = self._start_ns  # delta: the end of the previous export
        # One export (its requests) per batch: a retry resumes where it failed.
        self._queue_values = QueueValues(max_queue, 1, 0.0, close_timeout)
        self._in_flight: tuple[list[bytes], list[int]] | None = None
        self._queue: BatchQueue[list[bytes]] = export_queue(
            self._export_batch, self._queue_values, retry, f"OTLP metrics ({protocol}) exporter"
        )
        self._open_shell()
        self._task: asyncio.Task[None] | None = None

    # -- the SyncSink protocol --------------------------------------------------------------------
    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        """Aggregate ``calls`` now (memory only; the export happens every ``interval``).

        Raises:
            StoreClosedError: the exporter was closed.
        """
        self._refuse_if_closed()
        if self._task is None:
            self._start()
        record = self._record
        for call in calls:
            record(call)

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Aggregate ``calls`` (the same as :meth:`emit_nowait`)."""
        self.emit_nowait(calls)

    def _record(self, call: LLMCall) -> None:
        values = call.__dict__
        self._calls += 1
        key = (
            values["service_name"],
            values["operation"],
            values["provider"],
            values["request_model"],
            values["model"],
        )
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        duration = values["duration_ms"]
        if duration is not None:
            if values["status"] == "ok":
                series.duration.add(duration / 1000)
            else:
                error = values["error_type"] or ERROR_TYPE_OTHER
                histogram = series.errors.get(error)
                if histogram is None:
                    histogram = series.errors[error] = _Histogram(_DURATION_BOUNDS)
                histogram.add(duration / 1000)
        ttft = values["ttft_ms"]
        if ttft is not None and values["is_streaming"] is not False:
            series.ttfc.add(ttft / 1000)
            per_token = call.tpt_ms  # the record's one rule: (duration - ttft) / output tokens
            if per_token is not None:
                series.tpoc.add(per_token / 1000)
        usage = series.usage
        tokens = values["input_tokens"]
        if tokens is not None:
            usage[0] += tokens
            series.input_tokens.add(tokens)
        tokens = values["output_tokens"]
        if tokens is not None:
            usage[1] += tokens
            series.output_tokens.add(tokens)
        usage[2] += values["cached_input_tokens"] or 0
        usage[3] += values["cache_creation_tokens"] or 0
        usage[4] += values["reasoning_tokens"] or 0

    def _new_series(self, key: tuple[Any, ...]) -> _Series:
        service, operation, provider, request_model, model = key
        if len(self._series) >= self.max_series:
            self._overflow_calls += 1
            overflow = self._series.get(_OVERFLOW)
            if overflow is None:
                overflow = _Series(self.service_name, [_key_value(OVERFLOW_KEY, True)])
                self._series[_OVERFLOW] = overflow
            return overflow
        attributes = [
            _key_value(GEN_AI_OPERATION_NAME, GEN_AI_OPERATIONS.get(operation, operation)),
            _key_value(GEN_AI_PROVIDER_NAME, provider or UNKNOWN_PROVIDER),
        ]
        if request_model is not None:
            attributes.append(_key_value(GEN_AI_REQUEST_MODEL, request_model))
        attributes.append(_key_value(GEN_AI_RESPONSE_MODEL, model))
        series = self._series[key] = _Series(service or self.service_name, attributes)
        return series

    # -- export -------------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop yet: the first emit on one starts the timer
            return
        self._task = loop.create_task(self._run(), name="asynctelemetry OTLP metrics timer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._collect()
            except Exception as exc:  # one bad export must not stop the next ones
                logger.warning("asynctelemetry: OTLP metrics collection failed: %r", exc)

    async def _collect(self) -> None:
        """Queue one export (its requests) with the figures so far (delta: since the last)."""
        self._collected = self._calls
        now = time.time_ns()
        if self.temporality == "delta":
            series, self._series = self._series, {}
            start, self._last_ns = self._last_ns, now
        else:
            series, start = self._series, self._start_ns
        if not series:
            return
        bodies = await self._encode(list(series.values()), start, now)
        self._queue.put_nowait(bodies)

    async def _encode(self, series: list[_Series], start: int, now: int) -> list[bytes]:
        """The ``ExportMetricsServiceRequest`` bodies of an export: at most
        :data:`_REQUEST_SERIES` series each, per service one resource; the loop gets a turn
        after each."""
        temporality = _DELTA if self.temporality == "delta" else _CUMULATIVE
        series.sort(key=attrgetter("service"))
        bodies: list[bytes] = []
        slice_ = Slice()
        for first in range(0, len(series), _REQUEST_SERIES):
            if first:
                await slice_.breathe()
            request = ExportMetricsServiceRequest()
            metrics: _MetricSet | None = None
            service = None
            for one in series[first : first + _REQUEST_SERIES]:
                if metrics is None or one.service != service:
                    service = one.service
                    resource_metrics = request.resource_metrics.add()
                    resource_metrics.resource.attributes.extend(self._resource(service))
                    scope_metrics = resource_metrics.scope_metrics.add()
                    scope_metrics.scope.CopyFrom(self._scope)
                    metrics = _MetricSet(scope_metrics, temporality, start, now)
                self._encode_series(metrics, one)
            bodies.append(request.SerializeToString())
        return bodies

    def _encode_series(self, metrics: _MetricSet, one: _Series) -> None:
        attributes = one.attributes
        durations: list[tuple[list[KeyValue], _Histogram]] = []
        if one.duration.count:
            durations.append((attributes, one.duration))
        for error, histogram in one.errors.items():
            durations.append(([*attributes, _key_value(ERROR_TYPE, error)], histogram))
        names = [METRIC_INFERENCE_DURATION]
        if self.legacy_names:
            names.append(METRIC_LEGACY_OPERATION_DURATION)
        for name in names:
            for point_attributes, histogram in durations:
                metrics.histogram(name, "s", point_attributes, histogram)
        if one.ttfc.count:
            metrics.histogram(METRIC_TIME_TO_FIRST_CHUNK, "s", attributes, one.ttfc)
        if one.tpoc.count:
            metrics.histogram(METRIC_TIME_PER_OUTPUT_CHUNK, "s", attributes, one.tpoc)
        with_modality = [*attributes, _key_value(GEN_AI_TOKEN_MODALITY, UNKNOWN_MODALITY)]
        for (name, _, description), value in zip(_USAGE, one.usage, strict=True):
            metrics.counter(name, description, with_modality, value)
        for name, kind, tokens in (
            (METRIC_OPERATION_INPUT_TOKENS, "input", one.input_tokens),
            (METRIC_OPERATION_OUTPUT_TOKENS, "output", one.output_tokens),
        ):
            if not tokens.count:
                continue
            metrics.histogram(name, "{token}", attributes, tokens)
            if self.legacy_names:
                typed = [*attributes, _key_value(GEN_AI_TOKEN_TYPE, kind)]
                metrics.histogram(METRIC_LEGACY_TOKEN_USAGE, "{token}", typed, tokens)

    def _resource(self, service: str) -> list[KeyValue]:
        cached = self._resources.get(service)
        if cached is None:
            attributes = resource_attributes(service, self._resource_extra)
            cached = [_key_value(k, str(v)) for k, v in attributes.items()]
            if len(self._resources) < 256:
                self._resources[service] = cached
        return cached

    async def _export_batch(self, batch: list[list[bytes]]) -> None:
        # One export per batch, its requests in order. A retried export is the same list: it
        # resumes at the request that failed, never sending one twice (delta would count twice).
        for bodies in batch:
            if self._in_flight is None or self._in_flight[0] is not bodies:
                self._in_flight = (bodies, [0])
            sent = self._in_flight[1]
            while sent[0] < len(bodies):
                await self._send(bodies[sent[0]])
                sent[0] += 1
            self._in_flight = None

    # -- flush, close, stats ------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> None:
        """Export the figures so far now and return once delivered or given up on.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            ExportError: the export was given up on (``stats.queue.dropped_failed``).
        """
        await settle(self._queue, timeout, "metrics exports", self._collect)

    async def _before_close(self) -> None:
        """Stop the timer; export what came since the last export."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._calls != self._collected:
            await self._collect()

    def _took_work(self) -> bool:
        return bool(self._calls)

    async def __aenter__(self) -> Self:
        self._refuse_if_closed()
        if self._task is None:
            self._start()
        return self

    @property
    def stats(self) -> MetricsExportStats:
        """A snapshot of what this exporter aggregated, sent, retried and lost."""
        return MetricsExportStats(
            queue=self._queue.stats,
            calls=self._calls,
            series=len(self._series),
            overflow_calls=self._overflow_calls,
            requests=self._requests,
            rejected=self._rejected,
        )

    def __repr__(self) -> str:
        return (
            f"OTLPMetricsExporter({self.endpoint!r}, protocol={self.protocol!r}, "
            f"interval={self.interval}, temporality={self.temporality!r})"
        )


class _MetricSet:
    """The metrics of one scope being built: one ``Metric`` per name, points appended to it."""

    __slots__ = ("_by_name", "_scope_metrics", "end", "start", "temporality")

    def __init__(self, scope_metrics: Any, temporality: int, start: int, end: int) -> None:
        self._scope_metrics = scope_metrics
        self._by_name: dict[str, Any] = {}
        self.temporality = temporality
        self.start = start
        self.end = end

    def _metric(self, name: str, unit: str, description: str, kind: str) -> Any:
        metric = self._by_name.get(name)
        if metric is None:
            metric = self._scope_metrics.metrics.add(name=name, unit=unit, description=description)
            data = getattr(metric, kind)
            data.aggregation_temporality = self.temporality
            if kind == "sum":
                data.is_monotonic = True
            self._by_name[name] = metric
        return getattr(metric, kind)

    def histogram(
        self, name: str, unit: str, attributes: Iterable[KeyValue], histogram: _Histogram
    ) -> None:
        data = self._metric(name, unit, _DESCRIPTIONS.get(name, ""), "histogram")
        point = data.data_points.add(
            start_time_unix_nano=self.start,
            time_unix_nano=self.end,
            count=histogram.count,
            sum=histogram.total,
            bucket_counts=histogram.counts,
            explicit_bounds=histogram.bounds,
        )
        point.min = histogram.low  # only histograms that counted something are exported
        point.max = histogram.high
        point.attributes.extend(attributes)

    def counter(
        self, name: str, description: str, attributes: Iterable[KeyValue], value: int
    ) -> None:
        data = self._metric(name, "{token}", description, "sum")
        point = data.data_points.add(
            start_time_unix_nano=self.start, time_unix_nano=self.end, as_int=value
        )
        point.attributes.extend(attributes)
