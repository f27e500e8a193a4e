"""GenAI metrics over OTLP: OTLPMetricsExporter beside the OpenTelemetry SDK's periodic reader.

The SDK path is ``MeterProvider`` + ``PeriodicExportingMetricReader`` + the SDK's
``OTLPMetricExporter`` (gRPC), recording for each call the same points our exporter aggregates
(``tests/export/sdk_metrics.py``, the reference the tests compare with): duration, time to first
chunk, time per output chunk, five usage counters and two per-operation token histograms. Both
send to one MetricsService in a separate process (grpc.aio, parses every request), and each side
runs in its own child process so that its CPU time (all threads, ``time.process_time()``) is its
own. Calls arrive one at a time (as the tracer hands them over), spread over 12 attribute sets;
both sides export every 10,000 calls and once at the end, so they send the same requests.

Figures: CPU per exported call (recording plus its share of the exports), CPU per export request,
and the Python threads each side starts.

Run: ``.venv/bin/python benchmarks/bench_otlp_metrics.py`` (100,000 calls) or ``--quick`` (20,000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from asynctelemetry import LLMCall

#: Calls between two exports, on both sides.
EXPORT_EVERY = 10_000


async def serve_receiver() -> None:
    """A MetricsService that parses each request; prints its port, runs until stdin closes."""
    import grpc.aio
    from opentelemetry.proto.collector.metrics.v1 import (
        metrics_service_pb2,
        metrics_service_pb2_grpc,
    )

    class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
        async def Export(self, request: Any, context: Any) -> Any:
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.aio.server()
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(grace=None)


def make_calls(n: int) -> list[LLMCall]:
    """``n`` finished calls over 12 attribute sets (3 providers x 4 models; one in ten
    failed), half of them streamed, some with cache and reasoning tokens."""
    from tests.conftest import make_call

    providers = ("openai", "anthropic", "google")
    return [
        make_call(
            i,
            provider=providers[i % 3],
            model=f"model-{i % 4}",
            is_streaming=bool(i % 2),
            ttft_ms=(10.0 + i % 7) if i % 2 else None,
            duration_ms=50.0 + (i * 37) % 5000,
            cached_input_tokens=(i % 5) * 10 or None,
            reasoning_tokens=(i % 3) * 4 or None,
            error_type="RateLimitError" if i % 10 == 9 else None,
        )
        for i in range(n)
    ]


async def run_ours(port: int, calls: list[LLMCall]) -> dict[str, Any]:
    from asynctelemetry import OTLPMetricsExporter

    threads = threading.active_count()
    exporter = OTLPMetricsExporter(f"http://127.0.0.1:{port}", interval=3600)
    emit = exporter.emit_nowait
    cpu0 = time.process_time()
    for i, call in enumerate(calls, 1):
        emit((call,))
        if not i % EXPORT_EVERY:
            await exporter.flush()
    export0 = time.process_time()
    await exporter.flush()
    export = time.process_time() - export0
    await exporter.aclose()
    cpu = time.process_time() - cpu0
    return {
        "cpu_s": cpu,
        "export_s": export,
        "requests": exporter.stats.queue.delivered,
        "threads": threading.active_count() - threads,
    }


def run_sdk(port: int, calls: list[LLMCall]) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    from tests.export.sdk_metrics import SdkRecorder

    threads = threading.active_count()
    sdk = SdkRecorder(OTLPMetricExporter(endpoint=f"http://127.0.0.1:{port}", insecure=True))
    started = threading.active_count() - threads
    record = sdk.record
    cpu0 = time.process_time()
    for i, call in enumerate(calls, 1):
        record(call)
        if not i % EXPORT_EVERY:
            sdk.provider.force_flush()
    export0 = time.process_time()
    sdk.provider.force_flush()
    export = time.process_time() - export0
    sdk.provider.shutdown()
    cpu = time.process_time() - cpu0
    return {"cpu_s": cpu, "export_s": export, "requests": len(calls) // EXPORT_EVERY + 1,
            "threads": started}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    calls = make_calls(args.calls)
    if args.role == "sdk":
        result = run_sdk(args.port, calls)
    else:
        result = asyncio.run(run_ours(args.port, calls))
    print(json.dumps(result), flush=True)


def spawn(role: str, port: int, calls: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--role", role, "--port", str(port), "--calls", str(calls)]
    env = {**os.environ, "GRPC_VERBOSITY": "ERROR"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    from _common import machine, table

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 calls instead of 100,000")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--role", choices=["sdk", "ours"], default=None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.role:
        child(args)
        return
    n = args.calls or (20_000 if args.quick else 100_000)
    here = str(Path(__file__).resolve().parent)
    code = f"import asyncio, sys; sys.path.insert(0, {here!r}); import bench_otlp_metrics as b; asyncio.run(b.serve_receiver())"  # fmt: skip
    receiver = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        # Twice each, alternating; the lower CPU of each side is kept (a shared machine adds
        # noise, never removes work).
        runs = [(spawn("sdk", port, n), spawn("ours", port, n)) for _ in range(2)]
    finally:
        assert receiver.stdin is not None
        receiver.stdin.close()
        receiver.wait(10)
    sdk = min((r[0] for r in runs), key=lambda r: r["cpu_s"])
    ours = min((r[1] for r in runs), key=lambda r: r["cpu_s"])

    def per_call_us(r: dict[str, Any]) -> float:
        return float(r["cpu_s"]) / n * 1e6

    rows = [
        ("CPU per exported call (µs, all threads)", f"{per_call_us(sdk):.2f}",
         f"{per_call_us(ours):.2f}", f"{per_call_us(ours) / per_call_us(sdk):.2f}x", "<= 0.5x"),
        ("CPU per export request, 12 attribute sets (ms)", f"{sdk['export_s'] * 1e3:.2f}",
         f"{ours['export_s'] * 1e3:.2f}", f"{ours['export_s'] / sdk['export_s']:.2f}x", ""),
        ("export requests delivered", str(sdk["requests"]), str(ours["requests"]), "", "same"),
        ("Python threads started", f"{sdk['threads']} (PeriodicExportingMetricReader)",
         str(ours["threads"]), "", "0"),
    ]  # fmt: skip
    title = (
        f"GenAI metrics over OTLP/gRPC, {n:,} calls, export every {EXPORT_EVERY:,} — {machine()}"
    )
    sdk_name = "SDK (PeriodicExportingMetricReader + OTLPMetricExporter)"
    print(table(title, rows, ("figure", sdk_name, "ours", "ratio", "target")))


if __name__ == "__main__":
    main()
