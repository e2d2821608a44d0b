"""`RemoteClient`: the TUI attached to another fetchdeck over its native API.

The native API is the MediaGo Download API (shared/seeds/mediago-download-api):
every answer is `{success, code, message, data}`; tasks are listed with
`GET /api/downloads?current=&pageSize=`, created with `POST /api/downloads`,
controlled with `POST /api/downloads/:id/start|stop` and `DELETE`, and events
arrive on the `GET /api/events` SSE stream (with ids, so a reconnect can ask
for what it missed). The stream reconnects by itself after a drop and reports
the connection state as ClientEvents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import datetime
from pathlib import PurePath
from typing import Any, TypeVar

import httpx

from core.config import Config
from core.errors import InvalidInput
from core.events import EventType
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus, parse_header_lines, parse_kind
from tui.api_client import ApiClient, ApiError, ServerUnreachable
from tui.client import ClientError, ClientEvent, ConnectionState, TaskGone
from tui.sse import parse_sse

T = TypeVar("T")

log = logging.getLogger("fetchdeck.tui.remote")

_EVENT_NAMES = {e.value: e for e in EventType}
# The MediaGo type names a create request uses for each kind.
_WIRE_TYPES = {TaskKind.HTTP: "direct", TaskKind.HLS: "m3u8", TaskKind.YTDLP: "youtube"}


def _first(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        if data.get(name) is not None:
            return data[name]
    return None


def _timestamp(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value) / (1000 if value > 1e11 else 1)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def _kind(data: dict[str, Any]) -> TaskKind:
    for name in ("kind", "type"):
        value = data.get(name)
        if isinstance(value, str):
            with contextlib.suppress(InvalidInput):
                return parse_kind(value)
    return TaskKind.HTTP


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    try:
        if isinstance(value, str):
            return parse_header_lines(value)
        if isinstance(value, dict):
            return tuple((str(k), str(v)) for k, v in value.items())
        if isinstance(value, list):
            return tuple((str(k), str(v)) for k, v in value)
    except (InvalidInput, ValueError, TypeError):
        pass
    return ()


def _int(value: Any, default: int | None = 0) -> int | None:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def task_from_wire(data: dict[str, Any]) -> Task:
    """A DownloadTask as the API sends it → Task (unknown or missing fields get defaults)."""
    status_text = str(data.get("status") or "waiting")
    try:
        status = TaskStatus(status_text)
    except ValueError:
        status = TaskStatus.WAITING
    total = _int(_first(data, "total", "totalBytes", "size"), None)
    return Task(
        id=int(data["id"]),
        kind=_kind(data),
        url=str(data.get("url") or ""),
        name=str(data.get("name") or ""),
        folder=str(data.get("folder") or ""),
        headers=_headers(data.get("headers")),
        status=status,
        options=TaskOptions(),
        is_live=bool(data.get("isLive")),
        file=data.get("file") or None,
        downloaded=_int(_first(data, "downloaded", "downloadedBytes")) or 0,
        total=total if total else None,
        speed=_float(data.get("speed")) or 0.0,
        eta=_float(data.get("eta")),
        segments_done=_int(data.get("segmentsDone")) or 0,
        segments_total=_int(data.get("segmentsTotal")) or 0,
        error=_first(data, "error", "errorMessage") or None,
        created_at=_timestamp(_first(data, "createdAt", "createdDate")),
        updated_at=_timestamp(_first(data, "updatedAt", "updatedDate")),
    )


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
        tasks = {task.id: task for task in map(task_from_wire, items)}
        return sorted(tasks.values(), key=lambda t: t.id)

    async def get(self, task_id: int) -> Task:
        return task_from_wire(await self._call(self.api.get(task_id)))

    async def create(self, specs: Sequence[TaskSpec], start: bool) -> list[Task]:
        wire = []
        for spec in specs:
            item: dict[str, Any] = {"url": spec.url}
            if spec.kind is not None:
                item["type"] = _WIRE_TYPES[spec.kind]
            if spec.name:
                item["name"] = spec.name
            if spec.folder:
                item["folder"] = spec.folder
            if spec.headers:
                item["headers"] = "\n".join(f"{k}: {v}" for k, v in spec.headers)
            wire.append(item)
        created = await self._call(self.api.create(wire, start=start))
        return [task_from_wire(item) for item in created]

    async def start(self, task_id: int) -> None:
        await self._call(self.api.start(task_id))

    async def stop(self, task_id: int) -> None:
        await self._call(self.api.stop(task_id))

    async def delete(self, task_id: int, files: bool) -> None:
        await self._call(self.api.delete(task_id, delete_file=files))

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

    async def close(self) -> None:
        self._closed.set()
        await self._stream_http.aclose()
        await self.api.aclose()

    # ---- events --------------------------------------------------------
    async def events(self) -> AsyncIterator[ClientEvent]:
        """Follow /api/events forever, reconnecting; every (re)connection asks for a resync."""
        last_id: str | None = None
        failures = 0
        loaded = False
        yield ClientEvent(None, connection=ConnectionState.CONNECTING)
        while not self._closed.is_set():
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            timeout = httpx.Timeout(10.0, read=self.keepalive_timeout)
            error = ""
            try:
                async with self._stream_http.stream("GET", "/api/events", headers=headers, timeout=timeout) as response:
                    if response.is_error:
                        await response.aread()
                        raise ClientError(f"HTTP {response.status_code} {response.reason_phrase}")
                    failures = 0
                    # Reconnecting with Last-Event-ID replays what we missed; the server
                    # sends `resync` when it cannot, and the first connection loads all.
                    yield ClientEvent(None, connection=ConnectionState.CONNECTED, resync=not loaded)
                    loaded = True
                    async for message in parse_sse(response.aiter_lines()):
                        if message.id is not None:
                            last_id = message.id
                        if message.event == "resync":
                            yield ClientEvent(None, resync=True)
                            continue
                        event = self._convert(message.event, message.data)
                        if event is not None:
                            yield event
                error = "the server closed the event stream"
            except (httpx.HTTPError, ClientError, OSError) as exc:
                error = str(exc) or exc.__class__.__name__
            except Exception as exc:  # never let the stream loop die
                log.exception("event stream error")
                error = str(exc) or exc.__class__.__name__
            if self._closed.is_set():
                return
            yield ClientEvent(None, connection=ConnectionState.DISCONNECTED, detail=error)
            delay = self.reconnect_delays[min(failures, len(self.reconnect_delays) - 1)]
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
            if not self._closed.is_set():
                yield ClientEvent(None, connection=ConnectionState.CONNECTING)

    @staticmethod
    def _convert(name: str, text: str) -> ClientEvent | None:
        kind = _EVENT_NAMES.get(name)
        if kind is None:
            return None
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        task_id = _int(data.get("id"), None)
        return ClientEvent(kind, task_id, data)
