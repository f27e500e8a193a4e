"""Query parameters of the dashboard's JSON API: parsed and checked before any store is asked.

Every route takes the same window and filters:

==============  ==============================================================================
``window``      ``15m``, ``1h`` (default), ``24h``, ``7d``, or any ``<number><s|m|h|d|w>`` up
                to 366 days: the calls of that long up to now
``since``       ISO 8601 time (naive means UTC): a custom window's start; wins over ``window``
``until``       ISO 8601 time: a custom window's end (default now); needs ``since``; both
                ends between 1678 and 2261 (what a store holds: int64 nanoseconds)
``model``       calls whose ``model`` or ``request_model`` is this name
``provider``    ``session`` (a session id), ``status`` (``ok``, ``error``, ``cancelled``)
``error_type``  calls that failed with exactly this error type; ``error_message``: this message
==============  ==============================================================================

Anything else, a value that cannot be read, or a parameter given twice is a
:class:`ParamError`, which the server answers with 400 and the message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from .._stores._base import MULTI_GROUPS
from .._stores._bounds import duration_seconds

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .._stores._base import GroupBy

__all__ = [
    "BY",
    "EARLIEST",
    "LATEST",
    "MAX_BUCKETS",
    "MAX_LIMIT",
    "ParamError",
    "Query",
    "auto_bucket",
    "no_params",
    "parse_bucket",
    "parse_by",
    "parse_duration",
    "parse_limit",
    "parse_query",
    "parse_time",
]

#: Longest window (and bucket) a query may ask for.
MAX_SPAN: Final = timedelta(days=366)
#: The window a query may ask about: what every store can hold (int64 nanoseconds since 1970
#: reach from 1677-09-21 to 2262-04-11), in whole years.
EARLIEST: Final = datetime(1678, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2262, 1, 1, tzinfo=UTC)
#: Most buckets one time series may have (a chart is a few hundred pixels wide).
MAX_BUCKETS: Final = 2000
#: Most calls one ``/api/calls`` answer may hold.
MAX_LIMIT: Final = 1000
#: ``by=`` values of summaries and time series.
BY: Final = ("model", "request_model", "provider", "session", "route", "agent", "user", "tag")
STATUSES: Final = ("ok", "error", "cancelled")
#: Text filters longer than this cannot match a record (records refuse longer names).
_MAX_TEXT: Final = 512
_COMMON: Final = frozenset(
    {
        "window",
        "since",
        "until",
        "model",
        "provider",
        "session",
        "status",
        "error_type",
        "error_message",
    }
)
#: Filters passed to the store as they are (the API's name is the store's keyword).
_PLAIN: Final = ("model", "provider", "session_id", "status", "error_type", "error_message")
#: Bucket widths the page picks from for a window: about 40 to 96 bars whatever the window.
_NICE_BUCKETS: Final = tuple(
    timedelta(seconds=s)
    for s in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
)


class ParamError(ValueError):
    """A query parameter the API cannot use; the message says which and why (answered 400)."""


def parse_duration(text: str, name: str) -> timedelta:
    """``"15m"`` → 15 minutes; units s, m, h, d, w; positive and at most 366 days."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise ParamError(f"{name}={text!r}: expected a duration such as 15m, 1h, 24h or 7d")
    span = timedelta(seconds=min(seconds, MAX_SPAN.total_seconds() + 1))
    if not timedelta(0) < span <= MAX_SPAN:
        raise ParamError(f"{name}={text!r}: must be more than 0 and at most 366 days")
    return span


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time in UTC (naive means UTC), between :data:`EARLIEST` and :data:`LATEST`."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParamError(
            f"{name}={text!r}: expected an ISO 8601 time such as 2026-01-31T12:00:00Z"
        ) from None
    try:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        inside = EARLIEST <= when < LATEST
    except OverflowError:  # a zone offset that takes it past year 1 or 9999
        inside = False
    if not inside:
        raise ParamError(
            f"{name}={text!r}: must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} "
            "(the times a store can hold)"
        )
    return when


def auto_bucket(span: timedelta) -> timedelta:
    """A round bucket width giving at most 96 buckets over ``span`` (a day in 15 minutes)."""
    for width in _NICE_BUCKETS:
        if span / width <= 96:
            return width
    days = math.ceil(span / timedelta(days=1) / 96)
    return timedelta(days=days)


@dataclass(frozen=True, slots=True)
class Query:
    """A checked request: the window, the store filters, and the route's own options."""

    since: datetime
    until: datetime
    window: str
    model: str | None = None
    provider: str | None = None
    session_id: str | None = None
    status: str | None = None
    options: Mapping[str, str] | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def filters(self) -> dict[str, Any]:
        """Keyword arguments for ``store.query``/``count``/``summary``/``timeseries``."""
        found: dict[str, Any] = {"since": self.since, "until": self.until}
        for name in _PLAIN:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        return found

    def echo(self) -> dict[str, Any]:
        """The window and filters as JSON, so that an answer says what it is about."""
        return {
            "window": self.window,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "model": self.model,
            "provider": self.provider,
            "session": self.session_id,
            "status": self.status,
            "error_type": self.error_type,
            "error_message": self.error_message,
        }

    def option(self, name: str) -> str | None:
        """A route-specific parameter, or ``None`` when absent."""
        return None if self.options is None else self.options.get(name)


def parse_query(
    params: Iterable[tuple[str, str]],
    *,
    allowed: Iterable[str] = (),
    default_window: str = "1h",
    now: datetime | None = None,
) -> Query:
    """Check ``params`` (the query string's pairs) for a route that also takes ``allowed``.

    Raises:
        ParamError: an unknown, repeated, empty or unreadable parameter.
    """
    extra = frozenset(allowed)
    known = _COMMON | extra
    seen: dict[str, str] = {}
    for name, value in params:
        if name not in known:
            raise ParamError(f"unknown parameter {name!r}; this route takes {sorted(known)}")
        if name in seen:
            raise ParamError(f"parameter {name!r} given more than once")
        if value.strip() == "":
            raise ParamError(f"parameter {name!r} is empty")
        if len(value) > 4 * _MAX_TEXT:
            raise ParamError(f"parameter {name!r} is too long")
        seen[name] = value
    now = now or datetime.now(UTC)
    since_text, until_text = seen.get("since"), seen.get("until")
    if since_text is not None and "window" in seen:
        raise ParamError("give window (15m, 1h, 24h, 7d) or since/until, not both")
    if since_text is not None:
        since = parse_time(since_text, "since")
        until = parse_time(until_text, "until") if until_text is not None else now
        if until <= since:
            raise ParamError("until must be later than since")
        if until - since > MAX_SPAN:
            raise ParamError("a window may span at most 366 days")
        window = "custom"
    elif until_text is not None:
        raise ParamError("until needs since (a custom window has both ends)")
    else:
        window = seen.get("window", default_window).strip()
        since, until = now - parse_duration(window, "window"), now
    status = seen.get("status")
    if status is not None and status not in STATUSES:
        raise ParamError(f"status={status!r}: expected one of {list(STATUSES)}")
    return Query(
        since=since,
        until=until,
        window=window,
        model=seen.get("model"),
        provider=seen.get("provider"),
        session_id=seen.get("session"),
        status=status,
        options={name: seen[name] for name in extra if name in seen},
        error_type=seen.get("error_type"),
        error_message=seen.get("error_message"),
    )


def no_params(params: Iterable[tuple[str, str]], allowed: Iterable[str] = ()) -> dict[str, str]:
    """Refuse any parameter but ``allowed`` (returned by name): a lookup by id
    (``/api/calls/{id}``, ``/api/traces/{id}``, ``/api/sessions/{id}``) reads the whole store
    through its index, so a window or filter would narrow nothing.

    Raises:
        ParamError: another parameter was given, or one twice.
    """
    known = frozenset(allowed)
    seen: dict[str, str] = {}
    for name, value in params:
        if name not in known:
            takes = f"takes only {sorted(known)}" if known else "takes no parameters"
            raise ParamError(
                f"unknown parameter {name!r}; a lookup by id {takes} "
                "(it reads the whole store, whatever the window)"
            )
        if name in seen:
            raise ParamError(f"parameter {name!r} given more than once")
        seen[name] = value
    return seen


def parse_by(query: Query, default: str, *, series: bool = False) -> GroupBy:
    """The ``by=`` option, checked (``series``: for a time series, one value per call)."""
    by = query.option("by") or default
    allowed = [b for b in BY if not (series and b in MULTI_GROUPS)]
    if by not in allowed:
        raise ParamError(f"by={by!r}: expected one of {allowed}")
    return cast("GroupBy", by)


def parse_bucket(query: Query) -> timedelta:
    """The ``bucket=`` option (``auto`` or a duration), checked against the window."""
    span = query.until - query.since
    text = query.option("bucket") or "auto"
    bucket = auto_bucket(span) if text == "auto" else parse_duration(text, "bucket")
    if span / bucket > MAX_BUCKETS:
        raise ParamError(
            f"bucket={text!r} gives over {MAX_BUCKETS} buckets for this window; "
            "use a wider bucket or bucket=auto"
        )
    return bucket


def parse_limit(query: Query, default: int) -> int:
    """The ``limit=`` option: an int in 1..MAX_LIMIT."""
    text = query.option("limit")
    if text is None:
        return default
    try:
        limit = int(text)
    except ValueError:
        raise ParamError(f"limit={text!r}: expected a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ParamError(f"limit={text!r}: must be in 1..{MAX_LIMIT}")
    return limit
