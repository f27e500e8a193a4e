"""CPU cost of ``tracer.instrument(client)``: the real openai, anthropic, google-genai, mistralai
and litellm packages against a local server, instrumented beside un-instrumented, and beside
tracing the same call by hand with ``llm_call``; per call and per streamed chunk.

Every figure is CPU time of this process per call (``time.process_time``: the fake model server
runs in another process and does not count), best of several interleaved runs. Rows:

- the SDK call un-instrumented (the baseline), the same call traced by hand (``async with
  tracer.llm_call(...)`` + ``call.record_response``), and the instrumented client;
- streams of a few and of many chunks, whose difference gives the cost per chunk end to end;
- the per-chunk work alone: iterating real SDK chunk objects through the traced stream wrapper
  beside iterating them bare (no HTTP, so little noise);
- for google-genai, mistralai and litellm: a plain call and streams end to end, un-instrumented
  beside instrumented; the method hook alone around a ready response (no HTTP) beside
  ``llm_call`` + ``record_response`` of it; their real chunks through the traced stream with
  each client's reader beside bare.

Target (issue 15): instrumented <= llm_call overhead + 10 us per call, + 2 us per chunk.

usage: python benchmarks/bench_instrument.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm never fetches it

import anthropic
import litellm
import openai
from google import genai
from mistralai.client import Mistral

from asynctelemetry import MemoryStore
from asynctelemetry._instrument import _google, _litellm, _mistral, _openai
from asynctelemetry._instrument._hook import Route, _hook
from asynctelemetry._instrument._methods import Method, _wrap
from asynctelemetry._stream import TracedStream
from asynctelemetry._tracer import AsyncTracer
from asynctelemetry._usage import read_openai_chat_chunk

if TYPE_CHECKING:
    from collections.abc import Callable

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


async def chunks_through(
    tracer: AsyncTracer | None,
    chunks: list[Any],
    n: int,
    route: Route | None = None,
) -> float:
    """Microseconds of CPU per stream of ``chunks``, iterated bare or through the traced stream
    wrapper that instrumented streams use (its call begun, read as ``route`` reads a stream's
    chunks, recorded); OpenAI's chat reader without a route."""

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
            reader, on_end = read_openai_chat_chunk, None
            if route is not None:
                reader = route.read_chunk
                if route.per_stream is not None:
                    reader, on_end = route.per_stream()
            stream = TracedStream(tracer, source(), handle, reader=reader, on_end=on_end)
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


class Client:
    """One of the clients instrumented by method hooks, for the benchmark: a plain call and a
    stream of ``chunks`` chunks through ``sdk`` (un-instrumented or instrumented), and what the
    no-HTTP rows need (the method, its reader, a ready response and real chunks)."""

    def __init__(
        self,
        name: str,
        provider: str | None,
        method: Method,
        call: Callable[[Any], Any],
        stream: Callable[[Any, int], Any],
        body: dict[str, Any],
    ) -> None:
        self.name, self.provider, self.method = name, provider, method
        self.call, self.stream, self.body = call, stream, body
        self.response: Any = None
        self.few: list[Any] = []
        self.many: list[Any] = []

    async def calls(self, sdk: Any, n: int) -> float:
        gc.collect()
        started = time.process_time()
        for _ in range(n):
            await self.call(sdk)
        return per_call(started, n)

    async def streams(self, sdk: Any, n: int, chunks: int) -> float:
        gc.collect()
        started = time.process_time()
        for _ in range(n):
            async for _ in await self.stream(sdk, chunks):
                pass
        return per_call(started, n)

    async def hook(self, tracer: AsyncTracer | None, n: int) -> float:
        """The method hook around a stand-in that returns the ready response (bare: none)."""
        response = self.response

        async def original(**_: Any) -> Any:
            return response

        call = original if tracer is None else _wrap(tracer, self.provider, original, self.method)
        body = self.body
        gc.collect()
        started = time.process_time()
        for _ in range(n):
            await call(**body)
        return per_call(started, n)

    async def by_hand(self, tracer: AsyncTracer, n: int) -> float:
        """``llm_call`` + ``record_response`` of the ready response (no SDK)."""
        gc.collect()
        started = time.process_time()
        for _ in range(n):
            async with tracer.llm_call(model="m", provider=self.provider) as call:
                call.record_response(self.response)
        return per_call(started, n)


def more_clients(url: str) -> tuple[list[Client], dict[str, tuple[Any, Any]]]:
    """The google-genai, mistralai and litellm cases, and their (plain, instrumented) SDKs."""
    options = {"base_url": url, "retry_options": None}
    message = [{"role": "user", "content": "Say hello"}]

    def headers(chunks: int) -> dict[str, str]:
        return {"x-chunks": str(chunks), "x-delay": "0"}

    google = Client(
        "google-genai",
        "google",
        _google.METHODS[0],
        lambda sdk: sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="hi"),
        lambda sdk, chunks: sdk.aio.models.generate_content_stream(
            model="gemini-2.5-flash",
            contents="hi",
            config={"http_options": {"headers": headers(chunks)}},
        ),
        {"model": "gemini-2.5-flash", "contents": "hi"},
    )
    mistral = Client(
        "mistralai",
        _mistral.PROVIDER,
        _mistral.METHODS["chat"][0],
        lambda sdk: sdk.chat.complete_async(model="mistral-small-latest", messages=message),
        lambda sdk, chunks: sdk.chat.stream_async(
            model="mistral-small-latest", messages=message, http_headers=headers(chunks)
        ),
        {"model": "mistral-small-latest", "messages": message},
    )
    route = {"model": "openai/gpt-4o", "api_base": f"{url}/v1", "api_key": "x", "max_retries": 0}
    lite = Client(
        "litellm (OpenAI route)",
        None,
        _litellm.METHODS[0],
        lambda sdk: sdk(messages=message, **route),
        lambda sdk, chunks: sdk(
            messages=message,
            stream=True,
            stream_options=USAGE,
            extra_headers=headers(chunks),
            **route,
        ),
        {**route, "messages": message},
    )
    litellm.suppress_debug_info = True
    sdks = {
        "google-genai": (
            genai.Client(api_key="x", http_options=options),
            genai.Client(api_key="x", http_options=options),
        ),
        "mistralai": (
            Mistral(api_key="x", server_url=f"{url}/mistral"),
            Mistral(api_key="x", server_url=f"{url}/mistral"),
        ),
        "litellm (OpenAI route)": (litellm.acompletion, None),
    }
    return [google, mistral, lite], sdks


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
    clients, sdks = more_clients(url)
    for client in clients:
        plain_sdk, traced_sdk = sdks[client.name]
        if traced_sdk is None:  # litellm: the module function, behind the hook instrument() adds
            traced_sdk = _wrap(tracer, None, plain_sdk, client.method)
        else:
            tracer.instrument(traced_sdk)
        sdks[client.name] = (plain_sdk, traced_sdk)
        client.response = await client.call(plain_sdk)
        client.few = [chunk async for chunk in await client.stream(plain_sdk, FEW - 2)]
        client.many = [chunk async for chunk in await client.stream(plain_sdk, MANY - 2)]
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
    few_calls, few_streams = max(CALLS // 4, 50), max(STREAMS // 4, 20)
    for c in clients:
        plain_sdk, traced_sdk = sdks[c.name]
        steps += [
            (f"{c.name}/sdk", lambda c=c, s=plain_sdk: c.calls(s, few_calls)),
            (f"{c.name}/instr", lambda c=c, s=traced_sdk: c.calls(s, few_calls)),
            (f"{c.name}/few_sdk", lambda c=c, s=plain_sdk: c.streams(s, few_streams, FEW - 2)),
            (f"{c.name}/few_instr", lambda c=c, s=traced_sdk: c.streams(s, few_streams, FEW - 2)),
            (f"{c.name}/many_sdk", lambda c=c, s=plain_sdk: c.streams(s, few_streams, MANY - 2)),
            (f"{c.name}/many_instr", lambda c=c, s=traced_sdk: c.streams(s, few_streams, MANY - 2)),
            (f"{c.name}/hook_bare", lambda c=c: c.hook(None, CALLS * 5)),
            (f"{c.name}/hook_traced", lambda c=c: c.hook(tracer, CALLS * 5)),
            (f"{c.name}/by_hand", lambda c=c: c.by_hand(tracer, CALLS * 5)),
            (
                f"{c.name}/wrap_few_bare",
                lambda c=c: chunks_through(None, c.few, CALLS, c.method.route),
            ),
            (
                f"{c.name}/wrap_few_traced",
                lambda c=c: chunks_through(tracer, c.few, CALLS, c.method.route),
            ),
            (
                f"{c.name}/wrap_many_bare",
                lambda c=c: chunks_through(None, c.many, CALLS, c.method.route),
            ),
            (
                f"{c.name}/wrap_many_traced",
                lambda c=c: chunks_through(tracer, c.many, CALLS, c.method.route),
            ),
        ]
    for run in range(RUNS + 1):  # run 0 warms up: connections, imports, price lookups
        # Every other run goes backwards, so no variant always follows the same one.
        for name, step in steps if run % 2 else steps[::-1]:
            value = await step()
            if run:
                keep(name, value)
    for c in clients:
        for sdk in sdks[c.name]:
            if isinstance(sdk, genai.Client):
                await sdk.aio.aclose()
            elif isinstance(sdk, Mistral):
                await sdk.__aexit__(None, None, None)
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
    print()
    print("### google-genai, mistralai, litellm (method hooks)")
    print()
    print(
        f"End to end: {few_calls} calls and {few_streams} streams per run. No HTTP: the hook "
        "around a stand-in returning the client's real response, beside `llm_call` + "
        "`record_response` of it; the client's real chunks through the traced stream with its "
        "reader, beside bare."
    )
    print()
    print(
        "| client | call, SDK | call, instrumented | per chunk end to end, SDK / instrumented | "
        "hook overhead, no HTTP | `llm_call` + `record_response` | per chunk, no HTTP |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for c in clients:
        n = c.name
        slope = {
            v: (b[f"{n}/many_{v}"] - b[f"{n}/few_{v}"]) / (MANY - FEW) for v in ("sdk", "instr")
        }
        hook = b[f"{n}/hook_traced"] - b[f"{n}/hook_bare"]
        few = b[f"{n}/wrap_few_traced"] - b[f"{n}/wrap_few_bare"]
        many = b[f"{n}/wrap_many_traced"] - b[f"{n}/wrap_many_bare"]
        chunk = (many - few) / (MANY - FEW)
        print(
            f"| {n} | {b[f'{n}/sdk']:.0f} | {b[f'{n}/instr']:.0f} "
            f"({b[f'{n}/instr'] - b[f'{n}/sdk']:+.0f}) | {slope['sdk']:.2f} / "
            f"{slope['instr']:.2f} | {hook:.1f} | {b[f'{n}/by_hand']:.1f} | {chunk:+.2f} |"
        )
        verdicts.append(
            f"{n}: hook {hook:.1f} us vs llm_call {b[f'{n}/by_hand']:.1f} us "
            f"({'met' if hook <= b[f'{n}/by_hand'] + 10 else 'NOT met'}), per chunk "
            f"{chunk:+.2f} us ({'met' if chunk <= 2 else 'NOT met'})"
        )
    print()
    print(
        "CPU us. Targets (+10 us per call over `llm_call`, +2 us per chunk): "
        + "; ".join(verdicts)
        + "."
    )


if __name__ == "__main__":
    asyncio.run(main())
