"""End to end across processes: a tracer in one process, the collector in another."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

from asynctelemetry import AsyncCollector, LLMCall, MemoryStore, SQLiteStore

APP = textwrap.dedent(
    """
    import asyncio, sys
    from asynctelemetry import AsyncTracer

    async def main(port):
        async with AsyncTracer(otlp_endpoint=f"http://127.0.0.1:{port}", in_memory=True,
                               service_name="other-process") as tracer:
            async with tracer.llm_call(provider="openai", model="gpt-4o", session_id="s1",
                                       route_name="fast", team="search") as call:
                await asyncio.sleep(0.01)
                call.first_token()
                call.set_usage(input_tokens=812, output_tokens=95, cached_input_tokens=512,
                               reasoning_tokens=20)
                call.set(cache_hit="semantic", tool_calls=2, response_model="gpt-4o-2024-08-06",
                         status_code=200, routing_strategy="latency", routing_reason="p95")
                async with tracer.llm_call(provider="anthropic", model="claude-sonnet-4-5",
                                           operation="stream") as inner:
                    inner.set_usage(input_tokens=30, output_tokens=40, cached_input_tokens=200,
                                    cache_creation_tokens=100, input_includes_cache=False)
            try:
                with tracer.context(user_id="user-7", tags=("beta", "é✓")):
                    async with tracer.llm_call(provider="google", model="gemini-2.5-flash") as c:
                        c.set(agent_name="planner")
                        raise TimeoutError("no answer in 30 s ✓")
            except TimeoutError:
                pass
            task = asyncio.ensure_future(slow(tracer))
            await asyncio.sleep(0.01)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await tracer.record_embed_span(provider="openai", model="text-embedding-3-small",
                                           latency_ms=12.25, input_tokens=640)
            await tracer.record_chat_span(provider="acme", model="private-model", latency_ms=5,
                                          input_tokens=1, output_tokens=1)
            await tracer.flush()
            for record in tracer.spans:
                print(record.model_dump_json())

    async def slow(tracer):
        async with tracer.llm_call(provider="openai", model="o3-mini"):
            await asyncio.sleep(10)

    asyncio.run(main(int(sys.argv[1])))
    """
)


async def _run_app(port: int) -> list[LLMCall]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", APP, str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return [LLMCall.model_validate_json(line) for line in out.decode().splitlines()]


async def test_calls_traced_in_another_process_come_back_equal() -> None:
    """Tracer → OTLP/gRPC → AsyncCollector gives back an equal LLMCall, every field but source."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0) as collector:
        sent = await _run_app(collector.port)
        for _ in range(100):
            if await store.count() >= len(sent):
                break
            await asyncio.sleep(0.05)
    received = {c.call_id: c for c in await store.query()}
    assert len(sent) == 6 and len(received) == 6
    assert {c.status for c in sent} == {"ok", "error", "cancelled"}
    (failed,) = [c for c in sent if c.status == "error"]
    assert (failed.user_id, failed.agent_name, failed.tags) == ("user-7", "planner", ("beta", "é✓"))
    assert (failed.error_type, failed.error_message) == ("TimeoutError", "no answer in 30 s ✓")
    for original in sent:
        back = received[original.call_id]
        assert back.source == "collector"
        assert back.model_dump(exclude={"source"}) == original.model_dump(exclude={"source"}), (
            original.model
        )


async def test_the_collector_persists_another_process_calls_to_sqlite(tmp_path: object) -> None:
    """The same traffic lands in a SQLite file that a fresh store reads back identically."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "calls.db"
    async with SQLiteStore(path) as store, AsyncCollector(store, port=0) as collector:
        sent = await _run_app(collector.port)
        for _ in range(100):
            await store.flush()
            if await store.count() >= len(sent):
                break
            await asyncio.sleep(0.05)
    async with SQLiteStore(path) as reopened:
        back = {c.call_id: c for c in await reopened.query()}
    assert {k: v.model_dump(exclude={"source"}) for k, v in back.items()} == {
        c.call_id: c.model_dump(exclude={"source"}) for c in sent
    }
    assert json.loads(sent[0].model_dump_json())["service_name"] == "other-process"


async def test_a_tracer_with_the_token_reaches_a_collector_that_requires_it() -> None:
    """otlp_headers carries a bearer token; without it the collector refuses the export."""
    from asynctelemetry import AsyncTracer

    store = MemoryStore()
    async with AsyncCollector(store, port=0, auth_token="s3cret") as collector:
        endpoint = f"http://127.0.0.1:{collector.port}"
        async with AsyncTracer(
            otlp_endpoint=endpoint, otlp_headers={"authorization": "Bearer s3cret"}
        ) as tracer:
            async with tracer.llm_call(model="gpt-4o"):
                pass
        async with AsyncTracer(otlp_endpoint=endpoint) as anonymous:
            async with anonymous.llm_call(model="gpt-4o-mini"):
                pass
            await asyncio.sleep(0.2)
        await collector.flush()
        assert collector.stats.unauthenticated >= 1
    assert [c.model for c in await store.query()] == ["gpt-4o"]
