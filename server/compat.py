"""What the compat dialects (m3u8 task API, Downie, SaveAny-Bot) share.

- String ids: the dialects speak strings, the engine integers (`parse_id`).
- Task groups: a SaveAny task with several URLs is one engine task per URL;
  the first leads (`options.members`), the others point at it (`options.group`).
- `CompatServices`: one background consumer of engine events per server,
  started with the app; it remembers when tasks started (Downie's
  `started_at`) and hands terminal states to the webhook notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.engine import Engine
from core.events import Subscription, TaskDeleted, TaskEvent, TaskFailed, TaskStarted, TaskStopped, TaskSucceeded
from core.models import Task, TaskStatus

log = logging.getLogger("fetchdeck.server")

MAX_ID = 2**63 - 1
LIST_ALL = 10_000

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dumps(data: Any) -> str:
    return _dumps(data)


def parse_id(text: str | None) -> int | None:
    """The engine id for a dialect's string id, or None if it cannot be one."""
    value = (text or "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 19:  # not "²" (int() fails) nor "١" (= 1)
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def iso_z(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def human_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover


async def all_tasks(engine: Engine) -> list[Task]:
    """Every task, newest first (the dialects have no paging of their own, or page in memory)."""
    page = await engine.list_tasks(1, LIST_ALL)
    items = list(page.items)
    number = 1
    while len(items) < page.total:
        number += 1
        more = await engine.list_tasks(number, LIST_ALL)
        if not more.items:
            break
        items.extend(more.items)
    return items


# ------------------------------------------------------------------ groups


def group_ids(task: Task) -> list[int]:
    return [task.id, *task.options.members]


async def group_tasks(engine: Engine, leader: Task, known: dict[int, Task] | None = None) -> list[Task]:
    """The leader and its members (members deleted meanwhile are skipped)."""
    out = [leader]
    for member_id in leader.options.members:
        task = (known or {}).get(member_id)
        if task is None:
            try:
                task = await engine.get(member_id)
            except LookupError:
                continue
        out.append(task)
    return out


def group_status(tasks: Iterable[Task]) -> str:
    """queued | running | completed | failed | cancelled for a group (SaveAny's words)."""
    statuses = [t.status for t in tasks]
    if TaskStatus.DOWNLOADING in statuses:
        return "running"
    if TaskStatus.WAITING in statuses:
        started = any(s is not TaskStatus.WAITING for s in statuses)
        return "running" if started else "queued"
    if TaskStatus.FAILED in statuses:
        return "failed"
    if TaskStatus.STOPPED in statuses:
        return "cancelled"
    return "completed"


TERMINAL = frozenset({"completed", "failed", "cancelled"})


# ------------------------------------------------------------------ services


@dataclass
class CompatServices:
    """Engine-event consumer shared by the dialects; `start()` with the server, `stop()` after."""

    engine: Engine
    started_at: dict[int, float] = field(default_factory=dict)
    notifier: Any = None  # server.webhooks.WebhookNotifier (set by create_app)
    storages: dict[str, Any] = field(default_factory=dict)  # name → server.storages.Storage
    # MediaGo UI settings a client set this run (server/routes/mediago.py: fetchdeck has no use for them).
    mediago_settings: dict[str, Any] = field(default_factory=dict)
    # Stops the whole server gracefully (`fetchdeck serve` sets it; None: nothing may): aria2.shutdown calls it.
    on_shutdown: Callable[[], None] | None = None
    _task: asyncio.Task[None] | None = None
    _sub: Subscription | None = None

    def __post_init__(self) -> None:
        # Subscribed at once (not when serving starts), so no event between the two is missed.
        self._sub = self.engine.subscribe()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="fetchdeck-compat-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.notifier is not None:
            await self.notifier.close()

    async def _run(self) -> None:
        sub = self._sub or self.engine.subscribe()
        try:
            async for event in sub:
                payload = event.payload
                if not isinstance(payload, TaskEvent):
                    continue
                task_id = payload.task_id
                if isinstance(payload, TaskStarted):
                    self.started_at[task_id] = time.time()
                elif isinstance(payload, TaskDeleted):
                    self.started_at.pop(task_id, None)
                if self.notifier is not None and isinstance(
                    payload, TaskStarted | TaskSucceeded | TaskFailed | TaskStopped
                ):
                    try:
                        await self.notifier.poke(task_id)
                    except Exception:
                        log.exception("webhook check failed for task %s", task_id)
        finally:
            sub.close()
