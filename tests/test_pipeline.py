"""The pipeline: one pricing rule, fan-out to sinks, flush and close order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from asynctelemetry import (
    ConfigError,
    LLMCall,
    MemoryStore,
    ModelPricing,
    Pipeline,
    PriceTable,
    Sink,
    SyncSink,
)
from asynctelemetry._batching import Retryable
from asynctelemetry._rows import Rows, row_of
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import Sequence

TABLE = PriceTable.default().with_overrides(
    {"base-model": ModelPricing(input_per_million=1.0, output_per_million=2.0)}
)


class _Boom:
    async def emit(self, calls: Sequence[LLMCall]) -> None:
        raise RuntimeError("sink bug")

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class _Keep:
    def __init__(self) -> None:
        self.calls: list[LLMCall] = []
        self.flushed = 0
        self.closed = 0

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        self.calls.extend(calls)

    async def flush(self) -> None:
        self.flushed += 1

    async def aclose(self) -> None:
        self.closed += 1


def _unpriced(i: int = 0, **fields: object) -> LLMCall:
    values: dict[str, object] = {
        "model": "base-model-ft-unknown",
        "request_model": "base-model",
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
        "cost_usd": None,
    }
    values.update(fields)
    return make_call(i, **values)


async def test_a_failing_sink_is_counted_and_never_stops_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside the test suite's strict mode, a sink error is logged, counted and contained."""
    monkeypatch.setenv("ASYNCTELEMETRY_STRICT", "0")
    keep = _Keep()
    pipeline = Pipeline([_Boom(), keep], price_table=TABLE)
    await pipeline.emit([make_call(1)])
    assert pipeline.errors == 1 and pipeline.stats.errors == 1
    assert [c.call_id for c in keep.calls] == ["call-000001"]
    with pytest.raises(AttributeError):  # the live counters are the pipeline's own
        pipeline.errors = 0  # type: ignore[misc]


async def test_strict_mode_surfaces_sink_bugs() -> None:
    """Under the suite (ASYNCTELEMETRY_STRICT=1) an internal error is raised, not hidden."""
    with pytest.raises(RuntimeError, match="sink bug"):
        await Pipeline([_Boom()], price_table=TABLE).emit([make_call(1)])


async def test_a_failing_primary_sink_asks_for_the_batch_again() -> None:
    """The primary sink's failure (the collector's store) is a Retryable, not a count."""
    boom = _Boom()
    keep = _Keep()
    pipeline = Pipeline([boom, keep], price_table=TABLE, primary=boom)
    with pytest.raises(Retryable):
        await pipeline.emit([make_call(1)])
    assert pipeline.errors == 0 and keep.calls == []


def test_a_non_sink_is_refused() -> None:
    """Anything without emit/flush/aclose is a ConfigError naming the type, not a later crash."""

    class AddOnly:
        async def add_many(self, calls: Sequence[LLMCall]) -> None:
            pass

    with pytest.raises(ConfigError, match="AddOnly is not a sink"):
        Pipeline([AddOnly()])  # type: ignore[list-item]


def test_memory_store_is_a_sync_sink_and_custom_sinks_are_not() -> None:
    """The synchronous fast path is a declared protocol, decided with isinstance."""
    assert isinstance(MemoryStore(), SyncSink)
    assert isinstance(_Keep(), Sink) and not isinstance(_Keep(), SyncSink)


async def test_the_response_model_prices_first_then_the_request_model() -> None:
    """A response model unknown to the table is priced by the request model, version set."""
    keep = _Keep()
    pipeline = Pipeline([keep], price_table=TABLE)
    known = _unpriced(1, model="gpt-4o-mini")
    await pipeline.emit([_unpriced(0), known])
    fallback, direct = keep.calls
    assert fallback.cost_usd == pytest.approx(3.0)
    assert fallback.price_version == TABLE.version
    assert direct.cost_usd == TABLE.cost_of("gpt-4o-mini", "openai", **_tokens(known))
    assert direct.cost_usd != pytest.approx(3.0)


def _tokens(call: LLMCall) -> dict[str, int | None]:
    return {"input_tokens": call.input_tokens, "output_tokens": call.output_tokens}


async def test_a_call_that_carries_a_cost_keeps_it() -> None:
    """A call with a cost keeps it and its price_version, however the table would price it."""
    keep = _Keep()
    carried = _unpriced(0, cost_usd=9.5, price_version="v0")
    await Pipeline([keep], price_table=TABLE).emit([carried])
    assert keep.calls == [carried]


async def test_an_unknown_model_stays_unpriced() -> None:
    """No price for either model: cost and price_version stay None."""
    keep = _Keep()
    call = _unpriced(0, model="nobody-prices-this", request_model="nor-this")
    await Pipeline([keep], price_table=TABLE).emit([call])
    assert (keep.calls[0].cost_usd, keep.calls[0].price_version) == (None, None)


async def test_rows_are_priced_by_the_same_rule() -> None:
    """A collector's row batch is priced like records: equal to pricing the record."""
    store = MemoryStore()
    calls = [_unpriced(0), _unpriced(1, cost_usd=0.5, price_version="v0")]
    rows = Rows([row_of(c.__dict__) for c in calls])
    await Pipeline([store], price_table=TABLE).emit(rows)
    got = await store.query()
    assert [c.cost_usd for c in got] == [pytest.approx(3.0), 0.5]
    assert [c.price_version for c in got] == [TABLE.version, "v0"]


async def test_record_prices_a_field_dict_in_place() -> None:
    """The tracer's hot path: record() prices the dict it is given and adopts it."""
    fields = dict(_unpriced(0).__dict__)
    call = Pipeline(price_table=TABLE).record(fields)
    assert call.cost_usd == pytest.approx(3.0) and call.price_version == TABLE.version


async def test_close_closes_owned_sinks_and_flushes_lent_ones() -> None:
    """aclose() closes what the pipeline owns and only flushes what was lent to it."""
    lent, owned = _Keep(), _Keep()
    pipeline = Pipeline([lent], price_table=TABLE)
    pipeline.add(owned, owned=True)
    await pipeline.flush()
    assert (lent.flushed, owned.flushed) == (1, 1)
    await pipeline.aclose()
    assert (lent.flushed, lent.closed) == (2, 0)
    assert (owned.flushed, owned.closed) == (1, 1)


def test_a_price_table_dict_overrides_the_default() -> None:
    """price_table= may be a dict of ModelPricing, applied over the default table."""
    pipeline = Pipeline(
        price_table={"base-model": ModelPricing(input_per_million=5.0, output_per_million=0.0)}
    )
    call = pipeline.record(dict(_unpriced(0).__dict__))
    assert call.cost_usd == pytest.approx(5.0)
    with pytest.raises(ConfigError, match="price_table"):
        Pipeline(price_table=42)  # type: ignore[arg-type]


class _Chunks(_Keep):
    """A synchronous sink that remembers the size of every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def emit_nowait(self, calls: Sequence[LLMCall]) -> None:
        self.sizes.append(len(calls))
        self.calls.extend(calls)


async def test_a_large_batch_reaches_synchronous_sinks_in_chunks() -> None:
    """A batch of 1,000 rows reaches a synchronous sink (metrics) in chunks of at most
    FANOUT_CHUNK, in order, and the primary sink (the store) whole."""
    from asynctelemetry._pipeline import FANOUT_CHUNK

    store, metrics = _Chunks(), _Chunks()
    pipeline = Pipeline([store, metrics], price_table=TABLE, primary=store)
    calls = [make_call(i) for i in range(1000)]
    await pipeline.emit(Rows([row_of(c.__dict__) for c in calls]))
    assert store.sizes == [1000]
    assert max(metrics.sizes) <= FANOUT_CHUNK and sum(metrics.sizes) == 1000
    assert [c.call_id for c in metrics.calls] == [c.call_id for c in calls]
