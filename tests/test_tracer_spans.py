"""The tracer's live OpenTelemetry SDK spans (custom_exporter / tracer_provider)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from asynctelemetry._tracer import AsyncTracer


async def test_spans_follow_the_genai_conventions_and_carry_racto_keys() -> None:
    """Span name, kind, gen_ai.* and llm.* attributes, resource and timing match the record."""
    exporter = InMemorySpanExporter()
    async with AsyncTracer(custom_exporter=exporter, in_memory=True, service_name="app") as tracer:
        async with tracer.llm_call(model="gpt-4o", provider="openai", session_id="conv-1") as call:
            await asyncio.sleep(0.01)
            call.set_usage(input_tokens=120, output_tokens=30, cached_input_tokens=100)
            call.set(cache_hit="semantic", tool_calls=1)
        [record] = tracer.spans
    [span] = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai" == attrs["llm.provider"]
    assert attrs["gen_ai.request.model"] == "gpt-4o" == attrs["llm.model"]
    assert attrs["gen_ai.usage.input_tokens"] == 120 == attrs["llm.input_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == 30 == attrs["llm.output_tokens"]
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.conversation.id"] == "conv-1"
    assert attrs["llm.cache_hit"] == "semantic" and attrs["llm.tool_calls"] == 1
    assert attrs["llm.cost_usd"] == pytest.approx(record.cost_usd)
    assert attrs["llm.latency_ms"] == record.duration_ms
    assert span.resource.attributes["service.name"] == "app"
    # The span really spans the call: its times are the call's.
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time // 1000 == int(record.timestamp.timestamp() * 1e6)
    assert (span.end_time - span.start_time) / 1e6 == pytest.approx(record.duration_ms, abs=1e-3)
    assert f"{span.context.span_id:016x}" == record.span_id == record.call_id
    assert f"{span.context.trace_id:032x}" == record.trace_id


async def test_spans_carry_the_current_genai_names() -> None:
    """A streamed call's span has the 2026 GenAI keys: cache_write, reasoning.output_tokens,
    request.stream and time_to_first_chunk in seconds; not the replaced cache_creation name."""
    exporter = InMemorySpanExporter()
    async with AsyncTracer(custom_exporter=exporter, in_memory=True) as tracer:
        async with tracer.llm_call(model="claude-sonnet-4-5", operation="stream") as call:
            await asyncio.sleep(0.01)
            call.first_token()
            call.set_usage(
                input_tokens=900,
                output_tokens=60,
                cached_input_tokens=500,
                cache_creation_tokens=300,
                reasoning_tokens=20,
            )
        [record] = tracer.spans
    [span] = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert record.ttft_ms is not None
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.time_to_first_chunk"] == pytest.approx(record.ttft_ms / 1000)
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 300
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 20
    assert "gen_ai.usage.cache_creation.input_tokens" not in attrs


async def test_failed_calls_set_error_status_and_error_type() -> None:
    """A failing call's span has status ERROR and error.type / llm.error_type."""
    exporter = InMemorySpanExporter()
    async with AsyncTracer(custom_exporter=exporter) as tracer:
        with pytest.raises(TimeoutError):
            async with tracer.llm_call(model="claude-haiku-4-5", provider="anthropic"):
                raise TimeoutError
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "TimeoutError"
    assert (span.attributes or {})["llm.error_type"] == "TimeoutError"


async def test_failed_calls_carry_the_message_user_agent_and_tags() -> None:
    """A failing call's span: status description = the exception's text, an ``exception``
    event with type and message; the user, agent and tags under their convention keys."""
    exporter = InMemorySpanExporter()
    async with AsyncTracer(custom_exporter=exporter, in_memory=True) as tracer:
        with tracer.context(user_id="u-1", tags=("beta",)), pytest.raises(ValueError):
            async with tracer.llm_call(model="gpt-4o", provider="openai") as call:
                call.set(agent_name="planner")
                raise ValueError("the model refused ✓")
        [record] = tracer.spans
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "the model refused ✓" == record.error_message
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {
        "exception.type": "ValueError",
        "exception.message": "the model refused ✓",
    }
    attrs = dict(span.attributes or {})
    assert attrs["user.id"] == "u-1" and attrs["gen_ai.agent.name"] == "planner"
    assert attrs["tag.tags"] == ("beta",)


async def test_sdk_spans_nest_and_are_current_inside_the_block() -> None:
    """Inside the block the call's span is current: user spans and nested calls are children."""
    from opentelemetry import trace

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    async with AsyncTracer(custom_exporter=exporter, tracer_provider=provider) as tracer:
        with provider.get_tracer("app").start_as_current_span("request") as root:
            async with tracer.llm_call(model="gpt-4o") as outer:
                assert trace.get_current_span().get_span_context().span_id == int(outer.span_id, 16)

                async def child() -> None:
                    async with tracer.llm_call(model="gpt-4o-mini"):
                        await asyncio.sleep(0)

                await asyncio.gather(child(), child())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert outer.parent_span_id == f"{root.get_span_context().span_id:016x}"
    children = [s for s in exporter.get_finished_spans() if s.name == "chat gpt-4o-mini"]
    assert len(children) == 2
    assert all(
        s.parent is not None and s.parent.span_id == int(outer.span_id, 16) for s in children
    )
    assert spans["chat gpt-4o"].context.trace_id == root.get_span_context().trace_id


async def test_span_export_is_batched_in_the_loop_not_in_a_thread_processor() -> None:
    """Ended spans queue in the event loop; no SDK batch thread is started by the tracer."""
    before = {t.name for t in threading.enumerate()}
    exporter = InMemorySpanExporter()
    tracer = AsyncTracer(custom_exporter=exporter)
    for _ in range(100):
        async with tracer.llm_call(model="gpt-4o"):
            pass
    assert not any("OtelBatch" in t.name for t in threading.enumerate() if t.name not in before)
    await tracer.flush()
    assert len(exporter.get_finished_spans()) == 100
    await tracer.aclose()
