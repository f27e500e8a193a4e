"""Sessions: the calls of one conversation, oldest first, a bounded page at a time.

A session is the calls that share a ``session_id``. ``store.session(session_id, limit=,
after=)`` is a :meth:`~._base.StoreReads.page` by time, oldest first, with the session filter
(the ``(session_id, timestamp)`` index of SQLite and PostgreSQL, a scan of the ring in memory):
the order of every read (timestamp, ties in insertion order) and the keyset cursor of pages
(:mod:`._pages`): calls that arrive later with newer timestamps join the end without moving a
page.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

from .._record import LLMCall  # noqa: TC001 (pydantic reads the annotation at runtime)

__all__ = [
    "MAX_SESSION_LIMIT",
    "SessionPage",
    "check_session_limit",
]

#: Most calls one ``session(...)`` page holds.
MAX_SESSION_LIMIT: Final = 1000


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
