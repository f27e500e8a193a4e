"""The store's door: what every store (memory, SQLite, PostgreSQL) refuses before writing.

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
from .._rows import FIELDS, TIMESTAMP, Row

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._record import LLMCall

__all__ = [
    "EARLIEST",
    "KEYED_FIELDS",
    "LATEST",
    "MAX_KEY_LENGTH",
    "admit",
    "call_id_of",
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
#: The fields a store indexes (their text must fit an index entry).
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
_keyed_of_record: Final = itemgetter(*KEYED_FIELDS)


def refusal(call: LLMCall | Row) -> str | None:
    """Why a store refuses ``call`` (a record or a compact row) at its door, or ``None``."""
    if call.__class__ is tuple:
        stamp = call[TIMESTAMP]
        keyed = _keyed_of_row(call)
    else:
        data = call.__dict__
        stamp = data["timestamp"]
        keyed = _keyed_of_record(data)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if not EARLIEST <= stamp < LATEST:
        return (
            f"timestamp {stamp.isoformat()} is outside {EARLIEST.date()} .. {LATEST.date()} "
            "(the times a store can hold)"
        )
    if len("".join(filter(None, keyed))) > MAX_KEY_LENGTH:  # (cheap: the sum bounds each one)
        for name, value in zip(KEYED_FIELDS, keyed, strict=True):
            if value is not None and len(value) > MAX_KEY_LENGTH:
                return f"{name} is {len(value):,} characters long (at most {MAX_KEY_LENGTH})"
    return None


def admit(
    calls: Iterable[LLMCall | Row],
) -> tuple[list[LLMCall | Row], list[tuple[str, str]]]:
    """The calls a store keeps, in order, and ``(call_id, reason)`` for each one it refuses."""
    kept: list[LLMCall | Row] = []
    refused: list[tuple[str, str]] = []
    for call in calls:
        why = refusal(call)
        if why is None:
            kept.append(call)
        else:
            refused.append((call_id_of(call), why))
    return kept, refused


def call_id_of(call: LLMCall | Row) -> str:
    """The ``call_id`` of a record or a compact row."""
    return str(call[0] if call.__class__ is tuple else call.call_id)  # type: ignore[union-attr]


def log_rejected(store: str, rejected: Iterable[tuple[str, str]]) -> None:
    """Log each rejected call (``(call_id, reason)``) as an error naming ``store``."""
    for call_id, why in rejected:
        logger.error("asynctelemetry: call %r rejected by %s: %s", call_id, store, why)
