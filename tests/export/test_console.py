"""The console sink: one readable line per call."""

from __future__ import annotations

import io

import pytest

from asynctelemetry import StoreClosedError
from asynctelemetry._export import ConsoleSink
from tests.conftest import make_call


async def test_one_readable_line_per_call() -> None:
    """Each call gives a line with time, status, model, tokens, TTFT, latency and cost."""
    stream = io.StringIO()
    async with ConsoleSink(stream) as sink:
        await sink.emit(
            [
                make_call(0, cached_input_tokens=50, duration_ms=1500.0, ttft_ms=120.0),
                make_call(9, error_type="RateLimitError", cost_usd=None),
            ]
        )
        await sink.flush()
    first, second = stream.getvalue().splitlines()
    assert first == (
        "00:00:00.000 ok        openai/gpt-4o chat in=100 (cached 50) out=20"
        " ttft=120ms latency=1.50s $0.000000"
    )
    assert "error RateLimitError" in second and "$?" in second
    assert "in=109 out=29" in second and "latency=109ms" in second
    assert sink.lines == 2


async def test_closed_console_refuses() -> None:
    """emit after aclose raises StoreClosedError."""
    sink = ConsoleSink(io.StringIO())
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(StoreClosedError):
        await sink.emit([make_call(0)])
