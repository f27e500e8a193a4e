"""instrument/uninstrument, refusals, content capture, concurrency, context and OTel context."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asynctelemetry import AsyncTracer, ConfigError

from .test_openai import MESSAGES, USAGE, collect, only

if TYPE_CHECKING:
    from .llm_server import LLMServer


@pytest.mark.parametrize(
    ("make", "async_name"),
    [
        pytest.param(lambda: openai.OpenAI(api_key="x"), "openai.AsyncOpenAI", id="OpenAI"),
        pytest.param(
            lambda: openai.AzureOpenAI(
                api_key="x", api_version="2024-10-21", azure_endpoint="http://127.0.0.1:9"
            ),
            "openai.AsyncAzureOpenAI",
            id="AzureOpenAI",
        ),
        pytest.param(
            lambda: anthropic.Anthropic(api_key="x"), "anthropic.AsyncAnthropic", id="Anthropic"
        ),
    ],
)
async def test_sync_client_is_refused_naming_the_async_class(
    tracer: AsyncTracer, make: Any, async_name: str
) -> None:
    """A synchronous client: ConfigError naming the async class to use instead."""
    client = make()
    with pytest.raises(ConfigError, match=async_name.replace(".", r"\.") + " instead"):
        tracer.instrument(client)
    client.close()


async def test_other_objects_are_refused(tracer: AsyncTracer) -> None:
    """Anything else: ConfigError naming the supported clients."""
    with pytest.raises(ConfigError, match=r"openai\.AsyncOpenAI"):
        tracer.instrument(object())


async def test_uninstrument(tracer: AsyncTracer, oai: openai.AsyncOpenAI) -> None:
    """After uninstrument no call is recorded; a stream returned before stays traced; both
    operations are idempotent."""
    tracer.instrument(oai)
    tracer.instrument(oai)
    stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    tracer.uninstrument(oai)
    tracer.uninstrument(oai)
    await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert tracer.spans == []
    async for _ in stream:
        pass
    assert only(tracer).operation == "stream"
    assert "request" not in vars(oai)


async def test_a_second_tracer_is_refused(server: LLMServer, oai: openai.AsyncOpenAI) -> None:
    """One client, one tracer: another tracer can neither instrument nor uninstrument it."""
    async with AsyncTracer() as first, AsyncTracer() as second:
        first.instrument(oai)
        with pytest.raises(ConfigError, match="another tracer"):
            second.instrument(oai)
        with pytest.raises(ConfigError, match="another tracer"):
            second.uninstrument(oai)
        first.uninstrument(oai)
        second.instrument(oai)
        second.uninstrument(oai)


async def test_content_is_not_captured_by_default(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    """Without capture_content no prompt or completion text reaches a record."""
    tracer.instrument(oai)
    tracer.instrument(claude)
    await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        pass
    await claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    assert len(tracer.spans) == 3
    assert all(record.attributes == {} for record in tracer.spans)


async def test_content_is_captured_when_asked(
    server: LLMServer, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    """capture_content=True: prompts and completions (plain and streamed) as GenAI attributes."""
    async with AsyncTracer(in_memory=True, capture_content=True) as tracer:
        tracer.instrument(oai)
        tracer.instrument(claude)
        await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass
        async with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, system="Be brief"
        ) as helper:
            await helper.get_final_message()
        await oai.responses.create(model="gpt-4o", input="hi", instructions="Be brief")
        plain, streamed, messages, responses = tracer.spans
    for record in (plain, streamed, messages):
        assert json.loads(record.attributes["gen_ai.input.messages"]) == MESSAGES
    assert json.loads(plain.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "content": "Hello there"}
    ]
    for record in (streamed, messages, responses):
        output = json.loads(str(record.attributes["gen_ai.output.messages"]))
        assert output == [{"role": "assistant", "content": "w0 w1 w2 "}]
    assert messages.attributes["gen_ai.system_instructions"] == "Be brief"
    assert responses.attributes["gen_ai.input.messages"] == "hi"


async def test_long_content_is_cut_to_the_attribute_bound(
    server: LLMServer, oai: openai.AsyncOpenAI
) -> None:
    """A prompt longer than an attribute may be is cut to 4096 characters, never refused."""
    async with AsyncTracer(in_memory=True, capture_content=True) as tracer:
        tracer.instrument(oai)
        long = [{"role": "user", "content": "x" * 10_000}]
        await oai.chat.completions.create(model="gpt-4o", messages=long)  # type: ignore[arg-type]
        assert len(str(only(tracer).attributes["gen_ai.input.messages"])) == 4096


async def test_a_hundred_concurrent_streams_give_a_hundred_records(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    """100 streams at once (both SDKs, some read to the end, some left early): 100 records,
    distinct ids, each with its own usage."""
    tracer.instrument(oai)
    tracer.instrument(claude)

    async def one(i: int) -> None:
        if i % 2:
            stream: Any = await oai.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options=USAGE
            )
        else:
            stream = await claude.messages.create(
                model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES, stream=True
            )
        async with stream:
            async for count, _ in aenumerate(stream):
                if i % 5 == 0 and count == 2:
                    break

    async with asyncio.TaskGroup() as group:
        for i in range(100):
            group.create_task(one(i))
    await collect(tracer)
    records = tracer.spans
    assert len(records) == 100
    assert len({record.call_id for record in records}) == 100
    assert all(record.status == "ok" for record in records)
    inputs = sorted((r.provider or "", r.input_tokens or 0) for r in records)
    # Anthropic reports input first (message_start); the ten OpenAI streams left after two
    # chunks never saw the final usage chunk.
    assert inputs == [("anthropic", 245)] * 50 + [("openai", 0)] * 10 + [("openai", 50)] * 40


async def aenumerate(stream: Any) -> Any:
    """``enumerate`` for an async iterator."""
    count = 0
    async for item in stream:
        yield count, item
        count += 1


async def test_context_values_reach_instrumented_calls_and_tasks(
    tracer: AsyncTracer, oai: openai.AsyncOpenAI
) -> None:
    """tracer.context(...) sets session, route and attributes of calls inside it, in tasks
    created inside it too; calls outside carry none."""
    tracer.instrument(oai)
    async with tracer.context(session_id="s1", route_name="support", team="blue"):
        await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        task = asyncio.create_task(
            oai.embeddings.create(model="text-embedding-3-small", input="hi")
        )
    await task
    await oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    inside, in_task, outside = tracer.spans
    for record in (inside, in_task):
        assert (record.session_id, record.route_name) == ("s1", "support")
        assert record.attributes == {"team": "blue"}
    assert (outside.session_id, outside.route_name, outside.attributes) == (None, None, {})


async def test_streams_ended_in_another_task_leave_no_context_behind(
    server: LLMServer, oai: openai.AsyncOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream created in one task and finished in another, with live OTel SDK spans: no
    "Failed to detach context", the span is exported, and the creating task's later calls are
    not children of the stream's call."""
    exporter = InMemorySpanExporter()
    async with AsyncTracer(in_memory=True, custom_exporter=exporter) as tracer:
        tracer.instrument(oai)
        streams: asyncio.Queue[Any] = asyncio.Queue()

        async def producer() -> None:
            stream = await oai.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True
            )
            await streams.put(stream)
            async with tracer.llm_call(model="after") as call:
                assert call.parent_span_id is None

        async def consumer() -> None:
            stream = await streams.get()
            async for _ in stream:
                pass

        with caplog.at_level(logging.ERROR):
            await asyncio.gather(producer(), consumer())
            await tracer.flush()
        stream_call = next(r for r in tracer.spans if r.operation == "stream")
        assert stream_call.status == "ok" and stream_call.ttft_ms is not None
    assert "Failed to detach context" not in caplog.text
    assert {span.name for span in exporter.get_finished_spans()} == {"stream gpt-4o", "chat after"}
