"""``asynctelemetry budgets`` and ``collect --alert``: as users run them, in subprocesses."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

from asynctelemetry import AsyncTracer, Budget, BudgetExceededError, ModelPricing, SQLiteStore
from tests.cli.helpers import one_line_error, run_cli
from tests.cli.test_collect import announced, export, genai_spans, start

if TYPE_CHECKING:
    from pathlib import Path

TABLE = {"budget-model": ModelPricing(input_per_million=1.0, output_per_million=1.0)}


async def _spend(path: Path) -> None:
    budgets = [Budget(0.02, by="user", name="users"), Budget(1.0, per="day", name="daily")]
    async with SQLiteStore(path) as store:
        async with AsyncTracer(store=store, price_table=TABLE, budgets=budgets) as tracer:
            for user, tokens in (("alice", 15_000), ("bob", 4_000), ("alice", 10_000)):
                try:
                    with tracer.context(user_id=user):
                        async with tracer.llm_call(model="budget-model") as call:
                            call.set_usage(input_tokens=tokens, output_tokens=0)
                except BudgetExceededError:
                    pass


def test_budgets_lists_each_budget_and_key(tmp_path: Path) -> None:
    """Each budget and key with spent, reserved, left and the share used; --json the same."""
    asyncio.run(_spend(tmp_path / "calls.db"))
    result = run_cli("budgets", "--db", "calls.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {tuple(line.split()[:2]): line for line in result.stdout.splitlines()}
    assert "125%" in rows[("users", "alice")]  # $0.025 of $0.02: the last call was admitted
    assert "20%" in rows[("users", "bob")]
    assert "3%" in rows[("daily", "(all)")]
    result = run_cli("budgets", "--db", "calls.db", "--json", cwd=tmp_path)
    statuses = [json.loads(line) for line in result.stdout.splitlines()]
    by_key = {(s["name"], s["key"]): s for s in statuses}
    assert by_key[("users", "bob")]["spent_usd"] == 0.004
    assert by_key[("daily", None)]["remaining_usd"] == 1.0 - 0.029


def test_budgets_of_a_store_without_any(tmp_path: Path) -> None:
    """A store no tracer with budgets used: said so; the file is not changed."""

    async def make() -> None:
        async with SQLiteStore(tmp_path / "calls.db"):
            pass

    asyncio.run(make())
    before = (tmp_path / "calls.db").read_bytes()
    result = run_cli("budgets", "--db", "calls.db", cwd=tmp_path)
    assert result.returncode == 0
    assert "no budgets in this store" in result.stdout
    assert (tmp_path / "calls.db").read_bytes() == before
    result = run_cli("budgets", "--store", "memory://", cwd=tmp_path)
    assert result.returncode == 2
    assert "SQLite or PostgreSQL" in one_line_error(result)


def test_bad_alert_rule_is_a_usage_error(tmp_path: Path) -> None:
    """A rule not of the form metric>threshold/window: exit 2 with the form in the message."""
    result = run_cli("collect", "--alert", "latency<3", cwd=tmp_path)
    assert result.returncode == 2
    assert "metric>threshold" in result.stderr


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_collect_alerts_on_errors_and_posts_the_webhook(tmp_path: Path) -> None:
    """collect --alert error_rate>0.3/5m fires once when failing spans arrive: a line on stderr
    and one JSON POST to the webhook."""
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    _Hook.received.clear()
    proc = start(
        tmp_path,
        "--memory",
        "100",
        "--quiet",
        "--alert",
        "error_rate>0.3/5m",
        "--alert-webhook",
        url,
        "--alert-interval",
        "0.2",
    )
    try:
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        spans = genai_spans(4)
        failing = [s for s in spans if s.name.startswith("chat")][:2]
        for span in failing:
            span._status = type(span.status)(status_code=span.status.status_code.ERROR)  # type: ignore[attr-defined]
        export(port, spans)
        line = announced(proc, r"(alert firing: .*)")
        assert line == "alert firing: error_rate>0.3/5m = 0.5"
        proc.terminate()
        proc.communicate(timeout=15)
    finally:
        proc.kill()
        server.shutdown()
    [event] = _Hook.received
    assert (event["state"], event["alert"], event["value"]) == ("firing", "error_rate>0.3/5m", 0.5)


def test_live_view_shows_budgets_and_firing_alerts() -> None:
    """The live view's budgets line lists the fullest budgets first, marks the spent ones, and
    names the alert rules firing."""
    from datetime import UTC, datetime

    from rich.console import Console

    from asynctelemetry import BudgetStatus
    from asynctelemetry.cli._view import ViewState, render
    from tests.conftest import make_call

    def status(name: str, key: str | None, spent: float) -> BudgetStatus:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return BudgetStatus(name, key, 1.0, spent, 0.0, max(0.0, 1.0 - spent), when)

    state = ViewState(
        title="t",
        window=[make_call(1)],
        budgets=[status("daily", None, 0.12), status("users", "alice", 1.04)],
        alerts_firing=["error_rate>0.05/5m [gpt-4o]"],
    )
    console = Console(width=120, record=True, color_system=None)
    console.print(render(state, 120))
    text = console.export_text()
    assert "budgets  users [alice] 104% · daily 12%" in text
    assert "alerts firing  error_rate>0.05/5m [gpt-4o]" in text
