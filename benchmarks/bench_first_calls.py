"""How long each of the first 100 traced calls of a fresh process holds the event loop, beside the
old way (price data imported on the loop at the first call's exit) measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_first_calls.py [--quick]``

Each case runs in a fresh interpreter, so genai-prices really is imported for the first time.
100 calls (three models, usage set, 1 ms of "network" each, one after another) go through an
in-memory tracer; a call's hold is its ``async with`` enter plus its exit (the synchronous work it
puts on the loop), and the longest loop step is the longest callback the loop ran from the first
call until every record was delivered (background work included: the delivery of calls kept
while the price data loaded). Cases: the tracer entered with ``async with`` (the data loads in a
thread before the block); not entered (the load starts in a thread at the first call; calls that
end before it are priced when it is loaded); the baseline (the price data imported on the loop
inside the first call's exit, as before); and a warm process (data loaded before), the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, table

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import asyncio, json, sys, time
from asyncio import events

steps = []
_run = events.Handle._run


def timed(self):
    start = time.perf_counter()
    try:
        _run(self)
    finally:
        steps.append(time.perf_counter() - start)


events.Handle._run = timed

from asynctelemetry import AsyncTracer, PriceTable

MODELS = ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash")
PROVIDERS = ("openai", "anthropic", "google")


async def main(case, n):
    clock = time.perf_counter
    if case == "warm":
        PriceTable.default().load()
    tracer = AsyncTracer(in_memory=n)
    entered_s = None
    if case == "entered":
        start = clock()
        await tracer.__aenter__()
        entered_s = clock() - start
    steps.clear()
    await asyncio.sleep(0)  # the step that ran the set-up above ends here: not counted
    steps.clear()
    holds = []
    begun = clock()
    for i in range(n):
        handle = tracer.llm_call(model=MODELS[i % 3], provider=PROVIDERS[i % 3])
        t0 = clock()
        call = await handle.__aenter__()
        t1 = clock()
        call.set_usage(input_tokens=1000 + i, output_tokens=100)
        await asyncio.sleep(0.001)
        t2 = clock()
        if case == "baseline" and i == 0:
            PriceTable.default().load()  # what the first call's exit did before: on the loop
        await handle.__aexit__(None, None, None)
        t3 = clock()
        holds.append((t1 - t0) + (t3 - t2))
    calls_s = clock() - begun
    await tracer.flush()
    delivered_s = clock() - begun
    records = tracer.spans
    priced = sum(1 for r in records if r.cost_usd is not None)
    longest = max(steps)
    await tracer.aclose()
    print(json.dumps({
        "holds_ms": [h * 1e3 for h in holds],
        "longest_step_ms": longest * 1e3,
        "calls_s": calls_s,
        "delivered_s": delivered_s,
        "entered_s": entered_s,
        "records": len(records),
        "priced": priced,
    }))


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

CASES = {
    "entered": "`async with AsyncTracer()` (loads in a thread first)",
    "not-entered": "tracer not entered (load starts at call 1)",
    "baseline": "baseline: imported on the loop at call 1's exit",
    "warm": "floor: warm process (data loaded before)",
}


def run_case(case: str, n: int) -> dict[str, object]:
    """One case in a fresh interpreter; what it measured."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), case, str(n)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run every case (``--repeat`` fresh processes each) and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one process per case")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per case")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    n = 100
    rows = []
    for case, label in CASES.items():
        runs = [run_case(case, n) for _ in range(repeat)]
        holds = [h for run in runs for h in run["holds_ms"]]  # type: ignore[attr-defined]
        first = [run["holds_ms"][0] for run in runs]  # type: ignore[index]
        worst_run = max(runs, key=lambda run: max(run["holds_ms"]))  # type: ignore[arg-type]
        longest = max(float(run["longest_step_ms"]) for run in runs)  # type: ignore[arg-type]
        over = sum(1 for h in holds if h >= 5.0)
        entered = [run["entered_s"] for run in runs if run["entered_s"] is not None]
        rows.append(
            (
                label,
                f"{max(first):.2f}",
                f"{max(worst_run['holds_ms']):.2f}",  # type: ignore[arg-type]
                f"{percentile(holds, 0.5):.3f}",
                f"{over}/{len(holds)}",
                f"{longest:.2f}",
                f"{max(float(run['delivered_s']) for run in runs) * 1e3:.0f}",  # type: ignore[arg-type]
                f"{max(float(e) for e in entered) * 1e3:.0f}" if entered else "-",  # type: ignore[arg-type]
                f"{min(int(run['priced']) for run in runs)}/{n}",  # type: ignore[call-overload]
            )
        )
    print(
        table(
            f"first {n} calls of a fresh process, loop hold per call "
            f"({repeat} process{'es' if repeat > 1 else ''} per case; {machine()})",
            rows,
            (
                "case",
                "call 1 hold ms",
                "max hold ms",
                "median ms",
                "calls >= 5 ms",
                "longest loop step ms",
                "all delivered ms",
                "enter ms (awaited)",
                "priced",
            ),
        )
    )
    print()
    print(
        "hold: the call's `async with` enter plus exit, the time it keeps the loop; longest loop "
        "step: any callback the loop ran meanwhile (delivery of calls kept while the data loaded "
        "included); all delivered: from the first call until `flush()` returned; enter: what "
        "`async with AsyncTracer()` awaited (the loop runs meanwhile)."
    )


if __name__ == "__main__":
    main()
