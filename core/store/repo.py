"""Task and log persistence. The engine is the only caller (one writer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

from core.errors import StoreUnavailable
from core.models import Headers, LogLine, Task, TaskKind, TaskOptions, TaskStatus

T = TypeVar("T")

_COLUMNS = (
    "id, kind, url, name, folder, headers, status, is_live, file, downloaded, total, "
    "segments_done, segments_total, error, options, created_at, updated_at"
)
# Fields the engine may change with `update_fields`.
UPDATABLE = frozenset(
    {"kind", "url", "name", "folder", "headers", "status", "is_live", "file", "downloaded", "total",
     "segments_done", "segments_total", "error", "options"}
)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    statuses: frozenset[TaskStatus] = frozenset()
    text: str = ""  # substring of name or url
    kinds: frozenset[TaskKind] = frozenset()
    folders: frozenset[str] = frozenset()  # exact stored folder values
    newest_first: bool = True


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


def row_to_task(row: aiosqlite.Row | Sequence[Any]) -> Task:
    headers: Headers = tuple((str(k), str(v)) for k, v in json.loads(row[5] or "[]"))
    return Task(
        id=row[0],
        kind=TaskKind(row[1]),
        url=row[2],
        name=row[3],
        folder=row[4],
        headers=headers,
        status=TaskStatus(row[6]),
        is_live=bool(row[7]),
        file=row[8],
        downloaded=row[9] or 0,
        total=row[10],
        segments_done=row[11] or 0,
        segments_total=row[12] or 0,
        error=row[13],
        options=TaskOptions.from_json(row[14]),
        created_at=row[15],
        updated_at=row[16],
    )


class TaskRepo:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._write_lock = asyncio.Lock()

    async def _write(self, body: Callable[[], Awaitable[T]], transaction: bool = True) -> T:
        """Run one write (optionally BEGIN IMMEDIATE … COMMIT) to completion.

        Shielded and serialized: there is one connection, and a caller cancelled
        between BEGIN and COMMIT would otherwise leave it inside an open
        transaction, so every later BEGIN fails.
        """

        async def run() -> T:
            async with self._write_lock:
                if not transaction:
                    return await body()
                await self.conn.execute("BEGIN IMMEDIATE")
                try:
                    result = await body()
                    await self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                        with contextlib.suppress(sqlite3.Error):
                            await self.conn.execute("ROLLBACK")
                    raise
                return result

        try:
            return await asyncio.shield(run())
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_ERROR":
                raise  # bad SQL: a bug, not the disk
            raise StoreUnavailable(str(exc)) from exc

    async def insert_many(self, tasks: list[Task]) -> list[Task]:
        """Insert in one transaction; assigns ids (ascending, never reused)."""

        async def body() -> list[Task]:
            async with self.conn.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='tasks'), 0),"
                " COALESCE((SELECT MAX(id) FROM tasks), 0))"
            ) as cur:
                row = await cur.fetchone()
            next_id = int(row[0] if row else 0) + 1
            fields = _task_fields()
            rows = []
            for offset, task in enumerate(tasks):
                task.id = next_id + offset
                rows.append(tuple(_encode(f, getattr(task, f)) for f in fields))
            placeholders = ", ".join("?" * len(fields))
            await self.conn.executemany(f"INSERT INTO tasks ({_COLUMNS}) VALUES ({placeholders})", rows)
            return tasks

        return await self._write(body)

    async def get(self, task_id: int) -> Task | None:
        async with self.conn.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id=?", (task_id,)) as cur:
            row = await cur.fetchone()
        return row_to_task(row) if row else None

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
        if flt.text:
            clauses.append("(instr(lower(name), ?) > 0 OR instr(lower(url), ?) > 0)")
            args.extend([flt.text.lower()] * 2)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    async def list(self, offset: int, limit: int, flt: TaskFilter) -> tuple[list[Task], int]:
        where, args = self._where(flt)
        order = "DESC" if flt.newest_first else "ASC"
        async with self.conn.execute(
            f"SELECT {_COLUMNS} FROM tasks{where} ORDER BY id {order} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ) as cur:
            rows = await cur.fetchall()
        async with self.conn.execute(f"SELECT COUNT(*) FROM tasks{where}", args) as cur:
            count_row = await cur.fetchone()
        return [row_to_task(r) for r in rows], int(count_row[0] if count_row else 0)

    async def ids_with_status(self, status: TaskStatus, limit: int = -1) -> list[int]:
        async with self.conn.execute(
            "SELECT id FROM tasks WHERE status=? ORDER BY id LIMIT ?", (str(status), limit)
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def count_by_status(self) -> dict[TaskStatus, int]:
        async with self.conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status") as cur:
            rows = await cur.fetchall()
        counts = {s: 0 for s in TaskStatus}
        for status, n in rows:
            counts[TaskStatus(status)] = n
        return counts

    async def folders(self) -> list[str]:
        async with self.conn.execute("SELECT DISTINCT folder FROM tasks ORDER BY folder") as cur:
            return [r[0] for r in await cur.fetchall()]

    async def files_in_use(self) -> set[str]:
        async with self.conn.execute(
            "SELECT file FROM tasks WHERE file IS NOT NULL AND status != 'success'"
        ) as cur:
            return {r[0] for r in await cur.fetchall()}

    async def update_fields(self, task_id: int, **values: Any) -> None:
        await self.update_many([(task_id, values)])

    async def update_many(self, changes: list[tuple[int, dict[str, Any]]]) -> None:
        """Apply several row updates in one transaction."""
        if not changes:
            return
        for _, values in changes:
            bad = set(values) - UPDATABLE
            if bad:
                raise ValueError(f"not updatable: {sorted(bad)}")
        now = time.time()

        async def body() -> None:
            for task_id, values in changes:
                sets = ", ".join(f"{k}=?" for k in values)
                args = [_encode(k, v) for k, v in values.items()]
                await self.conn.execute(f"UPDATE tasks SET {sets}, updated_at=? WHERE id=?", [*args, now, task_id])

        await self._write(body)

    async def transition(self, task_id: int, old: TaskStatus, new: TaskStatus) -> bool:
        """Set new status only if the row still has `old` (atomic check-and-set)."""

        async def body() -> bool:
            cur = await self.conn.execute(
                "UPDATE tasks SET status=?, error=NULL, updated_at=? WHERE id=? AND status=?",
                (str(new), time.time(), task_id, str(old)),
            )
            return cur.rowcount == 1

        return await self._write(body, transaction=False)

    async def set_status_where(self, old: TaskStatus, new: TaskStatus) -> int:
        async def body() -> int:
            cur = await self.conn.execute(
                "UPDATE tasks SET status=?, updated_at=? WHERE status=?", (str(new), time.time(), str(old))
            )
            return cur.rowcount

        return await self._write(body, transaction=False)

    async def delete(self, task_id: int) -> None:
        async def body() -> None:
            await self.conn.execute("DELETE FROM task_logs WHERE task_id=?", (task_id,))
            await self.conn.execute("DELETE FROM tasks WHERE id=?", (task_id,))

        await self._write(body)

    async def append_logs(self, lines: list[tuple[int, float, str]]) -> None:
        if not lines:
            return

        async def body() -> None:
            await self.conn.executemany("INSERT INTO task_logs (task_id, ts, text) VALUES (?, ?, ?)", lines)

        await self._write(body)

    async def logs(self, task_id: int, limit: int = 5000) -> list[LogLine]:
        async with self.conn.execute(
            "SELECT ts, text FROM (SELECT id, ts, text FROM task_logs WHERE task_id=? "
            "ORDER BY id DESC LIMIT ?) ORDER BY id",
            (task_id, limit),
        ) as cur:
            return [LogLine(ts=r[0], text=r[1]) for r in await cur.fetchall()]

    async def integrity_ok(self) -> bool:
        async with self.conn.execute("PRAGMA integrity_check") as cur:
            row = await cur.fetchone()
        return bool(row and row[0] == "ok")


def _task_fields() -> tuple[str, ...]:
    return tuple(c.strip() for c in _COLUMNS.split(","))
