"""The dashboard checked with axe-core (the copy bundled by the PyPI package
``axe-playwright-python``, run in Chromium) in light and dark mode, on every view: the page, a
call's dialog, a trace's waterfall and a session's conversation. Also: the page follows the
system's colour scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .conftest import Served, Watched

SCHEMES = ["light", "dark"]


def _violations(page: Any) -> list[str]:
    """What axe-core finds on the page as it is now: one line per rule and element."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"]})
    found = []
    for rule in results.response["violations"]:
        for node in rule["nodes"]:
            why = node.get("failureSummary", "")
            found.append(f"{rule['id']} ({rule['impact']}): {node['target']} {why}")
    return found


def _open_page(served: Served, watched: Watched, scheme: str) -> Any:
    watched.page.emulate_media(color_scheme=scheme)
    watched.open(served.url)
    return watched.page


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_page_has_no_axe_violations(served: Served, watched: Watched, scheme: str) -> None:
    """The page with its charts, tables and filters: no axe-core violation (contrast, names,
    roles, focus) in light or dark mode; nor with a chart's tooltip showing."""
    page = _open_page(served, watched, scheme)
    assert _violations(page) == []
    page.locator("#chart-calls .hit").first.focus()
    assert page.is_visible("#chart-tip")
    assert _violations(page) == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_dialogs_have_no_axe_violations(served: Served, watched: Watched, scheme: str) -> None:
    """A call's dialog, a trace's waterfall and a session's conversation: no violation."""
    page = _open_page(served, watched, scheme)
    page.locator("#calls tbody tr.call").first.click()
    page.wait_for_selector("#detail[open] table.fields")
    assert _violations(page) == []
    page.click("#detail-close")
    page.locator("#calls tbody tr[data-call-id='agent-root'] a.trace").click()
    page.wait_for_selector("#detail[open] table.waterfall")
    page.locator("#detail table.waterfall tbody tr").first.click()
    assert _violations(page) == []
    page.click("#detail-close")
    page.locator("#calls tbody a.session-link").first.click()
    page.wait_for_selector("#session-view")
    assert _violations(page) == []


def test_dark_mode_follows_the_system(served: Served, watched: Watched) -> None:
    """prefers-color-scheme: dark gives dark backgrounds and light text, charts included."""
    page = _open_page(served, watched, "light")
    look = (
        "() => [getComputedStyle(document.documentElement).backgroundColor,"
        " getComputedStyle(document.body).color]"
    )
    light = page.evaluate(look)
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate(look)
    assert light[0] == "rgb(255, 255, 255)" and dark[0] == "rgb(13, 17, 23)"
    assert dark[1] == "rgb(230, 237, 243)"
    fill = page.eval_on_selector("#chart-calls .bars rect", "r => getComputedStyle(r).fill")
    assert fill in {
        "rgb(68, 147, 248)",
        "rgb(240, 136, 62)",
        "rgb(63, 185, 80)",
    }  # the dark palette
