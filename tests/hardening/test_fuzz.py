"""Property tests: hostile OTLP input never crashes the converter or the collector's Export.

Every record that comes out must be a valid :class:`LLMCall` (the converter builds records with
``LLMCall.trusted``, which skips validation, so a converter bug would show up here), must keep no
content attribute by default, and must survive a round trip through SQLite unchanged.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from asynctelemetry import AsyncCollector, LLMCall, MemoryStore, Pipeline, PriceTable, SQLiteStore
from asynctelemetry._collector import span_to_llm_call
from asynctelemetry._collector._convert import convert_request
from asynctelemetry._collector._wire import LeanRequest
from asynctelemetry._conventions import is_content_key
from tests.collector.helpers import export, llm_span, request_of

from .strategies import raw_requests, spans

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from opentelemetry.proto.trace.v1.trace_pb2 import Span

ROOT = Path(__file__).resolve().parents[2]
PRICES = PriceTable.default()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def check_record(call: LLMCall, *, capture_content: bool = False) -> None:
    """A converted record passes full validation and holds no content unless asked to."""
    assert LLMCall.model_validate(call.model_dump()) == call
    if not capture_content:
        assert not [key for key in call.attributes if is_content_key(key)]


@FUZZ
@given(span=spans(), service=st.one_of(st.none(), st.text(max_size=600)))
def test_span_to_llm_call_never_raises(span: Span, service: str | None) -> None:
    """Any span gives None or a valid record, with and without a price table."""
    for table in (None, PRICES):
        call = span_to_llm_call(span, service_name=service, price_table=table)
        if call is not None:
            check_record(call)
            assert call.source == "collector"
            assert call.span_id == (span.span_id.hex() or None)


@FUZZ
@given(raw=raw_requests())
def test_convert_request_on_raw_bytes(raw: bytes) -> None:
    """Any bytes either fail to parse (INVALID_ARGUMENT) or convert, with counts that add up."""
    try:
        lean = LeanRequest.FromString(raw)
    except DecodeError:
        return
    for capture in (False, True):
        defects: dict[str, int] = {}
        calls, received, ignored, rejected = convert_request(lean, capture, defects)
        assert received == len(calls) + ignored + rejected
        assert all(count > 0 for count in defects.values())
        for call in Pipeline(price_table=PRICES).price(calls):
            check_record(call, capture_content=capture)


async def test_fuzzed_records_round_trip_through_sqlite(tmp_path: Path) -> None:
    """Records converted from fuzzed spans are stored and read back field for field."""
    made: list[LLMCall] = []

    @FUZZ
    @given(span=spans())
    def collect(span: Span) -> None:
        call = span_to_llm_call(span, service_name="svc", price_table=PRICES)
        if call is not None:
            made.append(call.model_copy(update={"call_id": f"fz-{len(made):05d}"}))

    collect()
    assert made, "the strategy should produce LLM spans"
    async with SQLiteStore(tmp_path / "fuzz.db") as store:
        await store.add_many(made)
        await store.flush()
        back = {call.call_id: call for call in await store.query()}
    assert len(back) == len(made)
    for call in made:
        assert back[call.call_id] == call


def test_deeply_nested_invocation_parameters_regression() -> None:
    """Found by fuzzing: nested JSON in ``llm.invocation_parameters`` raised RecursionError."""
    for text in ("[" * 5000, '{"a":' * 3000, "[" * 60_000):
        span = llm_span({})
        span.attributes.append(
            KeyValue(key="llm.invocation_parameters", value=AnyValue(string_value=text))
        )
        span.attributes.append(
            KeyValue(key="openinference.span.kind", value=AnyValue(string_value="LLM"))
        )
        assert span_to_llm_call(span, service_name="svc") is None


def test_long_span_id_gives_a_valid_call_id_regression() -> None:
    """Found by atheris: a span id over 128 bytes became a call_id over 256 characters."""
    span = llm_span({"gen_ai.request.model": "gpt-4o"}, span_id=bytes(200))
    call = span_to_llm_call(span, service_name="svc")
    assert call is not None
    check_record(call)
    assert 0 < len(call.call_id) <= 256


@pytest.mark.parametrize("start", [2**63, 2**64 - 1], ids=["2^63", "2^64-1"])
async def test_start_time_past_int64_nanoseconds_regression(tmp_path: Path, start: int) -> None:
    """Found by fuzzing: a span starting after 2262 was accepted, then refused by SQLite.

    The collector answered OK and the store logged a rejection: a call the client believed
    delivered was lost. The converter now counts the bad start time and keeps the call.
    """
    span = llm_span({"gen_ai.request.model": "gpt-4o"}, start_time_unix_nano=start)
    async with SQLiteStore(tmp_path / "t.db") as store:
        async with AsyncCollector(store, port=0) as collector:
            await export(collector.endpoint, request_of([span]))
            await collector.flush()
        assert collector.stats.defects.get("bad_start_time") == 1
        assert (await store.count(), store.rejected) == (1, 0)


@pytest.fixture
async def fuzz_collector() -> AsyncIterator[AsyncCollector]:
    """One collector on 127.0.0.1 for a whole property run."""
    async with AsyncCollector(MemoryStore(100_000), port=0) as collector:
        yield collector


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=raw_requests())
async def test_export_over_grpc_never_fails_unexpectedly(
    fuzz_collector: AsyncCollector, raw: bytes
) -> None:
    """Export answers OK or INVALID_ARGUMENT for any bytes, and every call it took is stored."""
    collector = fuzz_collector
    before = collector.stats.llm_calls
    try:
        response = await export(collector.endpoint, raw)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
        return
    await collector.flush()
    assert response.partial_success.rejected_spans >= 0
    store = collector.store
    assert isinstance(store, MemoryStore)
    # A call (or step) whose id the store already holds (spans may share an id) is counted,
    # not kept; the collector keeps some spans as steps (keep_spans="ai").
    stats = collector.stats
    kept = await store.count() + len(store.spans_snapshot())
    assert kept + store.duplicates == stats.llm_calls + stats.steps
    assert stats.llm_calls >= before
    for call in await collector.store.query(limit=None):
        check_record(call)


async def test_collector_serves_after_hostile_input() -> None:
    """After a burst of garbage and hostile requests, a valid export is still stored."""
    store = MemoryStore()
    raws: list[bytes] = []

    @settings(max_examples=30, deadline=None, database=None)
    @given(raw=raw_requests())
    def collect(raw: bytes) -> None:
        raws.append(raw)

    collect()
    async with AsyncCollector(store, port=0) as collector:
        results = await asyncio.gather(
            *(export(collector.endpoint, raw) for raw in raws), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                assert isinstance(result, grpc.aio.AioRpcError)
                assert result.code() == grpc.StatusCode.INVALID_ARGUMENT
        await collector.flush()
        before = len(store)
        await export(collector.endpoint, request_of([llm_span({"gen_ai.request.model": "gpt-4o"})]))
        await collector.flush()
        assert len(store) == before + 1


def test_atheris_target_on_hypothesis_inputs() -> None:
    """The ``make fuzz`` target's check runs clean on the strategies' inputs (no atheris needed)."""
    sys.path.insert(0, str(ROOT / "fuzz"))
    try:
        from fuzz_export import one_input
    finally:
        sys.path.remove(str(ROOT / "fuzz"))

    @settings(max_examples=40, deadline=None, database=None)
    @given(raw=raw_requests())
    def check(raw: bytes) -> None:
        one_input(raw)

    check()
