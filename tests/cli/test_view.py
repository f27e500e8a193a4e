"""The live view: ``render(state, width)`` printed at a recorded terminal width and read back."""

from __future__ import annotations

import io

from rich.console import Console

from asynctelemetry import MemoryStore
from asynctelemetry._stores import percentile, summarize
from asynctelemetry.cli._live import CallTap, LiveView
from asynctelemetry.cli._render import bar, fmt_cost, fmt_ms
from asynctelemetry.cli._view import GROUP_ROWS, RECENT_ROWS, ViewState, render
from tests.cli.conftest import known_calls
from tests.conftest import make_call


def shown(state: ViewState, width: int = 100) -> str:
    """The text the terminal shows for ``state`` at ``width`` columns."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render(state, width))
    return console.export_text()


def state_of(calls: list, **extra: object) -> ViewState:  # type: ignore[type-arg]
    """The state the collector would show after receiving ``calls``."""
    newest_first = list(reversed(calls))
    errors = [c for c in newest_first if c.status == "error"]
    return ViewState(
        title="asynctelemetry collect · 127.0.0.1:4317 → calls.db",
        uptime_s=75,
        by_model=summarize(calls, "model"),
        by_group=summarize(calls, "route"),
        group_by="route",
        window=newest_first,
        last_error=errors[0] if errors else None,
        counters={"spans": 80, "not LLM": 40},
        **extra,  # type: ignore[arg-type]
    )


def test_full_view_at_100_columns() -> None:
    """Every section appears, fits 100 columns, and the figures are the store's and ours."""
    calls = known_calls()
    text = shown(state_of(calls))
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[0].startswith("asynctelemetry collect · 127.0.0.1:4317 → calls.db   up 1m15s")
    assert "spans 80   not LLM 40" in lines[1]
    assert "latest  " in text and "gpt-4o" in text.split("latest", 1)[1].splitlines()[0]
    assert "requests  40   errors 4 (10.0%)" in text
    total = sum(c.cost_usd or 0 for c in calls)
    assert f"cost      {fmt_cost(total)}" in text
    latencies = sorted(c.duration_ms for c in calls if c.duration_ms is not None)
    expected = " / ".join(fmt_ms(percentile(latencies, p)) for p in (50, 95, 99))
    assert f"latency   p50/p95/p99 {expected}   (last 40 calls)" in text
    for section in ("by model", "by route", "recent calls", "last error"):
        assert section in text
    assert "support-chat" in text and "claude-sonnet-4-5" in text
    recent = text.split("recent calls", 1)[1].split("last error", 1)[0]
    rows = [line for line in recent.splitlines() if line[:2].isdigit()]
    assert len(rows) == RECENT_ROWS
    assert rows[0].startswith("00:00:39")  # newest first
    assert "last error  00:00:39 error  openai/gpt-4o" in text


def test_columns_appear_only_with_data() -> None:
    """No TTFT, cached or route columns when no call has data for them; costs nobody knows
    are said to be unknown, never "$0"."""
    calls = [
        make_call(i, ttft_ms=None, cost_usd=None, session_id=None, route_name=None)
        for i in range(6)
    ]
    text = shown(state_of(calls))
    assert "ttft" not in text
    assert "cached" not in text
    assert "by route" not in text and "by session" not in text
    assert "unpriced" in text  # calls without a price are said, not hidden
    assert "$0" not in text
    assert "cost      unknown" in text or "cost  unknown" in text
    assert "cost unknown" in text  # each recent call without a cost
    mixed = [make_call(i, cost_usd=None if i % 2 else 0.25) for i in range(6)]
    assert "+ 3 unpriced" in shown(state_of(mixed))
    with_data = shown(state_of([make_call(i, cached_input_tokens=50) for i in range(6)]))
    assert "ttft" in with_data and "cached" in with_data


def test_narrow_terminal_keeps_the_essentials() -> None:
    """At 60 columns low-priority columns go; model, calls, cost stay; nothing overflows."""
    text = shown(state_of(known_calls()), width=60)
    assert all(len(line) <= 60 for line in text.splitlines())
    header = text.split("by model", 1)[1].splitlines()[1].split()
    assert header[:2] == ["model", "calls"] and "cost" in header
    assert "reasoning" not in text and "tok/s" not in header


def test_waiting_state() -> None:
    """Before the first call the view says what it is waiting for."""
    text = shown(ViewState(title="asynctelemetry collect · 127.0.0.1:4317 → calls.db"))
    assert "waiting for calls" in text
    assert "by model" not in text


def test_sessions_when_no_routes() -> None:
    """The group table is headed by the grouping it shows."""
    calls = [make_call(i) for i in range(8)]
    state = state_of(calls)
    state = ViewState(**{**state.__dict__, "by_group": summarize(calls, "session")})
    state = ViewState(**{**state.__dict__, "group_by": "session"})
    text = shown(state)
    assert "by session" in text and "s0" in text and "s3" in text


async def test_live_view_reads_only_the_sessions_it_shows() -> None:
    """Each refresh asks the store for the costliest sessions the table shows, not a summary
    of every session, and the table shows them costliest first."""
    calls = [
        make_call(i, session_id=f"s{i:02d}", route_name=None, cost_usd=0.01 * (i + 1))
        for i in range(40)
    ]
    async with MemoryStore() as store:
        await store.add_many(calls)
        view = LiveView(store, CallTap(), Console(file=io.StringIO()), title="t")
        state = await view.snapshot()
    assert state.group_by == "session"
    costliest = [f"s{i:02d}" for i in range(39, -1, -1)]
    assert [r.key for r in state.by_group] == costliest[: GROUP_ROWS + 1]
    table = shown(state).split("by session", 1)[1].split("recent calls", 1)[0]
    assert [k for k in costliest if k in table] == costliest[:GROUP_ROWS]


def test_bar_scale() -> None:
    """Bars scale to the largest value, keep eighths, and never hide a non-zero value."""
    assert bar(10, 10, 8) == "█" * 8
    assert bar(5, 10, 8) == "█" * 4
    assert bar(1, 16, 8) == "▌"
    assert bar(0.0001, 10, 8) == "▏"
    assert bar(0, 10, 8) == ""


def test_rates_of_calls_too_short_to_mean_anything_are_hidden() -> None:
    """A call that generated for under 50 ms shows no tok/s (not 698,666); a real one does."""
    from asynctelemetry.cli._render import call_rate, calls_table

    instant = make_call(0, duration_ms=0.03, ttft_ms=0.0, output_tokens=20)
    real = make_call(1, duration_ms=2100.0, ttft_ms=100.0, output_tokens=200)
    assert call_rate(instant) is None
    assert call_rate(real) == 100.0
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(calls_table([instant], width=160))
    assert "tok/s" not in console.export_text()
    console.print(calls_table([instant, real], width=160))
    text = console.export_text()
    assert "tok/s" in text and "666" not in text


def test_one_is_singular() -> None:
    """Totals read "1 call, 1 error", not "1 calls, 1 errors"."""
    from asynctelemetry.cli._render import summary_view

    failed = make_call(9)  # make_call(9) is an error
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(summary_view(summarize([failed], "model"), "model", 100))
    assert "1 call, 1 error," in console.export_text()


def test_zero_length_spans_show_no_rate() -> None:
    """Spans too short to measure (0 ms) show no tokens per second in the live view."""
    calls = [make_call(i, duration_ms=0.0, ttft_ms=None, output_tokens=50) for i in range(6)]
    text = shown(state_of(calls))
    assert "tok/s" not in text
