"""Fixtures: the local model server and clients of the real SDKs pointed at it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from mistralai.client import Mistral

from asynctelemetry import AsyncTracer

from .llm_server import LLMServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    """The fake OpenAI/Anthropic server on 127.0.0.1, a free port."""
    llm = LLMServer()
    await llm.start()
    yield llm
    await llm.stop()


@pytest.fixture
async def tracer() -> AsyncIterator[AsyncTracer]:
    """A tracer keeping its calls in memory."""
    async with AsyncTracer(in_memory=True) as tracer:
        yield tracer


@pytest.fixture
async def oai(server: LLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """A real ``openai.AsyncOpenAI`` talking to the local server (no retries)."""
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def claude(server: LLMServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """A real ``anthropic.AsyncAnthropic`` talking to the local server (no retries)."""
    client = anthropic.AsyncAnthropic(base_url=server.url, api_key="test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def mistral(server: LLMServer) -> AsyncIterator[Mistral]:
    """A real ``mistralai.client.Mistral`` talking to the local server's Mistral paths."""
    async with Mistral(api_key="test", server_url=f"{server.url}/mistral") as client:
        yield client


@pytest.fixture
def gemini(server: LLMServer) -> genai.Client:
    """A real ``google.genai.Client`` (Gemini API) talking to the local server (no retries)."""
    options = genai_types.HttpOptions(base_url=server.url, retry_options=None)
    return genai.Client(api_key="test", http_options=options)
