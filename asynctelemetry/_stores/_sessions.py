"""Sessions: the calls of one conversation, oldest first, a bounded page at a time.

A session is the calls that share a ``session_id``. ``store.session(session_id, limit=,
after=)`` reads them through the store's own ``query`` with the session filter (the
``(session_id, timestamp)`` index of SQLite and PostgreSQL, a scan of the ring in memory), so
its order is the order of every read: by timestamp, ties in insertion order, in every store.

The cursor (:attr:`SessionPage.next`) is text naming the last call shown by its timestamp and
how many calls of that exact timestamp the pages so far have shown: the next page is the calls
at or after that timestamp, less those. It names no store's row ids, so it means the same in
every store; calls that arrive later with newer timestamps join the end without moving a page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict

from .._record import LLMCall  # noqa: TC001 (pydantic reads the annotation at runtime)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MAX_SESSION_LIMIT",
    "SessionPage",
    "check_session_limit",
    "parse_cursor",
    "session_page",
]

#: Most calls one ``session(...)`` page holds.
MAX_SESSION_LIMIT: Final = 1000
#: Most calls of one exact timestamp a cursor may step over (a bound on one page's read).
_MAX_SKIP: Final = 1_000_000
_CURSOR: Final = re.compile(r"(-?\d{1,18})\.(\d{1,7})")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


class SessionPage(BaseModel):
    """One page of a session's calls, oldest first (``store.session(...)``).

    ``next`` is the cursor of the following page (pass it as ``after=``), ``None`` on the last.
    """

    model_config = ConfigDict(frozen=True)

    session_id: str
    calls: list[LLMCall]
    next: str | None


def check_session_limit(limit: object) -> int:
    """``limit`` is an int from 1 to :data:`MAX_SESSION_LIMIT`, or ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SESSION_LIMIT:
        raise ValueError(f"limit must be an int from 1 to {MAX_SESSION_LIMIT}, got {limit!r}")
    return limit


def parse_cursor(after: object) -> tuple[datetime | None, int]:
    """``after`` (``None`` or a :attr:`SessionPage.next`) as (the timestamp to read from, or
    ``None``; how many calls of exactly that timestamp were shown), or ``ValueError``."""
    if after is None:
        return None, 0
    match = _CURSOR.fullmatch(after) if isinstance(after, str) else None
    try:
        if match is None or int(match[2]) > _MAX_SKIP:
            raise ValueError
        return _EPOCH + int(match[1]) * _MICROSECOND, int(match[2])
    except (ValueError, OverflowError):
        raise ValueError(f"after must be the 'next' of a session page, not {after!r}") from None


def session_page(
    session_id: str, found: Sequence[LLMCall], start: datetime | None, skip: int, limit: int
) -> SessionPage:
    """The page of ``found`` (the calls at or after the cursor's timestamp ``start``, oldest
    first, at most ``skip + limit + 1`` of them): the ``skip`` already shown dropped, at most
    ``limit`` kept, and the cursor after the last one when more follow."""
    rows = list(found[skip:])
    more = len(rows) > limit
    del rows[limit:]
    cursor = None
    if more:
        last = rows[-1].timestamp
        same = sum(1 for call in rows if call.timestamp == last)
        if last == start:  # every call of the page has the cursor's timestamp
            same += skip
        cursor = f"{(last - _EPOCH) // _MICROSECOND}.{same}"
    return SessionPage(session_id=session_id, calls=rows, next=cursor)
