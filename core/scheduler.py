"""Scheduling: which waiting task runs next, launching it, cancelling a run, and the queue policy.

The scheduler owns `runs`, the tasks running now. While a task is in `runs`
its `TaskRun.task` is the task's source of truth (the downloader updates its
counters in memory; the store's row lags by up to a second, core/progress.py);
before a run is registered and after it is removed, the store is (or, for an
outcome the store refused, core/unsaved.py is).

Queue policy: waiting tasks in queue order (priority, position, creation: core/queue.py; a task whose
start_at is ahead waits, and a timer wakes the loop at the earliest one), up to `max_concurrent` at once,
taken with the store's `claim` (which moves them to DOWNLOADING under a lease
for this node, within the per-host caps, and grants each its connections);
while `held` (a schedule pause window, core/schedule.py) nothing is claimed;
an engine built with run_queued=False (the one-shot `fetchdeck get`) runs only
the tasks it was asked to start (`claim`). A claim and its launches hold
`launching`, and so does a command that reads a task's status and writes it
(start, stop, delete): a task claimed meanwhile is either not yet claimed when the
command reads it or already has its run registered for the command to cancel. Running one task is
core/task_run.py's job; the scheduler only starts and cancels it.

A run that found too little disk space (core/integrity.py) goes back to waiting and is `defer`red: it is
not claimed again until another run ends or its retry time comes; meanwhile `deferred_note` is its note.

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

from core.errors import StoreUnavailable
from core.models import Task, TaskStatus
from core.store.base import HostCaps

if TYPE_CHECKING:
    from core.store.base import TaskStore
    from core.unsaved import UnsavedOutcomes

log = logging.getLogger("fetchdeck.engine")

CLAIM_RETRY_SECONDS = 2.0  # a claim the store refused is tried again this much later
START_SLACK = 0.01  # seconds past a task's start_at the queue is looked at again (it is due by then)


class StopReason(Enum):
    STOP = "stop"  # the user stopped it → stopped
    DELETE = "delete"  # the task is being deleted
    SHUTDOWN = "shutdown"  # the engine is closing → left resumable
    LEASE_LOST = "lease lost"  # another node took the task over → nothing more is written
    PAUSE = "pause"  # a schedule pause window (core/schedule.py) → waiting again, resumable


@dataclass(eq=False)
class TaskRun:
    """One running download: the live Task plus progress bookkeeping."""

    task: Task
    connections: int = 0  # what the claim granted (0: not claimed, the task's own settings apply)
    started: float = field(default_factory=time.monotonic)
    handle: asyncio.Task[None] | None = None
    stop_reason: StopReason | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))
    emitted_downloaded: int = -1
    emitted_segments: int = -1
    flushed_downloaded: int = -1
    resumed_from: int = -1  # the bytes it had when launched (core/schedule.py counts a window's bytes from it)

    def __post_init__(self) -> None:
        if self.resumed_from < 0:
            self.resumed_from = self.task.downloaded

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

    def connections_wanted(self, task: Task) -> int:
        """How many connections to its host the task would open (what a claim asks the host caps for)."""


class Scheduler:
    """The running tasks, the concurrency limit, the scheduling loop and cancellation."""

    def __init__(
        self, max_concurrent: int, *, store: Callable[[], TaskStore], unsaved: UnsavedOutcomes,
        run_queued: bool = True, lease_seconds: float = 30.0, caps: HostCaps | None = None,
    ) -> None:
        """store: the engine's open store; unsaved: outcomes not stored yet (never relaunched);
        run_queued=False: run only claimed tasks; lease_seconds: how long a claim's lease lasts unrenewed;
        caps: the per-host caps (`[hosts."NAME"]`)."""
        self.max_concurrent = max(1, max_concurrent)
        self.runs: dict[int, TaskRun] = {}
        self.wakeup = asyncio.Event()
        self.executor: RunExecutor | None = None  # set by the engine before the loop runs
        self.closing = False
        self._store = store
        self._unsaved = unsaved
        self._run_queued = run_queued
        self._claimed: set[int] = set()
        self._lease_seconds = lease_seconds
        self._caps = caps or HostCaps()
        self.launching = asyncio.Lock()
        self._deferred: dict[int, tuple[str, float]] = {}  # task id → (note, monotonic retry time)
        self.held = False  # a schedule pause window is in force (core/schedule.py): claim nothing
        self.on_finished: Callable[[TaskRun], None] | None = None  # told of every run's end (the data cap's count)
        self._start_timer: asyncio.TimerHandle | None = None  # wakes the loop at the next start_at

    @property
    def caps(self) -> HostCaps:
        return self._caps

    def set_caps(self, caps: HostCaps) -> None:
        """New per-host caps (`[hosts."NAME"]`), held from the next claim on."""
        self._caps = caps

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
        self._deferred.pop(task_id, None)

    # ---- tasks waiting for a resource (disk space) ------------------------------------
    def defer(self, task_id: int, note: str, seconds: float) -> None:
        """Do not claim this (waiting) task again for `seconds`, or until another run ends; `note` says why."""
        self._deferred[task_id] = (note, time.monotonic() + seconds)
        asyncio.get_running_loop().call_later(seconds, self.poke)

    def deferred_note(self, task_id: int) -> str | None:
        entry = self._deferred.get(task_id)
        return entry[0] if entry else None

    def retry_deferred(self) -> None:
        """Every deferred task may be claimed again now (each keeps its note until its run checks again)."""
        if self._deferred:
            self._deferred = {task_id: (note, 0.0) for task_id, (note, _until) in self._deferred.items()}
            self.poke()

    def _held_back(self) -> frozenset[int]:
        now = time.monotonic()
        return frozenset(task_id for task_id, (_note, until) in self._deferred.items() if until > now)

    # ---- the loop ------------------------------------------------------------
    async def run(self) -> None:
        """Fill free slots whenever poked, for ever (the engine cancels it)."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            try:
                await self.fill_slots()
            except StoreUnavailable as exc:  # the database is away: try again shortly (and when it is back)
                log.warning("cannot take tasks from the queue: %s", exc)
                asyncio.get_running_loop().call_later(CLAIM_RETRY_SECONDS, self.poke)
            except Exception:
                log.exception("scheduler error")

    async def fill_slots(self) -> None:
        free = self.free_slots
        if free <= 0 or self.closing or self.held:
            return
        executor = self.executor
        if executor is None:
            raise RuntimeError("the scheduler has no executor")
        async with self.launching:
            free = self.free_slots
            if free <= 0 or self.closing or self.held:
                return
            claims = await self._store().claim(
                free, lease_seconds=self._lease_seconds, caps=self._caps,
                want_connections=executor.connections_wanted,
                only=None if self._run_queued else frozenset(self._claimed),
                skip=frozenset(self.runs) | frozenset(self._unsaved.ids()) | self._held_back(),
            )
            for claim in claims:
                if claim.task.id in self.runs:  # launched directly while the claim was out: that run has it
                    continue
                self.launch(claim.task, claim.connections)
        if len(claims) < free:  # outside `launching`: a command waiting for it goes first
            await self._wake_at_next_start()

    async def _wake_at_next_start(self) -> None:
        """Slots are left free: look again when the next waiting task's start time comes (core/queue.py)."""
        now = time.time()
        at = await self._store().next_start(now)
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None
        if at is not None:
            self._start_timer = asyncio.get_running_loop().call_later(max(0.0, at - now) + START_SLACK, self.poke)

    def launch(self, task: Task, connections: int = 0) -> TaskRun:
        """Register a run of `task` (claimed: DOWNLOADING under this node's lease) and start it.

        connections: what the claim granted (0: the task's own settings)."""
        if self.executor is None:
            raise RuntimeError("the scheduler has no executor")
        # The handle exists before anything awaits, so a stop that comes in while the
        # run is being marked `downloading` always has something to cancel.
        run = TaskRun(task=task, connections=connections)
        # Until the run has confirmed its claim it reads as queued (as before it was claimed): a start
        # landing now is a no-op, a stop or delete cancels the run.
        task.status = TaskStatus.WAITING
        task.error = None
        task.speed, task.eta = 0.0, None
        self._deferred.pop(task.id, None)  # this run checks again (and defers it again if need be)
        self.runs[task.id] = run
        run.handle = asyncio.create_task(self.executor.execute(run), name=f"fetchdeck-task-{task.id}")
        return run

    def finished(self, run: TaskRun) -> None:
        """The run is over (its outcome is stored or kept unsaved): free its slot."""
        if self.runs.get(run.task.id) is run:
            del self.runs[run.task.id]
            if self.on_finished is not None:
                self.on_finished(run)
        if run.task.id not in self._deferred:  # a run that ended (not one deferred just now): space may be free
            self.retry_deferred()
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
