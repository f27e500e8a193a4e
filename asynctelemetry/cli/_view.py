"""The live view of ``collect`` and ``demo``: a snapshot of data and a pure ``render`` of it.

:class:`ViewState` holds what the screen shows: the store's summaries by model and by route or
session, a window of the latest calls (newest first), the last error and the collector's counters.
:func:`render` turns a state into a rich renderable for a given width and reads nothing else, so
tests print it to ``Console(record=True, width=100)`` and read the text back. Totals add up the
store's summary rows; latency and TTFT percentiles are over the window, with the package's one
nearest-rank :func:`~asynctelemetry._stores._base.percentile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .._stores._base import percentile
from ._render import (
    calls_table,
    fmt_cost,
    fmt_cost_of,
    fmt_count,
    fmt_ms,
    summary_columns,
    table_of,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import RenderableType

    from .._budgets import BudgetStatus
    from .._record import LLMCall
    from .._stores import CallSummary

__all__ = ["GROUP_ROWS", "RECENT_ROWS", "ViewState", "render"]

#: Rows of the "recent calls" table.
RECENT_ROWS = 8
#: Rows of the route or session table: the costliest routes or sessions.
GROUP_ROWS = 10


@dataclass(frozen=True)
class ViewState:
    """Everything the live view shows, gathered by the caller.

    Attributes:
        title: the first line (what is listening where, and where calls go).
        uptime_s: seconds since the collector started.
        by_model: ``store.summary(by="request_model")``: a model's failed calls (which got no
            response model) sit on its row.
        by_group: ``store.summary(by=group_by, limit=GROUP_ROWS + 1)``, the costliest routes
            or sessions (and maybe the calls of none, not shown; empty: no table).
        group_by: ``"route"`` or ``"session"``.
        window: the latest calls, newest first (percentiles and "recent calls" come from it).
        last_error: the latest call with status ``error``, if any.
        counters: collector counters to show in the header (name → value).
        budgets: the budgets kept in the store (spent and reserved of each limit).
        alerts_firing: the ``--alert`` rules firing now (``name [key]``).
    """

    title: str
    uptime_s: float = 0.0
    by_model: Sequence[CallSummary] = ()
    by_group: Sequence[CallSummary] = ()
    group_by: str = "route"
    window: Sequence[LLMCall] = ()
    last_error: LLMCall | None = None
    counters: dict[str, int] = field(default_factory=dict)
    budgets: Sequence[BudgetStatus] = ()
    alerts_firing: Sequence[str] = ()


def _percentiles(values: list[float]) -> str:
    values.sort()
    return " / ".join(fmt_ms(percentile(values, p)) for p in (50, 95, 99))


def _totals(state: ViewState) -> Table:
    rows = state.by_model
    calls = sum(r.calls for r in rows)
    errors = sum(r.errors for r in rows)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    share = f" ({errors / calls:.1%})" if calls else ""
    grid.add_row("requests", f"{calls:,}   errors {errors:,}{share}")
    if calls:
        unpriced = sum(r.unpriced_calls for r in rows)
        grid.add_row("cost", fmt_cost_of(sum(r.cost_usd for r in rows), calls, unpriced))
    tokens = f"in {fmt_count(sum(r.input_tokens for r in rows))}"
    tokens += f"   out {fmt_count(sum(r.output_tokens for r in rows))}"
    cached = sum(r.cached_input_tokens for r in rows)
    if cached:
        tokens += f"   cached {fmt_count(cached)}"
    grid.add_row("tokens", tokens)
    latencies = [c.duration_ms for c in state.window if c.duration_ms is not None]
    if latencies:
        grid.add_row(
            "latency", f"p50/p95/p99 {_percentiles(latencies)}   (last {len(latencies):,} calls)"
        )
    ttfts = [c.ttft_ms for c in state.window if c.ttft_ms is not None]
    if ttfts:
        grid.add_row("ttft", f"p50/p95/p99 {_percentiles(ttfts)}   (last {len(ttfts):,} calls)")
    return grid


def _call_line(call: LLMCall) -> Text:
    model = f"{call.provider}/{call.model}" if call.provider else call.model
    text = Text()
    text.append(call.timestamp.strftime("%H:%M:%S "), style="dim")
    style = "green" if call.status == "ok" else "yellow" if call.status == "cancelled" else "red"
    text.append(call.status if call.status != "error" else call.error_type or "error", style=style)
    text.append(f"  {model}", style="cyan")
    text.append(f"  {call.operation}")
    if call.input_tokens is not None or call.output_tokens is not None:
        text.append(f"  {fmt_count(call.input_tokens)} in / {fmt_count(call.output_tokens)} out")
    if call.ttft_ms is not None:
        text.append(f"  ttft {fmt_ms(call.ttft_ms)}")
    if call.duration_ms is not None:
        text.append(f"  {fmt_ms(call.duration_ms)}")
    text.append(f"  {fmt_cost(call.cost_usd)}" if call.cost_usd is not None else "  cost unknown")
    return text


def _header(state: ViewState) -> Text:
    text = Text(state.title, style="bold")
    minutes, seconds = divmod(int(state.uptime_s), 60)
    text.append(f"   up {minutes}m{seconds:02d}s", style="dim")
    if state.counters:
        shown = "   ".join(f"{name} {value:,}" for name, value in state.counters.items())
        text.append("\n" + shown, style="dim")
    return text


def render(state: ViewState, width: int) -> RenderableType:
    """The live view of ``state`` laid out for a terminal ``width`` columns wide.

    Tables keep the columns that fit ``width``, most useful first (see ``table_of``).
    """
    parts: list[RenderableType] = [_header(state)]
    if not state.window and not state.by_model:
        parts.append(Text("waiting for calls… (point an OTLP exporter at the address above)"))
        return Group(*parts)
    if state.window:
        parts += [Text("latest  ", style="bold") + _call_line(state.window[0])]
    parts += [Text(""), _totals(state)]
    by_model = table_of(state.by_model, summary_columns("model"), width=width, title="by model")
    if by_model is not None:
        parts += [Text(""), by_model]
    groups = [r for r in state.by_group if r.key is not None][:GROUP_ROWS]
    if groups:
        table = table_of(
            groups, summary_columns(state.group_by), width=width, title=f"by {state.group_by}"
        )
        parts += [Text(""), table]  # type: ignore[list-item]
    recent = calls_table(
        state.window[:RECENT_ROWS], width=width, title="recent calls", time_format="%H:%M:%S"
    )
    if recent is not None:
        parts += [Text(""), recent]
    if state.last_error is not None:
        parts += [Text(""), Text("last error  ", style="bold red") + _call_line(state.last_error)]
    if state.budgets:
        parts += [Text(""), _budgets_line(state.budgets)]
    if state.alerts_firing:
        parts += [Text("alerts firing  ", style="bold red") + Text(", ".join(state.alerts_firing))]
    return Group(*parts)


def _budgets_line(budgets: Sequence[BudgetStatus]) -> Text:
    """``budgets  daily 12% · users [alice] 104%``: the fullest first, at most eight."""
    line = Text("budgets  ", style="bold")
    fullest = sorted(budgets, key=lambda b: -b.used)[:8]
    for i, status in enumerate(fullest):
        if i:
            line.append(" · ", style="dim")
        key = f" [{status.key}]" if status.key else ""
        style = "red" if status.used >= 1 else "yellow" if status.used >= 0.8 else ""
        line.append(f"{status.name}{key} {status.used:.0%}", style=style)
    if len(budgets) > len(fullest):
        line.append(f" · {len(budgets) - len(fullest)} more", style="dim")
    return line
