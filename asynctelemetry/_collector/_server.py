"""AsyncCollector: an OTLP/gRPC ``TraceService`` on grpc.aio, inside the caller's event loop.

Export path: the raw request bytes are parsed (malformed → ``INVALID_ARGUMENT``), every span is
converted in one pass (:mod:`._convert`), and the calls are admitted all-or-nothing into a bounded
ingest :class:`~asynctelemetry._batching.BatchQueue` whose task hands batches to the store and the
other sinks through the collector's :class:`~asynctelemetry._pipeline.Pipeline`, which prices
the calls that arrived without a cost (the one rule) and owns flush and close order. When the
queue has no room for a request, Export waits up to ``backpressure_timeout`` seconds for it, then
answers ``UNAVAILABLE`` with a ``RetryInfo`` delay and keeps nothing, so the client's retry
neither loses nor duplicates calls. Accepted requests are also handed, unchanged, to the
forwarder when there is one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import warnings
from typing import TYPE_CHECKING, Any, Final, Self

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from .._batching import (
    BatchQueue,
    Lifecycle,
    Listens,
    QueueOwner,
    QueueSettings,
    QueueValues,
    Retryable,
    RetryPolicy,
)
from .._exceptions import ConfigError, StoreClosedError
from .._pipeline import Pipeline
from .._rows import Rows
from .._wire import RETRY_INFO_KEY, host_port, retry_info
from ._auth import BearerTokenInterceptor
from ._convert import convert_request_in_slices
from ._forward import Forwarder
from ._serving import Serving
from ._stats import CollectorCounts, CollectorStats, MalformedRequest, StoreBehind
from ._steps import KeepSpans, StepKeeper
from ._wire import LeanRequest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from .._http_limits import HttpLimits
    from .._pipeline import Sink
    from .._pricing import ModelPricing, PriceTable
    from .._record import TraceSpan
    from .._stores import CallStore
    from ._http import HttpReceiver

__all__ = ["AsyncCollector", "CollectorStats"]

SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
#: Default largest request accepted, in bytes (gRPC's own default is 4 MiB).
DEFAULT_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
_EMPTY_RESPONSE: Final = b""  # an ExportTraceServiceResponse without partial_success
#: The ingest queue unless given others: ``max_queue`` counts calls (admission), the batch is of
#: requests (8 handed to the sinks at once), ``close_timeout`` is the default ``stop()`` grace.
COLLECTOR_QUEUE: Final = QueueValues(
    max_queue=65_536, batch_size=8, flush_interval=0.01, close_timeout=2.0
)


class AsyncCollector(QueueOwner, Listens):
    """An OTLP/gRPC trace receiver that keeps the LLM calls among the spans it is sent.

    Args:
        store: where calls go (``add_many``); the collector flushes it on stop, never closes it.
        host: interface to bind; ``127.0.0.1`` keeps it local (see the docs before widening).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        price_table: prices calls that arrive without a cost (``llm.cost_usd``,
            ``gen_ai.usage.cost``): a ``PriceTable``, a dict of overrides on the default table,
            or None (``PriceTable.default()``); the pipeline's one rule, as in the tracer.
        auth_token: when set, every call must carry ``authorization: Bearer <token>``.
        tls_cert: a PEM certificate file; with ``tls_key``, the port speaks TLS only.
        tls_key: the PEM private key file of ``tls_cert``.
        max_message_bytes: larger requests are refused with ``RESOURCE_EXHAUSTED``.
        capture_content: keep prompt/completion attributes (dropped by default).
        http_port: also serve OTLP/HTTP ``POST /v1/traces`` on this port (protobuf and JSON,
            same host, token and TLS; ``http`` extra); 0 picks a free one (see
            :attr:`http_port`); None (the default) serves gRPC only.
        forward_to: upstream OTLP/gRPC endpoint that receives every accepted request unchanged.
        forward_headers: gRPC metadata sent with every forwarded request (the upstream's own
            auth, e.g. ``{"authorization": "Bearer …"}``); keys are lowercased.
        metrics: a sink, e.g. a ``MetricsRecorder``, also given every call (flushed on stop,
            not closed).
        sinks: more :class:`Sink` objects given every call (closed with the collector).
        max_queue: most converted calls waiting for the store (65,536).
        backpressure_timeout: seconds Export waits for queue room before answering UNAVAILABLE.
        retry_delay: seconds a refused client is asked to wait (gRPC ``RetryInfo``; HTTP
            ``Retry-After``, rounded up to whole seconds).
        http_limits: the OTLP/HTTP receiver's deadlines and caps on connections and requests
            in flight, in all and per client (:class:`~asynctelemetry.HttpLimits`; its
            defaults when None).
        queue: the ingest queue's settings together, a :class:`~asynctelemetry.QueueSettings`:
            ``max_queue`` (calls), ``batch_size`` (requests handed to the sinks at once, 8),
            ``flush_interval`` (0.01 s) and ``close_timeout`` (the default grace of
            :meth:`stop`, 2 s); ``max_queue=`` given beside it must agree (``TypeError``).
        keep_spans: which spans that are not LLM calls are kept as steps
            (:class:`~asynctelemetry.TraceSpan`, handed to the sinks that take them): "ai"
            (agent, tool, workflow, retrieval… spans of the GenAI, OpenInference and
            OpenLLMetry conventions, and the root span of their trace), "all", or "llm" (none).
            At most 10,000 steps per trace are kept; the rest are counted
            (``stats.steps_dropped``).
    """

    def __init__(
        self,
        store: CallStore,
        *,
        host: str = "127.0.0.1",
        port: int = 4317,
        price_table: PriceTable | Mapping[str, ModelPricing] | None = None,
        auth_token: str | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        capture_content: bool = False,
        http_port: int | None = None,
        forward_to: str | None = None,
        forward_headers: Mapping[str, str] | None = None,
        metrics: Sink | None = None,
        sinks: Sequence[Sink] = (),
        max_queue: int | None = None,
        backpressure_timeout: float = 1.0,
        retry_delay: float = 0.5,
        http_limits: HttpLimits | None = None,
        queue: QueueSettings | None = None,
        keep_spans: KeepSpans = "ai",
    ) -> None:
        self._serving = Serving.checked(
            host=host,
            port=port,
            http_port=http_port,
            tls=(tls_cert, tls_key),
            auth_token=auth_token,
            max_message_bytes=max_message_bytes,
            backpressure_timeout=backpressure_timeout,
            retry_delay=retry_delay,
            http_limits=http_limits,
        )
        try:
            self._steps = StepKeeper(keep_spans)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        given = QueueSettings(max_queue=max_queue)
        self._queue_values = COLLECTOR_QUEUE.resolve("AsyncCollector", given, queue)
        self.store = store
        self.host = host
        self.capture_content = capture_content
        # The store first: its failure makes the ingest queue retry the batch (nothing the
        # client was told is kept is lost); the store and metrics are lent, ``sinks`` owned.
        self.pipeline = Pipeline(
            [store, *([metrics] if metrics is not None else []), *sinks],
            price_table=price_table,
            owned=sinks,
            primary=store,
        )
        self._queue = self._ingest_queue()
        self._queued_calls = 0  # calls accepted and not yet handed to the sinks
        self._room = asyncio.Event()
        # One slice of conversion runs at a time, requests taking turns slice by slice: the
        # loop's other tasks wait for one slice at most, not one slice of every request in
        # flight, and a small request is never stuck behind the whole of a large one.
        self._converting = asyncio.Lock()
        self._forwarder = _forwarder(forward_to, forward_headers)
        self._counts = CollectorCounts()  # live; ``stats`` hands out snapshots
        self._retry_metadata = ((RETRY_INFO_KEY, retry_info(retry_delay)),)
        self._http: HttpReceiver | None = None
        self._server: grpc.aio.Server | None = None
        self._port: int | None = None
        self._life = Lifecycle("AsyncCollector")

    @property
    def keep_spans(self) -> KeepSpans:
        """Which spans that are not LLM calls are kept as steps: "ai", "all" or "llm"."""
        return self._steps.mode

    def _ingest_queue(self) -> BatchQueue[Rows]:
        """The bounded queue between Export and the pipeline: one item per request (its calls),
        so admission is one append whatever the request size; retried for ever (the store must
        not lose what a client was told is kept)."""
        return BatchQueue.of(
            self._deliver,
            self._queue_values,
            overflow="wait",
            retry=RetryPolicy(max_attempts=None),
            name="collector ingest",
        )

    # -- lifetime -------------------------------------------------------------------------------
    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counters: spans received, LLM calls, ignored and rejected spans,
        defects by kind, and the ingest and forwarding queues (see :class:`CollectorStats`)."""
        forwarder = self._forwarder
        snapshot = self._counts.snapshot(
            self._queue.stats, forwarder.stats if forwarder is not None else None
        )
        keeper = self._steps
        return dataclasses.replace(
            snapshot, steps_dropped=keeper.dropped, roots_unclaimed=keeper.roots_unclaimed
        )

    @property
    def port(self) -> int:
        """The bound port (the chosen one when created with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the collector is not started")
        return self._port

    @property
    def http_port(self) -> int | None:
        """The bound OTLP/HTTP port (the chosen one for ``http_port=0``); None when not served.

        Raises:
            RuntimeError: the collector was asked to serve OTLP/HTTP and is not started.
        """
        if self._serving.http_port is None:
            return None
        if self._http is None:
            raise RuntimeError("the collector is not started")
        return self._http.port

    @property
    def endpoint(self) -> str:
        """``host:port`` for OTLP exporters."""
        return host_port(self.host, self.port)

    async def start(self) -> None:
        """Bind and serve. Idempotent while running; a stopped collector cannot start again.

        Raises:
            StoreClosedError: the collector was stopped.
            ConfigError: the address cannot be bound or the TLS files cannot be read.
        """
        if self._life.is_open:
            return
        if self._life.ended:
            raise StoreClosedError("AsyncCollector is stopped; create a new one")
        # The price data loads on its first lookup (about a second of imports): in a thread now
        # rather than on the loop inside the first request.
        await self.pipeline.warm()
        interceptors = []
        serving = self._serving
        if serving.auth_token is not None:
            interceptors.append(BearerTokenInterceptor(serving.auth_token, self._count_denied))
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", serving.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),)
        )
        address = host_port(self.host, serving.port)
        try:
            if serving.tls is not None:
                cert, key = serving.tls
                try:
                    cert_pem = await asyncio.to_thread(cert.read_bytes)
                    key_pem = await asyncio.to_thread(key.read_bytes)
                except OSError as exc:
                    raise ConfigError(f"cannot read the TLS files: {exc}") from exc
                credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)])
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ConfigError(f"cannot bind {address}: {exc}") from exc
        if not port:
            raise ConfigError(f"cannot bind {address}")
        await server.start()
        if serving.http_port is not None:
            from ._http import HttpReceiver  # the ``http`` extra (aiohttp), only when asked for

            try:
                http = HttpReceiver(
                    self._ingest,
                    self._counts,
                    host=self.host,
                    port=serving.http_port,
                    max_message_bytes=serving.max_message_bytes,
                    auth_token=serving.auth_token,
                    tls=serving.tls,
                    retry_delay=serving.retry_delay,
                    limits=serving.http_limits,
                )
                await http.start()
            except BaseException:
                await server.stop(None)
                raise
            self._http = http
        self._server = server
        self._port = port
        self._queue.start()
        if self._forwarder is not None:
            self._forwarder.start()
        self._life.opened()

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving, finish in-flight exports and deliver queued calls. Idempotent.

        Waits up to ``grace`` seconds for running Export calls (gRPC and HTTP), then up to
        ``grace`` seconds more for the queued calls to reach the store (and the forwarder's
        upstream); what is left then is counted in ``stats.ingest.dropped_on_close``. Finally
        closes the pipeline: flushes the store and the metrics, closes ``sinks``. ``grace``
        defaults to the queue's ``close_timeout`` (2 s unless given).
        """
        if self._life.is_open:
            grace = self.close_timeout if grace is None else grace
            await self._life.close(lambda: self._stop(grace))
        else:  # never started: nothing to stop, but it cannot start any more
            await self._life.close()

    async def _stop(self, grace: float) -> None:
        try:
            # Both receivers stop accepting and finish their requests in the same grace period.
            http = self._http
            http_stopped = asyncio.ensure_future(http.stop(grace)) if http is not None else None
            try:
                if self._server is not None:
                    await self._server.stop(grace)
            finally:
                if http_stopped is not None:
                    await http_stopped
        finally:
            self._steps.let_go_all()  # no request left to claim them: counted, not kept
            try:
                await self._queue.aclose(timeout=grace)
            finally:
                try:
                    if self._forwarder is not None:
                        await self._forwarder.aclose(timeout=grace)
                finally:
                    await self.pipeline.aclose()

    async def aclose(self) -> None:
        """The same as :meth:`stop` with the default grace (``close_timeout``)."""
        await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    def __del__(self, _warn: Any = warnings.warn) -> None:
        life = getattr(self, "_life", None)
        if life is not None and life.is_open:
            _warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1)

    def __repr__(self) -> str:
        where = self.endpoint if self._port is not None else f"{self.host}:{self._serving.port}"
        return f"AsyncCollector({where}, {self._life.state.value})"

    async def flush(self) -> None:
        """Return once every call accepted so far is in the store (and the store flushed)."""
        await self._queue.flush()
        await self.pipeline.flush()

    # -- the Export RPC -------------------------------------------------------------------------
    def _count_denied(self) -> None:
        self._counts.unauthenticated += 1

    async def _export(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """The gRPC Export: :meth:`_ingest`, with its refusals mapped to gRPC statuses."""
        try:
            return await self._ingest(raw)
        except MalformedRequest:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "not a valid ExportTraceServiceRequest"
            )
        except StoreBehind:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "the collector's store is behind; retry later",
                trailing_metadata=self._retry_metadata,
            )
        raise AssertionError("unreachable")  # pragma: no cover - abort() raises

    async def _ingest(self, raw: bytes) -> bytes:
        """Take one serialized ``ExportTraceServiceRequest``; the one path of every transport.

        Returns the serialized ``ExportTraceServiceResponse`` (with ``partial_success`` when
        spans were rejected).

        Raises:
            MalformedRequest: ``raw`` is not a valid request (nothing was kept).
            StoreBehind: the store cannot keep up; nothing was kept and the client should retry.
        """
        stats = self._counts
        try:
            request = LeanRequest.FromString(raw)
        except DecodeError:
            stats.malformed_requests += 1
            raise MalformedRequest from None
        defects: dict[str, int] = {}
        steps = self._steps.request()
        calls, received, ignored, rejected = await convert_request_in_slices(
            request, self.capture_content, defects, turn=self._converting, steps=steps
        )
        kept = steps.finish() if steps is not None else []
        if kept:
            calls = _WithSteps(calls.rows, kept)
        if (calls or kept) and not await self._admit(calls):
            stats.refused_requests += 1
            raise StoreBehind
        stats.requests += 1
        stats.received_spans += received
        stats.llm_calls += len(calls)
        stats.steps += len(kept)
        stats.ignored_spans += ignored - len(kept)
        if defects:
            counts = stats.defects
            for kind, count in defects.items():
                counts[kind] = counts.get(kind, 0) + count
        if self._forwarder is not None:
            self._forwarder.put(raw)
        if not rejected:
            return _EMPTY_RESPONSE
        stats.rejected_spans += rejected
        response = ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(
                rejected_spans=rejected,
                error_message=f"{rejected} LLM span(s) named no model and were not kept",
            )
        )
        return response.SerializeToString()  # type: ignore[no-any-return]

    async def _admit(self, calls: Rows) -> bool:
        """Queue every call or none: wait up to ``backpressure_timeout`` for room.

        A request larger than ``max_queue`` is admitted when the queue is empty.
        """
        need = max(1, len(calls) + len(getattr(calls, "steps", ())))
        if self._queued_calls and self._queued_calls + need > self.max_queue:
            try:
                async with asyncio.timeout(self._serving.backpressure_timeout):
                    while self._queued_calls and self._queued_calls + need > self.max_queue:
                        self._room.clear()
                        await self._room.wait()
            except TimeoutError:
                return False
        self._queued_calls += need
        if not self._queue.put_nowait(calls):  # cannot happen: items never outnumber calls
            await self._queue.put(calls)
        return True

    async def _deliver(self, batch: list[Rows]) -> None:
        """The ingest queue's handler: hand a batch of requests' calls to every sink (as rows:
        the stores keep them as they are, other sinks read records)."""
        calls = Rows.join([Rows(b.rows) if isinstance(b, _WithSteps) else b for b in batch])
        steps = [step for b in batch if isinstance(b, _WithSteps) for step in b.steps]
        held = _held(batch)
        skipped = self.pipeline.pricing_skipped
        try:
            if calls:
                await self.pipeline.emit(calls)
            if steps:
                await self.pipeline.emit_spans(steps)
            self._counts.stored += len(calls)
            skipped = self.pipeline.pricing_skipped - skipped
            if skipped:  # calls left unpriced: the batch had resolved its share of new names
                defects = self._counts.defects
                defects["pricing_skipped"] = defects.get("pricing_skipped", 0) + skipped
        except Retryable:
            raise  # the same batch is tried again: its calls are still queued
        except BaseException:
            self._release(held)
            raise
        self._release(held)

    def _release(self, count: int) -> None:
        self._queued_calls -= count
        self._room.set()


class _WithSteps(Rows):
    """A request's calls (rows) and the steps kept from it, queued together."""

    __slots__ = ("steps",)

    def __init__(self, rows: list[Any], steps: list[TraceSpan]) -> None:
        super().__init__(rows)
        self.steps = steps


def _held(batch: list[Rows]) -> int:
    """Room the requests of a batch took in the ingest queue (as :meth:`_admit` counted)."""
    return sum(max(1, len(b) + len(getattr(b, "steps", ()))) for b in batch)


def _forwarder(forward_to: str | None, headers: Mapping[str, str] | None) -> Forwarder | None:
    """The forwarder ``forward_to`` asks for, sending ``headers`` (lowercased) upstream."""
    if not forward_to:
        if headers:
            raise ConfigError("forward_headers needs forward_to")
        return None
    return Forwarder(
        forward_to,
        metadata=[(key.lower(), value) for key, value in headers.items()] if headers else (),
    )
