"""``ui`` and ``collect --ui-port`` as real processes: the URL first, the page, clean stops."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExportResult

from tests.cli.helpers import CLI, cli_env, one_line_error, run_cli
from tests.cli.test_collect import announced, export, genai_spans, start

if TYPE_CHECKING:
    from pathlib import Path


def fetch(url: str, token: str | None = None) -> tuple[int, Any]:
    """GET ``url``; the status and the decoded JSON (or text) body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    return status, json.loads(body) if body.startswith("{") else body


def serve_ui(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``ui --port 0 *args``; return the process and the first line it printed."""
    proc = subprocess.Popen(
        [*CLI, "ui", "--port", "0", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_ui_prints_the_url_first_and_serves_until_sigint(db: Path, tmp_path: Path) -> None:
    """The first line is the page's address; the page and API answer; SIGINT exits 0."""
    proc, first = serve_ui(tmp_path, "--db", str(db))
    try:
        assert first.startswith("http://127.0.0.1:") and first.endswith("/"), first
        status, page = fetch(first)
        assert status == 200 and "/static/app.js" in page
        status, body = fetch(first + "api/calls?since=2025-12-31T00:00:00&limit=5")
        assert status == 200 and len(body["calls"]) == 5
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_ui_store_url_and_token(db: Path, tmp_path: Path) -> None:
    """``--db`` takes a store URL too; with ``--token`` the first line is the login link and
    requests without the bearer token are 401."""
    proc, first = serve_ui(tmp_path, "--db", f"sqlite:///{db}", "--token", "t0k/en")
    try:
        assert first.endswith("/?token=t0k%2Fen"), first
        base = first.split("?")[0]
        assert fetch(base + "api/calls")[0] == 401
        status, body = fetch(base + "api/summary?window=7d", token="t0k/en")
        assert status == 200 and body["by"] == "request_model"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0


def test_ui_missing_store_is_one_line_error(tmp_path: Path) -> None:
    """A store file that does not exist is a one-line error, exit 1, nothing served."""
    result = run_cli("ui", "--db", "nope.db", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert "nope.db: no such file" in one_line_error(result)
    assert result.stdout == ""


def test_ui_needs_a_store(tmp_path: Path) -> None:
    """Without --db or --store it is a usage error (exit 2)."""
    assert run_cli("ui", cwd=tmp_path).returncode == 2


def test_collect_serves_the_dashboard_live(tmp_path: Path) -> None:
    """``collect --ui-port`` serves the page on the collector's store: exported calls show up
    in the API while the collector runs."""
    proc = start(tmp_path, "--db", "calls.db", "--quiet", "--ui-port", "0")
    try:
        url = announced(proc, r"dashboard on (\S+)")
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url + "api/calls")[1]["calls"] == []
        assert export(port, genai_spans(2)) is SpanExportResult.SUCCESS
        deadline = time.monotonic() + 20
        calls: list[Any] = []
        while time.monotonic() < deadline and len(calls) < 2:
            calls = fetch(url + "api/calls")[1]["calls"]
            time.sleep(0.2)
        assert [c["model"] for c in calls] == ["gpt-4o", "gpt-4o"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
