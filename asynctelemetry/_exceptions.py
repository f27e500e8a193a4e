"""The exceptions asynctelemetry raises.

Every one derives from :class:`TelemetryError`, and from a builtin where callers already catch it::

    TelemetryError
    ├── ConfigError (ValueError)            bad argument, URL, option or price file
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    ├── StoreClosedError                     a store, tracer or collector used after aclose()
    ├── StoreError                           the database failed (disk full, locked, corrupt)
    │   └── SchemaVersionError               the file was written by a newer asynctelemetry
    ├── ExportError                          an exporter gave up on a batch
    └── BudgetExceededError                  a call refused before it was sent: over budget
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_plus

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "ExportError",
    "MissingDependencyError",
    "SchemaVersionError",
    "StoreClosedError",
    "StoreError",
    "TelemetryError",
    "mask_secrets",
]


class TelemetryError(Exception):
    """Root of every error raised by asynctelemetry itself."""


class ConfigError(TelemetryError, ValueError):
    """An argument, URL, option or file given to asynctelemetry is not valid."""


class MissingDependencyError(TelemetryError, ImportError):
    """An optional extra is needed; the message is the pip command that installs it."""

    def __init__(self, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs an optional extra: pip install 'asynctelemetry[{extra}]'"
        )
        self.extra = extra


class StoreClosedError(TelemetryError):
    """A store, tracer, exporter or collector was used after it was closed."""


class StoreError(TelemetryError):
    """The store's database failed (disk full, locked past the retry budget, corrupt file)."""


class SchemaVersionError(StoreError):
    """The database file was written by a newer version of asynctelemetry."""


class ExportError(TelemetryError):
    """An exporter could not deliver a batch and gave up on it."""


class BudgetExceededError(TelemetryError):
    """A call was refused before its request was sent: its estimate does not fit a budget.

    Attributes:
        budget: the budget's name.
        key: the user, session, agent or tag value the budget is kept for (``None``: unkeyed).
        spent_usd: spent in the budget's current window.
        reserved_usd: held by calls still running.
        limit_usd: the budget's limit.
        estimate_usd: what the refused call would have reserved.
    """

    def __init__(
        self,
        *,
        budget: str,
        key: str | None,
        spent_usd: float,
        reserved_usd: float,
        limit_usd: float,
        estimate_usd: float,
    ) -> None:
        who = f" for {key!r}" if key is not None else ""
        super().__init__(
            f"budget {budget!r}{who} exceeded: spent ${spent_usd:.6f} + reserved "
            f"${reserved_usd:.6f} of ${limit_usd:.6f}; this call needs ${estimate_usd:.6f}"
        )
        self.budget = budget
        self.key = key
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.limit_usd = limit_usd
        self.estimate_usd = estimate_usd


def require_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``, else :class:`ConfigError`."""
    if value.__class__ is not int or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def require(module: str, extra: str, feature: str) -> object:
    """Import an optional dependency, or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(extra, feature) from exc


#: What replaces a secret in a message.
MASK: Final = "***"
#: A URL's user-info password: ``scheme://user:PASSWORD@host``. The password runs to the ``@``
#: after which the host part holds no other ``@`` (``urlsplit`` splits user-info the same way),
#: so a password holding ``@``, ``/`` or ``?`` unencoded is masked whole.
_USERINFO: Final = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<secret>\S*?)@(?=[^@/?#\s]*(?:[/?#\s]|$))"
)
#: A ``key=value`` option, in a URL's query (``?a=1&b=2``) or a libpq keyword string
#: (``host=h password=p``); its key is judged by :func:`_secret_key`.
_OPTION: Final = re.compile(
    r"(?P<head>(?:^|[?&;\s])(?P<key>[^=&?;#\s'\"]+)=)(?P<secret>[^&;#\s'\"]*)"
)
#: Words that make an option's key a secret (``password``, ``sslpassword``, ``passfile``,
#: ``client_secret``, ``token``, ``api_key``, ``auth`` …), matched in its lowercased, decoded
#: name.
_SECRET_WORDS: Final = ("pass", "secret", "token", "key", "auth", "credential")


def _secret_key(key: str) -> bool:
    name = unquote_plus(key).lower()
    return any(word in name for word in _SECRET_WORDS)


def _mask_option(match: re.Match[str]) -> str:
    if not _secret_key(match["key"]) or not match["secret"]:
        return match[0]
    return f"{match['head']}{MASK}"


def mask_secrets(text: str) -> str:
    """``text`` with every secret a URL or DSN in it can carry replaced by ``***``.

    The one masking rule for every message, ``repr``, log line and CLI output that shows a
    store URL, a DSN or an endpoint: the user-info password (``postgresql://u:***@host/db``)
    and the value of every option whose name holds ``pass``, ``secret``, ``token``, ``key``,
    ``auth`` or ``credential`` (``password``, ``sslpassword``, ``passfile``, ``api_key`` …), in a
    query string or a libpq ``key=value`` string, percent-encoded names included. Text that
    holds no URL comes back unchanged; masking too much is preferred to showing a secret.
    """
    masked = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _OPTION.sub(_mask_option, masked)
