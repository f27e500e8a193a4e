"""The attribute reader: per-shape plans give what one-attribute-at-a-time reading gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from asynctelemetry._collector import _attributes
from asynctelemetry._collector._attributes import attribute_cache, collect, collect_slowly
from asynctelemetry._record import MAX_ATTRIBUTE_LENGTH, MAX_ATTRIBUTES
from tests.hardening.strategies import attributes

from .helpers import key_values


def _both_ways(raws: list[bytes], capture: bool) -> tuple[object, object, object, object]:
    """(collect's result, its defects, the slow reader's result, its defects) for ``raws``."""
    cache = attribute_cache(capture)
    fast_defects: dict[str, int] = {}
    fast = collect(raws, cache, fast_defects)
    slow_defects: dict[str, int] = {}
    slow = collect_slowly(list(map(cache.__getitem__, raws)), slow_defects)
    return fast, fast_defects, slow, slow_defects


@settings(max_examples=300, deadline=None)
@given(kvs=attributes(max_size=30), capture=st.booleans())
def test_plans_read_what_the_slow_path_reads(kvs: list[KeyValue], capture: bool) -> None:
    """Any attributes (duplicates, bad values, content, hostile shapes): the planned read and
    the one-at-a-time read agree on fields, extras, markers and defects, also from the cache."""
    raws = [kv.SerializeToString() for kv in kvs]
    for _ in range(2):  # the second time every cacheable attribute and the shape are known
        fast, fast_defects, slow, slow_defects = _both_ways(raws, capture)
        assert fast == slow
        assert fast_defects == slow_defects


def test_repeated_shape_with_new_values() -> None:
    """Spans of one shape with different values each read their own values through the plan."""
    cache = attribute_cache(False)
    for i in range(50):
        raws = [
            kv.SerializeToString()
            for kv in key_values(
                {
                    "gen_ai.request.model": f"m-{i % 3}",
                    "gen_ai.usage.input_tokens": 1000 + i,
                    "gen_ai.response.id": f"resp-{i}",
                    "gen_ai.input.messages": "secret",
                    "app.tenant": "t",
                }
            )
        ]
        defects: dict[str, int] = {}
        found, extra, span_kind, model_json, _ = collect(raws, cache, defects)
        assert found == {"request_model": f"m-{i % 3}", "input_tokens": 1000 + i}
        assert extra == {"gen_ai.response.id": f"resp-{i}", "app.tenant": "t"}
        assert (span_kind, model_json, defects) == (None, None, {})


def test_extras_beyond_the_bound_are_counted_each_time() -> None:
    """A planned shape with too many extras keeps MAX_ATTRIBUTES and counts the rest per span."""
    raws = [
        kv.SerializeToString()
        for kv in key_values({f"x.{i}": i for i in range(MAX_ATTRIBUTES + 5)})
    ]
    for _ in range(3):
        defects: dict[str, int] = {}
        _, extra, *_ = collect(raws, attribute_cache(False), defects)
        assert extra is not None and len(extra) == MAX_ATTRIBUTES
        assert defects == {"attributes_dropped": 5}


def test_high_cardinality_keys_stop_filling_the_cache() -> None:
    """Values of a key that never repeat (ids) stop being remembered; they still read right."""
    cache = attribute_cache(False)
    limit = _attributes._ENTRIES_PER_KEY
    key = "test.unique_id"
    for i in range(limit + 100):
        raw = KeyValue(key=key, value=AnyValue(string_value=f"id-{i}")).SerializeToString()
        _, extra, *_ = collect([raw], cache, {})
        assert extra == {key: f"id-{i}"}
    assert cache.per_key[key.encode()] <= limit
    assert len(cache) <= _attributes._CACHE_ENTRIES


def test_high_cardinality_keys_read_every_value_kind_after_the_bound() -> None:
    """Past a key's bound, its string values take a short path (``unique``); other values of
    the same key (numbers, over-long text) still read, and count their defects, as before."""
    cache = attribute_cache(False)
    key = "test.unique_after_bound"
    for i in range(_attributes._ENTRIES_PER_KEY + 2):
        raw = KeyValue(key=key, value=AnyValue(string_value=f"v-{i}")).SerializeToString()
        collect([raw], cache, {})
    assert key.encode() in cache.unique
    raw = KeyValue(key=key, value=AnyValue(string_value="fresh")).SerializeToString()
    assert collect([raw], cache, {})[1] == {key: "fresh"}
    raw = KeyValue(key=key, value=AnyValue(int_value=7)).SerializeToString()
    assert collect([raw], cache, {})[1] == {key: 7}
    long_text = "x" * (MAX_ATTRIBUTE_LENGTH + 10)
    raw = KeyValue(key=key, value=AnyValue(string_value=long_text)).SerializeToString()
    defects: dict[str, int] = {}
    assert collect([raw], cache, defects)[1] == {key: long_text[:MAX_ATTRIBUTE_LENGTH]}
    assert defects == {"attribute_truncated": 1}
