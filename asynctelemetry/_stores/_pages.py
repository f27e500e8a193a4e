"""Pages of calls in a chosen order, by keyset: the one rule of ``store.page(...)``.

Order: by the sort key (``time``: the timestamp; ``cost``: ``cost_usd``; ``latency``:
``duration_ms``; ``tokens``: ``input_tokens + output_tokens``, unknown when either is), largest
first when ``descending`` (the default), ties in insertion order (the latest stored first when
descending). Calls whose key is unknown come after every call whose key is known, in either
direction, in insertion order (latest first when descending): unknown is never taken for 0.
``search`` keeps the calls whose ``call_id``, ``trace_id``, ``session_id`` or ``user_id`` equals
it; the filters are those of every read (:class:`~._base.Filters`).

A page holds at most ``limit`` calls; its ``next`` is the cursor of the page after it (``None``
on the last page): the position of its last call (its key and insertion number), so calls stored
since never shift the pages, as an offset would: one that sorts after the cursor shows on a later
page, one that sorts before it does not. Stores implement one phase at a time
(:class:`PageRead`: the calls with a known key, or those without); :func:`read_page` joins the
two, and :func:`page_rows` is the rule itself over calls in insertion order (``MemoryStore``'s).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from . import _base  # to_ns, read when a page is read: _base imports this module

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from .._record import LLMCall
    from ._base import Filters

__all__ = [
    "MAX_PAGE",
    "PAGE_SORTS",
    "CallPage",
    "PageRead",
    "PageSort",
    "check_page",
    "cursor_position",
    "page_rows",
    "read_page",
    "sort_key",
]

PageSort = Literal["time", "cost", "latency", "tokens"]
#: What ``page(sort=...)`` orders by.
PAGE_SORTS: Final = ("time", "cost", "latency", "tokens")
#: Most calls one page may hold.
MAX_PAGE: Final = 1000
#: A page's key and insertion number in a row a store returns: (call, key, seq).
PageRow = tuple["LLMCall", Any, int]


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of calls and the cursor of the next (``None``: this is the last page)."""

    calls: list[LLMCall]
    next: str | None


@dataclass(frozen=True, slots=True)
class PageRead:
    """What a store reads for one phase of a page: the calls that pass ``filters`` and
    ``search`` whose key is ``known`` (or unknown), in the page's order, strictly after
    ``after`` ((key, seq); (None, seq) among unknown keys; ``None``: from the start), at most
    ``limit``; each as (call, key, seq)."""

    filters: Filters
    sort: str
    descending: bool
    search: str | None
    known: bool
    after: tuple[Any, int] | None
    limit: int


def sort_key(call: LLMCall, sort: str) -> Any:
    """The key ``sort`` orders ``call`` by (``None``: unknown); time in integer nanoseconds."""
    if sort == "time":
        return _base.to_ns(call.timestamp)
    if sort == "cost":
        return call.cost_usd
    if sort == "latency":
        return call.duration_ms
    if call.input_tokens is None or call.output_tokens is None:
        return None
    return call.input_tokens + call.output_tokens


def _found(call: LLMCall, search: str | None) -> bool:
    return search is None or search in (call.call_id, call.trace_id, call.session_id, call.user_id)


def page_rows(calls: Iterable[tuple[int, LLMCall]], read: PageRead) -> list[PageRow]:
    """The rule over ``calls`` given as (insertion number, call) pairs: one phase of a page."""
    rows: list[PageRow] = []
    after = read.after
    for seq, call in calls:
        if not (read.filters.matches(call) and _found(call, read.search)):
            continue
        key = sort_key(call, read.sort)
        if (key is not None) != read.known:
            continue
        if after is not None:
            here = (key, seq) if read.known else (0, seq)
            there = after if read.known else (0, after[1])
            if not (here < there if read.descending else here > there):
                continue
        rows.append((call, key, seq))
    rows.sort(key=lambda r: (r[1], r[2]) if read.known else r[2], reverse=read.descending)
    return rows[: read.limit]


def check_page(sort: object, limit: object) -> None:
    """``sort`` is one of :data:`PAGE_SORTS` and ``limit`` an int in 1..MAX_PAGE, or
    ``ValueError``."""
    if sort not in PAGE_SORTS:
        raise ValueError(f"sort must be one of {list(PAGE_SORTS)}, not {sort!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be an int in 1..{MAX_PAGE}, got {limit!r}")


def _encode(sort: str, descending: bool, key: Any, seq: int) -> str:
    text = json.dumps([sort, "desc" if descending else "asc", key, seq], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: object, sort: str, descending: bool) -> tuple[Any, int]:
    """The (key, seq) of a cursor made by a page of the same sort and direction."""
    if not isinstance(cursor, str) or len(cursor) > 400:
        raise ValueError("after must be the 'next' cursor of a page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_sort, direction, key, seq = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("after must be the 'next' cursor of a page") from None
    if made_sort != sort or direction != ("desc" if descending else "asc"):
        raise ValueError(
            f"after is a cursor of a page by {made_sort} {direction}, not by {sort} "
            f"{'desc' if descending else 'asc'}"
        )
    numeric = (int,) if sort in ("time", "tokens") else (int, float)
    if not (key is None or (isinstance(key, numeric) and not isinstance(key, bool))) or not (
        isinstance(seq, int) and not isinstance(seq, bool)
    ):
        raise ValueError("after must be the 'next' cursor of a page")
    if sort == "time" and key is None:
        raise ValueError("after must be the 'next' cursor of a page")
    return (key if key is None or sort in ("time", "tokens") else float(key)), seq


def cursor_position(cursor: str, sort: str, descending: bool) -> tuple[Any, int]:
    """The (key, insertion number) of the last call of the page whose ``next`` is ``cursor``
    (made by a page of the same ``sort`` and direction), or ``ValueError``."""
    return _decode(cursor, sort, descending)


async def read_page(
    read: Callable[[PageRead], Awaitable[list[PageRow]]],
    filters: Filters,
    *,
    sort: str,
    descending: bool,
    search: str | None,
    after: str | None,
    limit: int,
) -> CallPage:
    """A page from a store's one-phase ``read``: the known keys, then (when they run out on
    this page) the unknown ones; one call more than ``limit`` tells whether a next page exists."""
    position = None if after is None else _decode(after, sort, descending)
    known = position is None or position[0] is not None
    rows: list[PageRow] = []
    if known:
        rows = await read(PageRead(filters, sort, descending, search, True, position, limit + 1))
    if len(rows) <= limit and sort != "time":  # time is always known
        start = None if known else position
        more = PageRead(filters, sort, descending, search, False, start, limit + 1 - len(rows))
        rows += await read(more)
    has_next = len(rows) > limit
    del rows[limit:]
    last = rows[-1] if rows else None
    cursor = None if not has_next or last is None else _encode(sort, descending, last[1], last[2])
    return CallPage([row[0] for row in rows], cursor)
