"""Pure renderers shared by the commands: numbers, bars, the calls table and the summary table.

Every function here takes data and returns text or a rich renderable; none reads a store, a clock
or the terminal, so each can be checked by printing to ``Console(record=True, width=...)``.
Columns appear only when some row has data for them (a TTFT column for a store of embeddings is
noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .._record import MIN_GENERATING_MS
from ._help import plural

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rich.console import RenderableType

    from .._record import LLMCall
    from .._stores import CallSummary, ErrorGroup, TimeBucket

__all__ = [
    "MIN_RATE_MS",
    "Column",
    "bar",
    "call_columns",
    "call_rate",
    "calls_table",
    "errors_view",
    "fmt_cost",
    "fmt_cost_of",
    "fmt_count",
    "fmt_ms",
    "fmt_rate",
    "series_columns",
    "series_view",
    "summary_columns",
    "summary_view",
    "table_of",
]

#: A tokens-per-second figure needs at least this much generating time (after the first token)
#: to mean anything: the records' rule (:data:`~asynctelemetry._record.MIN_GENERATING_MS`).
MIN_RATE_MS: Final = MIN_GENERATING_MS
_EIGHTHS: Final = " ▏▎▍▌▋▊▉"
_FULL: Final = "█"


def fmt_ms(value: float | None) -> str:
    """``"840ms"``, ``"1.25s"``, ``"2m05s"``; ``"-"`` for unknown."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f}ms"
    if value < 60_000:
        return f"{value / 1000:.2f}s"
    minutes, seconds = divmod(round(value / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def fmt_cost(value: float | None) -> str:
    """``"$0.0123"`` with enough digits to see small costs; ``"unknown"`` for an unknown cost
    (an unpriced call is never shown as ``"$0"``)."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.2f}"
    if value >= 0.01:
        return f"${value:.4f}"
    return f"${value:.6f}"


def fmt_cost_of(cost: float, calls: int, unpriced: int) -> str:
    """The cost of ``calls`` calls of which ``unpriced`` have no known cost: ``"unknown"`` when
    none is priced, else the known sum and ``"+ N unpriced"`` when some are not."""
    if calls and unpriced >= calls:
        return "unknown"
    known = fmt_cost(cost)
    return f"{known} + {unpriced:,} unpriced" if unpriced else known


def fmt_count(value: int | None) -> str:
    """``"1,234"``, ``"12.3k"``, ``"4.56M"``; ``"-"`` for unknown."""
    if value is None:
        return "-"
    if value < 10_000:
        return f"{value:,}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.2f}M"


def fmt_rate(value: float | None) -> str:
    """Tokens per second: ``"84.2"``, ``"1,250"``; ``"-"`` for unknown."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def call_rate(call: LLMCall) -> float | None:
    """The call's output tokens per second, or ``None`` when it generated for too short a time
    (under :data:`MIN_RATE_MS`) for the rate to mean anything."""
    return call.tokens_per_sec


def bar(value: float, largest: float, width: int) -> str:
    """A horizontal bar of ``value`` on a scale where ``largest`` fills ``width`` cells."""
    if width <= 0 or largest <= 0 or value <= 0:
        return ""
    eighths = round(min(value / largest, 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    text = _FULL * full + (_EIGHTHS[part] if part else "")
    return text or "▏"  # a non-zero value is never invisible


@dataclass(frozen=True)
class Column:
    """One table column: a header, how to format a row, and whether a row has data for it.

    ``priority`` decides which columns a narrow terminal keeps (higher stays longer).
    """

    header: str
    cell: Callable[[Any], str | Text]
    has_data: Callable[[Any], bool] = lambda row: True
    justify: str = "right"
    priority: int = 5
    style: str | None = None
    max_width: int | None = None


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def table_of(
    rows: Sequence[Any],
    columns: Sequence[Column],
    *,
    width: int,
    title: str | None = None,
) -> Table | None:
    """A table of ``rows`` that fits ``width`` columns; ``None`` without rows.

    Only the columns some row has data for are shown; when they do not fit, the ones with the
    lowest ``priority`` are left out, last declared first.
    """
    if not rows:
        return None
    shown = [col for col in columns if any(col.has_data(row) for row in rows)]
    cells = {id(col): [col.cell(row) for row in rows] for col in shown}

    def natural(col: Column) -> int:
        size = max(len(col.header), *(len(_plain(c)) for c in cells[id(col)]))
        return min(size, col.max_width) if col.max_width else size

    while len(shown) > 2 and sum(natural(c) + 3 for c in shown) - 1 > width:
        lowest = min(range(len(shown)), key=lambda i: (shown[i].priority, -i))
        del shown[lowest]
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for col in shown:
        table.add_column(
            col.header,
            justify=col.justify,  # type: ignore[arg-type]
            style=col.style,
            max_width=col.max_width,
            no_wrap=True,
            overflow="ellipsis",
        )
    for index in range(len(rows)):
        table.add_row(*(cells[id(col)][index] for col in shown))
    return table


def _status(call: LLMCall) -> Text:
    if call.status == "ok":
        return Text("ok", style="green")
    label = call.status if call.status == "cancelled" else (call.error_type or "error")
    return Text(label, style="yellow" if call.status == "cancelled" else "red")


def call_columns(time_format: str = "%Y-%m-%d %H:%M:%S") -> tuple[Column, ...]:
    """The columns of a calls table (timestamps in UTC, formatted with ``time_format``)."""
    return (
        Column("time", lambda c: c.timestamp.strftime(time_format), justify="left", priority=9),
        Column("status", _status, justify="left", priority=10, max_width=18),
        Column(
            "provider", lambda c: c.provider or "-", lambda c: c.provider is not None, "left", 3
        ),
        Column("model", lambda c: c.model, justify="left", priority=10, style="cyan", max_width=30),
        Column("op", lambda c: c.operation, justify="left", priority=4),
        Column(
            "session", lambda c: c.session_id or "-", lambda c: c.session_id is not None, "left", 5,
            max_width=20,
        ),
        Column(
            "route", lambda c: c.route_name or "-", lambda c: c.route_name is not None, "left", 4,
            max_width=20,
        ),
        Column("in", lambda c: fmt_count(c.input_tokens), lambda c: c.input_tokens is not None,
               priority=7),
        Column("out", lambda c: fmt_count(c.output_tokens), lambda c: c.output_tokens is not None,
               priority=7),
        Column("cached", lambda c: fmt_count(c.cached_input_tokens),
               lambda c: bool(c.cached_input_tokens), priority=2),
        Column("ttft", lambda c: fmt_ms(c.ttft_ms), lambda c: c.ttft_ms is not None, priority=6),
        Column("latency", lambda c: fmt_ms(c.duration_ms), lambda c: c.duration_ms is not None,
               priority=8),
        Column("tok/s", lambda c: fmt_rate(call_rate(c)), lambda c: call_rate(c) is not None,
               priority=3),
        Column("cost", lambda c: fmt_cost(c.cost_usd), priority=8),
    )  # fmt: skip


def calls_table(
    calls: Sequence[LLMCall],
    *,
    width: int,
    title: str | None = None,
    time_format: str = "%Y-%m-%d %H:%M:%S",
) -> Table | None:
    """A table of calls, one per row, with the columns some call has data for that fit."""
    return table_of(calls, call_columns(time_format), width=width, title=title)


def _group_column(by: str, priority: int) -> Column:
    """The group's key (``by``): ``(none)`` for calls without one."""
    return Column(by, lambda r: r.key if r.key is not None else "(none)", justify="left",
                  priority=priority, max_width=30)  # fmt: skip


def _count_columns(tokens: int) -> tuple[Column, ...]:
    """Calls, errors and tokens: what a summary row and a time bucket both count (the tokens'
    columns at priority ``tokens``)."""
    return (
        Column("calls", lambda r: fmt_count(r.calls), priority=10),
        Column("errors", lambda r: fmt_count(r.errors), lambda r: r.errors > 0, priority=8),
        Column("in", lambda r: fmt_count(r.input_tokens), lambda r: r.input_tokens > 0,
               priority=tokens),
        Column("out", lambda r: fmt_count(r.output_tokens), lambda r: r.output_tokens > 0,
               priority=tokens),
        Column("cached", lambda r: fmt_count(r.cached_input_tokens),
               lambda r: r.cached_input_tokens > 0, priority=3),
    )  # fmt: skip


def _latency_columns(ttft: int) -> tuple[Column, ...]:
    """The p50 and p95 latency and p50 time to first token of a summary row or a time bucket
    (the last at priority ``ttft``)."""
    return (
        Column("p50", lambda r: fmt_ms(r.p50_latency_ms), lambda r: r.p50_latency_ms is not None,
               priority=7),
        Column("p95", lambda r: fmt_ms(r.p95_latency_ms), lambda r: r.p95_latency_ms is not None,
               priority=8),
        Column("ttft p50", lambda r: fmt_ms(r.p50_ttft_ms), lambda r: r.p50_ttft_ms is not None,
               priority=ttft),
    )  # fmt: skip


def summary_columns(by: str) -> tuple[Column, ...]:
    """The columns of a summary table grouped ``by`` a field."""
    return (
        _group_column(by, priority=10),
        *_count_columns(tokens=6),
        Column("reasoning", lambda r: fmt_count(r.reasoning_tokens),
               lambda r: r.reasoning_tokens > 0, priority=2),
        Column("tok/s", lambda r: fmt_rate(r.median_tokens_per_sec),
               lambda r: r.median_tokens_per_sec is not None, priority=4),
        *_latency_columns(ttft=5),
        Column("cost", lambda r: fmt_cost(_known_cost(r)), priority=9),
        Column("unpriced", lambda r: fmt_count(r.unpriced_calls), lambda r: r.unpriced_calls > 0,
               priority=5),
    )  # fmt: skip


def series_columns(by: str | None) -> tuple[Column, ...]:
    """The columns of a time series table (one row per bucket, and group with ``by``)."""
    return (
        Column("start (UTC)", lambda b: b.start.strftime("%Y-%m-%d %H:%M:%S"), justify="left",
               priority=10),
        *(() if by is None else (_group_column(by, priority=9),)),
        *_count_columns(tokens=5),
        *_latency_columns(ttft=4),
        Column("cost", lambda b: fmt_cost(b.cost_usd), lambda b: b.cost_usd > 0, priority=9),
    )  # fmt: skip


def series_view(rows: Sequence[TimeBucket], by: str | None, every: str, width: int) -> Table:
    """The time series table of ``summary --every``."""
    title = f"calls every {every}" + ("" if by is None else f" by {by}")
    table = table_of(rows, series_columns(by), width=width, title=title)
    assert table is not None
    return table


def _bar_chart(
    title: str,
    rows: Sequence[CallSummary],
    value: Callable[[CallSummary], float | None],
    label: Callable[[float], str],
    width: int,
    unknown: str = "-",
) -> Table | None:
    values = [(row, value(row)) for row in rows]
    known = [v for _, v in values if v is not None]
    if not known or max(known) <= 0:
        return None
    largest = max(known)
    key_width = min(28, max(len(str(r.key)) for r in rows))
    bar_width = max(10, min(48, width - key_width - 16))
    chart = Table.grid(padding=(0, 1))
    chart.title = title
    chart.title_justify = "left"
    chart.title_style = "bold"
    chart.add_column(justify="left", max_width=key_width, no_wrap=True, overflow="ellipsis")
    chart.add_column(justify="left", style="magenta", no_wrap=True)
    chart.add_column(justify="right", no_wrap=True)
    for row, v in values:
        name = row.key if row.key is not None else "(none)"
        chart.add_row(name, bar(v or 0.0, largest, bar_width), unknown if v is None else label(v))
    return chart


def _known_cost(row: CallSummary) -> float | None:
    """A group's cost, ``None`` when none of its calls is priced."""
    return None if row.unpriced_calls >= row.calls else row.cost_usd


def errors_view(groups: Sequence[ErrorGroup], width: int) -> Table | None:
    """Error groups (``store.error_groups``: failed calls by error type and message, most
    first) with the models (asked for) they failed on; ``None`` without errors."""
    if not groups:
        return None
    table = Table(
        title="errors by type and message",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        width=min(width, 160),
    )
    table.add_column("type", style="red", no_wrap=True, max_width=28)
    table.add_column("message", overflow="ellipsis", no_wrap=True, ratio=1)
    table.add_column("calls", justify="right", no_wrap=True)
    table.add_column("last seen (UTC)", no_wrap=True)
    table.add_column("models", overflow="ellipsis", no_wrap=True, max_width=40)
    for g in groups:
        table.add_row(
            g.error_type or "(no type)",
            g.error_message or "-",
            fmt_count(g.calls),
            g.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(g.models),
        )
    return table


def summary_view(rows: Sequence[CallSummary], by: str, width: int) -> RenderableType:
    """The summary table with bar charts of cost and p95 latency below it."""
    if not rows:
        return Text("no calls match")
    parts: list[RenderableType] = []
    table = table_of(rows, summary_columns(by), width=width, title=f"calls by {by}")
    assert table is not None
    parts.append(table)
    calls = sum(r.calls for r in rows)
    errors = sum(r.errors for r in rows)
    cost = sum(r.cost_usd for r in rows)
    unpriced = sum(r.unpriced_calls for r in rows)
    total = fmt_cost_of(cost, calls, unpriced)
    line = f"{plural(calls, 'call')}, {plural(errors, 'error')}, {total} in all"
    if by == "tag":  # the rows overlap: a call with several tags is in each
        line = (
            f"{plural(calls, 'call')}, {plural(errors, 'error')}, {total} over the "
            "tags (a call with several tags counts under each)"
        )
    parts.append(Text(line))
    cost_chart = _bar_chart("cost", rows, _known_cost, fmt_cost, width, "unknown")
    p95_chart = _bar_chart("p95 latency", rows, lambda r: r.p95_latency_ms, fmt_ms, width)
    for chart in (cost_chart, p95_chart):
        if chart is not None:
            parts += [Text(""), chart]
    return Group(*parts)
