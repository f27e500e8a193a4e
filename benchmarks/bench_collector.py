"""Collector ingest rate and memory, beside the classic threaded design, in one run.

A separate load process (grpc.aio client) sends 512-span OTLP requests with 8 in flight. Spans are
realistic GenAI client spans: 15 GenAI attributes (some our tables do not map, kept as
attributes) plus 3 application keys. Measured, each from "go" to "every span stored":

* baseline: a synchronous ``grpc.server`` on a 4-thread pool; the request is parsed by grpc,
  each span converted into a dataclass (every attribute read into a dict first) and appended to a
  lock-guarded deque;
* AsyncCollector into MemoryStore;
* AsyncCollector into SQLiteStore (durable: counted after ``flush()``);
* AsyncCollector into PostgresStore (durable: after ``flush()``), on a private PostgreSQL server
  started for the run (Debian's binaries, default durability), when one can be started.

Then how long each store holds the event loop while it ingests 100,000 calls flat out
(``add_many`` of 512, through ``flush()``): a 1 ms monitor task's lateness, p99 and max.

Then peak RSS of a collector process holding 100,000 calls in a MemoryStore (the load comes from
its own process, as above, so the figure is the collector's alone).

Beside each rate: the CPU time the receiving process spent per span (all its threads, the load
process excluded), which a busy shared machine disturbs less than wall-clock rates; and the load
average before and after. The collector's price table is loaded before "go" (a running collector
has resolved its models long before): the first lookup reads the genai-prices catalog, once.

The baseline and the collector into MemoryStore are measured ``--runs`` times (3), in turn
(baseline, collector, baseline, …), each pair's ratio from the two runs side by side: the
median of the rates and of the ratios is printed, with the range of the ratios. A busy machine
(other processes on the 2 cores the load shares) moves single runs by 2x; the median of pairs
measured back to back moves much less.

    .venv/bin/python benchmarks/bench_collector.py [--quick] [--requests N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPANS_PER_REQUEST = 512
IN_FLIGHT = 8
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#: (requested model, response model, provider) of the benchmark's spans.
MODELS = [
    ("gpt-4o", "gpt-4o-2024-08-06", "openai"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "anthropic"),
    ("gemini-2.5-flash", "gemini-2.5-flash", "gcp.gemini"),
]


# -- the load ---------------------------------------------------------------------------------------
def build_requests(count: int, seed: int = 7) -> list[bytes]:
    """``count`` distinct serialized requests of 512 realistic GenAI spans each."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    rng = random.Random(seed)
    models = MODELS

    def kv(key: str, value: object) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, float):
            return KeyValue(key=key, value=AnyValue(double_value=value))
        if isinstance(value, list):
            any_value = AnyValue()
            any_value.array_value.values.extend(AnyValue(string_value=v) for v in value)
            return KeyValue(key=key, value=any_value)
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    out = []
    serial = 0
    now = time.time_ns()
    for _ in range(count):
        spans = []
        for _ in range(SPANS_PER_REQUEST):
            serial += 1
            requested, answered, provider = rng.choice(models)
            start = now - rng.randrange(10**12)
            attributes = [
                kv("gen_ai.operation.name", "chat"),
                kv("gen_ai.provider.name", provider),
                kv("gen_ai.request.model", requested),
                kv("gen_ai.response.model", answered),
                kv("gen_ai.response.id", f"chatcmpl-{serial:012d}"),
                kv("gen_ai.response.finish_reasons", ["stop"]),
                kv("gen_ai.usage.input_tokens", rng.randrange(50, 5000)),
                kv("gen_ai.usage.output_tokens", rng.randrange(5, 800)),
                kv("gen_ai.usage.cache_read.input_tokens", rng.randrange(0, 40) * 64),
                kv("gen_ai.request.temperature", 0.7),
                kv("gen_ai.request.max_tokens", 1024),
                kv("gen_ai.conversation.id", f"conv-{serial % 997}"),
                kv("server.address", "api.example.com"),
                kv("server.port", 443),
                kv("gen_ai.request.stream", serial % 3 == 0),
                kv("app.tenant", f"tenant-{serial % 13}"),
                kv("app.feature", rng.choice(["search", "chat", "summarize"])),
                kv("deployment.environment", "prod"),
            ]
            spans.append(
                Span(
                    trace_id=rng.randbytes(16),
                    span_id=rng.randbytes(8),
                    name=f"chat {requested}",
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + rng.randrange(10**8, 5 * 10**9),
                    attributes=attributes,
                )
            )
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource={"attributes": [kv("service.name", "bench-app")]},
                    scope_spans=[ScopeSpans(spans=spans)],
                )
            ]
        )
        out.append(request.SerializeToString())
    return out


async def _send_all(target: str, requests: list[bytes], total: int) -> None:
    import grpc

    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        await channel.channel_ready()
        call = channel.unary_unary(EXPORT)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        sent = 0

        async def worker() -> None:
            nonlocal sent
            while sent < total:
                raw = requests[sent]
                sent += 1
                for _ in range(100):  # retry on backpressure, as an OTLP exporter does
                    try:
                        await call(raw, timeout=60)
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() not in (
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                        ):
                            raise
                        await asyncio.sleep(0.05)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def unique_requests(total: int) -> list[bytes]:
    """``total`` requests, every span with its own span id (SQLite keeps one row per call id):
    32 requests are built with protobuf, then re-assembled with fresh span ids."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    templates = [
        ExportTraceServiceRequest.FromString(raw) for raw in build_requests(min(total, 32))
    ]
    resource = templates[0].resource_spans[0].resource.SerializeToString()
    spans = [
        [span.SerializeToString() for span in t.resource_spans[0].scope_spans[0].spans]
        for t in templates
    ]
    assert all(raw[0:2] == b"\x0a\x10" and raw[18:20] == b"\x12\x08" for raw in spans[0])
    out = []
    serial = 0
    for i in range(total):
        parts = []
        for raw in spans[i % len(spans)]:
            serial += 1
            parts.append(_field(b"\x12", raw[:20] + serial.to_bytes(8, "big") + raw[28:]))
        scope = _field(b"\x12", b"".join(parts))
        out.append(_field(b"\x0a", _field(b"\x0a", resource) + scope))
    return out


def load_main(target: str, total: int) -> None:
    """The load process: build requests, connect, wait for "go", send ``total`` requests."""
    asyncio.run(_send_all(target, unique_requests(total), total))


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (children excluded)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive_load(target: str, total: int) -> float:
    """Start the load process, tell it to go, wait for it; returns the time "go" was given."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--load",
        target,
        str(total),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    line = await process.stdout.readline()
    assert line.strip() == b"ready", line
    started = time.perf_counter()
    process.stdin.write(b"go\n")
    await process.stdin.drain()
    await process.wait()
    assert process.returncode == 0
    return started


# -- the baseline: a threaded grpc.server ---------------------------------------------------------
@dataclass
class BaselineCall:
    """The classic design's record."""

    call_id: str
    trace_id: str
    model: str
    request_model: str | None
    provider: str | None
    operation: str | None
    session_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    duration_ms: float
    status: str
    attributes: dict[str, object]


_MAPPED = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.conversation.id",
}


def baseline_convert(span: object) -> BaselineCall:
    """Straightforward: every attribute into a dict, then pick the fields."""
    attrs = {}
    for kv in span.attributes:  # type: ignore[attr-defined]
        which = kv.value.WhichOneof("value")
        value = getattr(kv.value, which) if which else None
        if which == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        attrs[kv.key] = value
    return BaselineCall(
        call_id=attrs.get("request_id") or span.span_id.hex(),  # type: ignore[attr-defined]
        trace_id=span.trace_id.hex(),  # type: ignore[attr-defined]
        model=attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
        request_model=attrs.get("gen_ai.request.model"),
        provider=attrs.get("gen_ai.provider.name"),
        operation=attrs.get("gen_ai.operation.name"),
        session_id=attrs.get("gen_ai.conversation.id"),
        input_tokens=attrs.get("gen_ai.usage.input_tokens"),
        output_tokens=attrs.get("gen_ai.usage.output_tokens"),
        cached_input_tokens=attrs.get("gen_ai.usage.cache_read.input_tokens"),
        duration_ms=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,  # type: ignore[attr-defined]
        status="error" if span.status.code == 2 else "ok",  # type: ignore[attr-defined]
        attributes={k: v for k, v in attrs.items() if k not in _MAPPED},
    )


async def run_baseline(total: int) -> tuple[float, int, float]:
    """Spans/s of the threaded design; returns (rate, spans kept, CPU µs per span)."""
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    kept: deque[BaselineCall] = deque()
    lock = threading.Lock()

    def export(request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    call = baseline_convert(span)
                    with lock:
                        kept.append(call)
        return ExportTraceServiceResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    handler = grpc.unary_unary_rpc_method_handler(
        export,
        request_deserializer=ExportTraceServiceRequest.FromString,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        cpu = cpu_seconds()
        started = await drive_load(f"127.0.0.1:{port}", total)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
    finally:
        server.stop(0)
    return len(kept) / elapsed, len(kept), cpu / max(1, len(kept)) * 1e6


# -- the collector --------------------------------------------------------------------------------
def warm_price_table() -> object:
    """The default price table with the benchmark's models resolved (the catalog loaded)."""
    from asynctelemetry import PriceTable

    table = PriceTable.default()
    for requested, answered, provider in MODELS:
        table.lookup(requested, provider)
        table.lookup(answered, provider)
    return table


async def run_collector(
    total: int, store_kind: str, dsn: str | None = None
) -> tuple[float, int, float]:
    """Spans/s stored by AsyncCollector into a MemoryStore, a SQLiteStore or a PostgresStore
    (after flush); returns (rate, spans stored, CPU µs per span)."""
    from asynctelemetry import AsyncCollector, MemoryStore, PostgresStore

    with tempfile.TemporaryDirectory() as tmp:
        if store_kind == "memory":
            store = MemoryStore(capacity=total * SPANS_PER_REQUEST)
        elif store_kind == "postgres":
            assert dsn is not None
            store = PostgresStore(dsn)  # the defaults
        else:
            from asynctelemetry import SQLiteStore

            store = SQLiteStore(Path(tmp) / "bench.db")  # the defaults
        async with store:
            collector = AsyncCollector(
                store,
                port=0,
                price_table=warm_price_table(),  # type: ignore[arg-type]
                max_message_bytes=64 << 20,
            )
            async with collector:
                cpu = cpu_seconds()
                started = await drive_load(collector.endpoint, total)
                await collector.flush()  # every call handed over and the store flushed
                elapsed = time.perf_counter() - started
                cpu = cpu_seconds() - cpu
            count = await store.count()
    return count / elapsed, count, cpu / max(1, count) * 1e6


# -- the loop held while a store ingests flat out ---------------------------------------------------
HELD_CALLS = 100_000
HELD_BATCH = SPANS_PER_REQUEST  # the collector hands a store one request's calls at once


def held_calls(count: int) -> list[object]:
    """``count`` priced records: 5,000 sessions, four models, timestamps over a day."""
    from datetime import UTC, datetime, timedelta

    from asynctelemetry import LLMCall

    rng = random.Random(11)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    models = [*MODELS, ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai")]
    calls: list[object] = []
    for i in range(count):
        requested, answered, provider = models[i % len(models)]
        calls.append(
            LLMCall.trusted(
                {
                    "call_id": f"held-{i:09d}",
                    "timestamp": day + timedelta(microseconds=rng.randrange(86_400 * 10**6)),
                    "model": answered,
                    "request_model": requested,
                    "provider": provider,
                    "source": "collector",
                    "trace_id": f"{rng.getrandbits(128):032x}",
                    "span_id": f"{i + 1:016x}",
                    "session_id": f"session-{i % 5000}",
                    "input_tokens": rng.randrange(50, 5000),
                    "output_tokens": rng.randrange(5, 800),
                    "duration_ms": rng.uniform(200, 5000),
                    "cost_usd": 0.0001 * (i % 40),
                    "attributes": {"app.tenant": f"tenant-{i % 13}"},
                }
            )
        )
    return calls


async def store_held(
    store_kind: str, calls: list[object], dsn: str | None = None
) -> tuple[str, ...]:
    """A 1 ms monitor task's lateness while ``store.add_many`` takes ``calls`` in batches of
    ``HELD_BATCH`` as fast as the store accepts them (the producer yields once per batch, as the
    collector does per request), through ``flush()``: (store, held p99 ms, held max ms, lag p99
    ms, calls/s). "Held" counts only this thread's CPU time in each late wake-up (see
    ``_common.LagMonitor``), so time the OS gave other processes does not count."""
    from _common import LagMonitor

    from asynctelemetry import MemoryStore, PostgresStore

    with tempfile.TemporaryDirectory() as tmp:
        if store_kind == "MemoryStore":
            store: Any = MemoryStore(capacity=len(calls))
        elif store_kind == "PostgresStore":
            store = PostgresStore(dsn)
        else:
            from asynctelemetry import SQLiteStore

            store = SQLiteStore(Path(tmp) / "held.db")
        async with store:
            with LagMonitor() as lag:
                await asyncio.sleep(0.05)
                lag.clear()
                started = time.perf_counter()
                for start in range(0, len(calls), HELD_BATCH):
                    await store.add_many(calls[start : start + HELD_BATCH])
                    await asyncio.sleep(0)
                await store.flush()
                elapsed = time.perf_counter() - started
            assert await store.count() == len(calls)
    return (
        store_kind,
        f"{lag.p99_ms(lag.held):.2f}",
        f"{max(lag.held, default=0.0) * 1e3:.2f}",
        f"{lag.p99_ms():.2f}",
        f"{len(calls) / elapsed:,.0f}",
    )


# -- memory ---------------------------------------------------------------------------------------
async def rss_main(calls: int) -> None:
    """In its own process: a collector holding ``calls`` calls in a MemoryStore; print peak RSS."""
    from asynctelemetry import AsyncCollector, MemoryStore

    store = MemoryStore(capacity=calls)
    async with AsyncCollector(
        store, port=0, price_table=None, max_message_bytes=64 << 20
    ) as collector:
        await drive_load(collector.endpoint, -(-calls // SPANS_PER_REQUEST))
        await collector.flush()
    print(f"{len(store)} {peak_rss_kib() / 1024:.1f}")


def peak_rss_kib() -> int:
    """Peak RSS of this process image, in KiB: ``VmHWM`` on Linux. Not ``ru_maxrss``: Linux
    carries that across fork and exec, so a child started by a big process reports the
    parent's size (400 MB from a full benchmark run) instead of its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_rss(calls: int) -> tuple[int, float]:
    """(calls held, peak RSS in MB) of a fresh collector process."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss", str(calls)], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]), float(out[1])


def load_average() -> str:
    """The machine's 1/5/15-minute load averages, for the record beside the figures."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def print_held(count: int) -> None:
    """The table of :func:`store_held` for every store this machine has."""
    import gc

    from _common import table

    calls = held_calls(count)
    gc.freeze()  # the benchmark's own input is not the store's garbage to scan
    rows = [await store_held("MemoryStore", calls), await store_held("SQLiteStore", calls)]
    try:
        from tests.pg import fresh_schema, start_server, stop_server

        server = await asyncio.to_thread(start_server, durable=True)
    except Exception as exc:  # no PostgreSQL binaries here: say so, measure the rest
        rows.append(("PostgresStore", f"not available ({exc})", "", "", ""))
    else:
        try:
            rows.append(await store_held("PostgresStore", calls, await fresh_schema(server)))
        finally:
            await asyncio.to_thread(stop_server, server)
    del calls
    gc.unfreeze()
    print()
    print(
        table(
            f"Event loop held while a store ingests {count:,} calls flat out "
            f"(add_many of {HELD_BATCH}, through flush; 5,000 sessions, 4 models, one day)",
            rows,
            ("store", "held p99 ms (target <= 5)", "held max ms", "lag p99 ms", "calls/s"),
        )
    )
    print()


async def paired_runs(requests: int, runs: int) -> tuple[list[Any], list[Any]]:
    """The baseline and the collector into MemoryStore, ``runs`` times in turn: their results
    ((rate, count, CPU µs per span) each), in order. Garbage of one run is collected before the
    next starts."""
    import gc

    base, memory = [], []
    for _ in range(runs):
        gc.collect()
        base.append(await run_baseline(requests))
        gc.collect()
        memory.append(await run_collector(requests, "memory"))
        ratio = memory[-1][0] / base[-1][0]
        print(
            f"    pair {len(base)}: baseline {base[-1][0]:>8,.0f} spans/s "
            f"{base[-1][2]:5.1f} µs CPU/span; MemoryStore {memory[-1][0]:>8,.0f} spans/s "
            f"{memory[-1][2]:5.1f} µs CPU/span: {ratio:.2f}x",
            flush=True,
        )
    return base, memory


async def main(requests: int, rss_calls: int, runs: int = 3) -> None:
    spans = requests * SPANS_PER_REQUEST
    print(f"{os.cpu_count()} cores, {load_average()}")
    print(
        f"ingest: {requests} requests x {SPANS_PER_REQUEST} spans = {spans:,} spans, "
        f"{IN_FLIGHT} in flight, load in a separate process; baseline and MemoryStore "
        f"{runs} times in turn (medians below)"
    )
    base, memory = await paired_runs(requests, runs)
    ratios = [m[0] / b[0] for b, m in zip(base, memory, strict=True)]
    cpu_ratios = [b[2] / m[2] for b, m in zip(base, memory, strict=True)]
    base_rate = statistics.median(b[0] for b in base)
    base_cpu = statistics.median(b[2] for b in base)
    mem_rate = statistics.median(m[0] for m in memory)
    mem_cpu = statistics.median(m[2] for m in memory)
    print(
        f"  baseline (sync grpc.server, 4 threads, dataclass + locked deque): "
        f"{base_rate:>10,.0f} spans/s  ({base[0][1]:,} kept)  {base_cpu:5.1f} µs CPU/span"
    )
    print(
        f"  AsyncCollector -> MemoryStore:                                  "
        f"{mem_rate:>10,.0f} spans/s  ({memory[0][1]:,} stored)  {mem_cpu:5.1f} µs CPU/span  "
        f"{statistics.median(ratios):.2f}x baseline (pairs {min(ratios):.2f}-{max(ratios):.2f}x; "
        f"target >= 5x, #24), CPU {statistics.median(cpu_ratios):.2f}x"
    )
    try:
        import asynctelemetry._stores.sqlite.store  # noqa: F401
    except ImportError:
        print("  AsyncCollector -> SQLiteStore: not available")
    else:
        sql_rate, sql_count, sql_cpu = await run_collector(requests, "sqlite")
        print(
            f"  AsyncCollector -> SQLiteStore (durable, after flush):           "
            f"{sql_rate:>10,.0f} spans/s  ({sql_count:,} stored)  {sql_cpu:5.1f} µs CPU/span  "
            f"{sql_rate / base_rate:.2f}x baseline (target >= 2.5x, #24), "
            f"CPU {base_cpu / sql_cpu:.2f}x"
        )
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.pg import fresh_schema, start_server, stop_server

        server = await asyncio.to_thread(start_server, durable=True)
    except Exception as exc:  # no PostgreSQL binaries here: say so, measure the rest
        print(f"  AsyncCollector -> PostgresStore: not available ({exc})")
    else:
        try:
            dsn = await fresh_schema(server)
            pg_rate, pg_count, pg_cpu = await run_collector(requests, "postgres", dsn)
        finally:
            await asyncio.to_thread(stop_server, server)
        print(
            f"  AsyncCollector -> PostgresStore (durable, after flush):         "
            f"{pg_rate:>10,.0f} spans/s  ({pg_count:,} stored)  {pg_cpu:5.1f} µs CPU/span  "
            f"{pg_rate / base_rate:.2f}x baseline (#24 targets PostgreSQL against raw COPY: bench_postgres.py), "
            f"CPU {base_cpu / pg_cpu:.2f}x"
        )
    await print_held(HELD_CALLS if requests >= 300 else HELD_CALLS // 5)
    peaks = [await asyncio.to_thread(measure_rss, rss_calls) for _ in range(3)]
    held = peaks[0][0]
    sizes = [peak for _, peak in peaks]
    print(
        f"memory: peak RSS of a collector process holding {held:,} calls in a MemoryStore "
        f"(load from another process; median of 3 processes): {statistics.median(sizes):.1f} MB "
        f"({min(sizes):.1f}-{max(sizes):.1f}; target < 150 MB)"
    )
    print(load_average())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--rss"]:
        os.environ.setdefault("ASYNCTELEMETRY_STRICT", "0")
        asyncio.run(rss_main(int(sys.argv[2])))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--quick", action="store_true", help="fewer requests (about 10 s)")
        parser.add_argument("--requests", type=int, default=None, help="requests per measurement")
        parser.add_argument(
            "--runs", type=int, default=3, help="baseline/MemoryStore pairs (the median shown)"
        )
        parser.add_argument(
            "--held", action="store_true", help="only the loop held while each store ingests"
        )
        args = parser.parse_args()
        count = args.requests or (60 if args.quick else 300)
        if args.held:
            asyncio.run(print_held(HELD_CALLS // 5 if args.quick else HELD_CALLS))
        else:
            asyncio.run(main(count, 100_000, max(1, args.runs)))
