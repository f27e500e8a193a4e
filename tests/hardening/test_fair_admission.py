"""Fair admission without addresses (issue 23, fault 5): a client on the attacker's own address
(127.0.0.1, as every client of a collector on the same host or in a sidecar) is served while the
attacker holds connections that stall their bodies, trickle their headers or sit idle; the
servers close the connections making the least progress to admit it, and never a request being
worked on."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
import httpx
import pytest

from asynctelemetry import AsyncCollector, HttpLimits, MemoryStore
from asynctelemetry._http_limits import GRACE
from asynctelemetry.metrics import MetricsRecorder, PrometheusExporter
from asynctelemetry.ui import Dashboard
from tests.collector.helpers import request_for
from tests.collector.test_http import GatedStore
from tests.conftest import make_call
from tests.hardening.attacks import Target, attacking

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExportResult

PB = {"Content-Type": "application/x-protobuf"}
GOOD = request_for([make_call(3)]).SerializeToString()
HEAD = (
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
    b"Content-Length: %d\r\n\r\n"
)
#: Each attack, and how many connections it opens before the honest client sends: enough to
#: fill every in-flight slot (64) or every connection (256) of the default limits.
HELD = {"slow bodies": 64, "header trickle": 300, "idle keep-alives": 300}


def sdk_export_one(endpoint: str) -> SpanExportResult:
    """One GenAI span through the OTel SDK's own OTLP/HTTP exporter with a 2 s timeout."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("honest").start_as_current_span("chat gpt-4o") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("request_id", "honest-0")
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=2)
    try:
        return exporter.export(finished.get_finished_spans())
    finally:
        exporter.shutdown()
        provider.shutdown()


async def held(tally_opened: dict[str, int], want: int) -> None:
    """Wait (at most 30 s) until the attack has opened ``want`` connections, then a moment."""
    async with asyncio.timeout(30):
        while tally_opened.get("opened", 0) < want:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)


@pytest.mark.parametrize("attack", list(HELD))
async def test_the_sdk_exporter_on_the_attackers_address_is_served(attack: str) -> None:
    """With the default limits, under each attack from 127.0.0.1, the OTel SDK exporter on
    127.0.0.1 with a 2 s timeout exports its span, and the span is stored."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        assert collector.http_port is not None
        endpoint = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        async with attacking(attack, Target(collector.endpoint, collector.http_port)) as tally:
            await held(tally.answers, HELD[attack])
            results = [await asyncio.to_thread(sdk_export_one, endpoint) for _ in range(3)]
        assert results == [SpanExportResult.SUCCESS] * 3, tally.answers
        await collector.flush()
        assert [c.call_id for c in await store.query()] == ["honest-0"]
        assert collector._http is not None
        assert collector._http.admission.shed > 0  # the attacker's connections made room


async def test_the_dashboard_serves_a_reader_on_the_attackers_address() -> None:
    """The dashboard admits by the same rule: 200 trickling connections from 127.0.0.1 do not
    keep a reader on 127.0.0.1 from its answer within 2 s."""
    async with Dashboard(MemoryStore(), port=0) as board:
        async with attacking("header trickle", Target("", board.port)) as tally:
            await held(tally.answers, 200)
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as client:
                for _ in range(3):
                    async with client.get(board.url + "api/calls") as response:
                        assert response.status == 200
                        assert (await response.json())["calls"] == []
        assert board.admission.shed > 0


@pytest.mark.parametrize("attack", ["silent connections", "header trickle"])
async def test_a_scrape_on_the_attackers_address_is_served(attack: str) -> None:
    """/metrics admits by the same rule: 200 connections from 127.0.0.1 that send nothing, or
    that trickle their headers (reconnecting when closed), against its cap of 64 do not keep
    a scrape from 127.0.0.1 from its answer within 2 s."""
    recorder = MetricsRecorder()
    recorder.record(make_call(0))
    async with PrometheusExporter(port=0, registry=recorder) as exporter:
        async with attacking(attack, Target("", exporter.port)) as tally:
            await held(tally.answers, 200)
            await asyncio.sleep(GRACE)  # every attacking connection has had its chance
            async with httpx.AsyncClient(timeout=2) as client:
                for _ in range(3):
                    answer = await client.get(exporter.url)
                    assert answer.status_code == 200, tally.answers
                    assert "asynctelemetry_requests_total" in answer.text
        assert exporter.admission.shed > 0


async def raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def closed(reader: asyncio.StreamReader) -> bytes | None:
    """What arrives before the server closes (None: a reset), or a TimeoutError if it stays open."""
    async with asyncio.timeout(2):
        try:
            return await reader.read()
        except ConnectionResetError:
            return None


async def test_the_order_of_shedding() -> None:
    """Full, the receiver closes an idle keep-alive first (politely: its answer was read), then
    the slowest unfinished request, and never a request being worked on. A full set of
    in-flight slots gives up its slowest body."""
    limits = HttpLimits(max_connections=3, max_in_flight=2, idle_timeout=5.0)
    store = GatedStore()
    async with AsyncCollector(
        store, port=0, http_port=0, http_limits=limits, max_queue=1, backpressure_timeout=5.0
    ) as collector:
        port = collector.http_port
        assert port is not None and collector._http is not None
        admission = collector._http.admission
        good = request_for([make_call(1)]).SerializeToString()
        async with httpx.AsyncClient() as client:  # one request worked on (the store waits)
            url = f"http://127.0.0.1:{port}/v1/traces"
            assert (await client.post(url, content=good, headers=PB)).status_code == 200
            working = asyncio.create_task(
                client.post(f"http://127.0.0.1:{port}/v1/traces", content=good, headers=PB)
            )
            while admission.in_flight < 1:
                await asyncio.sleep(0.01)
            idle_r, idle_w = await raw(port)  # answered once (405), then idle
            idle_w.write(b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await idle_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
            await idle_r.read(100)
            await asyncio.sleep(GRACE)  # idle long enough to go before anything else
            slow_r, slow_w = await raw(port)  # a body that has begun and stalls
            slow_w.write(HEAD % 1000 + b"\x0a")
            while admission.in_flight < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            # Full (3 connections): a newcomer closes the idle one, with a FIN, not a reset.
            new_r, new_w = await raw(port)
            assert await closed(idle_r) == b""
            # The next newcomer closes the slowest unfinished one: the newcomer that sent nothing
            # is younger (and credited), so the stalled body goes.
            newer_r, newer_w = await raw(port)
            assert await closed(slow_r) in (b"", None)
            assert not working.done()
            # Both slots: one worked on, one free; a stalled body takes it, and then a request
            # whose body arrives at once takes the stalled one's slot.
            new_w.write(HEAD % 1000 + b"\x0a")
            while admission.in_flight < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            newer_w.write(HEAD % len(good) + good)
            assert await closed(new_r) in (b"", None)
            assert admission.shed == 3
            store.gate.set()
            assert (await working).status_code == 200
            answer = await newer_r.readuntil(b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200"), answer
        for writer in (idle_w, slow_w, new_w, newer_w):
            writer.close()


async def test_caps_per_address_are_an_option() -> None:
    """Where clients have distinct addresses, max_connections_per_client still closes one
    client's connections past it at once, while another address is served."""
    limits = HttpLimits(max_connections_per_client=2)
    async with AsyncCollector(MemoryStore(), port=0, http_port=0, http_limits=limits) as collector:
        assert collector.http_port is not None and collector._http is not None
        held_open = [await raw(collector.http_port) for _ in range(2)]
        reader, writer = await raw(collector.http_port)
        assert await closed(reader) in (b"", None)
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=transport) as client:
            answer = await client.post(
                f"http://127.0.0.1:{collector.http_port}/v1/traces",
                content=request_for([make_call(2)]).SerializeToString(),
                headers=PB,
            )
        assert answer.status_code == 200
        assert collector._http.admission.refused == 1
        for _, each in [*held_open, (reader, writer)]:
            each.close()


def test_limits_default_to_no_caps_per_address() -> None:
    """The defaults tell no clients apart: caps per address are off."""
    limits = HttpLimits()
    assert limits.max_connections_per_client is None
    assert limits.max_in_flight_per_client is None


async def test_a_connection_just_answered_outlasts_a_slow_one() -> None:
    """A client that has just had its answer is the likeliest to send its next request at once:
    while an unfinished request older than GRACE is open, that goes instead (the answered
    connection stays and serves its next request)."""
    async with AsyncCollector(
        MemoryStore(), port=0, http_port=0, http_limits=HttpLimits(max_connections=2)
    ) as collector:
        port = collector.http_port
        assert port is not None and collector._http is not None
        slow_r, slow_w = await raw(port)
        slow_w.write(b"POST /v1/tr")  # headers begun, never finished
        await asyncio.sleep(GRACE)
        ask = b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n"
        kept_r, kept_w = await raw(port)
        kept_w.write(ask)
        assert (await kept_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
        await kept_r.read(100)
        _, new_w = await raw(port)
        assert await closed(slow_r) in (b"", None)
        kept_w.write(ask)
        assert (await kept_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
        assert collector._http.admission.shed == 1
        for writer in (kept_w, slow_w, new_w):
            writer.close()


async def test_a_newcomer_never_closes_a_request_just_begun_while_an_idle_one_is_open() -> None:
    """Every connection young (an attack just begun): a newcomer closes the idle one, not the
    request that has just begun (its client has had no time to send it)."""
    async with AsyncCollector(
        MemoryStore(), port=0, http_port=0, http_limits=HttpLimits(max_connections=2)
    ) as collector:
        port = collector.http_port
        assert port is not None and collector._http is not None
        idle_r, idle_w = await raw(port)
        idle_w.write(b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await idle_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
        await idle_r.read(100)
        begun_r, begun_w = await raw(port)  # connected, its request not yet sent
        await asyncio.sleep(0.05)
        _, new_w = await raw(port)
        assert await closed(idle_r) == b""
        begun_w.write(HEAD % len(GOOD) + GOOD)
        assert (await begun_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        for writer in (idle_w, begun_w, new_w):
            writer.close()
