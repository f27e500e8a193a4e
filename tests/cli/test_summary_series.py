"""summary grouped by the requested model, summary --every (time series), reprice --write:
real CLI processes on real SQLite files."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import timedelta
from typing import TYPE_CHECKING

from asynctelemetry import MemoryStore, PriceTable, SQLiteStore
from tests.cli.conftest import known_calls
from tests.cli.helpers import run_cli
from tests.conftest import make_call

if TYPE_CHECKING:
    from pathlib import Path


def json_lines(text: str) -> list[dict[str, object]]:
    """Parse JSON Lines output."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _write(path: Path, calls: list) -> None:  # type: ignore[type-arg]
    async with SQLiteStore(path) as store:
        await store.add_many(calls)


def test_summary_groups_by_requested_model_by_default(tmp_path: Path) -> None:
    """A model's failed calls (no response model) sit on its row, beside its dated snapshot."""
    path = tmp_path / "calls.db"
    calls = [
        make_call(0, model="gpt-4o-mini-2024-07-18", request_model="gpt-4o-mini"),
        make_call(1, model="gpt-4o-mini", request_model="gpt-4o-mini", status="error"),
        make_call(2, model="gpt-4o-2024-08-06", request_model="gpt-4o"),
    ]
    asyncio.run(_write(path, calls))
    result = run_cli("summary", "--db", path, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["key"]: r for r in json_lines(result.stdout)}
    assert set(rows) == {"gpt-4o-mini", "gpt-4o"}
    assert (rows["gpt-4o-mini"]["calls"], rows["gpt-4o-mini"]["errors"]) == (2, 1)
    assert {r["by"] for r in rows.values()} == {"request_model"}
    by_model = run_cli("summary", "--db", path, "--by", "model", "--json", cwd=tmp_path)
    assert len(json_lines(by_model.stdout)) == 3
    human = run_cli("summary", "--db", path, "--model", "gpt-4o-mini", cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "calls by request_model" in human.stdout
    assert "2 calls, 1 error," in human.stdout


def test_summary_every_prints_the_time_series(db: Path) -> None:
    """--every 10s gives one row per 10-second bucket, equal to the store's timeseries()."""
    result = run_cli("summary", "--db", db, "--every", "10s", "--json", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    rows = json_lines(result.stdout)

    async def expected() -> list[dict[str, object]]:
        store = MemoryStore()
        await store.add_many(known_calls())
        series = await store.timeseries(bucket=timedelta(seconds=10))
        return [{"every": "10s", "by": None, **b.model_dump(mode="json")} for b in series]

    assert rows == asyncio.run(expected())
    assert [r["calls"] for r in rows] == [10, 10, 10, 10]
    grouped = run_cli(
        "summary", "--db", db, "--every", "1m", "--by", "model", "--json", cwd=db.parent
    )
    assert [(r["key"], r["calls"]) for r in json_lines(grouped.stdout)] == [
        ("claude-sonnet-4-5", 13),
        ("gemini-2.5-flash", 13),
        ("gpt-4o", 14),
    ]
    human = run_cli("summary", "--db", db, "--every", "10s", cwd=db.parent)
    assert human.returncode == 0, human.stderr
    assert "calls every 10s" in human.stdout and "start (UTC)" in human.stdout
    assert "2026-01-01 00:00:30" in human.stdout
    assert "40 calls in 4 buckets" in human.stdout


def test_summary_by_agent_user_and_tag(tmp_path: Path) -> None:
    """--by agent|user|tag: one row per agent, user or tag; a call with two tags is in both
    rows, and the line under the table says the rows overlap; --every cannot group by tag."""
    path = tmp_path / "calls.db"
    calls = [
        make_call(0, agent_name="planner", user_id="ann", tags=("beta", "gold")),
        make_call(1, agent_name="planner", user_id="bob", tags=("beta",)),
        make_call(2, user_id="ann"),
    ]
    asyncio.run(_write(path, calls))
    keys = {}
    for by in ("agent", "user", "tag"):
        result = run_cli("summary", "--db", path, "--by", by, "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        keys[by] = {r["key"]: r["calls"] for r in json_lines(result.stdout)}
    assert keys == {
        "agent": {"planner": 2, None: 1},
        "user": {"ann": 2, "bob": 1},
        "tag": {"beta": 2, "gold": 1, None: 1},
    }
    human = run_cli("summary", "--db", path, "--by", "tag", cwd=tmp_path)
    assert "calls by tag" in human.stdout and "counts under each" in human.stdout
    series = run_cli("summary", "--db", path, "--by", "tag", "--every", "1m", cwd=tmp_path)
    assert series.returncode == 2 and "cannot group by tag" in series.stderr


def test_summary_every_refuses_a_bad_interval(db: Path) -> None:
    """An interval that is not <n>s|m|h|d (or is zero) is a usage error: exit 2, no traceback."""
    for bad in ("5x", "0m", "-1h"):
        result = run_cli("summary", "--db", db, "--every", bad, cwd=db.parent)
        assert result.returncode == 2, (bad, result.stderr)
        assert "--every" in result.stderr and "Traceback" not in result.stderr


def test_reprice_write_stores_the_new_costs(db: Path) -> None:
    """reprice --write stores each call's new cost with the table's price_version; summaries
    follow; a second run finds nothing left to change."""
    prices = db.parent / "prices.json"
    prices.write_text(json.dumps({"gpt-4o": {"input_per_million": 10, "output_per_million": 40}}))
    table = PriceTable.from_file(prices)
    result = run_cli("reprice", "--db", db, "--prices", prices, "--write", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    changed = [
        c
        for c in known_calls()
        if (cost := table.cost(c)) is not None
        and (cost != c.cost_usd or c.price_version != table.version)
    ]
    assert changed  # the override changes gpt-4o's calls at least
    assert f"wrote new costs to {len(changed):,} calls" in result.stdout

    async def stored() -> tuple[list, list]:  # type: ignore[type-arg]
        async with SQLiteStore(db) as store:
            return await store.query(), await store.summary(by="model")

    calls, summary = asyncio.run(stored())
    for before, after in zip(known_calls(), calls, strict=True):
        cost = table.cost(before)
        if cost is None:
            assert (after.cost_usd, after.price_version) == (before.cost_usd, before.price_version)
        else:
            assert (after.cost_usd, after.price_version) == (cost, table.version)
    gpt = next(r for r in summary if r.key == "gpt-4o")
    assert gpt.cost_usd == math.fsum(c.cost_usd or 0 for c in calls if c.model == "gpt-4o")
    again = run_cli("reprice", "--db", db, "--prices", prices, "--write", "--json", cwd=db.parent)
    assert again.returncode == 0, again.stderr
    assert "wrote new costs to 0 calls" in again.stderr
    report = run_cli("reprice", "--db", db, "--prices", prices, cwd=db.parent)
    assert "--write stores the new ones" in report.stdout


def test_unpriced_calls_are_unknown_never_zero(tmp_path: Path) -> None:
    """``summary`` and ``calls`` show a call without a cost as unknown: a row whose calls are
    all unpriced says "unknown", the total says "+ N unpriced"; a call recorded without a
    request model sits on its model's row (no "(none)" row)."""
    path = tmp_path / "calls.db"
    calls = [
        make_call(0, model="gpt-4o", request_model=None, cost_usd=0.5),
        make_call(1, model="gpt-4o", request_model="gpt-4o", cost_usd=None),
        make_call(2, model="house-model", request_model=None, cost_usd=None),
    ]
    asyncio.run(_write(path, calls))
    human = run_cli("summary", "--db", path, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "(none)" not in human.stdout
    row, cost_bar, _ = [line for line in human.stdout.splitlines() if "house-model" in line]
    for house in (row, cost_bar):
        assert "unknown" in house and "$0" not in house
    assert "$0.5000 + 2 unpriced in all" in human.stdout
    listed = run_cli("calls", "--db", path, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("unknown") == 2 and "$0 " not in listed.stdout


def test_summary_shows_errors_by_type_and_message(tmp_path: Path) -> None:
    """After the groups, the failed calls grouped by error type and message, most first, with
    the models they failed on."""
    path = tmp_path / "calls.db"
    calls = [
        *(
            make_call(i, status="error", error_type="RateLimitError", request_model="gpt-4o",
                      error_message="rate_limit_error: slow down")
            for i in range(3)
        ),
        make_call(5, status="error", error_type="APITimeoutError", model="claude-sonnet-4-5",
                  request_model=None, error_message="Request timed out."),
        make_call(6, status="ok"),
    ]  # fmt: skip
    asyncio.run(_write(path, calls))
    result = run_cli("summary", "--db", path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("errors by type and message", 1)[1]
    lines = [line for line in out.splitlines() if "Error" in line]
    assert "RateLimitError" in lines[0] and "rate_limit_error: slow down" in lines[0]
    assert lines[0].rstrip().endswith("gpt-4o") and " 3 " in lines[0]
    assert "APITimeoutError" in lines[1] and "Request timed out." in lines[1]
