"""Three agent apps, end to end into one SQLite file, each read back as one trace in the CLI and
in Chromium: an app written with tracer.agent/tool, an openai-agents app (the real package
against the local model server) and a plain OpenTelemetry SDK app with GenAI agent/tool spans
(another process, the real OTLP exporter, through a real collector)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import openai
from agents import Runner

from asynctelemetry import AsyncCollector, AsyncTracer, SQLiteStore
from tests.cli.helpers import run_cli
from tests.cli.test_traces import _agent_runs
from tests.collector.test_steps import _run_sdk_app
from tests.instrument.llm_server import LLMServer
from tests.instrument.test_agents import _agent

from .conftest import Served

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from pathlib import Path

    from .conftest import Watched


async def _openai_agents_run(path: Path) -> str:
    """One openai-agents run (agent, tool, two model calls) into ``path``; its trace id."""
    server = LLMServer()
    await server.start()
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0)
    try:
        async with SQLiteStore(path) as store, AsyncTracer(store=store) as tracer:
            tracer.instrument_agents(exclusive=True)
            await Runner.run(_agent(client), "find x")
            await tracer.flush()
            [row] = [r for r in await store.traces() if r.root_name == "Agent workflow"]
            return row.trace_id
    finally:
        await client.close()
        await server.stop()


async def _sdk_app_run(path: Path) -> str:
    """The plain OTel SDK app through a collector into ``path``; its trace id."""
    async with SQLiteStore(path) as store:
        async with AsyncCollector(store, port=0) as collector:
            await _run_sdk_app(f"http://127.0.0.1:{collector.port}")
            for _ in range(200):
                await collector.flush()
                rows = [r for r in await store.traces() if r.root_name == "POST /ask"]
                trace = await store.get_trace(rows[0].trace_id) if rows else None
                if trace is not None and trace.llm_calls == 2 and len(trace.spans) == 3:
                    return trace.trace_id
                await asyncio.sleep(0.05)
    raise AssertionError("the SDK app's trace did not arrive whole")


def _run(coro: Coroutine[Any, Any, str]) -> str:
    """Run ``coro`` to its end on a loop of its own (Playwright's sync API holds this thread's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


# Per app: the step and call names the trace holds, and its LLM call count.
EXPECTED = {
    "tracer": ({"planner", "chat gpt-4o", "search", "chat gpt-4o-mini"}, 3),
    "openai-agents": ({"Agent workflow", "planner", "lookup", "chat gpt-4o"}, 2),
    "otel-sdk": ({"POST /ask", "planner", "search", "chat gpt-4o"}, 2),
}


def test_three_agent_apps_are_one_trace_each_in_the_cli_and_in_chromium(
    tmp_path: Path, watched: Watched
) -> None:
    path = tmp_path / "apps.db"
    traces = {
        "tracer": _run(_agent_runs(path)),
        "openai-agents": _run(_openai_agents_run(path)),
        "otel-sdk": _run(_sdk_app_run(path)),
    }
    for app, trace_id in traces.items():
        names, calls = EXPECTED[app]
        result = run_cli("trace", trace_id, "--db", path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"trace {trace_id}" and f"{calls} LLM calls" in lines[1], app
        tree = "\n".join(lines[2:])
        assert all(name in tree for name in names), (app, tree)

    served = Served(path)
    try:
        for app, trace_id in traces.items():
            names, calls = EXPECTED[app]
            watched.open(served.url + f"?window=24h&trace={trace_id}")
            page = watched.page
            page.wait_for_selector("#detail table.waterfall tbody tr")
            rows = page.eval_on_selector_all(
                "#detail table.waterfall tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
            )
            assert all(any(name in row for row in rows) for name in names), (app, rows)
            assert f"{calls} LLM calls" in (page.text_content("#waterfall-totals") or ""), app
    finally:
        served.close()
