"""The SQLite task store (aiosqlite reads, one writer thread): the `TaskStore` of one machine.

The engine reaches it only through `core.store.base.TaskStore`; SQL and the
writer thread stay in this module (column encodings, the host a task counts
under and the claim's per-host budget are core/store/rows.py's, shared with
the PostgreSQL store). Rows are read by column name.

Leases work as on a shared store (one code path for the engine): `claim`
records the lease of each task it takes, and every write to a leased task is
fenced by the row's `node` and `lease_gen`. Every write and every change to
the leases this store holds runs in the writer thread, in order, so a claim,
a fenced write and a renew never see each other half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from core.errors import LeaseLost, StoreUnavailable
from core.models import LogLine, Task, TaskStatus
from core.queue import RENUMBER, QueueMove, moved_position
from core.store.base import (
    LOCAL_NODE,
    MAX_FILTER_IDS,
    Claim,
    HostCaps,
    Lease,
    NodeInfo,
    TaskFilter,
    TaskPatch,
    TaskStore,
)
from core.store.db import open_database, open_writer
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

__all__ = ["MAX_FILTER_IDS", "TaskFilter", "TaskRepo", "row_to_task"]

T = TypeVar("T")

CLAIM_PAGE = 64  # candidate rows read per query while a claim looks past capped hosts
# A claim walks the queue's head in the partial index `tasks_waiting` (INDEXED BY: without statistics SQLite
# prefers tasks_status and sorts every waiting row, 150 ms a claim at 100k waiting tasks against 1.4 ms)
CLAIM_SCAN = 2048  # at most this many candidates looked at per claim (the work per call is bounded)
ID_CHUNK = 500  # ids per IN (...) list

row_to_task = task_from_row  # the older name


def _marks(n: int) -> str:
    return ",".join("?" * n)


class TaskRepo(TaskStore):
    """Reads go through `conn` (aiosqlite); writes through one writer connection in its own thread.

    Each write is one whole transaction run in that thread: one hop between the
    event loop and the thread per write, not one per statement. Under load the
    loop is slow to come back to a coroutine, and reads queue on the aiosqlite
    thread, so a write of five statements used to wait seconds between them
    while holding the write lock (tests/bench/load_api.py). The thread runs one
    write at a time, in order, and a caller cancelled meanwhile does not stop
    it halfway: a transaction is always committed or rolled back in full.
    """

    def __init__(self, conn: aiosqlite.Connection, writer: sqlite3.Connection, node: str = LOCAL_NODE) -> None:
        self.conn = conn
        self._writer = writer
        self._writer.row_factory = sqlite3.Row
        self._node = node
        self._leases = LeaseBook()  # changed only in the writer thread
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetchdeck-store-writer")

    @classmethod
    async def open(cls, path: Path, node: str = LOCAL_NODE) -> TaskRepo:
        conn = await open_database(path)  # migrates
        writer = await asyncio.to_thread(open_writer, path)
        return cls(conn, writer, node)

    @property
    def node(self) -> str:
        return self._node

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._write_thread, self._writer.close)
        self._write_thread.shutdown()
        await self.conn.close()

    async def _write(
        self, body: Callable[[sqlite3.Connection], T], transaction: bool = True,
        committed: Callable[[T], None] | None = None,
    ) -> T:
        """Run body(writer) in the writer thread, inside BEGIN IMMEDIATE … COMMIT if transaction; then
        committed(result) in that thread (what the store remembers changes only once the write is durable)."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.shield(
                loop.run_in_executor(self._write_thread, self._run_write, body, transaction, committed)
            )
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_ERROR":
                raise  # bad SQL: a bug, not the disk
            raise StoreUnavailable(str(exc)) from exc

    def _run_write(
        self, body: Callable[[sqlite3.Connection], T], transaction: bool, committed: Callable[[T], None] | None
    ) -> T:
        conn = self._writer
        if not transaction:
            result = body(conn)
        else:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        if committed is not None:
            committed(result)
        return result

    async def insert_many(self, tasks: list[Task]) -> list[Task]:
        """Insert in one transaction; assigns ids (ascending, never reused)."""

        encoded = [insert_values(task, 0)[1:-1] for task in tasks]  # all but the id and the position
        sql = f"INSERT INTO tasks ({', '.join(INSERT_COLUMNS)}) VALUES ({_marks(len(INSERT_COLUMNS))})"

        def body(conn: sqlite3.Connection) -> list[Task]:
            (last, top) = conn.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='tasks'), 0),"
                " COALESCE((SELECT MAX(id) FROM tasks), 0)), (SELECT MAX(position) FROM tasks)"
            ).fetchone()
            next_id = int(last or 0) + 1
            first = float(top or 0) + 1  # after every task: the end of the queue (core/queue.py)
            conn.executemany(sql, [(next_id + offset, *values, first + offset)
                                   for offset, values in enumerate(encoded)])
            for offset, task in enumerate(tasks):
                task.id, task.position = next_id + offset, first + offset
            return tasks

        return await self._write(body)

    async def _read(self, sql: str, args: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        """All rows of one query, fetched in one hop to the reading thread.

        Never a cursor left open across an await: an unfinished statement keeps
        the reading connection's snapshot (WAL read transaction) alive, and every
        later read would miss what the writer committed since.
        """
        return list(await self.conn.execute_fetchall(sql, args))

    async def get(self, task_id: int) -> Task | None:
        rows = await self._read(f"SELECT {READ_COLUMNS} FROM tasks WHERE id=?", (task_id,))
        return task_from_row(rows[0]) if rows else None

    @staticmethod
    def _where(flt: TaskFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if flt.statuses:
            clauses.append(f"status IN ({_marks(len(flt.statuses))})")
            args.extend(str(s) for s in sorted(flt.statuses))
        if flt.kinds:
            clauses.append(f"kind IN ({_marks(len(flt.kinds))})")
            args.extend(str(k) for k in sorted(flt.kinds))
        if flt.folders:
            clauses.append(f"folder IN ({_marks(len(flt.folders))})")
            args.extend(sorted(flt.folders))
        if flt.ids:
            if len(flt.ids) > MAX_FILTER_IDS:
                raise ValueError(f"at most {MAX_FILTER_IDS} ids per filter")
            clauses.append(f"id IN ({_marks(len(flt.ids))})")
            args.extend(sorted(flt.ids))
        if flt.text:
            clauses.append("(instr(lower(name), ?) > 0 OR instr(lower(url), ?) > 0)")
            args.extend([flt.text.lower()] * 2)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def page(self, offset: int, limit: int, flt: TaskFilter) -> tuple[list[Task], int]:
        where, args = self._where(flt)
        order = "DESC" if flt.newest_first else "ASC"
        rows = await self._read(
            f"SELECT {READ_COLUMNS} FROM tasks{where} ORDER BY id {order} LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        count = await self._read(f"SELECT COUNT(*) AS n FROM tasks{where}", args)
        return [task_from_row(r) for r in rows], int(count[0]["n"] if count else 0)

    async def waiting_ids(self, limit: int = -1) -> list[int]:
        rows = await self._read(f"SELECT id FROM tasks WHERE {IS_WAITING} ORDER BY {QUEUE_ORDER} LIMIT ?", (limit,))
        return [r["id"] for r in rows]

    async def count_by_status(self) -> dict[TaskStatus, int]:
        rows = await self._read("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
        counts = {s: 0 for s in TaskStatus}
        for row in rows:
            counts[TaskStatus(row["status"])] = row["n"]
        return counts

    async def folders(self) -> list[str]:
        return [r["folder"] for r in await self._read("SELECT DISTINCT folder FROM tasks ORDER BY folder")]

    async def files_in_use(self) -> set[str]:
        rows = await self._read("SELECT file FROM tasks WHERE file IS NOT NULL AND status != 'success'")
        return {r["file"] for r in rows}

    # ---- fenced writes -------------------------------------------------------
    async def update(self, task_id: int, patch: TaskPatch) -> None:
        await self.update_many([(task_id, patch)])

    async def update_many(self, changes: list[tuple[int, TaskPatch]]) -> None:
        changes = [(task_id, patch) for task_id, patch in changes if patch]
        if not changes:
            return
        now = time.time()
        statements = []
        for task_id, patch in changes:
            columns = patch_columns(patch)
            sets = ", ".join(f"{name}=?" for name, _ in columns)
            statements.append((task_id, ends_lease(patch), f"UPDATE tasks SET {sets}, updated_at=? WHERE id=?",
                               [*(value for _, value in columns), now, task_id]))

        def body(conn: sqlite3.Connection) -> tuple[set[int], list[Lease]]:
            lost: set[int] = set()
            ended: list[Lease] = []
            for task_id, ends, sql, args in statements:
                lease = self._leases.get(task_id)
                if lease is None:
                    conn.execute(sql, args)
                    continue
                cur = conn.execute(f"{sql} AND node=? AND lease_gen=?", [*args, lease.node, lease.gen])
                if cur.rowcount == 0:
                    lost.add(task_id)
                elif ends:
                    ended.append(lease)
            return lost, ended

        lost, _ = await self._write(body, committed=lambda result: self._leases.forget(result[1]))
        if lost:
            raise LeaseLost(frozenset(lost))


    async def transition(self, task_id: int, old: TaskStatus, new: TaskStatus) -> bool:
        """Set new status only if the row still has `old` (atomic check-and-set; not fenced)."""
        patch = TaskPatch(status=new, error=None)
        columns = patch_columns(patch)
        sets = ", ".join(f"{name}=?" for name, _ in columns)
        args = [*(value for _, value in columns), time.time(), task_id, str(old)]

        def body(conn: sqlite3.Connection) -> bool:
            return conn.execute(f"UPDATE tasks SET {sets}, updated_at=? WHERE id=? AND status=?", args).rowcount == 1

        def committed(changed: bool) -> None:
            lease = self._leases.get(task_id)
            if changed and lease is not None and ends_lease(patch):
                self._leases.forget([lease])

        return await self._write(body, transaction=False, committed=committed)

    async def delete(self, task_id: int) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM task_logs WHERE task_id=?", (task_id,))
            conn.execute("DELETE FROM task_state WHERE task_id=?", (task_id,))
            conn.execute("DELETE FROM tasks WHERE id=?", (task_id,))

        def committed(_: None) -> None:
            self._leases.drop([task_id])

        await self._write(body, committed=committed)

    async def append_logs(self, lines: list[tuple[int, float, str]]) -> None:
        if not lines:
            return

        def body(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO task_logs (task_id, ts, text) VALUES (?, ?, ?)", lines)

        await self._write(body)

    async def logs(self, task_id: int, limit: int = 5000) -> list[LogLine]:
        rows = await self._read(
            "SELECT ts, text FROM (SELECT id, ts, text FROM task_logs WHERE task_id=? ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",
            (task_id, limit),
        )
        return [LogLine(ts=r["ts"], text=r["text"]) for r in rows]

    async def integrity_ok(self) -> bool:
        rows = await self._read("PRAGMA integrity_check")
        return bool(rows and rows[0]["integrity_check"] == "ok")

    # ---- queue and leases ----------------------------------------------------
    async def claim(
        self, limit: int, *, lease_seconds: float, caps: HostCaps, want_connections: Callable[[Task], int],
        only: frozenset[int] | None = None, skip: frozenset[int] = frozenset(),
    ) -> list[Claim]:
        if limit <= 0 or (only is not None and not only - skip):
            return []
        node = self._node

        def candidates(conn: sqlite3.Connection, budget: HostBudget, now: float) -> Iterator[sqlite3.Row]:
            due = "(start_at IS NULL OR start_at <= ?)"  # a task whose start time is ahead is not taken yet
            if only is not None:
                ids = sorted(only - skip)
                chosen: list[sqlite3.Row] = []
                for start in range(0, len(ids), ID_CHUNK):
                    chunk = ids[start:start + ID_CHUNK]
                    chosen += conn.execute(
                        f"SELECT {READ_COLUMNS}, host FROM tasks WHERE {IS_WAITING} AND {due} AND id IN"
                        f" ({_marks(len(chunk))})", [now, *chunk]).fetchall()
                yield from sorted(chosen, key=lambda r: (r["priority"], r["position"], r["id"]))
                return
            after: tuple[int, float, int] | None = None
            while True:
                full = budget.full_hosts()  # hosts with no room left are not read at all
                past = "" if after is None else " AND (priority, position, id) > (?, ?, ?)"
                rows = conn.execute(
                    f"SELECT {READ_COLUMNS}, host FROM tasks INDEXED BY tasks_waiting WHERE {IS_WAITING}{past}"
                    f" AND {due} AND host NOT IN ({_marks(len(full))}) ORDER BY {QUEUE_ORDER} LIMIT ?",
                    [*(after or ()), now, *full, CLAIM_PAGE]).fetchall()
                if not rows:
                    return
                yield from rows
                last = rows[-1]
                after = (last["priority"], last["position"], last["id"])

        def body(conn: sqlite3.Connection) -> list[Claim]:
            now = time.time()
            budget = HostBudget(caps)
            if caps.any:
                for row in conn.execute(
                    "SELECT host, COUNT(*) AS n, COALESCE(SUM(connections), 0) AS c FROM tasks WHERE status=?"
                    " GROUP BY host", (DOWNLOADING,)
                ):
                    budget.count(row["host"], row["n"], row["c"])
            claims: list[Claim] = []
            for scanned, row in enumerate(candidates(conn, budget, now)):
                if len(claims) >= limit or scanned >= CLAIM_SCAN:
                    break
                task = task_from_row(row)
                if task.id in skip or budget.full(row["host"]):
                    continue
                granted = budget.grant(row["host"], want_connections(task))
                if granted < 1:
                    continue
                (gen,) = conn.execute(
                    "UPDATE tasks SET status=?, error=NULL, node=?, lease_gen=lease_gen+1, lease_expires=?,"
                    " connections=?, updated_at=? WHERE id=? AND status=? RETURNING lease_gen",
                    (DOWNLOADING, node, now + lease_seconds, granted, now, task.id, WAITING),
                ).fetchone()
                task.status, task.error, task.node, task.updated_at = TaskStatus.DOWNLOADING, None, node, now
                claims.append(Claim(task=task, lease=Lease(task.id, node, int(gen)), connections=granted))
            return claims

        def committed(claims: list[Claim]) -> None:
            for claim in claims:
                self._leases.hold(claim.lease)

        return await self._write(body, committed=committed)

    async def move(self, task_id: int, where: QueueMove) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT priority, position FROM tasks WHERE id=?", (task_id,)).fetchone()
            if row is None:
                return False
            rank, position = row["priority"], row["position"]
            for _ in range(2):  # a second time after spreading the class's positions out
                if where is QueueMove.TOP:
                    (first,) = conn.execute(
                        f"SELECT MIN(position) FROM tasks WHERE {IS_WAITING} AND priority=? AND id<>?",
                        (rank, task_id)).fetchone()
                    new = None if first is None or position < first else first - 1
                elif where is QueueMove.BOTTOM:
                    (top,) = conn.execute("SELECT MAX(position) FROM tasks WHERE id<>?", (task_id,)).fetchone()
                    new = None if top is None or top < position else top + 1
                else:
                    up = where is QueueMove.UP
                    near = conn.execute(
                        f"SELECT position FROM tasks WHERE {IS_WAITING} AND priority=? AND (position, id)"
                        f" {'<' if up else '>'} (?, ?) ORDER BY position {'DESC' if up else 'ASC'},"
                        f" id {'DESC' if up else 'ASC'} LIMIT 2", (rank, position, task_id)).fetchall()
                    planned = moved_position(where, [r["position"] for r in near])
                    if planned == RENUMBER:
                        ordered = conn.execute(
                            f"SELECT id FROM tasks WHERE {IS_WAITING} AND priority=? ORDER BY {QUEUE_ORDER}",
                            (rank,)).fetchall()
                        base = conn.execute(f"SELECT MIN(position) FROM tasks WHERE {IS_WAITING} AND priority=?",
                                            (rank,)).fetchone()[0]
                        conn.executemany("UPDATE tasks SET position=? WHERE id=?",
                                         [(float(base) + i, r["id"]) for i, r in enumerate(ordered)])
                        position = conn.execute("SELECT position FROM tasks WHERE id=?", (task_id,)).fetchone()[0]
                        continue
                    new = planned
                if new is None:
                    return False
                conn.execute("UPDATE tasks SET position=?, updated_at=? WHERE id=?", (new, time.time(), task_id))
                return True
            return False

        return await self._write(body)

    async def set_positions(self, positions: Sequence[tuple[int, float]]) -> None:
        def body(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.executemany("UPDATE tasks SET position=?, updated_at=? WHERE id=?",
                             [(position, now, task_id) for task_id, position in positions])

        await self._write(body)

    async def next_start(self, now: float) -> float | None:
        rows = await self._read(
            f"SELECT MIN(start_at) AS at FROM tasks INDEXED BY tasks_start_at WHERE {IS_WAITING}"
            " AND start_at IS NOT NULL AND start_at > ?",
            (now,))
        return float(rows[0]["at"]) if rows and rows[0]["at"] is not None else None

    async def renew(self, lease_seconds: float) -> set[int]:
        node = self._node

        def body(conn: sqlite3.Connection) -> list[Lease]:
            now = time.time()
            conn.execute(
                "INSERT INTO nodes (name, started_at, heartbeat_at) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET heartbeat_at=excluded.heartbeat_at", (node, now, now))
            held = self._leases.held()
            kept: set[tuple[int, int]] = set()
            for start in range(0, len(held), ID_CHUNK):
                chunk = held[start:start + ID_CHUNK]
                pairs = ",".join("(?, ?)" for _ in chunk)
                held_args = [v for lease in chunk for v in (lease.task_id, lease.gen)]
                rows = conn.execute(
                    f"UPDATE tasks SET lease_expires=? WHERE node=? AND status=? AND (id, lease_gen) IN"
                    f" (VALUES {pairs}) RETURNING id, lease_gen", [now + lease_seconds, node, DOWNLOADING, *held_args],
                ).fetchall()
                kept.update((row["id"], row["lease_gen"]) for row in rows)
            return [lease for lease in held if (lease.task_id, lease.gen) not in kept]

        lost = await self._write(body, committed=self._leases.forget)
        return {lease.task_id for lease in lost}

    async def reap(self) -> list[int]:
        def body(conn: sqlite3.Connection) -> list[int]:
            now = time.time()
            rows = conn.execute(
                "UPDATE tasks SET status=?, node=NULL, lease_expires=NULL, connections=0, updated_at=?"
                " WHERE status=? AND lease_expires < ? RETURNING id", (WAITING, now, DOWNLOADING, now)).fetchall()
            return sorted(row["id"] for row in rows)

        return await self._write(body)

    async def recover(self) -> int:
        """Requeue every DOWNLOADING task: nobody else uses this store, so no run of them is alive."""
        node = self._node

        def body(conn: sqlite3.Connection) -> list[int]:
            now = time.time()
            conn.execute(
                "INSERT INTO nodes (name, started_at, heartbeat_at) VALUES (?, ?, ?) ON CONFLICT(name)"
                " DO UPDATE SET started_at=excluded.started_at, heartbeat_at=excluded.heartbeat_at", (node, now, now))
            rows = conn.execute(
                "UPDATE tasks SET status=?, node=NULL, lease_expires=NULL, connections=0, updated_at=?"
                " WHERE status=? RETURNING id", (WAITING, now, DOWNLOADING)).fetchall()
            return [row["id"] for row in rows]

        requeued = await self._write(body, committed=self._leases.drop)
        return len(requeued)

    async def release(self, task_id: int) -> None:
        def body(_conn: sqlite3.Connection) -> None:
            self._leases.drop([task_id])

        await self._write(body, transaction=False)

    def lease(self, task_id: int) -> Lease | None:
        return self._leases.get(task_id)

    async def nodes(self) -> list[NodeInfo]:
        rows = await self._read(
            "SELECT n.name, n.started_at, n.heartbeat_at, (SELECT COUNT(*) FROM tasks t WHERE t.node=n.name"
            " AND t.status=?) AS leases FROM nodes n ORDER BY n.name", (DOWNLOADING,))
        return [NodeInfo(r["name"], r["started_at"], r["heartbeat_at"], r["leases"]) for r in rows]

    # ---- durable download state ---------------------------------------------
    async def get_state(self, task_id: int, key: str) -> bytes | None:
        rows = await self._read("SELECT value FROM task_state WHERE task_id=? AND key=?", (task_id, key))
        return bytes(rows[0]["value"]) if rows else None

    async def put_state(self, task_id: int, key: str, value: bytes | None) -> None:
        def body(conn: sqlite3.Connection) -> bool:
            lease = self._leases.get(task_id)
            if lease is not None and conn.execute(
                "SELECT 1 FROM tasks WHERE id=? AND node=? AND lease_gen=?", (task_id, lease.node, lease.gen)
            ).fetchone() is None:
                return False
            if value is None:
                conn.execute("DELETE FROM task_state WHERE task_id=? AND key=?", (task_id, key))
            else:
                conn.execute(
                    "INSERT INTO task_state (task_id, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT(task_id, key) DO UPDATE SET value=excluded.value", (task_id, key, value))
            return True

        if not await self._write(body):
            raise LeaseLost(frozenset({task_id}))
