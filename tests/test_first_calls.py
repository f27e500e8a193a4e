"""The first calls of a fresh process: the price data loads in a thread, never on the loop, and a
finalizer never prices (issue #23, fault 1; issue #22, "nothing on the hot path is slow the first
time").

Each test runs a script in a fresh interpreter, so the price data really is imported for the first
time there; a hang fails the test at its timeout instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asynctelemetry import AsyncTracer

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 45.0

#: A stream dropped after a ``break`` and left in a reference cycle, collected by the first
#: automatic garbage collection, which comes during the first import of the price data (old code:
#: on the loop, at the first priced call's exit, holding the price data's lock).
_DROP_IN_A_CYCLE = """
import asyncio, gc, json, sys

from asynctelemetry import AsyncTracer


async def chunks():
    for _ in range(5):
        yield {"choices": [{"delta": {"content": "x"}}]}


async def drop_in_a_cycle(tracer, how):
    if how == "wrap_stream":
        stream = tracer.wrap_stream(chunks(), model="gpt-4o", provider="openai")
        async for _ in stream:
            break
        return [stream], None
    import openai
    from tests.instrument.llm_server import LLMServer

    server = LLMServer()
    await server.start()
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="t", max_retries=0)
    tracer.instrument(client)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
        extra_headers={"x-chunks": "20"},
    )
    async for _ in stream:
        break
    return [stream], (server, client)


async def main(how):
    tracer = AsyncTracer(in_memory=True)
    gc.disable()
    held, rest = await drop_in_a_cycle(tracer, how)
    await asyncio.sleep(0.01)  # the loop closes the generator the ``async for`` left
    gc.collect(0)  # the stream and its holder move to generation 1, not yet garbage
    held.append(held)
    del held  # garbage now: collected by the first generation-1 collection, during the import
    gc.enable()
    async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
        call.set_usage(input_tokens=1000, output_tokens=100)
    for _ in range(3):  # if no automatic collection came meanwhile (see tests/instrument)
        gc.collect()
        await asyncio.sleep(0.01)
    await tracer.flush()
    records = sorted((r.status, r.cost_usd is not None) for r in tracer.spans)
    await tracer.aclose()
    if rest is not None:
        await rest[1].close()
        await rest[0].stop()
    print(json.dumps({"records": records, "sink_errors": tracer.stats.sink_errors}))


asyncio.run(main(sys.argv[1]))
"""

#: Records whether genai-prices is imported on the main thread (the loop's).
_WATCH = """
import asyncio, json, sys, threading

importers = []


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "genai_prices":
            importers.append(threading.current_thread() is threading.main_thread())
        return None


sys.meta_path.insert(0, Watch())
"""

#: What the first calls look like, and where the price data was imported.
_FIRST_CALLS = (
    _WATCH
    + """
from asynctelemetry import AsyncTracer


async def main(entered):
    tracer = AsyncTracer(in_memory=True)
    if entered:
        await tracer.__aenter__()
    for _ in range(3):
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.set_usage(input_tokens=1000, output_tokens=100)
    at_once = [r.cost_usd for r in tracer.spans]
    await tracer.flush()
    after_flush = [(r.cost_usd, r.price_version) for r in tracer.spans]
    await tracer.aclose()
    print(json.dumps({"on_main_thread": importers, "at_once": at_once, "after": after_flush}))


asyncio.run(main(sys.argv[1] == "entered"))
"""
)


#: ``reprice`` in a fresh process: the price data is imported in a thread.
_REPRICE = (
    _WATCH
    + """
from datetime import UTC, datetime

from asynctelemetry import LLMCall, MemoryStore, PriceTable


async def main():
    store = MemoryStore()
    call = LLMCall(
        call_id="c1", timestamp=datetime.now(UTC), model="gpt-4o", provider="openai",
        input_tokens=1000, output_tokens=100,
    )
    await store.add_many([call])
    changed = await store.reprice(PriceTable.default())
    print(json.dumps({"on_main_thread": importers, "changed": changed}))


asyncio.run(main())
"""
)


def run_fresh(script: str, *args: str) -> dict[str, object]:
    """Run ``script`` in a fresh interpreter (repo root as cwd); its last stdout line as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the process hung for {TIMEOUT:.0f} s (a deadlock)")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("how", ["wrap_stream", "openai"])
def test_a_stream_collected_during_the_first_price_import_does_not_hang(how: str) -> None:
    """#23 fault 1: a dropped stream in a reference cycle, collected while the price data is
    imported for the first time. Its finalizer used to record the call there, and pricing waited
    for the lock the import held on the same thread: the loop hung for good. Now the finalizer
    hands the recording to the loop, and both calls are recorded (priced when usage is known)."""
    result = run_fresh(_DROP_IN_A_CYCLE, how)
    # the dropped stream had no usage: unknown cost (None); the call with usage is priced
    assert result == {"records": [["ok", False], ["ok", True]], "sink_errors": 0}


def test_the_price_data_is_imported_off_the_loop_and_early_calls_are_priced_later() -> None:
    """A tracer used without ``async with``: the first call starts loading the price data in a
    thread (never on the loop's thread); calls that end before it is loaded are kept, then priced
    and handed on when it is (``flush`` waits for them)."""
    result = run_fresh(_FIRST_CALLS, "not-entered")
    assert result["on_main_thread"] == [False]
    after = result["after"]
    assert isinstance(after, list) and len(after) == 3
    assert all(cost is not None and cost > 0 and version for cost, version in after)


def test_an_entered_tracer_prices_its_first_calls_at_once() -> None:
    """``async with AsyncTracer()`` loads the price data (in a thread) before the block: the first
    calls are priced as they end."""
    result = run_fresh(_FIRST_CALLS, "entered")
    assert result["on_main_thread"] == [False]
    at_once = result["at_once"]
    assert isinstance(at_once, list) and len(at_once) == 3
    assert all(cost is not None and cost > 0 for cost in at_once)


async def _chunks() -> object:
    for _ in range(5):
        yield {"choices": [{"delta": {"content": "x"}}]}
        await asyncio.sleep(0)


def test_a_stream_dropped_after_its_loop_closed_is_counted_lost_not_recorded() -> None:
    """A finalizer with no loop left to hand the recording to does not record (no pricing
    there): the call is counted in ``stats.sink_errors``."""
    tracer = AsyncTracer(in_memory=True)

    async def read_one() -> object:
        stream = tracer.wrap_stream(_chunks(), model="gpt-4o")  # type: ignore[arg-type]
        async for _ in stream:
            break
        return stream

    loop = asyncio.new_event_loop()
    try:
        stream = loop.run_until_complete(read_one())
    finally:
        loop.close()
    del stream
    gc.collect()
    assert tracer.spans == []
    assert tracer.stats.sink_errors == 1


def test_reprice_loads_the_price_data_in_a_thread() -> None:
    """A store's ``reprice`` in a fresh process imports the price data off the loop's thread."""
    assert run_fresh(_REPRICE) == {"on_main_thread": [False], "changed": 1}
