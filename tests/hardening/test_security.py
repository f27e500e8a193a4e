"""Security review as tests: loopback by default, constant-time auth, TLS, parameterised SQL,
content capture off by default, and no secret in a log line or a stored attribute."""

from __future__ import annotations

import contextlib
import hmac
import inspect
import ipaddress
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from asynctelemetry import AsyncCollector, AsyncTracer, LLMCall, MemoryStore, SQLiteStore
from asynctelemetry._batching import RetryPolicy
from asynctelemetry._collector import _auth
from asynctelemetry._export import OTLPGrpcExporter, OTLPHttpExporter
from asynctelemetry.metrics import MetricsRecorder, PrometheusExporter
from tests.collector.helpers import export, llm_span, request_of
from tests.tls import self_signed_files

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "s3cr3t-collector-token-5b1f"
API_KEY = "sk-live-9f8e7d6c5b4a"


def listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (Linux /proc/net)."""
    found: set[str] = set()
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, size // 2, 4))
                ip = ipaddress.ip_address(words)
                found.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


def test_every_listener_defaults_to_loopback() -> None:
    """The host default of every server is 127.0.0.1."""
    for server in (AsyncCollector, PrometheusExporter):
        assert inspect.signature(server).parameters["host"].default == "127.0.0.1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net")
async def test_listeners_bind_only_loopback() -> None:
    """Started with defaults, the collector and /metrics listen on 127.0.0.1 and nothing else."""
    async with AsyncCollector(MemoryStore(), port=0) as collector:
        assert listening(collector.port) == {"127.0.0.1"}
    exporter = PrometheusExporter(port=0, registry=MetricsRecorder())
    async with exporter:
        assert listening(exporter.port) == {"127.0.0.1"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net")
async def test_otlp_http_listener_binds_only_loopback() -> None:
    """With ``http_port=0`` the OTLP/HTTP listener is on 127.0.0.1 too (when this build has it)."""
    from asynctelemetry import ConfigError

    try:
        collector = AsyncCollector(MemoryStore(), port=0, http_port=0)
    except ConfigError:
        pytest.skip("this build has no OTLP/HTTP receiver yet")
    async with collector:
        http_port = collector.http_port  # type: ignore[attr-defined]
        assert listening(http_port) == {"127.0.0.1"}


def test_auth_uses_constant_time_comparison() -> None:
    """The bearer check goes through hmac.compare_digest (read from the source)."""
    source = inspect.getsource(_auth.BearerTokenInterceptor.allows)
    assert "hmac.compare_digest(" in source
    assert "== self._expected" not in source and "self._expected ==" not in source


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(None, id="missing"),
        pytest.param((("authorization", "Bearer wrong"),), id="wrong"),
        pytest.param((("authorization", f"Bearer {TOKEN}x"),), id="longer"),
        pytest.param((("authorization", f"Bearer {TOKEN[:-1]}"),), id="prefix"),
        pytest.param((("authorization", TOKEN),), id="no-scheme"),
        pytest.param((("authorization", f"bearer {TOKEN}"),), id="lowercase-scheme"),
        pytest.param((("x-api-key", TOKEN),), id="other-header"),
    ],
)
async def test_wrong_or_missing_token_is_unauthenticated(
    metadata: tuple[tuple[str, str], ...] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every wrong token is UNAUTHENTICATED, through compare_digest; nothing is stored."""
    compared: list[int] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(1)
        return real(a, b)

    monkeypatch.setattr(_auth.hmac, "compare_digest", spy)
    store = MemoryStore()
    async with AsyncCollector(store, port=0, auth_token=TOKEN) as collector:
        request = request_of([llm_span({"gen_ai.request.model": "gpt-4o"})])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(collector.endpoint, request, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert TOKEN not in (caught.value.details() or "")
        await export(collector.endpoint, request, metadata=(("authorization", f"Bearer {TOKEN}"),))
        await collector.flush()
    assert compared and len(store) == 1 and collector.stats.unauthenticated == 1


async def test_tls_and_token_with_our_exporter(tmp_path: Path) -> None:
    """Our gRPC exporter over TLS with a bearer token is served; without the token it is not."""
    cert, key, pem = self_signed_files(tmp_path)
    store = MemoryStore()
    creds = grpc.ssl_channel_credentials(root_certificates=pem)
    async with AsyncCollector(
        store, port=0, tls_cert=cert, tls_key=key, auth_token=TOKEN
    ) as collector:
        good = OTLPGrpcExporter(
            f"https://localhost:{collector.port}",
            credentials=creds,
            headers={"authorization": f"Bearer {TOKEN}"},
            flush_interval=0.01,
        )
        bad = OTLPGrpcExporter(
            f"https://localhost:{collector.port}", credentials=creds, flush_interval=0.01
        )
        async with AsyncTracer(sinks=[good, bad]) as tracer:
            async with tracer.llm_call(model="gpt-4o", provider="openai"):
                pass
            await good.flush()
            # flush() raises the failure when it happens while it waits; a batch already given
            # up on (a busy machine) is settled: the exporter's stats say what happened.
            with contextlib.suppress(Exception):
                await bad.flush()
            queue = bad.stats.queue
            assert queue.delivered == 0 and "UNAUTHENTICATED" in (queue.last_error or "")
        await collector.flush()
    assert len(store) == 1 and collector.stats.unauthenticated == 1


NASTY = [
    "'; DROP TABLE calls; --",
    "a\"b'c",
    "Robert'); DELETE FROM calls WHERE ('1'='1",
    "x' OR '1'='1",
    "%_\\",
    "ünïcødé ✓ 模型 🚀",
    "\\'; --",
]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_sql_is_parameterised(tmp_path: Path, kind: str) -> None:
    """Quotes and SQL fragments in every text field come back intact via query/summary/replay."""
    path = tmp_path / "it's; DROP TABLE calls.db"
    calls = [
        LLMCall(
            call_id=f"id-{i}-{text}",
            timestamp=datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC),
            model=text,
            provider=text,
            session_id=text,
            route_name=text,
            error_type=text,
            attributes={text: text, "n": i, f"{text}.k": "'"},
        )
        for i, text in enumerate(NASTY)
    ]
    store: Any = SQLiteStore(path) if kind == "sqlite" else MemoryStore()
    async with store:
        await store.add_many(calls)
        await store.flush()
        assert await store.query() == calls
        for call in calls:
            for field in ("model", "provider", "session_id"):
                assert await store.query(**{field: call.model}) == [call]
            assert await store.count(model=call.model) == 1
        for by in ("model", "provider", "session", "route"):
            assert sorted(row.key for row in await store.summary(by=by)) == sorted(NASTY)
        assert [c async for c in store.replay()] == calls
        assert await store.count(model="x' OR '1'='1") == 1
        assert await store.count() == len(NASTY)
    if kind == "sqlite":
        async with SQLiteStore(path) as again:
            assert await again.query() == calls


async def test_content_capture_is_off_by_default() -> None:
    """Prompt text set on a traced call or sent in a span is dropped by default."""
    for cls in (AsyncTracer, AsyncCollector):
        assert inspect.signature(cls).parameters["capture_content"].default is False
    async with AsyncTracer(in_memory=True) as tracer:
        async with tracer.llm_call(model="gpt-4o") as call:
            call.set_attribute("gen_ai.input.messages", "my secret prompt")
            call.set_attribute("input.value", "my secret prompt")
            call.set_attribute("app.ok", "kept")
    assert tracer.spans[0].attributes == {"app.ok": "kept"}
    store = MemoryStore()
    span = llm_span(
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.prompt.0.content": "my secret prompt",
            "llm.input_messages.0.message.content": "my secret prompt",
            "output.value": "the answer",
            "app.ok": "kept",
        }
    )
    async with AsyncCollector(store, port=0) as collector:
        await export(collector.endpoint, request_of([span]))
        await collector.flush()
    (stored,) = await store.query()
    assert stored.attributes == {"app.ok": "kept"}


async def test_no_secret_reaches_a_log_line_or_a_record(caplog: pytest.LogCaptureFixture) -> None:
    """Failing auth, failing exports and a dead endpoint: no token or API key in any log line."""
    caplog.set_level(logging.DEBUG)
    store = MemoryStore()
    headers = {"authorization": f"Bearer {TOKEN}-wrong", "api-key": API_KEY}
    retry = RetryPolicy(initial=0.01, maximum=0.02, max_attempts=2)
    async with AsyncCollector(store, port=0, auth_token=TOKEN) as collector:
        exporters: list[Any] = [
            OTLPGrpcExporter(
                f"http://{collector.endpoint}", headers=headers, retry=retry, flush_interval=0.01
            ),
            OTLPGrpcExporter(
                "http://127.0.0.1:9", headers=headers, retry=retry, flush_interval=0.01
            ),
            OTLPHttpExporter(
                "http://127.0.0.1:9/v1/traces", headers=headers, retry=retry, flush_interval=0.01
            ),
        ]
        async with AsyncTracer(sinks=exporters, in_memory=True) as tracer:
            async with tracer.llm_call(model="gpt-4o", provider="openai", user="u1"):
                pass
            for exporter in exporters:
                # Every delivery fails on purpose. flush() raises the failure when it happens
                # while it waits; a batch given up on before flush() was called (a busy machine
                # lets the short retries run out first) is settled already: read the stats.
                with contextlib.suppress(Exception):
                    await exporter.flush()
                queue = exporter.stats.queue
                assert queue.delivered == 0 and queue.last_error is not None
        with pytest.raises(grpc.aio.AioRpcError):
            await export(
                collector.endpoint,
                request_of([llm_span({"gen_ai.request.model": "gpt-4o"})]),
                metadata=(("authorization", f"Bearer {API_KEY}"),),
            )
    assert collector.stats.unauthenticated >= 2
    assert caplog.records, "the failures should have been logged"
    texts = [caplog.text, *(str(e.stats.queue.last_error) for e in exporters)]
    texts += [repr(c.attributes) for c in [*tracer.spans, *(await store.query())]]
    for text in texts:
        assert TOKEN not in text and API_KEY not in text
