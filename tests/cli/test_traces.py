"""asynctelemetry traces / trace ID: real CLI processes on a SQLite file an agent app wrote."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import AsyncTracer, SQLiteStore
from tests.cli.helpers import one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path


async def _agent_runs(path: Path) -> str:
    """Two agent runs into ``path``; the id of the first (a tool fails in it)."""
    async with SQLiteStore(path) as store, AsyncTracer(store=store) as tracer:

        @tracer.tool("search")
        async def search(query: str) -> None:
            async with tracer.llm_call(model="gpt-4o-mini", provider="openai") as call:
                await asyncio.sleep(0.01)
                call.set_usage(input_tokens=100, output_tokens=20)
            if query == "bad":
                raise LookupError("no results")

        with tracer.context(user_id="ann"):
            async with tracer.agent("planner") as first:
                async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
                    await asyncio.sleep(0.01)
                    call.set_usage(input_tokens=900, output_tokens=60)
                await asyncio.gather(search("ok"), search("bad"), return_exceptions=True)
        async with tracer.agent("writer"):
            await search("ok")
        await tracer.flush()
        return first.trace_id


def test_traces_lists_and_filters(tmp_path: Path) -> None:
    """traces: newest first, one row per trace with calls, steps, errors, user; filters;
    --json rows equal the store's."""
    path = tmp_path / "calls.db"
    first = asyncio.run(_agent_runs(path))
    result = run_cli("traces", "--db", path, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["root_name"] for r in rows] == ["writer", "planner"]
    planner = rows[1]
    assert planner["trace_id"] == first
    assert (planner["llm_calls"], planner["spans"], planner["errors"]) == (3, 3, 1)
    assert planner["user_id"] == "ann" and planner["status"] == "error"
    only = run_cli("traces", "--db", path, "--agent", "writer", "--json", cwd=tmp_path)
    assert [json.loads(line)["root_name"] for line in only.stdout.splitlines()] == ["writer"]
    human = run_cli("traces", "--db", path, "--status", "error", cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "planner" in human.stdout and "writer" not in human.stdout
    assert "1 error" in human.stdout and "1 trace, newest first" in human.stdout


def test_trace_prints_the_tree_with_timing_bars(tmp_path: Path) -> None:
    """trace ID: totals on top, each step indented under its parent with a bar, its
    duration, the model, tokens and cost of calls, and the error of a failed step."""
    path = tmp_path / "calls.db"
    first = asyncio.run(_agent_runs(path))
    result = run_cli("trace", first, "--db", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"trace {first}" and "3 LLM calls, 3 steps" in lines[1]
    assert "1,100 in / 100 out tokens" in lines[1] and "1 error" in lines[1]
    body = lines[2:]
    assert body[0].startswith("planner ") and "█" in body[0] and "agent" in body[0]
    assert body[1].startswith("  chat gpt-4o ") and "gpt-4o 900→60 tok" in body[1]
    searches = [i for i, line in enumerate(body) if line.startswith("  search ")]
    assert len(searches) == 2
    assert any("LookupError" in body[i] for i in searches)
    assert all(body[i + 1].startswith("    chat gpt-4o-mini") for i in searches)
    as_json = json.loads(run_cli("trace", first, "--db", path, "--json", cwd=tmp_path).stdout)
    assert len(as_json["calls"]) == 3 and len(as_json["spans"]) == 3


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        pytest.param(("trace", "nope"), 1, "no trace 'nope'", id="unknown-id"),
        pytest.param(("traces", "--limit", "5000"), 2, "more than 1000", id="limit"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: tuple[str, ...], code: int, says: str) -> None:
    path = tmp_path / "calls.db"
    asyncio.run(_agent_runs(path))
    result = run_cli(*args, "--db", path, cwd=tmp_path)
    assert result.returncode == code
    if code == 1:
        assert says in one_line_error(result)
    else:
        assert says in result.stderr and "Traceback" not in result.stderr
