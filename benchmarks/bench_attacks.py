"""The collector under each attack of issue 16: a well-behaved client's latency and the loop lag.

Every attack of ``tests/hardening/attacks.py`` (wide spans, a huge OTLP/JSON body, deep values,
trickled headers, slow bodies, idle keep-alive connections, gzip members, unknown model names,
metric labels) runs in a thread against a real collector (OTLP/gRPC, OTLP/HTTP and a Prometheus
endpoint on 127.0.0.1) while a second client sends one-call OTLP/HTTP exports from the
attacker's own address (127.0.0.1: the receiver cannot tell the two apart) and a ticker on the
collector's loop measures its lag; the baseline row is the same client with no attack, in the
same run. "connections shed" is how many of the attacker's connections the receiver closed to
admit others (fair admission, issue 23).

usage:
    .venv/bin/python benchmarks/bench_attacks.py [--quick] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine, table

from asynctelemetry import AsyncCollector, MemoryStore
from asynctelemetry.metrics import MetricsRecorder, PrometheusExporter
from tests.hardening.attacks import (
    ATTACKS,
    Target,
    Victim,
    attacking,
    percentile,
    slowness,
)


async def run(name: str | None, requests: int) -> tuple[str, ...]:
    """One row: the victim's p50/p99/max latency and the loop lag under attack ``name``."""
    store = MemoryStore(capacity=1_000_000)
    metrics = MetricsRecorder()
    async with (
        AsyncCollector(store, port=0, http_port=0, metrics=metrics) as collector,
        PrometheusExporter(port=0, registry=metrics) as exporter,
    ):
        assert collector.http_port is not None
        victim = Victim(collector.http_port)
        await victim.measure(3, 0.0)
        stretch = await asyncio.to_thread(slowness)
        sent = "-"
        if name is None:
            measured = await victim.measure(requests, 0.05)
        else:
            target = Target(collector.endpoint, collector.http_port, exporter.port)
            async with attacking(name, target) as tally:
                while not tally.sent and collector.stats.requests < 3:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                measured = await victim.measure(requests, 0.05)
            sent = ", ".join(f"{k} {v}" for k, v in sorted(tally.answers.items()))
        await collector.flush()
        stats = collector.stats
        lost = stats.llm_calls - stats.stored + store.dropped
        assert collector._http is not None
        shed = collector._http.admission.shed
    ok = sum(status == 200 for status in measured.statuses)
    ms = [x * 1000 for x in measured.latencies]
    lags = [x * 1000 for x in measured.lags]
    return (
        name or "none (baseline)",
        f"{percentile(ms, 50):.0f}",
        f"{percentile(ms, 99):.0f}",
        f"{max(ms):.0f}",
        f"{ok}/{len(ms)}",
        f"{percentile(lags, 99):.0f}",
        f"{max(lags):.0f}",
        f"{stretch:.1f}x",
        str(lost),
        str(shed),
        sent,
    )


async def main(requests: int) -> None:
    print(machine())
    print(
        f"well-behaved client: {requests} one-call OTLP/HTTP protobuf exports from 127.0.0.1 "
        "(the attacker's own address), 50 ms apart, during each attack; loop lag from a 5 ms ticker on the collector's loop; "
        "'CPU stretch' is wall time over CPU time just before the attack (how loaded the "
        "machine was)"
    )
    rows = [await run(None, requests)]
    for name in ATTACKS:
        rows.append(await run(name, requests))
    rows.append(await run(None, requests))
    print(
        table(
            "A well-behaved client during each attack",
            rows,
            (
                "attack",
                "client p50 ms",
                "client p99 ms",
                "client max ms",
                "accepted",
                "loop lag p99 ms",
                "loop lag max ms",
                "CPU stretch",
                "calls lost",
                "connections shed",
                "attacker's answers",
            ),
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per attack")
    parser.add_argument("--requests", type=int, default=None, help="client requests per attack")
    args = parser.parse_args()
    asyncio.run(main(args.requests or (15 if args.quick else 40)))
