"""``demo`` end to end: collector, traced async app, OTel SDK process, summary, files."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from asynctelemetry import SQLiteStore
from tests.cli.helpers import one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_quick_demo_end_to_end(tmp_path: Path) -> None:
    """The demo fills a SQLite file in the cwd from both apps and prints its summary and hints."""
    result = run_cli("demo", "--quick", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    db = tmp_path / "asynctelemetry-demo.db"
    assert f"Data: {db}" in out
    # the "look again" commands work from this shell, as printed (python -m, not on PATH)
    [hint] = [line.strip() for line in out.splitlines() if " summary --db " in line]
    assert hint.endswith("summary --db asynctelemetry-demo.db --by provider"), hint
    import shlex
    import subprocess

    again = subprocess.run(
        [*shlex.split(hint), "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and '"by": "provider"' in again.stdout, again.stderr
    assert "calls by request_model" in out and "p95 latency" in out
    # one row per model the app asked for: a dated response model and the failed calls that got
    # none are not split into rows of their own
    table = out.split("The collector received", 1)[0]
    assert "gpt-4o " in table and "2024-08-06" not in table and "20250929" not in table
    port = re.search(r"collector on http://127\.0\.0\.1:(\d+) ", out)
    assert port is not None and f"(the demo's ran on 127.0.0.1:{port[1]})" in out

    async def stored() -> list:  # type: ignore[type-arg]
        async with SQLiteStore(db) as store:
            return await store.query()

    calls = asyncio.run(stored())
    services = {c.service_name for c in calls}
    assert services == {"demo-chat-app", "demo-sdk-app"}
    assert {c.provider for c in calls} >= {"openai", "anthropic", "google"}
    assert {c.source for c in calls} == {"collector"}
    traced = [c for c in calls if c.service_name == "demo-chat-app"]
    streamed = [c for c in traced if c.status == "ok" and c.output_tokens]
    assert streamed and all(c.ttft_ms is not None and c.cost_usd is not None for c in streamed)
    assert any(c.operation == "embed" for c in traced)
    assert any(c.cached_input_tokens for c in traced)
    assert f"{len(calls)} calls" in out.replace(",", "")
    # The SDK app's HTTP server spans are kept as the roots of their traces, one per request.
    sdk = [c for c in calls if c.service_name == "demo-sdk-app"]
    assert f"{len(sdk)} steps (the SDK" in out and "0 other spans ignored" in out
    # Where every call came from, and the cancelled ones.
    embeds = sum(c.operation == "embed" for c in traced)
    assert f"Where the {len(calls)} calls came from:" in out
    assert re.search(
        rf"\b{len(traced) - embeds}  chat calls of the simulated app \(24 requests", out
    )
    assert re.search(rf"\b{embeds}  embedding calls", out)
    assert re.search(rf"\b{len(sdk)}  chat calls of the plain OpenTelemetry SDK app", out)
    cancelled = sum(c.status == "cancelled" for c in calls)
    assert cancelled and f", {cancelled} cancelled (users who left" in out

    again = run_cli("summary", "--db", db.name, "--by", "provider", "--json", cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.count('"by": "provider"') == len({c.provider for c in calls})


def test_demo_refuses_a_directory(tmp_path: Path) -> None:
    """--db naming a directory is a one-line runtime error, before anything starts."""
    (tmp_path / "data").mkdir()
    result = run_cli("demo", "--quick", "--db", "data", cwd=tmp_path)
    assert result.returncode == 1
    assert "data is a directory" in one_line_error(result)


def test_each_run_starts_anew_unless_appending(tmp_path: Path) -> None:
    """A second run replaces the first run's calls; --append keeps them and says so."""
    first = run_cli("demo", "--quick", "--calls", "6", cwd=tmp_path, timeout=60)
    assert first.returncode == 0, first.stderr
    db = tmp_path / "asynctelemetry-demo.db"

    async def count() -> int:
        async with SQLiteStore(db) as store:
            return await store.count()

    once = asyncio.run(count())
    again = run_cli("demo", "--quick", "--calls", "6", cwd=tmp_path, timeout=60)
    assert again.returncode == 0 and asyncio.run(count()) == once
    assert "with the earlier runs" not in again.stdout
    more = run_cli("demo", "--quick", "--calls", "6", "--append", cwd=tmp_path, timeout=60)
    assert more.returncode == 0 and asyncio.run(count()) == 2 * once
    assert f"({2 * once} calls with the earlier runs)" in more.stdout


def test_hints_name_the_venv_program_when_it_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started as .venv/bin/asynctelemetry (as make demo does) with the venv not on PATH, the
    demo's commands say .venv/bin/asynctelemetry and how to activate the venv; on PATH, the
    bare name."""
    import sys

    from asynctelemetry.cli._demo import program

    exe = tmp_path / ".venv" / "bin" / "asynctelemetry"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    me, note = program()
    assert me == ".venv/bin/asynctelemetry"
    assert note is not None and "source .venv/bin/activate" in note
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin")
    assert program() == ("asynctelemetry", None)
