"""Steps beside calls, one semantics in every store: span ids unique, get_trace (tree and
totals), traces(...) (one row per trace, filters, order), retention and flush for steps."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asynctelemetry import LLMCall, MemoryStore, SQLiteStore, TraceSpan, replay
from asynctelemetry._stores import _traces
from asynctelemetry._stores._traces import TraceFilters, summarize_traces
from asynctelemetry._stores.postgres import store as _pg_store
from asynctelemetry._stores.sqlite import reads as _sqlite_reads
from asynctelemetry._stores.sqlite import store as _sqlite_store
from tests.conftest import make_call

from .test_semantics import STORES, _examples, _keep, _run_in

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
SEC = timedelta(seconds=1)


@pytest.fixture(params=list(STORES))
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open, empty store of each kind (the stores of the one semantics suite)."""
    async with STORES[request.param](tmp_path) as opened:
        yield opened


def step(i: int, trace: str = "t1", parent: str | None = None, **fields: Any) -> TraceSpan:
    values: dict[str, Any] = {
        "span_id": f"span-{i}",
        "trace_id": trace,
        "parent_span_id": parent,
        "name": f"step-{i}",
        "kind": "tool",
        "timestamp": T0 + timedelta(seconds=i),
        "duration_ms": 500.0,
    }
    values.update(fields)
    return TraceSpan.model_validate(values)


def agent_trace(trace: str = "t1", offset: int = 0) -> tuple[list[LLMCall], list[TraceSpan]]:
    """An agent (root) with two tools; a call under the agent and one under each tool."""
    base = T0 + timedelta(minutes=offset)
    root = step(
        0,
        trace,
        kind="agent",
        name="planner",
        agent_name="planner",
        timestamp=base,
        duration_ms=10_000.0,
        span_id=f"{trace}-root",
        user_id="ann",
        session_id="s1",
    )
    tools = [
        step(
            i,
            trace,
            parent=root.span_id,
            timestamp=base + timedelta(seconds=i),
            span_id=f"{trace}-tool{i}",
            tool_name="search",
            agent_name="planner",
            status="error" if i == 2 else "ok",
            error_type="LookupError" if i == 2 else None,
        )
        for i in (1, 2)
    ]
    calls = [
        make_call(50 + offset * 10 + i, trace_id=trace, span_id=f"{trace}-call{i}",
                  parent_span_id=parent, timestamp=base + timedelta(seconds=i, milliseconds=100),
                  duration_ms=200.0, agent_name="planner", cost_usd=0.25, input_tokens=100,
                  output_tokens=10, status="ok")
        for i, parent in enumerate([root.span_id, tools[0].span_id, tools[1].span_id])
    ]  # fmt: skip
    return calls, [root, *tools]


async def test_get_trace_gives_the_tree_with_totals(any_store: Any) -> None:
    """get_trace: calls and steps of one trace, the tree by parent ids in start order, totals;
    ``None`` for a trace the any_store does not hold; the same step twice is kept once."""
    calls, spans = agent_trace()
    other_calls, other_spans = agent_trace("t2", offset=5)
    await _keep(any_store, [*spans, *calls, *other_spans, *other_calls, spans[1]])
    assert any_store.duplicates == 1
    trace = await any_store.get_trace("t1")
    assert trace is not None
    assert trace.calls == sorted(calls, key=lambda c: c.timestamp)
    assert trace.spans == spans
    [root] = trace.tree()
    assert root.record == spans[0] and root.name == "planner"
    assert [n.record for n in root.children] == [calls[0], spans[1], spans[2]]
    assert [n.record for n in root.children[1].children] == [calls[1]]
    assert (trace.llm_calls, trace.errors, trace.cost_usd) == (3, 1, 0.75)
    assert (trace.input_tokens, trace.output_tokens) == (300, 30)
    assert trace.duration_ms == 10_000.0 and trace.status == "error"
    assert await any_store.get_trace("nope") is None


async def test_traces_lists_one_row_per_trace_with_filters(any_store: Any) -> None:
    """traces(): newest first by start, totals per trace; filters by session, user, agent,
    status and start window; a call alone in its trace is a trace too."""
    a_calls, a_spans = agent_trace("ta", offset=0)
    b_calls, b_spans = agent_trace("tb", offset=10)
    lone = make_call(6, trace_id="tc", span_id="tc-1", timestamp=T0 + timedelta(minutes=20),
                     user_id="bob", status="ok", cost_usd=None)  # fmt: skip
    await _keep(any_store, [*a_spans, *a_calls, *b_spans, *b_calls, lone])
    rows = await any_store.traces()
    assert [r.trace_id for r in rows] == ["tc", "tb", "ta"]
    ta = rows[2]
    assert (ta.root_name, ta.llm_calls, ta.spans, ta.errors, ta.status) == (
        "planner", 3, 3, 1, "error")  # fmt: skip
    assert (ta.cost_usd, ta.duration_ms, ta.user_id, ta.session_id) == (0.75, 10_000.0, "ann", "s1")
    assert (rows[0].root_name, rows[0].cost_usd, rows[0].spans) == ("chat gpt-4o", None, 0)
    assert [r.trace_id for r in await any_store.traces(newest_first=False, limit=2)] == ["ta", "tb"]
    assert [r.trace_id for r in await any_store.traces(user_id="bob")] == ["tc"]
    assert [r.trace_id for r in await any_store.traces(agent="planner")] == ["tb", "ta"]
    assert [r.trace_id for r in await any_store.traces(status="ok")] == ["tc"]
    assert [r.trace_id for r in await any_store.traces(session_id="s1", limit=1)] == ["tb"]
    window = {"since": T0 + timedelta(minutes=5), "until": T0 + timedelta(minutes=15)}
    assert [r.trace_id for r in await any_store.traces(**window)] == ["tb"]
    with pytest.raises(ValueError, match="limit"):
        await any_store.traces(limit=5000)
    with pytest.raises(ValueError, match="status"):
        await any_store.traces(status="broken")


_records = st.lists(
    st.tuples(
        st.booleans(),  # a step (else a call)
        st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6"]),
        st.integers(0, 3600) | st.integers(0, 3),  # start, in seconds (ties too)
        st.sampled_from(["ok", "error", "cancelled"]),
        st.sampled_from(["u1", "u2", None]),
        st.sampled_from(["s1", None]),
        st.sampled_from(["planner", None]),
        st.none() | st.floats(0, 1e6, allow_nan=False),
    ),
    max_size=25,
)


def _drawn(drawn: list[tuple[Any, ...]]) -> tuple[list[LLMCall], list[TraceSpan]]:
    calls, spans = [], []
    for i, (is_step, trace, start, status, user, session, agent, duration) in enumerate(drawn):
        when = T0 + timedelta(seconds=start)
        common = {
            "status": status,
            "user_id": user,
            "session_id": session,
            "agent_name": agent,
            "duration_ms": duration,
        }
        if is_step:
            spans.append(step(i, trace, timestamp=when, **common))
        else:
            calls.append(make_call(i, trace_id=trace, span_id=f"c{i}", timestamp=when, **common))
    return calls, spans


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    drawn=_records,
    status=st.sampled_from([None, "ok", "error", "cancelled"]),
    user=st.sampled_from([None, "u1"]),
    agent=st.sampled_from([None, "planner"]),
    session=st.sampled_from([None, "s1"]),
    since=st.none() | st.integers(0, 3600),
    until=st.none() | st.integers(0, 3600),
    newest_first=st.booleans(),
    limit=st.integers(0, 5),
    walk=st.sampled_from([1, 2, 64]),
)
def test_traces_equal_the_reference(
    kind: str,
    drawn: list[tuple[Any, ...]],
    status: Any,
    user: str | None,
    agent: str | None,
    session: str | None,
    since: int | None,
    until: int | None,
    newest_first: bool,
    limit: int,
    walk: int,
) -> None:
    """Any calls and steps, any filters: every store's rows equal the reference rules, however
    few records each walk of a SQL store reads at a time (``walk``: its first walk's size)."""
    calls, spans = _drawn(drawn)
    start = None if since is None else T0 + timedelta(seconds=since)
    end = None if until is None else T0 + timedelta(seconds=until)
    asked = {"status": status, "user_id": user, "agent": agent, "session_id": session}
    asked |= {"since": start, "until": end}

    async def read(store: Any) -> Any:
        return await store.traces(**asked, newest_first=newest_first, limit=limit)

    filters = TraceFilters(**asked)
    expected = summarize_traces(calls, spans, filters, limit, newest_first)
    with (
        mock.patch.object(_traces, "_FIRST_WALK", walk),
        mock.patch.object(_traces, "_WALK_PER_ROW", 1),
    ):
        found = _run_in(kind, [*calls, *spans], read)  # type: ignore[list-item]
    assert found == expected


async def test_steps_survive_reopening_a_sqlite_file(tmp_path: Path) -> None:
    """Flushed steps are durable: a new store on the same file reads them back equal."""
    calls, spans = agent_trace()
    async with SQLiteStore(tmp_path / "t.db") as store:
        await store.add_many([*spans, *calls])
        await store.flush()
    async with SQLiteStore(tmp_path / "t.db") as store:
        trace = await store.get_trace("t1")
        assert trace is not None and trace.spans == spans


async def test_retention_covers_steps(tmp_path: Path) -> None:
    """max_age deletes old steps as it deletes old calls; max_rows keeps the newest steps."""
    now = datetime.now(UTC)
    old = step(1, timestamp=now - timedelta(days=3))
    new = [step(i, timestamp=now - timedelta(seconds=i)) for i in (2, 3, 4)]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "r.db"
        async with SQLiteStore(path, max_age="1d", max_rows=2) as store:
            await store.add_many([old, *new])
            await store.flush()
            await store.enforce_retention()
            trace = await store.get_trace("t1")
            assert trace is not None
            assert [s.span_id for s in trace.spans] == ["span-3", "span-2"]


async def test_a_page_waits_for_traces_not_met_yet(any_store: Any) -> None:
    """A trace's newest record says little of its start: the page is the traces that started
    last, however their records interleave (each SQL walk reading one record at a time)."""
    at = [T0 + timedelta(seconds=s) for s in range(101)]
    await any_store.add_many(
        [
            step(0, "A", timestamp=at[0], span_id="a-root"),  # A started first...
            make_call(1, trace_id="A", span_id="a-call", timestamp=at[100]),  # ...ends last
            step(2, "B", timestamp=at[80]),
            step(3, "C", timestamp=at[90]),
            make_call(4, trace_id="D", span_id="d-call", timestamp=at[95]),
            step(5, "E", timestamp=at[95], user_id="u1"),  # E and D start together
            make_call(6, trace_id="E", span_id="e-call", timestamp=at[96], status="error"),
        ]
    )
    await any_store.flush()
    with (
        mock.patch.object(_traces, "_FIRST_WALK", 1),
        mock.patch.object(_traces, "_WALK_PER_ROW", 1),
    ):
        newest = [r.trace_id for r in await any_store.traces(limit=3)]
        oldest = [r.trace_id for r in await any_store.traces(limit=2, newest_first=False)]
        errors = [r.trace_id for r in await any_store.traces(status="error", limit=1)]
        ok = [r.trace_id for r in await any_store.traces(status="ok", limit=2)]
        before = await any_store.traces(until=at[95], limit=1)
    assert newest == ["D", "E", "C"]  # equal starts: by trace id
    assert oldest == ["A", "B"]
    assert errors == ["E"]
    assert ok == ["D", "C"]
    assert [r.trace_id for r in before] == ["C"]


@pytest.mark.parametrize(("kind", "driver"), [("sqlite", _sqlite_reads), ("postgres", _pg_store)])
async def test_oldest_first_follows_a_rare_filter(kind: str, driver: Any, tmp_path: Path) -> None:
    """Oldest first with a session filter reads about that session's records, not every record
    before the page's starts (its trace begins with a step of no session, in the middle)."""
    busy = [
        make_call(
            i, trace_id=f"busy-{i // 4}", span_id=f"b{i}", session_id=None, timestamp=T0 + i * SEC
        )
        for i in range(2000)
    ]
    rare = [
        step(0, "rare", timestamp=T0 + 1000 * SEC),
        make_call(
            9000, trace_id="rare", span_id="r1", session_id="s-rare", timestamp=T0 + 1500 * SEC
        ),
    ]
    read: list[int] = []

    def counted(*args: Any) -> Generator[Any, Any, list[str]]:
        walk = _traces.walk_traces(*args)
        try:
            request = next(walk)
            while True:
                answer = yield request
                if isinstance(request, list):
                    read.extend(len(rows) for rows in answer)
                request = walk.send(answer)
        except StopIteration as done:
            ids: list[str] = done.value
            return ids

    async with STORES[kind](tmp_path) as store:
        await store.add_many([*busy, *rare])
        await store.flush()
        with mock.patch.object(driver, "walk_traces", counted):
            rows = await store.traces(session_id="s-rare", newest_first=False, limit=1)
    assert [r.trace_id for r in rows] == ["rare"]
    assert rows[0].started == T0 + 1000 * SEC
    assert sum(read) < 200  # a walk of every record before the rare trace reads over 1,000


async def test_replay_carries_the_steps(any_store: Any, tmp_path: Path) -> None:
    """replay(source, into=...) copies a trace whole (its steps beside its calls, in start
    order, steps paged like calls); a second replay adds nothing (span and call ids); with a
    model asked, calls only; the filters a step can pass apply to steps."""
    calls, spans = agent_trace("ta")
    other_calls, other_spans = agent_trace("tb", offset=10)
    await any_store.add_many([*spans, *calls, *other_spans, *other_calls])
    await any_store.flush()
    with (
        mock.patch.object(_sqlite_store, "REPLAY_PAGE", 2),
        mock.patch.object(_pg_store, "PAGE", 2),
    ):
        async with SQLiteStore(tmp_path / "copy.db") as target:
            assert await replay(any_store, target) == 12
            assert await replay(any_store, target) == 12
            await target.flush()
            copied = await target.get_trace("ta")
            original = await any_store.get_trace("ta")
            assert copied is not None and original is not None
            assert [s.model_copy(update={"source": "collector"}) for s in copied.spans] == [
                s.model_copy(update={"source": "collector"}) for s in original.spans
            ]
            assert {s.source for s in copied.spans} == {"replay"}
            assert copied.status == original.status and copied.cost_usd == original.cost_usd
            assert [n.name for n in copied.tree()] == ["planner"]
            assert target.duplicates == 12
        into = MemoryStore()
        model = calls[0].model
        asked = [c for c in [*calls, *other_calls] if model in (c.model, c.request_model)]
        assert await replay(any_store, into, model=model) == len(asked)
        assert into.spans_snapshot() == []
        into = MemoryStore()
        window = T0 + timedelta(minutes=5)
        assert await replay(any_store, into, since=window, status="error") == 1
        assert [s.span_id for s in into.spans_snapshot()] == ["tb-tool2"]
