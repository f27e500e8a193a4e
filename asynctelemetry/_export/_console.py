"""A sink that prints one readable line per call (not a raw span dump) to a text stream."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from .._batching import ClosesOnExit, Lifecycle

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Self

    from .._record import LLMCall

__all__ = ["ConsoleSink", "format_call"]


def _millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def format_call(call: LLMCall) -> str:
    """One line: time, status, provider/model, operation, tokens, TTFT, latency, cost."""
    stamp = call.timestamp.strftime("%H:%M:%S.%f")[:-3]
    model = f"{call.provider}/{call.model}" if call.provider else call.model
    tokens = f"in={call.input_tokens if call.input_tokens is not None else '-'}"
    if call.cached_input_tokens:
        tokens += f" (cached {call.cached_input_tokens})"
    tokens += f" out={call.output_tokens if call.output_tokens is not None else '-'}"
    if call.reasoning_tokens:
        tokens += f" (reasoning {call.reasoning_tokens})"
    cost = f"${call.cost_usd:.6f}" if call.cost_usd is not None else "$?"
    status = call.status if call.status != "error" else f"error {call.error_type or ''}".rstrip()
    line = (
        f"{stamp} {status:<9} {model} {call.operation} {tokens}"
        f" ttft={_millis(call.ttft_ms)} latency={_millis(call.duration_ms)} {cost}"
    )
    if call.cache_hit and call.cache_hit != "miss":
        line += f" cache={call.cache_hit}"
    return line


class ConsoleSink(ClosesOnExit):
    """Writes :func:`format_call` lines for every call it is given.

    Args:
        stream: where to write (``sys.stderr`` by default, looked up at each write so that
            redirection after construction is honoured).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._life = Lifecycle("ConsoleSink")
        self.lines = 0

    @property
    def stream(self) -> TextIO:
        """The stream lines go to."""
        return self._stream if self._stream is not None else sys.stderr

    async def emit(self, calls: Sequence[LLMCall]) -> None:
        """Write one line per call (a single write per batch)."""
        self._life.check()
        if calls:
            self.stream.write("".join(format_call(call) + "\n" for call in calls))
            self.lines += len(calls)

    async def flush(self) -> None:
        """Flush the stream."""
        self.stream.flush()

    async def aclose(self) -> None:
        """Flush and refuse further calls; the stream itself is left open. Idempotent."""
        await self._life.close(self.flush)

    async def __aenter__(self) -> Self:
        self._life.check()
        self._life.opened()
        return self
