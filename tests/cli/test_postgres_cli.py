"""The CLI against a real PostgreSQL server: ``--db postgresql://…`` for reading commands and
``replay --to postgresql://…``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from asynctelemetry import PostgresStore, SQLiteStore
from tests.cli.conftest import known_calls
from tests.cli.helpers import one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path


async def _filled(dsn: str) -> str:
    async with PostgresStore(dsn) as store:
        await store.add_many(known_calls())
    return dsn


async def test_calls_and_summary_read_a_postgres_db(pg_dsn: str, tmp_path: Path) -> None:
    """calls --json and summary --json read the server's calls, filters applied there."""
    await _filled(pg_dsn)
    result = run_cli("calls", "--db", pg_dsn, "--status", "error", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ids = [json.loads(line)["call_id"] for line in result.stdout.splitlines()]
    assert ids == ["call-000039", "call-000029", "call-000019", "call-000009"]  # newest first
    result = run_cli("summary", "--db", pg_dsn, "--by", "provider", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["key"], r["calls"]) for r in rows) == [
        ("anthropic", 13),
        ("google", 13),
        ("openai", 14),
    ]


async def test_replay_between_sqlite_and_postgres(pg_dsn: str, db: Path) -> None:
    """replay --to postgresql://… copies a SQLite file's calls; replay --db postgresql://…
    --to sqlite:///… copies them back, each marked source=replay."""
    result = run_cli("replay", "--db", db, "--to", pg_dsn, cwd=db.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "replayed 40 calls" in result.stdout
    async with PostgresStore(pg_dsn) as store:
        copied = await store.query()
    assert [c.call_id for c in copied] == [c.call_id for c in known_calls()]
    assert {c.source for c in copied} == {"replay"}
    back = db.parent / "back.db"
    result = run_cli(
        "replay", "--db", pg_dsn, "--to", f"sqlite:///{back.name}", "--model", "gpt-4o",
        cwd=db.parent, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    async with SQLiteStore(back) as store:
        assert await store.count() == 14


def test_a_postgres_db_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    """An unreachable server is a one-line error (exit 1), the password not shown."""
    result = run_cli(
        "calls", "--db", "postgresql://u:hunter2@127.0.0.1:1/x?connect_timeout=2", cwd=tmp_path
    )
    assert result.returncode == 1
    line = one_line_error(result)
    assert "cannot" in line and "hunter2" not in line


def test_a_password_in_the_query_never_reaches_the_output(pg_dsn: str, tmp_path: Path) -> None:
    """``?password=`` is masked in an error, a --debug traceback, and collect's first line."""
    import signal

    from tests.cli.test_collect import announced, start

    down = "postgresql://u@127.0.0.1:1/x?connect_timeout=2&password=hunter2"
    result = run_cli("calls", "--db", down, cwd=tmp_path)
    assert result.returncode == 1
    assert "password=***" in one_line_error(result) and "hunter2" not in result.stderr
    result = run_cli("--debug", "calls", "--db", down, cwd=tmp_path)
    assert "Traceback" in result.stderr and "hunter2" not in result.stderr
    proc = start(tmp_path, "--store", f"{pg_dsn}&password=hunter2", "--quiet")
    try:
        where = announced(proc, r"collecting OTLP/gRPC on \S+ into (\S+)")
        assert "password=***" in where
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "hunter2" not in err
