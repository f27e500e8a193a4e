"""Every ```python block of docs/*.md and README.md runs, as a reader would paste it.

Each block runs in a fresh namespace (``__name__ == "__main__"``) with a new, empty temporary
directory as the working directory, **twice in a row** in that directory (a reader runs an
example again; a second run must not fail or print the first run's data); blocks bring their own
``asyncio.run``.

What a block prints is checked each time. A block that prints shows its output in the fenced
block right after it, opened with ```text title="Output"; ``...`` there matches any text (as
doctest's ELLIPSIS: timings, ids) and runs of whitespace compare equal. A block with no output
block must print nothing.

A block may opt out only when it truly cannot run here (it needs an API key or a remote service):
mark it ```python title="…" or put ``<!-- no-run -->`` on the line before it. Opted-out blocks are
reported as skipped, with their place, so they stay visible.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
_FENCE = re.compile(r"^```python(?P<info>[^\n`]*)$")
_NO_RUN = "<!-- no-run -->"
_OUTPUT = re.compile(r'^```text\s+title="Output"\s*$')
_CHECKER = doctest.OutputChecker()
_MATCHING = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # why it does not run, when it is marked so
    output: str | None = None  # the text of the ```text title="Output" block after it

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
        output, index = _output_after(lines, end + 1)
        code = "\n".join(lines[start + 1 : end]) + "\n"
        found.append(Block(page, start + 1, code, skip, output))
    return found


def _output_after(lines: list[str], index: int) -> tuple[str | None, int]:
    """The output block starting at ``index`` (blank lines before it allowed), and where the
    scan goes on."""
    at = index
    while at < len(lines) and not lines[at].strip():
        at += 1
    if at >= len(lines) or not _OUTPUT.match(lines[at]):
        return None, index
    end = next((j for j in range(at + 1, len(lines)) if lines[j].strip() == "```"), None)
    if end is None:
        raise AssertionError(f"line {at + 1}: an output fence is never closed")
    return "\n".join(lines[at + 1 : end]) + "\n", end + 1


BLOCKS = [block for page in PAGES if page.exists() for block in blocks_of(page)]


def test_docs_have_snippets() -> None:
    """The pages were found and hold runnable blocks (a broken glob must not pass silently)."""
    assert (ROOT / "docs" / "quickstart.md").exists()
    assert sum(block.skip is None for block in BLOCKS) >= 10


_CONFLICT = re.compile(r"^(<<<<<<<|=======$|>>>>>>>)", re.MULTILINE)


@pytest.mark.parametrize("page", [*PAGES, ROOT / "CHANGELOG.md"], ids=lambda p: p.name)
def test_no_merge_conflict_left(page: Path) -> None:
    """A page never ships a merge's conflict markers (one did: docs/stores.md, for two stops)."""
    found = [m.group(0) for m in _CONFLICT.finditer(page.read_text(encoding="utf-8"))]
    assert not found, f"{page.name}: conflict markers {found}"


def test_output_blocks_follow_python_blocks() -> None:
    """Every output block belongs to a Python block (one left behind by an edit is an error)."""
    for page in PAGES:
        if not page.exists():
            continue
        text = page.read_text(encoding="utf-8")
        shown = sum(block.output is not None for block in blocks_of(page))
        written = sum(bool(_OUTPUT.match(line)) for line in text.splitlines())
        assert shown == written, f"{page.name}: an output block not right after a python block"


def _run(block: Block, directory: Path) -> str:
    namespace = {"__name__": "__main__", "__file__": str(directory / "snippet.py")}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.code, block.where, "exec"), namespace)  # the docs are ours
    return printed.getvalue()


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_snippet_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block runs to completion twice in an empty working directory and prints, each time,
    the output its page shows (nothing when the page shows none)."""
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")
    monkeypatch.chdir(tmp_path)
    for run in ("first", "second"):
        printed = _run(block, tmp_path)
        if block.output is None:
            assert not printed, (
                f"{block.where} printed on its {run} run, and its page shows no output "
                f'(add a ```text title="Output" block after it):\n{printed}'
            )
        elif not _CHECKER.check_output(block.output, printed, _MATCHING):
            diff = _CHECKER.output_difference(doctest.Example("", block.output), printed, _MATCHING)
            pytest.fail(f"{block.where}, {run} run: the output differs from the page\n{diff}")


def test_every_public_name_has_an_api_entry() -> None:
    """docs/api.md renders the package with mkdocstrings: each name in ``__all__`` is a class or
    function of that name with a docstring (an entry of its own), or is described by name."""
    import inspect

    import asynctelemetry

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert "::: asynctelemetry\n" in page
    for name in asynctelemetry.__all__:
        obj = getattr(asynctelemetry, name)
        if getattr(obj, "__name__", None) == name and callable(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring for its API entry"
        else:
            assert f"`{name}`" in page, f"{name} is neither documented nor named in docs/api.md"
