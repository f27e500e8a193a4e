"""The ``asynctelemetry`` command line: collect, calls, traces, trace, summary, replay, reprice,
demo, ui.

Exit status: 0 success, 2 a usage error (argparse's own, or a bad option value; one line), 1 a
runtime failure reported in one line (``asynctelemetry: error: <reason>``). Tracebacks appear
only with ``--debug``. The commands need the ``cli`` extra (rich); without it, one line says how
to install it. Only this package prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import MissingDependencyError, TelemetryError, mask_secrets, require
from ._errors import CLIError
from ._help import DB_ENV, Parser, default_db, examples_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

    from rich.console import Console

__all__ = ["build_parser", "main"]

PROG = "asynctelemetry"
#: What a command reads: nothing, a store, or a store's calls through the call filters.
Reads = Literal["store", "calls"] | None


def _debug_option(parser: argparse.ArgumentParser, *, top: bool) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        # A subcommand must not reset a --debug given before it.
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    from .. import __version__
    from ._common import add_filter_options, add_source_options, add_window_options

    parser = Parser(
        prog=PROG,
        description="Asyncio-native telemetry for LLM calls: collect, inspect, replay, reprice.",
        epilog=(
            f"Commands that read or write a store use --db PATH, else ${DB_ENV}, else calls.db.\n"
            f"'{PROG} COMMAND --help' shows a command's options and examples."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _debug_option(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str, help_text: str, *, reads: Reads = None, limit: bool = False
    ) -> argparse.ArgumentParser:
        """A command's parser, with the options of what it ``reads``: a store (``--db`` or
        ``--store``), or a store's calls (the store and the call filters; ``--limit`` too)."""
        sub = commands.add_parser(
            name, help=help_text, description=help_text, epilog=examples_of(name)
        )
        _debug_option(sub, top=False)
        sub.set_defaults(command=name)
        if reads is not None:
            add_source_options(sub)
        if reads == "calls":
            add_filter_options(sub, limit=limit)
        return sub

    collect = command("collect", "run an OTLP collector with a live view of the calls")
    collect.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    collect.add_argument("--port", type=_port, default=4317, help="OTLP/gRPC port (default 4317)")
    where = collect.add_mutually_exclusive_group()
    where.add_argument(
        "--db",
        metavar="PATH|URL",
        help=f"SQLite file or postgresql:// URL to write (default: ${DB_ENV}, else calls.db)",
    )
    where.add_argument("--memory", type=_count, metavar="N", help="keep the last N calls in memory")
    where.add_argument("--store", metavar="URL", help="a store URL (sqlite:///x.db, memory://)")
    collect.add_argument(
        "--max-age", metavar="AGE", help="delete calls older than this (30m, 12h, 7d; with --db)"
    )
    collect.add_argument(
        "--max-rows", type=_count, metavar="N", help="keep at most N calls (with --db)"
    )
    collect.add_argument(
        "--metrics-port", type=_port, metavar="PORT", help="serve Prometheus /metrics on this port"
    )
    collect.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="require this bearer token (or $ASYNCTELEMETRY_AUTH_TOKEN)",
    )
    collect.add_argument(
        "--forward-to",
        metavar="ENDPOINT",
        help="also forward every request, as received, to this OTLP/gRPC endpoint (host:port)",
    )
    collect.add_argument(
        "--forward-token",
        metavar="TOKEN",
        help="bearer token for the --forward-to upstream (or $ASYNCTELEMETRY_FORWARD_TOKEN)",
    )
    collect.add_argument(
        "--http-port",
        type=_port,
        metavar="PORT",
        help="also serve OTLP/HTTP on this port (needs the http extra: "
        "pip install 'asynctelemetry[http]')",
    )
    collect.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate")
    collect.add_argument("--tls-key", metavar="PEM", help="… and this private key")
    collect.add_argument(
        "--capture-content", action="store_true", help="keep prompt and completion text"
    )
    collect.add_argument("--ui-port", type=_port, metavar="PORT", help="serve the dashboard, live")
    collect.add_argument(
        "--ui-token", metavar="TOKEN", help="dashboard token ($ASYNCTELEMETRY_UI_TOKEN)"
    )
    collect.add_argument(
        "--adopt",
        action="store_true",
        help="add the call store's tables to a SQLite file that holds another program's tables",
    )
    collect.add_argument("--json", action="store_true", help="print one JSON object per call")
    collect.add_argument("--no-live", action="store_true", help="log lines, even on a terminal")
    collect.add_argument("--quiet", action="store_true", help="print nothing per call")
    collect.add_argument(
        "--alert",
        action="append",
        type=_alert,
        metavar="RULE",
        help="alert when METRIC>THRESHOLD over a window, e.g. error_rate>0.05/5m, cost>10/1h "
        "(metrics: cost, calls, errors, error_rate, p95_latency_ms; repeatable)",
    )
    collect.add_argument(
        "--alert-webhook", metavar="URL", help="POST alert events here as JSON (else: stderr)"
    )
    collect.add_argument(
        "--alert-interval", type=float, default=15.0, metavar="S", help="seconds between checks"
    )

    calls = command("calls", "list calls from a store, newest first", reads="calls", limit=True)
    calls.add_argument("--all", action="store_true", help="every call (no --limit)")
    calls.add_argument("--oldest", action="store_true", help="oldest first")
    calls.add_argument("--json", action="store_true", help="one JSON object per call")
    calls.set_defaults(limit=50)

    traces = command("traces", "list traces (agent runs, requests), newest first", reads="store")
    traces.add_argument(
        "--session",
        dest="session_id",
        metavar="SESSION",
        help="only traces with a record of this session",
    )
    traces.add_argument(
        "--user", dest="user_id", metavar="USER", help="only traces with a record of this user"
    )
    traces.add_argument("--agent", help="only traces where this agent ran")
    traces.add_argument("--status", choices=("ok", "error", "cancelled"), help="trace status")
    add_window_options(traces, "started ")
    traces.add_argument(
        "--limit", type=_trace_limit, default=50, metavar="N", help="at most N (default 50)"
    )
    traces.add_argument("--oldest", action="store_true", help="oldest first")
    traces.add_argument("--json", action="store_true", help="one JSON object per trace")

    trace = command("trace", "one trace as a tree of its steps with timing bars", reads="store")
    trace.add_argument("trace_id", metavar="ID", help="the trace id (hex)")
    trace.add_argument("--json", action="store_true", help="its calls and steps as JSON")

    summary = command(
        "summary",
        "totals per model, provider, session, route, agent, user or tag, with charts",
        reads="calls",
    )
    summary.add_argument(
        "--by",
        choices=("request_model", "model", "provider", "session", "route", "agent", "user", "tag"),
        help="group by (default: request_model, the model asked for, so a model's errors sit "
        "on its row; with --every: no grouping; a call with several tags counts under each)",
    )
    summary.add_argument(
        "--every",
        type=_bucket,
        metavar="INTERVAL",
        help="a time series instead: one row per INTERVAL (10s, 1m, 5m, 1h, 1d), UTC-aligned",
    )
    summary.add_argument("--json", action="store_true", help="one JSON object per group")

    replay = command(
        "replay", "send stored calls to another store or an OTLP endpoint", reads="calls"
    )
    replay.add_argument(
        "--to", required=True, metavar="URL", help="sqlite:///x.db, memory://, otlp://host:4317"
    )
    replay.add_argument("--speed", type=float, metavar="X", help="pace at X times real time")
    replay.add_argument("--auth-token", metavar="TOKEN", help="bearer token for the endpoint")
    replay.add_argument("--quiet", action="store_true", help="no progress bar")

    reprice = command("reprice", "recompute stored costs with another price table", reads="calls")
    reprice.add_argument("--prices", metavar="FILE", help="JSON or TOML price overrides")
    reprice.add_argument("--json", action="store_true", help="one JSON object per model")
    reprice.add_argument(
        "--write",
        action="store_true",
        help="write the new costs back to the store (price_version updated), not only report",
    )

    budgets = command(
        "budgets", "where each budget kept in a store stands: spent, reserved, left", reads="store"
    )
    budgets.add_argument("--all", action="store_true", help="every window, not only the newest")
    budgets.add_argument("--json", action="store_true", help="one JSON object per budget and key")

    from ._ui import add_ui_options

    add_ui_options(
        command("ui", "serve the dashboard (a web page and JSON API) for a store"), _port
    )

    demo = command("demo", "the whole pipeline on embedded defaults, in under a minute")
    demo.add_argument("--db", metavar="PATH", help="SQLite file (asynctelemetry-demo.db)")
    demo.add_argument("--calls", type=_count, metavar="N", help="requests to simulate (120)")
    demo.add_argument("--speed", type=float, metavar="X", help="run X times faster (1.0)")
    demo.add_argument("--concurrency", type=_count, metavar="N", help="concurrent users (32)")
    demo.add_argument("--quick", action="store_true", help="a few calls, fast (for tests)")
    demo.add_argument(
        "--append", action="store_true", help="keep the calls of earlier runs (default: start anew)"
    )
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> Parser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            sub = action.choices[name]
            return sub if isinstance(sub, Parser) else None
    return None


def _count(text: str) -> int:
    from ._common import whole_number

    return whole_number(text)


def _alert(text: str) -> Any:
    from .._alerts import parse_alert
    from .._exceptions import ConfigError

    try:
        return parse_alert(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _trace_limit(text: str) -> int:
    from ._common import whole_number

    return whole_number(text, 1, 1000)


def _bucket(text: str) -> str:
    from .._stores._base import bucket_ns

    try:
        bucket_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _port(text: str) -> int:
    from ._common import whole_number

    return whole_number(text, 0, 65535, "a port number")


def _runner(name: str) -> Callable[[argparse.Namespace, Console], Awaitable[int]]:
    # Commands import rich at module level: import them only once rich is known to be there.
    if name == "collect":
        from ._collect import run_collect

        return run_collect
    if name == "demo":
        from ._demo import run_demo

        return run_demo
    if name == "replay":
        from ._replay import run_replay

        return run_replay
    if name == "ui":
        from ._ui import run_ui

        return run_ui
    if name == "budgets":
        from ._budgets import run_budgets

        return run_budgets
    if name in ("traces", "trace"):
        from . import _traces

        found: Callable[[argparse.Namespace, Console], Awaitable[int]] = getattr(
            _traces, f"run_{name}"
        )
        return found
    from . import _query

    runner: Callable[[argparse.Namespace, Console], Awaitable[int]] = getattr(_query, f"run_{name}")
    return runner


class _Stderr:
    """A stream that writes to whatever ``sys.stderr`` is now (rich's live view redirects it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def _logging_to_stderr(debug: bool) -> Iterator[None]:
    """The package's log records as plain lines on stderr while inside; restored after."""
    logger = logging.getLogger("asynctelemetry")
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(_MaskingFormatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


class _MaskingFormatter(logging.Formatter):
    """Log lines with every URL's secrets masked (the last door before stderr)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def _fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {mask_secrets(message)}\n")


def _print_traceback() -> None:
    sys.stderr.write(mask_secrets(traceback.format_exc()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 runtime failure, 2 usage)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, args.command)
        (sub or parser).unknown(extras)  # type: ignore[attr-defined]
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command != "demo" and getattr(args, "db", "") is None:
        if getattr(args, "store", None) is None and getattr(args, "memory", None) is None:
            args.db = default_db()
    debug: bool = args.debug or os.environ.get("ASYNCTELEMETRY_DEBUG", "") not in ("", "0")
    with _logging_to_stderr(debug):
        return _run(args, debug)


def _run(args: argparse.Namespace, debug: bool) -> int:
    try:
        require("rich", "cli", "the asynctelemetry command line")
        from rich.console import Console

        console = Console(highlight=False)
        if not console.is_terminal and not os.environ.get("COLUMNS"):
            console.width = 120  # a pipe or a file: wide enough for the tables, not endless
        run: Any = _runner(args.command)
        status: int = asyncio.run(run(args, console))
        return status
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # `... | head`: quietly, status 1, as rich does for its output
        from ._live import silence_stdout

        silence_stdout()
        return 1
    except CLIError as exc:
        if debug:
            _print_traceback()
        _fail(str(exc))
        return exc.exit_code
    except MissingDependencyError as exc:
        _fail(str(exc))
        return 1
    except (TelemetryError, OSError) as exc:
        if debug:
            _print_traceback()
        _fail(str(exc) or type(exc).__name__)
        return 1
    except Exception as exc:
        if debug:
            _print_traceback()
        _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1
