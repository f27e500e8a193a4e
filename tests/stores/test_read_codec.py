"""The read side of the row codec: profile templates, field order, and what they must not share."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from asynctelemetry import LLMCall
from asynctelemetry._stores._door import enter
from asynctelemetry._stores.sqlite import schema as _schema
from tests.conftest import make_call

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    """An in-memory database with the current schema."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    _schema.prepare(db, ":memory:")
    yield db
    db.close()


def _roundtrip(conn: sqlite3.Connection, calls: list[LLMCall]) -> list[LLMCall]:
    conn.executemany(_schema.INSERT_SQL, [_schema.encode_call(enter(call)) for call in calls])
    rows = conn.execute(f"SELECT {_schema.SELECT_COLUMNS} FROM calls ORDER BY id").fetchall()
    return _schema.decode_rows(rows)


def test_profile_and_row_fields_split_every_field() -> None:
    """Every LLMCall field is read exactly once, either as a column or in the profile array."""
    fields = [*_schema.PROFILE_FIELDS, *_schema.ROW_FIELDS]
    assert sorted(fields) == sorted(LLMCall.model_fields)


def test_decoded_records_keep_field_order_and_types(conn: sqlite3.Connection) -> None:
    """Decoded records equal the originals, dump identically and keep fields in model order."""
    calls = [
        make_call(0, is_streaming=None, status_code=None, tool_calls=0),
        make_call(1, is_streaming=False, status_code=200, tool_calls=3, attributes={"a": 1}),
        make_call(2, is_streaming=True, error_type="E", route_name="r", attributes={"b": True}),
    ]
    got = _roundtrip(conn, calls)
    assert got == calls
    for back, original in zip(got, calls, strict=True):
        assert list(back.__dict__) == list(LLMCall.model_fields)
        assert back.model_dump() == original.model_dump()
        assert repr(back) == repr(original)
        assert type(back.is_streaming) is type(original.is_streaming)


def test_records_sharing_a_profile_share_no_mutable_state(conn: sqlite3.Connection) -> None:
    """Two calls with one profile get distinct field dicts and attribute dicts."""
    a, b = _roundtrip(conn, [make_call(0), make_call(3)])
    assert a.model == b.model
    assert a.__dict__ is not b.__dict__
    assert a.attributes is not b.attributes
    a.attributes["x"] = 1  # a caller mutating its record's attributes touches no other record
    assert b.attributes == {}
    assert _roundtrip(conn, [make_call(6)])[-1].attributes == {}


def test_profile_cache_starting_over_stays_correct(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More distinct profiles than the cache holds still decode every call exactly."""
    monkeypatch.setattr(_schema, "PROFILE_CACHE_SIZE", 4)
    calls = [make_call(i, service_name=f"svc-{i}", request_model=f"m{i % 7}") for i in range(50)]
    assert _roundtrip(conn, calls) == calls
    assert len(_schema._templates) <= 4
