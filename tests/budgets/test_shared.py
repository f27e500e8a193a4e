"""Budgets kept in the tracer's database: processes share one limit, atomically; a process that
dies gives its reservations back after the lease."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import AsyncTracer, Budget, BudgetExceededError, SQLiteStore, open_store
from asynctelemetry._budgets import Hold
from asynctelemetry._budgets._sql import PostgresLedger, SQLiteLedger, bounded_key

from .worker import TABLE

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]


async def _workers(url: str, processes: int, tasks: int) -> list[dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.budgets.worker",
            url,
            str(tasks),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        for _ in range(processes)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return [json.loads(out) for out, _ in outputs]


@pytest.fixture(params=["postgres", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """The URL of a store shared by several processes (PostgreSQL, or SQLite on one host)."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / 'calls.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return lambda: dsn


async def test_processes_share_one_limit(store_url: Callable[[], str]) -> None:
    """4 processes x 50 concurrent tasks against one $1.00 budget in the database: every
    reservation is atomic, so the calls made cost at most the limit plus the underestimates of
    the calls in flight when it was reached, and the ledger's spend equals what they cost."""
    url = store_url()
    results = await _workers(url, 4, 50)
    made = sum(int(r["made"]) for r in results)
    spent = sum(r["spent"] for r in results)
    # Each reserves $0.01 of $1.00: at most 100 fit, whoever asks; each that settles spends
    # $0.011, so at least 90 do. A race between check and hold would let more than 100 in.
    assert 90 <= made <= 100
    assert made + sum(int(r["refused"]) for r in results) == 200
    assert spent <= 1.0 + 0.001 * made + 1e-9
    async with open_store(url) as store:
        async with AsyncTracer(store=store, budgets=[Budget(1.0, name="shared")]) as tracer:
            [status] = await tracer.budget_status()
    assert status.spent_usd == pytest.approx(spent)
    assert status.reserved_usd == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(params=["postgres", "sqlite"])
def ledger_of(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[float], PostgresLedger | SQLiteLedger]:
    """Ledgers (given their lease) that share one database, PostgreSQL or a SQLite file."""
    if request.param == "sqlite":
        path = str(tmp_path / "ledger.db")
        return lambda lease: SQLiteLedger(path, lease=lease)
    dsn: str = request.getfixturevalue("pg_dsn")
    return lambda lease: PostgresLedger(dsn, lease=lease)


async def test_holds_of_a_dead_process_expire(
    ledger_of: Callable[[float], PostgresLedger | SQLiteLedger],
) -> None:
    """A hold never settled (its process died) is swept back after its lease; until then it
    counts against the limit."""
    make = ledger_of
    budget = Budget(1.0, name="leased")
    dead = make(1.5)
    assert await dead.reserve(Hold(budget, "", 0.0, 0.9)) is None
    await dead._leases.stop()  # the process "dies": no renewal, no settlement
    alive = make(60.0)
    try:
        assert await alive.reserve(Hold(budget, "", 0.0, 0.5)) == (0.0, pytest.approx(0.9))
        await asyncio.sleep(1.6)
        assert await alive.reserve(Hold(budget, "", 0.0, 0.5)) is None  # the sweep freed it
        [status] = await alive.status([budget])
        assert status.reserved_usd == pytest.approx(0.5)
    finally:
        await alive.aclose()
        dead._leases.live.clear()
        await dead.aclose()


async def test_long_keys_are_bounded(pg_dsn: str) -> None:
    """A session id of kilobytes keys a budget without breaking the database's index, and
    stays distinct from another long id with the same beginning."""
    first, second = "x" * 5000 + "a", "x" * 5000 + "b"
    assert bounded_key(first) != bounded_key(second)
    assert len(bounded_key(first)) <= 200
    async with open_store(pg_dsn) as store:
        budget = Budget(0.01, by="session")
        async with AsyncTracer(store=store, budgets=[budget]) as tracer:
            async with tracer.llm_call(model="m", session_id=first, estimate_usd=0.01):
                pass
            with pytest.raises(BudgetExceededError):
                async with tracer.llm_call(model="m", session_id=first):
                    pass
            async with tracer.llm_call(model="m", session_id=second, estimate_usd=0.01):
                pass


async def test_sqlite_budget_tables_live_beside_the_calls(tmp_path: Path) -> None:
    """With a SQLiteStore the ledger is in the same file, and a second tracer (a restarted
    process) sees the spend of the first."""
    path = tmp_path / "calls.db"
    for _ in range(2):
        async with SQLiteStore(path) as store:
            budget = Budget(0.015, name="file")
            async with AsyncTracer(store=store, price_table=TABLE, budgets=[budget]) as tracer:
                try:
                    async with tracer.llm_call(model="budget-model", estimate_usd=0.01) as call:
                        call.set_usage(input_tokens=10_000, output_tokens=0)
                except BudgetExceededError:
                    pass
                [status] = await tracer.budget_status()
    assert status.spent_usd == pytest.approx(0.01)  # the second run was refused
