"""What several commands share: time arguments, filter options, and opening the store to read.

``--since``/``--until`` take a duration back from now (``90s``, ``15m``, ``2h``, ``1d``, ``1w``)
or an ISO 8601 time (a time without a zone is UTC). Reading commands name their store with
``--db PATH`` (a SQLite file that must exist), ``--db postgresql://…`` (a PostgreSQL
database), or ``--store URL`` (anything :func:`open_store`
takes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from .._exceptions import ConfigError, SchemaVersionError, StoreError, mask_secrets
from .._stores import SQLiteStore, open_store
from .._stores._bounds import duration_seconds
from ._errors import CLIError, UsageError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator

    from rich.console import Console

    from .._stores import CallStore

__all__ = [
    "add_filter_options",
    "add_source_options",
    "add_window_options",
    "filters_of",
    "parse_when",
    "reading",
    "stop_signals",
    "whole_number",
    "write_json_lines",
]


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A point in time from ``"15m"`` (that long ago) or an ISO 8601 time (naive means UTC).

    Raises:
        argparse.ArgumentTypeError: neither form (argparse turns it into a usage error).
    """
    seconds = duration_seconds(text)
    if seconds is not None:
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
        except (OverflowError, ValueError):
            raise argparse.ArgumentTypeError(
                f"{text!r} reaches before year 1; give a shorter duration"
            ) from None
    try:
        when = datetime.fromisoformat(text.strip())
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise argparse.ArgumentTypeError(f"{text!r} is out of the range of dates") from None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (90s, 15m, 2h, 1d, 1w) nor an ISO 8601 time"
        ) from None


#: Largest ``--limit`` (and other counts) taken: a SQLite integer, and more than any store holds.
_MAX_COUNT: Final = 2**62


def whole_number(
    text: str, lowest: int = 1, highest: int = _MAX_COUNT, what: str = "a whole number"
) -> int:
    """``text`` as an int in ``lowest..highest``, or an argparse error saying why not."""
    try:
        value = int(text) if len(text) <= 40 else highest + 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {lowest}")
    if value > highest:
        raise argparse.ArgumentTypeError(f"{text[:24]!r} is more than {highest}")
    return value


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """``--db PATH`` or ``--store URL``: the store a reading command reads."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--db",
        metavar="PATH|URL",
        help="a SQLite call store or a postgresql://user@host/db URL "
        "(default: $ASYNCTELEMETRY_DB, else calls.db)",
    )
    group.add_argument("--store", metavar="URL", help="a store URL: sqlite:///calls.db, memory://")


def add_filter_options(parser: argparse.ArgumentParser, *, limit: bool = False) -> None:
    """The store filters: model, provider, session, status and a time window."""
    parser.add_argument(
        "--model", help="only calls answered by or asked of this model (model or request_model)"
    )
    parser.add_argument("--provider", help="only calls to this provider")
    parser.add_argument(
        "--session", dest="session_id", metavar="SESSION", help="only calls of this session id"
    )
    parser.add_argument("--status", choices=("ok", "error", "cancelled"), help="only this status")
    add_window_options(parser)
    if limit:
        parser.add_argument(
            "--limit", type=whole_number, metavar="N", help="at most N calls (default: 50)"
        )


def add_window_options(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--since`` and ``--until``: a time window (``what``: of what, e.g. ``"started "``)."""
    for flag, side in (("--since", "from this time on"), ("--until", "before this time")):
        parser.add_argument(
            flag, type=parse_when, metavar="WHEN", help=f"{what}{side}: 15m, 2h, 1d or ISO"
        )


def write_json_lines(console: Console, objects: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line on the console's file (``--json``), in one write."""
    console.file.write("".join(json.dumps(obj) + "\n" for obj in objects))


#: Every store filter a command's options may set; each option's ``dest`` is the store's
#: keyword (``--session`` sets ``session_id``, ``--user`` sets ``user_id``).
FILTER_KEYWORDS: Final = (
    "since", "until", "model", "provider", "session_id", "user_id", "agent", "status"
)  # fmt: skip


def filters_of(args: argparse.Namespace) -> dict[str, Any]:
    """The store filter keywords the parsed options ask for (those the command has)."""
    return {name: getattr(args, name) for name in FILTER_KEYWORDS if hasattr(args, name)}


def source_name(args: argparse.Namespace) -> str:
    """How to name the store in messages (a URL without its secrets)."""
    return mask_secrets(str(args.db or args.store))


def is_postgres_url(text: str) -> bool:
    """Whether ``--db`` names a PostgreSQL database rather than a SQLite file."""
    return text.startswith(("postgresql://", "postgres://"))


_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def other_url(text: str) -> str | None:
    """The SQLite path of a ``--db`` given as a ``sqlite:///`` URL; ``None`` for a plain path
    (or a PostgreSQL URL).

    Raises:
        UsageError: a URL of any other scheme (``mysql://``: "unsupported scheme").
    """
    if not _SCHEME.match(text) or is_postgres_url(text):
        return None
    try:
        store = open_store(text)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(store, SQLiteStore):
        raise UsageError(f"--db takes a SQLite file or a PostgreSQL URL; for {text!r} use --store")
    return store.path


def postgres_store(url: str, *, read_only: bool = False, **retention: Any) -> CallStore:
    """The PostgresStore a ``--db`` URL names (with its own ``?options``), unopened;
    ``retention`` (``max_age``, ``max_rows``) joins the URL's options.

    Raises:
        UsageError: the URL or an option is not valid.
    """
    if retention:
        url += ("&" if "?" in url else "?") + urlencode(retention)
    try:
        return open_store(url, read_only=read_only)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None  # open_store masks the URL


def _reading_store(args: argparse.Namespace, *, write: bool = False) -> CallStore:
    if args.db is not None and is_postgres_url(args.db):
        return postgres_store(args.db, read_only=not write)
    if args.db is not None:
        path = other_url(args.db) or args.db
    else:
        try:
            store = open_store(args.store, read_only=not write and is_postgres_url(args.store))
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        if not isinstance(store, SQLiteStore) or store.path == ":memory:":
            return store
        path = store.path
    if not os.path.exists(path):
        raise CLIError(
            f"{path}: no such file (a call store is made by 'collect' or 'demo'; "
            "name another with --db PATH or $ASYNCTELEMETRY_DB)"
        )
    if os.path.isdir(path):
        raise CLIError(f"{path} is a directory, not a call store")
    return SQLiteStore(path, read_only=not write)


@contextlib.asynccontextmanager
async def reading(args: argparse.Namespace, *, write: bool = False) -> AsyncIterator[CallStore]:
    """The store named by ``--db``/``--store``, open; store failures become one-line errors.

    A SQLite file is opened read-only (nothing created, migrated or changed) unless ``write``.
    """
    store = _reading_store(args, write=write)
    try:
        async with store:
            yield store
    except SchemaVersionError as exc:
        raise CLIError(f"{exc} (upgrade asynctelemetry to read it)") from None
    except StoreError as exc:
        raise CLIError(str(exc)) from None


@contextlib.contextmanager
def stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while inside (the loop's own handlers, no threads)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
