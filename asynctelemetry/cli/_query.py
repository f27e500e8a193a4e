"""``calls``, ``summary`` and ``reprice``: reading a store and printing what is in it.

``--json`` prints one JSON object per line (JSON Lines: a call, a summary row, a repricing row),
ready for ``jq`` or any line-oriented tool; otherwise a rich table sized to the terminal.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from .._batching import Slice
from .._exceptions import ConfigError
from .._pricing import PriceTable
from .._stores._hints import closest, known_values
from ._common import filters_of, reading, source_name, write_json_lines
from ._errors import CLIError, UsageError
from ._help import plural
from ._render import calls_table, errors_view, fmt_cost, fmt_count, series_view, summary_view

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

    from .._record import LLMCall
    from .._stores import ErrorGroup

__all__ = ["RepriceRow", "reprice_table", "run_calls", "run_reprice", "run_summary"]


async def run_calls(args: argparse.Namespace, console: Console) -> int:
    """List the calls that pass the filters, newest first (or oldest first with ``--oldest``)."""
    limit = None if args.all else args.limit
    async with reading(args) as store:
        calls = await store.query(**filters_of(args), limit=limit, newest_first=not args.oldest)
        hint = await no_such_model(store, args) if not calls else None
    if args.json:
        console.file.write("".join(call.model_dump_json() + "\n" for call in calls))
        return 0
    table = calls_table(calls, width=console.width)
    if table is None:
        console.print(hint or "no calls match", style="dim")
        return 0
    console.print(table)
    order = "oldest" if args.oldest else "newest"
    more = "; --limit N or --all for more" if limit is not None and len(calls) == limit else ""
    console.print(f"{plural(len(calls), 'call')}, {order} first{more}", style="dim")
    return 0


async def run_summary(args: argparse.Namespace, console: Console) -> int:
    """One row per group (``--by``, default the requested model) with bar charts of cost and
    p95; with ``--every``, the time series instead (one row per bucket, and group with --by)."""
    if args.every is not None:
        return await _run_series(args, console)
    by: Any = args.by or "request_model"
    async with reading(args) as store:
        rows = await store.summary(by=by, **filters_of(args))
        hint = await no_such_model(store, args) if not rows else None
        failed: list[ErrorGroup] = []
        wanted = args.status in (None, "error")
        if not args.json and wanted and any(r.errors for r in rows):
            filters = {k: v for k, v in filters_of(args).items() if k != "status"}
            failed = await store.error_groups(**filters, limit=ERRORS_SHOWN)
    if args.json:
        write_json_lines(console, ({"by": by, **row.model_dump()} for row in rows))
        return 0
    console.print(hint if hint else summary_view(rows, by, console.width))
    errors = errors_view(failed, console.width)
    if errors is not None:
        console.print()
        console.print(errors)
    return 0


#: Error groups (type and message) ``summary`` shows, the largest.
ERRORS_SHOWN = 10


async def no_such_model(store: Any, args: argparse.Namespace) -> str | None:
    """When ``--model`` matches no call at all (whatever the other filters), the message that
    names the closest models the store holds; ``None`` otherwise."""
    if not args.model:
        return None
    filters = {**filters_of(args), "model": None}
    if await store.count(model=args.model):
        return None
    names = await known_values(store, "model", **filters)
    close = closest(args.model, names, cutoff=0.4)
    if close:
        return f"no calls of model {args.model!r}; closest stored: {', '.join(close)}"
    if names:
        some = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
        return f"no calls of model {args.model!r}; stored models: {some}"
    return f"no calls of model {args.model!r}; the store holds no calls in this window"


async def _run_series(args: argparse.Namespace, console: Console) -> int:
    if args.by == "tag":
        raise UsageError("--every cannot group by tag (a call may have several); drop --every")
    async with reading(args) as store:
        rows = await store.timeseries(bucket=args.every, by=args.by, **filters_of(args))
    if args.json:
        head = {"every": args.every, "by": args.by}
        write_json_lines(console, ({**head, **row.model_dump(mode="json")} for row in rows))
        return 0
    if not rows:
        console.print("no calls match", style="dim")
        return 0
    console.print(series_view(rows, args.by, args.every, console.width))
    calls = sum(r.calls for r in rows)
    buckets = len({r.start for r in rows})
    console.print(f"{plural(calls, 'call')} in {plural(buckets, 'bucket')}", style="dim")
    return 0


@dataclass
class RepriceRow:
    """Stored and recomputed costs of one model's calls."""

    model: str
    calls: int = 0
    #: calls with a stored cost and none now (the model left the table), and the reverse
    lost_price: int = 0
    gained_price: int = 0
    changed: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    _stored: list[float] = field(default_factory=list, repr=False)
    _repriced: list[float] = field(default_factory=list, repr=False)

    def add(self, call: LLMCall, cost: float | None, version: str) -> None:
        """Account for one call whose recomputed cost is ``cost`` (from the table of
        ``version``). ``changed`` counts what ``store.reprice`` rewrites: a new cost, or the
        same cost of another price version."""
        self.calls += 1
        if cost is not None and (cost != call.cost_usd or call.price_version != version):
            self.changed += 1
        version = call.price_version or "(none)"
        self.versions[version] = self.versions.get(version, 0) + 1
        if call.cost_usd is not None:
            self._stored.append(call.cost_usd)
        if cost is not None:
            self._repriced.append(cost)
        if call.cost_usd is not None and cost is None:
            self.lost_price += 1
        elif call.cost_usd is None and cost is not None:
            self.gained_price += 1

    @property
    def stored_usd(self) -> float:
        """The sum of the stored costs (exact: ``math.fsum``)."""
        return math.fsum(self._stored)

    @property
    def repriced_usd(self) -> float:
        """The sum of the recomputed costs (exact: ``math.fsum``)."""
        return math.fsum(self._repriced)

    @property
    def difference_usd(self) -> float:
        """Repriced minus stored."""
        return self.repriced_usd - self.stored_usd

    def as_dict(self) -> dict[str, Any]:
        """The row for ``--json``."""
        return {
            "model": self.model,
            "calls": self.calls,
            "stored_usd": self.stored_usd,
            "repriced_usd": self.repriced_usd,
            "difference_usd": self.difference_usd,
            "changed_calls": self.changed,
            "newly_priced_calls": self.gained_price,
            "no_longer_priced_calls": self.lost_price,
            "stored_price_versions": self.versions,
        }


async def reprice(args: argparse.Namespace, table: PriceTable) -> tuple[list[RepriceRow], int]:
    """Recompute the cost of every call that passes the filters; rows by model, and the count.

    Streams the store (``replay``), so memory stays bounded by the number of models.
    """
    rows: dict[str, RepriceRow] = {}
    count = 0
    slice_ = Slice()  # pricing is CPU work: the loop gets its turns
    async with reading(args) as store:
        async for call in store.replay(**filters_of(args)):
            row = rows.get(call.model)
            if row is None:
                row = rows[call.model] = RepriceRow(call.model)
            row.add(call, table.cost(call), table.version)
            count += 1
            await slice_.breathe()
    ordered = sorted(rows.values(), key=lambda r: (-abs(r.difference_usd), r.model))
    return ordered, count


def _signed(value: float) -> Text:
    if math.isclose(value, 0.0, abs_tol=1e-12):
        return Text("±$0", style="dim")
    text = fmt_cost(abs(value))
    return Text(("+" if value > 0 else "-") + text, style="red" if value > 0 else "green")


def reprice_table(rows: list[RepriceRow], version: str) -> Table:
    """The per-model difference between stored costs and costs from the ``version`` table."""
    table = Table(
        title=f"costs recomputed with {version}",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for header in ("model", "calls", "stored", "repriced", "difference", "changed"):
        table.add_column(header, justify="left" if header == "model" else "right", no_wrap=True)
    stored_with = any(r.versions.keys() - {"(none)"} for r in rows)
    if stored_with:
        table.add_column("stored with", justify="left", no_wrap=False)
    for row in rows:
        changed = fmt_count(row.changed)
        if row.gained_price:
            changed += f" +{row.gained_price} priced"
        if row.lost_price:
            changed += f" {row.lost_price} unpriced"
        cells: list[str | Text] = [
            row.model,
            fmt_count(row.calls),
            fmt_cost(row.stored_usd),
            fmt_cost(row.repriced_usd),
            _signed(row.difference_usd),
            changed,
        ]
        if stored_with:
            cells.append(", ".join(sorted(row.versions)))
        table.add_row(*cells)
    return table


async def run_reprice(args: argparse.Namespace, console: Console) -> int:
    """Recompute stored costs with the default table or ``--prices FILE``; print differences."""
    if args.prices is not None:
        try:
            table = await asyncio.to_thread(PriceTable.from_file, args.prices)
        except ConfigError as exc:
            raise CLIError(str(exc)) from None
    else:
        table = PriceTable.default()
    rows, count = await reprice(args, table)
    written = await _write_costs(args, table) if args.write else None
    if args.json:
        version = table.version
        write_json_lines(console, ({"price_version": version, **r.as_dict()} for r in rows))
        if written is not None:
            sys.stderr.write(f"wrote new costs to {plural(written, 'call')} ({version})\n")
        return 0
    if not rows:
        console.print(f"no calls in {source_name(args)} match", style="dim")
        return 0
    console.print(reprice_table(rows, table.version))
    stored = math.fsum(r.stored_usd for r in rows)
    repriced = math.fsum(r.repriced_usd for r in rows)
    line = Text(
        f"{plural(count, 'call')}: stored {fmt_cost(stored)}, repriced {fmt_cost(repriced)}, "
    )
    line += _signed(repriced - stored)
    console.print(line)
    if written is None:
        console.print("stored costs are unchanged; --write stores the new ones", style="dim")
    else:
        console.print(
            f"wrote new costs to {plural(written, 'call')} (price_version {table.version})"
        )
    return 0


async def _write_costs(args: argparse.Namespace, table: PriceTable) -> int:
    """Store the new costs of the calls that pass the filters; how many changed."""
    async with reading(args, write=True) as store:
        return await store.reprice(table, **filters_of(args))
