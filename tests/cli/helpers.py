"""Running the command line as users do: a real subprocess, real files, exit status and output."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

CLI = (sys.executable, "-m", "asynctelemetry.cli")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: a fixed width, no colour, the suite's strict mode."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("ASYNCTELEMETRY_AUTH_TOKEN", None)
    env.update(extra)
    return env


def run_cli(
    *args: str | Path,
    cwd: Path,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m asynctelemetry.cli *args`` in ``cwd`` and wait for it."""
    return subprocess.run(
        [*CLI, *map(str, args)],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``asynctelemetry: error:`` line of a failed run (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("asynctelemetry: error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0].removeprefix("asynctelemetry: error: ")
