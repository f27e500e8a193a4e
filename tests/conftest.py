"""Shared fixtures. Internal errors are re-raised under the suite so that bugs surface."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

os.environ["ASYNCTELEMETRY_STRICT"] = "1"
# litellm reads its model cost map from its own package, never from the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from typing import TYPE_CHECKING

from asynctelemetry import LLMCall, PriceTable

from .pg import Server, schema_dsn, shared_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_call(i: int = 0, **fields: object) -> LLMCall:
    """A valid call whose fields vary with ``i``; ``fields`` override any of them."""
    values: dict[str, object] = {
        "call_id": f"call-{i:06d}",
        "timestamp": T0 + timedelta(seconds=i),
        "model": ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash")[i % 3],
        "provider": ("openai", "anthropic", "google")[i % 3],
        "operation": "chat",
        "session_id": f"s{i % 4}",
        "status": "error" if i % 10 == 9 else "ok",
        "input_tokens": 100 + i,
        "output_tokens": 20 + i % 50,
        "duration_ms": 100.0 + i,
        "ttft_ms": 10.0 + i % 7,
        "cost_usd": 0.001 * (i % 5),
    }
    values.update(fields)
    return LLMCall.model_validate(values)


def varied_text(n: int) -> str:
    """``n`` characters (3 bytes each in UTF-8) that do not compress: a btree entry cannot
    shrink them."""
    return "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(n))


@pytest.fixture(scope="session", autouse=True)
def price_data() -> None:
    """The price data, loaded once per test process: a tracer not entered with ``async with``
    hands its first records on only once it is loaded (in a thread), and most tests read
    ``tracer.spans`` right after a call. The cold start is tested in fresh subprocesses
    (tests/test_first_calls.py)."""
    PriceTable.default().load()


@pytest.fixture
def calls() -> list[LLMCall]:
    """Forty varied calls, oldest first."""
    return [make_call(i) for i in range(40)]


@pytest.fixture(scope="session")
def pg_server() -> Server:
    """The PostgreSQL server of this pytest process (each xdist worker starts its own, on its
    own port; stopped when the process exits)."""
    return shared_server()


@pytest.fixture
async def pg_dsn(pg_server: Server) -> AsyncIterator[str]:
    """The DSN of a fresh, empty schema on the test server (dropped after the test)."""
    async with schema_dsn() as dsn:
        yield dsn
