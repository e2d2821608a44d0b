"""What both store back ends share above SQL: a task's column encoding, its row decoding, the host a task
is counted under, the columns a `TaskPatch` writes, the per-host budget a `claim` grants connections from, and
the book of leases this node holds.

One owner for these rules, so SQLite (repo.py) and PostgreSQL (pg.py) cannot drift apart: the same patch
writes the same columns, the same claim grants the same connections.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from core.models import Headers, Priority, Task, TaskKind, TaskOptions, TaskStatus
from core.store.base import HostCaps, HostLimit, Lease, TaskPatch

# The stored task fields in insert order (`id` first; `host` is derived from `url`, the lease columns start empty).
TASK_FIELDS: tuple[str, ...] = (
    "id", "kind", "url", "name", "folder", "headers", "status", "is_live", "file", "downloaded", "total",
    "segments_done", "segments_total", "error", "options", "created_at", "updated_at", "priority", "start_at",
)
# `position` is the store's to choose (after every task, core/queue.py), not the new task's.
INSERT_COLUMNS: tuple[str, ...] = (*TASK_FIELDS, "host", "position")
READ_COLUMNS = ", ".join((*TASK_FIELDS, "node", "position"))
QUEUE_ORDER = "priority, position, id"  # core/queue.py's order; the tasks_waiting index has these columns
# The condition of the partial indexes on waiting tasks, written as a literal in the queries that walk them: neither
# SQLite nor PostgreSQL's generic plans use a partial index for `status = ?`, and then every claim sorts the queue.
IS_WAITING = "status = 'waiting'"

DOWNLOADING = str(TaskStatus.DOWNLOADING)
WAITING = str(TaskStatus.WAITING)


class Row(Protocol):
    """A result row read by column name (sqlite3.Row, aiosqlite.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


def host_of(url: str) -> str:
    """The remote host a task is counted under for `[hosts."NAME"]` caps: the URL's host name or IP (lower
    case, no port, no IPv6 brackets, no trailing dot; '' if none). core/config.py host_key reads keys alike."""
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def encode(name: str, value: Any) -> Any:
    """A task field as stored (the same value on both back ends)."""
    if name == "headers":
        return json.dumps([list(pair) for pair in value], ensure_ascii=False)
    if name == "options":
        return value.to_json()
    if name == "is_live":
        return int(bool(value))
    if name in ("status", "kind"):
        return str(value)
    if name == "priority":
        return Priority(value).rank
    return value


def insert_values(task: Task, task_id: int | None = None, position: float = 0.0) -> list[Any]:
    """The INSERT_COLUMNS values of a new task (`task_id` None: leave the id out, the database assigns it)."""
    values = [encode(name, getattr(task, name)) for name in TASK_FIELDS[1:]]
    head = [] if task_id is None else [task_id]
    return [*head, *values, host_of(task.url), float(position)]


def task_from_row(row: Row) -> Task:
    """A stored row (READ_COLUMNS, by name: sqlite3.Row, aiosqlite.Row or asyncpg.Record) as a Task."""
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
        node=row["node"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        priority=Priority.of_rank(row["priority"]),
        position=float(row["position"] or 0.0),
        start_at=row["start_at"],
    )


def ends_lease(patch: TaskPatch) -> bool:
    """True if writing `patch` moves the task out of DOWNLOADING (which ends any lease on it)."""
    return "status" in patch.names() and patch.status is not TaskStatus.DOWNLOADING


def patch_columns(patch: TaskPatch) -> list[tuple[str, Any]]:
    """(column, stored value) pairs a patch writes: its fields, `host` with a new `url`, and the lease
    columns cleared when the status leaves DOWNLOADING. `updated_at` is the store's to add."""
    columns = [(name, encode(name, value)) for name, value in patch.items()]
    if isinstance(patch.url, str):
        columns.append(("host", host_of(patch.url)))
    if ends_lease(patch):
        columns += [("node", None), ("lease_expires", None), ("connections", 0)]
    return columns


@dataclass
class _Use:
    tasks: int = 0
    connections: int = 0


@dataclass
class HostBudget:
    """Per-host use (tasks running, connections granted, over every node) against `caps`, while one claim
    decides which candidates it takes."""

    caps: HostCaps
    _use: dict[str, _Use] = field(default_factory=dict)

    def count(self, host: str, tasks: int, connections: int) -> None:
        """Record what is running on `host` already (rows with status DOWNLOADING)."""
        use = self._use.setdefault(host, _Use())
        use.tasks += int(tasks)
        use.connections += int(connections)

    def limit(self, host: str) -> HostLimit:
        return self.caps.of(host)

    def capped(self, host: str) -> bool:
        cap = self.caps.of(host)
        return bool(cap.connections or cap.tasks)

    def full(self, host: str) -> bool:
        """No task more can start on `host` now."""
        cap = self.caps.of(host)
        use = self._use.get(host, _Use())
        return bool((cap.tasks and use.tasks >= cap.tasks) or (cap.connections and use.connections >= cap.connections))

    def full_hosts(self) -> list[str]:
        return sorted(host for host in self._use if self.full(host))

    def grant(self, host: str, want: int) -> int:
        """Connections a task on `host` that wants `want` gets (0: none, it stays waiting); recorded as used."""
        want = max(1, want)
        cap = self.caps.of(host)
        use = self._use.setdefault(host, _Use())
        if cap.tasks and use.tasks >= cap.tasks:
            return 0
        granted = min(want, cap.connections - use.connections) if cap.connections else want
        if granted < 1:
            return 0
        use.tasks += 1
        use.connections += granted
        return granted


class LeaseBook:
    """The leases this node holds, by task id: what its claims took and its writes are fenced with.

    Each store changes it only where its writes are serialised (SQLite: the writer thread; PostgreSQL: after
    the transaction committed), so the book never says a lease is held that the database has ended."""

    def __init__(self) -> None:
        self._held: dict[int, Lease] = {}

    def get(self, task_id: int) -> Lease | None:
        return self._held.get(task_id)

    def hold(self, lease: Lease) -> None:
        self._held[lease.task_id] = lease

    def drop(self, task_ids: Iterable[int]) -> None:
        """Forget these tasks' leases, whichever they are."""
        for task_id in task_ids:
            self._held.pop(task_id, None)

    def forget(self, leases: Iterable[Lease]) -> None:
        """Forget these leases if they are still the ones held (a newer claim of the task is kept)."""
        for lease in leases:
            if self._held.get(lease.task_id) == lease:
                del self._held[lease.task_id]

    def held(self) -> list[Lease]:
        """Every lease held, in task id order (the order rows are locked in)."""
        return sorted(self._held.values(), key=lambda lease: lease.task_id)
