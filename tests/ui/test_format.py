"""The page's one formatting module (``static/format.js``), run in Chromium: separators, units,
sensible precision, and unknown never written as 0."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import make_call

if TYPE_CHECKING:
    from .conftest import Served, Watched

FORMAT_JS = Path(__file__).resolve().parents[2] / "asynctelemetry" / "ui" / "static" / "format.js"

CASES = [
    pytest.param("count", [1234567], "1,234,567", id="count-separators"),
    pytest.param("count", [None], "—", id="count-unknown"),
    pytest.param("count", [0], "0", id="count-zero-is-zero"),
    pytest.param("duration", [781.6310219636391], "782 ms", id="duration-ms"),
    pytest.param("duration", [78.16], "78.2 ms", id="duration-ms-3-digits"),
    pytest.param("duration", [0.4213], "0.421 ms", id="duration-sub-ms"),
    pytest.param("duration", [13297], "13.3 s", id="duration-seconds"),
    pytest.param("duration", [1000], "1.00 s", id="duration-one-second"),
    pytest.param("duration", [133_000], "2 min 13 s", id="duration-minutes"),
    pytest.param("duration", [3_720_000], "1 h 02 min", id="duration-hours"),
    pytest.param("duration", [None], "—", id="duration-unknown"),
    pytest.param("usd", [None], "unknown", id="usd-unknown"),
    pytest.param("usd", [0], "$0", id="usd-zero"),
    pytest.param("usd", [0.75], "$0.750", id="usd-cents"),
    pytest.param("usd", [0.000123456], "$0.000123", id="usd-tiny"),
    pytest.param("usd", [1234.5], "$1,234.50", id="usd-separators"),
    pytest.param("cost", [1.5, 2, 10], "$1.50 + 2 unpriced", id="cost-partly-unpriced"),
    pytest.param("cost", [0, 3, 3], "unknown", id="cost-all-unpriced"),
    pytest.param("tokens", [12345], "12,345 tok", id="tokens"),
    pytest.param("pct", [0.0123], "1.23%", id="pct-small"),
    pytest.param("pct", [0.25], "25.0%", id="pct"),
    pytest.param("pct", [None], "—", id="pct-unknown"),
    pytest.param("compact", [12500], "12.5k", id="compact-k"),
    pytest.param("compact", [3_400_000], "3.4M", id="compact-m"),
    pytest.param("time", ["2026-12-07T17:05:13.123456+00:00"], "2026-12-07 17:05:13", id="time"),
    pytest.param("field", ["duration_ms", 781.6310219636391], "782 ms", id="field-duration"),
    pytest.param("field", ["cost_usd", None], "—", id="field-unknown"),
    pytest.param("field", ["input_tokens", 1500], "1,500 tok", id="field-tokens"),
]


@pytest.fixture(scope="module")
def blank(browser: Any) -> Any:
    """A page holding only format.js."""
    page = browser.new_page()
    page.add_script_tag(content=FORMAT_JS.read_text(encoding="utf-8"))
    yield page
    page.close()


@pytest.mark.parametrize(("name", "args", "expected"), CASES)
def test_format(blank: Any, name: str, args: list[Any], expected: str) -> None:
    """Each figure is written with separators, its unit and three significant digits."""
    shown = blank.evaluate(f"window.Format.{name}(...{json.dumps(args)})")
    assert shown == expected


def test_call_dialog_formats_figures(served: Served, watched: Watched) -> None:
    """The call dialog writes a duration with its unit and three digits, not the raw float."""
    call = make_call(9001, call_id="raw-float", timestamp=datetime.now(UTC),
                     duration_ms=781.6310219636391, input_tokens=13297)  # fmt: skip
    served.add([call])
    watched.open(served.url)
    page = watched.page
    page.locator("#calls tbody tr[data-call-id='raw-float']").click()
    page.wait_for_selector("#detail[open]")
    rows = dict(
        page.eval_on_selector_all(
            "#detail-body table.fields tr",
            "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])",
        )
    )
    assert rows["duration_ms"] == "782 ms"
    assert rows["input_tokens"] == "13,297 tok"
    assert "781.631" not in page.text_content("#detail-body")
