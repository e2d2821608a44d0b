"""Feeds a Client's events into a TaskIndex.

Progress events are applied in place; lifecycle events set the status at once
and queue a fetch of the full task (coalesced, so a burst of 500 starts is 500
cheap updates and one fetch loop, not 500 redraws). A resync reloads all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from core.events import (
    ConfigChanged,
    TaskDeleted,
    TaskEvent,
    TaskFailed,
    TaskProgress,
    TasksCreated,
    TaskStarted,
    TaskStopped,
    TaskSucceeded,
)
from core.models import TaskStatus
from core.schedule import ScheduleState
from tui.client import Client, ClientError, ClientEvent, ConnectionState, TaskGone
from tui.state import TaskIndex

log = logging.getLogger("fetchdeck.tui.sync")

_STATUS_OF: dict[type[TaskEvent], TaskStatus] = {
    TaskStarted: TaskStatus.DOWNLOADING,
    TaskSucceeded: TaskStatus.SUCCESS,
    TaskFailed: TaskStatus.FAILED,
    TaskStopped: TaskStatus.STOPPED,
}
BULK_CREATE = 200  # more new tasks than this in one event: reload the list instead


class TaskSync:
    def __init__(
        self,
        client: Client,
        index: TaskIndex,
        on_connection: Callable[[ConnectionState, str], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.client = client
        self.index = index
        self.on_connection = on_connection
        self.on_error = on_error
        self.state = ConnectionState.CONNECTING
        self.loaded = asyncio.Event()
        self._to_fetch: set[int] = set()
        self._fetch_wakeup = asyncio.Event()
        self._resync_wanted = False
        self.schedule = ScheduleState()  # the bandwidth schedule's window in force, for the status line

    async def run(self) -> None:
        """Consume events until the client closes; never raises for a bad event."""
        fetcher = asyncio.create_task(self._fetch_loop(), name="fetchdeck-tui-fetch")
        try:
            async for event in self.client.events():
                try:
                    await self.handle(event)
                except ClientError as exc:
                    self.on_error(str(exc))
                except Exception:  # a bug must not kill the event stream
                    log.exception("could not apply event %r", event)
        finally:
            fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetcher

    async def handle(self, event: ClientEvent) -> None:
        payload = event.payload
        if payload is None:
            if event.connection is not None:
                self.state = event.connection
                self.on_connection(event.connection, event.detail)
            if event.resync:
                await self.resync()
            return
        if isinstance(payload, TaskProgress):
            self.index.progress(payload)
        elif isinstance(payload, TasksCreated):
            if len(payload.ids) > BULK_CREATE:
                self._resync_wanted = True
            self._queue(*payload.ids)
        elif isinstance(payload, ConfigChanged) and payload.key == "schedule":
            # A window began or ended: its state, and the notes of the waiting tasks it holds (or held).
            await self.refresh_schedule()
            self._resync_wanted = True
            self._fetch_wakeup.set()
        elif isinstance(payload, TaskDeleted):
            self._to_fetch.discard(payload.task_id)
            self.index.remove(payload.task_id)
        elif isinstance(payload, TaskEvent):
            status = _STATUS_OF.get(type(payload))
            if status is not None:
                error = payload.error if isinstance(payload, TaskFailed) else None
                self.index.set_status(payload.task_id, status, error)
            self._queue(payload.task_id)

    async def resync(self) -> None:
        tasks = await self.client.all_tasks()
        self._to_fetch.clear()
        self.index.replace_all(tasks)
        self.loaded.set()
        await self.refresh_schedule()

    async def refresh_schedule(self) -> None:
        try:
            self.schedule = await self.client.schedule()
        except ClientError:  # e.g. a server from before schedules: nothing to show
            self.schedule = ScheduleState()

    def _queue(self, *ids: int) -> None:
        self._to_fetch.update(ids)
        self._fetch_wakeup.set()

    async def _fetch_loop(self) -> None:
        while True:
            await self._fetch_wakeup.wait()
            self._fetch_wakeup.clear()
            if self._resync_wanted:
                self._resync_wanted = False
                try:
                    await self.resync()
                except ClientError as exc:
                    self.on_error(str(exc))
                continue
            while self._to_fetch:
                task_id = self._to_fetch.pop()
                try:
                    task = await self.client.get(task_id)
                except TaskGone:
                    self.index.remove(task_id)  # deleted meanwhile
                    continue
                except ClientError:
                    continue  # unreachable: the next resync brings it
                except Exception:
                    log.exception("fetching task %s failed", task_id)
                    continue
                self.index.upsert(task)
