"""What SQLiteStore runs in its connections' threads: setup, the insert transaction, fetches.

Each function takes the plain ``sqlite3.Connection`` first; :func:`run` hands one to the thread
of an aiosqlite connection, so a transaction of many statements costs one hop.
"""

from __future__ import annotations

import functools
import sqlite3
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..._exceptions import StoreError
from .. import _rollup
from .._door import admit, call_id_of
from . import reads as q
from . import rollup as _sqlite_rollup
from . import sessions as _sqlite_sessions
from .schema import (
    COLUMNS,
    INSERT_SPAN_SQL,
    INSERT_SQL,
    ROW_PLACEHOLDERS,
    check_adoptable,
    check_readable,
    decode_rows,
    decode_spans,
    encode_call,
    encode_span,
    prepare,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    import aiosqlite

    from ..._record import LLMCall, TraceSpan
    from ..._rows import Row

__all__ = [
    "SYNCHRONOUS",
    "fetch",
    "fetch_calls",
    "fetch_spans",
    "insert_rows",
    "insert_spans",
    "run",
    "setup_read_only",
    "setup_reader",
    "setup_writer",
    "update_costs",
]

SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}


async def run(conn: aiosqlite.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(sqlite3_connection, *args)`` in ``conn``'s thread: one hop for many statements.

    aiosqlite's public methods take one statement per hop; its ``_execute`` (stable since 0.17)
    runs any callable in the connection's thread, which is what a transaction of many steps needs.
    """
    execute: Callable[[Callable[[], Any]], Awaitable[Any]] = conn._execute
    return await execute(lambda: fn(conn._conn, *args))


def setup_writer(
    conn: sqlite3.Connection,
    path: str,
    durability: str,
    busy: float,
    cache_mib: int = 64,
    adopt: bool = False,
) -> None:
    # PRAGMAs take no parameters; every value here is validated or our own constant.
    conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000):d}")
    conn.execute(f"PRAGMA cache_size = {-1024 * int(cache_mib):d}")  # negative: KiB
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # "file is not a database"
    check_adoptable(conn, path, adopt)  # before WAL or any table: another program's file
    # Takes effect in a new file only (before its first table): freed pages can then be given
    # back with incremental_vacuum. An existing file keeps its mode (see SQLiteStore.vacuum).
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode.lower() not in ("wal", "memory"):
        raise StoreError(f"{path}: cannot switch to WAL journal mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
    conn.execute("PRAGMA temp_store = MEMORY")  # the rollups' batch table
    _sqlite_rollup.register(conn)  # the functions that merge the rollups' packed values
    prepare(conn, path)
    q.register(conn)


def setup_read_only(conn: sqlite3.Connection, path: str, busy: float) -> None:
    """A read-only connection to an existing call store of this schema version.

    Nothing is created, migrated or switched (no journal mode, no ``user_version``): a file that
    is not ours, or of another schema version, is refused with the file untouched.
    """
    conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000):d}")
    conn.execute("PRAGMA query_only = ON")
    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # "file is not a database"
    check_readable(conn, path)
    q.register(conn)


def setup_reader(conn: sqlite3.Connection, busy: float) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000):d}")
    conn.execute("PRAGMA query_only = ON")
    q.register(conn)


T = TypeVar("T")

#: A row encoded for ``calls`` → the values the rollups count (``_rollup.RAW_COLUMNS``).
_RAW_OF_ENCODED: Final = itemgetter(*(COLUMNS.index(name) for name in _rollup.RAW_COLUMNS))
_ROW_ERRORS: Final = (sqlite3.InterfaceError, sqlite3.DataError, ValueError, OverflowError)


#: Most rows one INSERT statement carries (a power of two; fewer where SQLite allows fewer
#: parameters per statement). Encoding one statement's rows holds the GIL for about a millisecond.
_MAX_ROWS_PER_STATEMENT: Final = 64


@functools.cache
def _insert_sql(rows: int) -> str:
    """``INSERT OR IGNORE … VALUES (…), (…), …`` for ``rows`` rows."""
    return INSERT_SQL + (", " + ROW_PLACEHOLDERS) * (rows - 1)


def _rows_per_statement(conn: sqlite3.Connection) -> int:
    fits = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)
    size = _MAX_ROWS_PER_STATEMENT
    while size > fits and size > 1:
        size //= 2
    return size


def _insert_all(
    conn: sqlite3.Connection, batch: list[Row], sums: _sqlite_rollup.Sums
) -> list[tuple[str, str]]:
    """Admit, encode and insert ``batch``, many rows per statement, and count each statement's
    rows in the rollups' ``sums``; returns ``(call_id, reason)`` for the calls the door refused.

    One statement binds its rows at once and runs them in one ``sqlite3_step``, during which the
    sqlite3 module releases the GIL: the B-tree work of a whole statement runs beside the event
    loop, and the loop gets the GIL back at least once a statement. The Python of a statement's
    rows (admitting, encoding, what they add to the rollups) holds the GIL a fraction of a
    millisecond. (``executemany`` takes the GIL back after every row; doing any of it for a
    whole batch at once would hold the GIL for tens of milliseconds.)
    """
    size = _rows_per_statement(conn)
    refused: list[tuple[str, str]] = []
    for at in range(0, len(batch), size):
        rows, turned = admit(batch[at : at + size])
        refused += turned
        if rows:
            encoded = list(map(encode_call, rows))
            conn.execute(_insert_sql(len(encoded)), [v for row in encoded for v in row])
            sums.add(list(map(_RAW_OF_ENCODED, encoded)))
    return refused


def in_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """``fn(conn, *args)`` in one ``BEGIN IMMEDIATE`` transaction, rolled back on any error (the
    writer's one transaction shape: batches, repricing, retention)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite may have rolled back already (disk full); the first error matters
        raise
    return result


def insert_rows(conn: sqlite3.Connection, batch: list[Row]) -> tuple[int, list[Any]]:
    """One transaction; returns (rows inserted, [(call_id, reason)] for rows the store's door
    or SQLite refused)."""
    return in_transaction(conn, _insert_rows, batch)


def _insert_rows(conn: sqlite3.Connection, batch: list[Row]) -> tuple[int, list[Any]]:
    before = conn.total_changes
    (last,) = conn.execute("SELECT COALESCE(MAX(id), -1) FROM calls").fetchone()
    sums = _sqlite_rollup.Sums()
    try:
        refused = _insert_all(conn, batch, sums)
    except _ROW_ERRORS:
        # A row SQLite cannot bind: insert one by one (OR IGNORE skips those already in).
        kept, refused = admit(batch)
        for call in kept:
            try:
                conn.execute(INSERT_SQL, encode_call(call))
            except _ROW_ERRORS as exc:
                refused.append((call_id_of(call), f"{type(exc).__name__}: {exc}"))
    inserted = conn.total_changes - before  # before the rollups change rows too
    # The rows this transaction inserted (not the ignored duplicates) join the rollups: those
    # counted on the way when they are all of them (every row counted went in), else the
    # inserted rows read back by rowid.
    if sums.calls == inserted:
        sums.write(conn)
    elif inserted:
        _sqlite_rollup.remember(conn, last)
    if inserted:
        _sqlite_sessions.remember(conn, last)
    return inserted, refused


def insert_spans(conn: sqlite3.Connection, spans: list[TraceSpan]) -> tuple[int, list[Any]]:
    """One transaction of steps; returns (steps inserted, [(span_id, reason)] refused)."""
    rejected: list[tuple[Any, str]] = []

    def insert(conn: sqlite3.Connection) -> int:
        before = conn.total_changes
        for span in spans:
            try:
                conn.execute(INSERT_SPAN_SQL, encode_span(span))
            except _ROW_ERRORS as exc:
                rejected.append((span.span_id, f"{type(exc).__name__}: {exc}"))
        return conn.total_changes - before

    return in_transaction(conn, insert), rejected


def fetch_spans(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[TraceSpan]:
    return decode_spans(conn.execute(sql, params).fetchall())


def update_costs(conn: sqlite3.Connection, updates: Sequence[tuple[float, str, str]]) -> int:
    """One transaction: set ``(cost_usd, price_version)`` of the calls ``call_id`` names, and
    move them in the rollups from their old cost to the new one. Returns the calls changed."""
    return in_transaction(conn, _update_costs, updates)


def _update_costs(conn: sqlite3.Connection, updates: Sequence[tuple[float, str, str]]) -> int:
    ids = [call_id for _, _, call_id in updates]
    ids_sql = f"SELECT id FROM calls WHERE call_id IN ({', '.join('?' * len(ids))})"
    _sqlite_rollup.forget(conn, ids_sql, ids)
    _sqlite_sessions.forget(conn, ids_sql, ids)
    before = conn.total_changes
    conn.executemany("UPDATE calls SET cost_usd = ?, price_version = ? WHERE call_id = ?", updates)
    changed = conn.total_changes - before
    _sqlite_rollup.include(conn, ids_sql, ids)
    _sqlite_sessions.include(conn, ids_sql, ids)
    return changed


def fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def fetch_calls(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[LLMCall]:
    return decode_rows(conn.execute(sql, params).fetchall())
