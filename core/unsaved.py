"""Unsaved outcomes: runs that ended while the store refused their final state (e.g. its disk is full).

A run's outcome (success, failed, stopped...) is decided in memory by
core/task_run.py; if the store then refuses to write it, the outcome is kept
here, and this module is the task's source of truth until a write succeeds:
readers (Engine.get, lists, stats) see the outcome, not the stale row; the
scheduler does not launch the task; a command on the task first offers the
outcome to the store again (and refuses with StoreUnavailable while it cannot
be saved). A background loop offers all of them again every SAVE_RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NamedTuple

from core.errors import LeaseLost, StoreUnavailable
from core.models import Task, TaskStatus
from core.store.base import TaskPatch, TaskStore

log = logging.getLogger("fetchdeck.engine")

SAVE_RETRY_SECONDS = 2.0  # how often a final status the store refused is offered again


class UnsavedFinish(NamedTuple):
    task: Task  # as the run left it: the status and outcome to save
    stored: TaskStatus  # what the store still says


class UnsavedOutcomes:
    """Final task states waiting for the store to take them."""

    def __init__(self, store: Callable[[], TaskStore], on_saved: Callable[[], None]) -> None:
        """store: the engine's open store; on_saved: called after outcomes were saved (wakes the scheduler)."""
        self._store = store
        self._on_saved = on_saved
        self._items: dict[int, UnsavedFinish] = {}

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def ids(self) -> list[int]:
        return sorted(self._items)

    def keep(self, task: Task, stored: TaskStatus) -> None:
        """Remember a run's outcome the store refused; `stored` is the status the row still has."""
        self._items[task.id] = UnsavedFinish(task, stored)

    def get(self, task_id: int) -> Task | None:
        """A copy of the task as its run left it, if its outcome is not saved yet."""
        unsaved = self._items.get(task_id)
        return unsaved.task.copy() if unsaved else None

    def discard(self, task_id: int) -> None:
        """Forget the outcome (the task is deleted)."""
        self._items.pop(task_id, None)

    def adjust_counts(self, counts: dict[TaskStatus, int]) -> None:
        """Correct the store's per-status counts to what the unsaved tasks really are."""
        for unsaved in self._items.values():
            counts[unsaved.stored] -= 1
            counts[unsaved.task.status] += 1

    async def save(self, task_id: int | None = None) -> bool:
        """Offer the outcomes again (all, or just `task_id`); False if the store still refuses one.

        With `task_id`, a refusal raises StoreUnavailable: a command must not act
        on a task whose stored status is not its real one.
        """
        ids = list(self._items) if task_id is None else [task_id] if task_id in self._items else []
        for unsaved_id in ids:
            unsaved = self._items[unsaved_id]
            task = unsaved.task
            try:
                await self._store().update(unsaved_id, TaskPatch.outcome(task))
            except LeaseLost:
                # Another node took the task over while this outcome waited: its run decides now.
                log.warning("task %s: its %s status was not saved; another node runs it now",
                            unsaved_id, task.status.value)
                self._items.pop(unsaved_id, None)
                continue
            except StoreUnavailable:
                if task_id is not None:
                    raise
                return False
            if self._items.get(unsaved_id) is unsaved:
                del self._items[unsaved_id]
                log.info("task %s: its %s status is saved now", unsaved_id, task.status.value)
        if ids:
            self._on_saved()
        return True

    async def run(self) -> None:
        """Offer the outcomes again every SAVE_RETRY_SECONDS, for ever (the engine cancels it)."""
        while True:
            await asyncio.sleep(SAVE_RETRY_SECONDS)
            if self._items:
                try:
                    await self.save()
                except Exception:
                    log.exception("saving unsaved task states failed")
