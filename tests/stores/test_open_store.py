"""open_store(url): the URL forms, their options, and clear errors for everything else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from asynctelemetry import ConfigError, MemoryStore, SQLiteStore, open_store
from tests.conftest import make_call

if TYPE_CHECKING:
    from pathlib import Path


def test_memory_url_with_capacity() -> None:
    """memory:// gives a MemoryStore; ?capacity= sets its size."""
    store = open_store("memory://?capacity=5000")
    assert isinstance(store, MemoryStore) and store.capacity == 5000
    default = open_store("memory://")
    assert isinstance(default, MemoryStore) and default.capacity == MemoryStore().capacity


async def test_relative_sqlite_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///calls.db (three slashes) names a file in the working directory."""
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///sub%20dir.db?batch_size=64&flush_interval=0.5")
    assert isinstance(store, SQLiteStore)
    assert (store.path, store.batch_size, store.flush_interval) == ("sub dir.db", 64, 0.5)
    async with store:
        await store.add(make_call(1))
    assert (tmp_path / "sub dir.db").exists()


async def test_absolute_sqlite_url_with_every_option(tmp_path: Path) -> None:
    """sqlite:////abs/path.db (four slashes) names an absolute path; every option is applied."""
    path = tmp_path / "abs.db"
    url = (
        f"sqlite:///{path}?batch_size=10&flush_interval=0&max_queue=100"
        "&durability=full&busy_timeout=1.5&close_timeout=3&cache_mib=8"
    )
    assert url.startswith("sqlite:////")
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == str(path)
    assert (store.batch_size, store.flush_interval, store.max_queue) == (10, 0.0, 100)
    assert (store.durability, store.busy_timeout, store.close_timeout) == ("full", 1.5, 3.0)
    assert store.cache_mib == 8
    async with store:
        await store.add(make_call(1))
        await store.flush()
        assert await store.count() == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("mysql://localhost/db", "unsupported scheme 'mysql'", id="scheme"),
        pytest.param("calls.db", "no scheme", id="bare-path"),
        pytest.param(
            "sqlite:///c.db?batch_sise=3", "did you mean 'batch_size'?", id="did-you-mean"
        ),
        pytest.param(
            "postgresql://h/db?pool_sise=3", "did you mean 'pool_size'?", id="pg-did-you-mean"
        ),
        pytest.param("memory://?capacity=0", "capacity", id="capacity-zero"),
        pytest.param("memory://?capacity=lots", "capacity", id="capacity-text"),
        pytest.param("memory://?size=3", "unknown option 'size'", id="memory-option"),
        pytest.param("memory://host", "options only", id="memory-host"),
        pytest.param("sqlite://host/calls.db", "no host", id="sqlite-host"),
        pytest.param("sqlite:///", "names no file", id="no-file"),
        pytest.param("sqlite:///c.db?batch=3", "unknown option 'batch'", id="sqlite-option"),
        pytest.param("sqlite:///c.db?durability=off", "durability", id="durability"),
        pytest.param("sqlite:///c.db?flush_interval=-1", "flush_interval", id="negative"),
        pytest.param("sqlite:///c.db?flush_interval=nan", "flush_interval", id="nan"),
        pytest.param("sqlite:///c.db?max_queue=1.5", "max_queue", id="not-int"),
        pytest.param("sqlite:///c.db?batch_size=1&batch_size=2", "twice", id="repeated"),
        pytest.param("sqlite:///c.db?batch_size", "batch_size", id="no-value"),
        pytest.param("sqlite:///c.db#frag", "fragment", id="fragment"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    """Unknown schemes, unknown or repeated options and bad values raise ConfigError."""
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_config_error_is_a_value_error() -> None:
    """Callers catching ValueError catch a bad store URL."""
    bad: Any = 42
    with pytest.raises(ValueError, match="must be a string"):
        open_store(bad)
