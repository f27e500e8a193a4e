"""``replay``: send the calls of one store into another store or to an OTLP endpoint.

Targets: a store URL (``sqlite:///other.db``, ``memory://``), an OTLP/gRPC endpoint
(``otlp://host:4317``, ``grpc://host:4317``, ``http://host:4317``; ``grpcs://``/``https://`` for
TLS) or an OTLP/HTTP one (any ``http(s)://`` URL whose path ends in ``/v1/traces``). The copying is
:func:`asynctelemetry.replay`, paced by ``--speed``; exporters are the tracer's own. On a terminal
a progress bar follows the calls; elsewhere one line reports the result.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._exceptions import (
    ConfigError,
    ExportError,
    MissingDependencyError,
    StoreError,
    mask_secrets,
)
from .._pipeline import SpanSink
from .._replay import replay
from .._stores import SQLiteStore, open_store
from ._common import filters_of, reading, source_name
from ._errors import CLIError, UsageError
from ._help import plural

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    from rich.console import Console

    from .._export import OTLPExporterBase
    from .._record import LLMCall, TraceSpan
    from .._stores import CallStore

__all__ = ["run_replay", "target_of"]

#: Calls an exporter may hold before replay waits for it to deliver (its queue drops beyond).
_EXPORT_WINDOW = 4096


def target_of(url: str, auth_token: str | None) -> CallStore | OTLPExporterBase:
    """The store or exporter ``url`` names (unopened).

    Raises:
        UsageError: the URL names neither.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise UsageError(f"--to {mask_secrets(url)!r}: {exc}") from None
    if parts.scheme in ("memory", "sqlite", "postgresql", "postgres"):
        try:
            return open_store(url)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    if parts.scheme not in ("otlp", "grpc", "grpcs", "http", "https") or not parts.netloc:
        shown = mask_secrets(url)
        raise UsageError(
            f"--to {shown!r}: use a store URL (sqlite:///path.db, postgresql://host/db, memory://) "
            "or an OTLP endpoint "
            "(otlp://host:4317, http://host:4318/v1/traces)"
        )
    headers = {"authorization": f"Bearer {auth_token}"} if auth_token else None
    common: dict[str, Any] = {"service_name": "asynctelemetry-replay", "headers": headers}
    from .. import _export

    try:
        if parts.scheme in ("http", "https") and parts.path.rstrip("/").endswith("/v1/traces"):
            return _export.OTLPHttpExporter(url, **common)
        scheme = {"otlp": "http", "grpc": "http", "grpcs": "https"}.get(parts.scheme, parts.scheme)
        return _export.OTLPGrpcExporter(f"{scheme}://{parts.netloc}", **common)
    except ConfigError as exc:
        raise UsageError(f"--to {mask_secrets(url)!r}: {exc}") from None


class _Counted:
    """A sink that delivers batches to ``deliver`` and reports each one to ``advance``."""

    def __init__(
        self,
        deliver: Callable[[Sequence[LLMCall]], Any],
        deliver_spans: Callable[[Sequence[TraceSpan]], Any],
        advance: Callable[[int], None],
        exporter: OTLPExporterBase | None,
    ) -> None:
        self._deliver = deliver
        self._deliver_spans = deliver_spans
        self.steps = 0
        self._advance = advance
        self._exporter = exporter

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        await self._deliver(calls)
        exporter = self._exporter
        if exporter is not None and exporter.stats.queue.pending >= _EXPORT_WINDOW:
            # An exporter never waits in emit: let it deliver before its queue overflows.
            await exporter.flush()
        self._advance(len(calls))

    async def emit_spans(self, spans: Sequence[TraceSpan]) -> None:
        """Steps go to the target as they are (a store keeps them; an exporter sends them)."""
        await self._deliver_spans(spans)
        self.steps += len(spans)  # the progress bar counts calls

    async def flush(self) -> None:
        """Nothing of its own: the target is flushed by the command."""

    async def aclose(self) -> None:
        """Nothing of its own: the target is closed by the command."""


def _same_file(source: argparse.Namespace, target: object) -> bool:
    if not isinstance(target, SQLiteStore) or target.path == ":memory:":
        return False
    path = source.db if source.db is not None else getattr(open_store(source.store), "path", None)
    return path is not None and os.path.abspath(path) == os.path.abspath(target.path)


async def run_replay(args: argparse.Namespace, console: Console) -> int:
    """Copy (or re-export) the calls that pass the filters and the steps with them, oldest
    first, paced by ``--speed``."""
    if args.speed is not None and not args.speed > 0:
        raise UsageError(f"--speed must be positive, got {args.speed}")
    try:
        target = target_of(args.to, args.auth_token)
    except MissingDependencyError as exc:
        raise CLIError(str(exc)) from None
    if _same_file(args, target):
        raise UsageError("--to names the store being replayed; pick another file")
    exporter = None if hasattr(target, "add_many") else target
    present_before = getattr(target, "duplicates", 0)
    async with reading(args) as source:
        total = await source.count(**filters_of(args))
        progress = _progress(console, total) if console.is_terminal and not args.quiet else None
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress.update(progress.task_ids[0], completed=done)
                progress.refresh()

        try:
            async with target:
                assert isinstance(target, SpanSink)  # every store and exporter takes steps
                sink = _Counted(target.emit, target.emit_spans, advance, exporter)
                if progress is not None:
                    progress.start()
                try:
                    count = await replay(source, sink, speed=args.speed, **filters_of(args))
                finally:
                    if progress is not None:
                        progress.stop()
                if exporter is not None:
                    await exporter.flush()
        except ExportError as exc:
            raise CLIError(f"replay to {mask_secrets(args.to)} failed: {exc}") from None
        except StoreError as exc:
            raise CLIError(f"replay to {mask_secrets(args.to)} failed: {exc}") from None
    stats = exporter.stats.queue if exporter is not None else None
    if stats is not None and stats.dropped:
        raise CLIError(
            f"{stats.dropped} of {count} records could not be delivered to "
            f"{mask_secrets(args.to)}: {stats.last_error or 'closed before delivery'}"
        )
    pace = f" at {args.speed:g}x" if args.speed else ""
    to = mask_secrets(args.to)
    steps = f" and {plural(sink.steps, 'step')}" if sink.steps else ""
    calls = plural(count - sink.steps, "call")
    line = f"replayed {calls}{steps} from {source_name(args)} to {to}{pace}"
    if exporter is None:  # a store says which copies it already held (same call_id)
        present = getattr(target, "duplicates", 0) - present_before
        rejected = getattr(target, "rejected", 0)
        line += f": {count - present - rejected:,} new, {present:,} already there"
        if rejected:
            line += f", {rejected:,} rejected"
    console.print(line, soft_wrap=True)
    return 0


def _progress(console: Console, total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,  # no refresh thread: the replay loop refreshes
        transient=True,
    )
    progress.add_task("replaying", total=total)
    return progress
