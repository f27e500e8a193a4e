"""``demo``: the whole pipeline on embedded defaults, in well under a minute, with no network.

1. an :class:`AsyncCollector` on 127.0.0.1 (a free port) writing to a SQLite file;
2. a simulated async chat app (:mod:`._demo_app`) traced by :class:`AsyncTracer`, exporting
   OTLP/gRPC to that collector;
3. at the same time, a second process (:mod:`._demo_sdk_app`) that uses only the OpenTelemetry
   SDK with GenAI attributes, as a third-party service would;
4. the summary of what arrived, where each call came from (traced chat calls, embeddings, the
   SDK app; errors, cancellations, cache hits), where the data is and how to look at it again.

Each run starts with a fresh database unless ``--append`` keeps the earlier runs' calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shlex
import shutil
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.text import Text

from .._collector import AsyncCollector
from .._exceptions import ConfigError, StoreError
from .._export import ExporterStats
from .._stores import SQLiteStore
from .._tracer import AsyncTracer
from ._demo_app import simulate
from ._errors import CLIError, UsageError
from ._help import plural
from ._live import CallTap, LiveView
from ._render import summary_view
from ._writers import WriterLock

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

    from .._record import LLMCall

__all__ = ["DEFAULT_DB", "run_demo"]

#: The file the demo writes when ``--db`` is not given (in the working directory).
DEFAULT_DB = "asynctelemetry-demo.db"
_SDK_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc"


def _check(args: argparse.Namespace) -> str:
    """Fill in the defaults and check the options; return the database path."""
    if args.quick:  # a handful of users with a few turns each: every feature shows up
        args.calls = args.calls or 24
        args.speed = args.speed or 40.0
        args.concurrency = args.concurrency or 6
    args.calls = args.calls or 120
    args.speed = args.speed or 1.0
    args.concurrency = args.concurrency or 32
    if args.calls < 1 or args.concurrency < 1 or not args.speed > 0:
        raise UsageError("--calls and --concurrency must be >= 1 and --speed > 0")
    if importlib.util.find_spec(_SDK_EXPORTER) is None:
        raise CLIError(
            "the demo's OpenTelemetry SDK app needs an optional extra: "
            "pip install 'asynctelemetry[cli]'"
        )
    path: str = args.db or DEFAULT_DB
    if os.path.isdir(path):
        raise CLIError(f"{path} is a directory, not a call store")
    return path


async def _sdk_app(endpoint: str, calls: int, speed: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asynctelemetry.cli._demo_sdk_app",
        "--endpoint",
        endpoint,
        "--calls",
        str(calls),
        "--speed",
        str(speed),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process, timeout: float) -> None:
    """Wait for the SDK app; a failure becomes a one-line :class:`CLIError`."""
    try:
        async with asyncio.timeout(timeout):
            _, err = await process.communicate()
    except TimeoutError:
        raise CLIError(f"the OpenTelemetry SDK app did not finish within {timeout:.0f}s") from None
    if process.returncode:
        lines = err.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        raise CLIError(f"the OpenTelemetry SDK app failed: {reason}")


async def run_demo(args: argparse.Namespace, console: Console) -> int:
    """Run the demo; print the summary, where the data is and how to look again."""
    path = _check(args)
    with WriterLock(path, "asynctelemetry demo") as lock:
        holder = lock.acquire()
        if holder is not None and not args.append:
            raise CLIError(
                f"{path} is being written by {holder}: the demo starts a fresh database; "
                "stop that process, or pass --append or another --db"
            )
        if holder is not None:
            console.print(f"warning: {path} is also being written by {holder}", style="yellow")
        if not args.append:
            _remove_database(path)
        return await _run(args, console, path)


def _remove_database(path: str) -> None:
    """Start anew: the file and SQLite's WAL and shared-memory files beside it."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CLIError(f"cannot start a fresh {path}: {exc} (or pass --append)") from None


async def _run(args: argparse.Namespace, console: Console, path: str) -> int:
    started = datetime.now(UTC)
    sdk_calls = max(3, args.calls // 4)
    say = console.print
    tap = CallTap()
    try:
        async with SQLiteStore(path) as store:
            collector = AsyncCollector(store, port=0, metrics=tap)
            try:
                await collector.start()
            except ConfigError as exc:
                raise CLIError(f"cannot start the demo's collector: {exc}") from None
            try:
                endpoint = f"http://127.0.0.1:{collector.port}"
                say(
                    Text.assemble(
                        ("asynctelemetry demo", "bold"), f" · collector on {endpoint} → {path}"
                    )
                )
                say(
                    f"  a simulated chat app ({args.calls} requests, AsyncTracer → OTLP/gRPC) and "
                    f"a plain OpenTelemetry SDK app in a second process ({sdk_calls} requests)",
                    style="dim",
                )
                made = await _traffic(args, console, collector, store, tap, endpoint, sdk_calls)
            finally:
                await collector.stop()
            rows = await store.summary(by="request_model", since=started)
            total = await store.count()
            this_run = await store.query(since=started, limit=None)
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    _report(args, console, collector, rows, total, path)
    _origins(console, this_run, made, sdk_calls)
    _hints(console, path, collector.port)
    return 0


async def _traffic(
    args: argparse.Namespace,
    console: Console,
    collector: AsyncCollector,
    store: SQLiteStore,
    tap: CallTap,
    endpoint: str,
    sdk_calls: int,
) -> int:
    sdk = await _sdk_app(endpoint, sdk_calls, args.speed)
    try:
        view: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
        if console.is_terminal:
            title = f"asynctelemetry demo · {collector.endpoint} → {store.path}"
            view = LiveView(store, tap, console, title=title, transient=True)
        async with view:
            tracer = AsyncTracer(service_name="demo-chat-app", otlp_endpoint=endpoint)
            async with tracer:
                made = await simulate(
                    tracer, calls=args.calls, concurrency=args.concurrency, speed=args.speed
                )
            sink_stats = [getattr(s, "stats", None) for s in tracer.pipeline.sinks]
            lost = sum(s.queue.dropped for s in sink_stats if isinstance(s, ExporterStats))
            if lost:
                raise CLIError(f"{lost} traced calls could not be exported to the collector")
            await _finish(sdk, timeout=60)
            await collector.flush()
    finally:
        if sdk.returncode is None:
            sdk.kill()
            await sdk.wait()
    return made


def _report(
    args: argparse.Namespace,
    console: Console,
    collector: AsyncCollector,
    rows: list,  # type: ignore[type-arg]
    total: int,
    path: str,
) -> None:
    stats = collector.stats
    console.print()
    console.print(summary_view(rows, "request_model", console.width))
    console.print()
    this_run = sum(r.calls for r in rows)
    console.print(
        f"The collector received {plural(stats.received_spans, 'span')}: "
        f"{plural(stats.llm_calls, 'LLM call')} kept, {plural(stats.steps, 'step')} (the SDK "
        "app's HTTP requests, each the root of its calls' trace) kept, "
        f"{plural(stats.ignored_spans, 'other span')} ignored."
    )
    where = os.path.abspath(path)
    runs = "" if total == this_run else f" ({plural(total, 'call')} with the earlier runs)"
    console.print(Text.assemble("Data: ", (where, "bold"), runs), soft_wrap=True)


def _origins(console: Console, calls: list[LLMCall], made: int, sdk_requests: int) -> None:
    """Where each call of this run came from, and what happened to them."""
    traced = [c for c in calls if c.service_name == "demo-chat-app"]
    embeds = sum(c.operation == "embed" for c in traced)
    sdk = sum(c.service_name == "demo-sdk-app" for c in calls)
    console.print(f"Where the {plural(len(calls), 'call')} came from:")
    requests = plural(made, "request")
    console.print(
        f"  {len(traced) - embeds:>5,}  chat calls of the simulated app ({requests}), "
        "traced by AsyncTracer and exported over OTLP/gRPC"
    )
    console.print(
        f"  {embeds:>5,}  embedding calls the same app made first for its rag-answer requests"
    )
    console.print(
        f"  {sdk:>5,}  chat calls of the plain OpenTelemetry SDK app in a second process "
        f"({plural(sdk_requests, 'request')})"
    )
    errors = [c for c in calls if c.status == "error"]
    kinds = sorted({c.error_type or "error" for c in errors})
    cancelled = sum(c.status == "cancelled" for c in calls)
    cached = sum(c.cache_hit == "exact" for c in calls)
    console.print(
        f"Of them: {plural(len(errors), 'error')}"
        + (f" ({', '.join(kinds)})" if kinds else "")
        + f", {cancelled:,} cancelled (users who left mid-answer: status 'cancelled'), "
        f"{cached:,} answered from the app's cache (no tokens)."
    )


def program() -> tuple[str, str | None]:
    """How to run ``asynctelemetry`` again from this shell, and a note when that is not its
    bare name: the name when it is on ``PATH`` (and is this program), else the path this
    process was started by (``.venv/bin/asynctelemetry``), else ``python -m``."""
    started = sys.argv[0]
    if os.path.basename(started) == "asynctelemetry":
        found = shutil.which("asynctelemetry")
        with contextlib.suppress(OSError):
            if found is not None and os.path.samefile(found, started):
                return "asynctelemetry", None
        shown = os.path.relpath(started) if os.path.isabs(started) else started
        if os.sep not in shown:
            shown = os.path.join(".", shown)
        folder = os.path.dirname(shown)
        note = (
            f"asynctelemetry is not on your PATH: run it as {shown}, or first "
            f"'source {os.path.join(folder, 'activate')}' to call it asynctelemetry"
        )
        return shlex.quote(shown), note
    return f"{shlex.quote(sys.executable)} -m asynctelemetry.cli", None


def _hints(console: Console, path: str, port: int) -> None:
    db = shlex.quote(path)
    me, note = program()
    console.print("Look again:")
    for command in (
        f"{me} summary --db {db} --by provider",
        f"{me} calls --db {db} --status error",
        f"{me} calls --db {db} --status cancelled",
        f"{me} calls --db {db} --model gpt-4o-2024-08-06 --json",
        f"{me} ui --db {db}   # the dashboard in a browser",
        f"{me} collect --db {db}   # your own collector on 127.0.0.1:4317 "
        f"(the demo's ran on 127.0.0.1:{port})",
    ):
        console.print(f"  {command}", style="cyan", highlight=False, soft_wrap=True)
    if note is not None:
        console.print(f"({note})", style="dim", highlight=False, soft_wrap=True)
