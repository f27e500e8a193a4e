"""Compact rows: a record's values in a tuple, and a batch of them that reads as records.

A row is the field values of an :class:`LLMCall` in field order (``attributes`` excluded), then
the attribute keys (one tuple shared by every row with the same keys) or ``None``, then the
attribute values. A record costs about 1.2 KB (its field dict, the object, an attributes dict),
a row about 350 bytes plus the values that are its own (ids, timestamp, numbers).

Producers that make many calls at once (the collector) build rows directly and hand them on as
:class:`Rows`, a ``Sequence[LLMCall]`` every sink can read; sinks that keep rows (the stores)
take ``Rows.rows`` as they are, so a collected call never becomes a record unless a sink or a
reader asks for one. Records are built from rows with :meth:`LLMCall._adopt`, without validation:
rows hold checked values only.

Layer 1, beside :mod:`._record`.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from sys import intern
from typing import TYPE_CHECKING, Any, Final, overload

from ._record import LLMCall

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "ATTRIBUTES",
    "FIELDS",
    "TIMESTAMP",
    "Row",
    "Rows",
    "record_of",
    "row_of",
    "shared_keys",
]

Row = tuple[Any, ...]

#: Every field of LLMCall, in the order a row holds them.
FIELDS: Final = tuple(LLMCall.model_fields)
#: Position of the attribute keys in a row (the values follow).
ATTRIBUTES: Final = FIELDS.index("attributes")
#: Position of the timestamp in a row.
TIMESTAMP: Final = FIELDS.index("timestamp")
if ATTRIBUTES != len(FIELDS) - 1:  # rows append the compact attributes last
    raise RuntimeError("LLMCall.attributes must be the last field")

_values: Final = itemgetter(*FIELDS[:ATTRIBUTES])  # every field but attributes
_adopt: Final = LLMCall._adopt
_NO_ATTRIBUTES: Final = (None,)  # the tail of a row whose call has no attributes
#: Attribute key sets seen, shared by every row that has the same keys (bounded).
_KEYSETS: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_KEYSETS: Final = 4096


def shared_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The one tuple (of interned keys) that stands for ``keys`` in every row."""
    shared = _KEYSETS.get(keys)
    if shared is None:
        if len(_KEYSETS) >= _MAX_KEYSETS:
            _KEYSETS.clear()
        shared = _KEYSETS[keys] = tuple(map(intern, keys))
    return shared


def row_of(data: dict[str, Any]) -> Row:
    """The row of a record's field dict (``call.__dict__``: every field present)."""
    attributes = data["attributes"]
    if not attributes:
        values: Row = _values(data)
        return values + _NO_ATTRIBUTES
    return (*_values(data), shared_keys(tuple(attributes)), *attributes.values())


def record_of(row: Row) -> LLMCall:
    """The record a row stands for (equal to the one it was made from, not the same object)."""
    data = dict(zip(FIELDS, row, strict=False))  # the keys pair with "attributes"; values cut
    keys = row[ATTRIBUTES]
    data["attributes"] = {} if keys is None else dict(zip(keys, row[ATTRIBUTES + 1 :], strict=True))
    return _adopt(data)


class Rows(Sequence[LLMCall]):
    """A batch of rows that reads as a sequence of records (built on demand, once).

    Sinks that keep rows take :attr:`rows`; any other sink iterates and gets records.
    """

    __slots__ = ("_records", "rows")

    def __init__(self, rows: list[Row], records: list[LLMCall] | None = None) -> None:
        self.rows = rows
        #: The records of ``rows`` (equal to what they stand for), when the producer has them.
        self._records = records

    @classmethod
    def join(cls, batches: Sequence[Rows]) -> Rows:
        """One batch of every row of ``batches``, in order."""
        if len(batches) == 1:
            return batches[0]
        return cls([row for batch in batches for row in batch.rows])

    def records(self) -> list[LLMCall]:
        """Every row as a record (built on the first call, then remembered)."""
        if self._records is None:
            self._records = list(map(record_of, self.rows))
        return self._records

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> LLMCall: ...
    @overload
    def __getitem__(self, index: slice) -> list[LLMCall]: ...
    def __getitem__(self, index: int | slice) -> LLMCall | list[LLMCall]:
        return self.records()[index]

    def __iter__(self) -> Iterator[LLMCall]:
        return iter(self.records())

    def __repr__(self) -> str:
        return f"Rows({len(self.rows)} calls)"
