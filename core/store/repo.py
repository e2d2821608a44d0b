"""The SQLite task store (aiosqlite reads, one writer thread): today's `TaskStore` implementation.

The engine reaches it only through `core.store.base.TaskStore`; SQL, column
encodings and the writer thread stay in this module. Rows are read by column
name (`aiosqlite.Row`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from core.errors import StoreUnavailable
from core.models import Headers, LogLine, Task, TaskKind, TaskOptions, TaskStatus
from core.store.base import MAX_FILTER_IDS, TaskFilter, TaskPatch, TaskStore
from core.store.db import open_database, open_writer

__all__ = ["MAX_FILTER_IDS", "TaskFilter", "TaskRepo", "row_to_task"]

T = TypeVar("T")

_COLUMNS = (
    "id, kind, url, name, folder, headers, status, is_live, file, downloaded, total, "
    "segments_done, segments_total, error, options, created_at, updated_at"
)


def _encode(field: str, value: Any) -> Any:
    if field == "headers":
        return json.dumps([list(pair) for pair in value], ensure_ascii=False)
    if field == "options":
        return value.to_json()
    if field == "is_live":
        return int(bool(value))
    if field in ("status", "kind"):
        return str(value)
    return value


def row_to_task(row: aiosqlite.Row | sqlite3.Row) -> Task:
    headers: Headers = tuple((str(k), str(v)) for k, v in json.loads(row["headers"] or "[]"))
    return Task(
        id=row["id"],
        kind=TaskKind(row["kind"]),
        url=row["url"],
        name=row["name"],
        folder=row["folder"],
        headers=headers,
        status=TaskStatus(row["status"]),
        is_live=bool(row["is_live"]),
        file=row["file"],
        downloaded=row["downloaded"] or 0,
        total=row["total"],
        segments_done=row["segments_done"] or 0,
        segments_total=row["segments_total"] or 0,
        error=row["error"],
        options=TaskOptions.from_json(row["options"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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

    def __init__(self, conn: aiosqlite.Connection, writer: sqlite3.Connection) -> None:
        self.conn = conn
        self._writer = writer
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetchdeck-store-writer")

    @classmethod
    async def open(cls, path: Path) -> TaskRepo:
        conn = await open_database(path)  # migrates
        writer = await asyncio.to_thread(open_writer, path)
        return cls(conn, writer)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._write_thread, self._writer.close)
        self._write_thread.shutdown()
        await self.conn.close()

    async def _write(self, body: Callable[[sqlite3.Connection], T], transaction: bool = True) -> T:
        """Run body(writer) in the writer thread, inside BEGIN IMMEDIATE … COMMIT if transaction."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.shield(loop.run_in_executor(self._write_thread, self._run_write, body, transaction))
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_ERROR":
                raise  # bad SQL: a bug, not the disk
            raise StoreUnavailable(str(exc)) from exc

    def _run_write(self, body: Callable[[sqlite3.Connection], T], transaction: bool) -> T:
        conn = self._writer
        if not transaction:
            return body(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return result

    async def insert_many(self, tasks: list[Task]) -> list[Task]:
        """Insert in one transaction; assigns ids (ascending, never reused)."""

        fields = _task_fields()
        encoded = [[_encode(f, getattr(task, f)) for f in fields[1:]] for task in tasks]  # all but the id
        placeholders = ", ".join("?" * len(fields))

        def body(conn: sqlite3.Connection) -> list[Task]:
            (last,) = conn.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='tasks'), 0),"
                " COALESCE((SELECT MAX(id) FROM tasks), 0))"
            ).fetchone()
            next_id = int(last or 0) + 1
            rows = [(next_id + offset, *values) for offset, values in enumerate(encoded)]
            conn.executemany(f"INSERT INTO tasks ({_COLUMNS}) VALUES ({placeholders})", rows)
            for offset, task in enumerate(tasks):
                task.id = next_id + offset
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
        rows = await self._read(f"SELECT {_COLUMNS} FROM tasks WHERE id=?", (task_id,))
        return row_to_task(rows[0]) if rows else None

    @staticmethod
    def _where(flt: TaskFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if flt.statuses:
            clauses.append(f"status IN ({','.join('?' * len(flt.statuses))})")
            args.extend(str(s) for s in sorted(flt.statuses))
        if flt.kinds:
            clauses.append(f"kind IN ({','.join('?' * len(flt.kinds))})")
            args.extend(str(k) for k in sorted(flt.kinds))
        if flt.folders:
            clauses.append(f"folder IN ({','.join('?' * len(flt.folders))})")
            args.extend(sorted(flt.folders))
        if flt.ids:
            if len(flt.ids) > MAX_FILTER_IDS:
                raise ValueError(f"at most {MAX_FILTER_IDS} ids per filter")
            clauses.append(f"id IN ({','.join('?' * len(flt.ids))})")
            args.extend(sorted(flt.ids))
        if flt.text:
            clauses.append("(instr(lower(name), ?) > 0 OR instr(lower(url), ?) > 0)")
            args.extend([flt.text.lower()] * 2)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def page(self, offset: int, limit: int, flt: TaskFilter) -> tuple[list[Task], int]:
        where, args = self._where(flt)
        order = "DESC" if flt.newest_first else "ASC"
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM tasks{where} ORDER BY id {order} LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        count = await self._read(f"SELECT COUNT(*) AS n FROM tasks{where}", args)
        return [row_to_task(r) for r in rows], int(count[0]["n"] if count else 0)

    async def waiting_ids(self, limit: int = -1) -> list[int]:
        rows = await self._read(
            "SELECT id FROM tasks WHERE status=? ORDER BY id LIMIT ?", (str(TaskStatus.WAITING), limit)
        )
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

    async def update(self, task_id: int, patch: TaskPatch) -> None:
        await self.update_many([(task_id, patch)])

    async def update_many(self, changes: list[tuple[int, TaskPatch]]) -> None:
        changes = [(task_id, patch) for task_id, patch in changes if patch]
        if not changes:
            return
        now = time.time()
        statements = []
        for task_id, patch in changes:
            fields = list(patch.items())
            statements.append((
                f"UPDATE tasks SET {', '.join(f'{name}=?' for name, _ in fields)}, updated_at=? WHERE id=?",
                [*(_encode(name, value) for name, value in fields), now, task_id],
            ))

        def body(conn: sqlite3.Connection) -> None:
            for sql, args in statements:
                conn.execute(sql, args)

        await self._write(body)

    async def transition(self, task_id: int, old: TaskStatus, new: TaskStatus) -> bool:
        """Set new status only if the row still has `old` (atomic check-and-set)."""

        def body(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE tasks SET status=?, error=NULL, updated_at=? WHERE id=? AND status=?",
                (str(new), time.time(), task_id, str(old)),
            )
            return cur.rowcount == 1

        return await self._write(body, transaction=False)

    async def requeue(self, old: TaskStatus, new: TaskStatus) -> int:
        def body(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE tasks SET status=?, updated_at=? WHERE status=?", (str(new), time.time(), str(old))
            )
            return cur.rowcount

        return await self._write(body, transaction=False)

    async def delete(self, task_id: int) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM task_logs WHERE task_id=?", (task_id,))
            conn.execute("DELETE FROM tasks WHERE id=?", (task_id,))

        await self._write(body)

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


def _task_fields() -> tuple[str, ...]:
    return tuple(c.strip() for c in _COLUMNS.split(","))
