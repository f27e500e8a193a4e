"""OTLP/gRPC export on grpc.aio to a real TraceService on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from asynctelemetry import StoreClosedError
from asynctelemetry._batching import RetryPolicy
from asynctelemetry._export import OTLPGrpcExporter, encode_calls
from tests.conftest import make_call
from tests.export.conftest import TraceServer
from tests.tls import self_signed_pem

FAST_RETRY = RetryPolicy(initial=0.01, maximum=0.05, max_attempts=6)


def _exporter(port: int, **kwargs: object) -> OTLPGrpcExporter:
    kwargs.setdefault("flush_interval", 0.01)
    return OTLPGrpcExporter(f"http://127.0.0.1:{port}", **kwargs)  # type: ignore[arg-type]


def _retry_info_trailer(seconds: float) -> tuple[str, bytes]:
    detail = any_pb2.Any()
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration())
    info.retry_delay.FromNanoseconds(int(seconds * 1e9))
    detail.Pack(info)
    status = status_pb2.Status(code=8, message="slow down", details=[detail])
    return ("grpc-status-details-bin", status.SerializeToString())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_spans_arrive_as_encoded_with_headers(trace_server: TraceServer) -> None:
    """Every call arrives once, equal to encode_calls' spans, with the auth header sent."""
    calls = [make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}") for i in range(300)]
    async with _exporter(
        trace_server.port, headers={"Authorization": "Bearer t0k"}, batch_size=128
    ) as exporter:
        await exporter.emit(calls)
        await exporter.flush(timeout=10)
        assert exporter.stats.queue.delivered == 300
    want = encode_calls(calls, service_name="asynctelemetry")
    want_spans = [s for rs in want.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert trace_server.spans == want_spans
    assert len(trace_server.requests) == 3  # batches of 128, 128, 44
    assert trace_server.metadata[0]["authorization"] == "Bearer t0k"
    resource = trace_server.requests[0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == (
        "asynctelemetry"
    )


async def test_no_thread_is_started_while_exporting(trace_server: TraceServer) -> None:
    """Exporting over gRPC runs on the event loop: the Python thread count does not change."""
    before = _thread_ids()
    async with _exporter(trace_server.port) as exporter:
        for i in range(5):
            await exporter.emit([make_call(i * 10 + j) for j in range(10)])
            await asyncio.sleep(0.01)
            assert _thread_ids() <= before  # no thread started (one ending is fine)
        await exporter.flush(timeout=10)
    assert _thread_ids() <= before  # no thread started (one ending is fine)
    assert len(trace_server.spans) == 50


async def test_unavailable_endpoint_recovers_without_loss(trace_server: TraceServer) -> None:
    """UNAVAILABLE for the first three attempts: retried with backoff, nothing lost."""
    trace_server.fail_times = 3
    async with _exporter(trace_server.port, retry=FAST_RETRY) as exporter:
        await exporter.emit([make_call(i) for i in range(200)])
        await exporter.flush(timeout=10)
        stats = exporter.stats.queue
    assert len(trace_server.spans) == 200
    assert stats.retries == 3 and stats.dropped == 0 and stats.delivered == 200


async def test_retry_info_delay_is_honoured(trace_server: TraceServer) -> None:
    """RESOURCE_EXHAUSTED with RetryInfo is retried after the delay the server asked for."""
    trace_server.fail_times = 1
    trace_server.fail_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    trace_server.fail_trailers = (_retry_info_trailer(0.3),)
    retry = RetryPolicy(initial=0.01, maximum=1.0)  # asked delays are capped at 4x maximum
    async with _exporter(trace_server.port, retry=retry) as exporter:
        started = time.monotonic()
        await exporter.emit([make_call(0)])
        await exporter.flush(timeout=10)
        elapsed = time.monotonic() - started
    assert len(trace_server.spans) == 1
    assert elapsed >= 0.3


async def test_resource_exhausted_without_retry_info_is_dropped(
    trace_server: TraceServer,
) -> None:
    """RESOURCE_EXHAUSTED without RetryInfo is not retryable: the batch is dropped, counted."""
    trace_server.fail_times = 1
    trace_server.fail_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    exporter = _exporter(trace_server.port, retry=FAST_RETRY)
    await exporter.emit([make_call(i) for i in range(5)])
    with pytest.raises(Exception, match="RESOURCE_EXHAUSTED"):
        await exporter.flush(timeout=10)
    await exporter.aclose()
    assert exporter.stats.queue.dropped_failed == 5 and exporter.stats.queue.retries == 0
    assert trace_server.attempts == 1


async def test_non_retryable_code_drops_at_once(trace_server: TraceServer) -> None:
    """INVALID_ARGUMENT drops the batch after one attempt; later batches still go through."""
    trace_server.fail_times = 1
    trace_server.fail_code = grpc.StatusCode.INVALID_ARGUMENT
    async with _exporter(trace_server.port, retry=FAST_RETRY) as exporter:
        await exporter.emit([make_call(0)])
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await exporter.flush(timeout=10)
        await exporter.emit([make_call(1)])
        await exporter.flush(timeout=10)
        assert exporter.stats.queue.dropped_failed == 1 and exporter.stats.queue.delivered == 1


async def test_partial_success_is_counted(
    trace_server: TraceServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A partial_success answer is counted in stats.rejected and logged."""
    trace_server.rejected = 2
    async with _exporter(trace_server.port) as exporter:
        await exporter.emit([make_call(i) for i in range(4)])
        await exporter.flush(timeout=10)
        assert exporter.stats.rejected == 2
    assert "too many attributes" in caplog.text


async def test_dead_endpoint_bounded_counted_and_closes_in_time() -> None:
    """Nothing listens: memory stays bounded, drops are counted, aclose keeps its deadline."""
    exporter = _exporter(_free_port(), max_queue=1000, retry=FAST_RETRY, timeout=0.5)
    for i in range(0, 5000, 100):
        await exporter.emit([make_call(j) for j in range(i, i + 100)])
        assert exporter.stats.queue.pending <= 1000
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await exporter.aclose(timeout=0.5)
    assert time.monotonic() - started < 2.0
    stats = exporter.stats.queue
    assert stats.delivered == 0 and stats.pending == 0
    assert stats.dropped_overflow >= 4000
    assert stats.dropped == stats.accepted == 5000


async def test_a_second_aclose_waits_for_the_first() -> None:
    """A concurrent aclose() returns only once the first has given up on a dead endpoint and
    closed the channel, not while calls are still being retried."""
    exporter = _exporter(_free_port(), retry=FAST_RETRY, timeout=0.5)
    await exporter.emit([make_call(i) for i in range(10)])
    first = asyncio.create_task(exporter.aclose(timeout=0.5))
    await asyncio.sleep(0)
    await exporter.aclose()
    assert first.done()
    assert exporter.stats.queue.pending == 0


async def test_burst_of_20000_from_a_tight_loop_is_not_dropped(trace_server: TraceServer) -> None:
    """The defaults absorb a 20,000-call burst emitted without yielding: nothing dropped."""
    calls = [make_call(i % 500) for i in range(20_000)]
    async with OTLPGrpcExporter(f"http://127.0.0.1:{trace_server.port}") as exporter:
        for call in calls:
            await exporter.emit([call])
        await exporter.flush(timeout=30)
        assert exporter.stats.queue.dropped == 0
    assert len(trace_server.spans) == 20_000


async def test_closed_exporter_refuses_and_close_is_idempotent(trace_server: TraceServer) -> None:
    """emit after aclose raises StoreClosedError; a second aclose is a no-op."""
    exporter = _exporter(trace_server.port)
    async with exporter:
        await exporter.emit([make_call(0)])
    await exporter.aclose()
    assert len(trace_server.spans) == 1
    with pytest.raises(StoreClosedError):
        await exporter.emit([make_call(1)])
    with pytest.raises(StoreClosedError):
        async with exporter:
            pass


@pytest.mark.parametrize(
    ("endpoint", "insecure", "want"),
    [
        pytest.param("http://h:4317", None, True, id="http"),
        pytest.param("https://h:4317", None, False, id="https"),
        pytest.param("h:4317", None, False, id="bare-tls"),
        pytest.param("h:4317", True, True, id="bare-insecure"),
    ],
)
def test_scheme_decides_tls(endpoint: str, insecure: bool | None, want: bool) -> None:
    """http is plain, https and a bare host:port use TLS unless insecure=True."""
    assert OTLPGrpcExporter(endpoint, insecure=insecure).insecure is want


def test_bad_configuration_is_a_clear_error() -> None:
    """An unknown compression or an empty endpoint is a ConfigError (a ValueError)."""
    with pytest.raises(ValueError, match="compression"):
        OTLPGrpcExporter("http://h:1", compression="zstd")
    with pytest.raises(ValueError, match="empty"):
        OTLPGrpcExporter("")


async def test_tls_channel_with_private_root() -> None:
    """https:// uses TLS; the server's certificate is checked against the given root."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    cert, key = self_signed_pem()
    server = grpc.aio.server()
    servicer = TraceServer()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    await server.start()
    try:
        exporter = OTLPGrpcExporter(
            f"https://127.0.0.1:{port}",
            credentials=grpc.ssl_channel_credentials(root_certificates=cert),
            flush_interval=0.01,
        )
        assert not exporter.insecure
        async with exporter:
            await exporter.emit([make_call(0)])
            await exporter.flush(timeout=10)
        assert len(servicer.spans) == 1
        plain = _exporter(port, retry=RetryPolicy(initial=0.01, maximum=0.02, max_attempts=2))
        await plain.emit([make_call(1)])  # plain text to a TLS port: refused, never delivered
        with pytest.raises(Exception, match="not delivered"):
            await plain.flush(timeout=10)
        await plain.aclose()
        assert len(servicer.spans) == 1
    finally:
        await server.stop(grace=None)


def _thread_ids() -> set[int | None]:
    """Idents of the live Python threads (a thread left by an earlier test may end meanwhile)."""
    return {t.ident for t in threading.enumerate()}
