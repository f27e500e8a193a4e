"""``collect`` as a real process: OTel SDK clients export to it, signals stop it, calls stay."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time
import urllib.request
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asynctelemetry import SQLiteStore
from tests.cli.helpers import CLI, cli_env, one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path

    from opentelemetry.sdk.trace import ReadableSpan


def genai_spans(count: int) -> list[ReadableSpan]:
    """``count`` finished GenAI chat spans, each inside a non-LLM server span."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "cli-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("cli-test")
    for i in range(count):
        with tracer.start_as_current_span("POST /answer"):
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.provider.name", "openai")
                span.set_attribute("gen_ai.request.model", "gpt-4o")
                span.set_attribute("gen_ai.usage.input_tokens", 100 + i)
                span.set_attribute("gen_ai.usage.output_tokens", 10 + i)
    provider.shutdown()
    return list(memory.get_finished_spans())


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``collect --port 0 *args``; return once it says where it listens."""
    return subprocess.Popen(
        [*CLI, "collect", "--port", "0", *args],
        cwd=tmp_path,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def announced(proc: subprocess.Popen[str], pattern: str) -> str:
    """Read stderr lines until one matches ``pattern``; return the first group."""
    assert proc.stderr is not None
    seen = []
    for _ in range(20):
        line = proc.stderr.readline()
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match[1]
        if not line:
            break
    raise AssertionError(f"{pattern!r} not announced; stderr: {''.join(seen)}")


def export(port: str, spans: list[ReadableSpan], token: str | None = None) -> SpanExportResult:
    """Export ``spans`` with the OTel SDK's own gRPC exporter."""
    headers = {"authorization": f"Bearer {token}"} if token else None
    exporter = OTLPSpanExporter(
        endpoint=f"http://127.0.0.1:{port}", insecure=True, headers=headers, timeout=5
    )
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def test_json_lines_metrics_and_clean_sigint(tmp_path: Path) -> None:
    """--json prints each call as it arrives; SIGINT flushes them to the file; exit 0."""
    proc = start(tmp_path, "--db", "calls.db", "--json", "--metrics-port", "0", "--http-port", "0")
    try:
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        http_url = announced(proc, r"collecting OTLP/HTTP on (\S+)")
        metrics_url = announced(proc, r"Prometheus metrics on (\S+)")
        assert export(port, genai_spans(3)) is SpanExportResult.SUCCESS
        assert proc.stdout is not None
        rows = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert [r["input_tokens"] for r in rows] == [100, 101, 102]
        over_http = HTTPSpanExporter(endpoint=http_url, timeout=5)
        assert over_http.export(genai_spans(1)) is SpanExportResult.SUCCESS
        over_http.shutdown()
        rows.append(json.loads(proc.stdout.readline()))
        assert rows[-1]["input_tokens"] == 100
        assert {r["model"] for r in rows} == {"gpt-4o"}
        assert {r["service_name"] for r in rows} == {"cli-test"}
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            metrics = response.read().decode()
        assert 'asynctelemetry_requests_total{model="gpt-4o"' in metrics
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: 4 calls stored in calls.db (8 spans received, 4 steps kept, 0 other" in err
    assert "Traceback" not in err

    async def stored() -> list[str]:
        async with SQLiteStore(tmp_path / "calls.db") as store:
            return [c.call_id for c in await store.query()]

    assert sorted(asyncio.run(stored())) == sorted(r["call_id"] for r in rows)


def test_plain_lines_auth_from_env_and_sigterm(tmp_path: Path) -> None:
    """Not a terminal: one log line per call; the env token is enforced; SIGTERM stops cleanly."""
    env = cli_env(ASYNCTELEMETRY_AUTH_TOKEN="s3cret")
    proc = start(tmp_path, "--memory", "100", env=env)
    try:
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        assert export(port, genai_spans(1)) is SpanExportResult.FAILURE
        assert export(port, genai_spans(1), token="s3cret") is SpanExportResult.SUCCESS
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.search(r"ok +openai/gpt-4o chat in=100 out=10 ttft=- latency=\S+ \$0\.0003", line)
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert rest == ""  # the refused export printed nothing
    assert "stopped: 1 call stored in memory (last 100 calls)" in err


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal collect draws the live view (not log lines) and redraws it as calls come."""
    master, slave = pty.openpty()
    env = cli_env(COLUMNS="100", LINES="50", TERM="xterm-256color")
    proc = subprocess.Popen(
        [*CLI, "collect", "--port", "0", "--memory", "10"],
        cwd=tmp_path, env=env, stdin=slave, stdout=slave, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(slave)
    screen = b""

    def read_until(marker: bytes) -> None:
        nonlocal screen
        deadline = time.monotonic() + 15
        while marker not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                screen += os.read(master, 65536)

    try:
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        read_until(b"waiting for calls")
        assert export(port, genai_spans(2)) is SpanExportResult.SUCCESS
        read_until(b"recent calls")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    finally:
        proc.kill()
        os.close(master)
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen).decode(errors="replace")
    assert "asynctelemetry collect · 127.0.0.1:" in text
    assert "waiting for calls" in text
    after = text.split("waiting for calls")[-1]
    assert "requests  2" in after and "by model" in after and "gpt-4o" in after
    assert '{"call_id"' not in text and "openai/gpt-4o chat in=" not in text  # no log lines
    assert proc.returncode == 0


def test_port_in_use_names_the_holder(tmp_path: Path) -> None:
    """A busy port exits 1 and names the process listening on it (here: the test itself)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("collect", "--port", str(port), "--memory", "10", cwd=tmp_path)
    assert result.returncode == 1
    message = one_line_error(result)
    assert f"port {port} on 127.0.0.1 is already in use by pid {os.getpid()}" in message


def _time_wait_on(port: int) -> bool:
    """Whether a TCP socket whose local port is ``port`` is in TIME-WAIT (Linux /proc)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "06" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def test_a_port_in_time_wait_is_free(tmp_path: Path) -> None:
    """A port whose only sockets are in TIME-WAIT (a server just closed its connections) is
    not "in use": collect starts on it, as its own bind with SO_REUSEADDR would succeed."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server side closes first: its end goes to TIME-WAIT
            client.recv(1)
    assert _time_wait_on(port)
    proc = start(tmp_path, "--port", str(port), "--memory", "10", "--no-live")
    try:
        assert announced(proc, r"collecting OTLP/gRPC on (\S+) ") == f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_restart_right_after_a_stop_on_the_same_port(tmp_path: Path) -> None:
    """Start, export, stop with Ctrl-C, and start again at once on the same port: it listens."""
    first = start(tmp_path, "--db", "calls.db", "--no-live", "--quiet")
    port = int(announced(first, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+) "))
    assert export(str(port), genai_spans(2)) is SpanExportResult.SUCCESS
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=30)
    assert first.returncode == 0
    second = start(tmp_path, "--port", str(port), "--db", "calls.db", "--no-live", "--quiet")
    try:
        assert announced(second, r"collecting OTLP/gRPC on (\S+) ") == f"127.0.0.1:{port}"
        assert export(str(port), genai_spans(1)) is SpanExportResult.SUCCESS
    finally:
        second.send_signal(signal.SIGINT)
        _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert "1 calls stored" in err or "1 call stored" in err


def test_two_collectors_writing_one_database_say_so(tmp_path: Path) -> None:
    """A second collect on the same --db warns, naming the first one's process; both still
    run, and the lock file goes away with its holder."""
    first = start(tmp_path, "--db", "calls.db", "--no-live", "--quiet")
    try:
        announced(first, r"(collecting) OTLP/gRPC")
        assert (tmp_path / "calls.db.writer").exists()
        second = start(tmp_path, "--db", "calls.db", "--no-live", "--quiet")
        try:
            warning = announced(second, r"(warning: .*)")
            assert f"calls.db is also being written by pid {first.pid} (asynctelemetry collect" in (
                warning
            )
            announced(second, r"(collecting) OTLP/gRPC")
        finally:
            second.send_signal(signal.SIGINT)
            second.communicate(timeout=30)
        assert second.returncode == 0
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0
    assert "warning" not in err  # the first one was alone when it started
    assert not (tmp_path / "calls.db.writer").exists()


def test_reader_gone_stops_cleanly(tmp_path: Path) -> None:
    """`collect --json | head -1`: when the reader leaves, collect stops and keeps the calls."""
    proc = start(tmp_path, "--db", "calls.db", "--json")
    try:
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before the first call
        assert export(port, genai_spans(2)) is SpanExportResult.SUCCESS
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: 2 calls stored in calls.db" in err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_retention_flags_bound_the_file(tmp_path: Path) -> None:
    """--max-rows keeps at most N calls in the --db file; bad or misplaced flags exit 2."""
    proc = start(tmp_path, "--db", "calls.db", "--max-rows", "5", "--max-age", "7d", "--quiet")
    try:
        port = announced(proc, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        for _ in range(3):
            assert export(port, genai_spans(4)) is SpanExportResult.SUCCESS
        time.sleep(1.5)  # one retention pass (every second) after the last export
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err

    async def kept() -> int:
        async with SQLiteStore(tmp_path / "calls.db") as store:  # no bounds: reads what is kept
            return await store.count()

    assert asyncio.run(kept()) == 5
    bad_age = run_cli("collect", "--port", "0", "--max-age", "soon", cwd=tmp_path)
    assert bad_age.returncode == 2 and "max_age" in one_line_error(bad_age)
    on_memory = run_cli("collect", "--port", "0", "--memory", "10", "--max-rows", "5", cwd=tmp_path)
    assert on_memory.returncode == 2 and "--db" in one_line_error(on_memory)


def test_forward_token_reaches_an_upstream_that_requires_it(tmp_path: Path) -> None:
    """collect --forward-to an upstream collect that requires a token: with --forward-token the
    forwarded request is accepted there (the upstream prints the call)."""
    upstream = start(tmp_path, "--memory", "100", env=cli_env(ASYNCTELEMETRY_AUTH_TOKEN="up"))
    local = None
    try:
        up_port = announced(upstream, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        local = start(
            tmp_path,
            "--memory",
            "100",
            "--forward-to",
            f"http://127.0.0.1:{up_port}",
            "--forward-token",
            "up",
        )
        port = announced(local, r"collecting OTLP/gRPC on 127\.0\.0\.1:(\d+)")
        assert export(port, genai_spans(1)) is SpanExportResult.SUCCESS
        assert upstream.stdout is not None
        assert "openai/gpt-4o chat in=100" in upstream.stdout.readline()
    finally:
        for proc in (local, upstream):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=15)


def test_forward_token_without_forward_to_is_a_usage_error(tmp_path: Path) -> None:
    """--forward-token alone names no upstream: a one-line usage error, exit 2."""
    result = run_cli("collect", "--memory", "10", "--forward-token", "t", cwd=tmp_path)
    assert result.returncode == 2
    assert "forward_headers needs forward_to" in one_line_error(result)
