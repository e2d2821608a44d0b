"""A deterministic in-memory Client: fixed tasks in every status, fixed times, no network.

Used by the snapshot tests (pixel-stable screens) and the benchmark (an
engine-free event source that can push 10,000 tasks and 500 updating).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from core.config import Config
from core.cookies import ImportReport, counts, parse_netscape
from core.events import Payload, TaskChanged
from core.models import Priority, Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from core.queue import QueueMove
from core.schedule import ScheduleState
from tui.client import ClientEvent, ConnectionState, TaskGone

# A fixed local wall-clock time, so "Added" reads the same in every time zone.
T0 = time.mktime((2025, 3, 14, 9, 26, 0, 0, 0, -1))
MB = 1024 * 1024


def _task(task_id: int, name: str, status: TaskStatus, *, kind: TaskKind = TaskKind.HTTP, url: str = "",
          downloaded: int = 0, total: int | None = None, speed: float = 0.0, eta: float | None = None,
          error: str | None = None, file: str | None = None, segments: tuple[int, int] = (0, 0),
          folder: str = "") -> Task:
    return Task(
        id=task_id, kind=kind, url=url or f"https://files.example.org/pub/{name}", name=name, folder=folder,
        headers=(), status=status, options=TaskOptions(), downloaded=downloaded, total=total, speed=speed,
        eta=eta, error=error, file=file, segments_done=segments[0], segments_total=segments[1],
        created_at=T0 + task_id * 97, updated_at=T0 + task_id * 97,
    )


def sample_tasks() -> list[Task]:
    """One or more tasks in every status, with every column populated somewhere."""
    return [
        _task(1, "ubuntu-24.04.2-desktop-amd64.iso", TaskStatus.DOWNLOADING, downloaded=3_817 * MB,
              total=6_063 * MB, speed=23.6 * MB, eta=95),
        _task(2, "big-buck-bunny-1080p", TaskStatus.DOWNLOADING, kind=TaskKind.HLS,
              url="https://stream.example.org/bbb/master.m3u8", downloaded=212 * MB, total=704 * MB,
              speed=6.2 * MB, eta=79, segments=(181, 600)),
        _task(3, "Conference keynote 2025 (1080p).mp4", TaskStatus.WAITING, kind=TaskKind.YTDLP,
              url="https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
        _task(4, "dataset-2025-03.tar.zst", TaskStatus.SUCCESS, downloaded=1_288 * MB, total=1_288 * MB,
              file="/home/ada/Downloads/fetchdeck/dataset-2025-03.tar.zst"),
        _task(5, "firmware-v2.bin", TaskStatus.FAILED, downloaded=0, total=None,
              error="HTTP 404 Not Found", url="https://downloads.example.com/firmware/v2/firmware-v2.bin"),
        _task(6, "podcast-episode-142.mp3", TaskStatus.STOPPED, downloaded=31 * MB, total=88 * MB,
              folder="podcasts"),
        _task(7, "Linux kernel source linux-6.13.tar.xz", TaskStatus.SUCCESS, downloaded=146 * MB,
              total=146 * MB, file="/home/ada/Downloads/fetchdeck/linux-6.13.tar.xz"),
    ]


SAMPLE_LOG = [
    "09:27:37 start http download: https://downloads.example.com/firmware/v2/firmware-v2.bin",
    "09:27:37 HEAD 404 Not Found",
    "09:27:38 failed: HTTP 404 Not Found",
]
LOGS = {
    2: [
        "09:29:14 start hls download: https://stream.example.org/bbb/master.m3u8",
        "09:29:14 master playlist: 3 variants; picked 1920x1080 (5.2 Mbit/s)",
        "09:29:15 media playlist: 600 segments, 1h10m, AES-128",
        "09:29:15 fetching 16 segments at a time",
        "09:31:02 segment 117: connection reset, retry 1/8 in 0.5 s",
        "09:32:40 181/600 segments",
    ],
    5: SAMPLE_LOG,
}


class MemoryClient:
    """Implements tui.client.Client over a dict; `push` feeds events to the app."""

    def __init__(self, tasks: Sequence[Task] = (), address: str = "local") -> None:
        self.tasks: dict[int, Task] = {t.id: t for t in tasks}
        self._address = address
        self.queue: asyncio.Queue[ClientEvent] | None = None
        self.created: list[TaskSpec] = []
        self.folder_list: list[str] = ["podcasts", "videos"]
        self.schedule_state = ScheduleState()
        self.host_limits: dict[str, int | None] = {}
        self.moves: list[tuple[int, QueueMove]] = []  # queue control: what the TUI asked for

    @property
    def address(self) -> str:
        return self._address

    @property
    def is_remote(self) -> bool:
        return False

    async def all_tasks(self) -> list[Task]:
        return [t.copy() for t in sorted(self.tasks.values(), key=lambda t: t.id)]

    async def get(self, task_id: int) -> Task:
        try:
            return self.tasks[task_id].copy()
        except KeyError:
            raise TaskGone(f"no task with id {task_id}") from None

    async def create(self, specs: Sequence[TaskSpec], start: bool) -> list[Task]:
        out = []
        for spec in specs:
            task_id = max(self.tasks, default=0) + 1
            task = _task(task_id, spec.name or spec.url.rsplit("/", 1)[-1], TaskStatus.WAITING if start
                         else TaskStatus.STOPPED, url=spec.url, kind=spec.kind or TaskKind.HTTP)
            self.tasks[task_id] = task
            self.created.append(spec)
            out.append(task.copy())
        return out

    async def _set(self, task_id: int, status: TaskStatus) -> None:
        self.tasks[task_id] = replace(await self.get(task_id), status=status)

    async def start(self, task_id: int) -> None:
        await self._set(task_id, TaskStatus.WAITING)

    async def stop(self, task_id: int) -> None:
        await self._set(task_id, TaskStatus.STOPPED)

    async def delete(self, task_id: int, files: bool) -> None:
        await self.get(task_id)
        del self.tasks[task_id]

    async def set_priority(self, task_id: int, priority: Priority) -> None:
        self.tasks[task_id] = replace(await self.get(task_id), priority=priority)
        if self.queue is not None:
            self.queue.put_nowait(ClientEvent(TaskChanged(task_id)))

    async def move(self, task_id: int, where: QueueMove) -> None:
        await self.get(task_id)
        self.moves.append((task_id, where))

    async def logs(self, task_id: int) -> list[str]:
        return list(LOGS.get(task_id, []))

    async def folders(self) -> list[str]:
        return list(self.folder_list)

    def folder_of(self, task: Task) -> str:
        return task.file.rsplit("/", 1)[0] if task.file else f"/home/ada/Downloads/fetchdeck/{task.folder}".rstrip("/")

    async def events(self) -> AsyncIterator[ClientEvent]:
        self.queue = asyncio.Queue()
        yield ClientEvent(None, connection=ConnectionState.LOCAL, resync=True)
        while True:
            yield await self.queue.get()

    def push(self, event: Payload) -> None:
        assert self.queue is not None, "the app has not subscribed yet"
        self.queue.put_nowait(ClientEvent(event))

    async def apply_settings(self, config: Config) -> list[str]:
        return []

    async def set_speed_limit(self, task_id: int, rate: int | None) -> None:
        task = await self.get(task_id)
        self.tasks[task_id] = replace(task, options=task.options.model_copy(update={"speed_limit": rate}))

    async def set_host_speed_limit(self, host: str, rate: int | None) -> None:
        self.host_limits[host] = rate

    async def host_speed_limit(self, host: str) -> int | None:
        return self.host_limits.get(host)

    async def schedule(self) -> ScheduleState:
        return self.schedule_state

    async def close(self) -> None:
        pass

    async def import_cookies(self, text: str) -> ImportReport:  # no engine: counted, kept nowhere
        return ImportReport(counts(parse_netscape(text)), "the pasted text")
