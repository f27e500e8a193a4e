"""The screenshots of docs/dashboard.md, made from the page in Chromium over one store: the
overview, the calls table, a trace's waterfall, a session's conversation and the errors, in the
light and the dark colour scheme.

Every run draws each view and checks it shows its data; with ``ASYNCTELEMETRY_SCREENSHOTS=1``
the images are written to docs/ (``dashboard[-<view>][-dark].png``: the overview is
``dashboard.png``), else to a temporary directory:

    ASYNCTELEMETRY_SCREENSHOTS=1 .venv/bin/python -m pytest tests/ui/test_screenshots.py
"""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import LLMCall, TraceSpan
from tests.conftest import make_call

from .conftest import WAIT_MS, Served
from .test_sessions import conversation, tool_step

if TYPE_CHECKING:
    from collections.abc import Iterator

DOCS = Path(__file__).resolve().parents[2] / "docs"
ERRORS = (
    ("RateLimitError", "Rate limit reached for gpt-4o in organization org-1 on tokens per min"),
    ("APITimeoutError", "Request timed out."),
    ("BadRequestError", "This model's maximum context length is 128000 tokens"),
)


def agent_run(now: datetime) -> list[LLMCall | TraceSpan]:
    """A support agent's run: the agent, a retrieval, two tools (one failing), three calls."""
    trace = "5c1a0e7a4f2b4c3d9e8f7a6b5c4d3e2f"
    root = TraceSpan(span_id="run", trace_id=trace, name="support-agent", kind="agent",
                     agent_name="support-agent", user_id="ann", session_id="chat-1",
                     timestamp=now, duration_ms=4200.0)  # fmt: skip
    steps: list[LLMCall | TraceSpan] = [root]
    layout = [
        ("retrieve", "retrieval", 150, 380, "ok"),
        ("lookup_order", "tool", 1400, 260, "ok"),
        ("refund", "tool", 2600, 900, "error"),
    ]
    for name, kind, start, length, status in layout:
        steps.append(
            TraceSpan(span_id=name, trace_id=trace, parent_span_id="run", name=name, kind=kind,
                      tool_name=name if kind == "tool" else None, agent_name="support-agent",
                      status=status, error_type="PermissionError" if status == "error" else None,
                      error_message="refunds over $500 need a human" if status == "error" else None,
                      timestamp=now + timedelta(milliseconds=start), duration_ms=float(length))
        )  # fmt: skip
    for k, (start, length) in enumerate([(560, 800), (1700, 850), (3550, 600)]):
        steps.append(
            make_call(3000 + k, call_id=f"run-call-{k}", trace_id=trace, span_id=f"run-c{k}",
                      parent_span_id="run", agent_name="support-agent", status="ok",
                      timestamp=now + timedelta(milliseconds=start), duration_ms=float(length),
                      model="gpt-4o", request_model="gpt-4o", provider="openai",
                      cost_usd=0.004 * (k + 1))
        )  # fmt: skip
    return steps


def failures(now: datetime) -> list[LLMCall]:
    """Failed calls of three kinds over the last 40 minutes."""
    return [
        make_call(4000 + i, call_id=f"failed-{i}", status="error",
                  error_type=ERRORS[i % 3][0], error_message=ERRORS[i % 3][1],
                  timestamp=now - timedelta(seconds=150 * i), cost_usd=None)
        for i in range(1, 14)
    ]  # fmt: skip


@pytest.fixture
def rich(served: Served) -> Iterator[Served]:
    """The served store with an agent run, a conversation and failures added."""
    now = datetime.now(UTC)
    served.add([*agent_run(now - timedelta(minutes=3)), *conversation(), tool_step(),
                *failures(now)])  # fmt: skip
    yield served


def _size(png: Path) -> tuple[int, int]:
    """A PNG's width and height (its IHDR chunk)."""
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_every_view(rich: Served, browser: Any, tmp_path: Path, scheme: str) -> None:
    """Each view of the docs draws its data in both colour schemes; its screenshot is kept."""
    out = DOCS if os.environ.get("ASYNCTELEMETRY_SCREENSHOTS") == "1" else tmp_path
    suffix = "" if scheme == "light" else "-dark"
    context = browser.new_context(
        viewport={"width": 1360, "height": 900}, color_scheme=scheme, device_scale_factor=1
    )
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(rich.url)
        page.wait_for_function("() => Number(document.body.dataset.refreshes || 0) >= 1")
        page.uncheck("#live")  # the same picture every time: no redraw while it is taken
        shots: dict[str, Path] = {}

        def shoot(view: str, target: Any) -> None:
            name = "dashboard" + ("" if view == "overview" else f"-{view}") + suffix
            path = out / f"{name}.png"
            target.screenshot(path=str(path))
            shots[view] = path

        shoot("overview", page)
        calls = page.locator("#calls")
        assert calls.locator("tbody tr").count() >= 60
        calls.scroll_into_view_if_needed()
        shoot("calls", page.locator("section", has=calls))
        errors_table = page.locator("#errors")
        assert "RateLimitError" in errors_table.inner_text()
        shoot("errors", page.locator("section", has=errors_table))
        page.locator("#traces tbody tr", has_text="support-agent").first.click()
        page.wait_for_selector("#detail table.waterfall")
        assert page.locator("#detail table.waterfall tbody tr").count() == 7
        shoot("trace", page.locator("#detail"))
        page.click("#detail-close")
        page.locator("#calls tbody tr[data-call-id='turn-1'] a.session-link").click()
        page.wait_for_selector('#session-view[data-session-id="chat-1"][data-turns="3"]')
        shoot("session", page.locator("#detail"))
        assert errors == []
    finally:
        context.close()
    for view, path in shots.items():
        width, height = _size(path)
        assert width >= 600 and height >= 100, (view, width, height)
