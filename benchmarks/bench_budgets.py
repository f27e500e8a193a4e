"""Budgets: what a reservation costs a call, and how far past a limit racing calls can spend.

1. Hot path, CPU µs per ``async with tracer.llm_call(...)`` (MemoryStore sink), beside the same
   tracer without budgets in the same run: one unkeyed budget and a per-session one, in memory
   (target: reservation + settlement <= 5 µs per call).
2. PostgreSQL: wall-clock ms per call with the budget kept in the database (one round trip to
   reserve; the settlement runs on the loop in the background), and the event loop's lag.
3. Overshoot, run 20 times each, worst reported: 200 concurrent calls against a $1.00 budget in
   one process (memory), and 4 processes x 50 concurrent calls against one PostgreSQL budget.
   Every call reserves $0.01 and costs $0.011, so each underestimates by $0.001; the bound is
   the underestimates of the calls in flight when the limit is reached.

usage: python benchmarks/bench_budgets.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import LagMonitor, machine, table

from asynctelemetry import (
    AsyncTracer,
    Budget,
    BudgetExceededError,
    MemoryStore,
    ModelPricing,
    PostgresStore,
)
from tests.pg import fresh_schema, start_server, stop_server

QUICK = "--quick" in sys.argv
N = 5_000 if QUICK else 30_000
RUNS = 5 if QUICK else 20
TABLE = {"budget-model": ModelPricing(input_per_million=1.0, output_per_million=1.0)}
ROOT = Path(__file__).resolve().parent.parent


async def per_call_cpu(budgets: list[Budget]) -> float:
    """CPU µs per traced call with these budgets (best of 5 rounds of N calls)."""
    best = float("inf")
    for _ in range(5):
        store = MemoryStore(capacity=N)
        async with AsyncTracer(store=store, price_table=TABLE, budgets=budgets) as tracer:
            with tracer.context(session_id="s1"):
                begun = time.process_time()
                for _ in range(N):
                    async with tracer.llm_call(model="budget-model", estimate_usd=1e-9) as call:
                        call.set_usage(input_tokens=10, output_tokens=1)
                best = min(best, (time.process_time() - begun) / N * 1e6)
    return best


async def postgres_calls(dsn: str, calls: int) -> tuple[float, LagMonitor]:
    """ms per sequential call with a PostgreSQL budget, and the loop's lag meanwhile."""
    lag = LagMonitor()
    async with PostgresStore(dsn) as store:
        budget = Budget(1e6, name="pg")
        async with AsyncTracer(store=store, price_table=TABLE, budgets=[budget]) as tracer:
            async with tracer.llm_call(model="budget-model"):  # connect, create the tables
                pass
            with lag:
                begun = time.perf_counter()
                for _ in range(calls):
                    async with tracer.llm_call(model="budget-model", estimate_usd=0.01) as call:
                        call.set_usage(input_tokens=10, output_tokens=1)
                elapsed = time.perf_counter() - begun
    return elapsed / calls * 1e3, lag


async def overshoot_memory() -> tuple[float, int]:
    """Spend past $1.00 by 200 concurrent calls in one process; calls made."""
    made = 0
    async with AsyncTracer(price_table=TABLE, budgets=[Budget(1.0)]) as tracer:

        async def one() -> None:
            nonlocal made
            try:
                async with tracer.llm_call(model="budget-model", estimate_usd=0.01) as call:
                    await asyncio.sleep(0.001)
                    call.set_usage(input_tokens=11_000, output_tokens=0)
                made += 1
            except BudgetExceededError:
                pass

        await asyncio.gather(*(one() for _ in range(200)))
        [status] = await tracer.budget_status()
    return status.spent_usd - 1.0, made


async def overshoot_processes(dsn: str) -> tuple[float, int]:
    """Spend past $1.00 by 4 processes x 50 concurrent calls sharing one PostgreSQL budget."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.budgets.worker",
            dsn,
            "50",
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        for _ in range(4)
    ]
    results = [json.loads((await p.communicate())[0]) for p in procs]
    return sum(r["spent"] for r in results) - 1.0, sum(r["made"] for r in results)


async def main() -> None:
    print(f"machine: {machine()}; {N:,} calls per round")
    plain = await per_call_cpu([])
    one = await per_call_cpu([Budget(1e9)])
    two = await per_call_cpu([Budget(1e9), Budget(1e9, by="session", name="per-session")])
    print(
        table(
            "Hot path: CPU per traced call (MemoryStore), budgets in memory",
            [
                ("no budgets (baseline)", f"{plain:.2f}", "-"),
                ("one budget", f"{one:.2f}", f"+{one - plain:.2f}"),
                ("two budgets (one per session)", f"{two:.2f}", f"+{two - plain:.2f}"),
            ],
            ("tracer", "µs per call", "reservation + settlement"),
        )
    )
    print()
    memory = [await overshoot_memory() for _ in range(RUNS)]
    server = await asyncio.to_thread(start_server)
    try:
        ms, lag = await postgres_calls(await fresh_schema(server), 300 if QUICK else 2000)
        print(
            table(
                "PostgreSQL budget: sequential calls (reserve = one round trip)",
                [(f"{ms:.3f}", f"{lag.p99_ms(lag.held):.2f}", f"{max(lag.held) * 1e3:.2f}")],
                ("ms per call", "loop held p99 ms", "loop held max ms"),
            )
        )
        print()
        shared = [await overshoot_processes(await fresh_schema(server)) for _ in range(RUNS)]
    finally:
        await asyncio.to_thread(stop_server, server)
    rows = []
    for name, runs in (
        ("200 concurrent calls, one process (memory)", memory),
        ("4 processes x 50 concurrent calls (PostgreSQL)", shared),
    ):
        over = [o for o, _ in runs]
        made = [m for _, m in runs]
        rows.append(
            (
                name,
                str(len(runs)),
                f"${max(over):.4f}",
                f"${statistics.median(over):.4f}",
                f"{min(made)} to {max(made)}",
                f"${0.001 * max(made):.4f}",
            )
        )
    print(
        table(
            "Overshoot past a $1.00 limit (each call reserves $0.01, costs $0.011)",
            rows,
            (
                "load",
                "runs",
                "worst over",
                "median over",
                "calls made",
                "bound: in-flight underestimates",
            ),
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
