"""The real API: an engine, the Quart app and Hypercorn on an ephemeral port, in the test's loop."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Config
from core.engine import Engine
from server.app import create_app
from server.runner import ServerHandle, start_server
from tests.support.fileserver import FileServer
from tui.sse import SseEvent, SseParser


@dataclass
class Api:
    engine: Engine
    config: Config
    handle: ServerHandle
    client: httpx.AsyncClient
    tmp: Path
    _extra: list[httpx.AsyncClient] = field(default_factory=list)
    main: Api | None = None  # on a dialect listener from listener(): the main listener it sits beside
    _listeners: list[Api] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def download_dir(self) -> Path:
        return self.engine.download_root

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request that must succeed; returns the envelope's data."""
        response = await self.client.request(method, path, **kwargs)
        body = response.json()
        assert response.status_code == 200, (response.status_code, body)
        assert body["success"] is True and body["code"] == 0 and body["message"] == "ok", body
        return body["data"]

    async def fail(self, method: str, path: str, status: int, code: int, **kwargs: Any) -> dict[str, Any]:
        """A request that must fail with this status and code; returns the envelope."""
        response = await self.client.request(method, path, **kwargs)
        assert response.headers["content-type"].startswith("application/json"), response.text
        body = response.json()
        assert (response.status_code, body.get("code")) == (status, code), (response.status_code, body)
        assert body["success"] is False and body["data"] is None and body["message"], body
        assert "Traceback" not in response.text
        return body  # type: ignore[no-any-return]

    async def create(self, *tasks: dict[str, Any], start: bool = False) -> list[dict[str, Any]]:
        return await self.call("POST", "/api/downloads", json={"tasks": list(tasks), "startDownload": start})  # type: ignore[no-any-return]

    async def task(self, task_id: int) -> dict[str, Any]:
        return await self.call("GET", f"/api/downloads/{task_id}")  # type: ignore[no-any-return]

    async def wait_until(
        self, task_id: int, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            task = await self.task(task_id)
            if predicate(task):
                return task
            assert asyncio.get_running_loop().time() < deadline, f"task {task_id} stuck: {task}"
            await asyncio.sleep(0.05)

    async def wait_status(self, task_id: int, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        return await self.wait_until(task_id, lambda t: t["status"] in statuses, timeout)

    async def listener(self, surface: str, *, token_required: bool = True) -> Api:
        """Another listener on this API's engine, serving `surface` (as --listen SURFACE=127.0.0.1:0 does)."""
        state = self.handle.app.extensions["fetchdeck"]
        app = create_app(self.engine, self.config, surface=surface, token_required=token_required,
                         services=state.services, heartbeat=state.streams.heartbeat)
        handle = await start_server(app, "127.0.0.1", 0, error_log=self.tmp / "logs" / "server.log")
        client = httpx.AsyncClient(base_url=handle.url, timeout=30, trust_env=False)
        other = Api(engine=self.engine, config=self.config, handle=handle, client=client, tmp=self.tmp, main=self)
        self._listeners.append(other)
        return other

    def new_client(self, **kwargs: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.url, timeout=30, trust_env=False, **kwargs)
        self._extra.append(client)
        return client


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Start an API with server/download settings overridden: `await make_api(token="t")`;
    `api={...}` and `aria2={...}` override those sections (the compat dialects); `surface="m3u8"`
    serves what a `--listen m3u8=...` listener serves (server/app.py SURFACES)."""
    started: list[Api] = []

    async def factory(*, heartbeat: float = 15.0, max_concurrent: int = 3, api: dict[str, Any] | None = None,
                      aria2: dict[str, Any] | None = None, surface: str = "main", token_required: bool = True,
                      **server: Any) -> Api:
        root = tmp_path / f"api{len(started)}"
        config = Config()
        config.download.dir = str(root / "downloads")
        config.download.max_concurrent = max_concurrent
        config.download.connections = 2
        config = config.override("server", **server).override("api", **(api or {})).override("aria2", **(aria2 or {}))
        engine = Engine(root / "fetchdeck.db", config)
        await engine.open()
        app = create_app(engine, config, heartbeat=heartbeat, surface=surface, token_required=token_required)
        handle = await start_server(app, "127.0.0.1", 0, error_log=root / "logs" / "server.log")
        client = httpx.AsyncClient(base_url=handle.url, timeout=30, trust_env=False)
        api = Api(engine=engine, config=config, handle=handle, client=client, tmp=root)
        started.append(api)
        return api

    yield factory
    for api in started:
        for other in api._listeners:
            for client in [other.client, *other._extra]:
                await client.aclose()
            await other.handle.stop()
        for client in [api.client, *api._extra]:
            await client.aclose()
        await api.handle.stop()
        await api.engine.close()
        log = api.tmp / "logs" / "server.log"
        if log.exists():
            text = log.read_text()
            assert "Traceback" not in text and "ERROR" not in text, text


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SseReader:
    """Reads one SSE response: parsed events, plus raw lines for comment/heartbeat checks."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = SseParser()
        self.comments: list[str] = []
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10) -> SseEvent:
        async def read() -> SseEvent:
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments.append(line)
                event = self.parser.feed_line(line)
                if event is not None:
                    return event
            raise EOFError("stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def until(self, predicate: Callable[[SseEvent], bool], timeout: float = 20) -> list[SseEvent]:
        """Events up to and including the first that matches."""
        seen: list[SseEvent] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            event = await self.next(max(0.1, deadline - asyncio.get_running_loop().time()))
            seen.append(event)
            if predicate(event):
                return seen


class RawSse:
    """A lean SSE client on a bare asyncio connection (HTTP/1.1, chunked): cheap enough to run hundreds."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = SseParser()
        self._pending: list[SseEvent] = []
        self._buffer = ""

    @classmethod
    async def open(cls, port: int, path: str = "/api/events", headers: dict[str, str] | None = None) -> RawSse:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        assert status == b"200", head
        assert b"transfer-encoding: chunked" in head.lower(), head
        return cls(reader, writer)

    async def next(self) -> SseEvent:
        while not self._pending:
            size = int((await self.reader.readline()).strip() or b"0", 16)
            if size == 0:
                raise EOFError("stream ended")
            chunk = await self.reader.readexactly(size + 2)
            self._buffer += chunk[:-2].decode()
            *lines, self._buffer = self._buffer.split("\n")
            for line in lines:
                event = self.parser.feed_line(line)
                if event is not None:
                    self._pending.append(event)
        return self._pending.pop(0)

    def close(self) -> None:
        self.writer.close()
