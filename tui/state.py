"""The TUI's in-memory picture of the tasks, and what changed since the last frame.

Events mutate tasks here and mark them dirty; the 4 Hz frame timer takes the
changes and applies them to the widgets. Nothing here knows about Textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from core.events import TaskProgress
from core.models import Task, TaskStatus


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Text (substring of name or URL, case-insensitive) and an optional status."""

    text: str = ""
    status: TaskStatus | None = None

    @property
    def active(self) -> bool:
        return bool(self.text.strip()) or self.status is not None

    def matches(self, task: Task) -> bool:
        if self.status is not None and task.status != self.status:
            return False
        needle = self.text.strip().lower()
        return not needle or needle in task.name.lower() or needle in task.url.lower()

    def describe(self) -> str:
        parts = []
        if self.text.strip():
            parts.append(f"“{self.text.strip()}”")
        if self.status is not None:
            parts.append(self.status.value)
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class Totals:
    active: int = 0
    queued: int = 0
    done: int = 0
    failed: int = 0
    stopped: int = 0
    speed: float = 0.0

    @property
    def total(self) -> int:
        return self.active + self.queued + self.done + self.failed + self.stopped


@dataclass(slots=True)
class Changes:
    """What the next frame must apply."""

    rebuild: bool = False  # everything (first load, resync, filter change)
    dirty: set[int] = field(default_factory=set)  # added or changed tasks
    removed: set[int] = field(default_factory=set)
    failures: list[Task] = field(default_factory=list)  # newly failed, to tell the user

    def __bool__(self) -> bool:
        return self.rebuild or bool(self.dirty) or bool(self.removed) or bool(self.failures)


class TaskIndex:
    """All tasks by id, status counts kept incrementally, and the pending changes."""

    def __init__(self) -> None:
        self.tasks: dict[int, Task] = {}
        self._counts: dict[TaskStatus, int] = dict.fromkeys(TaskStatus, 0)
        self._running: set[int] = set()
        self._changes = Changes()
        self.filter = TaskFilter()

    # ---- reading -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.tasks

    def get(self, task_id: int | None) -> Task | None:
        return None if task_id is None else self.tasks.get(task_id)

    def visible(self) -> Iterator[Task]:
        """Tasks that pass the filter, in creation (queue) order."""
        flt = self.filter
        if not flt.active:
            yield from self.tasks.values()
        else:
            yield from (t for t in self.tasks.values() if flt.matches(t))

    def totals(self) -> Totals:
        c = self._counts
        speed = 0.0
        for task_id in self._running:
            task = self.tasks.get(task_id)
            if task is not None:
                speed += task.speed
        return Totals(
            active=c[TaskStatus.DOWNLOADING],
            queued=c[TaskStatus.WAITING],
            done=c[TaskStatus.SUCCESS],
            failed=c[TaskStatus.FAILED],
            stopped=c[TaskStatus.STOPPED],
            speed=speed,
        )

    # ---- writing -------------------------------------------------------
    def replace_all(self, tasks: Iterable[Task]) -> None:
        self.tasks = {}
        self._counts = dict.fromkeys(TaskStatus, 0)
        self._running = set()
        for task in sorted(tasks, key=lambda t: t.id):
            self._add(task)
        self._changes = Changes(rebuild=True)

    def set_filter(self, flt: TaskFilter) -> None:
        if flt != self.filter:
            self.filter = flt
            self._changes.rebuild = True

    def upsert(self, task: Task) -> None:
        old = self.tasks.get(task.id)
        if old is not None:
            self._forget(old)  # the dict keeps the task's place (creation order)
            if task.status == TaskStatus.FAILED and old.status != TaskStatus.FAILED:
                self._changes.failures.append(task)
        self._add(task)
        self._changes.dirty.add(task.id)
        self._changes.removed.discard(task.id)

    def set_status(self, task_id: int, status: TaskStatus, error: str | None = None) -> None:
        """Apply a lifecycle event at once (the full task is fetched after)."""
        task = self.tasks.get(task_id)
        if task is None:
            return
        updated = task.copy()
        updated.status = status
        if status != TaskStatus.DOWNLOADING:
            updated.speed, updated.eta = 0.0, None
        if status == TaskStatus.FAILED:
            updated.error = error or updated.error
        elif status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING, TaskStatus.SUCCESS):
            updated.error = None
        if status == TaskStatus.SUCCESS and updated.total:
            updated.downloaded = updated.total
        self.upsert(updated)

    def progress(self, event: TaskProgress) -> None:
        """Apply a running task's new counters (the status comes from lifecycle events)."""
        task = self.tasks.get(event.task_id)
        if task is None:
            return
        task.downloaded, task.total = event.downloaded, event.total
        task.speed, task.eta = event.speed, event.eta
        task.segments_done, task.segments_total = event.segments_done, event.segments_total
        task.note = event.note
        self._changes.dirty.add(event.task_id)

    def remove(self, task_id: int) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None:
            self._forget(task)
            self._changes.dirty.discard(task_id)
            self._changes.removed.add(task_id)

    @property
    def has_changes(self) -> bool:
        """Whether the next frame has anything to apply."""
        return bool(self._changes)

    def take_changes(self) -> Changes:
        changes, self._changes = self._changes, Changes()
        return changes

    # ---- internals -----------------------------------------------------
    def _add(self, task: Task) -> None:
        self.tasks[task.id] = task
        self._counts[task.status] += 1
        if task.status == TaskStatus.DOWNLOADING:
            self._running.add(task.id)

    def _forget(self, task: Task) -> None:
        self._counts[task.status] -= 1
        self._running.discard(task.id)
