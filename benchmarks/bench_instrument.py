"""CPU cost of ``tracer.instrument(client)``: the real openai and anthropic SDKs against a local
server, instrumented beside un-instrumented, and beside tracing the same call by hand with
``llm_call``; per call and per streamed chunk.

Every figure is CPU time of this process per call (``time.process_time``: the fake model server
runs in another process and does not count), best of several interleaved runs. Rows:

- the SDK call un-instrumented (the baseline), the same call traced by hand (``async with
  tracer.llm_call(...)`` + ``call.record_response``), and the instrumented client;
- streams of a few and of many chunks, whose difference gives the cost per chunk end to end;
- the per-chunk work alone: iterating real SDK chunk objects through the traced stream wrapper
  beside iterating them bare (no HTTP, so little noise).

Target (issue 15): instrumented <= llm_call overhead + 10 us per call, + 2 us per chunk.

usage: python benchmarks/bench_instrument.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import openai

from asynctelemetry import MemoryStore
from asynctelemetry._instrument import _openai
from asynctelemetry._instrument._hook import _hook
from asynctelemetry._stream import TracedStream
from asynctelemetry._tracer import AsyncTracer
from asynctelemetry._usage import read_openai_chat_chunk

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import machine

QUICK = "--quick" in sys.argv
CALLS = 200 if QUICK else 600
STREAMS = 60 if QUICK else 200
RUNS = 3 if QUICK else 5
FEW, MANY = 4, 64
ROOT = Path(__file__).resolve().parent.parent
MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
USAGE: Any = {"include_usage": True}

SERVER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from tests.instrument.llm_server import LLMServer

async def main():
    server = LLMServer()
    await server.start()
    print(server.url, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()

asyncio.run(main())
"""


def per_call(started: float, n: int) -> float:
    """Microseconds of CPU per call since ``started``."""
    return (time.process_time() - started) / n * 1e6


async def chat(client: openai.AsyncOpenAI, n: int) -> float:
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    return per_call(started, n)


async def chat_by_hand(client: openai.AsyncOpenAI, tracer: AsyncTracer, n: int) -> float:
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.record_response(
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            )
    return per_call(started, n)


async def chat_stream(client: openai.AsyncOpenAI, n: int, chunks: int) -> float:
    headers = {"x-chunks": str(chunks), "x-delay": "0"}
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,
            stream=True,
            stream_options=USAGE,
            extra_headers=headers,
        )
        async for _ in stream:
            pass
    return per_call(started, n)


async def claude_stream(client: anthropic.AsyncAnthropic, n: int, chunks: int) -> float:
    headers = {"x-chunks": str(chunks), "x-delay": "0"}
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        stream = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=MESSAGES,
            stream=True,
            extra_headers=headers,
        )
        async for _ in stream:
            pass
    return per_call(started, n)


async def llm_call_alone(tracer: AsyncTracer, response: object, n: int) -> float:
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
            call.record_response(response)
    return per_call(started, n)


async def hook_alone(tracer: AsyncTracer | None, response: Any, n: int) -> float:
    """Microseconds of CPU per call of the SDK's request method (a stand-in that returns a
    ready ChatCompletion: no HTTP, no SDK), bare or behind the instrumentation hook."""
    from openai._models import FinalRequestOptions

    async def original(
        cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None
    ) -> Any:
        return response

    api = _openai.api_for(openai, openai.AsyncOpenAI(api_key="x"))
    call = original if tracer is None else _hook(tracer, original, api)
    body = {"model": "gpt-4o", "messages": MESSAGES}
    options = FinalRequestOptions.construct(method="post", url="/chat/completions", json_data=body)
    kind = openai.types.chat.ChatCompletion
    gc.collect()
    started = time.process_time()
    for _ in range(n):
        await call(kind, options)
    return per_call(started, n)


async def chunks_through(tracer: AsyncTracer | None, chunks: list[Any], n: int) -> float:
    """Microseconds of CPU per stream of ``chunks``, iterated bare or through the traced stream
    wrapper that instrumented OpenAI streams use (its call begun, read and recorded)."""

    async def source() -> Any:
        for chunk in chunks:
            yield chunk

    gc.collect()
    started = time.process_time()
    for _ in range(n):
        if tracer is None:
            async for _ in source():
                pass
        else:
            handle = tracer.llm_call(model="gpt-4o", provider="openai", operation="stream")
            stream = TracedStream(tracer, source(), handle, reader=read_openai_chat_chunk)
            async for _ in stream:
                pass
    return per_call(started, n)


def sample_chunks(count: int) -> list[Any]:
    """Real ``ChatCompletionChunk`` objects: an opening frame, content, a usage chunk."""
    kind = openai.types.chat.ChatCompletionChunk
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    out = [
        kind.model_validate(
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        )
    ]
    out += [
        kind.model_validate({**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
        for i in range(count - 2)
    ]
    usage = {"prompt_tokens": 50, "completion_tokens": count, "total_tokens": 50 + count}
    out.append(kind.model_validate({**base, "choices": [], "usage": usage}))
    return out


def row(name: str, value: float, base: float | None = None) -> str:
    extra = "" if base is None else f"{value - base:+.1f}"
    return f"| {name} | {value:.1f} | {extra} |"


async def main() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    tracer = AsyncTracer(store=MemoryStore(capacity=1000))
    plain = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    traced = tracer.instrument(openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0))
    plain_claude = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
    traced_claude = tracer.instrument(
        anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
    )
    response = await plain.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    few_chunks, many_chunks = sample_chunks(FEW), sample_chunks(MANY)
    # The SDKs' modules make a large heap that every collection walks: freeze it, as a long
    # running app's old generation is, so collections cost what the calls make.
    gc.collect()
    gc.freeze()
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, float("inf")), value)

    plain2 = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    plain_claude2 = anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0)
    steps: list[tuple[str, Any]] = [
        ("sdk", lambda: chat(plain, CALLS)),
        ("sdk_again", lambda: chat(plain2, CALLS)),
        ("by_hand", lambda: chat_by_hand(plain, tracer, CALLS)),
        ("instrumented", lambda: chat(traced, CALLS)),
        ("llm_call", lambda: llm_call_alone(tracer, response, CALLS * 10)),
        ("hook_bare", lambda: hook_alone(None, response, CALLS * 10)),
        ("hook_traced", lambda: hook_alone(tracer, response, CALLS * 10)),
        ("stream_few_sdk", lambda: chat_stream(plain, STREAMS, FEW)),
        ("stream_few_again", lambda: chat_stream(plain2, STREAMS, FEW)),
        ("stream_few_instr", lambda: chat_stream(traced, STREAMS, FEW)),
        ("stream_many_sdk", lambda: chat_stream(plain, STREAMS, MANY)),
        ("stream_many_again", lambda: chat_stream(plain2, STREAMS, MANY)),
        ("stream_many_instr", lambda: chat_stream(traced, STREAMS, MANY)),
        ("claude_few_sdk", lambda: claude_stream(plain_claude, STREAMS, FEW)),
        ("claude_few_again", lambda: claude_stream(plain_claude2, STREAMS, FEW)),
        ("claude_few_instr", lambda: claude_stream(traced_claude, STREAMS, FEW)),
        ("claude_many_sdk", lambda: claude_stream(plain_claude, STREAMS, MANY)),
        ("claude_many_again", lambda: claude_stream(plain_claude2, STREAMS, MANY)),
        ("claude_many_instr", lambda: claude_stream(traced_claude, STREAMS, MANY)),
        ("wrap_few_bare", lambda: chunks_through(None, few_chunks, CALLS)),
        ("wrap_few_traced", lambda: chunks_through(tracer, few_chunks, CALLS)),
        ("wrap_many_bare", lambda: chunks_through(None, many_chunks, CALLS)),
        ("wrap_many_traced", lambda: chunks_through(tracer, many_chunks, CALLS)),
    ]
    for run in range(RUNS + 1):  # run 0 warms up: connections, imports, price lookups
        # Every other run goes backwards, so no variant always follows the same one.
        for name, step in steps if run % 2 else steps[::-1]:
            value = await step()
            if run:
                keep(name, value)
    await plain2.close()
    await plain_claude2.close()
    await plain.close()
    await traced.close()
    await plain_claude.close()
    await traced_claude.close()
    await tracer.aclose()
    assert server.stdin is not None
    server.stdin.close()
    server.wait(timeout=10)

    b = best
    by_hand = b["by_hand"] - b["sdk"]
    instrumented = b["instrumented"] - b["sdk"]
    print(f"machine: {machine()}")
    print(
        f"{CALLS} calls and {STREAMS} streams per run, best of {RUNS} runs; CPU time of the client process."
    )
    print()
    print("### One chat completion (openai SDK, local server)")
    print()
    print("| | CPU us per call | vs the SDK alone |")
    print("|---|---:|---:|")
    print(row("SDK, un-instrumented (baseline)", b["sdk"]))
    print(row("SDK again: a second un-instrumented client (noise floor)", b["sdk_again"], b["sdk"]))
    print(row("SDK traced by hand: `llm_call` + `record_response`", b["by_hand"], b["sdk"]))
    print(row("instrumented client", b["instrumented"], b["sdk"]))
    print(row("`llm_call` + `record_response` alone (no SDK)", b["llm_call"]))
    hook = b["hook_traced"] - b["hook_bare"]
    print(f"| the instrumentation hook alone (no HTTP, no SDK): overhead | {hook:.1f} | |")
    print()
    print("### Streams: per stream and per chunk")
    print()
    print(f"| CPU us per stream | {FEW} chunks | {MANY} chunks | per chunk (slope) |")
    print("|---|---:|---:|---:|")
    slopes = {}
    for label, key in (("openai chat", "stream"), ("anthropic messages", "claude")):
        base_slope = (b[f"{key}_many_sdk"] - b[f"{key}_few_sdk"]) / (MANY - FEW)
        for variant, name in (
            ("SDK", "sdk"),
            ("SDK again (noise floor)", "again"),
            ("instrumented", "instr"),
        ):
            few_v, many_v = b[f"{key}_few_{name}"], b[f"{key}_many_{name}"]
            slope = (many_v - few_v) / (MANY - FEW)
            slopes[f"{key}_{name}"] = slope - base_slope
            print(f"| {label}, {variant} | {few_v:.1f} | {many_v:.1f} | {slope:.2f} |")
    few = b["wrap_few_traced"] - b["wrap_few_bare"]
    many = b["wrap_many_traced"] - b["wrap_many_bare"]
    per_chunk = (many - few) / (MANY - FEW)
    print()
    print("### The traced stream wrapper alone (real ChatCompletionChunk objects, no HTTP)")
    print()
    print(f"| | {FEW} chunks | {MANY} chunks | per chunk (slope) |")
    print("|---|---:|---:|---:|")
    print(
        f"| bare async iteration, CPU us per stream | {b['wrap_few_bare']:.1f} | "
        f"{b['wrap_many_bare']:.1f} | {(b['wrap_many_bare'] - b['wrap_few_bare']) / (MANY - FEW):.2f} |"
    )
    print(
        f"| through the wrapper (call begun, chunks read, record made) | {b['wrap_few_traced']:.1f} | "
        f"{b['wrap_many_traced']:.1f} | {(b['wrap_many_traced'] - b['wrap_few_traced']) / (MANY - FEW):.2f} |"
    )
    print(f"| overhead | {few:+.1f} | {many:+.1f} | {per_chunk:+.2f} |")
    print()
    print(
        f"Per call: the hook costs {hook:.1f} us against {b['llm_call']:.1f} us for llm_call + "
        f"record_response (target: at most +10 us over it: "
        f"{'met' if hook <= b['llm_call'] + 10 else 'NOT met'}). End to end: instrumented "
        f"{instrumented:+.1f} us, traced by hand {by_hand:+.1f} us, a second plain client "
        f"{b['sdk_again'] - b['sdk']:+.1f} us (the noise floor)."
    )
    print(
        f"Per chunk: {per_chunk:+.2f} us through the wrapper alone (target: at most +2 us: "
        f"{'met' if per_chunk <= 2 else 'NOT met'}). End to end the slope differences are "
        f"{slopes['stream_instr']:+.2f} us (openai) and {slopes['claude_instr']:+.2f} us "
        f"(anthropic), against {slopes['stream_again']:+.2f} / {slopes['claude_again']:+.2f} us "
        "between two un-instrumented clients (the noise floor)."
    )


if __name__ == "__main__":
    asyncio.run(main())
