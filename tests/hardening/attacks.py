"""Attacks on a running collector, shared by ``test_probes.py`` and ``bench_attacks.py``.

Each attack is a blocking function run in its own thread until ``stop`` is set, as a client on
another machine would run: payloads are built once before it starts, so the attacker's own CPU
work does not count against the collector. A :class:`Victim` is the well-behaved client: small
OTLP/HTTP protobuf exports from the attacker's own address (``127.0.0.1``, as every client of a
collector on the same host or in a sidecar: the receiver cannot tell them apart), timed from the
collector's own event loop, beside a ticker measuring that loop's lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import httpx
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.helpers import EXPORT, key_values, request_for, request_of
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

START = 1_767_225_600_000_000_000
#: The victim's address: the attacker's own.
VICTIM_ADDRESS = "127.0.0.1"


@dataclass
class Target:
    """Where the collector listens."""

    grpc_endpoint: str
    http_port: int
    metrics_port: int | None = None


@dataclass
class Tally:
    """What an attack's requests got back."""

    sent: int = 0
    answers: dict[str, int] = field(default_factory=dict)

    def count(self, answer: object) -> None:
        """Count one answer (a status code or a gRPC status name)."""
        self.sent += 1
        key = str(answer)
        self.answers[key] = self.answers.get(key, 0) + 1


def _span(i: int, attributes: dict[str, object]) -> Span:
    return Span(
        trace_id=(i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        start_time_unix_nano=START,
        end_time_unix_nano=START + 250_000_000,
        attributes=key_values(attributes),
    )


def _grpc_flood(payloads: list[bytes]) -> Callable[[Target, threading.Event, Tally], None]:
    """An attack sending ``payloads`` in turn over OTLP/gRPC, one request at a time."""

    def attack(target: Target, stop: threading.Event, tally: Tally) -> None:
        with grpc.insecure_channel(
            target.grpc_endpoint,
            options=[("grpc.max_send_message_length", 64 << 20)],
        ) as channel:
            export = channel.unary_unary(EXPORT)
            i = 0
            while not stop.is_set():
                try:
                    export(payloads[i % len(payloads)], timeout=30)
                    tally.count("OK")
                except grpc.RpcError as exc:
                    tally.count(exc.code().name)
                i += 1

    return attack


def _http_flood(
    body: bytes, headers: dict[str, str]
) -> Callable[[Target, threading.Event, Tally], None]:
    """An attack posting ``body`` over OTLP/HTTP, one request at a time."""

    def attack(target: Target, stop: threading.Event, tally: Tally) -> None:
        url = f"http://127.0.0.1:{target.http_port}/v1/traces"
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    tally.count(client.post(url, content=body, headers=headers).status_code)
                except httpx.HTTPError as exc:
                    tally.count(type(exc).__name__)
                    stop.wait(0.05)

    return attack


@functools.cache
def wide_spans() -> Callable[[Target, threading.Event, Tally], None]:
    """Spans of 2,000 unique attributes each, 24 to a request (about 2 MB)."""
    payloads = []
    for r in range(1):
        spans = [
            _span(
                r * 100 + i,
                {"gen_ai.request.model": "gpt-4o"}
                | {f"wide.{r}.{i}.{j}": f"value-{j}" for j in range(2000)},
            )
            for i in range(24)
        ]
        payloads.append(request_of(spans).SerializeToString())
    return _grpc_flood(payloads)


@functools.cache
def huge_json() -> Callable[[Target, threading.Event, Tally], None]:
    """One OTLP/JSON body of ~4 MB: 2,500 spans of 21 attributes."""
    spans = [
        {
            "spanId": f"{i + 1:016x}",
            "startTimeUnixNano": str(START),
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]
            + [{"key": f"k{j}", "value": {"stringValue": "v" * 40}} for j in range(20)],
        }
        for i in range(2500)
    ]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    return _http_flood(body, {"Content-Type": "application/json"})


@functools.cache
def deep_values() -> Callable[[Target, threading.Event, Tally], None]:
    """Attribute values nested 20,000 arrays deep, in 20 spans per request."""
    value = b"\x0a\x01x"
    for _ in range(20_000):
        item = b"\x0a" + _varint(len(value)) + value
        value = b"\x2a" + _varint(len(item)) + item
    deep = b"\x0a\x04deep\x12" + _varint(len(value)) + value
    request = request_of([_span(i, {"gen_ai.request.model": "gpt-4o"}) for i in range(20)])
    from asynctelemetry._collector._wire import LeanRequest

    lean = LeanRequest.FromString(request.SerializeToString())
    for span in lean.resource_spans[0].scope_spans[0].spans:
        span.attributes.append(deep)
    return _grpc_flood([lean.SerializeToString()])


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 127:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _head(length: int) -> bytes:
    return (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def _hold(
    connections: int,
    first: Callable[[socket.socket], None],
    tend: Callable[[socket.socket, int], None],
    pause: float,
) -> Callable[[Target, threading.Event, Tally], None]:
    """An attack holding ``connections`` connections to the OTLP/HTTP port: each is sent
    ``first`` as it opens (blocking), then tended every ``pause`` seconds (``tend(sock, round)``
    raises ``OSError`` once the server has answered or closed it); a lost one is reopened."""

    def attack(target: Target, stop: threading.Event, tally: Tally) -> None:
        held: dict[socket.socket, int] = {}  # connection → rounds tended
        try:
            while not stop.is_set():
                while len(held) < connections and not stop.is_set():
                    try:
                        sock = socket.create_connection(("127.0.0.1", target.http_port), 5)
                    except OSError:
                        tally.count("connect-failed")
                        break
                    try:
                        first(sock)
                    except OSError:
                        sock.close()
                        tally.count("cut")
                        continue
                    sock.setblocking(False)
                    held[sock] = 0
                    tally.count("opened")
                for sock, rounds in list(held.items()):
                    try:
                        tend(sock, rounds)
                        held[sock] = rounds + 1
                    except OSError:
                        del held[sock]
                        sock.close()
                        tally.count("cut")
                stop.wait(pause)
        finally:
            for sock in held:
                sock.close()

    return attack


def _nothing(sock: socket.socket) -> None:
    """Send nothing as the connection opens."""


def header_trickle(connections: int = 400) -> Callable[[Target, threading.Event, Tally], None]:
    """Hundreds of connections sending their headers a byte at a time (reconnecting when cut)."""
    head = _head(100)

    def trickle(sock: socket.socket, rounds: int) -> None:
        at = min(rounds, len(head) - 5)  # never the blank line that ends the headers
        sock.send(head[at : at + 1])

    return _hold(connections, _nothing, trickle, 0.2)


def slow_bodies(connections: int = 64) -> Callable[[Target, threading.Event, Tally], None]:
    """Dozens of requests whose bodies arrive a byte a second."""

    def begin(sock: socket.socket) -> None:
        sock.sendall(_head(1000) + b"\x0a")

    def trickle(sock: socket.socket, rounds: int) -> None:
        with contextlib.suppress(BlockingIOError):
            if sock.recv(1024, socket.MSG_PEEK):
                raise OSError("answered")
        sock.send(b"\x00")

    return _hold(connections, begin, trickle, 1.0)


def _idle(sock: socket.socket, rounds: int) -> None:
    """Send nothing; raise once the server has closed the connection."""
    with contextlib.suppress(BlockingIOError):  # nothing to read: still open, idle
        if not sock.recv(65536):
            raise OSError("closed")


def idle_keepalives(connections: int = 300) -> Callable[[Target, threading.Event, Tally], None]:
    """Hundreds of keep-alive connections, each answered once and then left idle (reopened
    when the server closes one)."""

    def ask(sock: socket.socket) -> None:
        sock.sendall(b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")  # a 405, kept alive
        if not sock.recv(65536):  # the answer (or the end: refused)
            raise OSError("closed")

    return _hold(connections, ask, _idle, 0.2)


def silent_connections(connections: int = 300) -> Callable[[Target, threading.Event, Tally], None]:
    """Hundreds of connections that never send a byte (reopened when the server closes one):
    idle connections to a server that answers one request per connection (``/metrics``)."""
    return _hold(connections, _nothing, _idle, 0.2)


@functools.cache
def gzip_members() -> Callable[[Target, threading.Event, Tally], None]:
    """4 MB bodies of 210,000 empty gzip members."""
    body = gzip.compress(b"") * 210_000
    return _http_flood(body, {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})


@functools.cache
def unknown_models() -> Callable[[Target, threading.Event, Tally], None]:
    """Requests of 3,000 spans, each naming a model nobody prices (new names every request)."""
    payloads = [
        request_of(
            [
                _span(
                    r * 10_000 + i,
                    {
                        "gen_ai.request.model": f"unknown-{r}-{i}-model-2024-01-01",
                        "gen_ai.usage.input_tokens": 10,
                    },
                )
                for i in range(3000)
            ]
        ).SerializeToString()
        for r in range(3)
    ]
    return _grpc_flood(payloads)


@functools.cache
def metric_labels() -> Callable[[Target, threading.Event, Tally], None]:
    """Spans with thousands of distinct operation names, and /metrics scraped meanwhile."""
    payloads = [
        request_of(
            [
                _span(
                    r * 10_000 + i,
                    {"gen_ai.request.model": "gpt-4o", "gen_ai.operation.name": f"op-{r}-{i}"},
                )
                for i in range(1500)
            ]
        ).SerializeToString()
        for r in range(3)
    ]
    send = _grpc_flood(payloads)

    def attack(target: Target, stop: threading.Event, tally: Tally) -> None:
        scraper = threading.Thread(target=_scrape, args=(target, stop, tally))
        scraper.start()
        try:
            send(target, stop, tally)
        finally:
            scraper.join()

    return attack


def _scrape(target: Target, stop: threading.Event, tally: Tally) -> None:
    if target.metrics_port is None:
        return
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                answer = client.get(f"http://127.0.0.1:{target.metrics_port}/metrics")
                tally.count(f"scrape-{answer.status_code}")
            except httpx.HTTPError as exc:
                tally.count(f"scrape-{type(exc).__name__}")


#: Every attack, by name, as a factory of its blocking function (payloads built once).
ATTACKS: dict[str, Callable[[], Callable[[Target, threading.Event, Tally], None]]] = {
    "wide spans": wide_spans,
    "huge OTLP/JSON": huge_json,
    "deep values": deep_values,
    "header trickle": header_trickle,
    "slow bodies": slow_bodies,
    "idle keep-alives": idle_keepalives,
    "gzip members": gzip_members,
    "unknown models": unknown_models,
    "metric labels": metric_labels,
}
#: Attacks run by the tests but not by ``bench_attacks.py``.
MORE_ATTACKS: dict[str, Callable[[], Callable[[Target, threading.Event, Tally], None]]] = {
    "silent connections": silent_connections,
}


@dataclass
class Measured:
    """The well-behaved client's latencies (seconds), answers (0: none, the connection failed)
    and the loop's lag samples."""

    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


def slowness() -> float:
    """How much longer than its CPU time work takes in this process now (at least 1): on a
    shared, loaded machine the OS gives us a fraction of a core, and every wall-clock bound
    stretches by its inverse. Measured over ~0.2 s of CPU work, wall time over process time."""
    wall = cpu = 0.0
    for _ in range(4):
        began, began_cpu = time.perf_counter(), time.process_time()
        total = 0
        for i in range(300_000):
            total += i % 7
        wall += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
    return max(1.0, wall / max(cpu, 1e-6))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


class Victim:
    """The well-behaved client: one-call OTLP/HTTP protobuf exports from the attacker's own
    address, on one kept-alive connection (a new one when the server has closed it)."""

    def __init__(self, http_port: int) -> None:
        self.url = f"http://127.0.0.1:{http_port}/v1/traces"
        self._next = 0

    async def measure(
        self, requests: int, pause: float, run: Callable[[], object] | None = None
    ) -> Measured:
        """Send ``requests`` exports ``pause`` s apart while a ticker measures loop lag."""
        measured = Measured()
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                began = time.perf_counter()
                await asyncio.sleep(0.005)
                measured.lags.append(max(0.0, time.perf_counter() - began - 0.005))

        ticking = asyncio.create_task(ticker())
        transport = httpx.AsyncHTTPTransport(local_address=VICTIM_ADDRESS)
        try:
            async with httpx.AsyncClient(transport=transport, timeout=30) as client:
                for _ in range(requests):
                    self._next += 1
                    call = make_call(900_000 + self._next, model="victim-model")
                    body = request_for([call]).SerializeToString()
                    began = time.perf_counter()
                    try:
                        answer = await client.post(
                            self.url,
                            content=body,
                            headers={"Content-Type": "application/x-protobuf"},
                        )
                    except httpx.TransportError as exc:  # no answer: the connection failed
                        measured.latencies.append(time.perf_counter() - began)
                        measured.statuses.append(0)
                        measured.errors.append(repr(exc))
                        continue
                    measured.latencies.append(time.perf_counter() - began)
                    measured.statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        measured.call_ids.append(call.call_id)
                    await asyncio.sleep(pause)
        finally:
            done.set()
            await ticking
        return measured


@contextlib.asynccontextmanager
async def attacking(name: str, target: Target) -> AsyncIterator[Tally]:
    """Run attack ``name`` in a thread for the duration of the block (joined off the loop:
    the attacker may be waiting for an answer from the collector on this loop)."""
    # Payloads are built once, off the loop.
    attack = await asyncio.to_thread(ATTACKS.get(name) or MORE_ATTACKS[name])
    stop = threading.Event()
    tally = Tally()
    thread = threading.Thread(target=attack, args=(target, stop, tally), daemon=True)
    thread.start()
    try:
        yield tally
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 60)
