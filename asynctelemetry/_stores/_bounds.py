"""Retention rules every store shares: ``max_age`` and ``max_rows`` as users write them, and
the pass loop (its counters, one pass at a time, a background task that logs and carries on).

How a pass deletes is each database's own: SQLite's in :mod:`.sqlite.retention`, PostgreSQL's
in :mod:`.postgres.retention`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from typing import ClassVar, Final

from .._batching import report_internal_error
from .._exceptions import ConfigError, StoreError

__all__ = ["UNIT_SECONDS", "Retention", "duration_seconds", "parse_max_age", "parse_max_rows"]

logger = logging.getLogger("asynctelemetry")

#: Seconds in each unit a duration is written in: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``.
UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])\s*")
#: ``max_age`` as text: a number of seconds, or of minutes, hours or days (no weeks).
_AGE: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*")


def duration_seconds(text: str) -> float | None:
    """The seconds of a duration written as a number and a unit (``"90s"``, ``"1.5h"``,
    ``"7d"``, ``"1w"``: :data:`UNIT_SECONDS`), or ``None`` when ``text`` is not one: the one
    grammar of the CLI's ``--since``/``--until`` and the dashboard's ``window``/``bucket``;
    each checks its own bounds."""
    match = _DURATION.fullmatch(text)
    return None if match is None else float(match[1]) * UNIT_SECONDS[match[2]]


def parse_max_age(value: float | timedelta | str | None) -> timedelta | None:
    """``max_age`` as a positive timedelta: seconds, a timedelta, or text like ``"7d"``.

    Text takes a number with an optional unit: ``s`` (the default), ``m``, ``h`` or ``d``.

    Raises:
        ConfigError: not positive, not finite, or not understood.
    """
    if value is None:
        return None
    if isinstance(value, str):
        match = _AGE.fullmatch(value)
        if match is None:
            raise ConfigError(
                f"max_age must be a number of seconds or like '30s', '15m', '12h', '7d', "
                f"not {value!r}"
            )
        seconds = float(match[1]) * UNIT_SECONDS[match[2] or "s"]
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(f"max_age must be seconds or a timedelta, not {type(value).__name__}")
    if not 0 < seconds < timedelta.max.total_seconds():
        raise ConfigError(f"max_age must be positive and finite, got {value!r}")
    return timedelta(seconds=seconds)


def parse_max_rows(value: int | str | None) -> int | None:
    """``max_rows`` as an int >= 1 (text accepted for URLs).

    Raises:
        ConfigError: not an integer >= 1.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value.replace("_", ""))
        except ValueError:
            raise ConfigError(f"max_rows must be an integer, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"max_rows must be an integer >= 1, got {value!r}")
    return value


class Retention:
    """The bounds of one store, its passes and counters; a store's subclass runs the pass.

    Args:
        max_age: calls older than this (by their timestamp, against the wall clock) go.
        max_rows: at most this many calls are kept (the newest).
        interval: seconds between background passes.
        batch: most rows deleted per transaction.
    """

    #: The store whose passes these are, as an internal error names it.
    owner: ClassVar[str] = "store"

    def __init__(
        self,
        *,
        max_age: timedelta | None,
        max_rows: int | None,
        interval: float,
        batch: int,
    ) -> None:
        self.max_age = max_age
        self.max_rows = max_rows
        self.interval = interval
        self.batch = batch
        #: Calls deleted by retention since the store opened.
        self.deleted = 0
        #: Steps of traces (``spans``) deleted by retention since the store opened.
        self.deleted_spans = 0
        #: Passes completed.
        self.passes = 0
        #: The last error a background pass met (``None`` once a pass succeeds again).
        self.last_error: BaseException | None = None
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """Whether any bound is set."""
        return self.max_age is not None or self.max_rows is not None

    async def run_pass(self) -> int:
        """Delete what is past the bounds; return the calls deleted."""
        raise NotImplementedError

    async def run_forever(self) -> None:
        """Background task: a pass every ``interval`` seconds; errors are logged, not raised."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_pass()
            except StoreError as exc:
                if self.last_error is None:
                    logger.warning("asynctelemetry: retention pass failed: %s; retrying", exc)
                self.last_error = exc
            except Exception as exc:  # a bug: counted and logged once, the store carries on
                self.last_error = exc
                report_internal_error(f"{self.owner} retention pass", exc)
            else:
                if self.last_error is not None:
                    logger.warning("asynctelemetry: retention passes succeed again")
                self.last_error = None
