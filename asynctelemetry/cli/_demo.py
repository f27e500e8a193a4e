"""``demo``: the whole pipeline on embedded defaults, in well under a minute, with no network.

1. an :class:`AsyncCollector` on 127.0.0.1 (a free port) writing to a SQLite file;
2. a simulated async chat app (:mod:`._demo_app`) traced by :class:`AsyncTracer`, exporting
   OTLP/gRPC to that collector;
3. at the same time, a second process (:mod:`._demo_sdk_app`) that uses only the OpenTelemetry
   SDK with GenAI attributes, as a third-party service would;
4. the summary of what arrived, where the data is, and how to look at it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shlex
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.text import Text

from .._collector import AsyncCollector
from .._exceptions import ConfigError, StoreError
from .._stores import SQLiteStore
from .._tracer import AsyncTracer
from ._demo_app import simulate
from ._errors import CLIError, UsageError
from ._live import CallTap, LiveView
from ._render import summary_view

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

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
                await _traffic(args, console, collector, store, tap, endpoint, sdk_calls)
            finally:
                await collector.stop()
            rows = await store.summary(by="model", since=started)
            total = await store.count()
    except StoreError as exc:
        raise CLIError(str(exc)) from None
    _report(args, console, collector, rows, total, path)
    return 0


async def _traffic(
    args: argparse.Namespace,
    console: Console,
    collector: AsyncCollector,
    store: SQLiteStore,
    tap: CallTap,
    endpoint: str,
    sdk_calls: int,
) -> None:
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
            exporter_stats = [getattr(s, "stats", None) for s in tracer.pipeline.sinks]
            lost = sum(getattr(s, "dropped", 0) for s in exporter_stats if s is not None)
            if lost:
                raise CLIError(f"{lost} traced calls could not be exported to the collector")
            await _finish(sdk, timeout=60)
            await collector.flush()
    finally:
        if sdk.returncode is None:
            sdk.kill()
            await sdk.wait()
    if not console.is_terminal:
        console.print(f"  {made} requests simulated; {tap.seen} calls received", style="dim")


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
    console.print(summary_view(rows, "model", console.width))
    console.print()
    this_run = sum(r.calls for r in rows)
    console.print(
        f"The collector received {stats.received_spans:,} spans: {stats.llm_calls:,} LLM calls "
        f"kept, {stats.ignored_spans:,} other spans (HTTP server spans of the SDK app) ignored."
    )
    where = os.path.abspath(path)
    runs = "" if total == this_run else f" ({total:,} calls from every demo run so far)"
    console.print(Text.assemble("Data: ", (where, "bold"), runs), soft_wrap=True)
    db = shlex.quote(path)
    console.print("Look again:")
    for command in (
        f"asynctelemetry summary --db {db} --by provider",
        f"asynctelemetry calls --db {db} --status error",
        f"asynctelemetry calls --db {db} --model gpt-4o-2024-08-06 --json",
        f"asynctelemetry collect --db {db}     # then point your own app at 127.0.0.1:4317",
    ):
        console.print(f"  {command}", style="cyan", highlight=False, soft_wrap=True)
