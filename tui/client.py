"""What the TUI talks to: the `Client` protocol and the in-process `LocalClient`.

The screens never touch an Engine or HTTP directly. `LocalClient` wraps the
engine running in this process; `RemoteClient` (tui/remote.py) speaks the
native API + SSE of another fetchdeck. Both raise `ClientError` with a message
a person can read, and both deliver engine events as `ClientEvent`s carrying
the typed event (core/events.py): the local one as the bus published it, the
remote one decoded from the wire by server/wire.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from core.config import Config
from core.cookies import ImportReport
from core.engine import Engine
from core.errors import FetchdeckError, TaskNotFound
from core.events import EventType, Payload
from core.models import Priority, Task, TaskSpec
from core.queue import QueueMove
from core.schedule import ScheduleState

T = TypeVar("T")


class ClientError(Exception):
    """A request failed; str() is what the user reads."""


class TaskGone(ClientError):
    """The task does not exist (any more)."""


class ConnectionState(StrEnum):
    LOCAL = "local"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """An engine event (`payload`), or (payload None) a change of the connection state.

    `resync` asks the consumer to reload every task: the client may have
    missed events (first connection, reconnection, subscriber overflow).
    """

    payload: Payload | None = None
    connection: ConnectionState | None = None
    resync: bool = False
    detail: str = ""

    @property
    def type(self) -> EventType | None:
        return None if self.payload is None else self.payload.type

    @property
    def task_id(self) -> int | None:
        return None if self.payload is None else self.payload.task_id


@runtime_checkable
class Client(Protocol):
    """The operations the TUI needs, local or remote."""

    @property
    def address(self) -> str:
        """Where the engine lives, for the status line ('local', 'http://host:port')."""
        ...

    @property
    def is_remote(self) -> bool: ...

    async def all_tasks(self) -> list[Task]: ...

    async def get(self, task_id: int) -> Task: ...

    async def create(self, specs: Sequence[TaskSpec], start: bool) -> list[Task]: ...

    async def start(self, task_id: int) -> None: ...

    async def stop(self, task_id: int) -> None: ...

    async def relink(self, task_id: int, url: str, restart: bool) -> Task:
        """A new URL for the task (core/relink.py); ClientError with the reason when it is refused."""
        ...

    async def delete(self, task_id: int, files: bool) -> None: ...

    async def logs(self, task_id: int) -> list[str]: ...

    async def set_priority(self, task_id: int, priority: Priority) -> None: ...

    async def move(self, task_id: int, where: QueueMove) -> None: ...

    async def folders(self) -> list[str]: ...

    def folder_of(self, task: Task) -> str:
        """The directory a task's file is (or will be) in."""
        ...

    def events(self) -> AsyncIterator[ClientEvent]:
        """Engine events until close(); starts with a resync event."""
        ...

    async def apply_settings(self, config: Config) -> list[str]:
        """Apply what can change at run time; return the settings that need a restart."""
        ...

    async def set_speed_limit(self, task_id: int, rate: int | None) -> None:
        """A task's own speed limit in bytes/s (None: none), applied at once if it runs."""
        ...

    async def set_host_speed_limit(self, host: str, rate: int | None) -> None:
        """A host's speed limit in bytes/s (None: none), shared by its tasks, applied at once."""
        ...

    async def host_speed_limit(self, host: str) -> int | None:
        """A host's speed limit now, if the client can tell (None: none or unknown)."""
        ...

    async def schedule(self) -> ScheduleState:
        """The bandwidth schedule's window in force (core/schedule.py)."""
        ...

    async def close(self) -> None: ...

    # Cookie jars (core/cookies.py): the answer names domains and counts, never a value.
    async def import_cookies(self, text: str) -> ImportReport:
        """Add a cookies.txt text to the engine's jar."""
        ...


def log_line_text(ts: float, text: str) -> str:
    import time

    return f"{time.strftime('%H:%M:%S', time.localtime(ts))} {text}"


class LocalClient:
    """The engine in this process. Errors become ClientError; events come from the bus."""

    PAGE = 10_000

    def __init__(self, engine: Engine, api_address: str = "") -> None:
        self.engine = engine
        self.api_address = api_address
        self._closed = asyncio.Event()

    @property
    def address(self) -> str:
        return self.api_address or "local"

    @property
    def is_remote(self) -> bool:
        return False

    async def all_tasks(self) -> list[Task]:
        from core.store import TaskFilter

        out: list[Task] = []
        page = 1
        while True:
            chunk = await self._call(self.engine.list_tasks(page, self.PAGE, TaskFilter(newest_first=False)))
            out.extend(chunk.items)
            if len(out) >= chunk.total or not chunk.items:
                return out
            page += 1

    async def get(self, task_id: int) -> Task:
        return await self._call(self.engine.get(task_id))

    async def create(self, specs: Sequence[TaskSpec], start: bool) -> list[Task]:
        return await self._call(self.engine.create(list(specs), start=start))

    async def start(self, task_id: int) -> None:
        await self._call(self.engine.start(task_id))

    async def stop(self, task_id: int) -> None:
        await self._call(self.engine.stop(task_id))

    async def relink(self, task_id: int, url: str, restart: bool) -> Task:
        return await self._call(self.engine.relink(task_id, url, restart=restart))

    async def delete(self, task_id: int, files: bool) -> None:
        await self._call(self.engine.delete(task_id, files=files))

    async def set_priority(self, task_id: int, priority: Priority) -> None:
        await self._call(self.engine.set_priority(task_id, priority))

    async def move(self, task_id: int, where: QueueMove) -> None:
        await self._call(self.engine.move(task_id, where))

    async def logs(self, task_id: int) -> list[str]:
        lines = await self._call(self.engine.logs(task_id))
        return [log_line_text(line.ts, line.text) for line in lines]

    async def folders(self) -> list[str]:
        return await self._call(self.engine.folders())

    def folder_of(self, task: Task) -> str:
        if task.file:
            return str(Path(task.file).parent)
        root = self.engine.download_root
        return str(Path(task.folder) if Path(task.folder).is_absolute() else root / task.folder)

    async def events(self) -> AsyncIterator[ClientEvent]:
        sub = self.engine.subscribe()
        try:
            yield ClientEvent(None, connection=ConnectionState.LOCAL, resync=True)
            while not self._closed.is_set():
                event = await sub.get(timeout=0.5)
                if event is None:
                    if sub.overflowed:  # we fell behind: start over from a full reload
                        sub = self.engine.subscribe()
                        yield ClientEvent(None, connection=ConnectionState.LOCAL, resync=True)
                    elif sub.closed:
                        return
                    continue
                yield ClientEvent(event.payload)
        finally:
            sub.close()

    async def apply_settings(self, config: Config) -> list[str]:
        current = self.engine.config.download
        new = config.download
        self.engine.set_max_concurrent(new.max_concurrent)
        self.engine.set_speed_limit(new.speed_limit_bytes)
        for name in ("connections", "segment_threads", "retries", "speed_limit", "proxy"):
            if getattr(current, name) != getattr(new, name):
                setattr(current, name, getattr(new, name))
                self.engine.announce_config(f"download.{name}", getattr(new, name))
        for section in ("notify", "webhook", "hooks"):  # events out: read at each finished task (core/notify/)
            setattr(self.engine.config, section, getattr(config, section))
        if self.engine.config.relink != config.relink:  # expired links: read by each new run
            self.engine.config.relink = config.relink
        self.engine.hosts.quiet_seconds = config.policy.quiet_seconds  # the next step up waits this long
        if self.engine.config.schedule != config.schedule:  # the bandwidth windows: in force at once
            await self.engine.set_schedule(config.schedule)
        if self.engine.config.hosts != config.hosts:  # per-host caps (next claim) and speeds (at once)
            self.engine.set_hosts(config.hosts)
        restart = []
        if new.download_dir.expanduser().resolve() != self.engine.download_root:
            restart.append("download dir")
        if config.cookies.dir != self.engine.config.cookies.dir:  # the jar is opened with the engine
            restart.append("cookie jar dir")
        return restart

    async def set_speed_limit(self, task_id: int, rate: int | None) -> None:
        await self._call(self.engine.set_task_speed_limit(task_id, rate))

    async def set_host_speed_limit(self, host: str, rate: int | None) -> None:
        try:
            self.engine.set_host_speed_limit(host, rate)
        except FetchdeckError as exc:
            raise ClientError(str(exc)) from None

    async def host_speed_limit(self, host: str) -> int | None:
        return self.engine.limits.host_rate(host)

    async def schedule(self) -> ScheduleState:
        return self.engine.schedule_state()

    async def close(self) -> None:
        self._closed.set()

    async def import_cookies(self, text: str) -> ImportReport:
        jar = self.engine.cookies
        if jar is None:
            raise ClientError("this fetchdeck keeps no cookie jar (set [cookies] dir)")
        return await self._call(asyncio.to_thread(jar.import_text, text, "the pasted text"))

    async def _call(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except TaskNotFound as exc:
            raise TaskGone(str(exc)) from None
        except FetchdeckError as exc:
            raise ClientError(str(exc)) from None
