"""What makes the command line explain itself: examples in every ``--help``, "did you mean"
for a mistyped command or option, the one default store, and plurals.

:class:`Parser` is the ``ArgumentParser`` of every command (subcommands inherit it): its usage
errors add the closest known spelling (``--dbb`` → ``--db``, ``sumary`` → ``summary``).
:func:`default_db` is the store every command uses when given none: ``$ASYNCTELEMETRY_DB``, else
``calls.db`` in the working directory (the demo keeps its own file).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Final, NoReturn

from .._stores._hints import closest

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "EXAMPLES",
    "Parser",
    "default_db",
    "examples_of",
    "plural",
    "suggest",
]

#: Environment variable naming the store when ``--db``/``--store`` is not given.
DB_ENV: Final = "ASYNCTELEMETRY_DB"
#: The store when neither an option nor the environment names one.
DEFAULT_DB: Final = "calls.db"

#: Examples shown at the end of each command's ``--help``.
EXAMPLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "collect": (
        ("collect into calls.db, OTLP/gRPC on 127.0.0.1:4317", "asynctelemetry collect"),
        ("also OTLP/HTTP on 4318", "asynctelemetry collect --http-port 4318"),
        ("keep a week, at most a million calls",
         "asynctelemetry collect --max-age 7d --max-rows 1000000"),
        ("JSON lines for another tool", "asynctelemetry collect --json | jq .model"),
        ("beyond loopback, with a token",
         "asynctelemetry collect --host 0.0.0.0 --auth-token $TOKEN"),
    ),
    "calls": (
        ("the latest 50 calls in calls.db", "asynctelemetry calls"),
        ("errors of the last hour", "asynctelemetry calls --status error --since 1h"),
        ("one session, oldest first, as JSON", "asynctelemetry calls --session s1 --oldest --json"),
    ),
    "traces": (
        ("the latest 50 traces in calls.db", "asynctelemetry traces"),
        ("failed agent runs of the last hour",
         "asynctelemetry traces --agent planner --status error --since 1h"),
        ("one user's traces as JSON", "asynctelemetry traces --user ann --json"),
    ),
    "trace": (
        ("one trace as a tree with timing bars", "asynctelemetry trace 4bf92f3577b34da6"),
        ("its calls and steps as JSON", "asynctelemetry trace 4bf92f3577b34da6 --json"),
    ),
    "summary": (
        ("totals per model", "asynctelemetry summary"),
        ("per provider, last day", "asynctelemetry summary --by provider --since 1d"),
        ("another file", "asynctelemetry summary --db other.db --by route --json"),
    ),
    "replay": (
        ("copy the errors to another file",
         "asynctelemetry replay --to sqlite:///errors.db --status error"),
        ("re-send to a collector, 10x real time",
         "asynctelemetry replay --to otlp://127.0.0.1:4317 --speed 10"),
    ),
    "reprice": (
        ("costs with today's prices", "asynctelemetry reprice"),
        ("with negotiated prices", "asynctelemetry reprice --prices negotiated.toml --json"),
    ),
    "demo": (
        ("the whole pipeline in a minute", "asynctelemetry demo"),
        ("faster, fewer calls", "asynctelemetry demo --quick"),
        ("keep the calls of earlier runs", "asynctelemetry demo --append"),
    ),
}  # fmt: skip

_CHOICE: Final = re.compile(r"invalid choice: '(?P<given>[^']*)' \(choose from (?P<known>.*)\)")


def default_db() -> str:
    """``$ASYNCTELEMETRY_DB``, else ``calls.db``."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 call"``, ``"2 calls"``, ``"1,204 errors"``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def suggest(given: str, known: Iterable[str]) -> str | None:
    """The closest of ``known`` to a mistyped ``given``, if one is close enough."""
    name, _, _ = given.partition("=")
    matches = closest(name, known, n=1)
    return matches[0] if matches else None


def examples_of(command: str) -> str:
    """The examples paragraph of ``command``'s help."""
    lines = ["examples:"]
    for what, line in EXAMPLES.get(command, ()):
        lines += [f"  # {what}", f"  {line}"]
    return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors say which spelling was probably meant."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def option_names(self) -> list[str]:
        """Every ``--option`` this parser knows."""
        return [s for action in self._actions for s in action.option_strings if s.startswith("--")]

    def error(self, message: str) -> NoReturn:
        """Print ``message`` on one line (with a suggestion when one fits, and where the usage
        is) and exit 2; the usage lines are ``--help``'s, not every mistake's."""
        choice = _CHOICE.search(message)
        if choice is not None:
            known = re.findall(r"'([^']*)'", choice["known"])
            best = suggest(choice["given"], known)
            if best is not None:
                message += f"; did you mean '{best}'?"
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def unknown(self, extras: Sequence[str]) -> NoReturn:
        """Refuse ``extras`` (arguments no option took), suggesting the closest options."""
        hints = []
        for extra in extras:
            if extra.startswith("-"):
                best = suggest(extra, self.option_names())
                if best is not None:
                    hints.append((extra.partition("=")[0], best))
        message = f"unrecognized arguments: {' '.join(extras)}"
        if len(hints) == 1:
            message += f"; did you mean {hints[0][1]}?"
        elif hints:
            message += "; did you mean " + ", ".join(f"{b} (for {e})" for e, b in hints) + "?"
        self.error(message)
