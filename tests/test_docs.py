"""Every ```python block of docs/*.md and README.md runs, as a reader would paste it.

Each block runs in a fresh namespace (``__name__ == "__main__"``) with a temporary directory as
the working directory; blocks bring their own ``asyncio.run``. A block may opt out only when it
truly cannot run here (it needs an API key or a remote service): mark it ```python title="…"
or put ``<!-- no-run -->`` on the line before it. Opted-out blocks are reported as skipped, with
their place, so they stay visible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
_FENCE = re.compile(r"^```python(?P<info>[^\n`]*)$")
_NO_RUN = "<!-- no-run -->"


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # why it does not run, when it is marked so

    @property
    def where(self) -> str:
        """``page.md:line``."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The ```python blocks of ``page`` (unclosed fences are an error, not silence)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start = index
        end = next((j for j in range(start + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise AssertionError(f"{page.name}:{start + 1}: a ```python fence is never closed")
        before = (line.strip() for line in reversed(lines[:start]) if line.strip())
        previous = next(before, "")
        skip = None
        if "title=" in match["info"]:
            skip = f"titled block ({match['info'].strip()})"
        elif previous == _NO_RUN:
            skip = "marked <!-- no-run -->"
        found.append(Block(page, start + 1, "\n".join(lines[start + 1 : end]) + "\n", skip))
        index = end + 1
    return found


BLOCKS = [block for page in PAGES if page.exists() for block in blocks_of(page)]


def test_docs_have_snippets() -> None:
    """The pages were found and hold runnable blocks (a broken glob must not pass silently)."""
    assert (ROOT / "docs" / "quickstart.md").exists()
    assert sum(block.skip is None for block in BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_snippet_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block runs to completion in a fresh namespace, in an empty working directory."""
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__", "__file__": str(tmp_path / "snippet.py")}
    exec(compile(block.code, block.where, "exec"), namespace)  # the docs are ours
