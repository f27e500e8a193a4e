"""The writer of a :class:`PostgresStore`: its own connection, the COPY and the merge.

Each batch goes by binary ``COPY`` straight into ``calls``; when the unique index refuses it (a
call of the batch is stored already), the batch goes into the connection's temporary staging
table and is merged with ``INSERT … ON CONFLICT DO NOTHING`` in one transaction. Failures are
sorted: a broken connection, a server restart, a deadlock or a full disk is
:class:`~asynctelemetry._batching.Retryable` (the batch stays queued); a value the server cannot
hold rejects that call only; anything else drops the batch with a :class:`StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

from ..._batching import Retryable
from ..._exceptions import StoreError, mask_secrets
from .._rollup import count_minutes
from . import rollup as _pg_rollup
from .schema import (
    COPY_COLUMNS,
    MERGE_SQL,
    STAGING,
    STAGING_SQL,
    days_of,
    ensure_partitions,
    pg_row,
    prepare,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import date

    import asyncpg

    from ..._record import LLMCall
    from ..._rows import Row
    from .._rollup import Acc, Cell

__all__ = ["PgWriter", "is_db_error", "reason"]

logger = logging.getLogger("asynctelemetry")
#: Rows encoded per step of a COPY: the event loop gets control back between steps.
_ENCODE_STEP: Final = 32
#: A COPY row → the values the rollups count, in ``_pg_rollup.RAW_SQL`` order.
_RAW_OF_COPY: Final = itemgetter(
    *(COPY_COLUMNS.index(name.strip()) for name in _pg_rollup.RAW_SQL.split(","))
)
#: The staging merge, returning what the rollups count of each call it stored.
_MERGE_RETURNING: Final = f"{MERGE_SQL} RETURNING {_pg_rollup.RAW_SQL}"
#: SQLSTATE classes worth retrying: connection, transaction rollback (deadlock, serialization),
#: insufficient resources (disk full), lock not available, operator intervention (shutdown,
#: restart), system error, internal error.
_RETRY_CLASSES: Final = frozenset({"08", "40", "53", "55", "57", "58", "XX"})
#: "no partition of relation found for row": a partition was dropped under the writer.
_NO_PARTITION: Final = "23514"


def is_db_error(pg: Any, exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database or the network (``pg``: the asyncpg module)."""
    return isinstance(exc, OSError | TimeoutError | pg.PostgresError | pg.InterfaceError)


class PgWriter:
    """One store's writer: a dedicated connection, the days whose partitions exist, counters.

    Args:
        pg: the asyncpg module.
        dsn: where to connect.
        connect_timeout: seconds each (re)connection may take.
    """

    def __init__(self, pg: Any, dsn: str, connect_timeout: float) -> None:
        self.pg = pg
        self.dsn = dsn
        #: The DSN as messages show it (its secrets masked).
        self.shown = mask_secrets(dsn)
        self.connect_timeout = connect_timeout
        self.conn: asyncpg.Connection | None = None
        #: Days whose partitions exist (shared with retention, which drops some).
        self.known_days: set[date] = set()
        #: Calls the server refused (e.g. text holding NUL), logged and counted.
        self.rejected = 0
        #: Calls not stored because the same call (``call_id`` and timestamp) already was.
        self.duplicates = 0
        self._failing = False

    async def close(self) -> None:
        """Close the connection (terminate it if closing takes more than 2 s)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=2.0)
            except Exception:
                conn.terminate()

    async def connect(self, *, prepare_schema: bool = False) -> asyncpg.Connection:
        """Connect the writer (within ``connect_timeout``), its staging table ready; it becomes
        :attr:`conn` (and is returned)."""
        try:
            conn = await self.pg.connect(self.dsn, timeout=self.connect_timeout)
        except Exception as exc:
            if self._is_db_error(exc):
                raise StoreError(f"cannot connect to {self.shown}: {reason(exc)}") from exc
            raise
        try:
            if prepare_schema:
                await prepare(conn, self.shown)
            await conn.execute(STAGING_SQL)
        except BaseException:
            conn.terminate()
            raise
        self.conn = conn
        return conn

    def _is_db_error(self, exc: BaseException) -> bool:
        return is_db_error(self.pg, exc)

    async def write(self, batch: list[LLMCall | Row]) -> None:
        """Store one batch (the :class:`BatchQueue` handler): reconnect if needed, merge, count.

        Raises:
            Retryable: the connection, the server or a lock failed; try the batch again later.
            StoreError: the server refused the batch for good (it is dropped and logged).
        """
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await self.connect()
            inserted, rejected = await self._merge(self.conn, batch)
        except StoreError as exc:  # could not reconnect
            raise self._retry(exc, len(batch)) from exc
        except Exception as exc:
            if not self._is_db_error(exc):
                raise
            code = getattr(exc, "sqlstate", None) or ""
            if code == _NO_PARTITION:
                self.known_days.clear()  # a partition went (retention): make it again
            elif code and code[:2] not in _RETRY_CLASSES:
                error = StoreError(f"writing {len(batch)} calls failed: {reason(exc)}")
                logger.error("asynctelemetry: %s; the batch is dropped", error)
                raise error from exc
            if not code or code[:2] in ("08", "57"):  # the connection is gone or going
                self._drop_writer()
            raise self._retry(exc, len(batch)) from exc
        if self._failing:
            self._failing = False
            logger.warning("asynctelemetry: %s is writing again", self.shown)
        for call_id, why in rejected:
            logger.error("asynctelemetry: call %r rejected by PostgreSQL: %s", call_id, why)
        self.rejected += len(rejected)
        self.duplicates += len(batch) - inserted - len(rejected)

    def _retry(self, exc: BaseException, size: int) -> Retryable:
        error = StoreError(f"writing {size} calls to {self.shown} failed: {reason(exc)}")
        if not self._failing:
            self._failing = True
            logger.warning("asynctelemetry: %s; the calls stay queued, retrying", error)
        return Retryable(error)

    def _drop_writer(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()

    async def _merge(
        self, conn: asyncpg.Connection, batch: list[LLMCall | Row]
    ) -> tuple[int, list[tuple[str, str]]]:
        """Store ``batch`` atomically; returns (inserted, rejected rows).

        First, optimistically, one binary COPY straight into ``calls`` (the raw path: rows go in
        with multi-row heap inserts). When a call is stored already (a retried or replayed
        batch, another writer's copy, or twice in this batch) the unique index refuses the
        whole COPY, which leaves nothing behind; the batch then goes the safe way: COPY into the
        staging table and ``INSERT … ON CONFLICT DO NOTHING``, in one transaction.
        """
        await ensure_partitions(conn, days_of(batch), self.known_days)
        try:
            async with conn.transaction():
                minutes: dict[Cell, Acc] = {}
                await conn.copy_records_to_table(
                    "calls", records=_encoded(batch, minutes), columns=COPY_COLUMNS
                )
                await _pg_rollup.remember_minutes(conn, minutes)
            return len(batch), []
        except self.pg.UniqueViolationError:
            pass
        except Exception as exc:
            if not self._is_row_error(exc):
                raise
        rejected: list[tuple[str, str]] = []
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    STAGING, records=_encoded(batch, None), columns=COPY_COLUMNS
                )
                stored = await conn.fetch(_MERGE_RETURNING)
                await _pg_rollup.remember(conn, [_pg_rollup.raw_of(row) for row in stored])
        except Exception as exc:
            if not self._is_row_error(exc):
                raise
            async with conn.transaction():  # find the rows the server refuses, one by one
                for call in batch:
                    try:
                        async with conn.transaction():
                            await conn.copy_records_to_table(
                                STAGING, records=[pg_row(call)], columns=COPY_COLUMNS
                            )
                    except Exception as row_exc:
                        if not self._is_row_error(row_exc):
                            raise
                        rejected.append((_call_id(call), reason(row_exc)))
                stored = await conn.fetch(_MERGE_RETURNING)
                await _pg_rollup.remember(conn, [_pg_rollup.raw_of(row) for row in stored])
        return len(stored), rejected

    def _is_row_error(self, exc: BaseException) -> bool:
        """A value the server or the codec cannot take (class 22: data exception)."""
        if isinstance(exc, UnicodeError | ValueError | OverflowError | TypeError):
            return True
        if isinstance(exc, self.pg.DataError):
            return True
        return str(getattr(exc, "sqlstate", "") or "").startswith("22")


async def _encoded(
    batch: list[LLMCall | Row], minutes: dict[Cell, Acc] | None
) -> AsyncIterator[list[Any]]:
    """The batch's COPY rows, a step at a time, giving the event loop control between steps;
    each step's calls are also counted into ``minutes`` for the rollups, when given."""
    for start in range(0, len(batch), _ENCODE_STEP):
        rows = list(map(pg_row, batch[start : start + _ENCODE_STEP]))
        if minutes is not None:
            count_minutes([_pg_rollup.raw_of(_RAW_OF_COPY(row)) for row in rows], minutes)
        for row in rows:
            yield row
        await asyncio.sleep(0)


def _call_id(call: LLMCall | Row) -> str:
    return str(call[0] if isinstance(call, tuple) else call.call_id)


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
