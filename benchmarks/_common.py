"""Helpers shared by the benchmark scripts: timing, event-loop lag, RSS and the results table."""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence


def best_of(fn: Callable[[], float], repeat: int = 5) -> float:
    """Run ``fn`` (which returns seconds per operation) ``repeat`` times; keep the fastest."""
    return min(fn() for _ in range(repeat))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class LagMonitor:
    """Measures event-loop lag: a task that sleeps 1 ms and records how late it wakes.

    ``lags`` are the wall-clock overshoots. ``held`` are the parts of them that were work on the
    loop's thread: the smaller of the overshoot and the thread's CPU time in the window
    (``time.thread_time``), so time the OS gave to other processes of a shared machine does not
    count. ``held`` is what a store or an exporter makes the loop wait; ``lags`` what an app sees.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.held: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - before - self.interval)
            self.lags.append(late)
            self.held.append(min(late, time.thread_time() - cpu))

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def clear(self) -> None:
        """Forget the samples so far."""
        self.lags.clear()
        self.held.clear()

    def p99_ms(self, values: list[float] | None = None) -> float:
        """99th percentile (nearest rank) of ``values`` (default: ``lags``) in milliseconds."""
        ordered = sorted(self.lags if values is None else values)
        if not ordered:
            return 0.0
        return ordered[max(0, int(0.99 * len(ordered) + 0.999999) - 1)] * 1000


def machine() -> str:
    """A one-line description of the machine the figures come from."""
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"


def table(title: str, rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    """A Markdown table with a title line, for the console and for docs/performance.md."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: tuple[Any, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [f"### {title}", "", line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def now() -> float:
    """A monotonic clock in seconds."""
    return time.perf_counter()


async def generate_in_postgres(
    dsn: str,
    n: int,
    step: int,
    chunk: Callable[[Any, int, int], Awaitable[object]],
    analyze: Sequence[str],
) -> float:
    """Fill a PostgreSQL database server-side: ``chunk(conn, lo, hi)`` for each range of ``step``
    record numbers below ``n``, on two connections at once, then ANALYZE the ``analyze`` tables
    (our own constant names); seconds taken."""
    import asyncpg

    ranges = [(lo, min(lo + step, n) - 1) for lo in range(0, n, step)]
    started = time.perf_counter()

    async def worker() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while ranges:
                lo, hi = ranges.pop(0)
                await chunk(conn, lo, hi)
        finally:
            await conn.close()

    await asyncio.gather(worker(), worker())
    conn = await asyncpg.connect(dsn)
    try:
        for name in analyze:
            await conn.execute(f"ANALYZE {name}")
    finally:
        await conn.close()
    return time.perf_counter() - started
