"""``asynctelemetry traces`` (one row per trace) and ``asynctelemetry trace ID`` (its tree).

Both read a store through the store protocol (``traces``, ``get_trace``). The tree is printed
one step per line, indented under its parent, with a timing bar at the step's start and of its
length on the trace's time axis, its duration, a call's model, tokens and cost, a tool's name,
and its status.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.text import Text

from .._record import LLMCall
from ._common import filters_of, reading
from ._errors import CLIError
from ._help import plural
from ._render import Column, fmt_cost, fmt_count, fmt_ms, table_of

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from rich.console import Console

    from .._stores import Trace, TraceNode, TraceSummary

__all__ = ["run_trace", "run_traces", "tree_lines"]

#: Width of the timing bars, in terminal cells.
BAR_WIDTH = 30
#: Most steps printed for one trace (the rest are counted on the last line).
MAX_LINES = 2000


def _status(row: TraceSummary) -> Text:
    if row.status == "ok":
        return Text("ok", style="green")
    if row.status == "cancelled":
        return Text("cancelled", style="yellow")
    return Text(f"{row.errors} error" + ("s" if row.errors != 1 else ""), style="red")


TRACE_COLUMNS = (
    Column("started", lambda r: r.started.strftime("%Y-%m-%d %H:%M:%S"), justify="left",
           priority=9),
    Column("trace", lambda r: r.trace_id, justify="left", priority=10, max_width=32),
    Column("root", lambda r: r.root_name, justify="left", priority=10, style="cyan",
           max_width=30),
    Column("status", _status, justify="left", priority=9),
    Column("duration", lambda r: fmt_ms(r.duration_ms), priority=8),
    Column("calls", lambda r: fmt_count(r.llm_calls), priority=8),
    Column("steps", lambda r: fmt_count(r.spans), priority=6),
    Column("cost", lambda r: fmt_cost(r.cost_usd), priority=8),
    Column("user", lambda r: r.user_id or "-", lambda r: r.user_id is not None, "left", 4,
           max_width=20),
    Column("session", lambda r: r.session_id or "-", lambda r: r.session_id is not None, "left",
           3, max_width=20),
)  # fmt: skip


async def run_traces(args: argparse.Namespace, console: Console) -> int:
    """One row per trace, newest first (``--oldest``), filtered; ``--json`` for JSON lines."""
    async with reading(args) as store:
        rows = await store.traces(
            **filters_of(args), limit=args.limit, newest_first=not args.oldest
        )
    if args.json:
        console.file.write("".join(row.model_dump_json() + "\n" for row in rows))
        return 0
    table = table_of(rows, TRACE_COLUMNS, width=console.width)
    if table is None:
        console.print("no traces match", style="dim")
        return 0
    console.print(table)
    order = "oldest" if args.oldest else "newest"
    more = "; --limit N for more" if len(rows) == args.limit else ""
    console.print(f"{plural(len(rows), 'trace')}, {order} first{more}", style="dim")
    return 0


async def run_trace(args: argparse.Namespace, console: Console) -> int:
    """The tree of one trace with timing bars; ``--json`` for its records."""
    async with reading(args) as store:
        trace = await store.get_trace(args.trace_id)
    if trace is None:
        raise CLIError(f"no trace {args.trace_id!r} in the store")
    if args.json:
        body = {
            "trace_id": trace.trace_id,
            "calls": [json.loads(c.model_dump_json()) for c in trace.calls],
            "spans": [json.loads(s.model_dump_json()) for s in trace.spans],
        }
        console.file.write(json.dumps(body) + "\n")
        return 0
    console.print(Text(f"trace {trace.trace_id}", style="bold"))
    totals = (
        f"{fmt_ms(trace.duration_ms)}, "
        f"{plural(trace.llm_calls, 'LLM call')}, {plural(len(trace.spans), 'step')}, "
        f"{fmt_count(trace.input_tokens)} in / {fmt_count(trace.output_tokens)} out tokens, "
        f"{fmt_cost(trace.cost_usd)}, {plural(trace.errors, 'error')}"
    )
    console.print(Text(totals, style="bold"))
    for line in tree_lines(trace, console.width):
        console.print(line, overflow="ellipsis", no_wrap=True)
    return 0


def _walk(roots: list[TraceNode]) -> Iterator[tuple[TraceNode, int]]:
    stack = [(node, 0) for node in reversed(roots)]
    while stack:  # iterative: a chain of thousands of steps is not a recursion
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(node.children))


def _bar(offset: float, length: float, width: int) -> str:
    """``width`` cells with a bar from ``offset`` of ``length`` (fractions of the trace)."""
    start = min(width - 1, int(offset * width))
    cells = max(1, round(length * width))
    cells = min(cells, width - start)
    return " " * start + "█" * cells + " " * (width - start - cells)


def _detail(node: TraceNode) -> tuple[str, str]:
    """What a line says of its record, and the style of its name."""
    record: Any = node.record
    if isinstance(record, LLMCall):
        tokens = f"{fmt_count(record.input_tokens)}→{fmt_count(record.output_tokens)} tok"
        return f"{record.model} {tokens} {fmt_cost(record.cost_usd)}", "cyan"
    return record.kind, "magenta" if record.kind == "agent" else "blue"


def tree_lines(trace: Trace, width: int) -> list[Text]:
    """The trace's tree as terminal lines: name (indented), detail, bar, duration, status."""
    start = trace.started
    total = trace.duration_ms or 0.0
    lines: list[Text] = []
    name_width = max(20, min(48, width - BAR_WIDTH - 40))
    walked = list(_walk(trace.tree()))
    for node, depth in walked[:MAX_LINES]:
        record: Any = node.record
        offset = 0.0
        if start is not None and total > 0:
            offset = (record.timestamp - start).total_seconds() * 1000 / total
        length = (record.duration_ms or 0.0) / total if total > 0 else 1.0
        detail, style = _detail(node)
        label = ("  " * depth + node.name)[:name_width].ljust(name_width)
        line = Text(label, style=style)
        line.append(" ")
        line.append(
            _bar(offset, length, BAR_WIDTH), style="red" if record.status == "error" else "green"
        )
        line.append(f" {fmt_ms(record.duration_ms):>7} ")
        if record.status != "ok":
            reason = record.error_type or record.status
            line.append(f"{reason} ", style="red" if record.status == "error" else "yellow")
        line.append(detail, style="dim")
        lines.append(line)
    if len(walked) > MAX_LINES:
        lines.append(Text(f"… {len(walked) - MAX_LINES} more steps (--json for all)", "dim"))
    return lines
