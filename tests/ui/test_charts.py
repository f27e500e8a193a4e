"""The dashboard's charts in Chromium: legends that wrap and never clip, every colour drawn in
its legend, labels whole on the left, tooltips on hover and by keyboard, the errors chart naming
the models that fail, latency percentiles and error rates over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tests.conftest import make_call

if TYPE_CHECKING:
    from .conftest import Served, Watched

CHARTS = ("chart-cost", "chart-calls", "chart-errors", "chart-error-rate", "chart-latency-time",
          "chart-latency", "chart-tokens")  # fmt: skip
LONG = "a-very-long-fine-tuned-model-name-from-a-customer-deployment-v{}"


def _many_models(served: Served) -> None:
    """Twelve models with long names and many successful calls, and one model that fails
    every time with few calls (so it is not among the largest by calls)."""
    now = datetime.now(UTC)
    calls = [
        make_call(20_000 + i, timestamp=now - timedelta(seconds=30 * i), model=LONG.format(i % 12),
                  request_model=None, status="ok")
        for i in range(240)
    ]  # fmt: skip
    calls += [
        make_call(21_000 + i, timestamp=now - timedelta(seconds=40 * i), model="flaky-model",
                  request_model=None, status="error", error_type="APIError", error_message="boom")
        for i in range(3)
    ]  # fmt: skip
    served.add(calls)


def test_every_colour_drawn_is_in_the_legend_and_legends_never_clip(
    served: Served, watched: Watched
) -> None:
    """With thirteen models of long names: each chart's legend lies inside its figure (it
    wraps), and every fill a chart draws is a swatch of its legend."""
    _many_models(served)
    watched.open(served.url)
    page = watched.page
    for chart in CHARTS:
        found = page.evaluate(
            """id => {
              const box = document.getElementById(id).closest("figure").getBoundingClientRect();
              const drawn = [...document.querySelectorAll(`#${id} svg .bars rect,
                 #${id} svg path.line, #${id} svg circle.dot, #${id} svg > rect:not(.hit)`)]
                .map(n => getComputedStyle(n)[n.tagName === "path" ? "stroke" : "fill"]);
              const swatches = [...document.querySelectorAll(`#${id} .legend .swatch`)]
                .map(n => getComputedStyle(n).backgroundColor);
              const items = [...document.querySelectorAll(`#${id} .legend li`)].map(li => {
                const b = li.getBoundingClientRect();
                return b.left >= box.left - 0.5 && b.right <= box.right + 0.5
                  && b.bottom <= box.bottom + 0.5;
              });
              return { drawn: [...new Set(drawn)], swatches: swatches, inside: items };
            }""",
            chart,
        )
        assert found["drawn"], chart
        assert set(found["drawn"]) <= set(found["swatches"]), chart
        assert found["inside"] and all(found["inside"]), chart
    rows = page.eval_on_selector_all(
        "#chart-calls .legend li",
        "lis => new Set(lis.map(l => Math.round(l.getBoundingClientRect().top))).size",
    )
    assert rows >= 2  # nine entries of long names wrap onto several rows


def test_the_errors_chart_names_the_models_that_fail(served: Served, watched: Watched) -> None:
    """The errors chart ranks its series by errors, not calls: a model with few calls that
    fails every time is named (in its own colour), not folded into grey "other"."""
    _many_models(served)
    watched.open(served.url)
    names = watched.page.eval_on_selector_all(
        "#chart-errors .legend li", "lis => lis.map(l => l.textContent)"
    )
    assert "flaky-model" in names and "other" not in names
    rates = watched.page.eval_on_selector_all(
        "#chart-error-rate .legend li", "lis => lis.map(l => l.textContent)"
    )
    assert "flaky-model" in rates


def test_model_labels_are_whole_on_the_left(served: Served, watched: Watched) -> None:
    """The per-model bars leave room for their labels: none starts left of the chart, and a
    label cut to fit ends in "…" with the whole name in its tooltip."""
    _many_models(served)
    watched.open(served.url)
    page = watched.page
    lefts = page.evaluate(
        """() => {
          const svg = document.querySelector("#chart-latency svg").getBoundingClientRect();
          return [...document.querySelectorAll("#chart-latency svg text.axis")]
            .map(t => t.getBoundingClientRect().left - svg.left);
        }"""
    )
    assert lefts and min(lefts) >= 0
    hit = page.locator("#chart-latency .hit").first
    hit.hover()
    tip = page.text_content("#chart-tip") or ""
    assert tip.startswith(LONG.format("")[:20]) or tip.startswith("claude") or tip.startswith("gpt")
    assert "p95 latency: " in tip


def test_tooltips_on_hover_and_by_keyboard(served: Served, watched: Watched) -> None:
    """Hovering a bucket shows its values in a tooltip (not an SVG title); a chart is one tab
    stop, the arrow keys move between buckets with the same tooltip, Escape hides it."""
    watched.open(served.url)
    page = watched.page
    assert page.locator("#chart-calls svg title").count() == 0
    hits = page.locator("#chart-calls .hit")
    assert hits.count() >= 2
    hits.nth(1).hover()
    assert page.is_visible("#chart-tip")
    first = page.text_content("#chart-tip") or ""
    assert " UTC" in first and ": " in first
    page.mouse.move(0, 0)
    assert not page.is_visible("#chart-tip")
    stops = page.eval_on_selector_all(
        "#chart-calls .hit", "hs => hs.filter(h => h.tabIndex === 0).length"
    )
    assert stops == 1
    hits.first.focus()
    before = page.text_content("#chart-tip")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(
        "() => document.activeElement === document.querySelectorAll('#chart-calls .hit')[1]"
    )
    assert page.is_visible("#chart-tip") and page.text_content("#chart-tip") != before
    label = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert label and label.split("; ")[0] in (page.text_content("#chart-tip") or "")
    page.keyboard.press("Escape")
    assert not page.is_visible("#chart-tip")


def test_latency_percentiles_and_error_rate_over_time(served: Served, watched: Watched) -> None:
    """p50/p95 latency and p50 TTFT over time are the store's per-bucket percentiles; the
    error rate over time has a line per model with errors."""
    watched.open(served.url)
    page = watched.page
    names = page.eval_on_selector_all(
        "#chart-latency-time .legend li", "lis => lis.map(l => l.textContent)"
    )
    assert names == ["p50 latency", "p95 latency", "p50 TTFT"]
    assert page.locator("#chart-latency-time path.line").count() == 3
    api = page.request.get(served.url + "api/timeseries?window=1h").json()
    p95 = [b["p95_latency_ms"] for b in api["buckets"] if b["p95_latency_ms"] is not None]
    assert page.locator("#chart-latency-time circle.dot.c1").count() == len(p95)
    assert page.locator("#chart-error-rate path.line").count() >= 1
    hit = page.locator("#chart-error-rate .hit").first
    hit.focus()
    assert "%" in (page.text_content("#chart-tip") or "")
