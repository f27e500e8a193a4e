"""OTLP export: our records → grpc.aio exporter beside the OpenTelemetry SDK path, same run.

The SDK path is ``TracerProvider`` + ``BatchSpanProcessor`` + ``OTLPSpanExporter`` (gRPC), spans
carrying the same 15 attributes our exporter writes for each record. Both send to one local
collector in a separate process (a minimal grpc.aio TraceService that parses every request and
counts spans), and each path runs in its own child process so that its CPU time (all threads,
``time.process_time()``) is its own.

Figures:
  * CPU per exported call over N calls (caller + background encode and send), queues large
    enough that nothing is dropped;
  * calls per second delivered (wall time until the collector has them all);
  * event-loop lag p99 while our exporter sends the N calls: flat out (the producer yields
    every 32 calls), and at a steady 10,000 calls/s, beside the idle loop's lag in that process;
    "Held by work" counts only the main thread's CPU time in each late wake-up, so it leaves out
    the time the OS gave other processes on a shared machine;
  * share of a 20,000-call burst from a tight loop dropped with each side's default settings.

Run: ``.venv/bin/python benchmarks/bench_export.py`` (100,000 calls) or ``--quick`` (20,000).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LagMonitor

COUNT_METHOD = "/bench.Counter/Count"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: Calls per second of the steady-load run (the lag figure): a busy gateway, half a core of ours.
PACED_RATE = 10_000


# -- the collector process --------------------------------------------------------------------
async def serve_collector() -> None:
    """A TraceService that parses each request and counts spans; Count answers the total."""
    import grpc
    import grpc.aio
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received = 0

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(self, request: Any, context: Any) -> Any:
            nonlocal received
            received += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    async def count(request: bytes, context: Any) -> bytes:
        return str(received).encode()

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 2**20)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "bench.Counter", {"Count": grpc.unary_unary_rpc_method_handler(count)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(
        None, sys.stdin.read
    )  # until the parent closes stdin
    await server.stop(None)


def received(port: int) -> int:
    """Spans the collector has counted so far."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return int(channel.unary_unary(COUNT_METHOD)(b"", timeout=10))


def wait_for(port: int, target: int, timeout: float = 120.0) -> int:
    """The count once it reaches ``target``, or once it has not moved for half a second."""
    deadline = time.monotonic() + timeout
    last, still = -1, time.monotonic()
    while True:
        got = received(port)
        if got >= target or time.monotonic() > deadline or time.monotonic() - still > 0.5:
            return got
        if got != last:
            last, still = got, time.monotonic()
        time.sleep(0.01)


# -- the workload: the same values on both sides ---------------------------------------------
def values(i: int) -> dict[str, Any]:
    """Fields of call ``i``: 15 span attributes once written (call_id is the span id)."""
    span_id = f"{i + 1:016x}"
    return {
        "call_id": span_id,
        "timestamp": T0 + timedelta(milliseconds=i),
        "model": ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash")[i % 3],
        "provider": ("openai", "anthropic", "google")[i % 3],
        "operation": "chat",
        "trace_id": f"{i + 1:032x}",
        "span_id": span_id,
        "input_tokens": 800 + i % 300,
        "output_tokens": 90 + i % 50,
        "duration_ms": 900.0 + i % 400,
        "cost_usd": 0.0001 * (i % 40),
    }


def sdk_attributes(n: int) -> list[dict[str, Any]]:
    from asynctelemetry import LLMCall
    from asynctelemetry._conventions import call_attributes

    return [call_attributes(LLMCall.trusted(values(i))) for i in range(n)]


def run_sdk(port: int, n: int, burst: bool) -> dict[str, Any]:
    """The SDK path; ``burst`` uses the SDK's default queue, else one large enough for n."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    attrs = sdk_attributes(n)
    start = received(port)
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True)
    processor = (
        BatchSpanProcessor(exporter)
        if burst
        else BatchSpanProcessor(exporter, max_queue_size=n + 1)
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, a in enumerate(attrs):
        t = 1_767_225_600_000_000_000 + i * 1_000_000
        span = tracer.start_span(
            f"chat {a['llm.model']}", kind=SpanKind.CLIENT, attributes=a, start_time=t
        )
        span.end(end_time=t + 900_000_000)
    provider.force_flush(120_000)
    got = wait_for(port, start + n, timeout=10 if burst else 120) - start
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    provider.shutdown()
    return {"delivered": got, "cpu_s": cpu, "wall_s": wall}


async def run_ours(
    port: int, n: int, burst: bool, compression: str | None, rate: float = 0.0
) -> dict[str, Any]:
    """Records → our gRPC exporter.

    ``burst``: our defaults, emitted without yielding. ``rate``: calls per second, emitted in
    steps of 5 ms (a steady load); else as fast as possible, yielding every 32 calls.
    """
    import threading

    from asynctelemetry import LLMCall
    from asynctelemetry._export import OTLPGrpcExporter

    raw = [values(i) for i in range(n)]
    gc.freeze()  # the benchmark's own input is not the exporter's garbage to scan
    start = await asyncio.to_thread(received, port)
    threads = threading.active_count()
    with LagMonitor() as idle:  # the loop's lag on this machine with nothing to do
        await asyncio.sleep(0.5)
    kwargs: dict[str, Any] = {"compression": compression}
    if not burst:
        kwargs["max_queue"] = n + 1
    exporter = OTLPGrpcExporter(f"http://127.0.0.1:{port}", service_name="bench", **kwargs)
    with LagMonitor() as lag:
        await asyncio.sleep(0.01)
        lag.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        trusted, emit = LLMCall.trusted, exporter.emit
        step = max(1, round(rate * 0.005)) if rate else 32
        for i, v in enumerate(raw):
            await emit([trusted(v)])
            if not burst and i % step == step - 1:
                if rate:  # sleep until this step's due time
                    await asyncio.sleep(max(0.0, wall0 + (i + 1) / rate - time.perf_counter()))
                else:
                    await asyncio.sleep(0)  # a real producer awaits its LLM calls
        try:
            await exporter.flush(timeout=120)
        finally:
            await exporter.aclose()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    got = await asyncio.to_thread(wait_for, port, start + n, 10.0) - start
    return {
        "delivered": got, "cpu_s": cpu, "wall_s": wall, "lag_p99_ms": lag.p99_ms(),
        "held_p99_ms": lag.p99_ms(lag.held), "idle_lag_p99_ms": idle.p99_ms(), "dropped": exporter.stats.queue.dropped,
        "threads_changed": threading.active_count() - threads,
    }  # fmt: skip


def child(args: argparse.Namespace) -> None:
    if args.role == "sdk":
        result = run_sdk(args.port, args.calls, args.burst)
    else:
        result = asyncio.run(
            run_ours(args.port, args.calls, args.burst, args.compression, args.rate)
        )
    print(json.dumps(result), flush=True)


def spawn(role: str, port: int, calls: int, *extra: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--role",
        role,
        "--port",
        str(port),
        "--calls",
        str(calls),
        *extra,
    ]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from _common import machine, table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 calls instead of 100,000")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--role", choices=["sdk", "ours"], default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--compression", default=None)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    if args.role:
        child(args)
        return
    n = args.calls or (20_000 if args.quick else 100_000)
    collector = subprocess.Popen(
        [sys.executable, "-c", f"import asyncio, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import bench_export; asyncio.run(bench_export.serve_collector())"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )  # fmt: skip
    try:
        assert collector.stdout is not None
        port = int(collector.stdout.readline())
        sdk = spawn("sdk", port, n)
        ours = spawn("ours", port, n)
        ours_gz = spawn("ours", port, n, "--compression", "gzip")
        paced = spawn("ours", port, n, "--compression", "gzip", "--rate", str(PACED_RATE))
        burst = 20_000
        sdk_burst = spawn("sdk", port, burst, "--burst")
        ours_burst = spawn("ours", port, burst, "--burst", "--compression", "gzip")
    finally:
        assert collector.stdin is not None
        collector.stdin.close()
        collector.wait(10)

    def per_call_us(r: dict[str, Any]) -> float:
        return r["cpu_s"] / max(r["delivered"], 1) * 1e6

    def rate(r: dict[str, Any]) -> float:
        return r["delivered"] / r["wall_s"]

    rows = [
        ("CPU per exported call (µs, all threads)", f"{per_call_us(sdk):.1f}", f"{per_call_us(ours):.1f}",
         f"{per_call_us(ours) / per_call_us(sdk):.2f}x", "<= 0.25x", f"{per_call_us(ours_gz):.1f}"),
        ("calls/s delivered, no loss", f"{rate(sdk):,.0f}", f"{rate(ours):,.0f}",
         f"{rate(ours) / rate(sdk):.1f}x", ">= 3x", f"{rate(ours_gz):,.0f}"),
        ("delivered / sent", f"{sdk['delivered']:,}/{n:,}", f"{ours['delivered']:,}/{n:,}", "", "all",
         f"{ours_gz['delivered']:,}/{n:,}"),
        ("event-loop lag p99 (ms), flat out", "n/a (threads)", f"{ours['lag_p99_ms']:.2f}", "", "",
         f"{ours_gz['lag_p99_ms']:.2f}"),
        (f"event-loop lag p99 (ms), steady {PACED_RATE:,} calls/s", "n/a (threads)", "", "", "< 5 ms",
         f"{paced['lag_p99_ms']:.2f} (idle loop: {paced['idle_lag_p99_ms']:.2f})"),
        ("  of which the loop was held by work, p99 (ms)", "", f"{ours['held_p99_ms']:.2f} (flat out)", "",
         "", f"{paced['held_p99_ms']:.2f} (steady)"),
        (f"{burst:,}-call burst dropped, defaults", f"{1 - sdk_burst['delivered'] / burst:.1%}",
         f"{1 - ours_burst['delivered'] / burst:.1%}", "", "0%", "(gzip)"),
        ("Python threads started", "1 (BatchSpanProcessor)", str(ours["threads_changed"]), "", "0", ""),
    ]  # fmt: skip
    print(table(
        f"OTLP/gRPC export, {n:,} calls, 15 attributes each — {machine()}", rows,
        ("figure", "SDK (BatchSpanProcessor + OTLPSpanExporter)", "ours (no compression)", "ratio", "target",
         "ours (gzip, default)"),
    ))  # fmt: skip


if __name__ == "__main__":
    main()
