"""Shared by the compat-dialect tests: the real server with [api]/[aria2] settings, a WebSocket
client, a webhook receiver and HLS media made once per process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.api.conftest import Api
from tests.support.hls_fixtures import make_vod

CompatFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
def make_compat(make_api: CompatFactory) -> CompatFactory:
    """`await make_compat(token="t", api={"storages": [...]}, aria2={...})`: a started server
    (the same fixture as make_api, named for the dialect tests)."""
    return make_api


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 30, step: float = 0.05) -> Any:
    """Poll until check() returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting; last value {value!r}"
        await asyncio.sleep(step)


# ---------------------------------------------------------------- websocket


class Ws:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session, self.ws = session, ws

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Ws:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url.replace("http://", "ws://"), **kwargs)
        except Exception:
            await session.close()
            raise
        return cls(session, ws)

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        message = await self.ws.receive(timeout=timeout)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        return json.loads(message.data)  # type: ignore[no-any-return]

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> list[dict[str, Any]]:
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.1, deadline - time.monotonic()))
            seen.append(msg)
            if predicate(msg):
                return seen

    async def send(self, data: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(data))

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


# ---------------------------------------------------------------- webhooks


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to the first `fail_first` requests."""

    fail_first: int = 0
    requests: list[tuple[dict[str, str], dict[str, Any], int]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)  # each request's body as sent
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.raw.append(await request.read())
        body = await request.json()
        status = 500 if len(self.requests) < self.fail_first else 200
        self.requests.append((dict(request.headers), body, status))
        return web.Response(status=status, text="no" if status == 500 else "ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    @property
    def delivered(self) -> list[dict[str, Any]]:
        return [body for _, body, status in self.requests if status == 200]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await Receiver(fail_first=1).start()
    yield rec
    await rec.stop()


# ---------------------------------------------------------------- media and aria2


@functools.cache
def hls_vod() -> Path:
    """A 4 s VOD (4 one-second MPEG-TS segments), made once per process."""
    root = Path(tempfile.mkdtemp(prefix="fetchdeck-compat-hls-"))
    import atexit

    atexit.register(shutil.rmtree, root, True)
    return make_vod(root / "vod", seconds=4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def aria2_daemon(secret: str, folder: Path) -> Any:
    """A real `aria2c --enable-rpc` on 127.0.0.1; yields its JSON-RPC URL."""
    exe = shutil.which("aria2c")
    if exe is None:
        pytest.skip("aria2c is not installed: the aria2 backend needs a real aria2 JSON-RPC endpoint to test")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, "--enable-rpc", f"--rpc-listen-port={port}", f"--rpc-secret={secret}", "--rpc-listen-all=false",
         f"--dir={folder}", "--quiet=true", "--no-conf=true", "--check-certificate=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "aria2c did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/jsonrpc"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
