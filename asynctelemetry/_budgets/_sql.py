"""Budgets shared through a database: many processes, one limit.

Layer 4. Two tables beside the calls: ``budget_totals`` (spent and reserved per budget, key and
window) and ``budget_holds`` (one row per running call's reservation, with a lease). A
reservation is one atomic statement that checks what is left and holds the estimate, so however
many processes reserve at once, a limit is never passed by more than the largest single
underestimate. A process that dies leaves its holds behind; they expire after the lease
(:data:`LEASE_SECONDS`, renewed while the call runs) and are swept back by any process: when a
reservation would be refused, every ``lease / 3`` seconds, and when status is read.

PostgreSQL does check-and-hold in one statement (a row lock serialises racers, and the
``ON CONFLICT … WHERE`` re-checks the latest row); SQLite does it in a ``BEGIN IMMEDIATE``
transaction, which holds the file's write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import ConfigError, require
from . import EPSILON, Budget, BudgetStatus, Hold, fits, statuses

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = [
    "LEASE_SECONDS",
    "PostgresLedger",
    "SQLiteLedger",
    "bounded_key",
    "stored_budgets",
]

#: How long a hold outlives a process that stopped renewing it.
LEASE_SECONDS: Final = 300.0
#: Keys longer than this are stored as a prefix and a hash (an index entry stays small).
MAX_KEY: Final = 200

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS budget_totals (
        budget TEXT NOT NULL, key TEXT NOT NULL, window_start DOUBLE PRECISION NOT NULL,
        limit_usd DOUBLE PRECISION NOT NULL, spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (budget, key, window_start))""",
    """CREATE TABLE IF NOT EXISTS budget_holds (
        hold_id TEXT PRIMARY KEY, budget TEXT NOT NULL, key TEXT NOT NULL,
        window_start DOUBLE PRECISION NOT NULL, amount DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL)""",
)
#: The database's clock in Unix seconds (one clock for the leases of every process).
_NOW: Final = "extract(epoch FROM clock_timestamp())::float8"
_TOTALS: Final = (
    "SELECT budget, key, window_start, limit_usd, spent_usd, reserved_usd FROM budget_totals"
)


def bounded_key(key: str) -> str:
    """``key`` itself, or for a long one a prefix and a hash of the whole (distinct keys stay
    distinct, and an index entry stays small)."""
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{key[: MAX_KEY - 40]}…#{digest}"


class _Leases:
    """The holds this process has taken and not settled; renewed, and swept when expired."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self.live: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self, renew: Any) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(renew), name="budget leases"
            )

    async def _run(self, renew: Any) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):  # a database hiccup: the next round retries
                await renew(sorted(self.live))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class _Once:
    """A connection opened on first use, once, however many tasks ask for it at the same time."""

    def __init__(self, open_: Callable[[], Awaitable[Any]]) -> None:
        self._open = open_
        self._value: Any = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Any:
        if self._value is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._value is None:
                    self._value = await self._open()
        return self._value

    def take(self) -> Any:
        """The connection (``None`` if never opened), forgotten: the caller closes it."""
        value, self._value = self._value, None
        return value


class _Ledger:
    """What both ledgers share: the holds this process has taken (renewed while live) and a
    connection opened on first use; closing gives the live holds back."""

    def __init__(self, lease: float) -> None:
        self._leases = _Leases(lease)
        self._connection = _Once(self._open)

    async def _connected(self) -> Any:
        return await self._connection.get()

    async def _open(self) -> Any:
        raise NotImplementedError

    async def _give_back(self, connection: Any, hold_ids: list[str]) -> None:
        """Expire these holds now and sweep them (their calls will not settle)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop renewing; give back the holds of calls still running; close the connection."""
        await self._leases.stop()
        connection = self._connection.take()
        if connection is None:
            return
        try:
            if self._leases.live:
                await self._give_back(connection, sorted(self._leases.live))
        finally:
            await connection.close()


class PostgresLedger(_Ledger):
    """Reservations in PostgreSQL (``budget_totals``, ``budget_holds`` in the store's schema)."""

    _RESERVE: Final = f"""
        WITH held AS (
            INSERT INTO budget_totals AS t
                (budget, key, window_start, limit_usd, spent_usd, reserved_usd)
            SELECT $1, $2, $3::float8, $4::float8, 0, $5::float8
            WHERE 0 < $4::float8 - {EPSILON} AND $5::float8 <= $4::float8 + {EPSILON}
            ON CONFLICT (budget, key, window_start) DO UPDATE
                SET reserved_usd = t.reserved_usd + EXCLUDED.reserved_usd,
                    limit_usd = EXCLUDED.limit_usd
                WHERE t.spent_usd + t.reserved_usd < EXCLUDED.limit_usd - {EPSILON}
                  AND t.spent_usd + t.reserved_usd + EXCLUDED.reserved_usd
                      <= EXCLUDED.limit_usd + {EPSILON}
            RETURNING 1
        ), hold AS (
            INSERT INTO budget_holds (hold_id, budget, key, window_start, amount, expires_at)
            SELECT $6, $1, $2, $3::float8, $5::float8,
                   {_NOW} + $7::float8 FROM held
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM hold),
               (SELECT spent_usd FROM budget_totals
                 WHERE budget = $1 AND key = $2 AND window_start = $3::float8),
               (SELECT reserved_usd FROM budget_totals
                 WHERE budget = $1 AND key = $2 AND window_start = $3::float8)"""
    _SETTLE: Final = """
        WITH gone AS (DELETE FROM budget_holds WHERE hold_id = $1 RETURNING amount)
        UPDATE budget_totals
           SET reserved_usd = greatest(
                   0, reserved_usd - coalesce((SELECT sum(amount) FROM gone), 0)),
               spent_usd = spent_usd + $2::float8
         WHERE budget = $3 AND key = $4 AND window_start = $5::float8"""
    _SPEND: Final = """
        INSERT INTO budget_totals AS t
            (budget, key, window_start, limit_usd, spent_usd, reserved_usd)
        VALUES ($1, $2, $3::float8, $4::float8, $5::float8, 0)
        ON CONFLICT (budget, key, window_start) DO UPDATE
            SET spent_usd = t.spent_usd + EXCLUDED.spent_usd"""
    _SWEEP: Final = f"""
        WITH gone AS (
            DELETE FROM budget_holds WHERE expires_at < {_NOW}
            RETURNING budget, key, window_start, amount
        ), sums AS (
            SELECT budget, key, window_start, sum(amount) AS amount FROM gone GROUP BY 1, 2, 3
        )
        UPDATE budget_totals t SET reserved_usd = greatest(0, t.reserved_usd - s.amount)
          FROM sums s
         WHERE t.budget = s.budget AND t.key = s.key AND t.window_start = s.window_start"""
    _RENEW: Final = f"""
        UPDATE budget_holds SET expires_at = {_NOW} + $2::float8
         WHERE hold_id = ANY($1::text[])"""

    def __init__(self, dsn: str, *, lease: float = LEASE_SECONDS) -> None:
        super().__init__(lease)
        self.dsn = dsn

    async def _open(self) -> Any:
        pg: Any = require("asyncpg", "postgres", "budgets in PostgreSQL")
        pool = await pg.create_pool(self.dsn, min_size=1, max_size=4)
        async with pool.acquire() as conn:
            # Two processes creating the tables at once: one waits for the other.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(8046113)")
                for statement in _SCHEMA:
                    await conn.execute(statement)
            await conn.execute(self._SWEEP)
        self._leases.start(self._renew)
        return pool

    async def _renew(self, hold_ids: list[str]) -> None:
        pool = await self._connected()
        async with pool.acquire() as conn:
            if hold_ids:
                await conn.execute(self._RENEW, hold_ids, self._leases.lease)
            await conn.execute(self._SWEEP)

    async def reserve(self, hold: Hold) -> tuple[float, float] | None:
        """Check and hold in one statement; ``(spent, reserved)`` when refused."""
        pool = await self._connected()
        hold.hold_id = uuid.uuid4().hex
        key = bounded_key(hold.key)
        args = (hold.budget.label, key, hold.window, hold.budget.limit_usd, hold.amount)
        held, spent, reserved = await pool.fetchrow(
            self._RESERVE, *args, hold.hold_id, self._leases.lease
        )
        if not held and reserved:  # holds of a process that died may have expired: sweep, retry
            if await pool.fetchval(self._SWEEP + " RETURNING 1"):
                held, spent, reserved = await pool.fetchrow(
                    self._RESERVE, *args, hold.hold_id, self._leases.lease
                )
        if held:
            self._leases.live.add(hold.hold_id)
            return None
        return (spent or 0.0), (reserved or 0.0)

    async def settle(self, holds: Sequence[Hold], actual: float) -> None:
        """Release the holds and add ``actual`` to each one's budget (one round trip)."""
        pool = await self._connected()
        held = [h for h in holds if h.hold_id]
        if held:
            await pool.executemany(
                self._SETTLE,
                [(h.hold_id, actual, h.budget.label, bounded_key(h.key), h.window) for h in held],
            )
            self._leases.live.difference_update(h.hold_id for h in held)
        if len(held) < len(holds):
            await pool.executemany(
                self._SPEND,
                [
                    (h.budget.label, bounded_key(h.key), h.window, h.budget.limit_usd, actual)
                    for h in holds
                    if not h.hold_id
                ],
            )

    async def status(self, budgets: Sequence[Budget]) -> list[BudgetStatus]:
        """Each budget's keys in its current window."""
        pool = await self._connected()
        async with pool.acquire() as conn:
            await conn.execute(self._SWEEP)
            rows = await conn.fetch(
                _TOTALS + " WHERE budget = ANY($1::text[])", [b.label for b in budgets]
            )
        return statuses([tuple(r) for r in rows], budgets)

    async def _give_back(self, connection: Any, hold_ids: list[str]) -> None:
        await connection.execute(
            "UPDATE budget_holds SET expires_at = 0 WHERE hold_id = ANY($1::text[])", hold_ids
        )
        await connection.execute(self._SWEEP)


class SQLiteLedger(_Ledger):
    """Reservations in the store's SQLite file: shared by the processes of one host."""

    def __init__(self, path: str, *, lease: float = LEASE_SECONDS) -> None:
        super().__init__(lease)
        self.path = path
        self._turn: asyncio.Lock | None = None  # one transaction at a time on the connection

    async def _open(self) -> Any:
        import aiosqlite

        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute("PRAGMA busy_timeout = 30000")
        async with self._immediate(db):
            for statement in _SCHEMA:
                await db.execute(statement)
            await self._sweep(db)
        self._leases.start(self._renew)
        return db

    @contextlib.asynccontextmanager
    async def _immediate(self, db: Any) -> Any:
        """A write transaction that takes the file's write lock at once (no lost update), one
        at a time on this connection."""
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    @staticmethod
    async def _taken(db: Any, where: tuple[str, str, float]) -> tuple[float, float]:
        rows = await db.execute_fetchall(
            "SELECT spent_usd, reserved_usd FROM budget_totals "
            "WHERE budget = ? AND key = ? AND window_start = ?",
            where,
        )
        return (rows[0][0], rows[0][1]) if rows else (0.0, 0.0)

    @staticmethod
    async def _sweep(db: Any) -> None:
        now = time.time()
        rows = await db.execute_fetchall(
            "SELECT budget, key, window_start, sum(amount) FROM budget_holds "
            "WHERE expires_at < ? GROUP BY 1, 2, 3",
            (now,),
        )
        await db.execute("DELETE FROM budget_holds WHERE expires_at < ?", (now,))
        await db.executemany(
            "UPDATE budget_totals SET reserved_usd = max(0, reserved_usd - ?4) "
            "WHERE budget = ?1 AND key = ?2 AND window_start = ?3",
            rows,
        )

    async def _renew(self, hold_ids: list[str]) -> None:
        db = await self._connected()
        async with self._immediate(db):
            expires = time.time() + self._leases.lease
            await db.executemany(
                "UPDATE budget_holds SET expires_at = ? WHERE hold_id = ?",
                [(expires, hold_id) for hold_id in hold_ids],
            )
            await self._sweep(db)

    async def reserve(self, hold: Hold) -> tuple[float, float] | None:
        """Check and hold inside one write transaction; ``(spent, reserved)`` when refused."""
        db = await self._connected()
        budget = hold.budget
        key = bounded_key(hold.key)
        async with self._immediate(db):
            where = (budget.label, key, hold.window)
            spent, reserved = await self._taken(db, where)
            if not fits(spent + reserved, hold.amount, budget.limit_usd) and reserved:
                await self._sweep(db)  # holds of a process that died may have expired
                spent, reserved = await self._taken(db, where)
            if not fits(spent + reserved, hold.amount, budget.limit_usd):
                return spent, reserved
            hold.hold_id = uuid.uuid4().hex
            await db.execute(
                "INSERT INTO budget_totals AS t VALUES (?1, ?2, ?3, ?4, 0, ?5) "
                "ON CONFLICT (budget, key, window_start) DO UPDATE "
                "SET reserved_usd = t.reserved_usd + ?5, limit_usd = ?4",
                (budget.label, key, hold.window, budget.limit_usd, hold.amount),
            )
            await db.execute(
                "INSERT INTO budget_holds VALUES (?, ?, ?, ?, ?, ?)",
                (
                    hold.hold_id,
                    budget.label,
                    key,
                    hold.window,
                    hold.amount,
                    time.time() + self._leases.lease,
                ),
            )
        self._leases.live.add(hold.hold_id)
        return None

    async def settle(self, holds: Sequence[Hold], actual: float) -> None:
        """Release the holds and add ``actual`` to each one's budget."""
        db = await self._connected()
        async with self._immediate(db):
            for hold in holds:
                released = 0.0
                if hold.hold_id:
                    rows = await db.execute_fetchall(
                        "DELETE FROM budget_holds WHERE hold_id = ? RETURNING amount",
                        (hold.hold_id,),
                    )
                    released = sum(row[0] for row in rows)
                await db.execute(
                    "INSERT INTO budget_totals AS t VALUES (?1, ?2, ?3, ?4, ?5, 0) "
                    "ON CONFLICT (budget, key, window_start) DO UPDATE "
                    "SET spent_usd = t.spent_usd + ?5, "
                    "reserved_usd = max(0, t.reserved_usd - ?6)",
                    (
                        hold.budget.label,
                        bounded_key(hold.key),
                        hold.window,
                        hold.budget.limit_usd,
                        actual,
                        released,
                    ),
                )
        self._leases.live.difference_update(h.hold_id for h in holds)

    async def status(self, budgets: Sequence[Budget]) -> list[BudgetStatus]:
        """Each budget's keys in its current window."""
        db = await self._connected()
        async with self._immediate(db):
            await self._sweep(db)
        rows = await db.execute_fetchall(_TOTALS)
        return statuses(list(rows), budgets)

    async def _give_back(self, connection: Any, hold_ids: list[str]) -> None:
        async with self._immediate(connection):
            await connection.executemany(
                "UPDATE budget_holds SET expires_at = 0 WHERE hold_id = ?",
                [(hold_id,) for hold_id in hold_ids],
            )
            await self._sweep(connection)


_STORED: Final = (
    "SELECT t.budget, t.key, t.window_start, t.limit_usd, t.spent_usd, "
    "(SELECT coalesce(sum(h.amount), 0) FROM budget_holds h WHERE h.budget = t.budget "
    "AND h.key = t.key AND h.window_start = t.window_start AND h.expires_at >= {now}) "
    "FROM budget_totals t ORDER BY t.budget, t.key, t.window_start DESC"
)


async def stored_budgets(store: object, *, every_window: bool = False) -> list[BudgetStatus]:
    """The budgets kept in a store's database, read without writing anything: the newest window
    of each budget and key (every window with ``every_window``); reserved counts only holds
    whose lease runs. Empty when no tracer with budgets has used the database.

    Raises:
        ConfigError: a store that keeps no budgets (memory).
    """
    from .._stores import PostgresStore, SQLiteStore

    if isinstance(store, PostgresStore):
        pg: Any = require("asyncpg", "postgres", "budgets in PostgreSQL")
        conn = await pg.connect(store.dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('budget_totals')") is None:
                return []
            rows = [tuple(r) for r in await conn.fetch(_STORED.format(now=_NOW))]
        finally:
            await conn.close()
    elif isinstance(store, SQLiteStore):
        import aiosqlite

        uri = f"file:{urllib.parse.quote(store.path)}?mode=ro"
        async with aiosqlite.connect(uri, uri=True) as db:
            found = await db.execute_fetchall(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'budget_totals'"
            )
            if not found:
                return []
            rows = [tuple(r) for r in await db.execute_fetchall(_STORED.format(now=time.time()))]
    else:
        raise ConfigError("budgets are kept in a SQLite or PostgreSQL store, not in memory")
    seen: set[tuple[str, str]] = set()
    statuses = []
    for budget, key, window, limit, spent, reserved in rows:
        if not every_window and (budget, key) in seen:
            continue
        seen.add((budget, key))
        statuses.append(
            BudgetStatus(
                name=budget,
                key=key or None,
                limit_usd=limit,
                spent_usd=spent,
                reserved_usd=reserved,
                remaining_usd=max(0.0, limit - spent - reserved),
                window_start=datetime.fromtimestamp(window, UTC),
            )
        )
    return statuses
