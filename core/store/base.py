"""The task store contract: what the engine needs from wherever tasks and their logs are kept.

`TaskStore` is the one interface the engine (core/engine.py, core/scheduler.py,
core/task_run.py, core/unsaved.py, core/progress.py) talks to; it never sees SQL.
Two implementations: `core.store.repo.TaskRepo` (SQLite: aiosqlite, one
writer thread) and `core.store.pg.PgTaskStore` (PostgreSQL, shared by several
nodes); `core.store.open_store` opens the one a store URL names, and the
Engine is handed it as a `StoreFactory`. tests/store/test_contract.py runs the
same contract tests against both.

Changes are `TaskPatch`es: a typed set of task fields where only the fields a
caller set are written. Reads come back as `core.models.Task`.

Every write either happens in full or raises `StoreUnavailable` (disk full, I/O
error, the database unreachable) having changed nothing.

Queue and leases (one contract for one node and for many): the scheduler takes
work with `claim`, which moves waiting tasks to DOWNLOADING for this store's
node in one transaction (on PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two nodes
never claim the same task), grants each a number of connections within the
per-host caps (`HostCaps`, counted over every node's running tasks), and gives
the node a `Lease` with a generation that grows on every claim. The node keeps
its leases with `renew` (heartbeat); `reap` hands tasks whose lease expired
back to the queue. Until a claimed task leaves DOWNLOADING through this store,
every write to it (`update`, `update_many`, `put_state`) is fenced: it lands
only while the lease is still this node's generation, otherwise it raises
`LeaseLost` and changes nothing for that task. A write that moves the task out
of DOWNLOADING also ends the lease (node and expiry cleared).

Durable download state (`get_state`/`put_state`): small blobs per task and key
that a downloader needs to resume on any node (an S3 upload id and the ETags of
its finished parts). They go with the task when it is deleted.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal

from core.models import Headers, LogLine, Priority, Task, TaskKind, TaskOptions, TaskStatus
from core.queue import QueueMove

LOCAL_NODE = "local"  # the node name of a store nobody else shares (SQLite)

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
    # queue control (issue 14; a task's position is changed by `TaskStore.move`, never by a patch)
    priority: Priority | Unset = UNSET
    start_at: float | Unset | None = UNSET

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


@dataclass(frozen=True, slots=True)
class HostLimit:
    """A cap on one remote host across every node: connections open to it, tasks running on it (0: no cap)."""

    connections: int = 0
    tasks: int = 0


@dataclass(frozen=True, slots=True)
class HostCaps:
    """`[hosts."NAME"]` tables: a cap per host name (lower case), `default` for every other host (`[hosts."*"]`)."""

    hosts: dict[str, HostLimit] = dataclasses.field(default_factory=dict)
    default: HostLimit = HostLimit()

    def of(self, host: str) -> HostLimit:
        return self.hosts.get(host.lower(), self.default)

    @property
    def any(self) -> bool:
        return bool(self.default.connections or self.default.tasks
                    or any(h.connections or h.tasks for h in self.hosts.values()))


@dataclass(frozen=True, slots=True)
class Lease:
    """A node's right to run one task: valid while the task's stored lease generation is still `gen`."""

    task_id: int
    node: str
    gen: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A task `claim` gave this node: the task as stored (now DOWNLOADING), its lease, and how many
    connections it may open to its host (≥ 1; its own setting unless a host cap leaves fewer)."""

    task: Task
    lease: Lease
    connections: int


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as the store knows it: its name, when it started and last sent a heartbeat (unix times)."""

    name: str
    started_at: float
    heartbeat_at: float
    leases: int  # tasks it holds a lease on right now


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
        """Ids of tasks with status WAITING in queue order (priority, position, creation; core/queue.py),
        at most `limit` (-1: all), whatever their start time.

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
    async def delete(self, task_id: int) -> None:
        """Remove the task and its log lines."""

    @abstractmethod
    async def append_logs(self, lines: list[tuple[int, float, str]]) -> None:
        """Store log lines (task id, unix time, text) in one transaction."""

    # ---- queue and leases --------------------------------------------------
    @property
    @abstractmethod
    def node(self) -> str:
        """This store's node name (LOCAL_NODE for a store nobody shares)."""

    @property
    def shared(self) -> bool:
        """True if other nodes may use the same store (then events and commands cross nodes)."""
        return False

    @abstractmethod
    async def claim(
        self, limit: int, *, lease_seconds: float, caps: HostCaps, want_connections: Callable[[Task], int],
        only: frozenset[int] | None = None, skip: frozenset[int] = frozenset(),
    ) -> list[Claim]:
        """Claim up to `limit` WAITING tasks for this node in queue order, in one transaction: priority (high,
        normal, low), then position, then creation (id); a task whose `start_at` is still ahead (by this
        node's clock) is left waiting.

        A task whose host is at its cap (`caps`: running tasks, or every connection already granted) is
        left waiting and the next one is tried. `want_connections(task)` is what the task would use; it is
        granted min(that, what the host cap leaves), at least 1. `only`: consider just these ids (a one-shot
        engine); `skip`: never these. Each claimed task gets status DOWNLOADING, error cleared, node = this
        node, a new lease generation, an expiry `lease_seconds` from now, and its granted connections."""

    @abstractmethod
    async def move(self, task_id: int, where: QueueMove) -> bool:
        """Give the task a new position among the WAITING tasks of its priority (core/queue.py's rules):
        TOP before the first, BOTTOM after every task (new tasks come after it too), UP/DOWN past the
        nearest one before/after it. Usually one row is written. False if nothing changed (already there,
        or no such task)."""

    @abstractmethod
    async def set_positions(self, positions: Sequence[tuple[int, float]]) -> None:
        """Write these (task id, position) pairs in one transaction (core/queue.py `placement` computes them)."""

    @abstractmethod
    async def next_start(self, now: float) -> float | None:
        """The earliest `start_at` after `now` of a WAITING task (when the queue must be looked at again)."""

    @abstractmethod
    async def renew(self, lease_seconds: float) -> set[int]:
        """Heartbeat: push the expiry of every lease this node holds `lease_seconds` ahead, and record the
        node's heartbeat. Returns the ids of tasks whose lease was lost (taken over, deleted, or moved out of
        DOWNLOADING elsewhere); the store forgets those leases."""

    @abstractmethod
    async def reap(self) -> list[int]:
        """Hand back to the queue (DOWNLOADING → WAITING, node cleared) every task whose lease expired; ids."""

    @abstractmethod
    async def recover(self) -> int:
        """Start-up: requeue the tasks this node's previous run left DOWNLOADING (on an unshared store: all of
        them); how many."""

    @abstractmethod
    async def release(self, task_id: int) -> None:
        """Forget this node's lease on a task without writing it (the run was cancelled for a lost lease)."""

    @abstractmethod
    def lease(self, task_id: int) -> Lease | None:
        """The lease this node holds on a task, if any (no I/O)."""

    @abstractmethod
    async def nodes(self) -> list[NodeInfo]:
        """Every node that ever used this store, with its last heartbeat."""

    # ---- durable download state -------------------------------------------
    @abstractmethod
    async def get_state(self, task_id: int, key: str) -> bytes | None:
        """A task's stored state blob under `key`, or None."""

    @abstractmethod
    async def put_state(self, task_id: int, key: str, value: bytes | None) -> None:
        """Store (None: remove) a task's state blob under `key`; fenced like `update` if leased here."""


StoreFactory = Callable[[], Awaitable[TaskStore]]
"""Opens the store an Engine uses (called by `Engine.open`)."""
