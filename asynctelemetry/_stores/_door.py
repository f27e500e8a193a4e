"""The store's door: where a call becomes its row, and what every store refuses before writing.

A store's ``add``/``add_many``/``emit`` hand their records to :func:`enter` / :func:`enter_all`:
each call becomes its compact row (:mod:`asynctelemetry._rows`) there, once; a collector's
:class:`~asynctelemetry._rows.Rows` are rows already, and steps (``TraceSpan``) stay records.
Below the door (queues, writers, rollups, the memory ring) calls are rows only.

A call is refused — left out of its batch, logged with its ``call_id`` and counted in the store's
``rejected`` — when a store could not hold it faithfully, the same way in every store:

- its ``timestamp`` is outside :data:`EARLIEST` (1677-09-22) … :data:`LATEST` (2262-04-11,
  exclusive) UTC: the whole days whose nanoseconds since the epoch fit a signed 64-bit integer,
  which is how SQLite keeps times and how both databases' rollups count them
  (``datetime.min`` would go to PostgreSQL as ``-infinity``, which no day partition takes);
- a field that a database indexes (:data:`KEYED_FIELDS`: ``call_id``, ``model``,
  ``request_model``, ``provider``, ``session_id``, ``trace_id``, ``status``) is longer than
  :data:`MAX_KEY_LENGTH` characters: at most 2,048 bytes of UTF-8, so every index entry fits a
  PostgreSQL btree page (2,704 bytes at most; a longer one is SQLSTATE 54000). ``LLMCall``
  validation already bounds ``call_id`` (256) and ``model`` (512); the other fields reach a
  store unvalidated from the collector's rows, so the door checks them all.

What only the database can tell (text PostgreSQL cannot hold, a value the driver cannot encode)
is found by each store's writer after the fact and rejects that call only (see the writers).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Final

from .._conventions import MAX_FIELD_LENGTH
from .._record import LLMCall, TraceSpan
from .._rows import FIELDS, TIMESTAMP, Row, Rows, row_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


__all__ = [
    "EARLIEST",
    "KEYED_FIELDS",
    "LATEST",
    "MAX_KEY_LENGTH",
    "admit",
    "call_id_of",
    "enter",
    "enter_all",
    "log_rejected",
    "refusal",
]

logger = logging.getLogger("asynctelemetry")

#: The earliest timestamp a store keeps (inclusive).
EARLIEST: Final = datetime(1677, 9, 22, tzinfo=UTC)
#: The first timestamp a store no longer keeps (exclusive).
LATEST: Final = datetime(2262, 4, 11, tzinfo=UTC)
#: Longest text a store keeps in a field it indexes, in characters: the collector's bound on
#: field text (``MAX_FIELD_LENGTH``), so a call the collector makes is never refused here.
MAX_KEY_LENGTH: Final = MAX_FIELD_LENGTH
#: The fields a store indexes (their text must fit an index entry; :func:`refusal` names them
#: in this order).
KEYED_FIELDS: Final = (
    "call_id",
    "model",
    "request_model",
    "provider",
    "session_id",
    "trace_id",
    "status",
)
_keyed_of_row: Final = itemgetter(*(FIELDS.index(name) for name in KEYED_FIELDS))


def enter(record: LLMCall | TraceSpan) -> Row | TraceSpan:
    """A record through the door: a call becomes its row (here, once), a step (or a row made
    by a producer) stays as it is."""
    return row_of(record.__dict__) if isinstance(record, LLMCall) else record


def enter_all(records: Sequence[LLMCall | TraceSpan]) -> list[Row | TraceSpan]:
    """A batch through the door (see :func:`enter`), in order; a collector's rows as they are."""
    if records.__class__ is not tuple and isinstance(records, Rows):
        return records.rows  # type: ignore[return-value]
    return list(map(enter, records))


def refusal(row: Row) -> str | None:
    """Why a store refuses the call of ``row`` at its door, or ``None``."""
    stamp = row[TIMESTAMP]
    call_id, model, request_model, provider, session_id, trace_id, status = _keyed_of_row(row)
    if (
        stamp.tzinfo is not None  # (a naive time is UTC: checked below)
        and EARLIEST <= stamp < LATEST
        # cheap: the length of them all bounds each one
        and len(call_id or "")
        + len(model or "")
        + len(request_model or "")
        + len(provider or "")
        + len(session_id or "")
        + len(trace_id or "")
        + len(status or "")
        <= MAX_KEY_LENGTH
    ):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if not EARLIEST <= stamp < LATEST:
        return (
            f"timestamp {stamp.isoformat()} is outside {EARLIEST.date()} .. {LATEST.date()} "
            "(the times a store can hold)"
        )
    for name, value in zip(KEYED_FIELDS, _keyed_of_row(row), strict=True):
        if value is not None and len(value) > MAX_KEY_LENGTH:
            return f"{name} is {len(value):,} characters long (at most {MAX_KEY_LENGTH})"
    return None


def admit(calls: Iterable[Row]) -> tuple[list[Row], list[tuple[str, str]]]:
    """The calls a store keeps, in order, and ``(call_id, reason)`` for each one it refuses."""
    kept: list[Row] = []
    refused: list[tuple[str, str]] = []
    for call in calls:
        why = refusal(call)
        if why is None:
            kept.append(call)
        else:
            refused.append((call_id_of(call), why))
    return kept, refused


def call_id_of(row: Row) -> str:
    """The ``call_id`` of a call's row."""
    return str(row[0])


def log_rejected(store: str, rejected: Iterable[tuple[str, str]]) -> None:
    """Log each rejected call (``(call_id, reason)``) as an error naming ``store``."""
    for call_id, why in rejected:
        logger.error("asynctelemetry: call %r rejected by %s: %s", call_id, store, why)
