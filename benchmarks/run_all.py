"""Run every ``benchmarks/bench_*.py`` and write their tables into ``docs/performance.md``.

Each script runs in its own process, one after another (never in parallel: they would measure
each other), with the same Python. Its Markdown tables (a ``### title`` line followed by ``|``
rows) and its plain remarks are copied into the page under the script's name, with the first
paragraph of its docstring as the description, and the time it took, the date, the commit and
the sizes at its end; the machine is at the top. ``--only`` keeps the other scripts' sections of
the existing page. A script that fails or times out is reported on the page and makes this
runner exit 1, after the page is written.

usage: python benchmarks/run_all.py [--quick] [--only NAME ...] [--timeout SECONDS]
                                    [--output docs/performance.md]
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


@dataclass
class Result:
    """What one benchmark script printed."""

    script: Path
    description: str
    body: list[str]
    seconds: float
    error: str | None = None


def description(script: Path) -> str:
    """The first paragraph of the script's docstring, on one line."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    except SyntaxError:
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def markdown_of(stdout: str) -> list[str]:
    """The script's output as Markdown: its tables and headings as they are, other lines
    (aligned plain-text tables, remarks) in ``text`` blocks so their alignment survives."""
    out: list[str] = []
    text: list[str] = []

    def flush_text() -> None:
        while text and not text[-1].strip():
            text.pop()
        if text:
            out.extend(["", "```text", *text, "```", ""])
        text.clear()

    in_table = False
    for raw in stdout.splitlines():
        line = raw.rstrip()
        if line.startswith("### "):
            flush_text()
            out.extend(["", "#" + line, ""])  # one level below the script's heading
            in_table = False
        elif line.lstrip().startswith("|"):
            flush_text()
            if not in_table:
                out.append("")
            out.append(line.strip())
            in_table = True
        elif not line.strip() and not text:
            in_table = False
        else:
            if in_table:
                out.append("")
                in_table = False
            text.append(line)
    flush_text()
    cleaned: list[str] = []
    for line in out:  # no runs of blank lines
        if line or (cleaned and cleaned[-1]):
            cleaned.append(line)
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    return cleaned


def run(script: Path, quick: bool, timeout: float) -> Result:
    """Run one script and collect its Markdown."""
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    print(f"running {script.name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        seconds = time.perf_counter() - started
        return Result(script, description(script), [], seconds, f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - started
    error = None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        error = f"exit status {done.returncode}: {last}"
    return Result(script, description(script), markdown_of(done.stdout), seconds, error)


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    """Total memory (Linux), or ``?``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def commit() -> str:
    """The git commit the figures come from (``+dirty`` when the tree has changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            # the page this writes is not a change of the code measured
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)docs/performance.md",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def section(result: Result, quick: bool) -> str:
    """One script's part of the page, ending with when, from which commit and at which size."""
    out = [f"## `{result.script.name}`", ""]
    if result.description:
        out += [result.description, ""]
    if result.error:
        out += ["!!! failure", f"    This run failed ({result.error}).", ""]
    out += result.body
    size = "reduced (`--quick`)" if quick else "full"
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    out += [
        "",
        f"*{result.script.name} took {result.seconds:.1f} s; run {when}, commit "
        f"`{commit()}`, sizes {size}.*",
    ]
    return "\n".join(out)


def sections_of(text: str) -> dict[str, str]:
    """The script sections of an existing page, by script name."""
    found: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for line in [*text.splitlines(), "## `end`"]:
        if line.startswith("## `") and line.endswith("`"):
            if name is not None:
                found[name] = "\n".join(lines).rstrip()
            name, lines = line[4:-1], []
        if name is not None:
            lines.append(line)
    found.pop("end", None)
    return found


def page(sections: dict[str, str]) -> str:
    """The whole ``docs/performance.md`` from its script sections (sorted by name)."""
    sys.path.insert(0, str(ROOT))
    from asynctelemetry import __version__

    out = [
        "# Performance",
        "",
        "Every figure on this page comes from the scripts in `benchmarks/`, run by `make bench`",
        "(`python benchmarks/run_all.py`), one after another on one machine. Each script measures",
        "a baseline in the same run — the OpenTelemetry SDK, a threaded gRPC server, a plain",
        "implementation — so the ratios carry over to other machines better than the absolute",
        "numbers do. Timings are the best of several interleaved runs unless a table says",
        "otherwise. Each section ends with when it was run, from which commit and at which size",
        "(`run_all.py --only NAME …` runs some scripts again and keeps the other sections).",
        "",
        f"- **Machine:** {cpu_model()}, {os.cpu_count()} cores, {memory_gib()} RAM, "
        f"{platform.system()} {platform.release()}",
        f"- **Python:** {platform.python_implementation()} {platform.python_version()}",
        f"- **Version:** asynctelemetry {__version__}",
        "",
        "This page is generated: edit `benchmarks/run_all.py` or the scripts, not the page.",
    ]
    for name in sorted(sections):
        out += ["", sections[name]]
    return "\n".join(out) + "\n"


#: Scripts whose full run needs longer than ``--timeout`` (seconds): the 10,000,000-call
#: PostgreSQL dashboard run generates its calls and builds their rollups first (about 10 min).
SLOW: dict[str, float] = {"bench_dashboard_pg": 1800.0, "bench_traces": 1800.0}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write the page; exit 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these scripts")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per script")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)
    scripts = sorted(BENCHMARKS.glob("bench_*.py"))
    if args.only:
        wanted = {name.removesuffix(".py").removeprefix("bench_") for name in args.only}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if not scripts:
            parser.error(f"no benchmark matches {args.only}")
    kept = {}
    if args.only and args.output.exists():  # the other scripts' sections stay as they are
        kept = sections_of(args.output.read_text(encoding="utf-8"))
    results = []
    for script in scripts:
        timeout = max(args.timeout, 0 if args.quick else SLOW.get(script.stem, 0))
        result = run(script, args.quick, timeout)
        results.append(result)
        kept[script.name] = section(result, args.quick)
        args.output.write_text(page(kept), encoding="utf-8")  # after each script: nothing lost
    failed = [r for r in results if r.error]
    for result in results:
        state = f"FAILED ({result.error})" if result.error else "ok"
        print(f"{result.script.name}: {state}, {result.seconds:.1f} s", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
