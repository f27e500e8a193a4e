"""A local HTTP server speaking the OpenAI, Anthropic, Google GenAI (Gemini API and Vertex AI)
and Mistral (under ``/mistral``) wire formats, streaming included.

Only the remote model is fake: the real ``openai``, ``anthropic`` and ``google-genai`` SDKs talk
to it over HTTP on 127.0.0.1. A request steers the answer with headers (the SDKs pass them with
``extra_headers``, google-genai with ``config={"http_options": {"headers": ...}}``):

- ``x-chunks``: how many content chunks a stream sends (default 3);
- ``x-delay``: seconds before each streamed chunk (default 0.005), so TTFT is measurable;
- ``x-status``: answer with this HTTP error status and the provider's error body;
- ``x-fail-after``: a stream sends this many content chunks, then an error event;
- ``x-tool-calls``: how many tool calls the answer makes (default 0), unless the request already
  carries a tool's result (an agent's next turn), which is answered with text.

Usage is fixed per provider (the constants below) so tests can assert exact counts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

from aiohttp import web

OPENAI_MODEL = "gpt-4o-2024-08-06"
GEMINI_MODEL = "gemini-2.5-flash-001"
MISTRAL_MODEL = "mistral-small-2506"
# Mistral: OpenAI's fields without details; a stream's last chunk always carries them.
MISTRAL_USAGE = {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}
ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"
# OpenAI: prompt 50 (20 cached reads, 5 cache writes), completion 12 (4 reasoning).
OPENAI_USAGE = {
    "prompt_tokens": 50,
    "completion_tokens": 12,
    "total_tokens": 62,
    "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 5},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
RESPONSES_USAGE = {
    "input_tokens": 40,
    "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 3},
    "total_tokens": 49,
}
# Anthropic: input 30 uncached + 200 cache reads + 15 cache writes; output 42.
ANTHROPIC_USAGE = {
    "input_tokens": 30,
    "cache_read_input_tokens": 200,
    "cache_creation_input_tokens": 15,
    "output_tokens": 42,
}
# Google: prompt 60 (25 of them cached content) + 5 tool-use prompt; candidates 14 + 6 thoughts.
GOOGLE_USAGE = {
    "promptTokenCount": 60,
    "cachedContentTokenCount": 25,
    "toolUsePromptTokenCount": 5,
    "candidatesTokenCount": 14,
    "thoughtsTokenCount": 6,
    "totalTokenCount": 85,
}


class LLMServer:
    """The server; ``url`` once started. Counts the requests it answered by path."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/mistral/v1/chat/completions", self.chat)
        app.router.add_post("/mistral/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.messages)
        # Google: /v1beta/models/{model}:{method} (Gemini API) and
        # /v1beta1/[projects/{p}/locations/{l}/]publishers/google/models/{model}:{method} (Vertex).
        app.router.add_post("/{version}/{resource:.+}:{method}", self.google)
        # Handlers still streaming at the end of a test are cut short, not waited for.
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self.url = ""
        self.requests: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    # -- helpers ------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        self.requests[request.path] = self.requests.get(request.path, 0) + 1
        body: dict[str, Any] = await request.json()
        self.bodies.append(body)
        return body

    @staticmethod
    def _knobs(request: web.Request) -> tuple[int, float, int | None, int | None, int]:
        headers = request.headers
        fail = headers.get("x-fail-after")
        status = headers.get("x-status")
        return (
            int(headers.get("x-chunks", "3")),
            float(headers.get("x-delay", "0.005")),
            None if status is None else int(status),
            None if fail is None else int(fail),
            int(headers.get("x-tool-calls", "0")),
        )

    @staticmethod
    async def _sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, data: object, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {event}\n" if event else ""
        try:
            await response.write(f"{head}data: {text}\n\n".encode())
        except ConnectionResetError:  # the client closed the stream: stop sending
            raise asyncio.CancelledError from None

    # -- OpenAI -------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's chat completions, or Mistral's under /mistral: its usage always ends a
        stream (on the chunk with the finish reason), and a failing stream is cut off."""
        body = await self._body(request)
        chunks, delay, status, fail_after, tools = self._knobs(request)
        mistral = request.path.startswith("/mistral/")
        model, usage = (MISTRAL_MODEL, MISTRAL_USAGE) if mistral else (OPENAI_MODEL, OPENAI_USAGE)
        if status is not None:
            return _mistral_error(status) if mistral else _openai_error(status)
        if any(m.get("role") == "tool" for m in body.get("messages", ())):
            tools = 0  # the tool answered: this turn ends the run with text
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "x"}'},
            }
            for i in range(tools)
        ]
        if not body.get("stream"):
            if "x-delay" in request.headers:
                await asyncio.sleep(delay)
            text = '{"text": "Hello there"}' if body.get("response_format") else "Hello there"
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = calls
            return web.json_response(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )
        response = await self._sse(request)
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1}
        base["model"] = model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {**base, "choices": [choice]}

        await self._send(response, chunk({"role": "assistant", "content": ""}))
        for i in range(chunks):
            await asyncio.sleep(delay)
            if fail_after is not None and i == fail_after:
                if mistral:  # the connection drops mid-stream
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                await self._send(response, {"error": {"message": "overloaded", "type": "server"}})
                return response
            await self._send(response, chunk({"content": f"w{i} "}))
        for i, call in enumerate(calls):
            await self._send(response, chunk({"tool_calls": [{"index": i, **call}]}))
        if mistral:
            await self._send(response, {**chunk({"content": ""}, "stop"), "usage": usage})
            await self._send(response, "[DONE]")
            return response
        await self._send(response, chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await self._send(response, {**base, "choices": [], "usage": OPENAI_USAGE})
        await self._send(response, "[DONE]")
        return response

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        chunks, delay, status, fail_after, _ = self._knobs(request)
        if status is not None:
            return _openai_error(status)
        text = "".join(f"w{i} " for i in range(chunks))
        done = _response_object(text, "completed", RESPONSES_USAGE)
        if not body.get("stream"):
            return web.json_response(done)
        response = await self._sse(request)
        seq = iter(range(1000))
        started = _response_object("", "in_progress", None)
        for kind in ("response.created", "response.in_progress"):
            await self._send(
                response, {"type": kind, "sequence_number": next(seq), "response": started}, kind
            )
        item = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        await self._send(
            response,
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": item,
                "sequence_number": next(seq),
            },
            "response.output_item.added",
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        added = {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": part,
            "sequence_number": next(seq),
        }
        await self._send(response, added, added["type"])
        for i in range(chunks):
            await asyncio.sleep(delay)
            if fail_after is not None and i == fail_after:
                event = {
                    "type": "error",
                    "code": "server_error",
                    "message": "overloaded",
                    "param": None,
                    "sequence_number": next(seq),
                }
                await self._send(response, event, "error")
                return response
            event = {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": f"w{i} ",
                "logprobs": [],
                "sequence_number": next(seq),
            }
            await self._send(response, event, event["type"])
        final = {"type": "response.completed", "response": done, "sequence_number": next(seq)}
        await self._send(response, final, final["type"])
        return response

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        _, _, status, _, _ = self._knobs(request)
        mistral = request.path.startswith("/mistral/")
        if status is not None:
            return _mistral_error(status) if mistral else _openai_error(status)
        vector = [0.25, -0.5, 1.0]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack("<3f", *vector)).decode()
        return web.json_response(
            {
                "id": "embd-1",
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
                "model": "mistral-embed" if mistral else "text-embedding-3-small",
                "usage": {"prompt_tokens": 8, "total_tokens": 8},
            }
        )

    # -- Anthropic ----------------------------------------------------------------------------
    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        chunks, delay, status, fail_after, tools = self._knobs(request)
        if status is not None:
            kind = "rate_limit_error" if status == 429 else "overloaded_error"
            return web.json_response(
                {"type": "error", "error": {"type": kind, "message": "busy"}}, status=status
            )
        text = "".join(f"w{i} " for i in range(chunks))
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        content += [
            {"type": "tool_use", "id": f"toolu_{i}", "name": "lookup", "input": {"q": "x"}}
            for i in range(tools)
        ]
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": ANTHROPIC_USAGE,
        }
        if not body.get("stream"):
            return web.json_response(message)
        response = await self._sse(request)
        start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        await self._send(response, {"type": "message_start", "message": start}, "message_start")
        await self._send(response, {"type": "ping"}, "ping")
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        await self._send(response, block, "content_block_start")
        for i in range(chunks):
            await asyncio.sleep(delay)
            if fail_after is not None and i == fail_after:
                error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
                await self._send(response, error, "error")
                return response
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"w{i} "},
            }
            await self._send(response, delta, "content_block_delta")
        await self._send(response, {"type": "content_block_stop", "index": 0}, "content_block_stop")
        for i in range(tools):
            tool = {"type": "tool_use", "id": f"toolu_{i}", "name": "lookup", "input": {}}
            await self._send(
                response,
                {"type": "content_block_start", "index": i + 1, "content_block": tool},
                "content_block_start",
            )
            await self._send(
                response,
                {
                    "type": "content_block_delta",
                    "index": i + 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"q": "x"}'},
                },
                "content_block_delta",
            )
            await self._send(
                response, {"type": "content_block_stop", "index": i + 1}, "content_block_stop"
            )
        end = {"stop_reason": "end_turn", "stop_sequence": None}
        await self._send(
            response,
            {"type": "message_delta", "delta": end, "usage": ANTHROPIC_USAGE},
            "message_delta",
        )
        await self._send(response, {"type": "message_stop"}, "message_stop")
        return response

    # -- Google GenAI -------------------------------------------------------------------------
    async def google(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if method in ("embedContent", "batchEmbedContents"):
            return await self.google_embed(request, method)
        if method not in ("generateContent", "streamGenerateContent"):
            raise web.HTTPNotFound
        await self._body(request)
        chunks, delay, status, fail_after, tools = self._knobs(request)
        if status is not None:
            return _google_error(status)
        calls = [{"functionCall": {"name": "lookup", "args": {"q": "x"}}} for _ in range(tools)]
        if method == "generateContent":
            if "x-delay" in request.headers:
                await asyncio.sleep(delay)
            text = "".join(f"w{i} " for i in range(chunks))
            return web.json_response(
                _google_response([{"text": text}, *calls], "STOP", GOOGLE_USAGE)
            )
        response = await self._sse(request)
        for i in range(chunks):
            await asyncio.sleep(delay)
            if fail_after is not None and i == fail_after:
                error = {"code": 500, "message": "overloaded", "status": "INTERNAL"}
                await self._send(response, {"error": error})
                return response
            so_far = {"promptTokenCount": 60, "totalTokenCount": 60 + i}
            await self._send(response, _google_response([{"text": f"w{i} "}], None, so_far))
        await self._send(response, _google_response(calls, "STOP", GOOGLE_USAGE))
        return response

    async def google_embed(self, request: web.Request, method: str) -> web.StreamResponse:
        body = await self._body(request)
        _, _, status, _, _ = self._knobs(request)
        if status is not None:
            return _google_error(status)
        vector = {"values": [0.25, -0.5, 1.0]}
        if method == "embedContent":
            return web.json_response({"embedding": vector})
        return web.json_response({"embeddings": [vector for _ in body.get("requests", [])]})


def _google_response(
    parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": GEMINI_MODEL,
        "responseId": "resp-1",
    }


def _google_error(status: int) -> web.Response:
    error = {
        "code": status,
        "message": "Resource has been exhausted",
        "status": "RESOURCE_EXHAUSTED",
    }
    return web.json_response({"error": error}, status=status)


def _mistral_error(status: int) -> web.Response:
    error = {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited"}
    return web.json_response({**error, "param": None, "code": "1300"}, status=status)


def _openai_error(status: int) -> web.Response:
    return web.json_response(
        {"error": {"message": "rate limited", "type": "requests", "param": None, "code": None}},
        status=status,
    )


def _response_object(text: str, status: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    output = []
    if text:
        output = [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": OPENAI_MODEL,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }
