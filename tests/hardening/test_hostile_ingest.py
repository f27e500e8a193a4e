"""Ingest work bounded by its size: wide spans are converted in slices of attributes, requests
take turns slice by slice, large or deep OTLP/JSON bodies are encoded in a worker process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from asynctelemetry import AsyncCollector, MemoryStore
from asynctelemetry._collector._convert import (
    _CHUNK,
    MAX_SPAN_ATTRIBUTES,
    SLICE_UNITS,
    _convert_slices,
    convert_request,
)
from asynctelemetry._collector._json_worker import JSON_IN_PROCESS_BYTES, JsonWorker, WorkerLost
from asynctelemetry._collector._otlp_json import BadJson
from asynctelemetry._collector._wire import LeanRequest
from tests.collector.helpers import key_values, request_for, request_of
from tests.conftest import make_call

START = 1_767_225_600_000_000_000
JSON = {"Content-Type": "application/json"}


def wide_span(i: int, width: int) -> Span:
    """An LLM span with ``width`` unique extra attributes (the model key first)."""
    attributes = {"gen_ai.request.model": "gpt-4o"}
    attributes.update({f"wide.{i}.{j}": f"v{j}" for j in range(width)})
    return Span(
        span_id=(i + 1).to_bytes(8, "big"),
        start_time_unix_nano=START,
        attributes=key_values(attributes),
    )


def slices_of(request: Any, seconds: float = 3600.0) -> tuple[int, Any]:
    """How many times a conversion pauses (with only the size bound), and its result."""
    steps = _convert_slices(request, False, {}, SLICE_UNITS, seconds)
    pauses = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return pauses, done.value
        pauses += 1


def test_one_wide_span_is_converted_in_slices_of_attributes() -> None:
    """A single span of 4,000 attributes gives the loop back every SLICE_UNITS attributes (it
    counted as one span before); one of 50,000 is read up to MAX_SPAN_ATTRIBUTES, the rest
    dropped and counted."""
    lean = LeanRequest.FromString(request_of([wide_span(0, 4000)]).SerializeToString())
    pauses, (rows, received, _, _) = slices_of(lean)
    assert received == 1 and len(rows) == 1
    assert pauses >= 4000 // SLICE_UNITS
    lean = LeanRequest.FromString(request_of([wide_span(1, 50_000)]).SerializeToString())
    defects: dict[str, int] = {}
    rows, *_ = convert_request(lean, False, defects)
    assert len(rows) == 1 and rows[0].model == "gpt-4o"
    assert defects["attributes_dropped"] >= 50_001 - MAX_SPAN_ATTRIBUTES
    pauses, _ = slices_of(lean)
    assert pauses <= MAX_SPAN_ATTRIBUTES // _CHUNK + 1


def test_many_narrow_spans_still_pause_by_size() -> None:
    """Spans without attributes count one unit each: 10,000 of them pause several times."""
    spans = [Span(span_id=(i + 1).to_bytes(8, "big")) for i in range(10_000)]
    pauses, (_, received, ignored, _) = slices_of(
        LeanRequest.FromString(request_of(spans).SerializeToString())
    )
    assert received == ignored == 10_000
    assert pauses >= 10_000 // SLICE_UNITS - 1


async def test_a_small_request_is_not_stuck_behind_a_wide_one() -> None:
    """Requests take turns slice by slice: a one-span request that arrives while a request of
    wide spans is being converted is stored before that request is."""
    store = MemoryStore(1000)
    wide = request_of([wide_span(i, 2000) for i in range(60)]).SerializeToString()
    small = request_for([make_call(7, model="small-one")]).SerializeToString()
    async with AsyncCollector(store, port=0) as collector:
        finished: list[str] = []

        async def send(name: str, raw: bytes) -> None:
            await collector._ingest(raw)
            finished.append(name)

        big = asyncio.create_task(send("wide", wide))
        while collector.stats.requests == 0 and not collector._converting.locked():
            await asyncio.sleep(0)
        await send("small", small)
        await big
        await collector.flush()
    assert finished == ["small", "wide"]
    assert await store.count() == 61


def json_body(count: int, width: int = 20) -> bytes:
    """An OTLP/JSON request of ``count`` LLM spans."""
    spans = [
        {
            "spanId": f"{i + 1:016x}",
            "startTimeUnixNano": str(START),
            "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}]
            + [{"key": f"k{j}", "value": {"stringValue": "v" * 20}} for j in range(width)],
        }
        for i in range(count)
    ]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


async def test_large_and_deep_json_bodies_are_encoded_in_the_worker_process() -> None:
    """A body over JSON_IN_PROCESS_BYTES, and a small one nesting deeper than ``json`` parses,
    are encoded by the worker process; every call is stored; small bodies stay on the loop."""
    store = MemoryStore(10_000)
    big = json_body(600)
    assert len(big) > JSON_IN_PROCESS_BYTES
    deep = (
        json_body(1)
        .replace(b"0000000000000001", b"00000000000000ff")
        .replace(
            b'{"key": "k0", "value": {"stringValue": "vvvvvvvvvvvvvvvvvvvv"}}',
            b'{"key": "k0", "value": '
            + b'{"arrayValue": {"values": [' * 2000
            + b"{}"
            + b"]}}" * 2000
            + b"}",
        )
    )
    assert len(deep) < JSON_IN_PROCESS_BYTES
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        assert collector._http is not None
        worker = collector._http._json_worker
        target = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        async with httpx.AsyncClient(timeout=60) as client:
            small = await client.post(target, content=json_body(3), headers=JSON)
            assert small.status_code == 200 and worker.bodies == 0
            answer = await client.post(target, content=big, headers=JSON)
            assert answer.status_code == 200 and worker.bodies == 1
            answer = await client.post(target, content=deep, headers=JSON)
            assert answer.status_code == 200 and worker.bodies == 2
            bad = await client.post(target, content=b"[" + big, headers=JSON)
            assert bad.status_code == 400 and "not JSON" in bad.json()["message"]
        await collector.flush()
    # Every call arrived; the ids the bodies share (1-3, 0xff) are kept once, as in every store.
    assert await store.count() + store.duplicates == 3 + 600 + 1
    assert store.duplicates == 4
    assert collector.stats.defects.get("too_deep") == 1
    assert worker._process is None, "the worker process stops with the receiver"


async def test_a_lost_worker_is_a_retryable_error_then_replaced() -> None:
    """A worker process killed mid-way answers WorkerLost; the next body starts a new one."""
    worker = JsonWorker()
    try:
        encoding = asyncio.create_task(worker.encode(json_body(2000)))
        while worker._process is None:
            await asyncio.sleep(0.001)
        worker._process.kill()  # still starting: it has not read the body yet
        with pytest.raises(WorkerLost):
            await encoding
        assert worker._process is None
        assert await worker.encode(json_body(2))
        with pytest.raises(BadJson):
            await worker.encode(b"{nope")
    finally:
        await worker.aclose()
