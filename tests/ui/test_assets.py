"""The page's files: in the wheel, small, with no inline script and nothing from elsewhere."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from asynctelemetry.ui._server import ASSETS

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "asynctelemetry" / "ui" / "static"
FILES = ["index.html", *ASSETS]


def test_page_weight_under_300_kb() -> None:
    """Every file the page loads, together, weighs under 300 KB (no framework, no library)."""
    assert sum((STATIC / name).stat().st_size for name in FILES) < 300 * 1024


def test_no_inline_script_no_style_attributes_no_remote_urls() -> None:
    """The HTML loads scripts from /static/ only (the CSP forbids inline ones), has no inline
    handlers or style attributes, and no file names another origin."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="/static/' in attrs and body == "" for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html) and " style=" not in html
    for name in FILES:
        text = (STATIC / name).read_text(encoding="utf-8")
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.I)
        assert set(urls) <= {"http://www.w3.org"}, (name, urls)  # the SVG namespace, not a fetch


def test_scripts_never_write_markup() -> None:
    """Data reaches the DOM as text: the scripts never use innerHTML, outerHTML,
    insertAdjacentHTML, document.write or eval."""
    for name in [n for n in FILES if n.endswith(".js")]:
        code = (STATIC / name).read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, (name, sink)


def test_the_wheel_ships_every_asset(tmp_path: Path) -> None:
    """A wheel built from the tree holds the page and every file it loads."""
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in FILES:
        assert f"asynctelemetry/ui/static/{name}" in names
