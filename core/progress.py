"""Progress reporting and persistence for running tasks.

Reads each running task's counters at ≤ 4 Hz and publishes a progress event
(core.events.TaskProgress) when they or the task's note moved; about once a
second writes progress of all running tasks and the pending task-log lines to
the store in one transaction each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from core.errors import LeaseLost, StoreUnavailable
from core.events import EventBus, TaskProgress
from core.models import LogLine
from core.scheduler import TaskRun
from core.store.base import TaskPatch, TaskStore

log = logging.getLogger("fetchdeck.engine")

PROGRESS_INTERVAL = 0.25  # ≤ 4 progress events per task per second
FLUSH_EVERY_TICKS = 4  # progress to the store about once a second
MAX_PENDING_LOGS = 20_000  # while the store refuses writes, keep at most this many log lines


class ProgressPump:
    def __init__(self, runs: dict[int, TaskRun], bus: EventBus) -> None:
        self.runs = runs
        self.bus = bus
        self.repo: TaskStore | None = None  # set when the engine opens its store
        self.on_lease_lost: Callable[[set[int]], None] | None = None  # runs another node took over
        self._pending_logs: list[tuple[int, float, str]] = []
        self._flush_lock = asyncio.Lock()  # one flush writes at a time (flush_logs)
        self._store_down: str | None = None  # why the last flush failed (logged once per outage)
        self._emitted_notes: dict[int, str | None] = {}  # task id → the note its last progress event carried

    def log(self, task_id: int, text: str) -> None:
        self._pending_logs.append((task_id, time.time(), text))
        log.debug("task %s: %s", task_id, text)

    async def run(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            tick += 1
            try:
                self.publish_progress()
                if tick % FLUSH_EVERY_TICKS == 0:
                    await self.flush()
                    if self._store_down is not None:
                        log.warning("the task store takes writes again")
                        self._store_down = None
            except StoreUnavailable as exc:
                if self._store_down is None:
                    log.warning("progress and task logs are not being saved: %s", exc)
                self._store_down = str(exc)
            except Exception:
                log.exception("progress ticker error")

    def publish_progress(self) -> None:
        """A TaskProgress for each running task whose bytes, segments or note changed since its last one."""
        notes = self._emitted_notes
        for run in list(self.runs.values()):
            task = run.task
            run.sample()
            moved = task.downloaded != run.emitted_downloaded or task.segments_done != run.emitted_segments
            if not moved and task.note == notes.get(task.id):
                continue
            run.emitted_downloaded = task.downloaded
            run.emitted_segments = task.segments_done
            notes[task.id] = task.note
            self.bus.publish(TaskProgress.of(task))
        for gone in [task_id for task_id in notes if task_id not in self.runs]:
            del notes[gone]

    async def flush(self) -> None:
        """Write progress of all running tasks (and pending logs) in one transaction."""
        changes: list[tuple[int, TaskPatch]] = []
        flushed = []
        for run in list(self.runs.values()):
            t = run.task
            if t.downloaded != run.flushed_downloaded:
                flushed.append((run, t.downloaded))
                changes.append((t.id, TaskPatch.counters(t)))
        if changes and self.repo is not None:
            try:
                await self.repo.update_many(changes)
            except LeaseLost as exc:  # the rest was written; those runs belong to another node now
                if self.on_lease_lost is not None:
                    self.on_lease_lost(set(exc.task_ids))
            for run, downloaded in flushed:
                run.flushed_downloaded = downloaded
        await self.flush_logs()

    def pending_logs(self, task_id: int) -> list[LogLine]:
        return [LogLine(ts=ts, text=text) for line_task, ts, text in self._pending_logs if line_task == task_id]

    async def flush_logs(self) -> None:
        """Store the pending log lines; if the store refuses, keep them (the newest) for next time.

        Flushes take turns: a caller that finds another flush writing waits for it, so every line logged
        before the call is stored when it returns (a reader flushing first then sees them all)."""
        async with self._flush_lock:
            if self._pending_logs and self.repo is not None:
                lines, self._pending_logs = self._pending_logs, []
                try:
                    await self.repo.append_logs(lines)
                except StoreUnavailable:
                    self._pending_logs = (lines + self._pending_logs)[-MAX_PENDING_LOGS:]
                    raise
