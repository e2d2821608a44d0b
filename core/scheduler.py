"""Running tasks: their live progress, speed/ETA, and who runs next.

`TaskRun` is the ProgressSink a downloader reports to; the engine's ticker
reads it at ≤ 4 Hz to publish progress and about once a second to flush it
to the store. The scheduler picks waiting tasks in creation order up to the
global `max_concurrent`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from core.models import Task


class StopReason(Enum):
    STOP = "stop"  # the user stopped it → stopped
    DELETE = "delete"  # the task is being deleted
    SHUTDOWN = "shutdown"  # the engine is closing → left resumable


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


class Scheduler:
    """Tracks running tasks and the concurrency limit."""

    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max(1, max_concurrent)
        self.runs: dict[int, TaskRun] = {}
        self.wakeup = asyncio.Event()

    @property
    def free_slots(self) -> int:
        return max(0, self.max_concurrent - len(self.runs))

    def poke(self) -> None:
        self.wakeup.set()

    def set_max_concurrent(self, value: int) -> None:
        self.max_concurrent = max(1, value)
        self.poke()
