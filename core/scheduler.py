"""Scheduling: which waiting task runs next, launching it, cancelling a run, and the queue policy.

The scheduler owns `runs`, the tasks running now. While a task is in `runs`
its `TaskRun.task` is the task's source of truth (the downloader updates its
counters in memory; the store's row lags by up to a second, core/progress.py);
before a run is registered and after it is removed, the store is (or, for an
outcome the store refused, core/unsaved.py is).

Queue policy: waiting tasks in creation order, up to `max_concurrent` at once;
an engine built with run_queued=False (the one-shot `fetchdeck get`) runs only
the tasks it was asked to start (`claim`). A launch registers the run before
anything awaits, so a stop or delete that arrives while the run is still being
marked `downloading` always finds something to cancel. Running one task is
core/task_run.py's job; the scheduler only starts and cancels it.

`TaskRun` is also the ProgressSink a downloader reports to; the progress pump
reads it at ≤ 4 Hz to publish progress and about once a second to flush it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from core.models import Task, TaskStatus

if TYPE_CHECKING:
    from core.store.base import TaskStore
    from core.unsaved import UnsavedOutcomes

log = logging.getLogger("fetchdeck.engine")


class StopReason(Enum):
    STOP = "stop"  # the user stopped it → stopped
    DELETE = "delete"  # the task is being deleted
    SHUTDOWN = "shutdown"  # the engine is closing → left resumable
    LEASE_LOST = "lease lost"  # another node took the task over → nothing more is written


@dataclass(eq=False)
class TaskRun:
    """One running download: the live Task plus progress bookkeeping."""

    task: Task
    started: float = field(default_factory=time.monotonic)
    handle: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))
    emitted_downloaded: int = -1
    emitted_segments: int = -1
    flushed_downloaded: int = -1

    # ---- ProgressSink ---------------------------------------------------
    def set_total(self, total: int | None) -> None:
        self.task.total = total if total is None or total >= 0 else None

    def add(self, nbytes: int) -> None:
        self.task.downloaded += nbytes

    def set_downloaded(self, nbytes: int) -> None:
        self.task.downloaded = nbytes

    def set_segments(self, done: int, total: int) -> None:
        self.task.segments_done = done
        self.task.segments_total = total

    def set_note(self, note: str | None) -> None:
        self.task.note = note

    # ---- derived figures -------------------------------------------------
    def sample(self, now: float | None = None, window: float = 3.0) -> None:
        """Record (time, bytes) and update speed and ETA over a sliding window."""
        now = time.monotonic() if now is None else now
        samples = self._samples
        samples.append((now, self.task.downloaded))
        while len(samples) > 2 and now - samples[0][0] > window:
            samples.popleft()
        first_t, first_b = samples[0]
        elapsed = now - first_t
        speed = max(0.0, (self.task.downloaded - first_b) / elapsed) if elapsed > 0.05 else 0.0
        self.task.speed = speed
        total = self.task.total
        if total and speed > 0:
            self.task.eta = max(0.0, (total - self.task.downloaded) / speed)
        else:
            self.task.eta = None

    def reset_samples(self) -> None:
        self._samples.clear()


class RunExecutor(Protocol):
    """What runs one task (core/task_run.py's TaskRunner)."""

    async def execute(self, run: TaskRun) -> None:
        """Run the task to its end (success, failure, cancellation) and unregister the run."""

    async def finish_cancelled(self, run: TaskRun) -> None:
        """Settle a run cancelled before its coroutine ran a line (status by its stop reason)."""


class Scheduler:
    """The running tasks, the concurrency limit, the scheduling loop and cancellation."""

    def __init__(
        self, max_concurrent: int, *, store: Callable[[], TaskStore], unsaved: UnsavedOutcomes,
        run_queued: bool = True,
    ) -> None:
        """store: the engine's open store; unsaved: outcomes not stored yet (never relaunched);
        run_queued=False: run only claimed tasks."""
        self.max_concurrent = max(1, max_concurrent)
        self.runs: dict[int, TaskRun] = {}
        self.wakeup = asyncio.Event()
        self.executor: RunExecutor | None = None  # set by the engine before the loop runs
        self.closing = False
        self._store = store
        self._unsaved = unsaved
        self._run_queued = run_queued
        self._claimed: set[int] = set()

    @property
    def free_slots(self) -> int:
        return max(0, self.max_concurrent - len(self.runs))

    def poke(self) -> None:
        self.wakeup.set()

    def set_max_concurrent(self, value: int) -> None:
        self.max_concurrent = max(1, value)
        self.poke()

    def running(self, task_id: int) -> TaskRun | None:
        return self.runs.get(task_id)

    # ---- queue policy ------------------------------------------------------
    def claim(self, ids: Iterable[int]) -> None:
        """These tasks were asked to run (an engine with run_queued=False runs only claimed tasks)."""
        self._claimed.update(ids)

    def release(self, task_id: int) -> None:
        self._claimed.discard(task_id)

    def _may_run(self, task_id: int) -> bool:
        if task_id in self.runs or task_id in self._unsaved:
            return False
        return self._run_queued or task_id in self._claimed

    # ---- the loop ------------------------------------------------------------
    async def run(self) -> None:
        """Fill free slots whenever poked, for ever (the engine cancels it)."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            try:
                await self.fill_slots()
            except Exception:
                log.exception("scheduler error")

    async def fill_slots(self) -> None:
        free = self.free_slots
        if free <= 0 or self.closing:
            return
        store = self._store()
        candidates = await store.waiting_ids(limit=free + len(self.runs) + 64 if self._run_queued else -1)
        for task_id in candidates:
            if self.free_slots <= 0:
                break
            if not self._may_run(task_id):
                continue
            task = await store.get(task_id)
            if task is None or task.status != TaskStatus.WAITING:
                continue
            self.launch(task)

    def launch(self, task: Task) -> TaskRun:
        """Register a run of `task` and start it (the run claims the task in the store itself)."""
        if self.executor is None:
            raise RuntimeError("the scheduler has no executor")
        # The handle exists before anything awaits, so a stop that comes in while the
        # run is being marked `downloading` always has something to cancel.
        run = TaskRun(task=task)
        task.error = None
        task.speed, task.eta = 0.0, None
        self.runs[task.id] = run
        run.handle = asyncio.create_task(self.executor.execute(run), name=f"fetchdeck-task-{task.id}")
        return run

    def finished(self, run: TaskRun) -> None:
        """The run is over (its outcome is stored or kept unsaved): free its slot."""
        if self.runs.get(run.task.id) is run:
            del self.runs[run.task.id]
        self.poke()

    async def cancel(self, run: TaskRun, reason: StopReason) -> None:
        """Cancel a run and wait until it has settled (stopped, left resumable, or dropped for a delete)."""
        run.stop_reason = reason
        if run.handle and not run.handle.done():
            run.handle.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run.handle
        if self.runs.get(run.task.id) is run and self.executor is not None:
            # Cancelled before its coroutine ran a line: nothing else will settle it.
            await self.executor.finish_cancelled(run)
