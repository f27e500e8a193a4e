"""calls, summary, replay, reprice, --version and the error contract, as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import AsyncCollector, MemoryStore, PriceTable, SQLiteStore
from tests.cli.conftest import known_calls
from tests.cli.helpers import CLI, cli_env, one_line_error, run_cli

if TYPE_CHECKING:
    from pathlib import Path


def json_lines(text: str) -> list[dict[str, object]]:
    """Parse JSON Lines output."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_version(tmp_path: Path) -> None:
    """--version prints the package version and exits 0."""
    from asynctelemetry import __version__

    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"asynctelemetry {__version__}"


def test_no_command_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """No command at all: the commands and how to get each one's help, on stderr, status 2."""
    from asynctelemetry.cli import main

    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: asynctelemetry") and "collect" in err and "--help" in err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("calls", "--db", "x.db", "--store", "memory://"), id="two-stores"),
        pytest.param(("sumary",), id="mistyped-command"),
        pytest.param(("calls", "--dbb", "x.db"), id="mistyped-option"),
        pytest.param(("calls", "--db", "x.db", "--since", "yesterday"), id="bad-since"),
        pytest.param(("calls", "--db", "x.db", "--limit", "0"), id="bad-limit"),
        pytest.param(("summary", "--db", "x.db", "--by", "colour"), id="bad-by"),
        pytest.param(("collect", "--port", "70000"), id="bad-port"),
        pytest.param(("calls", "--store", "ftp://x"), id="bad-store-url"),
        pytest.param(("calls", "--db", "x.db", "--since", "99999999999999w"), id="huge-duration"),
        pytest.param(
            ("calls", "--db", "x.db", "--since", "0001-01-01T00:00:00+14:00"), id="before-year-1"
        ),
        pytest.param(
            ("calls", "--db", "x.db", "--until", "9999-12-31T23:59:59-14:00"), id="after-9999"
        ),
        pytest.param(("calls", "--db", "x.db", "--limit", str(10**30)), id="huge-limit"),
        pytest.param(
            ("calls", "--store", "memory://?capacity=99999999999999999999"), id="20-digit-capacity"
        ),
        pytest.param(("replay", "--db", "x.db", "--to", "sqlite:///a%00b.db"), id="nul-in-path"),
        pytest.param(("replay", "--db", "x.db", "--to", "otlp://[::1"), id="bad-ipv6"),
        pytest.param(("replay", "--db", "x.db", "--to", "otlp://h:99999999"), id="bad-port-to"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
) -> None:  # fmt: skip
    """A wrong command line exits 2 with a one-line error and no traceback (in-process)."""
    from asynctelemetry.cli import main

    monkeypatch.chdir(tmp_path)
    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse exits by itself
        status = exc.code  # type: ignore[assignment]
    assert status == 2
    err = capsys.readouterr().err
    # one line, naming the command, the mistake and where the usage is; no traceback
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.match(r"asynctelemetry( [a-z]+)?: error: \S", lines[0]), err


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        pytest.param(("sumary",), "did you mean 'summary'?", id="command"),
        pytest.param(("summary", "--bye", "provider"), "did you mean --by?", id="option"),
        pytest.param(("calls", "--jsn", "--limt=3"), "--json (for --jsn), --limit", id="two"),
        pytest.param(("summary", "--by", "modle"), "did you mean 'model'?", id="choice"),
    ],
)
def test_did_you_mean(tmp_path: Path, args: tuple[str, ...], hint: str) -> None:
    """A mistyped command, option or choice exits 2 naming the closest spelling."""
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert hint in result.stderr and "Traceback" not in result.stderr


def test_every_command_has_help_with_examples(tmp_path: Path) -> None:
    """Each command's --help describes every option and ends with runnable examples."""
    from asynctelemetry.cli._help import EXAMPLES

    for command, examples in EXAMPLES.items():
        result = run_cli(command, "--help", cwd=tmp_path)
        assert result.returncode == 0
        text = result.stdout
        assert "examples:" in text
        for _, line in examples:
            assert line in text
    from asynctelemetry.cli import _subparser, build_parser

    parser = build_parser()
    for command in EXAMPLES:
        sub = _subparser(parser, command)
        assert sub is not None
        for action in sub._actions:
            assert action.help, f"{command} {action.option_strings} has no help"


def test_db_defaults_to_the_environment_then_calls_db(db: Path) -> None:
    """calls and summary read calls.db in the working directory, or $ASYNCTELEMETRY_DB."""
    here = run_cli("summary", "--by", "model", "--json", cwd=db.parent)
    assert here.returncode == 0 and here.stdout.count('"by": "model"') == 3
    elsewhere = db.parent / "sub"
    elsewhere.mkdir()
    missing = run_cli("calls", cwd=elsewhere)
    assert missing.returncode == 1
    assert "calls.db: no such file" in one_line_error(missing)
    env = run_cli("calls", "--json", "--all", cwd=elsewhere, env=cli_env(ASYNCTELEMETRY_DB=str(db)))
    assert env.returncode == 0 and len(env.stdout.splitlines()) == 40


def test_plurals_and_replay_counts_new_and_present(db: Path) -> None:
    """One call is "1 call"; replaying twice into a store says how many copies were new."""
    one = run_cli("calls", "--db", db, "--limit", "1", cwd=db.parent)
    assert "1 call, newest first" in one.stdout
    target = f"sqlite:///{db.parent / 'copy.db'}"
    first = run_cli("replay", "--db", db, "--to", target, "--status", "error", cwd=db.parent)
    assert first.returncode == 0, first.stderr
    assert ": 4 new, 0 already there" in first.stdout
    again = run_cli("replay", "--db", db, "--to", target, cwd=db.parent)
    assert "replayed 40 calls" in again.stdout and ": 36 new, 4 already there" in again.stdout
    summary = run_cli("summary", "--db", db.parent / "copy.db", "--status", "error", cwd=db.parent)
    assert "4 calls, 4 errors" in summary.stdout


def test_usage_error_exit_status_of_the_process(tmp_path: Path) -> None:
    """The installed entry point really exits 2 on a usage error."""
    result = run_cli("calls", "--db", "x.db", "--since", "yesterday", cwd=tmp_path)
    assert result.returncode == 2
    assert "--since" in result.stderr and "Traceback" not in result.stderr


def test_calls_json_filters_and_order(db: Path) -> None:
    """--model filters, newest first by default, one parseable JSON object per line."""
    result = run_cli("calls", "--db", db, "--model", "gpt-4o", "--json", "--all", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    rows = json_lines(result.stdout)
    expected = [c for c in reversed(known_calls()) if c.model == "gpt-4o"]
    assert [r["call_id"] for r in rows] == [c.call_id for c in expected]
    assert rows[0]["route_name"] == expected[0].route_name


def test_calls_time_window_and_status(db: Path) -> None:
    """--since/--until take ISO times (since inclusive, until exclusive); --status filters."""
    result = run_cli(
        "calls", "--db", db, "--since", "2026-01-01T00:00:10", "--until", "2026-01-01T00:00:30",
        "--status", "error", "--oldest", "--json", cwd=db.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [r["call_id"] for r in json_lines(result.stdout)] == ["call-000019", "call-000029"]


def test_calls_relative_since(db: Path) -> None:
    """--since 15m counts back from now: the 2026-01-01 calls are older, unless the clock is."""
    result = run_cli("calls", "--db", db, "--since", "1w", "--json", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    from datetime import UTC, datetime, timedelta

    week_ago = datetime.now(UTC) - timedelta(weeks=1)
    expected = [c for c in known_calls() if c.timestamp >= week_ago]
    assert len(json_lines(result.stdout)) == len(expected)


def test_calls_table_with_limit(db: Path) -> None:
    """The table shows the newest calls, only columns with data, and says how to see more."""
    result = run_cli("calls", "--db", db, "--limit", "5", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["time", "status", "provider"] or header[:2] == ["time", "status"]
    assert "ttft" not in header or any("ms" in line for line in lines[2:7])
    assert "2026-01-01 00:00:39" in lines[2]  # newest first
    assert "5 calls, newest first; --limit N or --all for more" in result.stdout
    assert all(len(line) <= 100 for line in lines)


def test_summary_json_by_provider(db: Path) -> None:
    """summary --json gives one row per provider with the store's totals."""
    result = run_cli("summary", "--db", db, "--by", "provider", "--json", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    rows = {r["key"]: r for r in json_lines(result.stdout)}
    calls = known_calls()
    for provider in ("openai", "anthropic", "google"):
        mine = [c for c in calls if c.provider == provider]
        assert rows[provider]["calls"] == len(mine)
        assert rows[provider]["errors"] == sum(c.status == "error" for c in mine)
        assert rows[provider]["by"] == "provider"
        assert rows[provider]["cost_usd"] == pytest.approx(math.fsum(c.cost_usd or 0 for c in mine))


def test_summary_bar_charts(db: Path) -> None:
    """The human summary has a table, a total line and bar charts of cost and p95 latency."""
    result = run_cli("summary", "--db", db, "--by", "route", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "calls by route" in out and "support-chat" in out and "summarize" in out
    assert "40 calls, 4 errors" in out
    cost_chart = out.split("\ncost")[1]
    assert "█" in cost_chart and "p95 latency" in out
    assert all(len(line) <= 100 for line in out.splitlines())


def test_missing_file_is_a_runtime_error(tmp_path: Path) -> None:
    """A missing database exits 1 with one line naming the file, and creates nothing."""
    result = run_cli("summary", "--db", "nope.db", cwd=tmp_path)
    assert result.returncode == 1
    assert "nope.db: no such file" in one_line_error(result)
    assert not (tmp_path / "nope.db").exists()


def test_not_a_database(tmp_path: Path) -> None:
    """A file that is not SQLite exits 1 with SQLite's reason, without a traceback."""
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n" * 100)
    result = run_cli("calls", "--db", "notes.db", cwd=tmp_path)
    assert result.returncode == 1
    assert "not a database" in one_line_error(result)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """--debug (before or after the command) adds the traceback to the one-line reason."""
    (tmp_path / "notes.db").write_text("x" * 4096)
    for args in (
        ("--debug", "calls", "--db", "notes.db"),
        ("calls", "--db", "notes.db", "--debug"),
    ):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 1
        assert "Traceback" in result.stderr
        assert "asynctelemetry: error: " in result.stderr


def test_missing_rich_names_the_extra(tmp_path: Path) -> None:
    """Without rich the CLI prints the pip command of the cli extra, not an ImportError."""
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from asynctelemetry.cli import main\n"
        "sys.exit(main(['summary', '--db', 'x.db']))\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "pip install 'asynctelemetry[cli]'" in one_line_error(result)


async def test_replay_into_another_store(db: Path) -> None:
    """replay --to sqlite:///copy.db copies the filtered calls, marked source=replay."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, "replay", "--db", str(db), "--to", "sqlite:///copy.db", "--status", "error",
        cwd=db.parent, env=cli_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "replayed 4 calls" in out.decode()
    async with SQLiteStore(db.parent / "copy.db") as copy:
        copied = await copy.query()
    assert [c.call_id for c in copied] == [
        "call-000009",
        "call-000019",
        "call-000029",
        "call-000039",
    ]
    assert {c.source for c in copied} == {"replay"}


async def test_replay_to_an_otlp_collector(db: Path) -> None:
    """replay --to otlp://host:port re-exports every call to a real collector, which keeps them."""
    store = MemoryStore(1000)
    async with AsyncCollector(store, port=0) as collector:
        proc = await asyncio.create_subprocess_exec(
            *CLI, "replay", "--db", str(db), "--to", f"otlp://127.0.0.1:{collector.port}",
            cwd=db.parent, env=cli_env(), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        await collector.flush()
    got = {c.call_id: c for c in await store.query()}
    expected = known_calls()
    assert len(got) == len(expected)
    for call in expected:
        assert got[call.call_id].model == call.model
        assert got[call.call_id].input_tokens == call.input_tokens
        assert got[call.call_id].status == call.status


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("ftp://example.org", 2, id="unknown-scheme"),
        pytest.param("sqlite:///calls.db", 2, id="same-file"),
    ],
)
def test_replay_bad_targets(db: Path, target: str, status: int) -> None:
    """A target that is neither a store nor an endpoint, or the source itself, is refused."""
    result = run_cli("replay", "--db", db, "--to", target, cwd=db.parent)
    assert result.returncode == status
    assert one_line_error(result)


def test_reprice_with_a_price_file(db: Path) -> None:
    """reprice recomputes each model's cost with the file's table and prints the difference."""
    prices = db.parent / "prices.json"
    prices.write_text(json.dumps({"gpt-4o": {"input_per_million": 10, "output_per_million": 40}}))
    result = run_cli("reprice", "--db", db, "--prices", prices, "--json", cwd=db.parent)
    assert result.returncode == 0, result.stderr
    rows = {r["model"]: r for r in json_lines(result.stdout)}
    table = PriceTable.from_file(prices)
    for model in ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"):
        mine = [c for c in known_calls() if c.model == model]
        stored = math.fsum(c.cost_usd or 0 for c in mine)
        repriced = math.fsum(table.cost(c) or 0 for c in mine)
        assert rows[model]["calls"] == len(mine)
        assert rows[model]["stored_usd"] == pytest.approx(stored)
        assert rows[model]["repriced_usd"] == pytest.approx(repriced)
        assert rows[model]["difference_usd"] == pytest.approx(repriced - stored)
        assert rows[model]["stored_price_versions"] == {"genai-prices 0.0.1": len(mine)}
        assert rows[model]["price_version"] == table.version
    gpt = [c for c in known_calls() if c.model == "gpt-4o"]
    assert rows["gpt-4o"]["repriced_usd"] == pytest.approx(
        math.fsum((c.input_tokens or 0) * 10e-6 + (c.output_tokens or 0) * 40e-6 for c in gpt)
    )
    human = run_cli("reprice", "--db", db, "--prices", prices, cwd=db.parent)
    assert human.returncode == 0
    assert "costs recomputed with genai-prices" in human.stdout
    assert "40 calls: stored" in human.stdout


def test_reprice_bad_price_file(db: Path) -> None:
    """A price file that is not valid exits 1 with the file's name and the reason."""
    (db.parent / "prices.json").write_text('{"gpt-4o": {"input_per_million": -1}}')
    result = run_cli("reprice", "--db", db, "--prices", "prices.json", cwd=db.parent)
    assert result.returncode == 1
    assert "prices.json" in one_line_error(result)


def test_replay_progress_bar_on_a_terminal(db: Path) -> None:
    """On a terminal replay draws a progress bar that reaches the total, then reports."""
    import os
    import pty
    import select
    import subprocess

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "replay", "--db", db.name, "--to", "memory://"],
        cwd=db.parent, env=cli_env(TERM="xterm-256color"), stdin=slave, stdout=slave,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(slave)
    screen = b""
    try:
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the terminal closed with the process
                    break
        proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    text = screen.decode(errors="replace")
    assert proc.returncode == 0
    assert "replaying" in text and "40/40" in text
    assert "replayed 40 calls from calls.db to memory://" in text


# -- the first hour -------------------------------------------------------------------------------
def test_db_of_another_scheme_is_unsupported(tmp_path: Path) -> None:
    """--db mysql://… is a usage error naming the unsupported scheme (not "no such file");
    --db sqlite:///path works as the path does."""
    for command in ("calls", "summary"):
        result = run_cli(command, "--db", "mysql://root@localhost/app", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "unsupported scheme 'mysql'" in one_line_error(result)


def test_db_sqlite_url_reads_the_file(db: Path) -> None:
    """--db sqlite:///calls.db reads the same file as --db calls.db."""
    plain = run_cli("summary", "--db", db.name, "--json", cwd=db.parent)
    url = run_cli("summary", "--db", f"sqlite:///{db.name}", "--json", cwd=db.parent)
    assert url.returncode == 0, url.stderr
    assert url.stdout == plain.stdout


def test_model_that_matches_nothing_names_the_closest(db: Path) -> None:
    """--model with a name no call has: the closest stored model names, not a bare nothing."""
    for command in ("calls", "summary"):
        result = run_cli(command, "--db", db.name, "--model", "gpt4o", cwd=db.parent)
        assert result.returncode == 0, result.stderr
        assert "no calls of model 'gpt4o'; closest stored: gpt-4o" in result.stdout


def test_reprice_write_reports_the_count_its_table_shows(db: Path) -> None:
    """The calls the table says will change are the calls --write changes: a new cost, or the
    same cost of another price version."""
    prices = db.parent / "prices.json"
    prices.write_text(json.dumps({"gpt-4o": {"input_per_million": 10, "output_per_million": 40}}))
    shown = run_cli("reprice", "--db", db, "--prices", prices, "--json", cwd=db.parent)
    changed = sum(r["changed_calls"] for r in json_lines(shown.stdout))
    written = run_cli("reprice", "--db", db, "--prices", prices, "--write", cwd=db.parent)
    assert written.returncode == 0, written.stderr
    assert f"wrote new costs to {changed} calls" in written.stdout.replace(",", "")
    assert changed > 0
    again = run_cli("reprice", "--db", db, "--prices", prices, "--json", cwd=db.parent)
    assert sum(r["changed_calls"] for r in json_lines(again.stdout)) == 0


def test_quickstart_lists_every_extra() -> None:
    """The extras table of the quickstart names every extra pyproject.toml defines."""
    import tomllib
    from pathlib import Path as P

    root = P(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    page = (root / "docs" / "quickstart.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in page.splitlines()
        if line.startswith("| `")
    }
    assert set(extras) <= rows, set(extras) - rows
    commands = (root / "docs" / "cli.md").read_text().split("## Exit status", 1)[0]
    for name in ("collect", "calls", "summary", "replay", "reprice", "demo", "ui"):
        assert f"| `{name}` |" in commands, name
