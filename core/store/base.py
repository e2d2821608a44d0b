"""The task store contract: what the engine needs from wherever tasks and their logs are kept.

`TaskStore` is the one interface the engine (core/engine.py, core/scheduler.py,
core/task_run.py, core/unsaved.py, core/progress.py) talks to; it never sees SQL.
Today's implementation is `core.store.repo.SqliteTaskStore` (aiosqlite, one
writer thread); a PostgreSQL store shared by several nodes implements the same
methods and is handed to the Engine as a `StoreFactory`, nothing else changes.

Changes are `TaskPatch`es: a typed set of task fields where only the fields a
caller set are written. Reads come back as `core.models.Task`.

Every write either happens in full or raises `StoreUnavailable` (disk full, I/O
error, the database unreachable) having changed nothing.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

from core.models import Headers, LogLine, Task, TaskKind, TaskOptions, TaskStatus

MAX_FILTER_IDS = 10_000  # well under SQLite's 32766 bound variables


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a page holds (every criterion given must match)."""

    statuses: frozenset[TaskStatus] = frozenset()
    text: str = ""  # substring of name or url
    kinds: frozenset[TaskKind] = frozenset()
    folders: frozenset[str] = frozenset()  # exact stored folder values
    ids: frozenset[int] = frozenset()  # only these tasks (at most MAX_FILTER_IDS)
    newest_first: bool = True


class _Unset(Enum):
    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
Unset = Literal[_Unset.UNSET]


@dataclass(frozen=True, slots=True)
class TaskPatch:
    """Stored task fields to change; a field left UNSET is not written (None is a value: "clear it").

    Live-only fields (speed, eta, note) and the id/timestamps are not part of a
    patch: the store sets `updated_at` itself.
    """

    kind: TaskKind | Unset = UNSET
    url: str | Unset = UNSET
    name: str | Unset = UNSET
    folder: str | Unset = UNSET
    headers: Headers | Unset = UNSET
    status: TaskStatus | Unset = UNSET
    is_live: bool | Unset = UNSET
    file: str | Unset | None = UNSET
    downloaded: int | Unset = UNSET
    total: int | Unset | None = UNSET
    segments_done: int | Unset = UNSET
    segments_total: int | Unset = UNSET
    error: str | Unset | None = UNSET
    options: TaskOptions | Unset = UNSET

    def items(self) -> Iterator[tuple[str, Any]]:
        """(field name, value) of each field set, in declaration order (for a store's encoder)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not UNSET:
                yield f.name, value

    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.items())

    def __bool__(self) -> bool:
        return any(True for _ in self.items())

    def merge(self, other: TaskPatch) -> TaskPatch:
        """This patch with every field `other` sets on top."""
        return dataclasses.replace(self, **dict(other.items()))

    def apply(self, task: Task) -> None:
        """Set the patched fields on an in-memory task (a running task mirrors what was stored)."""
        for name, value in self.items():
            setattr(task, name, value)

    @staticmethod
    def outcome(task: Task) -> TaskPatch:
        """Everything a finished run decides: status, error, file and the final counters."""
        return TaskPatch(status=task.status, error=task.error, file=task.file, downloaded=task.downloaded,
                         total=task.total, segments_done=task.segments_done, segments_total=task.segments_total)

    @staticmethod
    def counters(task: Task) -> TaskPatch:
        """A running task's progress as the store keeps it."""
        return TaskPatch(downloaded=task.downloaded, total=task.total, segments_done=task.segments_done,
                         segments_total=task.segments_total)


class TaskStore(ABC):
    """Tasks and their log lines, as the engine reads and writes them.

    One engine owns a store between `open` (its factory) and `close`. Reads
    return copies: changing a returned Task changes nothing stored.
    """

    @abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release connections; the store is unusable after."""

    # ---- reads -------------------------------------------------------------
    @abstractmethod
    async def get(self, task_id: int) -> Task | None:
        """The stored task, or None if there is none with this id."""

    @abstractmethod
    async def page(self, offset: int, limit: int, flt: TaskFilter) -> tuple[list[Task], int]:
        """Up to `limit` tasks matching `flt` after skipping `offset`, ordered by id (newest first unless
        `flt.newest_first` is False), and how many match in all."""

    @abstractmethod
    async def waiting_ids(self, limit: int = -1) -> list[int]:
        """Ids of tasks with status WAITING in queue order (creation order), at most `limit` (-1: all).

        The scheduler takes the next tasks to run from here and claims each with `transition`."""

    @abstractmethod
    async def count_by_status(self) -> dict[TaskStatus, int]:
        """How many tasks have each status (every TaskStatus is a key, 0 if none)."""

    @abstractmethod
    async def folders(self) -> list[str]:
        """The distinct stored `folder` values, sorted."""

    @abstractmethod
    async def files_in_use(self) -> set[str]:
        """The `file` paths of tasks not finished successfully (a new task must not pick one of them)."""

    @abstractmethod
    async def logs(self, task_id: int, limit: int = 5000) -> list[LogLine]:
        """The newest `limit` log lines of a task, oldest first."""

    @abstractmethod
    async def integrity_ok(self) -> bool:
        """True if the store's own consistency check passes."""

    # ---- writes ------------------------------------------------------------
    @abstractmethod
    async def insert_many(self, tasks: list[Task]) -> list[Task]:
        """Store new tasks in one transaction and set their ids (ascending, never reused); returns them."""

    @abstractmethod
    async def update(self, task_id: int, patch: TaskPatch) -> None:
        """Write the fields `patch` sets (and `updated_at`); a missing task is not an error."""

    @abstractmethod
    async def update_many(self, changes: list[tuple[int, TaskPatch]]) -> None:
        """Several `update`s in one transaction (e.g. the progress of every running task)."""

    @abstractmethod
    async def transition(self, task_id: int, old: TaskStatus, new: TaskStatus) -> bool:
        """Atomically set status `new` (and clear `error`) only if the task's status is still `old`.

        True if it was changed: this is how a run claims a waiting task, so two
        claimers (another node, a stop racing the launch) never both win."""

    @abstractmethod
    async def requeue(self, old: TaskStatus, new: TaskStatus) -> int:
        """Set every task with status `old` to `new` (start-up recovery: DOWNLOADING → WAITING); how many."""

    @abstractmethod
    async def delete(self, task_id: int) -> None:
        """Remove the task and its log lines."""

    @abstractmethod
    async def append_logs(self, lines: list[tuple[int, float, str]]) -> None:
        """Store log lines (task id, unix time, text) in one transaction."""


StoreFactory = Callable[[], Awaitable[TaskStore]]
"""Opens the store an Engine uses (called by `Engine.open`)."""
