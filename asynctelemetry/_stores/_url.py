"""``open_store(url)``: a store from a URL, as the CLI and configuration files name them.

- ``memory://`` or ``memory://?capacity=5000`` → :class:`MemoryStore`
- ``sqlite:///relative/calls.db`` (three slashes: a path relative to the working directory),
  ``sqlite:////abs/path/calls.db`` (four: absolute), ``sqlite:///:memory:`` → :class:`SQLiteStore`,
  with options ``batch_size``, ``flush_interval``, ``max_queue``, ``durability``
  (``normal``/``full``), ``busy_timeout``, ``cache_mib``, ``close_timeout`` and the retention
  options ``max_age`` (seconds, or with a unit: ``30s``, ``15m``, ``12h``, ``7d``), ``max_rows``,
  ``retention_interval`` and ``retention_batch`` as query parameters.
- ``postgresql://user:password@host:5432/database`` (or ``postgres://``) →
  :class:`PostgresStore`, with the store options ``pool_size``, ``batch_size``,
  ``flush_interval``, ``max_queue``, ``close_timeout``, ``connect_timeout``, ``max_age``,
  ``max_rows``, ``retention_interval``, ``retention_batch`` and ``partitions_ahead`` as query
  parameters; every other query parameter stays in the DSN for the driver (``sslmode``, or a
  server setting such as ``search_path``).

Unknown schemes, unknown or repeated options and bad values raise :class:`ConfigError` (a
``ValueError``). The store comes back unopened: use it with ``async with``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .._exceptions import ConfigError, mask_secrets
from ._bounds import parse_max_age, parse_max_rows
from ._hints import closest
from ._memory import MemoryStore
from .postgres.store import PostgresStore
from .sqlite.store import SQLiteStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._base import CallStore

__all__ = ["open_store"]


#: Largest count an option takes (capacity, batch size…): more is a typo or an attack.
_MAX_COUNT: Final = 2**31 - 1


def _positive_int(text: str) -> int:
    if len(text) > 12:  # int() of a huge digit string is itself slow
        raise ValueError(f"must be at most {_MAX_COUNT}")
    value = int(text)
    if not 1 <= value <= _MAX_COUNT:
        raise ValueError(f"must be in 1..{_MAX_COUNT}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise ValueError("must be > 0")
    return value


def _durability(text: str) -> str:
    if text not in ("normal", "full"):
        raise ValueError("must be 'normal' or 'full'")
    return text


_MEMORY_OPTIONS: Final[dict[str, Callable[[str], Any]]] = {"capacity": _positive_int}
_SQLITE_OPTIONS: Final[dict[str, Callable[[str], Any]]] = {
    "batch_size": _positive_int,
    "flush_interval": _seconds,
    "max_queue": _positive_int,
    "durability": _durability,
    "busy_timeout": _seconds,
    "cache_mib": _positive_int,
    "close_timeout": _seconds,
    "max_age": parse_max_age,
    "max_rows": parse_max_rows,
    "retention_interval": _positive_seconds,
    "retention_batch": _positive_int,
}

_POSTGRES_OPTIONS: Final[dict[str, Callable[[str], Any]]] = {
    "pool_size": _positive_int,
    "batch_size": _positive_int,
    "flush_interval": _seconds,
    "max_queue": _positive_int,
    "close_timeout": _seconds,
    "connect_timeout": _positive_seconds,
    "max_age": parse_max_age,
    "max_rows": parse_max_rows,
    "retention_interval": _positive_seconds,
    "retention_batch": _positive_int,
    "partitions_ahead": _non_negative_int,
}


def open_store(url: str, *, read_only: bool = False) -> CallStore:
    """A new, unopened store described by ``url`` (see the module docstring for the forms).

    ``read_only``: a SQLite or PostgreSQL store that only reads: nothing is created, migrated
    or written, and a file or database without the call store's schema is refused.

    Raises:
        ConfigError: the scheme, an option or a value is not valid.
    """
    if not isinstance(url, str):
        raise ConfigError(f"a store URL must be a string, not {type(url).__name__}")
    shown = mask_secrets(url)  # every message names the URL without its secrets
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL" and the like
        raise ConfigError(f"store URL {shown!r}: {exc}") from None
    if parts.fragment:
        raise ConfigError(f"store URL {shown!r}: a fragment (#...) means nothing here")
    if parts.scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(f"store URL {shown!r}: write memory:// with options only")
        return MemoryStore(**_options(shown, parts.query, _MEMORY_OPTIONS))
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise ConfigError(
                f"store URL {shown!r}: no host allowed; use sqlite:///relative.db "
                "or sqlite:////absolute/path.db"
            )
        path = unquote(parts.path)[1:]  # drop the slash that separates the empty host
        if not path:
            raise ConfigError(f"store URL {shown!r} names no file")
        if "\x00" in path:
            raise ConfigError(f"store URL {shown!r}: a file name cannot hold a NUL byte (%00)")
        return SQLiteStore(
            path, read_only=read_only, **_options(shown, parts.query, _SQLITE_OPTIONS)
        )
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname and not parts.path.strip("/"):
            raise ConfigError(f"store URL {shown!r} names no host or database")
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError as exc:
            raise ConfigError(f"store URL {shown!r}: malformed options ({exc})") from None
        ours = [(k, v) for k, v in pairs if k in _POSTGRES_OPTIONS]
        theirs = [(k, v) for k, v in pairs if k not in _POSTGRES_OPTIONS]
        for name, _ in theirs:  # the driver's (sslmode, server settings), unless a typo of ours
            if name not in _DRIVER_OPTIONS and (hint := _did_you_mean(name, _POSTGRES_OPTIONS)):
                raise ConfigError(f"store URL {shown!r}: unknown option {name!r}{hint}")
        options = _options(shown, urlencode(ours), _POSTGRES_OPTIONS)
        dsn = urlunsplit(parts._replace(query=urlencode(theirs)))
        return PostgresStore(dsn, read_only=read_only, **options)
    what = f"unsupported scheme {parts.scheme!r}" if parts.scheme else "no scheme"
    raise ConfigError(
        f"store URL {shown!r}: {what} (use memory://, sqlite:///path or postgresql://host/db)"
    )


#: libpq/asyncpg connection options a DSN may carry (never taken for a typo of ours).
_DRIVER_OPTIONS: Final = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "passfile",
        "password",
        "user",
        "host",
        "port",
        "dbname",
        "database",
        "application_name",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "connect_timeout",
        "options",
        "service",
    }
)


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""``."""
    close = closest(name, known, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _options(url: str, query: str, known: dict[str, Callable[[str], Any]]) -> dict[str, Any]:
    """The options of ``query`` parsed by ``known``; ``url`` (masked) names the URL in errors."""
    options: dict[str, Any] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"store URL {url!r}: malformed options ({exc})") from None
    for name, text in pairs:
        if name not in known:
            raise ConfigError(
                f"store URL {url!r}: unknown option {name!r}{_did_you_mean(name, known)} "
                f"(known: {', '.join(sorted(known))})"
            )
        if name in options:
            raise ConfigError(f"store URL {url!r}: option {name!r} given twice")
        try:
            options[name] = known[name](text)
        except ValueError as exc:
            raise ConfigError(f"store URL {url!r}: {name}={text!r} is not valid ({exc})") from None
    return options
