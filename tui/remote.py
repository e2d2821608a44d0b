"""`RemoteClient`: the TUI attached to another fetchdeck over its native API.

The native API is the MediaGo Download API (shared/seeds/mediago-download-api):
every answer is `{success, code, message, data}`; tasks are listed with
`GET /api/downloads?current=&pageSize=`, created with `POST /api/downloads`,
controlled with `POST /api/downloads/:id/start|stop` and `DELETE`, and events
arrive on the `GET /api/events` SSE stream (with ids, so a reconnect can ask
for what it missed). Tasks and events are decoded by server/wire.py, the one
owner of the native wire format; the stream is tui/sse.py's, which reconnects
by itself after a drop; its connection changes become ClientEvents.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import PurePath
from typing import TypeVar

import httpx

from core.config import Config
from core.cookies import DomainCount, ImportReport
from core.models import Priority, Task, TaskSpec
from core.queue import QueueMove
from core.schedule import ScheduleState
from server.wire import decode_event, decode_schedule, decode_task, encode_spec
from tui.api_client import ApiClient, ApiError, ServerUnreachable
from tui.client import ClientError, ClientEvent, ConnectionState, TaskGone
from tui.sse import Connected, Connecting, Disconnected, follow_events

T = TypeVar("T")


class RemoteClient:
    """Another fetchdeck over HTTP: requests through ApiClient, events on their own stream."""

    def __init__(
        self, base_url: str, token: str | None = None, *, timeout: float = 10.0,
        reconnect_delays: Sequence[float] = (0.5, 1.0, 2.0, 3.0, 5.0),
    ) -> None:
        """reconnect_delays: seconds to wait after the 1st, 2nd, ... failed attempt (the last repeats)."""
        self.base_url = base_url.rstrip("/")
        self.reconnect_delays = tuple(reconnect_delays)
        self.api = ApiClient(self.base_url, token, timeout=timeout)
        headers = {"User-Agent": "fetchdeck-tui"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._stream_http = httpx.AsyncClient(base_url=self.base_url, headers=headers, trust_env=False)
        self._closed = asyncio.Event()
        self.keepalive_timeout = 45.0  # the server pings every 15 s; silence this long = a dead link

    @property
    def address(self) -> str:
        return self.base_url

    @property
    def is_remote(self) -> bool:
        return True

    # ---- requests ------------------------------------------------------
    async def _call(self, request: Awaitable[T]) -> T:
        try:
            return await request
        except ServerUnreachable as exc:
            raise ClientError(str(exc)) from None
        except ApiError as exc:
            if exc.status in (401, 403):
                raise ClientError(f"{exc.message} (check --token)") from None
            raise (TaskGone if exc.status == 404 else ClientError)(exc.message) from None

    async def all_tasks(self) -> list[Task]:
        items = await self._call(self.api.list_all())
        tasks = {task.id: task for task in map(_decode, items)}
        return sorted(tasks.values(), key=lambda t: t.id)

    async def get(self, task_id: int) -> Task:
        return _decode(await self._call(self.api.get(task_id)))

    async def create(self, specs: Sequence[TaskSpec], start: bool) -> list[Task]:
        created = await self._call(self.api.create([encode_spec(spec) for spec in specs], start=start))
        return [_decode(item) for item in created]

    async def start(self, task_id: int) -> None:
        await self._call(self.api.start(task_id))

    async def stop(self, task_id: int) -> None:
        await self._call(self.api.stop(task_id))

    async def relink(self, task_id: int, url: str, restart: bool) -> Task:
        return _decode(await self._call(self.api.relink(task_id, url, restart)))

    async def delete(self, task_id: int, files: bool) -> None:
        await self._call(self.api.delete(task_id, delete_file=files))

    async def set_priority(self, task_id: int, priority: Priority) -> None:
        await self._call(self.api.update(task_id, priority=priority.value))

    async def move(self, task_id: int, where: QueueMove) -> None:
        await self._call(self.api.move(task_id, where.value))

    async def logs(self, task_id: int) -> list[str]:
        text = await self._call(self.api.logs(task_id))
        return text.splitlines()

    async def folders(self) -> list[str]:
        return [str(f) for f in await self._call(self.api.folders())]

    def folder_of(self, task: Task) -> str:
        if task.file:
            return str(PurePath(task.file).parent)
        return task.folder or "(the server's download dir)"

    async def apply_settings(self, config: Config) -> list[str]:
        return []  # the remote engine has its own config

    async def set_speed_limit(self, task_id: int, rate: int | None) -> None:
        await self._call(self.api.set_task_limit(task_id, rate or 0))

    async def set_host_speed_limit(self, host: str, rate: int | None) -> None:
        await self._call(self.api.set_host_limit(host, rate or 0))

    async def host_speed_limit(self, host: str) -> int | None:
        return None  # the API does not list host limits: the dialog starts empty

    async def schedule(self) -> ScheduleState:
        return decode_schedule(await self._call(self.api.schedule()))

    async def close(self) -> None:
        self._closed.set()
        await self._stream_http.aclose()
        await self.api.aclose()

    async def import_cookies(self, text: str) -> ImportReport:
        data = await self._call(self.api.call("POST", "/api/cookies", json_body={"text": text}))
        domains = data.get("domains", []) if isinstance(data, dict) else []
        return ImportReport(tuple(DomainCount(str(d.get("domain")), int(d.get("cookies") or 0)) for d in domains
                                  if isinstance(d, dict)), "the pasted text")

    # ---- events --------------------------------------------------------
    async def events(self) -> AsyncIterator[ClientEvent]:
        """Follow /api/events until close(), reconnecting (tui/sse.py's loop).

        The first connection asks for a resync (load everything); a reconnection sends
        Last-Event-ID, so the server replays what was missed, or sends `resync` when it cannot."""
        stream = follow_events(self._stream_http, delays=self.reconnect_delays, read_timeout=self.keepalive_timeout,
                               closed=self._closed)
        try:
            async for item in stream:
                if isinstance(item, Connecting):
                    yield ClientEvent(connection=ConnectionState.CONNECTING)
                elif isinstance(item, Connected):
                    yield ClientEvent(connection=ConnectionState.CONNECTED, resync=item.first)
                elif isinstance(item, Disconnected):
                    yield ClientEvent(connection=ConnectionState.DISCONNECTED, detail=item.reason)
                elif item.event == "resync":
                    yield ClientEvent(resync=True)
                else:
                    payload = decode_event(item.event, item.data)
                    if payload is not None:
                        yield ClientEvent(payload)
        finally:
            await stream.aclose()


def _decode(data: object) -> Task:
    """A task from an answer; ClientError when the answer holds none."""
    if not isinstance(data, dict):
        raise ClientError(f"the server sent {type(data).__name__} where a task belongs")
    try:
        return decode_task(data)
    except ValueError as exc:
        raise ClientError(f"the server sent a task the TUI cannot read: {exc}") from None
