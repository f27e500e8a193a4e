"""Slow and greedy OTLP/HTTP clients: header deadline, body stall timeout, the optional caps per
client address on connections and in-flight slots, and per-connection errors logged once with a
count (fair admission without addresses, the default: ``test_fair_admission.py``)."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
import pytest

from asynctelemetry import AsyncCollector, ConfigError, HttpLimits, MemoryStore
from tests.collector.helpers import request_for
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

GOOD = request_for([make_call(1)]).SerializeToString()
PB = {"Content-Type": "application/x-protobuf"}
#: Another loopback address: a second client, as the receiver tells clients apart.
OTHER = "127.0.0.2"
HEAD = (
    b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
    b"Content-Length: %d\r\n\r\n"
)


#: Small limits, caps per address included.
LIMITS = HttpLimits(
    header_timeout=0.5,
    idle_timeout=0.5,
    read_timeout=5.0,
    max_connections=8,
    max_connections_per_client=3,
    max_in_flight=6,
    max_in_flight_per_client=2,
)


@pytest.fixture
async def collector() -> AsyncIterator[AsyncCollector]:
    """A collector with :data:`LIMITS`, serving OTLP/HTTP."""
    async with AsyncCollector(MemoryStore(), port=0, http_port=0, http_limits=LIMITS) as served:
        yield served


async def connect(
    collector: AsyncCollector, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to the OTLP/HTTP port from ``source``."""
    port = collector.http_port
    assert port is not None
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sends until it closes the connection (bounded: the test's timeout); a
    reset (the server closed while the client was still sending) reads as nothing."""
    async with asyncio.timeout(20):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


async def post_from(collector: AsyncCollector, source: str) -> int:
    """Status of a well-formed export sent from ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=20) as client:
        answer = await client.post(
            f"http://127.0.0.1:{collector.http_port}/v1/traces", content=GOOD, headers=PB
        )
    return answer.status_code


async def test_headers_trickled_past_the_deadline_close_the_connection(
    collector: AsyncCollector,
) -> None:
    """A client sending its headers a byte at a time is closed at the header deadline, with
    no answer and no request counted."""
    reader, writer = await connect(collector)
    head = HEAD % 10

    async def trickle() -> None:
        for byte in head[:-4]:
            writer.write(bytes((byte,)))
            await asyncio.sleep(0.05)

    sending = asyncio.create_task(trickle())
    assert await closed_by_server(reader) == b""
    sending.cancel()
    writer.close()
    assert collector.stats.requests == 0 and not collector.stats.http_responses


async def test_a_stalled_body_gets_408(collector: AsyncCollector) -> None:
    """A body that stops arriving for idle_timeout is answered 408 and its slot freed."""
    reader, writer = await connect(collector)
    writer.write(HEAD % len(GOOD) + GOOD[:5])
    answer = await closed_by_server(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"stalled" in answer
    assert collector._http is not None and collector._http.admission.in_flight == 0


async def test_connections_are_capped_per_client_and_in_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client's connections past max_connections_per_client are closed at once; another
    client still gets through; past max_connections a newcomer is admitted by closing the
    connection making the least progress (the oldest of those that sent nothing); nothing is
    logged for the closed connections (no failing handler task each)."""
    limits = replace(LIMITS, header_timeout=30.0)  # no connection closed for its silence
    async with AsyncCollector(MemoryStore(), port=0, http_port=0, http_limits=limits) as collector:
        await capped(collector)
    await asyncio.sleep(0.1)
    gc.collect()  # a failed task that nobody awaited is reported when it is collected
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


async def capped(collector: AsyncCollector) -> None:
    held = [await connect(collector) for _ in range(3)]
    reader, writer = await connect(collector)
    assert await closed_by_server(reader) == b""
    writer.close()
    assert await post_from(collector, OTHER) == 200
    more = [await connect(collector, f"127.0.0.{i}") for i in (3, 3, 3, 4, 4)]
    newcomer = await connect(collector, "127.0.0.5")
    assert await closed_by_server(held[0][0]) == b""
    assert collector._http is not None
    assert (collector._http.admission.refused, collector._http.admission.shed) == (1, 1)
    for _, each in [*held, *more, newcomer]:
        each.close()


async def test_in_flight_slots_are_capped_per_client() -> None:
    """Two slow bodies from one client hold its two slots: its third request gets 429 while
    another client's request is served."""
    limits = replace(LIMITS, idle_timeout=30.0)  # the slow bodies keep their slots however slow
    async with AsyncCollector(MemoryStore(), port=0, http_port=0, http_limits=limits) as collector:
        await slots_capped(collector)


async def slots_capped(collector: AsyncCollector) -> None:
    slow = []
    for _ in range(2):
        reader, writer = await connect(collector)
        writer.write(HEAD % len(GOOD) + GOOD[:5])
        slow.append((reader, writer))
    assert collector._http is not None
    while collector._http.admission.in_flight < 2:
        await asyncio.sleep(0.01)
    assert await post_from(collector, "127.0.0.1") == 429
    assert await post_from(collector, OTHER) == 200
    for _, writer in slow:
        writer.close()


async def test_repeated_connection_errors_are_logged_once(
    collector: AsyncCollector, caplog: pytest.LogCaptureFixture
) -> None:
    """Forty connections sending the same bad chunked body give one log line, no traceback;
    the repeats are counted."""
    bad = (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-protobuf\r\n\r\nzz\r\n"
    )
    caplog.set_level(logging.DEBUG)
    for _ in range(40):
        reader, writer = await connect(collector)
        writer.write(bad)
        await closed_by_server(reader)
        writer.close()
    assert collector._http is not None
    records = [r for r in caplog.records if "OTLP/HTTP" in r.getMessage()]
    errors = [r for r in records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "\n" not in errors[0].getMessage()
    assert sum(collector._http.log.total.values()) == 40


@pytest.mark.parametrize(
    "fields",
    [
        {"header_timeout": 0},
        {"idle_timeout": float("inf")},
        {"read_timeout": -1},
        {"max_connections": 0},
        {"max_in_flight_per_client": 1.5},
    ],
)
def test_limits_that_cannot_work_are_refused(fields: dict[str, float]) -> None:
    """Zero, negative or infinite timeouts and caps that are not ints >= 1 are ConfigErrors."""
    with pytest.raises(ConfigError):
        HttpLimits(**fields)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        AsyncCollector(MemoryStore(), http_limits={"max_connections": 1})  # type: ignore[arg-type]
