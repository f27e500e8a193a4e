"""``ui``: serve the dashboard for a store until Ctrl-C; ``collect --ui-port`` serves it live.

The first line ``ui`` prints is the page's address (scripts read it, e.g. with ``--port 0``);
with a token, that line carries ``?token=…`` so that opening it logs the browser in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._exceptions import ConfigError, MissingDependencyError
from ._common import reading, stop_signals
from ._errors import CLIError, describe_bind_failure, port_in_use

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable

    from rich.console import Console

    from .._stores import CallStore

__all__ = ["UI_TOKEN_ENV", "add_ui_options", "dashboard", "run_ui"]

#: Environment variable read when ``--token`` is not given.
UI_TOKEN_ENV = "ASYNCTELEMETRY_UI_TOKEN"
DEFAULT_UI_PORT = 4320


def add_ui_options(parser: argparse.ArgumentParser, port: Callable[[str], int]) -> None:
    """The ``ui`` command's options: ``--db PATH|URL`` (or ``--store URL``), host, port, token."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--db", metavar="PATH|URL", help="a SQLite call store, or any store URL (postgresql://…)"
    )
    where.add_argument("--store", metavar="URL", help="a store URL: sqlite:///calls.db, memory://")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port, default=DEFAULT_UI_PORT, help=f"port (default {DEFAULT_UI_PORT})"
    )
    parser.add_argument(
        "--token", metavar="TOKEN", help=f"require this bearer token (or ${UI_TOKEN_ENV})"
    )


def page_link(url: str, token: str | None) -> str:
    """The address to open: with a token, the ``?token=`` link that sets the browser's cookie."""
    return url if token is None else f"{url}?token={quote(token, safe='')}"


@contextlib.asynccontextmanager
async def dashboard(
    store: CallStore, *, host: str, port: int, token: str | None, alerts: Any = None
) -> AsyncIterator[str]:
    """A running :class:`~asynctelemetry.ui.Dashboard` for ``store``; yields its URL.

    Raises:
        CLIError: aiohttp is missing or the port cannot be bound (one-line reasons).
    """
    try:
        from ..ui import Dashboard

        board = Dashboard(store, host=host, port=port, auth_token=token, alerts=alerts)
    except MissingDependencyError as exc:
        raise CLIError(str(exc)) from None
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    if port and port_in_use(host, port):
        raise CLIError(describe_bind_failure(host, port, "dashboard"))
    try:
        await board.start()
    except ConfigError:
        raise CLIError(describe_bind_failure(host, port, "dashboard")) from None
    try:
        yield board.url
    finally:
        await board.stop()


def ui_token(value: str | None) -> str | None:
    """``--token``, else ``$ASYNCTELEMETRY_UI_TOKEN``, else none."""
    return (value if value is not None else os.environ.get(UI_TOKEN_ENV)) or None


async def run_ui(args: argparse.Namespace, console: Console) -> int:
    """Serve the dashboard for ``--db``/``--store`` until SIGINT/SIGTERM; 0 after a clean stop."""

    if args.db is not None and "://" in args.db:
        args.store, args.db = args.db, None
    token = ui_token(args.token)
    stop = asyncio.Event()
    async with (
        reading(args) as store,
        dashboard(store, host=args.host, port=args.port, token=token) as url,
    ):
        sys.stdout.write(page_link(url, token) + "\n")
        sys.stdout.flush()
        sys.stderr.write("asynctelemetry: serving the dashboard (read-only); Ctrl-C stops\n")
        if args.host not in ("127.0.0.1", "::1", "localhost"):
            auth = "with" if token else "WITHOUT"
            sys.stderr.write(f"asynctelemetry: listening beyond loopback {auth} a token\n")
        with stop_signals(stop):
            await stop.wait()
    return 0
