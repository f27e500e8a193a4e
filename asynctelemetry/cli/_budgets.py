"""``budgets``: where each budget kept in a store stands (spent, reserved, left, window)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from .._budgets._sql import stored_budgets
from .._exceptions import ConfigError
from ._common import reading, write_json_lines
from ._errors import UsageError
from ._render import fmt_cost

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

__all__ = ["run_budgets"]


async def run_budgets(args: argparse.Namespace, console: Console) -> int:
    """One row per budget and key: its newest window (every window with ``--all``)."""
    async with reading(args) as store:
        try:
            statuses = await stored_budgets(store, every_window=args.all)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        write_json_lines(
            console, ({**status.as_json(), "used": round(status.used, 6)} for status in statuses)
        )
        return 0
    if not statuses:
        console.print("no budgets in this store (a tracer with budgets= writes them)", style="dim")
        return 0
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column, justify in (
        ("budget", "left"),
        ("key", "left"),
        ("window from (UTC)", "left"),
        ("limit", "right"),
        ("spent", "right"),
        ("reserved", "right"),
        ("left", "right"),
        ("used", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in statuses:
        used = s.used
        style = "red" if used >= 1 else "yellow" if used >= 0.8 else None
        table.add_row(
            s.name,
            s.key or "(all)",
            "ever"
            if s.window_start.timestamp() == 0
            else s.window_start.strftime("%Y-%m-%d %H:%M"),
            fmt_cost(s.limit_usd),
            fmt_cost(s.spent_usd),
            fmt_cost(s.reserved_usd),
            fmt_cost(s.remaining_usd),
            f"{used:.0%}",
            style=style,
        )
    console.print(table)
    return 0
