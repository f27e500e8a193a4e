"""PostgreSQL rollups, kept by the engine: the rules of :mod:`.._rollup` in PostgreSQL's SQL.

The tables are SQLite's (:mod:`..sqlite.rollup`): ``rollup_groups`` (one row per group of
equal ``model``, ``request_model``, ``provider``, ``route_name`` and ``status``, numbered by
:func:`~.._rollup.group_id`) and ``rollups`` (one row per level, period and group: calls,
errors, token sums, unpriced calls, and ``vals``, the three histograms and the exact cost packed
in two ``int8[]``, ``keys`` and ``sums``: the kinds and sums of SQLite's BLOB as pairs, ``key =
index * 8 + kind``, sorted by key, which set-based SQL unnests (``unnest(keys, sums)``, each
array detoasted once) and sums without a loop per element).

The writer works out what each call adds when it encodes the batch (:func:`~.._rollup.derive`,
a few calls per step, the loop breathing between) and sums it on the way (:class:`Batch`: per
level, period and group, the totals and the packed pairs), so in the transaction that stores the
calls it copies one row per rollup row the batch touches into its temporary
``asynctelemetry_rollup_batch`` and adds them with one ``INSERT … SELECT … ON CONFLICT DO
UPDATE``: totals by addition, and a conflicting row's pairs merged with the stored ones by a
full join on the key (keys are unique on each side: integer sums, zeros dropped, sorted by
``array_agg``). Summing in the server instead (hash aggregates over every call's pairs, once
per level) cost more than the rest of the write; the schema's ``asynctelemetry_merge(keys,
sums, keys, sums)`` (the same merge, as a SQL function called per row) is no longer called.
Writers of many processes take turns on an advisory lock for that statement (upserts of
overlapping rows in different orders would deadlock). Retention subtracts the rows it deletes
(:func:`forget`) and deletes a dropped day's periods with it (:func:`forget_day`: every period
nests in one UTC day); repricing subtracts a page's old costs and adds the new ones; rows left
at zero calls go. A database of an older schema gets its rollups built once, a day partition at
a time, when it is migrated (:func:`rebuild`).

A window of more than ``EXACT_LIMIT`` calls is read from them (:func:`rolled`): the plan and
the queries of :func:`~.._rollup.read_queries`, the rollup rows summed by the server per
answer row (totals by ``sum``, pairs unnested and summed per answer row and key, packed again),
so a few rows reach Python; their pairs are added to the cells a slice at a time. A long
window is read as two halves at once, each on a connection of its own in one snapshot (two
server processes sum them), when the pool has a connection to spare.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ..._batching import Slice, both
from .._base import from_ns, to_ns
from .._rollup import (
    COST_HIGH,
    COST_LOW,
    DAY,
    HISTOGRAMS,
    KEY_COLUMNS,
    LEVELS,
    TOTAL_COLUMNS,
    VALUE_KINDS,
    Acc,
    Cells,
    derive,
    levels_for,
    read_queries,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from datetime import date

    import asyncpg

    from .._base import Filters
    from .._rollup import Query

    Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]

__all__ = [
    "BATCH",
    "BATCH_COLUMNS",
    "LOCK_ROLLUP",
    "RAW_SQL",
    "TABLE_SQL",
    "add",
    "derived",
    "forget",
    "forget_day",
    "raw_of",
    "rebuild",
    "remember",
    "rolled",
]

#: Advisory lock key (namespace ``ascii('atlm')``, key) held while a transaction changes rollups.
LOCK_ROLLUP: Final = (0x61746C6D, 5)
_KEYS: Final = ", ".join(KEY_COLUMNS)
_TOTALS: Final = TOTAL_COLUMNS
TABLE_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS rollup_groups (id bigint PRIMARY KEY, model text NOT NULL, "
    "request_model text, provider text, route_name text, status text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS rollups (width_s integer NOT NULL, "
    "start_ns bigint NOT NULL, gid bigint NOT NULL, "
    + ", ".join(f"{c} bigint NOT NULL" for c in _TOTALS)
    + ", keys bigint[], sums bigint[], PRIMARY KEY (width_s, start_ns, gid))",
    # Two packed values summed: their pairs, per key, zeros dropped, sorted by key.
    "CREATE OR REPLACE FUNCTION asynctelemetry_merge(ak bigint[], an bigint[], bk bigint[], "
    "bn bigint[], OUT keys bigint[], OUT sums bigint[]) LANGUAGE sql IMMUTABLE PARALLEL SAFE "
    "AS $$ SELECT array_agg(key ORDER BY key), array_agg(n ORDER BY key) FROM "
    "(SELECT key, sum(n)::bigint AS n FROM (SELECT * FROM unnest(ak, an) UNION ALL "
    "SELECT * FROM unnest(bk, bn)) AS u(key, n) GROUP BY key HAVING sum(n) <> 0) AS s $$",
)
#: The writer's rows of a batch, summed per level, period and group (:class:`Batch`), in the
#: columns of ``rollups`` (one table per connection, emptied at every commit).
BATCH: Final = "asynctelemetry_rollup_batch"
BATCH_COLUMNS: Final = ("width_s", "start_ns", "gid", *_TOTALS, "keys", "sums")
_BATCH_SQL: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {BATCH} (width_s integer, start_ns bigint, gid bigint, "
    + ", ".join(f"{c} bigint" for c in _TOTALS)
    + ", keys bigint[], sums bigint[]) ON COMMIT DELETE ROWS"
)
#: A stored row's pairs and a batch row's, summed per key, zeros dropped, sorted by key: keys
#: are unique within each side, so a full join pairs them (integer sums, no aggregate per key).
_MERGED: Final = (
    "SELECT array_agg(k ORDER BY k), array_agg(n ORDER BY k) FROM (SELECT coalesce(a.k, b.k) "
    "AS k, coalesce(a.n, 0) + coalesce(b.n, 0) AS n FROM unnest(rollups.keys, rollups.sums) "
    "AS a(k, n) FULL JOIN unnest(excluded.keys, excluded.sums) AS b(k, n) ON a.k = b.k) AS s "
    "WHERE n <> 0"
)
#: The batch's rows added to the stored ones (a new row goes in as it is).
_ADD: Final = (
    f"INSERT INTO rollups ({', '.join(BATCH_COLUMNS)}) SELECT * FROM {BATCH} "
    "ON CONFLICT (width_s, start_ns, gid) DO UPDATE SET "
    + ", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in _TOTALS)
    + f", (keys, sums) = ({_MERGED})"
)
#: After calls were taken away: the rows they touched left at zero calls go.
_DROP_EMPTY: Final = (
    f"DELETE FROM rollups t USING {BATCH} b WHERE t.width_s = b.width_s "
    "AND t.start_ns = b.start_ns AND t.gid = b.gid AND t.calls = 0"
)
_ADD_GROUPS: Final = (
    f"INSERT INTO rollup_groups (id, {_KEYS}) SELECT * FROM unnest($1::bigint[], $2::text[], "
    "$3::text[], $4::text[], $5::text[], $6::text[]) ON CONFLICT (id) DO NOTHING"
)
#: The columns a rollup counts, in :data:`.._rollup.RAW_COLUMNS` order (``ts`` for the time).
RAW_SQL: Final = (
    "ts, model, request_model, provider, route_name, status, input_tokens, output_tokens, "
    "cached_input_tokens, reasoning_tokens, cost_usd, duration_ms, ttft_ms"
)
#: Calls derived, or rows packed, per step: the loop gets control back between steps.
_STEP: Final = 64
_S: Final = 1_000_000_000
#: Keys counted by a loop rather than by ``Counter`` (:func:`_counted`).
_FEW: Final = 48
#: A packed pair's key: ``index * 8 + kind`` (:data:`~.._rollup.VALUE_KINDS` kinds).
_KIND_BITS: Final = 3


class Batch:
    """What a batch of calls adds to the rollups, summed per level, period and group: the rows
    the server then adds to the stored ones (:func:`add`), one per row they touch.

    :meth:`take` sums :func:`~.._rollup.derive`'s rows into the finest level's cells as they
    come (a step at a time: no derived row outlives its step): the totals, the costs' halves
    per key, and the histograms' keys, one per call (counted in C when packed); :meth:`rows`
    sums each level into the next coarser one and packs every cell's pairs (``key = index * 8
    + kind``, sorted, no zero sum), as a stored row holds them. ``sign``: -1 when the calls
    are taken away; ``groups``: the groups met, by key; ``slice_``: the clock its steps share
    the loop by (the writer's, which every batch it writes at once shares).
    """

    __slots__ = ("cells", "groups", "sign", "slice_")

    def __init__(self, sign: int = 1, slice_: Slice | None = None) -> None:
        self.sign = sign
        self.slice_ = Slice() if slice_ is None else slice_
        #: (finest period start, group id) → the 7 totals, the histograms' keys (one per call
        #: and histogram), the costs' ``{key: sum}``.
        self.cells: dict[tuple[int, int], list[Any]] = {}
        self.groups: dict[tuple[Any, ...], int] = {}

    def __bool__(self) -> bool:
        return bool(self.cells)

    def take(self, derived: Iterable[tuple[Any, ...]]) -> None:
        """Sum :func:`~.._rollup.derive`'s rows (of this batch's sign) into the finest cells."""
        cells = self.cells
        get = cells.get
        high_kind, low_kind = COST_HIGH, COST_LOW
        for (
            start, gid, c, er, tin, tout, cached, reason, unpriced, lat, ttft, speed, e, high, low
        ) in derived:  # fmt: skip
            cell = get((start, gid))
            if cell is None:
                cell = cells[start, gid] = [0, 0, 0, 0, 0, 0, 0, [], {}]
            cell[0] += c
            cell[1] += er
            cell[2] += tin
            cell[3] += tout
            cell[4] += cached
            cell[5] += reason
            cell[6] += unpriced
            keys = cell[7]  # kinds 0, 1, 2: the histograms (each counting its calls)
            if lat is not None:
                keys.append(lat << _KIND_BITS)
            if ttft is not None:
                keys.append((ttft << _KIND_BITS) + 1)
            if speed is not None:
                keys.append((speed << _KIND_BITS) + 2)
            if e is not None:  # a half of zero adds nothing (and a packed value holds no zero)
                costs = cell[8]
                if high:
                    key = (e << _KIND_BITS) + high_kind
                    costs[key] = costs.get(key, 0) + high
                if low:
                    key = (e << _KIND_BITS) + low_kind
                    costs[key] = costs.get(key, 0) + low

    async def rows(self) -> list[tuple[Any, ...]]:
        """Every level's rows (:data:`BATCH_COLUMNS`), finest first, a step at a time."""
        slice_ = self.slice_
        out: list[tuple[Any, ...]] = []
        cells = self.cells
        for i, width in enumerate(reversed(LEVELS)):  # the finest level, then each coarser one
            if i:
                cells = await _coarser(cells, width * _S, slice_)
            out += await _packed(width, cells, self.sign, slice_)
        return out


async def _packed(
    width: int, cells: dict[tuple[int, int], list[Any]], sign: int, slice_: Slice
) -> list[tuple[Any, ...]]:
    """One level's cells as rows of the batch table."""
    out: list[tuple[Any, ...]] = []
    for (start, gid), cell in cells.items():  # a coarse cell may count thousands of keys
        pairs = _counted(cell[7])
        if sign < 0:
            pairs = {key: -n for key, n in pairs.items()}
        dict.update(pairs, cell[8])  # the costs' keys: kinds of their own
        if 0 in pairs.values():  # a sum back at zero (calls added and taken away) goes
            pairs = {key: n for key, n in pairs.items() if n}
        # Tuples of integers, which the garbage collector stops tracking: the rows live until
        # the batch commits, and every tracked object that lives that long makes the next full
        # collection (which holds the loop for tens of ms) come sooner.
        keys = tuple(sorted(pairs))
        sums = tuple(map(pairs.__getitem__, keys))
        out.append((width, start, gid, *cell[:7], keys or None, sums or None))
        await slice_.breathe()
    return out


def _counted(keys: list[int]) -> dict[int, int]:
    """How many times each key is in ``keys``: a loop for a few (a finest cell's), in C for
    many (a coarse cell's: ``Counter``'s setup costs as much as a dozen steps of the loop)."""
    if len(keys) > _FEW:
        return Counter(keys)
    counts: dict[int, int] = {}
    get = counts.get
    for key in keys:
        counts[key] = get(key, 0) + 1
    return counts


async def _coarser(
    cells: dict[tuple[int, int], list[Any]], width_ns: int, slice_: Slice
) -> dict[tuple[int, int], list[Any]]:
    """A level's cells summed into the periods of ``width_ns`` (which each of its periods nests
    in)."""
    out: dict[tuple[int, int], list[Any]] = {}
    get = out.get
    for count, ((start, gid), cell) in enumerate(cells.items(), 1):
        key = (start - start % width_ns, gid)  # floored, also before 1970
        into = get(key)
        if into is None:
            out[key] = [*cell[:7], list(cell[7]), dict(cell[8])]
        else:
            for i in range(7):
                into[i] += cell[i]
            into[7] += cell[7]
            costs = into[8]
            for k, n in cell[8].items():
                costs[k] = costs.get(k, 0) + n
        if not count % _STEP:
            await slice_.breathe()
    return out


def raw_of(values: Sequence[Any]) -> tuple[Any, ...]:
    """A call's :data:`RAW_SQL` values (a fetched row, or the same fields of a COPY row) as the
    rollups count them: the time in nanoseconds, the exact cost as the float it was."""
    cost = values[10]
    return (
        to_ns(values[0]),
        *values[1:10],
        None if cost is None else float(cost),
        values[11],
        values[12],
    )


async def derived(raw: Iterable[Sequence[Any]], sign: int = 1) -> Batch:
    """What the calls of ``raw`` (their :func:`raw_of` values) add to the rollups
    (:func:`~.._rollup.derive`, summed: :class:`Batch`), a step of calls at a time."""
    raw = list(raw)
    batch = Batch(sign)
    slice_ = batch.slice_
    for start in range(0, len(raw), _STEP):
        batch.take(derive(raw[start : start + _STEP], batch.groups, sign))
        await slice_.breathe()
    return batch


async def add(conn: asyncpg.Connection, batch: Batch, sign: int = 1) -> None:
    """Add a :class:`Batch` to every level, in the caller's transaction: its groups, its rows
    into the batch table by COPY, then one upsert under the rollup lock (and, after calls were
    taken away, ``sign=-1``, the rows left at zero go)."""
    if not batch:
        return
    rows = await batch.rows()
    await conn.execute(_BATCH_SQL)
    await conn.execute(f"DELETE FROM {BATCH}")
    groups = batch.groups
    ids = list(groups.values())
    keys = list(zip(*groups, strict=True))
    await conn.execute(_ADD_GROUPS, ids, *keys)
    await conn.copy_records_to_table(BATCH, records=batch.slice_.each(rows), columns=BATCH_COLUMNS)
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_ROLLUP)
    await conn.execute(_ADD)
    if sign < 0:
        await conn.execute(_DROP_EMPTY)


async def remember(conn: asyncpg.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Add calls just stored (their :func:`raw_of` values), in the caller's transaction."""
    if raw:
        await add(conn, await derived(raw))


async def forget(conn: asyncpg.Connection, raw: Sequence[Sequence[Any]]) -> None:
    """Take away calls about to go or to change (their :func:`raw_of` values)."""
    if raw:
        await add(conn, await derived(raw, -1), -1)


async def forget_day(conn: asyncpg.Connection, day: date) -> None:
    """Delete every period of one UTC day (its calls went with its partition)."""
    start = to_ns(_midnight(day))
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *LOCK_ROLLUP)
        await conn.execute(
            "DELETE FROM rollups WHERE start_ns >= $1 AND start_ns < $2", start, start + DAY * _S
        )


#: Calls read per step when the rollups are built from a partition.
_REBUILD_CHUNK: Final = 10_000


async def rebuild(conn: asyncpg.Connection, partitions: Iterable[str]) -> None:
    """Build the rollups from every stored call, one day partition at a time (a migration step,
    in its transaction; ``partitions`` are our own checked ``calls_YYYYMMDD`` names)."""
    for table in ("rollups", "rollup_groups"):
        await conn.execute(f"DELETE FROM {table}")  # our own constant names
    for name in partitions:
        raw: list[tuple[Any, ...]] = []
        async for record in conn.cursor(f"SELECT {RAW_SQL} FROM {name}", prefetch=_REBUILD_CHUNK):
            raw.append(raw_of(record))
            if len(raw) >= _REBUILD_CHUNK:
                await remember(conn, raw)
                raw = []
        await remember(conn, raw)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _dollars(sql: str) -> str:
    """``?`` placeholders (as :mod:`.._rollup` writes its clauses) numbered ``$1, $2, …``."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


#: A read's rollup rows (:func:`~.._rollup.read_queries`) summed per answer row by the
#: server: the answer rows numbered first (``cell``: ``dense_rank`` over the bucket and the
#: group value, NULLs alike), the totals by ``sum``, the pairs unnested in the select list (no
#: table function's tuple store) and, but for the kinds the read does not want (``{skip}``),
#: summed per cell and key (two integers: a hash key many times cheaper than the bucket and the
#: text of the group value), then per kind its indexes and sums (:data:`~.._rollup.Segments`,
#: in no order: the reader adds them into dicts).
_SUMMED: Final = (
    "WITH r AS (SELECT q.*, dense_rank() OVER (ORDER BY b, k) AS cell FROM ({rows}) AS q), "
    "t AS (SELECT cell, b, k, "
    + ", ".join(f"sum({c})::bigint AS {c}" for c in _TOTALS)
    + " FROM r GROUP BY cell, b, k), "
    "v AS (SELECT cell, key, sum(n)::bigint AS n FROM (SELECT cell, unnest(keys) AS key, "
    "unnest(sums) AS n FROM r) AS u{skip} GROUP BY cell, key HAVING sum(n) <> 0), "
    "s AS (SELECT cell, "
    + ", ".join(
        f"array_agg({part}) FILTER (WHERE key & 7 = {kind}) AS s{kind}{name}"
        for kind in range(VALUE_KINDS)
        for part, name in (("key >> 3", "i"), ("n", "n"))
    )
    + " FROM v GROUP BY cell) "
    f"SELECT t.b, t.k, {', '.join(f't.{c}' for c in _TOTALS)}, "
    + ", ".join(
        f"coalesce(s.s{kind}{name}, '{{{{}}}}'::bigint[])"
        for kind in range(VALUE_KINDS)
        for name in "in"
    )
    + " FROM t LEFT JOIN s USING (cell)"
)
#: Memory for the read's hash aggregates (``SET LOCAL``: its transaction only): a 7-day time
#: series by model sums a few hundred thousand (cell, key) groups, which spill to disk in the
#: default 4 MB.
_WORK_MEM: Final = "SET LOCAL work_mem = '64MB'"
#: The edges' raw rows as :meth:`~.._rollup.Cells.add_raw` takes them (:func:`raw_of`'s values,
#: made by the server: the time in integer nanoseconds, the exact cost as the float it was),
#: so no datetime or Decimal is built per row.
_RAW_READ: Final = RAW_SQL.replace(
    "ts,", "((extract(epoch FROM ts) * 1000000)::bigint * 1000),", 1
).replace("cost_usd,", "cost_usd::float8,", 1)
#: Rows added to the cells between the loop's turns.
_ROWS_PER_STEP: Final = 16
#: A window at least this long is read as two halves at once (:func:`_halves`).
_HALVES_NS: Final = 6 * 3600 * _S


async def rolled(
    fetch: Fetch,
    filters: Filters,
    column: str | None,
    width_ns: int | None,
    hists: tuple[str, ...] = HISTOGRAMS,
    *,
    another: Callable[[], Awaitable[Fetch | None]] | None = None,
) -> dict[tuple[int | None, Any], Acc] | None:
    """The calls that pass ``filters``, accumulated per (bucket start or ``None``, value of
    ``column`` or ``None``) from the rollups and the raw rows of the window's edges; ``None``
    when rollups cannot serve the read. A long window's two halves (:func:`_halves`) are read at
    once when ``another()`` gives a second ``fetch`` in the same snapshot (else one after the
    other through ``fetch``)."""
    levels = levels_for(filters, column, width_ns)
    if levels is None:
        return None
    lo = None if filters.since is None else to_ns(filters.since)
    hi = None if filters.until is None else to_ns(filters.until)
    parts = [
        read_queries(
            filters,
            column,
            width_ns,
            a,
            b,
            raw_select=f"SELECT {_RAW_READ} FROM calls",
            time_column="ts",
            time_param=from_ns,
            values="keys, sums",
        )
        or []
        for a, b in _halves(lo, hi, width_ns, levels)
    ]
    cells = Cells(column, width_ns, hists)
    second = None if len(parts) < 2 or another is None else await another()
    if second is None:
        for queries in parts:
            await _read(fetch, queries, cells, hists)
    else:
        await both(_read(fetch, parts[0], cells, hists), _read(second, parts[1], cells, hists))
    return cells.out


def _halves(
    lo: int | None, hi: int | None, width_ns: int | None, levels: Sequence[int]
) -> list[tuple[int | None, int | None]]:
    """``[lo, hi)`` (ns) cut in two near its middle at a bucket's start (or else a period's of
    the coarsest level that has one inside), so the halves read the same periods as the whole
    window would: each half's rows summed by a server process of its own. One piece for a
    window shorter than ``_HALVES_NS`` or unbounded."""
    if lo is None or hi is None or hi - lo < _HALVES_NS:
        return [(lo, hi)]
    middle = lo + (hi - lo) // 2
    for step in (*([width_ns] if width_ns else []), *(w * _S for w in levels)):
        cut = middle - middle % step
        if lo < cut < hi:
            return [(lo, cut), (cut, hi)]
    return [(lo, hi)]


async def _read(fetch: Fetch, queries: list[Query], cells: Cells, hists: tuple[str, ...]) -> None:
    """Run a part's queries through ``fetch`` and add their rows to ``cells``: rollup rows
    summed by the server (:data:`_SUMMED`, without the histograms not in ``hists``), raw rows
    as :meth:`~.._rollup.Cells.add_raw` takes them."""
    unwanted = [str(kind) for kind, name in enumerate(HISTOGRAMS) if name not in hists]
    skip = f" WHERE key & 7 NOT IN ({', '.join(unwanted)})" if unwanted else ""
    slice_ = Slice()
    if any(kind == "packed" for kind, _, _ in queries):
        await fetch(_WORK_MEM, ())
    for kind, sql, params in queries:
        if kind == "raw":
            rows = await fetch(_dollars(sql), params)
            for start in range(0, len(rows), _STEP):
                cells.add_raw(rows[start : start + _STEP])
                await slice_.breathe()
            continue
        rows = await fetch(_dollars(_SUMMED.format(rows=sql, skip=skip)), params)
        for start in range(0, len(rows), _ROWS_PER_STEP):
            cells.add_packed(map(tuple, rows[start : start + _ROWS_PER_STEP]))
            await slice_.breathe()
