"""The short soak: ``benchmarks/soak.py`` for a few seconds, with its checks as assertions."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


async def test_short_soak_keeps_every_call_and_leaks_nothing(tmp_path: Path) -> None:
    """8 s of OTLP load from a process plus tracer load: stored == sent, no task left, bounded."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from soak import soak
    finally:
        sys.path.remove(str(BENCHMARKS))
    result = await soak(8.0, load_rate=1000, tracer_rate=100, directory=str(tmp_path))
    assert result.sent_process > 0 and result.sent_tracer > 0
    assert result.stored == result.sent
    assert result.leaked_tasks == 0
    assert result.exporter_dropped == 0
    assert result.rss_growth_mb < result.rss_bound_mb
    assert result.lag_p99_ms < result.lag_bound_ms
    assert not result.failures, result.markdown()
