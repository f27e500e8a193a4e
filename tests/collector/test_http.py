"""The collector's OTLP/HTTP receiver over real HTTP: the OTel SDK's HTTP exporter, OTLP/JSON by
hand, compression, every refusal, backpressure with Retry-After, auth, TLS and lifecycle."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import sys
import textwrap
import zlib
from typing import TYPE_CHECKING

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from asynctelemetry import (
    AsyncCollector,
    ConfigError,
    HttpLimits,
    LLMCall,
    MemoryStore,
    StoreClosedError,
)
from tests.conftest import make_call
from tests.hardening.test_security import listening
from tests.tls import self_signed_files

from .helpers import llm_span, request_for, request_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from pathlib import Path

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TOKEN = "http-s3cret-token"


def traced(i: int, **fields: object) -> LLMCall:
    """A call as the tracer makes it: with trace and span ids."""
    return make_call(i, trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", **fields)


def url(collector: AsyncCollector, scheme: str = "http") -> str:
    """The collector's OTLP/HTTP traces URL."""
    return f"{scheme}://127.0.0.1:{collector.http_port}/v1/traces"


def same(stored: Sequence[LLMCall], sent: Sequence[LLMCall]) -> bool:
    """Whether the stored calls equal the sent ones, field by field (``source`` aside)."""

    def dump(calls: Sequence[LLMCall]) -> list[dict[str, object]]:
        return [c.model_dump(exclude={"source"}) for c in sorted(calls, key=lambda c: c.call_id)]

    return dump(stored) == dump(sent)


def sdk_export(endpoint: str, count: int, prefix: str, **exporter_args: object) -> None:
    """Send ``count`` GenAI spans with the OTel SDK's own OTLP/HTTP exporter (blocking)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-http-app"}))
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=10, **exporter_args)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("http-test")
    for i in range(count):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o")
            span.set_attribute("gen_ai.usage.input_tokens", 10 + i)
            span.set_attribute("gen_ai.usage.output_tokens", 3)
            span.set_attribute("request_id", f"{prefix}-{i}")
    provider.shutdown()


# -- the real OTel SDK exporter ---------------------------------------------------------------
@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
async def test_otel_sdk_http_exporter_in_process(compression: str) -> None:
    """Spans from the OTel SDK's OTLP/HTTP (protobuf) exporter are all stored, compressed or not."""
    from opentelemetry.exporter.otlp.proto.http import Compression

    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        await asyncio.to_thread(
            sdk_export, url(collector), 20, "in", compression=Compression(compression)
        )
        await collector.flush()
    stored = await store.query()
    assert sorted(c.call_id for c in stored) == sorted(f"in-{i}" for i in range(20))
    assert {(c.model, c.provider, c.output_tokens, c.service_name) for c in stored} == {
        ("gpt-4o", "openai", 3, "sdk-http-app")
    }
    assert sorted(c.input_tokens or 0 for c in stored) == list(range(10, 30))
    assert collector.stats.requests == 20


SDK_APP = textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "other-process"}))
    exporter = OTLPSpanExporter(endpoint=sys.argv[1], compression=Compression.Gzip, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64,
                                                   schedule_delay_millis=10))
    tracer = provider.get_tracer("app")
    for i in range(300):
        with tracer.start_as_current_span("outer"):  # the root of a trace with a call: a step
            with tracer.start_as_current_span("chat claude") as span:
                span.set_attribute("llm.provider", "anthropic")
                span.set_attribute("llm.model", "claude-sonnet-4-5")
                span.set_attribute("llm.input_tokens", i)
                span.set_attribute("llm.output_tokens", 7)
                span.set_attribute("llm.latency_ms", 12.5)
                print(format(span.get_span_context().span_id, "016x"))
    assert provider.force_flush(30_000)
    provider.shutdown()
    """
)


async def test_otel_sdk_http_exporter_from_another_process() -> None:
    """A separate process's BatchSpanProcessor + OTLP/HTTP exporter: every LLM span stored."""
    store = MemoryStore(capacity=1000)
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SDK_APP, url(collector), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 50)
        assert proc.returncode == 0
        await collector.flush()
    span_ids = out.decode().split()
    assert len(span_ids) == 300
    stored = await store.query()
    assert sorted(c.span_id or "" for c in stored) == sorted(span_ids)
    assert sorted(c.input_tokens or 0 for c in stored) == list(range(300))
    assert {(c.model, c.provider, c.latency_ms, c.service_name) for c in stored} == {
        ("claude-sonnet-4-5", "anthropic", 12.5, "other-process")
    }
    assert (collector.stats.ignored_spans, collector.stats.steps) == (0, 300)
    assert {s.name for s in store.spans_snapshot()} == {"outer"}


# -- OTLP/JSON by hand ------------------------------------------------------------------------
def json_body() -> dict[str, object]:
    """An OTLP/JSON request as a JavaScript SDK sends it, with the rules JSON has on its own."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}],
                    "droppedAttributesCount": 0,
                    "futureResourceField": {"anything": [1, 2]},
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "@example/instrumentation", "version": "1.0.0"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",  # upper-case hex
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "chat gpt-4o",
                                "kind": 3,  # an integer enum: CLIENT
                                "startTimeUnixNano": "1767225600000000000",  # int64 as string
                                "endTimeUnixNano": 1767225600250000000,  # and as a number
                                "attributes": [
                                    {"key": "llm.provider", "value": {"stringValue": "openai"}},
                                    {"key": "llm.model", "value": {"stringValue": "gpt-4o"}},
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o-2024-08-06"},
                                    },
                                    {"key": "llm.input_tokens", "value": {"intValue": "812"}},
                                    {"key": "llm.output_tokens", "value": {"intValue": 95}},
                                    {
                                        "key": "gen_ai.usage.cache_read.input_tokens",
                                        "value": {"intValue": "512"},
                                    },
                                    {"key": "llm.cost_usd", "value": {"doubleValue": 0.0125}},
                                    {"key": "llm.cache_hit", "value": {"stringValue": "semantic"}},
                                    {"key": "llm.tool_calls", "value": {"intValue": "2"}},
                                    {
                                        "key": "gen_ai.conversation.id",
                                        "value": {"stringValue": "s9"},
                                    },
                                    {"key": "error.type", "value": {"stringValue": "TimeoutError"}},
                                    {"key": "app.flag", "value": {"boolValue": True}},
                                    {"key": "app.ratio", "value": {"doubleValue": "NaN"}},
                                    {"key": "app.shiny", "value": {"newValueKind": 1}},
                                ],
                                "events": [
                                    {"timeUnixNano": "1767225600100000000", "name": "token"}
                                ],
                                "status": {"code": 2, "message": "TimeoutError"},
                                "someFutureField": {"nested": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }


async def test_json_body_maps_every_field_exactly() -> None:
    """Hex ids, integer enums, string int64s, llm.*/gen_ai.* keys: the call is exact; JSON back."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, price_table=None) as collector:
        async with httpx.AsyncClient() as client:
            response = await client.post(url(collector), json=json_body())
        await collector.flush()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [call] = await store.query()
    assert (call.trace_id, call.span_id, call.parent_span_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
    )
    assert call.timestamp.isoformat() == "2026-01-01T00:00:00+00:00"
    assert call.duration_ms == 250.0
    assert (call.provider, call.model, call.request_model) == (
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert (call.input_tokens, call.output_tokens, call.cached_input_tokens) == (812, 95, 512)
    assert (call.cost_usd, call.cache_hit, call.tool_calls) == (0.0125, "semantic", 2)
    assert (call.status, call.error_type, call.session_id) == ("error", "TimeoutError", "s9")
    assert (call.service_name, call.source) == ("js-app", "collector")
    assert call.attributes == {"app.flag": True}  # NaN counted and dropped, unknown kind empty
    assert collector.stats.defects.get("non_finite") == 1


async def test_json_and_protobuf_give_the_same_calls() -> None:
    """The same calls sent as OTLP/JSON and as protobuf are stored equal to what was sent."""
    from google.protobuf import json_format

    sent = [traced(i, service_name="app", attributes={"team": "search"}) for i in range(12)]
    as_json = json_format.MessageToDict(request_for(sent[6:]), use_integers_for_enums=True)
    for resource in as_json["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = __import__("base64").b64decode(span[key]).hex()
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, price_table=None) as collector:
        async with httpx.AsyncClient() as client:
            pb = await client.post(
                url(collector), content=request_for(sent[:6]).SerializeToString(), headers=PB
            )
            js = await client.post(url(collector), json=as_json)
        await collector.flush()
    assert (pb.status_code, js.status_code) == (200, 200)
    assert pb.headers["content-type"] == "application/x-protobuf" and pb.content == b""
    assert same(await store.query(), sent)


async def test_partial_success_in_both_encodings() -> None:
    """Rejected LLM spans (no model) come back as partial_success, protobuf or JSON."""
    request = request_of(
        [llm_span({"gen_ai.request.model": "gpt-4o"}), llm_span({"gen_ai.operation.name": "chat"})]
    )
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "spanId": "0102030405060708",
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    }
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        async with httpx.AsyncClient() as client:
            pb = await client.post(url(collector), content=request.SerializeToString(), headers=PB)
            js = await client.post(url(collector), json=body)
        await collector.flush()
    assert pb.status_code == js.status_code == 200
    answer = ExportTraceServiceResponse.FromString(pb.content)
    assert answer.partial_success.rejected_spans == 1
    assert "no model" in answer.partial_success.error_message
    partial = js.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and "no model" in partial["errorMessage"]
    assert len(store) == 1 and collector.stats.rejected_spans == 2


# -- compression ------------------------------------------------------------------------------
def deflate_raw(data: bytes) -> bytes:
    """A raw deflate stream (no zlib header), which some clients send as ``deflate``."""
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param(
            "gzip", lambda d: gzip.compress(d[:100]) + gzip.compress(d[100:]), id="gzip-2-members"
        ),
        pytest.param("deflate", zlib.compress, id="deflate"),
        pytest.param("deflate", deflate_raw, id="deflate-raw"),
        pytest.param("identity", lambda d: d, id="identity"),
    ],
)
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_compressed_bodies(
    coding: str, pack: Callable[[bytes], bytes], encoding: str
) -> None:
    """gzip (one or more members), deflate (zlib or raw) and identity bodies are all accepted."""
    sent = [traced(i) for i in range(5)]
    request = request_for(sent)
    if encoding == "json":
        body = json.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "spanId": c.span_id,
                                        "traceId": c.trace_id,
                                        "startTimeUnixNano": "1",
                                        "attributes": [
                                            {"key": "llm.model", "value": {"stringValue": c.model}},
                                            {
                                                "key": "request_id",
                                                "value": {"stringValue": c.call_id},
                                            },
                                        ],
                                    }
                                    for c in sent
                                ]
                            }
                        ]
                    }
                ]
            }
        ).encode()
        headers = dict(JSON)
    else:
        body, headers = request.SerializeToString(), dict(PB)
    headers["Content-Encoding"] = coding
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        async with httpx.AsyncClient() as client:
            response = await client.post(url(collector), content=pack(body), headers=headers)
        await collector.flush()
    assert response.status_code == 200, response.content
    assert sorted(c.call_id for c in await store.query()) == sorted(c.call_id for c in sent)


# -- refusals ---------------------------------------------------------------------------------
LIMIT = 4096
BIG = request_for([traced(i, attributes={"pad": "x" * 1000}) for i in range(8)]).SerializeToString()
GOOD = request_for([traced(1)]).SerializeToString()


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        pytest.param("POST", "/v1/logs", PB, GOOD, 404, id="other-path"),
        pytest.param("POST", "/", PB, GOOD, 404, id="root"),
        pytest.param("GET", "/v1/traces", {}, b"", 405, id="get"),
        pytest.param("PUT", "/v1/traces", PB, GOOD, 405, id="put"),
        pytest.param("POST", "/v1/traces", {"Content-Type": "text/plain"}, GOOD, 415, id="text"),
        pytest.param("POST", "/v1/traces", {}, GOOD, 415, id="no-content-type"),
        pytest.param("POST", "/v1/traces", {**PB, "Content-Encoding": "br"}, GOOD, 415, id="br"),
        pytest.param("POST", "/v1/traces", PB, BIG, 413, id="over-limit"),
        pytest.param(
            "POST",
            "/v1/traces",
            {**PB, "Content-Encoding": "gzip"},
            gzip.compress(BIG),
            413,
            id="over-limit-inflated",
        ),
        pytest.param("POST", "/v1/traces", PB, b"\x0a\xff\xff\xff\xff\x0f junk", 400, id="bad-pb"),
        pytest.param("POST", "/v1/traces", JSON, b"{not json", 400, id="bad-json"),
        pytest.param("POST", "/v1/traces", JSON, b"[]", 400, id="json-not-object"),
        pytest.param(
            "POST",
            "/v1/traces",
            JSON,
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex"}]}]}]}',
            400,
            id="json-bad-hex",
        ),
        pytest.param(
            "POST",
            "/v1/traces",
            JSON,
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}',
            400,
            id="json-negative-time",
        ),
        pytest.param(
            "POST", "/v1/traces", {**PB, "Content-Encoding": "gzip"}, GOOD, 400, id="not-gzip"
        ),
        pytest.param(
            "POST",
            "/v1/traces",
            {**PB, "Content-Encoding": "gzip"},
            gzip.compress(GOOD)[:-9],
            400,
            id="gzip-cut-short",
        ),
    ],
)
async def test_refusals(
    method: str, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    """Each bad request gets its status and a google.rpc.Status body; nothing is kept; the
    receiver keeps serving."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, max_message_bytes=LIMIT) as collector:
        base = f"http://127.0.0.1:{collector.http_port}"
        async with httpx.AsyncClient() as client:
            response = await client.request(method, base + path, content=body, headers=headers)
            assert response.status_code == status
            wants_json = headers.get("Content-Type") == "application/json"
            if wants_json:
                assert response.headers["content-type"] == "application/json"
                assert response.json()["message"]
            else:
                assert response.headers["content-type"] == "application/x-protobuf"
                assert response.content[:1] == b"\x08" and b"\x12" in response.content
            if status == 405:
                assert response.headers["allow"] == "POST"
            again = await client.post(base + "/v1/traces", content=GOOD, headers=PB)
            assert again.status_code == 200
        await collector.flush()
    assert [c.call_id for c in await store.query()] == [traced(1).call_id]
    assert collector.stats.malformed_requests == (1 if status == 400 else 0)
    assert collector._http is not None
    assert collector.stats.http_responses == {status: 1, 200: 1}


async def test_zip_bomb_is_refused_not_expanded() -> None:
    """64 MiB of zeros in 64 KiB of gzip: 413 after inflating no more than the limit."""
    import tracemalloc

    from asynctelemetry._collector._http import _TooLarge, inflate

    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    assert len(bomb) < 128 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(_TooLarge):
            inflate(bomb, "gzip", 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the limit (1 MiB) plus change, never 64 MiB
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, max_message_bytes=1 << 20) as collector:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                url(collector), content=bomb, headers={**PB, "Content-Encoding": "gzip"}
            )
    assert response.status_code == 413
    assert len(store) == 0


async def test_oversized_body_refused_before_it_is_sent() -> None:
    """With Expect: 100-continue and a Content-Length over the limit, 413 comes before the body."""
    async with AsyncCollector(MemoryStore(), port=0, http_port=0, max_message_bytes=LIMIT) as c:
        reader, writer = await asyncio.open_connection("127.0.0.1", c.http_port)
        writer.write(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_expect_continue_then_body_is_served() -> None:
    """A client waiting for 100 Continue gets it once the headers pass, then its answer."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0) as collector:
        reader, writer = await asyncio.open_connection("127.0.0.1", collector.http_port)
        writer.write(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            + f"Content-Length: {len(GOOD)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(GOOD)
        await writer.drain()
        final = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        await collector.flush()
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    assert final.startswith(b"HTTP/1.1 200")
    assert len(store) == 1


async def test_slow_body_gets_408_and_frees_its_slot() -> None:
    """A client that stops sending its body is answered 408 after read_timeout."""
    async with AsyncCollector(MemoryStore(), port=0, http_port=0) as collector:
        assert collector._http is not None
        collector._http.read_timeout = 0.2
        reader, writer = await asyncio.open_connection("127.0.0.1", collector.http_port)
        writer.write(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 10
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        assert collector._http.admission.in_flight == 0
    assert status_line.startswith(b"HTTP/1.1 408")


async def test_chunked_body_over_the_limit() -> None:
    """A chunked body with no Content-Length is cut off at the limit with 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"\x00" * 1024

    async with AsyncCollector(MemoryStore(), port=0, http_port=0, max_message_bytes=LIMIT) as c:
        async with httpx.AsyncClient() as client:
            response = await client.post(url(c), content=chunks(), headers=PB)
    assert response.status_code == 413


# -- auth ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="longer"),
        pytest.param({"Authorization": TOKEN}, id="no-scheme"),
        pytest.param({"X-Api-Key": TOKEN}, id="other-header"),
    ],
)
async def test_bearer_token(headers: dict[str, str]) -> None:
    """Without the exact bearer token: 401 with WWW-Authenticate, counted, token never echoed;
    with it, stored."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, auth_token=TOKEN) as collector:
        async with httpx.AsyncClient() as client:
            denied = await client.post(url(collector), content=GOOD, headers={**PB, **headers})
            allowed = await client.post(
                url(collector), content=GOOD, headers={**PB, "Authorization": f"Bearer {TOKEN}"}
            )
        await collector.flush()
    assert denied.status_code == 401
    assert denied.headers["www-authenticate"] == "Bearer"
    assert TOKEN.encode() not in denied.content
    assert allowed.status_code == 200
    assert collector.stats.unauthenticated == 1
    assert len(store) == 1


async def test_sdk_exporter_with_token_header() -> None:
    """The OTel SDK exporter's headers= carries the token; its spans are stored."""
    store = MemoryStore()
    async with AsyncCollector(store, port=0, http_port=0, auth_token=TOKEN) as collector:
        await asyncio.to_thread(
            sdk_export, url(collector), 3, "tok", headers={"authorization": f"Bearer {TOKEN}"}
        )
        await collector.flush()
    assert sorted(c.call_id for c in await store.query()) == ["tok-0", "tok-1", "tok-2"]


# -- backpressure ----------------------------------------------------------------------------
class GatedStore(MemoryStore):
    """A store whose add_many waits until the gate opens: a store that cannot keep up."""

    #: It writes the way a store doing I/O does (awaited): no synchronous fast path.
    emit_nowait = None

    def __init__(self) -> None:
        super().__init__(10_000)
        self.gate = asyncio.Event()

    async def add_many(self, calls: Sequence[LLMCall]) -> None:
        await self.gate.wait()
        await super().add_many(calls)


async def test_store_behind_gets_503_retry_after_then_retry_succeeds() -> None:
    """When the queue is full: 503 + Retry-After and nothing kept; the same request later: 200,
    every call stored once."""
    store = GatedStore()
    first = request_for([traced(i) for i in range(10)]).SerializeToString()
    second_calls = [traced(100 + i) for i in range(5)]
    second = request_for(second_calls).SerializeToString()
    async with AsyncCollector(
        store, port=0, http_port=0, max_queue=10, backpressure_timeout=0.05, retry_delay=2.5
    ) as collector:
        async with httpx.AsyncClient() as client:
            ok = await client.post(url(collector), content=first, headers=PB)
            refused = await client.post(url(collector), content=second, headers=PB)
            refused_json = await client.post(
                url(collector),
                json={
                    "resourceSpans": [
                        {
                            "scopeSpans": [
                                {
                                    "spans": [
                                        {
                                            "spanId": "0000000000000abc",
                                            "attributes": [
                                                {"key": "llm.model", "value": {"stringValue": "m"}}
                                            ],
                                        }
                                    ]
                                }
                            ]
                        }
                    ]
                },
            )
            store.gate.set()
            await collector.flush()
            retried = await client.post(url(collector), content=second, headers=PB)
        await collector.flush()
    assert ok.status_code == 200 and retried.status_code == 200
    assert refused.status_code == refused_json.status_code == 503
    assert refused.headers["retry-after"] == "3"  # 2.5 s, rounded up to whole seconds
    assert b"type.googleapis.com/google.rpc.RetryInfo" in refused.content
    assert refused_json.json()["details"][0]["retryDelay"] == "2.500s"
    stored = sorted(c.call_id for c in await store.query())
    assert stored == sorted(
        [traced(i).call_id for i in range(10)] + [c.call_id for c in second_calls]
    )
    assert collector.stats.refused_requests == 2


async def test_sdk_exporter_honours_retry_after() -> None:
    """The OTel SDK exporter, refused with 503 while the store is stuck, retries after
    Retry-After and its spans land once the store recovers."""
    store = GatedStore()
    async with AsyncCollector(
        store, port=0, http_port=0, max_queue=1, backpressure_timeout=0.02, retry_delay=0.2
    ) as collector:
        async with httpx.AsyncClient() as client:  # fill the queue: the next request is refused
            assert (await client.post(url(collector), content=GOOD, headers=PB)).status_code == 200
        sending = asyncio.create_task(asyncio.to_thread(sdk_export, url(collector), 1, "late"))
        while not collector.stats.refused_requests:
            await asyncio.sleep(0.01)
        store.gate.set()
        await asyncio.wait_for(sending, 20)
        await collector.flush()
    assert sorted(c.call_id for c in await store.query()) == sorted([traced(1).call_id, "late-0"])


async def test_too_many_requests_in_flight_get_429() -> None:
    """Past max_in_flight concurrent requests being worked on (bodies complete: none to shed),
    the next is answered 429 with Retry-After."""
    store = GatedStore()
    async with AsyncCollector(
        store,
        port=0,
        http_port=0,
        max_queue=1,
        backpressure_timeout=5.0,
        http_limits=HttpLimits(max_in_flight=1),
    ) as collector:
        assert collector._http is not None
        async with httpx.AsyncClient() as client:
            assert (await client.post(url(collector), content=GOOD, headers=PB)).status_code == 200
            waiting = asyncio.create_task(
                client.post(
                    url(collector), content=request_for([traced(2)]).SerializeToString(), headers=PB
                )
            )
            while not collector._http.admission.in_flight:
                await asyncio.sleep(0.01)
            busy = await client.post(url(collector), content=GOOD, headers=PB)
            store.gate.set()
            assert (await waiting).status_code == 200
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"


# -- TLS -------------------------------------------------------------------------------------
async def test_tls_with_self_signed_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With cert and key the HTTP port speaks TLS only: the SDK exporter and httpx trusting the
    certificate are served, plain HTTP is not."""
    # requests lets these variables override the exporter's certificate_file (session.verify)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert_path, key_path, cert_pem = self_signed_files(tmp_path)
    store = MemoryStore()
    async with AsyncCollector(
        store, port=0, http_port=0, tls_cert=cert_path, tls_key=key_path
    ) as collector:
        trusting = ssl.create_default_context(cadata=cert_pem.decode())
        async with httpx.AsyncClient(verify=trusting) as client:
            secure = await client.post(url(collector, "https"), content=GOOD, headers=PB)
        await asyncio.to_thread(
            sdk_export, url(collector, "https"), 2, "tls", certificate_file=str(cert_path)
        )
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):
                await client.post(url(collector), content=GOOD, headers=PB)
        await collector.flush()
    assert secure.status_code == 200
    assert sorted(c.call_id for c in await store.query()) == sorted(
        [traced(1).call_id, "tls-0", "tls-1"]
    )


# -- lifecycle -------------------------------------------------------------------------------
async def test_lifecycle_and_loopback_default() -> None:
    """Off unless asked; 0 picks a port on 127.0.0.1 only; gRPC and HTTP share one store; the
    port closes on stop; a taken port is a ConfigError that leaves nothing running."""
    plain = AsyncCollector(MemoryStore(), port=0)
    async with plain:
        assert plain.http_port is None
    with pytest.raises(ConfigError):
        AsyncCollector(MemoryStore(), http_port=70000)
    store = MemoryStore()
    collector = AsyncCollector(store, port=0, http_port=0)
    with pytest.raises(RuntimeError):
        _ = collector.http_port
    await collector.start()
    port = collector.http_port
    assert port and port != collector.port
    if sys.platform.startswith("linux"):
        assert listening(port) == {"127.0.0.1"}
    taken = AsyncCollector(MemoryStore(), port=0, http_port=port)
    with pytest.raises(ConfigError):
        await taken.start()
    assert not taken.is_running
    from .helpers import export

    async with httpx.AsyncClient() as client:
        response = await client.post(url(collector), content=GOOD, headers=PB)
    await export(collector.endpoint, request_for([traced(2)]))
    await collector.stop()
    assert response.status_code == 200
    assert sorted(c.call_id for c in await store.query()) == [traced(1).call_id, traced(2).call_id]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(StoreClosedError):
        await collector.start()
