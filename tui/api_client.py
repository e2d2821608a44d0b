"""A small async client for fetchdeck's native API (the MediaGo dialect).

Used by the remote CLI commands and by the TUI's RemoteClient. It knows HTTP
and the envelope only: answers are the plain JSON dicts docs/api.md documents
(server/wire.py decodes them into tasks and events); events come from the one
SSE client, tui/sse.py.

    async with ApiClient("http://127.0.0.1:39719", token) as api:
        tasks = await api.create([{"url": url, "type": "direct"}], start=True)
        async for event in api.events():
            print(event.event, event.data)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from tui.sse import Disconnected, SseEvent, StreamRefused, follow_events

DEFAULT_SERVER = "http://127.0.0.1:39719"
LIST_PAGE = 1000


class ApiError(Exception):
    """The server answered with an error envelope (or something that is not the API)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ServerUnreachable(Exception):
    """No HTTP answer at all: nothing listening, DNS, TLS or a timeout."""


class ApiClient:
    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport, trust_env=False
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- plumbing -----------------------------------------------------------
    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {_reason(exc)}") from None

    async def call(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One API call; returns the envelope's data or raises ApiError."""
        response = await self._send(method, path, json=json_body, params=_clean(params))
        try:
            body = response.json()
        except ValueError:
            raise ApiError(response.status_code, -1,
                           f"HTTP {response.status_code} from {self.base_url}: not a fetchdeck API answer") from None
        if not isinstance(body, dict) or "success" not in body:
            raise ApiError(response.status_code, -1, f"HTTP {response.status_code}: not a fetchdeck API answer")
        if not body.get("success") or response.status_code >= 400:
            raise ApiError(response.status_code, int(body.get("code") or -1), str(body.get("message") or "error"))
        return body.get("data")

    # ---- endpoints ----------------------------------------------------------
    async def create(self, tasks: list[dict[str, Any]], start: bool = True) -> list[dict[str, Any]]:
        return await self.call("POST", "/api/downloads", json_body={"tasks": tasks, "startDownload": start})  # type: ignore[no-any-return]

    async def list_page(
        self, current: int = 1, page_size: int = 20, filter: str | None = None, local_path: str | None = None
    ) -> dict[str, Any]:
        params = {"current": current, "pageSize": page_size, "filter": filter, "localPath": local_path}
        return await self.call("GET", "/api/downloads", params=params)  # type: ignore[no-any-return]

    async def list_all(self, filter: str | None = None) -> list[dict[str, Any]]:
        """Every task (newest first), fetched page by page."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            result = await self.list_page(page, LIST_PAGE, filter)
            out.extend(result["list"])
            if len(result["list"]) < LIST_PAGE or len(out) >= result["total"]:
                return out
            page += 1

    async def get(self, task_id: int) -> dict[str, Any]:
        return await self.call("GET", f"/api/downloads/{task_id}")  # type: ignore[no-any-return]

    async def active(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/api/downloads/active")  # type: ignore[no-any-return]

    async def folders(self) -> list[str]:
        return await self.call("GET", "/api/downloads/folders")  # type: ignore[no-any-return]

    async def export(self) -> str:
        response = await self._send("GET", "/api/downloads/export")
        if response.status_code >= 400:
            await self.call("GET", "/api/downloads/export")  # raises with the server's message
        return response.text

    async def logs(self, task_id: int) -> str:
        data = await self.call("GET", f"/api/downloads/{task_id}/logs")
        return str(data["log"])

    async def update(self, task_id: int, **fields: Any) -> dict[str, Any]:
        """Fields as the API names them: name, url, headers, folder, isLive, priority, startAt."""
        return await self.call("PUT", f"/api/downloads/{task_id}", json_body=_clean(fields))  # type: ignore[no-any-return]

    async def move(self, task_id: int, where: str) -> dict[str, Any]:
        """Reorder the queue: where is top, bottom, up or down."""
        return await self.call("POST", f"/api/downloads/{task_id}/move", json_body={"to": where})  # type: ignore[no-any-return]

    async def set_live(self, task_id: int, is_live: bool) -> dict[str, Any]:
        return await self.call("PUT", f"/api/downloads/{task_id}/live", json_body={"isLive": is_live})  # type: ignore[no-any-return]

    async def set_status(self, ids: list[int], status: str) -> list[dict[str, Any]]:
        return await self.call("PUT", "/api/downloads/status", json_body={"ids": ids, "status": status})  # type: ignore[no-any-return]

    async def start(
        self, task_id: int, local_path: str | None = None, delete_segments: bool | None = None
    ) -> dict[str, Any]:
        body = _clean({"localPath": local_path, "deleteSegments": delete_segments})
        return await self.call("POST", f"/api/downloads/{task_id}/start", json_body=body)  # type: ignore[no-any-return]

    async def stop(self, task_id: int) -> None:
        await self.call("POST", f"/api/downloads/{task_id}/stop")

    async def relink(self, task_id: int, url: str, restart: bool = False) -> dict[str, Any]:
        body = {"url": url, "restart": restart}
        return await self.call("POST", f"/api/downloads/{task_id}/relink", json_body=body)  # type: ignore[no-any-return]

    async def delete(self, task_id: int, delete_file: bool = False) -> None:
        params = {"deleteFile": "true"} if delete_file else None
        await self.call("DELETE", f"/api/downloads/{task_id}", params=params)

    # ---- bandwidth ----------------------------------------------------------
    async def set_task_limit(self, task_id: int, speed: str | int | None) -> dict[str, Any]:
        """A task's own speed limit ("500K", bytes/s; None/0/"": none); the task as it is now."""
        return await self.call("PUT", f"/api/downloads/{task_id}/limit", json_body={"speed": speed})  # type: ignore[no-any-return]

    async def set_host_limit(self, host: str, speed: str | int | None) -> None:
        await self.call("PUT", f"/api/hosts/{quote(host, safe='')}/limit", json_body={"speed": speed})

    async def schedule(self) -> dict[str, Any]:
        """The bandwidth schedule's window in force (a ScheduleStatus, server/wire.py)."""
        return await self.call("GET", "/api/schedule")  # type: ignore[no-any-return]

    # ---- events -------------------------------------------------------------
    async def events(
        self, last_event_id: int | None = None, *, reconnect: bool = True
    ) -> AsyncIterator[SseEvent]:
        """The SSE stream. Reconnects (with Last-Event-ID, after the server's retry delay) when the
        stream drops, if reconnect.

        The first connection failing raises ServerUnreachable, an error answer ApiError; later
        drops are retried forever (the caller cancels to stop).
        """
        stream = follow_events(self._http, last_event_id=last_event_id, connect_timeout=30.0, fail_fast=True)
        try:
            async for item in stream:
                if isinstance(item, SseEvent):
                    yield item
                elif isinstance(item, Disconnected) and not reconnect:
                    return
        except StreamRefused as exc:
            body = _json_or_none(exc.response.content)
            status = exc.response.status_code
            raise ApiError(status, int((body or {}).get("code") or -1),
                           str((body or {}).get("message") or f"HTTP {status}")) from None
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {_reason(exc)}") from None
        finally:
            await stream.aclose()


def _clean(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: v for k, v in values.items() if v is not None}


def _json_or_none(content: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if isinstance(exc, httpx.ConnectError):
        return f"{text or 'connection failed'} (is fetchdeck running there?)"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return text or type(exc).__name__
