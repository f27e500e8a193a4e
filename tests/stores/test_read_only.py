"""Reading never writes: ``SQLiteStore(read_only=True)`` and the CLI's reading commands leave a
file byte for byte as they found it, and refuse one that is not a call store of this schema."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import LLMCall, SchemaVersionError, SQLiteStore, StoreError
from asynctelemetry._stores.sqlite.schema import SCHEMA_VERSION
from tests.cli.helpers import one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` (WAL and shared-memory files included) and its SHA-256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def database_file(folder: Path, name: str) -> dict[str, str]:
    """The fingerprint of the database file itself and of every file beside it that is not
    SQLite's WAL machinery: a reader of a WAL file creates an empty ``-wal`` and the
    shared-memory index ``-shm`` (as every SQLite reader does); the database stays as it was."""
    return {
        n: digest
        for n, digest in fingerprint(folder).items()
        if n not in (f"{name}-wal", f"{name}-shm")
    }


def other_apps_file(path: Path) -> None:
    """A SQLite file of another program: its own table, rollback journal, user_version 0."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        conn.execute("INSERT INTO orders (item) VALUES ('tea')")
    conn.close()


def newer_schema_file(path: Path) -> None:
    """A call store written by a newer asynctelemetry (a schema version we do not know)."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE calls (call_id TEXT PRIMARY KEY)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1:d}")
    conn.close()


async def written_store(path: Path, calls: int = 3) -> None:
    async with SQLiteStore(path) as store:
        await store.add_many(
            [
                LLMCall(
                    call_id=f"c{i}",
                    timestamp=datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC),
                    model="gpt-4o",
                    provider="openai",
                    duration_ms=10.0 + i,
                )
                for i in range(calls)
            ]
        )


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(other_apps_file, StoreError, id="another-program"),
        pytest.param(newer_schema_file, SchemaVersionError, id="newer-schema"),
    ],
)
async def test_read_only_refuses_a_file_that_is_not_ours_untouched(
    tmp_path: Path, make: object, error: type[Exception]
) -> None:
    """A foreign or newer file is refused at open, and no byte of it (or beside it) changes."""
    path = tmp_path / "app.db"
    make(path)  # type: ignore[operator]
    before = fingerprint(tmp_path)
    store = SQLiteStore(path, read_only=True)
    with pytest.raises(error):
        await store.open()
    await store.aclose()
    assert fingerprint(tmp_path) == before


async def test_read_only_reads_a_store_and_writes_nothing(tmp_path: Path) -> None:
    """A closed call store reads the same through a read-only store; adds are refused; the
    files are unchanged afterwards."""
    path = tmp_path / "calls.db"
    await written_store(path)
    before = database_file(tmp_path, "calls.db")
    async with SQLiteStore(path, read_only=True) as store:
        assert [c.call_id for c in await store.query()] == ["c0", "c1", "c2"]
        [row] = await store.summary(by="model")
        assert row.calls == 3 and row.p50_latency_ms == 11.0
        with pytest.raises(StoreError, match="read-only"):
            await store.add(LLMCall(call_id="x", timestamp=datetime.now(UTC), model="m"))
    assert database_file(tmp_path, "calls.db") == before


def test_read_only_settings_that_would_write_are_refused(tmp_path: Path) -> None:
    """Retention on a read-only store, or a read-only :memory: store, is a ConfigError."""
    from asynctelemetry import ConfigError

    with pytest.raises(ConfigError, match="retention"):
        SQLiteStore(tmp_path / "x.db", read_only=True, max_rows=10)
    with pytest.raises(ConfigError, match="memory"):
        SQLiteStore(":memory:", read_only=True)


@pytest.mark.parametrize("command", [["calls"], ["summary"], ["calls", "--json"]])
def test_cli_reads_leave_another_programs_file_untouched(
    tmp_path: Path, command: list[str]
) -> None:
    """``calls``/``summary --db other_app.db`` exit 1 with one line and change no byte: no
    ``calls`` table added, no ``user_version``, no switch to WAL."""
    path = tmp_path / "other_app.db"
    other_apps_file(path)
    before = fingerprint(tmp_path)
    result = run_cli(*command, "--db", path, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "not an asynctelemetry call store" in one_line_error(result)
    assert fingerprint(tmp_path) == before


def test_cli_reads_leave_a_newer_schema_untouched(tmp_path: Path) -> None:
    """A file of a newer schema gets the upgrade message and keeps its header byte for byte."""
    path = tmp_path / "newer.db"
    newer_schema_file(path)
    before = fingerprint(tmp_path)
    result = run_cli("calls", "--db", path, cwd=tmp_path)
    assert result.returncode == 1
    assert "upgrade asynctelemetry" in one_line_error(result)
    assert fingerprint(tmp_path) == before


async def test_cli_summary_reads_a_store_without_changing_it(tmp_path: Path) -> None:
    """Reading a real call store from the CLI changes none of its files."""
    path = tmp_path / "calls.db"
    await written_store(path)
    before = database_file(tmp_path, "calls.db")
    result = run_cli("summary", "--db", path, "--by", "model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "gpt-4o" in result.stdout
    assert database_file(tmp_path, "calls.db") == before
