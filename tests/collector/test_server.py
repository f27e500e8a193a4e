"""AsyncCollector over real gRPC: export, bad input, limits, auth, TLS, lifecycle, uvloop."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from asynctelemetry import AsyncCollector, ConfigError, LLMCall, MemoryStore, StoreClosedError
from asynctelemetry._collector._convert import convert_request
from tests.conftest import make_call
from tests.tls import self_signed_files

from .helpers import export, llm_span, request_for, request_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def traced(i: int, **fields: object) -> LLMCall:
    """A call as the tracer makes it: with trace and span ids."""
    return make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", **fields)


async def test_export_stores_every_call_and_counts() -> None:
    """Calls sent by a grpc.aio client land in the store, equal to what was sent."""
    store = MemoryStore(1000)
    calls = [traced(i, service_name="app") for i in range(50)]
    async with AsyncCollector(store, port=0) as collector:
        response = await export(collector.endpoint, request_for(calls))
        await collector.flush()
        assert not response.HasField("partial_success")
        stored = await store.query()
    assert [c.model_dump(exclude={"source"}) for c in stored] == [
        c.model_dump(exclude={"source"}) for c in calls
    ]
    assert {c.source for c in stored} == {"collector"}
    stats = collector.stats
    assert (stats.requests, stats.received_spans, stats.llm_calls, stats.stored) == (1, 50, 50, 50)


async def test_non_llm_and_rejected_spans_partial_success() -> None:
    """Non-LLM spans are ignored; LLM spans without a model are rejected in partial_success."""
    spans = [
        llm_span({"gen_ai.request.model": "gpt-4o"}),
        llm_span({"http.method": "GET"}),
        llm_span({"gen_ai.operation.name": "chat"}),
        llm_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": ""}),
    ]
    store = MemoryStore()
    # "llm": the HTTP span (the root of a trace with a call) is not kept as a step either.
    async with AsyncCollector(store, port=0, keep_spans="llm") as collector:
        response = await export(collector.endpoint, request_of(spans))
        await collector.flush()
    assert response.partial_success.rejected_spans == 2
    assert "no model" in response.partial_success.error_message
    assert len(store) == 1
    stats = collector.stats
    assert (stats.received_spans, stats.ignored_spans, stats.rejected_spans) == (4, 1, 2)
    assert stats.defects == {"no_model": 2}


async def test_malformed_request_gets_error_and_server_keeps_serving() -> None:
    """Bytes that are not an ExportTraceServiceRequest get INVALID_ARGUMENT; later ones work."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(collector.endpoint, b"\x0a\xff\xff\xff\xff\x0f garbage")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await export(collector.endpoint, request_for([traced(1)]))
        await collector.flush()
    assert collector.stats.malformed_requests == 1
    assert len(store) == 1


async def test_oversized_request_is_resource_exhausted() -> None:
    """A request over max_message_bytes is refused with RESOURCE_EXHAUSTED and nothing kept."""
    store = MemoryStore()
    big = request_for([traced(i, attributes={"pad": "x" * 1000}) for i in range(10)])
    async with AsyncCollector(store, port=0, max_message_bytes=4096) as collector:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(collector.endpoint, big)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await export(collector.endpoint, request_for([traced(1)]))
        await collector.flush()
    assert len(store) == 1


async def test_bearer_token_auth() -> None:
    """Without the right bearer token calls get UNAUTHENTICATED; with it they are stored."""
    store = MemoryStore()
    request = request_for([traced(1)])
    async with AsyncCollector(store, port=0, auth_token="s3cret-token") as collector:
        for metadata in (
            None,
            (("authorization", "Bearer wrong"),),
            (("authorization", "s3cret-token"),),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await export(collector.endpoint, request, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "s3cret" not in (caught.value.details() or "")
        await export(
            collector.endpoint, request, metadata=(("authorization", "Bearer s3cret-token"),)
        )
        await collector.flush()
    assert collector.stats.unauthenticated == 3
    assert len(store) == 1


async def test_tls_with_self_signed_certificate(tmp_path: Path) -> None:
    """With cert and key the port speaks TLS: a trusting client is served, plaintext is not."""
    cert_path, key_path, cert_pem = self_signed_files(tmp_path)
    store = MemoryStore()
    credentials = grpc.ssl_channel_credentials(root_certificates=cert_pem)
    async with AsyncCollector(store, port=0, tls_cert=cert_path, tls_key=key_path) as collector:
        await export(
            f"localhost:{collector.port}",
            request_for([traced(1)]),
            credentials=credentials,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(collector.endpoint, request_for([traced(2)]))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await collector.flush()
    assert [c.call_id for c in await store.query()] == [traced(1).call_id]


async def test_lifecycle() -> None:
    """Binds 127.0.0.1 by default; start is idempotent; stop is idempotent; no restart."""
    collector = AsyncCollector(MemoryStore(), port=0)
    with pytest.raises(RuntimeError):
        _ = collector.port
    await collector.start()
    await collector.start()
    assert collector.host == "127.0.0.1" and collector.port > 0
    with pytest.raises(ConfigError):  # the port is taken
        await AsyncCollector(MemoryStore(), port=collector.port).start()
    await collector.stop()
    await collector.stop()
    assert not collector.is_running
    with pytest.raises(StoreClosedError):
        await collector.start()
    with pytest.raises(ConfigError):
        AsyncCollector(MemoryStore(), tls_cert="cert.pem")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"host": ""}, "host must name an interface", id="empty-host"),
        pytest.param({"backpressure_timeout": -1}, "backpressure_timeout", id="negative-wait"),
        pytest.param({"retry_delay": float("nan")}, "retry_delay", id="nan-delay"),
        pytest.param({"retry_delay": float("inf")}, "retry_delay", id="inf-delay"),
        pytest.param({"forward_headers": {"a": "b"}}, "forward_to", id="headers-alone"),
        pytest.param({"port": "80"}, "port must be an int", id="text-port"),
        pytest.param({"port": 70000}, "port must be in", id="port-range"),
        pytest.param({"max_queue": 1.5}, "max_queue must be an int", id="float-queue"),
        pytest.param({"max_message_bytes": 100}, "max_message_bytes", id="tiny-messages"),
    ],
)
def test_bad_configuration_is_a_config_error(arguments: dict[str, Any], message: str) -> None:
    """Arguments that cannot work raise ConfigError at construction, not at start or later."""
    with pytest.raises(ConfigError, match=message):
        AsyncCollector(MemoryStore(), **arguments)


async def test_stop_drains_accepted_calls_into_the_store() -> None:
    """Calls accepted just before stop() reach the store; the store is flushed, not closed."""

    class Slow(MemoryStore):
        emit_nowait = None  # writes are awaited, as in a store doing I/O

        async def add_many(self, calls: Sequence[LLMCall]) -> None:
            await asyncio.sleep(0.05)
            await super().add_many(calls)

    store = Slow(10_000)
    collector = AsyncCollector(store, port=0)
    await collector.start()
    for chunk in range(5):
        await export(collector.endpoint, request_for([traced(chunk * 100 + i) for i in range(100)]))
    await collector.stop(grace=5.0)
    assert len(store) == 500
    await store.add(traced(9999))  # still open


async def test_metrics_sink_receives_the_same_calls() -> None:
    """metrics= and sinks= get every call the store gets, through one pipeline; the collector
    closes its sinks= and only flushes the metrics lent to it."""

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[LLMCall] = []
            self.closed = False

        async def emit(self, calls: Sequence[LLMCall]) -> None:
            self.calls.extend(calls)

        async def flush(self) -> None:
            pass

        async def aclose(self) -> None:
            self.closed = True

    recorder, extra = Recorder(), Recorder()
    store = MemoryStore()
    async with AsyncCollector(store, port=0, metrics=recorder, sinks=[extra]) as collector:
        assert collector.pipeline.sinks == (store, recorder, extra)
        await export(collector.endpoint, request_for([traced(i) for i in range(7)]))
    assert [c.call_id for c in recorder.calls] == [c.call_id for c in await store.query()]
    assert [c.call_id for c in extra.calls] == [c.call_id for c in recorder.calls]
    assert len(recorder.calls) == 7
    assert extra.closed and not recorder.closed  # sinks= are the collector's; metrics= is lent


def test_runs_under_uvloop() -> None:
    """The collector serves and stores when the event loop is uvloop's."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[int, str]:
        store = MemoryStore()
        async with AsyncCollector(store, port=0) as collector:
            await export(collector.endpoint, request_for([traced(i) for i in range(20)]))
            await collector.flush()
        return len(store), type(asyncio.get_running_loop()).__module__

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        count, loop_module = runner.run(main())
    assert count == 20
    assert loop_module.startswith("uvloop")


def test_convert_request_counts_without_a_server() -> None:
    """convert_request, the Export path's core, reports received/ignored/rejected counts."""
    request = request_of([llm_span({"gen_ai.request.model": "m"}), llm_span({"x": 1})])
    calls, received, ignored, rejected = convert_request(request, False, {})
    assert (len(calls), received, ignored, rejected) == (1, 2, 1, 0)


async def test_a_large_request_gives_the_loop_back_while_it_is_converted() -> None:
    """A request of 1,024 spans is converted in slices of at most SLICE_UNITS attributes: a
    task beside the collector runs between slices instead of waiting for the whole request,
    over real gRPC."""
    from asynctelemetry._collector._convert import SLICE_UNITS

    calls = [traced(i, service_name="app") for i in range(1024)]
    request = request_for(calls)
    store = MemoryStore(2048)
    ticks: list[int] = []
    async with AsyncCollector(store, port=0, max_message_bytes=16 << 20) as collector:
        converting = asyncio.Event()

        async def ticker() -> None:
            await converting.wait()
            while True:
                ticks.append(collector.stats.llm_calls)
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        original = collector._ingest

        async def ingest(raw: bytes) -> bytes:
            converting.set()
            await asyncio.sleep(0)  # the ticker starts looping
            ticks.clear()
            result = await original(raw)
            task.cancel()
            return result

        collector._ingest = ingest  # type: ignore[method-assign]
        await export(collector.endpoint, request)
        await collector.flush()
    assert await store.count() == 1024
    # The ticker ran once per slice while no call of the request was counted yet.
    attributes = len(request.resource_spans[0].scope_spans[0].spans[0].attributes)
    assert ticks.count(0) >= 1024 * (attributes + 1) // SLICE_UNITS - 1


async def test_concurrent_requests_are_converted_one_at_a_time() -> None:
    """Four large requests arriving together take turns slice by slice, one slice running at a
    time, so a task beside the collector waits for one slice, not one slice of every request."""
    from asynctelemetry._collector._convert import SLICE_UNITS

    raws = [
        request_for(
            [traced(r * 1000 + i, service_name="app") for i in range(512)]
        ).SerializeToString()
        for r in range(4)
    ]
    store = MemoryStore(4096)
    async with AsyncCollector(store, port=0) as collector:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await asyncio.gather(*(collector._ingest(raw) for raw in raws))
        done = True
        await task
        await collector.flush()
    assert await store.count() == 4 * 512
    # Slices running back to back, the ticker would run once per round of four slices.
    attributes = len(
        request_for([traced(0, service_name="app")])
        .resource_spans[0]
        .scope_spans[0]
        .spans[0]
        .attributes
    )
    assert ticks >= 4 * 512 * (attributes + 1) // SLICE_UNITS
