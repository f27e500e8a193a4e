"""store.session(...): one session's calls, oldest first, paged by cursor, one semantics in
every store (the stores of the one semantics suite)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import T0, make_call

from .test_semantics import STORES, _examples, _keep, _run_in

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from asynctelemetry import LLMCall, SessionPage


@pytest.fixture(params=list(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open, empty store of each kind (the stores of the one semantics suite)."""
    async with STORES[request.param](tmp_path) as opened:
        yield opened


async def _all_pages(store: Any, session_id: str, limit: int) -> list[list[LLMCall]]:
    pages: list[list[LLMCall]] = []
    after = None
    while True:
        page: SessionPage = await store.session(session_id, limit=limit, after=after)
        pages.append(page.calls)
        if page.next is None:
            return pages
        after = page.next


async def test_a_session_reads_oldest_first_in_pages(store: Any) -> None:
    """session(): only that session's calls, by timestamp with ties in insertion order, in
    pages of ``limit`` that together hold each call once; ``next`` is None on the last page."""
    tie = T0 + timedelta(minutes=3)
    calls = [
        make_call(0, session_id="chat", timestamp=T0 + timedelta(minutes=9)),
        make_call(1, session_id="other"),
        *(make_call(10 + i, session_id="chat", timestamp=tie) for i in range(5)),
        make_call(2, session_id="chat", timestamp=T0),
        make_call(3, session_id="CHAT"),
        make_call(4, session_id=None),
    ]
    await _keep(store, calls)
    expected = [calls[7], *calls[2:7], calls[0]]
    whole = await store.session("chat")
    assert whole.calls == expected and whole.next is None and whole.session_id == "chat"
    for limit in (1, 2, 3, 4, 7):
        pages = await _all_pages(store, "chat", limit)
        assert [c for page in pages for c in page] == expected, limit
        assert all(len(page) == limit for page in pages[:-1])
    assert (await store.session("nope")).calls == []


async def test_new_calls_join_the_end_without_moving_a_page(store: Any) -> None:
    """A cursor taken before newer calls arrive continues where it was: the next page holds
    the calls not shown yet, then the new ones."""
    await _keep(store, [make_call(i, session_id="s") for i in range(5)])
    first = await store.session("s", limit=3)
    await _keep(store, [make_call(i, session_id="s") for i in range(5, 8)])
    second = await store.session("s", limit=10, after=first.next)
    assert [c.call_id for c in first.calls + second.calls] == [
        make_call(i).call_id for i in range(8)
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"session_id": 7}, "session_id must be a str", id="id-type"),
        pytest.param({"session_id": "s", "limit": 0}, "limit", id="limit-zero"),
        pytest.param({"session_id": "s", "limit": 1001}, "limit", id="limit-big"),
        pytest.param({"session_id": "s", "limit": True}, "limit", id="limit-bool"),
        pytest.param({"session_id": "s", "after": "x"}, "after must be", id="cursor-text"),
        pytest.param({"session_id": "s", "after": "1.99999999"}, "after must be", id="skip"),
        pytest.param({"session_id": "s", "after": "9" * 18 + ".0"}, "after must be", id="far"),
        pytest.param({"session_id": "s", "after": 5}, "after must be", id="cursor-type"),
    ],
)
async def test_bad_arguments_are_value_errors(
    store: Any, arguments: dict[str, Any], message: str
) -> None:
    """A wrong id type, a limit outside 1..1000 or a cursor no page gave is a ValueError."""
    options = dict(arguments)
    session_id = options.pop("session_id")
    with pytest.raises(ValueError, match=message):
        await store.session(session_id, **options)


def _reference(calls: Sequence[LLMCall], session_id: str) -> list[LLMCall]:
    return sorted((c for c in calls if c.session_id == session_id), key=lambda c: c.timestamp)


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    offsets=st.lists(st.integers(0, 4), min_size=0, max_size=30),
    sessions=st.lists(st.sampled_from(["a", "b"]), min_size=30, max_size=30),
    limit=st.integers(1, 6),
)
def test_pages_equal_the_reference_in_every_store(
    kind: str, offsets: list[int], sessions: list[str], limit: int
) -> None:
    """Any calls (many sharing a timestamp), any page size: the pages of a session, joined,
    are its calls in timestamp order with ties in insertion order, in every store."""
    calls = [
        make_call(i, session_id=sessions[i], timestamp=T0 + timedelta(microseconds=offset))
        for i, offset in enumerate(offsets)
    ]

    async def read(store: Any) -> list[list[LLMCall]]:
        return await _all_pages(store, "a", limit)

    pages = _run_in(kind, calls, read)
    assert [c for page in pages for c in page] == _reference(calls, "a")
