"""One store semantics, one suite: every store runs these tests (``STORES`` lists them).

A new store adds one entry to ``STORES``: an async context manager that yields an open, empty
store under a fresh directory. Every test then holds it to the same behaviour: ``call_id``
unique with ``duplicates`` counted, ``model=`` matching ``model`` or ``request_model``, ordering,
summaries and time series equal to the reference functions of ``_stores._base`` (so equal across
stores), replay oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynctelemetry import (
    CallStore,
    LLMCall,
    MemoryStore,
    PostgresStore,
    PriceTable,
    SQLiteStore,
    TimeBucket,
)
from asynctelemetry._stores import _base, _pages, summarize, timeseries
from asynctelemetry._stores._errors import error_groups
from tests.conftest import T0, make_call, varied_text
from tests.pg import emptied_schema_dsn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@contextlib.asynccontextmanager
async def _memory(directory: Path) -> AsyncIterator[Any]:
    async with MemoryStore(capacity=10_000) as store:
        yield store


@contextlib.asynccontextmanager
async def _sqlite(directory: Path) -> AsyncIterator[Any]:
    async with SQLiteStore(directory / "calls.db", flush_interval=0.01) as store:
        yield store


@contextlib.asynccontextmanager
async def _postgres(directory: Path) -> AsyncIterator[Any]:
    dsn = await emptied_schema_dsn()  # one schema per process, emptied: cheap per example
    async with PostgresStore(dsn, flush_interval=0.01, pool_size=1, partitions_ahead=0) as store:
        yield store


#: Every store the suite covers: name → factory(directory) of an open, empty store.
STORES: dict[str, Callable[[Path], contextlib.AbstractAsyncContextManager[Any]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=list(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open, empty store of each kind."""
    async with STORES[request.param](tmp_path) as opened:
        yield opened


async def _keep(store: Any, calls: list[LLMCall]) -> None:
    await store.add_many(calls)
    await store.flush()


# -- call_id is unique ------------------------------------------------------------------------
async def test_store_is_a_call_store(store: Any) -> None:
    """Every store implements the protocol, timeseries included."""
    assert isinstance(store, CallStore)


async def test_same_call_twice_is_kept_once_and_counted(store: Any) -> None:
    """A call delivered again (a retrying exporter, a replay run twice) is kept once: the first
    copy stays, the others count in ``duplicates``, so no total doubles."""
    calls = [make_call(i) for i in range(10)]
    await _keep(store, calls)
    again = [make_call(i, cost_usd=9.0, model="other") for i in range(3)]
    await _keep(store, again)
    await store.add(make_call(5))
    await store.flush()
    assert store.duplicates == 4
    assert await store.count() == 10
    assert await store.query() == calls  # the first copies, unchanged
    assert await store.summary() == summarize(calls)


async def test_duplicates_within_one_batch(store: Any) -> None:
    """Two copies in the same batch: the first is kept."""
    first, second = make_call(1), make_call(1, model="later")
    await _keep(store, [first, make_call(2), second])
    assert store.duplicates == 1
    assert await store.query() == [first, make_call(2)]


# -- a bad call is refused alone --------------------------------------------------------------
_EARLY = datetime(1600, 1, 1, tzinfo=UTC)
_LATE = datetime(2300, 1, 1, tzinfo=UTC)
_BAD_CALLS: dict[str, dict[str, Any]] = {
    "long session id": {"session_id": varied_text(3000)},
    "long trace id": {"trace_id": varied_text(3000)},
    "before 1677": {"timestamp": _EARLY},
    "after 2262": {"timestamp": _LATE},
    "datetime.min": {"timestamp": datetime.min.replace(tzinfo=UTC)},
}


@pytest.mark.parametrize("bad", list(_BAD_CALLS))
async def test_a_bad_call_is_rejected_alone(
    store: Any, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A call no store can hold faithfully (a time outside 1677-09-22 .. 2262-04-11, a key
    too long for an index entry) is refused at the store's door: counted in ``rejected``,
    logged with its id; its neighbours in the same batch are kept (#23: PostgreSQL lost the
    whole batch, or retried it for ever)."""
    calls = [make_call(0), make_call(1, **_BAD_CALLS[bad]), make_call(2)]
    async with asyncio.timeout(30):
        await _keep(store, calls)
        assert store.rejected == 1
        assert store.stats.rejected == 1
        assert await store.query() == [calls[0], calls[2]]
        assert await store.summary() == summarize([calls[0], calls[2]])
    assert any(
        "call-000001" in r.getMessage() and "rejected" in r.getMessage() for r in caplog.records
    )


# -- lookups by id ----------------------------------------------------------------------------
async def test_get_finds_a_call_by_its_id(store: Any) -> None:
    """get(call_id) returns the stored call, field by field (the first copy of a duplicate),
    and None for an id never stored."""
    calls = [make_call(i, attributes={"k": i}) for i in range(30)]
    await _keep(store, calls)
    await _keep(store, [make_call(7, model="later copy")])
    for call in (calls[0], calls[7], calls[29]):
        assert await store.get(call.call_id) == call
    assert await store.get("no-such-call") is None
    assert await store.get("") is None
    with pytest.raises(ValueError, match="call_id must be a str"):
        await store.get(7)


async def test_trace_lists_its_calls_oldest_first(store: Any) -> None:
    """trace(trace_id) returns every call of that trace and no other, oldest first with ties in
    insertion order, at most ``limit`` (the oldest); an unknown trace is an empty list."""
    tie = T0 + timedelta(minutes=5)
    calls = [
        make_call(0, trace_id="t-a", timestamp=T0 + timedelta(minutes=9)),
        make_call(1, trace_id="t-b"),
        make_call(2, trace_id="t-a", timestamp=tie),
        make_call(3),
        make_call(4, trace_id="t-a", timestamp=tie),
        make_call(5, trace_id="t-a", timestamp=T0),
        make_call(6, trace_id="T-A"),
    ]
    await _keep(store, calls)
    expected = [calls[5], calls[2], calls[4], calls[0]]
    assert await store.trace("t-a") == expected
    assert await store.trace("t-a", limit=2) == expected[:2]
    assert await store.trace("t-a", limit=0) == []
    assert await store.trace("t-b") == [calls[1]]
    assert await store.trace("nope") == []
    with pytest.raises(ValueError, match="trace_id must be a str"):
        await store.trace(None)
    with pytest.raises(ValueError, match="limit"):
        await store.trace("t-a", limit=-1)


async def test_lookups_follow_repricing(store: Any) -> None:
    """A repriced call is found by get and trace with its new cost."""
    calls = [make_call(i, model="gpt-4o", request_model=None, trace_id="t") for i in range(3)]
    await _keep(store, calls)
    table = PriceTable.default().with_overrides(
        {"gpt-4o": {"input_per_million": 10, "output_per_million": 40}}
    )
    assert await store.reprice(table) == 3
    new = [
        c.model_copy(update={"cost_usd": table.cost(c), "price_version": table.version})
        for c in calls
    ]
    assert await store.get(calls[1].call_id) == new[1]
    assert await store.trace("t") == new


# -- filters ----------------------------------------------------------------------------------
def _model_calls() -> list[LLMCall]:
    return [
        # answered by a dated snapshot of the model asked for
        make_call(0, model="gpt-4o-mini-2024-07-18", request_model="gpt-4o-mini"),
        # failed before any response: only the requested name is known
        make_call(1, model="gpt-4o-mini", request_model="gpt-4o-mini", status="error"),
        # no request model (e.g. a span that only names the response model)
        make_call(2, model="gpt-4o-mini", request_model=None),
        make_call(3, model="gpt-4o", request_model="gpt-4o"),
        make_call(4, model="gpt-4o-2024-08-06", request_model="gpt-4o"),
    ]


async def test_model_filter_matches_model_or_request_model(store: Any) -> None:
    """``model=`` finds the calls answered by that model and those that asked for it."""
    calls = _model_calls()
    await _keep(store, calls)
    assert await store.query(model="gpt-4o-mini") == calls[:3]
    assert await store.count(model="gpt-4o-mini") == 3
    assert await store.query(model="gpt-4o-mini-2024-07-18") == calls[:1]
    assert await store.count(model="gpt-4o") == 2
    assert await store.query(model="gpt-4o", status="error") == []
    assert [c async for c in store.replay(model="gpt-4o-mini")] == calls[:3]
    rows = await store.summary(model="gpt-4o-mini", by="request_model")
    assert {(r.key, r.calls, r.errors) for r in rows} == {("gpt-4o-mini", 3, 1)}


async def test_summary_by_request_model_puts_errors_on_their_model(store: Any) -> None:
    """Grouped by the requested model, a failed call sits on its model's row, and a call
    without a request model sits on its model's row: no "(none)" row, in summaries and time
    series alike, from the raw rows and from the rollups."""
    calls = _model_calls()
    await _keep(store, calls)
    rows = {r.key: r for r in await store.summary(by="request_model")}
    assert set(rows) == {"gpt-4o-mini", "gpt-4o"}
    assert (rows["gpt-4o-mini"].calls, rows["gpt-4o-mini"].errors) == (3, 1)
    assert rows["gpt-4o"].calls == 2
    assert await store.summary(by="request_model") == summarize(calls, "request_model")
    series = await store.timeseries(bucket="1d", by="request_model")
    assert {(b.key, b.calls) for b in series} == {("gpt-4o-mini", 3), ("gpt-4o", 2)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "EXACT_LIMIT", 3)  # SQLite and PostgreSQL read their rollups
        rolled = {r.key: (r.calls, r.errors) for r in await store.summary(by="request_model")}
        assert rolled == {"gpt-4o-mini": (3, 1), "gpt-4o": (2, 0)}
        series = await store.timeseries(bucket="1d", by="request_model")
        assert {(b.key, b.calls) for b in series} == {("gpt-4o-mini", 3), ("gpt-4o", 2)}


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param({}, id="none"),
        pytest.param({"since": T0 + timedelta(seconds=5)}, id="since"),
        pytest.param({"until": T0 + timedelta(seconds=5)}, id="until"),
        pytest.param({"provider": "anthropic"}, id="provider"),
        pytest.param({"session_id": "s1", "status": "ok"}, id="session+status"),
        pytest.param({"model": "gemini-2.5-flash"}, id="model"),
    ],
)
async def test_filters_and_ordering(store: Any, filters: dict[str, Any]) -> None:
    """Filters select the same calls in every store, oldest first; ties in insertion order."""
    calls = [make_call(i, timestamp=T0 + timedelta(seconds=i // 3)) for i in range(30)]
    await _keep(store, calls)
    wanted = [c for c in calls if _passes(c, filters)]
    assert await store.query(**filters) == wanted
    newest = sorted(wanted, key=lambda c: c.timestamp, reverse=True)
    assert await store.query(**filters, newest_first=True, limit=4) == newest[:4]
    assert await store.count(**filters) == len(wanted)
    assert [c async for c in store.replay(**filters)] == wanted


def _passes(call: LLMCall, filters: dict[str, Any]) -> bool:
    for name, value in filters.items():
        if name == "since" and call.timestamp < value:
            return False
        if name == "until" and call.timestamp >= value:
            return False
        if name == "model" and value not in (call.model, call.request_model):
            return False
        if name in ("provider", "session_id", "status") and getattr(call, name) != value:
            return False
    return True


# -- time series ------------------------------------------------------------------------------
async def test_timeseries_against_a_hand_computed_expectation(store: Any) -> None:
    """Five calls in 1-minute buckets, by model, worked out by hand."""
    t = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    calls = [
        make_call(0, timestamp=t + timedelta(seconds=59), model="a", duration_ms=300.0,
                  ttft_ms=None, input_tokens=10, output_tokens=1, cost_usd=0.5),
        make_call(1, timestamp=t + timedelta(seconds=1), model="a", duration_ms=100.0,
                  ttft_ms=20.0, input_tokens=5, output_tokens=2, cost_usd=None, status="error"),
        make_call(2, timestamp=t + timedelta(seconds=30), model="b", duration_ms=None,
                  ttft_ms=None, input_tokens=None, output_tokens=None, cost_usd=0.25),
        make_call(3, timestamp=t + timedelta(minutes=1), model="a", duration_ms=200.0,
                  ttft_ms=40.0, input_tokens=1, output_tokens=1, cost_usd=0.125,
                  cached_input_tokens=1),
        make_call(4, timestamp=t + timedelta(minutes=3, seconds=5), model="a",
                  duration_ms=50.0, ttft_ms=5.0, input_tokens=0, output_tokens=0, cost_usd=0.0),
    ]  # fmt: skip
    await _keep(store, calls)
    m = timedelta(minutes=1)

    def row(start: datetime, key: str | None, **values: Any) -> TimeBucket:
        defaults = dict.fromkeys(("errors", "input_tokens", "output_tokens"), 0)
        return TimeBucket(
            start=start, key=key, cached_input_tokens=values.pop("cached", 0), **defaults | values
        )

    expected = [
        row(t, "a", calls=2, errors=1, input_tokens=15, output_tokens=3, cost_usd=0.5,
            p50_latency_ms=100.0, p95_latency_ms=300.0, p50_ttft_ms=20.0),
        row(t, "b", calls=1, cost_usd=0.25, p50_latency_ms=None, p95_latency_ms=None,
            p50_ttft_ms=None),
        row(t + m, "a", calls=1, input_tokens=1, output_tokens=1, cached=1, cost_usd=0.125,
            p50_latency_ms=200.0, p95_latency_ms=200.0, p50_ttft_ms=40.0),
        row(t + 3 * m, "a", calls=1, cost_usd=0.0, p50_latency_ms=50.0, p95_latency_ms=50.0,
            p50_ttft_ms=5.0),
    ]  # fmt: skip
    assert await store.timeseries(bucket="1m", by="model") == expected
    assert await store.timeseries(bucket=timedelta(seconds=60), by="model") == expected
    whole = await store.timeseries(bucket="1h")
    assert len(whole) == 1
    assert (whole[0].start, whole[0].key, whole[0].calls, whole[0].errors) == (t, None, 5, 1)
    assert (whole[0].p50_latency_ms, whole[0].p95_latency_ms) == (100.0, 300.0)
    assert whole[0].start.tzinfo is not None and whole[0].start.utcoffset() == timedelta(0)
    assert await store.timeseries(bucket="1m", by="model", model="b") == [expected[1]]
    assert await store.timeseries(since=t + m, until=t + 2 * m, by="model") == [expected[2]]


async def test_timeseries_buckets_are_aligned_to_the_epoch(store: Any) -> None:
    """A 5-minute bucket starts at :00, :05, …; a 1-day bucket at midnight UTC; a 7-second
    bucket at a multiple of 7 s since 1970-01-01 UTC (also for calls before 1970)."""
    moments = [
        datetime(2026, 5, 1, 12, 7, 31, 5, tzinfo=UTC),
        datetime(2026, 5, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 58, tzinfo=UTC),
    ]
    await _keep(store, [make_call(i, timestamp=m) for i, m in enumerate(moments)])
    starts = [b.start for b in await store.timeseries(bucket="5m")]
    assert starts == [
        datetime(1969, 12, 31, 23, 55, tzinfo=UTC),
        datetime(2026, 5, 1, 12, 5, tzinfo=UTC),
        datetime(2026, 5, 1, 23, 55, tzinfo=UTC),
    ]
    days = [b.start for b in await store.timeseries(bucket="1d")]
    assert days == [datetime(1969, 12, 31, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for b in await store.timeseries(bucket=timedelta(seconds=7)):
        assert (b.start - epoch) % timedelta(seconds=7) == timedelta(0)


@pytest.mark.parametrize(
    "bucket",
    ["", "1", "5x", "m", "-1m", "0s", "1.5m", "1w", 60, None, timedelta(0), timedelta(seconds=-1)],
)
async def test_timeseries_refuses_a_bad_bucket(store: Any, bucket: Any) -> None:
    """A bucket that is not a positive timedelta or '<n>s|m|h|d' is a clear ValueError."""
    with pytest.raises(ValueError, match="bucket must be"):
        await store.timeseries(bucket=bucket)


async def test_timeseries_refuses_a_bad_group(store: Any) -> None:
    """``by=`` must name a group."""
    with pytest.raises(ValueError, match="by must be one of"):
        await store.timeseries(by="colour")  # type: ignore[arg-type]


# -- reference functions and properties -------------------------------------------------------
def _hand_timeseries(calls: list[LLMCall], width: timedelta, field: str | None) -> list[Any]:
    """An independent reading of the time series rule (not the code under test)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    cells: dict[tuple[datetime, str | None], list[LLMCall]] = {}
    for c in calls:
        start = epoch + ((c.timestamp - epoch) // width) * width
        key = getattr(c, field) if field else None
        if field == "request_model" and key is None:
            key = c.model  # the requested model, falling back to the model that answered
        cells.setdefault((start, key), []).append(c)

    def rank(values: list[float], p: int) -> float | None:
        values = sorted(values)
        return values[math.ceil(p * len(values) / 100) - 1] if values else None

    out = []
    for start, key in sorted(cells, key=lambda k: (k[0], k[1] is not None, k[1] or "")):
        group = cells[start, key]
        lat = [c.duration_ms for c in group if c.duration_ms is not None]
        out.append((
            start, key, len(group), sum(c.status == "error" for c in group),
            sum(c.input_tokens or 0 for c in group), sum(c.output_tokens or 0 for c in group),
            sum(c.cached_input_tokens or 0 for c in group),
            math.fsum(c.cost_usd for c in group if c.cost_usd is not None),
            rank(lat, 50), rank(lat, 95),
            rank([c.ttft_ms for c in group if c.ttft_ms is not None], 50),
        ))  # fmt: skip
    return out


_DAY = datetime(2026, 5, 1, tzinfo=UTC)
_MESSAGE_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
_calls = st.lists(
    st.builds(
        dict,
        offset=st.integers(0, 3 * 3600 * 1_000_000),
        model=st.sampled_from(["a", "b", "c-2024"]),
        request_model=st.sampled_from(["a", "c", None]),
        provider=st.sampled_from(["x", "y", None]),
        status=st.sampled_from(["ok", "error", "cancelled"]),
        duration_ms=st.none() | st.floats(0, 1e5, allow_nan=False),
        ttft_ms=st.none() | st.floats(0, 1e4, allow_nan=False),
        input_tokens=st.none() | st.integers(0, 10**6),
        cost_usd=st.none() | st.floats(0, 10, allow_nan=False),
        user_id=st.sampled_from(["u1", "u2", None]),
        agent_name=st.sampled_from(["planner", "writer", None]),
        tags=st.lists(st.sampled_from(["beta", "gold", "é"]), max_size=3).map(tuple),
        # PostgreSQL text cannot hold NUL: such a call is a counted rejection there; a lone
        # surrogate is no text at all (LLMCall refuses it), so neither is drawn.
        error_message=st.none() | st.text(_MESSAGE_CHARS, max_size=20),
    ),
    max_size=60,
)


def _built(drawn: list[dict[str, Any]]) -> list[LLMCall]:
    return [
        make_call(i, timestamp=_DAY + timedelta(microseconds=d.pop("offset")), **d)
        for i, d in enumerate(drawn)
    ]


def _run_in(kind: str, calls: list[LLMCall], read: Callable[[Any], Any]) -> Any:
    async def main() -> Any:
        with tempfile.TemporaryDirectory() as directory:
            async with STORES[kind](Path(directory)) as store:
                await _keep(store, calls)
                return await read(store)

    return asyncio.run(main())


_examples = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", list(STORES))
@pytest.mark.parametrize("by", [None, "model", "request_model", "provider"])
@_examples
@given(drawn=_calls, bucket=st.sampled_from(["10s", "1m", "5m", "1h", timedelta(seconds=450)]))
def test_timeseries_equals_the_rule(
    kind: str, by: str | None, drawn: list[dict[str, Any]], bucket: Any
) -> None:
    """Any calls, any bucket: every store's rows equal an independent reading of the rule."""
    calls = _built(drawn)

    async def read(store: Any) -> list[TimeBucket]:
        rows: list[TimeBucket] = await store.timeseries(bucket=bucket, by=by)
        return rows

    rows = _run_in(kind, calls, read)
    width = (
        bucket
        if isinstance(bucket, timedelta)
        else timedelta(seconds={"10s": 10, "1m": 60, "5m": 300, "1h": 3600}[bucket])
    )
    field = {"model": "model", "request_model": "request_model", "provider": "provider"}.get(
        by or ""
    )
    assert [tuple(r.model_dump().values()) for r in rows] == _hand_timeseries(calls, width, field)
    assert rows == timeseries(calls, bucket, by)


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    drawn=_calls,
    by=st.sampled_from(["model", "request_model", "provider", "session", "agent", "user", "tag"]),
)
def test_summary_and_replay_equal_the_reference(
    kind: str, drawn: list[dict[str, Any]], by: str
) -> None:
    """Any calls: summaries equal ``summarize`` of the calls, and replay gives them back oldest
    first; the same in every store, so every store agrees with every other."""
    calls = _built(drawn)

    async def read(store: Any) -> tuple[Any, ...]:
        return (
            await store.summary(by=by),
            await store.summary(by=by, model="a"),
            [c async for c in store.replay()],
        )

    summary, filtered, replayed = _run_in(kind, calls, read)
    assert summary == summarize(calls, by)
    assert filtered == summarize([c for c in calls if "a" in (c.model, c.request_model)], by)
    assert replayed == sorted(calls, key=lambda c: c.timestamp)


# -- large windows: approximate percentiles, the same in every store ---------------------------
@given(st.floats(0, 1e300, allow_nan=False), st.floats(0, 1e300, allow_nan=False))
def test_approximate_is_within_one_percent_and_monotone(a: float, b: float) -> None:
    """The representative of a value's log bucket is at most 1% from it, keeps order (so it
    commutes with ranking), and 0.0 stays 0.0."""
    for v in (a, b):
        approx = _base.approximate(v)
        assert approx is not None
        assert abs(approx - v) <= 0.01 * v
    if a <= b:
        assert _base.approximate(a) <= _base.approximate(b)  # type: ignore[operator]
    assert _base.approximate(0.0) == 0.0


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    drawn=_calls,
    by=st.sampled_from([None, "model", "request_model", "session"]),
    window=st.tuples(st.integers(0, 4 * 3600), st.integers(0, 4 * 3600)),
)
def test_large_windows_report_the_approximate_rule(
    kind: str, drawn: list[dict[str, Any]], by: str | None, window: tuple[int, int]
) -> None:
    """Past EXACT_LIMIT calls in the window, every store reports approximate(exact percentile)
    for summaries and time series alike (lowered to 3 calls here)."""
    calls = _built(drawn)
    # A window that starts and ends inside minutes: SQLite reads its edges from the rows.
    since = _DAY + timedelta(seconds=window[0], microseconds=1)
    until = since + timedelta(seconds=window[1])
    chosen = [c for c in calls if since <= c.timestamp < until]

    async def read(store: Any) -> tuple[Any, ...]:
        return (
            await store.summary(by=by or "model", since=since, until=until),
            await store.timeseries(bucket="5m", by=by, since=since, until=until),
        )

    exact = _run_in(kind, calls, read)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "EXACT_LIMIT", 3)
        summary, series = _run_in(kind, calls, read)
        assert summary == summarize(chosen, by or "model")
        assert series == timeseries(chosen, "5m", by)
    window_calls = len(chosen)
    fields = ("p50_latency_ms", "p95_latency_ms", "p50_ttft_ms")
    for rows, exact_rows in ((summary, exact[0]), (series, exact[1])):
        for row, exact_row in zip(rows, exact_rows, strict=True):
            for name in fields:
                value, true = getattr(row, name), getattr(exact_row, name)
                assert value == (true if window_calls <= 3 else _base.approximate(true))


@pytest.mark.parametrize(
    ("since", "until"),
    [
        pytest.param(None, None, id="everything"),
        pytest.param(
            timedelta(days=1, hours=3, minutes=7, seconds=5.5),
            timedelta(days=8, hours=2, minutes=1),
            id="days-hours-minutes-edges",
        ),
        pytest.param(timedelta(days=2), timedelta(days=9), id="whole-days"),
    ],
)
async def test_large_windows_over_days(
    store: Any, since: timedelta | None, until: timedelta | None
) -> None:
    """A window of many days past EXACT_LIMIT (SQLite reads whole days, then hours, 5 and 1
    minute periods, then the raw rows at its edges) gives the reference rows, for buckets of a
    day, of the whole window, and of hours."""
    calls = [
        make_call(
            i,
            timestamp=_DAY + timedelta(seconds=4001 * i + (i * i) % 997),
            route_name=f"r{i % 3}",
            request_model=("a", None)[i % 2],
        )
        for i in range(250)  # 11.6 days
    ]
    await _keep(store, calls)
    window = (
        {} if since is None or until is None else {"since": _DAY + since, "until": _DAY + until}
    )
    chosen = [c for c in calls if _passes(c, window)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "EXACT_LIMIT", 3)
        for by in ("model", "route", "request_model"):
            assert await store.summary(by=by, **window) == summarize(chosen, by)
        for bucket in ("1d", timedelta(days=36525), "2h", "1h"):
            for by in (None, "provider"):
                got = await store.timeseries(bucket=bucket, by=by, **window)
                assert got == timeseries(chosen, bucket, by), (bucket, by)


# -- repricing ---------------------------------------------------------------------------------
async def test_reprice_writes_new_costs_and_summaries_follow(store: Any) -> None:
    """reprice() keeps table.cost(call) with the table's version for the calls that pass the
    filters; calls the table cannot price keep their cost; summaries and series follow."""
    calls = [
        make_call(i, model=("gpt-4o", "no-such-model")[i % 2], request_model=None, cost_usd=0.5)
        for i in range(20)
    ]
    await _keep(store, calls)
    table = PriceTable.default().with_overrides(
        {"gpt-4o": {"input_per_million": 10, "output_per_million": 40}}
    )
    until = T0 + timedelta(seconds=10)
    assert await store.reprice(table, until=until) == 5
    expected = [
        c.model_copy(update={"cost_usd": table.cost(c), "price_version": table.version})
        if c.timestamp < until and table.cost(c) is not None
        else c
        for c in calls
    ]
    assert await store.query() == expected
    assert await store.summary() == summarize(expected)
    assert await store.timeseries(bucket="5s") == timeseries(expected, "5s")
    with pytest.MonkeyPatch.context() as patch:  # large windows: SQLite's rollups follow too
        patch.setattr(_base, "EXACT_LIMIT", 3)
        assert await store.summary() == summarize(expected)
        assert await store.timeseries(bucket="1m") == timeseries(expected, "1m")
    assert await store.reprice(table, until=until) == 0  # nothing left to change


# -- users, agents and tags -------------------------------------------------------------------
async def test_user_agent_tags_and_message_come_back_field_by_field(store: Any) -> None:
    """The fields of the second record's era are kept and read back in every store."""
    calls = [
        make_call(0, user_id="u-1", agent_name="planner", tags=("beta", "é✓"), status="error",
                  error_type="ValueError", error_message="bad ✓ input\nline 2"),
        make_call(1),  # none of them: None and ()
    ]  # fmt: skip
    await _keep(store, calls)
    assert await store.query() == calls
    assert [c async for c in store.replay()] == calls
    got = await store.get("call-000000")
    assert got is not None and got.tags == ("beta", "é✓") and got.user_id == "u-1"


async def test_summary_by_tag_counts_a_call_once_under_each_tag(store: Any) -> None:
    """A call with several tags is in each tag's row; one without tags in the ``None`` row."""
    calls = [
        make_call(0, tags=("a", "b"), cost_usd=1.0),
        make_call(1, tags=("b",), cost_usd=2.0),
        make_call(2, cost_usd=0.5),
    ]
    await _keep(store, calls)
    rows = {r.key: (r.calls, r.cost_usd) for r in await store.summary(by="tag")}
    assert rows == {"a": (1, 1.0), "b": (2, 3.0), None: (1, 0.5)}
    assert await store.summary(by="tag") == summarize(calls, "tag")


@pytest.mark.parametrize("by", ["agent", "user"])
async def test_summary_by_agent_and_user(store: Any, by: str) -> None:
    """``by="agent"``/``"user"`` group on ``agent_name``/``user_id``, unknown under ``None``."""
    calls = [
        make_call(i, agent_name=(None, "planner", "writer")[i % 3], user_id=f"u{i % 2}")
        for i in range(12)
    ]
    await _keep(store, calls)
    rows = await store.summary(by=by)
    assert rows == summarize(calls, by)
    assert {r.key for r in rows} == ({None, "planner", "writer"} if by == "agent" else {"u0", "u1"})


async def test_timeseries_cannot_group_by_tag(store: Any) -> None:
    """Time series group on one value per call: ``by="tag"`` is a clear ValueError."""
    with pytest.raises(ValueError, match="timeseries cannot group by 'tag'"):
        await store.timeseries(by="tag")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(STORES))
@pytest.mark.timeout(240)  # 25 examples of a store each: ~10 s alone, a minute on a busy machine
@_examples
@given(drawn=_calls, by=st.sampled_from(["agent", "user", "tag"]))
def test_large_windows_by_agent_user_and_tag_follow_the_rule(
    kind: str, drawn: list[dict[str, Any]], by: str
) -> None:
    """Groups the rollups do not keep (agent, user, tag) are read exactly from the rows and
    still report percentiles by the window's rule (the window counts each call once)."""
    calls = _built(drawn)

    async def read(store: Any) -> Any:
        return await store.summary(by=by)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "EXACT_LIMIT", 3)
        assert _run_in(kind, calls, read) == summarize(calls, by)


# -- rates --------------------------------------------------------------------------------------
async def test_rates_need_a_measurable_generating_time(store: Any) -> None:
    """A call that generated for less than MIN_GENERATING_MS has no tpt_ms / tokens_per_sec,
    and counts in no median speed: the same rule in the record, the raw rows and the rollups."""
    from asynctelemetry._record import MIN_GENERATING_MS

    short = make_call(0, duration_ms=0.5, ttft_ms=None, output_tokens=20, model="m")
    edge = make_call(1, duration_ms=60.0, ttft_ms=20.0, output_tokens=20, model="m")
    slow = make_call(2, duration_ms=1000.0, ttft_ms=100.0, output_tokens=90, model="m")
    assert MIN_GENERATING_MS == 50.0
    assert (short.tpt_ms, short.tokens_per_sec) == (None, None)
    assert edge.tokens_per_sec is None  # 40 ms of generating: too short
    assert slow.tokens_per_sec == pytest.approx(100.0)
    await _keep(store, [short, edge])
    [row] = await store.summary()
    assert row.median_tokens_per_sec is None
    await _keep(store, [slow])
    [row] = await store.summary()
    assert row.median_tokens_per_sec == pytest.approx(100.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_base, "EXACT_LIMIT", 1)  # the rollups
        [row] = await store.summary()
        assert row.median_tokens_per_sec == _base.approximate(slow.tokens_per_sec)


# -- top N ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    drawn=_calls,
    by=st.sampled_from(["model", "request_model", "provider", "session", "route"]),
    order_by=st.sampled_from(list(_base.ORDER_BY)),
    limit=st.integers(0, 4),
    large=st.booleans(),
)
def test_top_groups_equal_the_reference(
    kind: str, drawn: list[dict[str, Any]], by: str, order_by: str, limit: int, large: bool
) -> None:
    """summary(limit=, order_by=) gives the reference's top groups, largest first, in every
    store, from the raw rows and from the rollups (a large window), whole rows included."""
    calls = _built(drawn)

    async def read(store: Any) -> Any:
        return await store.summary(by=by, limit=limit, order_by=order_by)

    with pytest.MonkeyPatch.context() as patch:
        if large:
            patch.setattr(_base, "EXACT_LIMIT", 3)
        got = _run_in(kind, calls, read)
        assert got == summarize(calls, by, limit, order_by)
    assert len(got) == min(limit, len({_base.group_key(c, _base.group_field(by)) for c in calls}))


# -- top sessions ---------------------------------------------------------------------------------
_session_calls = st.lists(
    st.builds(
        dict,
        offset=st.integers(0, 3 * 86400 * 1_000_000),  # three days: days, hours and edges
        session_id=st.sampled_from(["s1", "s2", "s3", "", "é", None]),
        status=st.sampled_from(["ok", "error"]),
        cost_usd=st.none() | st.sampled_from([0.0, 0.1, 0.2, 1e-12, 3e-10, 2500.0]),
    ),
    max_size=40,
)


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    drawn=_session_calls,
    order_by=st.sampled_from(list(_base.ORDER_BY)),
    limit=st.integers(1, 3),
    window=st.tuples(st.integers(0, 3 * 86400), st.integers(0, 3 * 86400)),
    large=st.booleans(),
)
def test_top_sessions_of_a_window_equal_the_reference(
    kind: str,
    drawn: list[dict[str, Any]],
    order_by: str,
    limit: int,
    window: tuple[int, int],
    large: bool,
) -> None:
    """The top sessions of a window (whole days and hours from the stored session totals,
    partial hours from the rows) are the reference's: near-equal and equal costs, calls
    without a session, a session named '', calls of thousands of dollars."""
    calls = _built(drawn)
    since = _DAY + timedelta(seconds=window[0], microseconds=7)
    until = since + timedelta(seconds=window[1])
    chosen = [c for c in calls if since <= c.timestamp < until]

    async def read(store: Any) -> Any:
        return await store.summary(
            by="session", limit=limit, order_by=order_by, since=since, until=until
        )

    with pytest.MonkeyPatch.context() as patch:
        if large:
            patch.setattr(_base, "EXACT_LIMIT", 3)
        assert _run_in(kind, calls, read) == summarize(chosen, "session", limit, order_by)


async def test_top_sessions_follow_repricing(store: Any) -> None:
    """Repricing moves a session's cost in the session totals: the top follows."""
    calls = [
        make_call(
            i,
            session_id=f"s{i % 3}",
            model=("gpt-4o", "no-such-model", "no-such-model")[i % 3],
            request_model=None,
            cost_usd=0.5 if i % 3 == 0 else 0.01,
            timestamp=_DAY + timedelta(minutes=37 * i),
        )
        for i in range(60)
    ]
    await _keep(store, calls)
    since, until = _DAY + timedelta(minutes=50), _DAY + timedelta(days=1, minutes=7)
    window = {"since": since, "until": until}
    chosen = [c for c in calls if since <= c.timestamp < until]
    assert await store.summary(by="session", limit=1, **window) == summarize(chosen, "session", 1)
    table = PriceTable.default().with_overrides(
        {"gpt-4o": {"input_per_million": 0.001, "output_per_million": 0.001}}
    )
    assert await store.reprice(table) == 20
    expected = [
        c.model_copy(update={"cost_usd": table.cost(c), "price_version": table.version})
        if table.cost(c) is not None
        else c
        for c in chosen
    ]
    top = await store.summary(by="session", limit=1, **window)
    assert top == summarize(expected, "session", 1)
    assert top[0].key != "s0"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_top_sessions_follow_retention(kind: str, tmp_path: Path) -> None:
    """Retention takes calls out of the session totals: whole days (PostgreSQL drops a day's
    partition), then the oldest calls of a day, by max_age and max_rows; the top sessions of
    a window over what is left are the reference's."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=6)
    calls = [
        make_call(
            i,
            session_id=f"s{i % 5}" if i >= 25 else "gone",  # the costliest, all of it old
            cost_usd=0.001 * (i % 7) if i >= 25 else 5.0,
            timestamp=start + timedelta(minutes=97 * i),
        )
        for i in range(80)  # five days and a bit
    ]
    options: dict[str, Any] = {"max_age": "5d", "max_rows": 45, "retention_interval": 3600}
    if kind == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "calls.db", **options)
    else:
        dsn = await emptied_schema_dsn()
        opened = PostgresStore(dsn, partitions_ahead=0, **options)
    async with opened as store:
        await _keep(store, calls)
        assert await store.enforce_retention() > 0
        kept = await store.query()
        assert 0 < len(kept) <= 45 and "gone" not in {c.session_id for c in kept}
        since = start + timedelta(days=2, minutes=31)
        for window in ({}, {"since": since, "until": since + timedelta(days=3)}):
            chosen = [c for c in kept if _passes(c, window)]
            for order_by in ("cost", "calls"):
                got = await store.summary(by="session", limit=2, order_by=order_by, **window)
                assert got == summarize(chosen, "session", 2, order_by), (window, order_by)


async def test_top_refuses_a_bad_order(store: Any) -> None:
    """order_by names a known order; limit is None or an int >= 0."""
    with pytest.raises(ValueError, match="order_by must be one of"):
        await store.summary(order_by="colour")
    with pytest.raises(ValueError, match="limit"):
        await store.summary(limit=-1)


def test_top_orders() -> None:
    """Largest first by each order; ties by calls, then cost, then key."""
    calls = [
        make_call(0, model="a", cost_usd=1.0, status="ok", duration_ms=10.0),
        make_call(1, model="b", cost_usd=0.5, status="error", duration_ms=900.0),
        make_call(2, model="b", cost_usd=0.1, status="error", duration_ms=800.0),
        make_call(3, model="c", cost_usd=0.2, status="ok", duration_ms=None),
    ]
    keys = {
        order: [r.key for r in summarize(calls, "model", None, order)] for order in _base.ORDER_BY
    }
    assert keys == {
        "cost": ["a", "b", "c"],
        "calls": ["b", "a", "c"],
        "errors": ["b", "a", "c"],
        "p95_latency": ["b", "a", "c"],
    }
    assert [r.key for r in summarize(calls, "model", 1, "calls")] == ["b"]


# -- errors by type and message ---------------------------------------------------------------
_failures = st.lists(
    st.tuples(
        st.sampled_from(["RateLimitError", "APITimeoutError", None]),
        st.sampled_from(["slow down", "Slow down", "é", "", None]),
    ),
    max_size=60,
)


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(drawn=_calls, errors=_failures, limit=st.integers(0, 6), filtered=st.booleans())
def test_error_groups_equal_the_reference(
    kind: str,
    drawn: list[dict[str, Any]],
    errors: list[tuple[str | None, str | None]],
    limit: int,
    filtered: bool,
) -> None:
    """Any calls: error_groups(...) gives the reference's groups (type and message exactly,
    None its own value; counts, first and last seen, models asked for), most first, in every
    store; the filters narrow them as they narrow every read."""
    for d, (kind_, message) in zip(drawn, errors, strict=False):
        d["error_type"], d["error_message"] = kind_, message
    calls = _built(drawn)
    narrow: dict[str, Any] = {"model": "a", "provider": "x"} if filtered else {}

    async def read(store: Any) -> Any:
        return await store.error_groups(limit=limit, **narrow)

    got = _run_in(kind, calls, read)
    kept = [
        c
        for c in calls
        if not filtered or ("a" in (c.model, c.request_model) and c.provider == "x")
    ]
    assert got == error_groups(kept, limit)
    assert [(g.calls, g.models) for g in got] == [
        (
            sum(
                1
                for c in kept
                if c.status == "error"
                and (c.error_type, c.error_message) == (g.error_type, g.error_message)
            ),
            tuple(
                sorted(
                    {
                        c.request_model or c.model
                        for c in kept
                        if c.status == "error"
                        and (c.error_type, c.error_message) == (g.error_type, g.error_message)
                    }
                )
            ),
        )
        for g in got
    ]


async def test_error_groups_by_hand(store: Any) -> None:
    """Three failures of two kinds, an ok call and a cancelled one: two groups, the larger
    first, with their first and last timestamps and the models asked for; a window and a
    limit narrow them; a bad limit is a ValueError."""
    calls = [
        make_call(1, status="error", error_type="RateLimitError", error_message="slow down",
                  timestamp=T0, model="gpt-4o-2024", request_model="gpt-4o"),
        make_call(2, status="error", error_type="RateLimitError", error_message="slow down",
                  timestamp=T0 + timedelta(minutes=5), model="claude", request_model=None),
        make_call(3, status="error", error_type="APITimeoutError", error_message=None,
                  timestamp=T0 + timedelta(minutes=1)),
        make_call(4, status="ok", timestamp=T0 + timedelta(minutes=2)),
        make_call(5, status="cancelled", error_type="CancelledError",
                  timestamp=T0 + timedelta(minutes=3)),
    ]  # fmt: skip
    await _keep(store, calls)
    groups = await store.error_groups()
    assert [(g.error_type, g.error_message, g.calls) for g in groups] == [
        ("RateLimitError", "slow down", 2),
        ("APITimeoutError", None, 1),
    ]
    assert groups[0].first_seen == T0 and groups[0].last_seen == T0 + timedelta(minutes=5)
    assert groups[0].models == ("claude", "gpt-4o")
    later = await store.error_groups(since=T0 + timedelta(seconds=30))
    assert [(g.error_type, g.calls) for g in later] == [
        ("RateLimitError", 1),
        ("APITimeoutError", 1),
    ]
    assert len(await store.error_groups(limit=1)) == 1
    with pytest.raises(ValueError, match="limit"):
        await store.error_groups(limit=-1)


@pytest.mark.parametrize("kind", list(STORES))
@_examples
@given(
    drawn=_calls,
    errors=_failures,
    wanted=st.sampled_from(
        [
            ("RateLimitError", None),
            (None, "slow down"),
            ("RateLimitError", "slow down"),
            ("APITimeoutError", ""),
        ]
    ),
    large=st.booleans(),
)
def test_error_filters_narrow_every_read(
    kind: str,
    drawn: list[dict[str, Any]],
    errors: list[tuple[str | None, str | None]],
    wanted: tuple[str | None, str | None],
    large: bool,
) -> None:
    """error_type= and error_message= keep the calls with exactly that type and message in
    query, count, summary and timeseries of every store; a large window (rollups, which do not
    key on errors) gives the reference's rows too."""
    for d, (kind_, message) in zip(drawn, errors, strict=False):
        d["error_type"], d["error_message"] = kind_, message
    calls = _built(drawn)
    narrow = {
        k: v for k, v in zip(("error_type", "error_message"), wanted, strict=True) if v is not None
    }
    kept = [c for c in calls if all(getattr(c, k) == v for k, v in narrow.items())]

    async def read(store: Any) -> tuple[Any, ...]:
        return (
            await store.query(**narrow),
            await store.count(**narrow),
            await store.summary(by="request_model", **narrow),
            await store.timeseries(bucket="5m", by="model", **narrow),
            await store.error_groups(**narrow),
        )

    with pytest.MonkeyPatch.context() as patch:
        if large:
            patch.setattr(_base, "EXACT_LIMIT", 3)
        found, count, summary, series, groups = _run_in(kind, calls, read)
        assert found == sorted(kept, key=lambda c: c.timestamp)
        assert count == len(kept)
        assert summary == summarize(kept, "request_model")
        assert series == timeseries(kept, "5m", "model")
        assert groups == error_groups(kept)


# -- pages: keyset, in a chosen order -----------------------------------------------------------
def _paged_calls() -> list[LLMCall]:
    """Calls with ties in every key and unknown costs, latencies and tokens, timestamps out of
    insertion order."""
    calls = []
    for i in range(23):
        calls.append(
            make_call(
                i,
                timestamp=T0 + timedelta(seconds=(i * 7) % 11),
                cost_usd=None if i % 5 == 0 else 0.001 * (i % 3),
                duration_ms=None if i % 7 == 3 else 100.0 + i % 4,
                output_tokens=None if i % 6 == 1 else 20 + i % 2,
                input_tokens=100 + i % 3,
                trace_id=f"t{i % 4}",
                user_id=f"u{i % 3}",
            )
        )
    return calls


def _expected_order(calls: list[LLMCall], sort: str, descending: bool) -> list[str]:
    """The rule, written out: known keys in order (ties in insertion order, reversed when
    descending), then unknown keys in insertion order (reversed when descending)."""
    keyed = [(_pages.sort_key(c, sort), i, c.call_id) for i, c in enumerate(calls)]
    known = sorted(((k, i, c) for k, i, c in keyed if k is not None), reverse=descending)
    unknown = sorted(((i, c) for k, i, c in keyed if k is None), reverse=descending)
    return [c for _, _, c in known] + [c for _, c in unknown]


async def _all_pages(store: Any, size: int, **kwargs: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.page(limit=size, after=after, **kwargs)
        pages.append([c.call_id for c in page.calls])
        if page.next is None:
            return pages
        after = page.next
        assert len(pages) < 100


@pytest.mark.parametrize("sort", _pages.PAGE_SORTS)
@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
async def test_pages_follow_one_order(store: Any, sort: str, descending: bool) -> None:
    """Pages by time, cost, latency or tokens, either way, hold every call once in the one
    order: ties in insertion order, unknown keys last in both directions."""
    calls = _paged_calls()
    await _keep(store, calls)
    expected = _expected_order(calls, sort, descending)
    pages = await _all_pages(store, 4, sort=sort, descending=descending)
    assert [c for page in pages for c in page] == expected
    assert all(len(page) == 4 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 4
    one = await store.page(sort=sort, descending=descending, limit=1000)
    assert [c.call_id for c in one.calls] == expected and one.next is None
    assert one.calls[0] == next(c for c in calls if c.call_id == expected[0])  # every field


async def test_pages_are_stable_under_new_arrivals(store: Any) -> None:
    """The next page continues after the last call shown: newer calls stored since do not
    shift it (keyset, not offset); an older one that sorts after the cursor is on it."""
    calls = [make_call(i) for i in range(10)]
    await _keep(store, calls)
    first = await store.page(limit=4)
    assert [c.call_id for c in first.calls] == [f"call-{i:06d}" for i in (9, 8, 7, 6)]
    newer = [make_call(100 + i, timestamp=T0 + timedelta(hours=1, seconds=i)) for i in range(5)]
    older = make_call(200, timestamp=T0 + timedelta(seconds=4, milliseconds=500))
    await _keep(store, [*newer, older])
    second = await store.page(limit=4, after=first.next)
    assert [c.call_id for c in second.calls] == [
        "call-000005",
        "call-000200",
        "call-000004",
        "call-000003",
    ]


async def test_page_filters_and_search(store: Any) -> None:
    """``search`` finds calls by call id, trace id, session or user; the filters of every read
    apply too."""
    calls = _paged_calls()
    await _keep(store, calls)

    async def ids(**kwargs: Any) -> list[str]:
        return [c.call_id for c in (await store.page(**kwargs)).calls]

    assert await ids(search="call-000007") == ["call-000007"]
    assert await ids(search="t2") == _expected_order(
        [c for c in calls if c.trace_id == "t2"], "time", True
    )
    assert await ids(search="s1", sort="cost") == _expected_order(
        [c for c in calls if c.session_id == "s1"], "cost", True
    )
    assert await ids(search="u0", status="error") == _expected_order(
        [c for c in calls if c.user_id == "u0" and c.status == "error"], "time", True
    )
    assert await ids(search="nobody") == []
    assert await ids(
        model="gpt-4o", since=T0 + timedelta(seconds=5), sort="latency"
    ) == _expected_order(
        [c for c in calls if c.model == "gpt-4o" and c.timestamp >= T0 + timedelta(seconds=5)],
        "latency",
        True,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"sort": "price"}, "sort must be", id="sort"),
        pytest.param({"limit": 0}, "limit must be", id="limit-0"),
        pytest.param({"limit": 1001}, "limit must be", id="limit-big"),
        pytest.param({"after": "not a cursor"}, "cursor", id="garbage"),
        pytest.param({"search": 5}, "search must be", id="search-type"),
    ],
)
async def test_page_refuses_bad_arguments(store: Any, kwargs: dict[str, Any], message: str) -> None:
    """A bad sort, limit, cursor or search is a ValueError, even in an empty store."""
    with pytest.raises(ValueError, match=message):
        await store.page(**kwargs)


async def test_a_cursor_belongs_to_its_order(store: Any) -> None:
    """A cursor of a page by one sort and direction is refused by another."""
    await _keep(store, [make_call(i) for i in range(5)])
    cursor = (await store.page(sort="cost", limit=2)).next
    assert cursor is not None
    with pytest.raises(ValueError, match="by cost desc"):
        await store.page(sort="cost", descending=False, after=cursor)
    with pytest.raises(ValueError, match="by cost desc"):
        await store.page(sort="time", after=cursor)
