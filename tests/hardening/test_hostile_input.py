"""Hostile request content: deep values, bad UTF-8, many gzip members, floods of unknown model
names. Each is one attribute's (or one call's) counted defect or a clear refusal, never a lost
request, a traceback or quadratic work."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from asynctelemetry import Pipeline, PriceTable
from asynctelemetry._collector._convert import (
    convert_request,
)
from asynctelemetry._collector._http import MAX_GZIP_MEMBERS, inflate
from asynctelemetry._collector._otlp_json import CUT_DEPTH, cut_deep, json_to_request
from asynctelemetry._collector._wire import MAX_VALUE_DEPTH, LeanRequest
from asynctelemetry._pipeline import MAX_NEW_PRICES_PER_BATCH
from asynctelemetry._pricing import _table
from tests.collector.helpers import key_values, request_of

START = 1_767_225_600_000_000_000


def varint(value: int) -> bytes:
    """Protobuf varint."""
    out = bytearray()
    while value > 127:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def nested_wire(levels: int, kind: str) -> bytes:
    """A serialized AnyValue: a string inside ``levels`` arrays or maps (levels + 1 deep)."""
    value = b"\x0a\x01x"
    for _ in range(levels):
        if kind == "array":
            item = b"\x0a" + varint(len(value)) + value
            value = b"\x2a" + varint(len(item)) + item
        else:
            pair = b"\x0a\x01k\x12" + varint(len(value)) + value
            entry = b"\x0a" + varint(len(pair)) + pair
            value = b"\x32" + varint(len(entry)) + entry
    return value


def nested_json(levels: int, kind: str) -> dict[str, Any]:
    """The same value in OTLP/JSON."""
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(levels):
        if kind == "array":
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def grpc_request(extra: bytes) -> Any:
    """A lean request of one LLM span whose last attribute is the serialized KeyValue."""
    span = Span(
        span_id=b"\x01" * 8,
        start_time_unix_nano=START,
        attributes=key_values({"gen_ai.request.model": "gpt-4o", "app.kept": "yes"}),
    )
    lean = LeanRequest.FromString(request_of([span]).SerializeToString())
    lean.resource_spans[0].scope_spans[0].spans[0].attributes.append(extra)
    return lean


def json_request(value: Any) -> Any:
    """The same span in OTLP/JSON, through the JSON encoder, as a lean request."""
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "spanId": "01" * 8,
                                "startTimeUnixNano": str(START),
                                "attributes": [
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o"},
                                    },
                                    {"key": "app.kept", "value": {"stringValue": "yes"}},
                                    {"key": "deep", "value": value},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    return LeanRequest.FromString(json_to_request(json.dumps(body).encode()))


def converted(request: Any) -> tuple[Any, dict[str, int]]:
    """The one call of a request and the defects counted."""
    defects: dict[str, int] = {}
    rows, received, _, _ = convert_request(request, False, defects)
    assert received == 1 and len(rows) == 1, "the span is kept"
    return rows[0], defects


@pytest.mark.parametrize("kind", ["array", "kvlist"])
@pytest.mark.parametrize(
    ("levels", "defect"),
    [
        pytest.param(2, "attribute_unsupported", id="nested"),
        pytest.param(MAX_VALUE_DEPTH - 1, "attribute_unsupported", id="at-the-limit"),
        pytest.param(MAX_VALUE_DEPTH, "too_deep", id="one-past"),
        pytest.param(1_000, "too_deep", id="1000"),
        pytest.param(50_000, "too_deep", id="50000"),
    ],
)
def test_deep_values_are_one_attributes_defect_in_grpc_and_json(
    kind: str, levels: int, defect: str
) -> None:
    """A value nested past MAX_VALUE_DEPTH is the attribute's ``too_deep`` defect, the span kept
    with its other attributes: the same verdict over protobuf and over JSON, at any depth."""
    value = nested_wire(levels, kind)
    keyvalue = b"\x0a\x04deep\x12" + varint(len(value)) + value
    over_grpc = converted(grpc_request(keyvalue))
    if levels < 500:
        lean = json_request(nested_json(levels, kind))
    else:  # deeper than json.dumps (or json.loads) can go: written by hand
        opening, closing = (
            ('{"arrayValue":{"values":[', "]}}")
            if kind == "array"
            else ('{"kvlistValue":{"values":[{"key":"k","value":', "}]}}")
        )
        text = (
            '{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"0101010101010101",'
            f'"startTimeUnixNano":"{START}","attributes":['
            '{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},'
            '{"key":"app.kept","value":{"stringValue":"yes"}},{"key":"deep","value":'
            + opening * levels
            + '{"stringValue":"x"}'
            + closing * levels
            + "}]}]}]}]}"
        )
        lean = LeanRequest.FromString(json_to_request(text.encode()))
    over_json = converted(lean)
    for call, defects in (over_grpc, over_json):
        assert defects == {defect: 1}
        assert call.model == "gpt-4o" and call.attributes == {"app.kept": "yes"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"stringValue": "\ud800"}, id="lone-surrogate"),
        pytest.param({"stringValue": "ok \udfff end"}, id="low-surrogate"),
    ],
)
def test_lone_surrogates_in_json_are_one_attributes_defect(value: dict[str, str]) -> None:
    """A ``"\\ud800"`` escape is that attribute's defect, as bad UTF-8 is over protobuf."""
    call, defects = converted(json_request(value))
    assert call.attributes == {"app.kept": "yes"} and defects == {"attribute_unsupported": 1}
    bad_utf8 = b"\x0a\x04deep\x12\x04\x0a\x02\xc3\x28"
    call, defects = converted(grpc_request(bad_utf8))
    assert call.attributes == {"app.kept": "yes"} and defects == {"attribute_unsupported": 1}


def test_body_bytes_that_are_not_utf8_cost_only_their_attribute() -> None:
    """Raw non-UTF-8 bytes inside a JSON string are the attribute's defect, not a 400."""
    text = json.dumps({"stringValue": "MARK"})
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "spanId": "01" * 8,
                                    "startTimeUnixNano": str(START),
                                    "attributes": [
                                        {
                                            "key": "gen_ai.request.model",
                                            "value": {"stringValue": "gpt-4o"},
                                        },
                                        {"key": "bad", "value": json.loads(text)},
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    lean = LeanRequest.FromString(json_to_request(body.replace(b"MARK", b"\xff\xfe")))
    call, defects = converted(lean)
    assert call.model == "gpt-4o" and defects == {"attribute_unsupported": 1}


def test_cut_deep_keeps_shallow_json_and_is_linear() -> None:
    """``cut_deep`` leaves JSON within the limit unchanged (strings with brackets included)
    and replaces only what is deeper."""
    shallow = json.dumps({"a": ["[{", {"b": ']}\\"['}], "c": [[1], [2]]})
    assert cut_deep(shallow, 3) == shallow
    assert json.loads(cut_deep("[[[[1]]], 2]", 2)) == [[{}], 2]
    deep = "[" * 200_000 + "]" * 200_000
    assert json.loads(cut_deep(deep, CUT_DEPTH)) is not None


def test_many_gzip_members_are_refused_quickly() -> None:
    """More than MAX_GZIP_MEMBERS members is a zlib error (a 400), found without inflating
    them all; up to the bound, every member is inflated."""
    member = gzip.compress(b"ab")
    assert inflate(member * MAX_GZIP_MEMBERS, "gzip", 10_000) == b"ab" * MAX_GZIP_MEMBERS
    with pytest.raises(zlib.error, match="members"):
        inflate(gzip.compress(b"") * 210_000, "gzip", 16 << 20)


def test_inflate_is_linear_in_members() -> None:
    """With the member bound lifted, 50,000 empty members inflate in one linear pass (the old
    code copied the rest of the body after every member)."""
    body = gzip.compress(b"") * 50_000
    assert inflate(body, "gzip", 1 << 20, max_members=10**9) == b""
    with pytest.raises(zlib.error, match="cut short"):
        inflate(body[:-3], "gzip", 1 << 20, max_members=10**9)


def test_misses_are_remembered_by_normalised_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown name is resolved once in any spelling; misses never push known names out."""
    table = PriceTable()
    resolved: list[tuple[str, str | None]] = []
    resolve = PriceTable._resolve

    def counting(self: PriceTable, model: str, provider: str | None) -> Any:
        resolved.append((model, provider))
        return resolve(self, model, provider)

    monkeypatch.setattr(PriceTable, "_resolve", counting)
    for spelling in ("no-such-model-x", "NO-SUCH-MODEL-X", " no-such-model-x "):
        assert table.cost_of(spelling, input_tokens=1) is None
    assert len(resolved) == 1
    assert table.is_resolved("No-Such-Model-X")
    known = table.cost_of("gpt-4o", input_tokens=1_000_000)
    monkeypatch.setattr(_table, "MAX_MISSES", 10)
    for i in range(50):
        table.cost_of(f"unknown-{i}", input_tokens=1)
    assert len(table._misses) <= 10
    assert ("gpt-4o", None) in table._rates
    assert table.cost_of("gpt-4o", input_tokens=1_000_000) == known


def test_pricing_work_per_batch_is_bounded() -> None:
    """A batch naming thousands of unknown models has the table resolve at most
    MAX_NEW_PRICES_PER_BATCH new names; the rest stay unpriced and are counted, and names
    resolved before are priced as usual."""
    table = PriceTable()
    spans = [
        Span(
            span_id=i.to_bytes(8, "big"),
            start_time_unix_nano=START,
            attributes=key_values(
                {"gen_ai.request.model": f"flood-{i}", "gen_ai.usage.input_tokens": 10}
            ),
        )
        for i in range(1, 601)
    ]
    spans.append(
        Span(
            span_id=b"\xff" * 8,
            start_time_unix_nano=START,
            attributes=key_values(
                {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1_000_000}
            ),
        )
    )
    table.cost_of("gpt-4o", input_tokens=1)
    defects: dict[str, int] = {}
    lean = LeanRequest.FromString(request_of(spans).SerializeToString())
    converted, _, _, _ = convert_request(lean, False, defects)
    pipeline = Pipeline(price_table=table)
    rows = pipeline.price(converted)
    assert len(rows) == 601 and defects == {}
    assert pipeline.pricing_skipped == 600 - MAX_NEW_PRICES_PER_BATCH
    assert len(table._misses) == MAX_NEW_PRICES_PER_BATCH
    gpt = [call for call in rows if call.model == "gpt-4o"]
    assert gpt[0].cost_usd == pytest.approx(2.5)
