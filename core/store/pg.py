"""The PostgreSQL task store: one database shared by every fetchdeck node (asyncpg, a connection pool).

Same contract and semantics as the SQLite store (core/store/repo.py; the shared encodings and the
claim's host budget are core/store/rows.py's, the schema core/store/schema.py's), for many nodes:

- `claim` takes candidates with `SELECT … FOR UPDATE SKIP LOCKED` in queue order (priority, position, id:
  core/queue.py; the `tasks_waiting` partial index has those columns, so a claim reads only the queue's
  head), so two nodes never claim the same task; the per-host accounting (connections granted and tasks
  running on a capped host, counted over every node) is serialised across nodes by
  `pg_try_advisory_xact_lock` on the host: a node that cannot take a host's lock leaves that host to the
  node holding it for this round (no deadlock between nodes claiming several hosts in different orders),
  and counts the host's use only once it holds the lock, so the count includes every claim committed
  before it.
- Lease expiry and node heartbeats are judged by ONE clock, the database's
  (`extract(epoch from clock_timestamp())`); task timestamps (`created_at`, `updated_at`) are the node's,
  as on SQLite.
- Fenced writes add `AND node=$me AND lease_gen=$gen` (see core/store/base.py).
- Every error that means "the database cannot be reached or refused for want of resources" (connection
  refused or lost, server shutting down or starting, too many connections, disk full, a timeout) becomes
  `StoreUnavailable`; the engine keeps what it could not write and retries. Writes are shielded from
  the caller's cancellation, so what this store remembers (its leases) always matches what committed.
- `listen`/`notify` (not in the TaskStore contract; the cluster runtime's wake-ups and event relay) use
  one dedicated connection outside the pool; when it is lost (a database restart) it reconnects with
  back-off, listens again on every channel and calls `on_reconnect` (the node re-scans what it missed).
- Migrations: the schema version is a row in `schema_version`; a node migrates inside one transaction
  holding `pg_advisory_xact_lock`, so N nodes starting at once migrate once.

Why asyncpg rather than psycopg 3's async API: asyncpg speaks the PostgreSQL binary protocol itself
(Cython), with a prepared-statement cache per connection and a pool built in; LISTEN/NOTIFY is callback
based on any connection (`add_listener`) and a lost connection is reported to `add_termination_listener`,
which is what re-listening after a database restart needs. Measured with tests/store/bench_driver.py
(PostgreSQL 15 on 127.0.0.1, 20,000 tasks, 2 shared cores, three runs; the command is in its docstring):
one-row reads by id 5,200-12,300/s with asyncpg against 2,200-6,100/s with psycopg; claim-shaped
transactions (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 4 + UPDATE ... RETURNING) 700-1,800/s against
350-1,100/s; a 10k-row page decoded to Tasks 241-259 ms against 238-287 ms (a tie: building the Tasks
dominates). The claim path, the one the queue's throughput rides on, is where asyncpg wins, and
`PgTaskStore.claim` across 3 nodes took 3,100-3,800 tasks/s in the same runs. Nothing outside this
module imports asyncpg (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

from core.errors import LeaseLost, StoreUnavailable
from core.models import LogLine, Task, TaskStatus
from core.queue import RENUMBER, QueueMove, moved_position
from core.store.base import MAX_FILTER_IDS, Claim, HostCaps, Lease, NodeInfo, TaskFilter, TaskPatch, TaskStore
from core.store.rows import (
    DOWNLOADING,
    INSERT_COLUMNS,
    IS_WAITING,
    QUEUE_ORDER,
    READ_COLUMNS,
    WAITING,
    HostBudget,
    LeaseBook,
    ends_lease,
    insert_values,
    patch_columns,
    task_from_row,
)
from core.store.schema import MIGRATIONS, Backfill, postgres_statements

log = logging.getLogger("fetchdeck.store")

T = TypeVar("T")

NOW = "extract(epoch from clock_timestamp())"  # the database's clock, unix seconds
MIGRATION_LOCK = 0x66646B6D  # 'fdkm': the advisory lock migrations hold
HOST_LOCK = "fetchdeck-host:"  # prefix of the per-host advisory lock keys (hashtext)
CLAIM_SCAN = 2048  # at most this many candidates looked at per claim
MAX_NOTIFY_PAYLOAD = 7900  # bytes (PostgreSQL's limit is 8000)
RECONNECT_BACKOFF = (0.1, 0.2, 0.5, 1.0, 2.0)  # seconds between tries to get the LISTEN connection back
LISTEN_PING = 5.0  # seconds between checks that the LISTEN connection is alive

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08: connection lost or failed
    asyncpg.InterfaceError,  # the connection is closed
    asyncpg.InternalClientError,  # a connection the server dropped mid-operation ("another operation is in progress")
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, too many connections
)

TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,  # 40P01
    asyncpg.exceptions.SerializationError,  # 40001
)
ANALYZE_AFTER = 1000  # a batch of new tasks at least this big refreshes the planner's statistics
WRITE_ATTEMPTS = 4  # a write rolled back by a deadlock or a serialization failure is run again this often

LISTEN_ERRORS: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncpg.PostgresError)

Listener = Callable[[str], Awaitable[None] | None]
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"  # a pooled connection, as the statements get it


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"{type(exc).__name__}: {exc}".rstrip(": ") or "the database is unreachable")


def _status_count(status: str) -> int:
    """The row count of a command status ("UPDATE 3" → 3)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


class PgTaskStore(TaskStore):
    """Tasks in PostgreSQL, shared by every node that opens the same database with its own node name."""

    def __init__(self, pool: asyncpg.Pool, url: str, node: str) -> None:
        self._pool = pool
        self._url = url
        self._node = node
        self._leases = LeaseBook()
        self.on_reconnect: Callable[[], Awaitable[None] | None] | None = None
        self._listeners: dict[str, list[Listener]] = {}
        self._listen_conn: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._listen_lost = asyncio.Event()
        self._callbacks: set[asyncio.Future[None]] = set()  # listener coroutines still running
        self._closed = False

    @classmethod
    async def open(cls, url: str, node: str, *, min_size: int = 1, max_size: int = 8) -> PgTaskStore:
        """Connect a pool to `url` and migrate the schema (once, whichever node gets there first)."""
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=10,
                                             command_timeout=60)
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        store = cls(pool, url, node)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    @property
    def node(self) -> str:
        return self._node

    @property
    def shared(self) -> bool:
        return True

    async def close(self) -> None:
        self._closed = True
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await self._listen_conn.close(timeout=2)
        await self._pool.close()

    # ---- running statements ---------------------------------------------------
    @contextlib.asynccontextmanager
    async def _conn(self, transaction: bool = False) -> AsyncIterator[Conn]:
        """A pooled connection (inside a transaction if asked); database outages become StoreUnavailable."""
        try:
            async with self._pool.acquire() as conn:
                if transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    async def _read(self, body: Callable[[Conn], Awaitable[T]]) -> T:
        """A read; tried once more on a fresh connection if the pooled one died (a database restart)."""
        for attempt in (1, 2):
            try:
                async with self._conn() as conn:
                    return await body(conn)
            except StoreUnavailable:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _write(self, body: Callable[[Conn], Awaitable[T]],
                     committed: Callable[[T], None] | None = None) -> T:
        """One transaction, run to its end even if the caller is cancelled; committed(result) after COMMIT."""

        async def run() -> T:
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    async with self._conn(transaction=True) as conn:
                        result = await body(conn)
                    break
                except TRANSIENT:
                    # Two transactions locked the same task rows in opposite orders (a heartbeat, another
                    # node's reaper, a progress flush): one was rolled back whole; run it again.
                    if attempt == WRITE_ATTEMPTS:
                        raise
            if committed is not None:
                committed(result)
            return result

        return await asyncio.shield(run())

    async def _migrate(self) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"database schema version {version} is newer than this fetchdeck knows ({len(MIGRATIONS)})")
            for number in range(version, len(MIGRATIONS)):
                for op in MIGRATIONS[number]:
                    if isinstance(op, Backfill):
                        rows = await conn.fetch(f"SELECT id, {op.source} AS source FROM {op.table}")
                        await conn.executemany(f"UPDATE {op.table} SET {op.column}=$1 WHERE id=$2",
                                               [(op.derive(r["source"]), r["id"]) for r in rows])
                    for statement in postgres_statements(op):
                        await conn.execute(statement)
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number + 1)

        await self._write(body)

    async def schema_version(self) -> int:
        return int(await self._read(lambda conn: conn.fetchval("SELECT max(version) FROM schema_version")) or 0)

    # ---- reads ----------------------------------------------------------------
    async def get(self, task_id: int) -> Task | None:
        row = await self._read(lambda c: c.fetchrow(f"SELECT {READ_COLUMNS} FROM tasks WHERE id=$1", task_id))
        return task_from_row(row) if row is not None else None

    @staticmethod
    def _where(flt: TaskFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if flt.statuses:
            clauses.append(f"status = ANY({arg(sorted(str(s) for s in flt.statuses))}::text[])")
        if flt.kinds:
            clauses.append(f"kind = ANY({arg(sorted(str(k) for k in flt.kinds))}::text[])")
        if flt.folders:
            clauses.append(f"folder = ANY({arg(sorted(flt.folders))}::text[])")
        if flt.ids:
            if len(flt.ids) > MAX_FILTER_IDS:
                raise ValueError(f"at most {MAX_FILTER_IDS} ids per filter")
            clauses.append(f"id = ANY({arg(sorted(flt.ids))}::bigint[])")
        if flt.text:
            text = arg(flt.text.lower())
            clauses.append(f"(strpos(lower(name), {text}) > 0 OR strpos(lower(url), {text}) > 0)")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def page(self, offset: int, limit: int, flt: TaskFilter) -> tuple[list[Task], int]:
        where, args = self._where(flt)
        order = "DESC" if flt.newest_first else "ASC"
        n = len(args)

        async def body(conn: Conn) -> tuple[list[Task], int]:
            rows = await conn.fetch(
                f"SELECT {READ_COLUMNS} FROM tasks{where} ORDER BY id {order} LIMIT ${n + 1} OFFSET ${n + 2}",
                *args, max(0, limit), max(0, offset))
            count = await conn.fetchval(f"SELECT count(*) FROM tasks{where}", *args)
            return [task_from_row(r) for r in rows], int(count or 0)

        return await self._read(body)

    async def waiting_ids(self, limit: int = -1) -> list[int]:
        rows = await self._read(lambda c: c.fetch(
            f"SELECT id FROM tasks WHERE {IS_WAITING} ORDER BY {QUEUE_ORDER} LIMIT $1",
            limit if limit >= 0 else None))
        return [r["id"] for r in rows]

    async def count_by_status(self) -> dict[TaskStatus, int]:
        rows = await self._read(lambda c: c.fetch("SELECT status, count(*) AS n FROM tasks GROUP BY status"))
        counts = {s: 0 for s in TaskStatus}
        for row in rows:
            counts[TaskStatus(row["status"])] = int(row["n"])
        return counts

    async def folders(self) -> list[str]:
        rows = await self._read(lambda c: c.fetch("SELECT DISTINCT folder FROM tasks ORDER BY folder"))
        return [r["folder"] for r in rows]

    async def files_in_use(self) -> set[str]:
        rows = await self._read(lambda c: c.fetch(
            "SELECT file FROM tasks WHERE file IS NOT NULL AND status <> 'success'"))
        return {r["file"] for r in rows}

    async def logs(self, task_id: int, limit: int = 5000) -> list[LogLine]:
        rows = await self._read(lambda c: c.fetch(
            "SELECT ts, text FROM (SELECT id, ts, text FROM task_logs WHERE task_id=$1 ORDER BY id DESC LIMIT $2)"
            " AS newest ORDER BY id", task_id, limit))
        return [LogLine(ts=r["ts"], text=r["text"]) for r in rows]

    async def integrity_ok(self) -> bool:
        """The schema is the version this fetchdeck knows and the tables answer."""
        async def body(conn: Conn) -> bool:
            version = await conn.fetchval("SELECT max(version) FROM schema_version")
            await conn.fetchval("SELECT count(*) FROM (SELECT 1 FROM tasks LIMIT 1) AS one")
            return bool(version == len(MIGRATIONS))

        return await self._read(body)

    # ---- writes ---------------------------------------------------------------
    async def insert_many(self, tasks: list[Task]) -> list[Task]:
        """Ids from the table's sequence (ascending, never reused), rows in by COPY."""
        if not tasks:
            return tasks

        async def body(conn: Conn) -> tuple[list[int], float]:
            rows = await conn.fetch("SELECT nextval('tasks_id_seq') AS id FROM generate_series(1, $1)", len(tasks))
            ids = sorted(int(r["id"]) for r in rows)
            # after every task: the end of the queue (core/queue.py); two nodes inserting at once may tie
            # (the id orders those)
            first = float(await conn.fetchval("SELECT max(position) FROM tasks") or 0) + 1
            records = [insert_values(task, task_id, first + offset)
                       for offset, (task, task_id) in enumerate(zip(tasks, ids, strict=True))]
            await conn.copy_records_to_table("tasks", records=records, columns=INSERT_COLUMNS)
            return ids, first

        ids, first = await self._write(body)
        for offset, (task, task_id) in enumerate(zip(tasks, ids, strict=True)):
            task.id, task.position = task_id, first + offset
        if len(tasks) >= ANALYZE_AFTER:
            # Fresh statistics, so the planner walks the waiting-tasks index for claims at once rather than
            # sorting every waiting row until autovacuum gets to the table.
            with contextlib.suppress(StoreUnavailable):
                async with self._conn() as conn:
                    await conn.execute("ANALYZE tasks")
        return tasks

    async def update(self, task_id: int, patch: TaskPatch) -> None:
        await self.update_many([(task_id, patch)])

    async def update_many(self, changes: list[tuple[int, TaskPatch]]) -> None:
        # in id order: every writer locks task rows in the same order, so two of them cannot deadlock
        changes = sorted(((task_id, patch) for task_id, patch in changes if patch), key=lambda c: c[0])
        if not changes:
            return
        now = time.time()
        statements = []
        for task_id, patch in changes:
            columns = patch_columns(patch)
            sets = ", ".join(f"{name}=${i}" for i, (name, _) in enumerate(columns, start=1))
            n = len(columns)
            lease = self._leases.get(task_id)
            sql = f"UPDATE tasks SET {sets}, updated_at=${n + 1} WHERE id=${n + 2}"
            args: list[Any] = [*(value for _, value in columns), now, task_id]
            if lease is not None:
                sql += f" AND node=${n + 3} AND lease_gen=${n + 4}"
                args += [lease.node, lease.gen]
            statements.append((task_id, lease, ends_lease(patch), sql, args))

        async def body(conn: Conn) -> tuple[set[int], list[Lease]]:
            lost: set[int] = set()
            ended: list[Lease] = []
            for task_id, lease, ends, sql, args in statements:
                written = _status_count(await conn.execute(sql, *args))
                if lease is None:
                    continue
                if written == 0:
                    lost.add(task_id)
                elif ends:
                    ended.append(lease)
            return lost, ended

        lost, _ = await self._write(body, committed=lambda result: self._leases.forget(result[1]))
        if lost:
            raise LeaseLost(frozenset(lost))


    async def transition(self, task_id: int, old: TaskStatus, new: TaskStatus) -> bool:
        patch = TaskPatch(status=new, error=None)
        columns = patch_columns(patch)
        sets = ", ".join(f"{name}=${i}" for i, (name, _) in enumerate(columns, start=1))
        n = len(columns)

        async def body(conn: Conn) -> bool:
            status = await conn.execute(
                f"UPDATE tasks SET {sets}, updated_at=${n + 1} WHERE id=${n + 2} AND status=${n + 3}",
                *(value for _, value in columns), time.time(), task_id, str(old))
            return _status_count(status) == 1

        def committed(changed: bool) -> None:
            lease = self._leases.get(task_id)
            if changed and lease is not None and ends_lease(patch):
                self._leases.forget([lease])

        return await self._write(body, committed)

    async def delete(self, task_id: int) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute("DELETE FROM task_logs WHERE task_id=$1", task_id)
            await conn.execute("DELETE FROM task_state WHERE task_id=$1", task_id)
            await conn.execute("DELETE FROM tasks WHERE id=$1", task_id)

        def committed(_: None) -> None:
            self._leases.drop([task_id])

        await self._write(body, committed)

    async def append_logs(self, lines: list[tuple[int, float, str]]) -> None:
        if not lines:
            return

        async def body(conn: Conn) -> None:
            await conn.copy_records_to_table("task_logs", records=lines, columns=("task_id", "ts", "text"))

        await self._write(body)

    # ---- queue and leases -----------------------------------------------------
    async def claim(
        self, limit: int, *, lease_seconds: float, caps: HostCaps, want_connections: Callable[[Task], int],
        only: frozenset[int] | None = None, skip: frozenset[int] = frozenset(),
    ) -> list[Claim]:
        if limit <= 0 or (only is not None and not only - skip):
            return []
        node = self._node
        page = min(256, limit + 16)

        async def body(conn: Conn) -> list[Claim]:
            budget = HostBudget(caps)
            locked: set[str] = set()
            passed: set[str] = set()  # capped hosts another node is claiming right now
            chosen: list[tuple[Task, int]] = []
            after: tuple[int, float, int] | None = None
            scanned = 0
            skip_ids = sorted(skip)
            only_ids = sorted(only - skip) if only is not None else None
            now = time.time()  # start times are the node's clock (the scheduler's timer is too)
            while len(chosen) < limit and scanned < CLAIM_SCAN:
                excluded = sorted(passed | set(budget.full_hosts()))
                past = "" if after is None else " AND (priority, position, id) > ($6, $7, $8)"
                rows = await conn.fetch(
                    f"SELECT {READ_COLUMNS}, host FROM tasks WHERE {IS_WAITING}{past}"
                    " AND (start_at IS NULL OR start_at <= $1)"
                    " AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[])) AND id <> ALL($3::bigint[])"
                    f" AND host <> ALL($4::text[]) ORDER BY {QUEUE_ORDER} LIMIT $5 FOR UPDATE SKIP LOCKED",
                    now, only_ids, skip_ids, excluded, page, *(after or ()))
                if not rows:
                    break
                for row in rows:
                    scanned += 1
                    after = (row["priority"], row["position"], row["id"])
                    if len(chosen) >= limit:
                        break
                    host = row["host"]
                    if budget.capped(host) and host not in locked:
                        if host in passed or not await conn.fetchval(
                                "SELECT pg_try_advisory_xact_lock(hashtext($1))", HOST_LOCK + host):
                            passed.add(host)
                            continue
                        locked.add(host)
                        use = await conn.fetchrow(
                            "SELECT count(*) AS n, coalesce(sum(connections), 0) AS c FROM tasks"
                            " WHERE status=$1 AND host=$2", DOWNLOADING, host)
                        assert use is not None  # an aggregate always has its row
                        budget.count(host, use["n"], use["c"])
                    task = task_from_row(row)
                    granted = budget.grant(host, want_connections(task))
                    if granted >= 1:
                        chosen.append((task, granted))
            if not chosen:
                return []
            rows = await conn.fetch(
                "UPDATE tasks AS t SET status=$1, error=NULL, node=$2, lease_gen=t.lease_gen+1,"
                f" lease_expires={NOW} + $3, connections=g.connections, updated_at=$4"
                " FROM unnest($5::bigint[], $6::bigint[]) AS g(id, connections) WHERE t.id=g.id"
                " RETURNING t.id, t.lease_gen",
                DOWNLOADING, node, float(lease_seconds), now,
                [task.id for task, _ in chosen], [granted for _, granted in chosen])
            gens = {r["id"]: int(r["lease_gen"]) for r in rows}
            claims = []
            for task, granted in chosen:
                task.status, task.error, task.node, task.updated_at = TaskStatus.DOWNLOADING, None, node, now
                claims.append(Claim(task=task, lease=Lease(task.id, node, gens[task.id]), connections=granted))
            return claims

        def committed(claims: list[Claim]) -> None:
            for claim in claims:
                self._leases.hold(claim.lease)

        return await self._write(body, committed)

    async def move(self, task_id: int, where: QueueMove) -> bool:
        async def body(conn: Conn) -> bool:
            row = await conn.fetchrow("SELECT priority, position FROM tasks WHERE id=$1 FOR UPDATE", task_id)
            if row is None:
                return False
            rank, position = row["priority"], row["position"]
            for _ in range(2):  # a second time after spreading the class's positions out
                new: float | None
                if where is QueueMove.TOP:
                    first = await conn.fetchval(
                        f"SELECT min(position) FROM tasks WHERE {IS_WAITING} AND priority=$1 AND id<>$2",
                        rank, task_id)
                    new = None if first is None or position < first else first - 1
                elif where is QueueMove.BOTTOM:
                    top = await conn.fetchval("SELECT max(position) FROM tasks WHERE id<>$1", task_id)
                    new = None if top is None or top < position else top + 1
                else:
                    up = where is QueueMove.UP
                    near = await conn.fetch(
                        f"SELECT position FROM tasks WHERE {IS_WAITING} AND priority=$1 AND (position, id)"
                        f" {'<' if up else '>'} ($2, $3) ORDER BY position {'DESC' if up else 'ASC'},"
                        f" id {'DESC' if up else 'ASC'} LIMIT 2", rank, position, task_id)
                    planned = moved_position(where, [r["position"] for r in near])
                    if planned == RENUMBER:
                        ordered = await conn.fetch(
                            f"SELECT id, position FROM tasks WHERE {IS_WAITING} AND priority=$1 ORDER BY {QUEUE_ORDER}"
                            " FOR UPDATE", rank)
                        base = min(r["position"] for r in ordered)
                        await conn.executemany("UPDATE tasks SET position=$1 WHERE id=$2",
                                               [(float(base) + i, r["id"]) for i, r in enumerate(ordered)])
                        position = await conn.fetchval("SELECT position FROM tasks WHERE id=$1", task_id)
                        continue
                    new = planned
                if new is None:
                    return False
                await conn.execute("UPDATE tasks SET position=$1, updated_at=$2 WHERE id=$3",
                                   float(new), time.time(), task_id)
                return True
            return False

        return await self._write(body)

    async def set_positions(self, positions: Sequence[tuple[int, float]]) -> None:
        async def body(conn: Conn) -> None:
            now = time.time()
            await conn.executemany("UPDATE tasks SET position=$1, updated_at=$2 WHERE id=$3",
                                   [(position, now, task_id) for task_id, position in positions])

        await self._write(body)

    async def next_start(self, now: float) -> float | None:
        value = await self._read(lambda c: c.fetchval(
            f"SELECT min(start_at) FROM tasks WHERE {IS_WAITING} AND start_at IS NOT NULL AND start_at > $1",
            now))
        return float(value) if value is not None else None

    async def renew(self, lease_seconds: float) -> set[int]:
        held = self._leases.held()

        async def body(conn: Conn) -> list[Lease]:
            rows = await conn.fetch(
                f"WITH beat AS (INSERT INTO nodes (name, started_at, heartbeat_at) VALUES ($1, {NOW}, {NOW})"
                " ON CONFLICT (name) DO UPDATE SET heartbeat_at=excluded.heartbeat_at)"
                f" UPDATE tasks AS t SET lease_expires={NOW} + $2"
                " FROM unnest($3::bigint[], $4::bigint[]) AS h(id, gen)"
                " WHERE t.id=h.id AND t.lease_gen=h.gen AND t.node=$1 AND t.status=$5 RETURNING t.id, t.lease_gen",
                self._node, float(lease_seconds), [lease.task_id for lease in held], [lease.gen for lease in held],
                DOWNLOADING)
            kept = {(r["id"], r["lease_gen"]) for r in rows}
            return [lease for lease in held if (lease.task_id, lease.gen) not in kept]

        lost = await self._write(body, self._leases.forget)
        return {lease.task_id for lease in lost}

    async def reap(self) -> list[int]:
        async def body(conn: Conn) -> list[int]:
            rows = await conn.fetch(
                "UPDATE tasks SET status=$1, node=NULL, lease_expires=NULL, connections=0, updated_at=$2"
                f" WHERE status=$3 AND lease_expires < {NOW} RETURNING id", WAITING, time.time(), DOWNLOADING)
            return sorted(r["id"] for r in rows)

        return await self._write(body)

    async def recover(self) -> int:
        """Requeue the tasks this node's previous run left DOWNLOADING (and any without a node)."""
        node = self._node

        async def body(conn: Conn) -> list[int]:
            await conn.execute(
                f"INSERT INTO nodes (name, started_at, heartbeat_at) VALUES ($1, {NOW}, {NOW}) ON CONFLICT (name)"
                " DO UPDATE SET started_at=excluded.started_at, heartbeat_at=excluded.heartbeat_at", node)
            rows = await conn.fetch(
                "UPDATE tasks SET status=$1, node=NULL, lease_expires=NULL, connections=0, updated_at=$2"
                " WHERE status=$3 AND (node=$4 OR node IS NULL) RETURNING id", WAITING, time.time(), DOWNLOADING, node)
            return [r["id"] for r in rows]

        requeued = await self._write(body, self._leases.drop)
        return len(requeued)

    async def release(self, task_id: int) -> None:
        self._leases.drop([task_id])

    def lease(self, task_id: int) -> Lease | None:
        return self._leases.get(task_id)

    async def nodes(self) -> list[NodeInfo]:
        rows = await self._read(lambda c: c.fetch(
            "SELECT n.name, n.started_at, n.heartbeat_at, (SELECT count(*) FROM tasks t WHERE t.node=n.name"
            " AND t.status=$1) AS leases FROM nodes n ORDER BY n.name", DOWNLOADING))
        return [NodeInfo(r["name"], r["started_at"], r["heartbeat_at"], int(r["leases"])) for r in rows]

    async def clock(self) -> float:
        """The database's clock (unix seconds): the one lease expiry and heartbeats are judged by."""
        return float(await self._read(lambda c: c.fetchval(f"SELECT {NOW}")))

    # ---- durable download state -------------------------------------------------
    async def get_state(self, task_id: int, key: str) -> bytes | None:
        value = await self._read(lambda c: c.fetchval(
            "SELECT value FROM task_state WHERE task_id=$1 AND key=$2", task_id, key))
        return bytes(value) if value is not None else None

    async def put_state(self, task_id: int, key: str, value: bytes | None) -> None:
        lease = self._leases.get(task_id)

        async def body(conn: Conn) -> bool:
            if lease is not None and await conn.fetchval(
                "SELECT 1 FROM tasks WHERE id=$1 AND node=$2 AND lease_gen=$3 FOR SHARE", task_id, lease.node, lease.gen
            ) is None:
                return False
            if value is None:
                await conn.execute("DELETE FROM task_state WHERE task_id=$1 AND key=$2", task_id, key)
            else:
                await conn.execute(
                    "INSERT INTO task_state (task_id, key, value) VALUES ($1, $2, $3)"
                    " ON CONFLICT (task_id, key) DO UPDATE SET value=excluded.value", task_id, key, value)
            return True

        if not await self._write(body):
            raise LeaseLost(frozenset({task_id}))

    # ---- LISTEN / NOTIFY ----------------------------------------------------------
    async def notify(self, channel: str, payload: str = "") -> None:
        """Send `payload` (at most MAX_NOTIFY_PAYLOAD bytes) to every node listening on `channel`."""
        if len(payload.encode()) > MAX_NOTIFY_PAYLOAD:
            raise ValueError(f"a notification payload is at most {MAX_NOTIFY_PAYLOAD} bytes")
        async with self._conn() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def listen(self, channel: str, callback: Listener) -> None:
        """Call callback(payload) for every notification on `channel` (also after a database restart).

        Raises StoreUnavailable if the database cannot be reached now (nothing is registered then)."""
        first = channel not in self._listeners
        self._listeners.setdefault(channel, []).append(callback)
        try:
            conn = await self._listen_connection()
            if first:
                await conn.add_listener(channel, self._dispatch)
        except UNAVAILABLE as exc:
            self._drop_listener(channel, callback)
            raise _unavailable(exc) from exc
        except StoreUnavailable:
            self._drop_listener(channel, callback)
            raise

    async def unlisten(self, channel: str, callback: Listener | None = None) -> None:
        """Stop calling `callback` (None: every callback) for `channel`."""
        if callback is None:
            self._listeners.pop(channel, None)
        else:
            self._drop_listener(channel, callback)
        if channel not in self._listeners and self._listen_conn is not None and not self._listen_conn.is_closed():
            with contextlib.suppress(*UNAVAILABLE):
                await self._listen_conn.remove_listener(channel, self._dispatch)

    def _drop_listener(self, channel: str, callback: Listener) -> None:
        callbacks = self._listeners.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self._listeners.pop(channel, None)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for callback in list(self._listeners.get(channel, ())):
            try:
                result = callback(str(payload))
                if asyncio.iscoroutine(result):
                    pending = asyncio.ensure_future(result)
                    self._callbacks.add(pending)
                    pending.add_done_callback(self._callbacks.discard)
            except Exception:
                log.exception("listener on %s failed", channel)

    async def _listen_connection(self) -> asyncpg.Connection:
        if self._listen_conn is None or self._listen_conn.is_closed():
            try:
                conn = await asyncpg.connect(self._url, timeout=10)
            except UNAVAILABLE as exc:
                raise _unavailable(exc) from exc
            conn.add_termination_listener(lambda _c: self._listen_lost.set())
            self._listen_conn = conn
            self._listen_lost.clear()
        if self._listen_task is None:
            self._listen_task = asyncio.create_task(self._keep_listening(), name="fetchdeck-pg-listen")
        return self._listen_conn

    async def _keep_listening(self) -> None:
        """Watch the LISTEN connection; when it is lost, get it back, listen again, call on_reconnect."""
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listen_lost.wait(), LISTEN_PING)
            conn = self._listen_conn
            if not self._listen_lost.is_set() and conn is not None and not conn.is_closed():
                try:
                    await conn.fetchval("SELECT 1", timeout=LISTEN_PING)
                    continue
                except LISTEN_ERRORS:
                    self._listen_lost.set()
            if conn is not None:
                conn.terminate()
            self._listen_conn = None
            await self._relisten()

    async def _relisten(self) -> None:
        tries = 0
        while not self._closed:
            try:
                conn = await asyncpg.connect(self._url, timeout=10)
                for channel in list(self._listeners):
                    await conn.add_listener(channel, self._dispatch)
            except LISTEN_ERRORS:
                await asyncio.sleep(RECONNECT_BACKOFF[min(tries, len(RECONNECT_BACKOFF) - 1)])
                tries += 1
                continue
            self._listen_lost.clear()
            conn.add_termination_listener(lambda _c: self._listen_lost.set())
            self._listen_conn = conn
            log.info("listening again after losing the database connection")
            if self.on_reconnect is not None:
                try:
                    result = self.on_reconnect()
                    if result is not None:
                        await result
                except Exception:
                    log.exception("on_reconnect failed")
            return
