"""Reading never writes, writing never adopts: a PostgreSQL read of a database without the
call store's schema is refused and creates nothing; a SQLite file holding another program's
tables is refused by a writing store unless it is told to adopt it (``adopt=True``,
``collect --adopt``)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import asyncpg
import pytest

from asynctelemetry import PostgresStore, SQLiteStore, StoreError
from tests.cli.helpers import run_cli
from tests.conftest import make_call
from tests.stores.test_read_only import database_file, other_apps_file

if TYPE_CHECKING:
    from pathlib import Path


async def _tables(dsn: str) -> list[str]:
    """The tables (and views) the DSN's search path shows, in every schema of it."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ANY(current_schemas(false)) AND c.relkind IN ('r', 'p', 'v')"
        )
    finally:
        await conn.close()
    return sorted(r[0] for r in rows)


async def test_postgres_reads_create_nothing(pg_dsn: str, tmp_path: Path) -> None:
    """calls, summary, ui and replay (a read) on a database without the schema: a clear
    one-line error, exit 1, and no table created; a read-only store refuses to open there."""
    before = await _tables(pg_dsn)
    for command in (("calls",), ("summary",), ("replay", "--to", "memory://")):
        result = run_cli(*command, "--db", pg_dsn, cwd=tmp_path)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "holds no asynctelemetry call store" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    with pytest.raises(StoreError, match="nothing was created"):
        async with PostgresStore(pg_dsn, read_only=True):
            pass
    assert await _tables(pg_dsn) == before


async def test_postgres_read_only_store_reads_and_refuses_writes(pg_dsn: str) -> None:
    """Once a writer made the schema, a read-only store reads it and takes no calls."""
    calls = [make_call(i) for i in range(3)]
    async with PostgresStore(pg_dsn) as writer:
        await writer.add_many(calls)
        await writer.flush()
    async with PostgresStore(pg_dsn, read_only=True) as reader:
        assert await reader.query() == calls
        with pytest.raises(StoreError, match="read-only"):
            await reader.add(make_call(9))


async def test_sqlite_refuses_another_programs_file(tmp_path: Path) -> None:
    """A file with another program's table is left as it was unless adopt=True."""
    path = tmp_path / "other.db"
    other_apps_file(path)
    before = database_file(tmp_path, "other.db")
    with pytest.raises(StoreError, match=r"another program's tables .*'orders'.*adopt=True"):
        async with SQLiteStore(path):
            pass
    assert database_file(tmp_path, "other.db") == before
    async with SQLiteStore(path, adopt=True) as store:
        await store.add(make_call(1))
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"orders", "calls"} <= names
    async with SQLiteStore(path) as store:  # a call store now: no adopt needed again
        assert await store.count() == 1


def test_collect_refuses_another_programs_file(tmp_path: Path) -> None:
    """collect --db other.db: exit 1 with the reason and the way out (--adopt)."""
    path = tmp_path / "other.db"
    other_apps_file(path)
    before = database_file(tmp_path, "other.db")
    result = run_cli("collect", "--db", path, "--port", "0", "--quiet", cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "another program's tables" in result.stderr and "--adopt" in result.stderr
    assert database_file(tmp_path, "other.db") == before
