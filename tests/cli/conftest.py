"""Fixtures of the CLI tests: a SQLite call store with known calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from asynctelemetry import SQLiteStore
from tests.conftest import make_call

if TYPE_CHECKING:
    from pathlib import Path

    from asynctelemetry import LLMCall

ROUTES = ("support-chat", "summarize")


def known_calls() -> list[LLMCall]:
    """Forty calls: three models/providers in turn, every tenth an error, two routes."""
    return [
        make_call(i, route_name=ROUTES[i % 2], price_version="genai-prices 0.0.1")
        for i in range(40)
    ]


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    """A SQLite file holding :func:`known_calls`."""
    path = tmp_path / "calls.db"
    async with SQLiteStore(path) as store:
        await store.add_many(known_calls())
    return path
