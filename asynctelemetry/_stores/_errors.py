"""Failed calls grouped by error type and message: the row, the rule, and the reference.

The rule of every store's ``error_groups(...)``: the calls that pass the filters and whose
``status`` is ``"error"`` are grouped by the exact pair (``error_type``, ``error_message``),
``None`` being a value of its own (unknown stays unknown); each group gives its number of calls,
its first and last timestamps and the models it failed on (the model asked for, else the model
that answered: :func:`~._base.group_key` of ``request_model``), sorted. Groups come most calls
first, then most recently seen, then by type and message (``None`` first; text by code point,
which is SQLite's ``BINARY`` and PostgreSQL's ``COLLATE "C"``); at most ``limit`` of them.
:func:`error_groups` is that rule over calls in memory; SQLite and PostgreSQL compute the same
rows in SQL over their ``(status, timestamp)`` indexes, which hold the failed calls together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._record import LLMCall

__all__ = [
    "DEFAULT_ERROR_GROUPS",
    "MAX_ERROR_GROUPS",
    "MODEL_KEY",
    "ErrorGroup",
    "check_group_limit",
    "error_groups",
    "group_of",
    "group_order",
    "groups_sql",
]

#: Groups one ``error_groups`` read gives by default, and at most.
DEFAULT_ERROR_GROUPS: Final = 20
MAX_ERROR_GROUPS: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
#: A call's model key in SQL: :func:`~._base.group_key` of ``request_model``.
MODEL_KEY: Final = "COALESCE(request_model, model)"


class ErrorGroup(BaseModel):
    """The failed calls sharing one error type and message, with when and where they failed."""

    model_config = ConfigDict(frozen=True)

    error_type: str | None
    error_message: str | None
    calls: int
    first_seen: datetime
    last_seen: datetime
    models: tuple[str, ...]


def check_group_limit(limit: object) -> int:
    """``limit`` is an int from 0 to :data:`MAX_ERROR_GROUPS`, or ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_ERROR_GROUPS:
        raise ValueError(f"limit must be an int from 0 to {MAX_ERROR_GROUPS}, got {limit!r}")
    return limit


def group_order(group: ErrorGroup) -> tuple[Any, ...]:
    """The sort key of the rule: most calls, most recent, then type and message (None first)."""
    return (
        -group.calls,
        -((group.last_seen - _EPOCH) // _US),
        group.error_type is not None,
        group.error_type or "",
        group.error_message is not None,
        group.error_message or "",
    )


def groups_sql(source: str, ts: str, where: str, limit: str, models: str, collate: str) -> str:
    """The rule in SQL (SQLite and PostgreSQL): ``source`` the calls table, ``ts`` its time
    column, ``where`` the filters' clause (status included), ``limit`` its placeholder,
    ``models`` an aggregate of the distinct model keys (``MODEL_KEY``), ``collate`` what makes
    text order by code point. Every part is a fixed string of ours, never input."""
    return (
        f"SELECT error_type, error_message, count(*) AS n, min({ts}) AS first_ts, "
        f"max({ts}) AS last_ts, {models} FROM {source}{where} "
        "GROUP BY error_type, error_message "
        "ORDER BY n DESC, last_ts DESC, error_type IS NOT NULL, "
        f"error_type{collate}, error_message IS NOT NULL, error_message{collate} LIMIT {limit}"
    )


def group_of(
    row: Sequence[Any], first: datetime, last: datetime, models: Iterable[str]
) -> ErrorGroup:
    """One row of :func:`groups_sql` (type, message, count, ...) as a group."""
    return ErrorGroup(
        error_type=row[0],
        error_message=row[1],
        calls=int(row[2]),
        first_seen=first,
        last_seen=last,
        models=tuple(sorted(set(models))),
    )


def error_groups(calls: Iterable[LLMCall], limit: int = DEFAULT_ERROR_GROUPS) -> list[ErrorGroup]:
    """The rule over ``calls`` (already filtered): the reference every store's rows equal."""
    found: dict[tuple[str | None, str | None], list[Any]] = {}
    for call in calls:
        if call.status != "error":
            continue
        key = (call.error_type, call.error_message)
        seen = found.get(key)
        model = call.request_model or call.model
        if seen is None:
            found[key] = [1, call.timestamp, call.timestamp, {model}]
        else:
            seen[0] += 1
            seen[1] = min(seen[1], call.timestamp)
            seen[2] = max(seen[2], call.timestamp)
            seen[3].add(model)
    groups = [
        ErrorGroup(
            error_type=kind,
            error_message=message,
            calls=n,
            first_seen=first,
            last_seen=last,
            models=tuple(sorted(models)),
        )
        for (kind, message), (n, first, last, models) in found.items()
    ]
    return sorted(groups, key=group_order)[:limit]
