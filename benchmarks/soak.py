"""Soak: a collector on SQLite under steady load for a bounded time, then the books are checked.

Load, all on loopback:

* a separate process (grpc.aio client) sends OTLP requests of GenAI spans at a steady rate,
  retrying a request the collector refuses (UNAVAILABLE), so what it counts as sent was accepted;
* in this process, an :class:`AsyncTracer` traces calls at a steady rate and exports them with its
  OTLP/gRPC exporter to the same collector (an app and its collector sharing one event loop).

Checks at the end: calls stored == calls sent (both sources), RSS growth after the warm-up (the
first fifth of the run) under ``--rss-bound`` MiB, no task left (``asyncio.all_tasks()`` back to
its baseline), and the event-loop lag p99 of this process (the collector's loop) under
``--lag-bound`` ms. Stops by itself; exits 1 when a check fails.

    .venv/bin/python benchmarks/soak.py                 # 2 minutes
    .venv/bin/python benchmarks/soak.py --seconds 10    # the short form the test suite runs
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LagMonitor, current_rss_mb, machine, now, table

from asynctelemetry import AsyncCollector, AsyncTracer, SQLiteStore

#: The load process: ``port seconds spans_per_second``; prints the number of spans accepted.
LOAD = r"""
import asyncio, sys, time
import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TICK = 0.05

def kv(key, value):
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))

def request(first, count):
    t = time.time_ns()
    spans = [
        Span(name="chat gpt-4o", trace_id=(i + 1).to_bytes(16, "big"),
             span_id=(i + 1).to_bytes(8, "big"), start_time_unix_nano=t,
             end_time_unix_nano=t + 250_000_000,
             attributes=[kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "gpt-4o"),
                         kv("gen_ai.provider.name", "openai"), kv("gen_ai.usage.input_tokens", 812),
                         kv("gen_ai.usage.output_tokens", 95), kv("request_id", f"load-{i}"),
                         kv("app.user", f"u{i % 100}")])
        for i in range(first, first + count)
    ]
    resource = Resource(attributes=[kv("service.name", "soak-load")])
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])
    ]).SerializeToString()

async def main(port, seconds, rate):
    per_tick = max(1, int(rate * TICK))
    sent = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(EXPORT)
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        while loop.time() - start < seconds:
            body = request(sent, per_tick)
            while True:
                try:
                    await call(body, timeout=10)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.RESOURCE_EXHAUSTED):
                        raise
                    await asyncio.sleep(0.05)
            sent += per_tick
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * TICK - loop.time()))
    print(sent, flush=True)

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
"""


@dataclass
class SoakResult:
    """What a soak run measured, and whether each check held."""

    seconds: float
    sent_process: int = 0
    sent_tracer: int = 0
    stored: int = 0
    rss_start_mb: float = 0.0
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0
    leaked_tasks: int = 0
    refused_requests: int = 0
    exporter_dropped: int = 0
    rss_bound_mb: float = 64.0
    lag_bound_ms: float = 250.0
    failures: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """Calls sent by both sources."""
        return self.sent_process + self.sent_tracer

    @property
    def rss_growth_mb(self) -> float:
        """RSS growth from the end of the warm-up to the end."""
        return self.rss_end_mb - self.rss_warm_mb

    def check(self) -> list[str]:
        """The failed checks, as sentences (empty when all held)."""
        out = []
        if self.stored != self.sent:
            out.append(f"stored {self.stored} != sent {self.sent}")
        if self.rss_growth_mb > self.rss_bound_mb:
            out.append(f"RSS grew {self.rss_growth_mb:.1f} MiB > {self.rss_bound_mb} MiB")
        if self.leaked_tasks:
            out.append(f"{self.leaked_tasks} tasks left running")
        if self.lag_p99_ms > self.lag_bound_ms:
            out.append(f"loop lag p99 {self.lag_p99_ms:.1f} ms > {self.lag_bound_ms} ms")
        self.failures = out
        return out

    def markdown(self) -> str:
        """The figures as a Markdown table."""
        rows = [
            ("duration", f"{self.seconds:.0f} s", ""),
            ("spans sent by the load process", self.sent_process, ""),
            ("calls traced in-process (OTLP export)", self.sent_tracer, ""),
            ("calls stored (SQLite)", self.stored, "== sent"),
            ("requests refused (backpressure, retried)", self.refused_requests, ""),
            ("exporter drops", self.exporter_dropped, ""),
            ("RSS start / after warm-up / end", self._rss(), ""),
            (
                "RSS growth after warm-up",
                f"{self.rss_growth_mb:+.1f} MiB",
                f"< {self.rss_bound_mb}",
            ),
            (
                "event-loop lag p99 / max",
                f"{self.lag_p99_ms:.1f} / {self.lag_max_ms:.1f} ms",
                f"p99 < {self.lag_bound_ms}",
            ),
            ("tasks left after close", self.leaked_tasks, "== 0"),
            ("result", "PASS" if not self.failures else "FAIL: " + "; ".join(self.failures), ""),
        ]
        return table(f"Soak ({machine()})", rows, ("figure", "value", "bound"))

    def _rss(self) -> str:
        return f"{self.rss_start_mb:.0f} / {self.rss_warm_mb:.0f} / {self.rss_end_mb:.0f} MiB"


async def soak(
    seconds: float,
    *,
    load_rate: int = 2000,
    tracer_rate: int = 200,
    rss_bound_mb: float = 64.0,
    lag_bound_ms: float = 250.0,
    directory: str | None = None,
) -> SoakResult:
    """Run the soak for ``seconds`` and return the figures (checks filled in)."""
    result = SoakResult(seconds=seconds, rss_bound_mb=rss_bound_mb, lag_bound_ms=lag_bound_ms)
    baseline = asyncio.all_tasks()
    result.rss_start_mb = current_rss_mb()
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        store = SQLiteStore(Path(tmp) / "soak.db")
        with LagMonitor() as lag:
            async with store, AsyncCollector(store, port=0) as collector:
                tracer = AsyncTracer(
                    service_name="soak-app", otlp_endpoint=f"http://{collector.endpoint}"
                )
                load = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    LOAD,
                    str(collector.port),
                    str(seconds),
                    str(load_rate),
                    stdout=asyncio.subprocess.PIPE,
                )
                async with tracer:
                    result.sent_tracer = await _trace(tracer, seconds, tracer_rate, result)
                    out, _ = await load.communicate()
                    if load.returncode != 0:
                        raise RuntimeError(f"the load process failed ({load.returncode})")
                    result.sent_process = int(out.split()[-1])
                    await tracer.flush()
                exporter = tracer.pipeline.sinks[0]
                result.exporter_dropped = exporter.stats.queue.dropped  # type: ignore[attr-defined]
                await collector.flush()
                result.refused_requests = collector.stats.refused_requests
            result.lag_p99_ms = lag.p99_ms()
            result.lag_max_ms = max(lag.lags, default=0.0) * 1000
        async with SQLiteStore(Path(tmp) / "soak.db") as reread:
            result.stored = await reread.count()
    result.rss_end_mb = current_rss_mb()
    await asyncio.sleep(0)
    leaked = asyncio.all_tasks() - baseline - {asyncio.current_task()}
    result.leaked_tasks = len([t for t in leaked if not t.done()])
    result.check()
    return result


async def _trace(tracer: AsyncTracer, seconds: float, rate: int, result: SoakResult) -> int:
    """Trace ``rate`` calls a second for ``seconds``; note RSS at the end of the warm-up."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    warm_at = start + seconds / 5
    interval = 1.0 / rate
    count = 0
    while (elapsed := loop.time() - start) < seconds:
        async with tracer.llm_call(model="gpt-4o", provider="openai", session_id="s") as call:
            call.first_token()
            call.set_usage(input_tokens=500, output_tokens=50)
        count += 1
        if not result.rss_warm_mb and loop.time() >= warm_at:
            result.rss_warm_mb = current_rss_mb()
        await asyncio.sleep(max(0.0, count * interval - elapsed))
    return count


def main() -> int:
    """Parse the arguments, run, print the table; 1 when a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--load-rate", type=int, default=2000, help="spans/s from the process")
    parser.add_argument("--tracer-rate", type=int, default=200, help="calls/s traced in-process")
    parser.add_argument("--rss-bound", type=float, default=64.0, help="MiB after warm-up")
    parser.add_argument("--lag-bound", type=float, default=250.0, help="loop lag p99, ms")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else (args.minutes or 2.0) * 60
    started = now()
    result = asyncio.run(
        soak(
            seconds,
            load_rate=args.load_rate,
            tracer_rate=args.tracer_rate,
            rss_bound_mb=args.rss_bound,
            lag_bound_ms=args.lag_bound,
        )
    )
    print(result.markdown())
    print(f"\nwall time {now() - started:.1f} s")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
