"""Usage extraction from provider responses and stream events, as dicts and as SDK-like objects."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import genai_prices
import pytest

from asynctelemetry import PriceTable, Usage, usage_from_response
from asynctelemetry._usage import read_chunk, usage_from_chunk


def ns(value: Any) -> Any:
    """The same payload as nested attribute objects, as SDK response objects are."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: ns(v) for k, v in value.items()})
    if isinstance(value, list):
        return [ns(v) for v in value]
    return value


OPENAI_CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0},
    },
}
OPENAI_RESPONSES = {
    "id": "resp_1",
    "object": "response",
    "model": "o4-mini-2025-04-16",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "c1",
            "name": "lookup",
            "arguments": "{}",
        },
        {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
    ],
    "usage": {
        "input_tokens": 2000,
        "input_tokens_details": {"cached_tokens": 1500},
        "output_tokens": 700,
        "output_tokens_details": {"reasoning_tokens": 512},
        "total_tokens": 2700,
    },
}
ANTHROPIC = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    ],
    "stop_reason": "tool_use",
    "usage": {
        "input_tokens": 2000,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 6000,
        "output_tokens": 1000,
    },
}
GOOGLE_REST = {  # the Gemini REST API: camelCase
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Checking"},
                    {"functionCall": {"name": "get_weather", "args": {}}},
                ],
            }
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 5000,
        "cachedContentTokenCount": 4000,
        "candidatesTokenCount": 200,
        "thoughtsTokenCount": 300,
        "totalTokenCount": 5500,
    },
    "modelVersion": "gemini-2.5-flash",
}
GOOGLE_SDK = {  # google-genai objects: snake_case attributes
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": None, "function_call": {"name": "a", "args": {}}},
                    {"text": None, "function_call": {"name": "b", "args": {}}},
                ],
            }
        }
    ],
    "usage_metadata": {
        "prompt_token_count": 5000,
        "cached_content_token_count": 4000,
        "candidates_token_count": 200,
        "thoughts_token_count": 300,
        "total_token_count": 5500,
    },
    "model_version": "gemini-2.5-flash",
}
BEDROCK_CONVERSE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "x", "input": {}}}],
        }
    },
    "usage": {
        "inputTokens": 100,
        "cacheReadInputTokens": 900,
        "cacheWriteInputTokens": 0,
        "outputTokens": 50,
        "totalTokens": 1050,
    },
}

EXPECTED = {
    "openai_chat": Usage(1200, 300, 1500, 1024, None, 128, 2, "gpt-4o-2024-08-06"),
    "openai_responses": Usage(2000, 700, 2700, 1500, None, 512, 1, "o4-mini-2025-04-16"),
    "anthropic": Usage(10_000, 1000, 11_000, 6000, 2000, None, 1, "claude-3-5-sonnet-20241022"),
    "google_rest": Usage(5000, 500, 5500, 4000, None, 300, 1, "gemini-2.5-flash"),
    "google_sdk": Usage(5000, 500, 5500, 4000, None, 300, 2, "gemini-2.5-flash"),
    "bedrock": Usage(1000, 50, 1050, 900, 0, None, 1, None),
}
PAYLOADS = {
    "openai_chat": OPENAI_CHAT,
    "openai_responses": OPENAI_RESPONSES,
    "anthropic": ANTHROPIC,
    "google_rest": GOOGLE_REST,
    "google_sdk": GOOGLE_SDK,
    "bedrock": BEDROCK_CONVERSE,
}


@pytest.mark.parametrize("shape", list(PAYLOADS))
@pytest.mark.parametrize("as_object", [False, True], ids=["dict", "object"])
def test_usage_from_response(shape: str, as_object: bool) -> None:
    """Each provider's response, as JSON or as attribute objects, gives our normalised usage."""
    payload = json.loads(json.dumps(PAYLOADS[shape]))
    assert usage_from_response(ns(payload) if as_object else payload) == EXPECTED[shape]


@pytest.mark.parametrize(
    ("shape", "provider", "flavor"),
    [
        pytest.param("openai_chat", "openai", "chat", id="openai-chat"),
        pytest.param("openai_responses", "openai", "responses", id="openai-responses"),
        pytest.param("anthropic", "anthropic", "default", id="anthropic"),
        pytest.param("google_rest", "google", "default", id="google"),
    ],
)
def test_usage_agrees_with_genai_prices_extract_usage(
    shape: str, provider: str, flavor: str
) -> None:
    """genai-prices' own extractor (same semantics as ours) reads the same numbers from the JSON."""
    extracted = genai_prices.extract_usage(
        PAYLOADS[shape], provider_id=provider, api_flavor=flavor
    ).usage
    ours = usage_from_response(PAYLOADS[shape])
    assert ours is not None
    assert ours.input_tokens == extracted.input_tokens
    assert ours.output_tokens == extracted.output_tokens
    assert (ours.cached_input_tokens or 0) == extracted.cache_read_tokens
    assert (ours.cache_creation_tokens or 0) == extracted.cache_write_tokens


def test_cost_is_the_same_for_both_usage_shapes() -> None:
    """One call reported OpenAI-style or Anthropic-style costs the same, as genai-prices says."""
    anthropic_style = {
        "model": "claude-3-5-sonnet-20241022",
        "type": "message",
        "content": [],
        "usage": {
            "input_tokens": 2000,
            "cache_read_input_tokens": 6000,
            "cache_creation_input_tokens": 2000,
            "output_tokens": 1000,
        },
    }
    openai_style = {
        "model": "claude-3-5-sonnet-20241022",
        "choices": [],
        "usage": {
            "prompt_tokens": 10_000,
            "completion_tokens": 1000,
            "prompt_tokens_details": {"cached_tokens": 6000, "cache_write_tokens": 2000},
        },
    }
    table = PriceTable.default()
    costs = []
    for payload in (anthropic_style, openai_style):
        usage = usage_from_response(payload)
        assert usage is not None and usage.response_model is not None
        costs.append(table.cost_of(usage.response_model, "anthropic", **_cost_fields(usage)))
    reference = genai_prices.extract_usage(anthropic_style, provider_id="anthropic")
    expected = float(reference.calc_price().total_price)
    assert costs[0] == pytest.approx(expected) and costs[1] == pytest.approx(expected)
    assert expected == pytest.approx(0.0303)


def _cost_fields(usage: Usage) -> dict[str, int | None]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


@pytest.mark.parametrize(
    "resp",
    [
        pytest.param(None, id="none"),
        pytest.param("text", id="string"),
        pytest.param({}, id="empty"),
        pytest.param({"usage": None}, id="usage-none"),
        pytest.param({"usage": 5}, id="usage-number"),
        pytest.param(SimpleNamespace(choices=[]), id="no-usage-attr"),
    ],
)
def test_no_usage_gives_none(resp: object) -> None:
    """Objects without a usage block give None, never an exception."""
    assert usage_from_response(resp) is None


def test_odd_values_are_missing_not_errors() -> None:
    """Negative, boolean, fractional or textual counts are treated as not reported."""
    usage = usage_from_response(
        {
            "usage": {
                "prompt_tokens": -5,
                "completion_tokens": True,
                "total_tokens": "12",
                "prompt_tokens_details": {"cached_tokens": 2.5},
            },
            "choices": "nope",
            "model": 3,
        }
    )
    assert usage == Usage()
    whole = usage_from_response({"usage": {"prompt_tokens": 10.0, "completion_tokens": 2}})
    assert whole is not None and (whole.input_tokens, whole.total_tokens) == (10, 12)


# -- streaming -----------------------------------------------------------------------------


def _merged(events: list[Any]) -> Usage:
    total = Usage()
    for event in events:
        total = total.merge(usage_from_chunk(event))
    return total


OPENAI_STREAM = [
    {
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "role": "assistant",
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
                    ],
                },
            }
        ],
        "usage": None,
    },
    {
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}
        ],
        "usage": None,
    },
    {
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}}
                    ]
                },
            }
        ],
        "usage": None,
    },
    {
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [],
        "usage": {
            "prompt_tokens": 812,
            "completion_tokens": 95,
            "total_tokens": 907,
            "prompt_tokens_details": {"cached_tokens": 512},
        },
    },
]
ANTHROPIC_STREAM = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {
                "input_tokens": 20,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 30,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 95}},
    {"type": "message_stop"},
]
GOOGLE_STREAM = [
    {
        "candidates": [{"content": {"parts": [{"text": "a"}]}}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 1},
        "modelVersion": "gemini-2.5-flash",
    },
    {
        "candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}],
        "usageMetadata": {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 10,
            "totalTokenCount": 130,
        },
        "modelVersion": "gemini-2.5-flash",
    },
]
RESPONSES_STREAM = [
    {"type": "response.created", "response": {"object": "response", "output": []}},
    {"type": "response.output_text.delta", "delta": "Hi"},
    {"type": "response.completed", "response": OPENAI_RESPONSES},
]


@pytest.mark.parametrize("as_object", [False, True], ids=["dict", "object"])
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(OPENAI_STREAM, Usage(812, 95, 907, 512, None, None, 2, "gpt-4o"), id="openai"),
        pytest.param(
            ANTHROPIC_STREAM,
            Usage(1050, 95, 1145, 1000, 30, None, 1, "claude-sonnet-4-5"),
            id="anthropic",
        ),
        pytest.param(
            GOOGLE_STREAM, Usage(100, 30, 130, None, None, 10, 1, "gemini-2.5-flash"), id="google"
        ),
        pytest.param(RESPONSES_STREAM, EXPECTED["openai_responses"], id="responses"),
    ],
)
def test_stream_usage_merges(events: list[Any], expected: Usage, as_object: bool) -> None:
    """Merging the usage of each event gives the stream's total usage and tool calls."""
    assert _merged([ns(e) for e in events] if as_object else events) == expected


def test_chunks_without_usage_give_none() -> None:
    """Events that say nothing about usage or tools give None."""
    assert usage_from_chunk(ANTHROPIC_STREAM[2]) is None
    assert usage_from_chunk(ANTHROPIC_STREAM[-1]) is None
    assert usage_from_chunk(OPENAI_STREAM[1]) is None
    assert usage_from_chunk(RESPONSES_STREAM[1]) is None
    assert usage_from_chunk(None) is None


def test_merge_rules() -> None:
    """Later non-None counts win, tool calls add up, and a missing total is recomputed."""
    first = Usage(
        input_tokens=10, output_tokens=1, total_tokens=11, tool_calls=1, response_model="m"
    )
    later = Usage(output_tokens=50, tool_calls=2)
    merged = first.merge(later)
    assert merged == Usage(10, 50, 60, None, None, None, 3, "m")
    assert first == Usage(
        input_tokens=10, output_tokens=1, total_tokens=11, tool_calls=1, response_model="m"
    )  # merge returns a new object
    assert first.merge(None) == first and first.merge(None) is not first
    assert first.merge(Usage(total_tokens=99)).total_tokens == 99


def _chat(delta: dict[str, Any]) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "model": "m", "choices": [{"delta": delta}]}


@pytest.mark.parametrize("as_object", [False, True], ids=["dict", "object"])
@pytest.mark.parametrize(
    ("chunk", "carries_output"),
    [
        pytest.param(_chat({"role": "assistant", "content": ""}), False, id="chat role frame"),
        pytest.param(_chat({"content": "Hi"}), True, id="chat content"),
        pytest.param(OPENAI_STREAM[0], True, id="chat tool call"),
        pytest.param(_chat({"refusal": "no"}), True, id="chat refusal"),
        pytest.param(_chat({"reasoning_content": "hmm"}), True, id="chat reasoning"),
        pytest.param(_chat({}), False, id="chat finish frame"),
        pytest.param(OPENAI_STREAM[-1], False, id="chat usage chunk"),
        pytest.param(ANTHROPIC_STREAM[0], False, id="message_start"),
        pytest.param({"type": "ping"}, False, id="ping"),
        pytest.param(ANTHROPIC_STREAM[1], False, id="empty text block"),
        pytest.param(ANTHROPIC_STREAM[2], True, id="text delta"),
        pytest.param(ANTHROPIC_STREAM[4], True, id="tool_use block"),
        pytest.param(ANTHROPIC_STREAM[6], False, id="message_delta"),
        pytest.param(RESPONSES_STREAM[0], False, id="response.created"),
        pytest.param(RESPONSES_STREAM[1], True, id="output_text.delta"),
        pytest.param(
            {"type": "response.output_item.added", "item": {"type": "function_call"}},
            True,
            id="function_call item",
        ),
        pytest.param(
            {"type": "response.output_item.added", "item": {"type": "message"}},
            False,
            id="message item",
        ),
        pytest.param(RESPONSES_STREAM[2], False, id="response.completed"),
        pytest.param(GOOGLE_STREAM[0], True, id="google parts"),
    ],
)
def test_first_token_is_the_first_chunk_with_output(
    chunk: Any, carries_output: bool, as_object: bool
) -> None:
    """read_chunk tells chunks that carry output (the first one is the first token) from
    opening, keep-alive and usage-only frames."""
    content, _ = read_chunk(ns(chunk) if as_object else chunk)
    assert content is carries_output


def test_unknown_chunks_count_as_output() -> None:
    """A chunk of a shape not known here is a token (wrap_stream over anything)."""
    assert read_chunk(42) == (True, None)
    assert read_chunk("text") == (True, None)
    assert read_chunk(None) == (False, None)


def test_the_opening_chat_frame_names_the_model() -> None:
    """The role frame reports the answering model even when no usage chunk follows."""
    _, usage = read_chunk(_chat({"role": "assistant", "content": ""}))
    assert usage is not None and usage.response_model == "m" and usage.input_tokens is None
