"""Events out (core/notify/): real downloads from 127.0.0.1, real receivers, a real hook program.

- an Apprise ntfy:// notification reaches a local ntfy-compatible endpoint (and a task with
  notify = false, or an outcome not in [notify] on, sends none);
- the signed webhook: the receiver recomputes the HMAC over the raw body and answers 500 to the
  first attempt; both attempts are in the task log, the body is the task's report;
- hooks: argv and environment arrive verbatim for a file name made to inject shell commands, and
  nothing is injected; a string command is split from the config value only; a hook that outlives
  its timeout is killed; the output is in the task log.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.config import Config
from core.engine import Engine
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes

SECRET = "s3cret-ключ"


async def wait_for(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}; last value {value!r}"
        await asyncio.sleep(0.05)


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1: records each POST (headers, raw body) and answers the next of `answers`
    (then 200)."""

    answers: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes, int]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        status = self.answers.pop(0) if self.answers else 200
        self.requests.append((request.path, dict(request.headers), raw, status))
        # ntfy answers a publish with the message as JSON; a webhook receiver with anything
        return web.json_response({"id": "m1", "time": int(time.time()), "event": "message"}, status=status)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    yield rec
    await rec.stop()


@pytest.fixture
def files() -> AsyncIterator[FileServer]:
    with FileServer() as srv:
        yield srv


def config_for(tmp_path: Path) -> Config:
    config = engine_config(tmp_path, retries=0)
    config.notify.retry_delay = 0.2
    config.notify.grace = 5
    return config


async def run(engine: Engine, url: str, name: str | None = None, **options: Any) -> Task:
    (task,) = await engine.create([TaskSpec(url=url, name=name, options=TaskOptions(**options))])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 20)
    return done


async def log_texts(engine: Engine, task_id: int) -> list[str]:
    return [line.text for line in await engine.logs(task_id)]


async def test_a_notification_reaches_a_local_ntfy_endpoint(tmp_path: Path, files: FileServer,
                                                            receiver: Receiver) -> None:
    data = random_bytes(300_000, seed=5)
    url = files.add("/movie.mkv", data)
    config = config_for(tmp_path)
    config.notify.urls = [f"ntfy://127.0.0.1:{receiver.port}/fetchdeck-done"]
    config.notify.on = ["success"]  # a failure is not notified
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        done = await run(engine, url)
        assert done.status is TaskStatus.SUCCESS
        assert await wait_for(lambda: receiver.requests, what="the ntfy POST")
        quiet = await run(engine, url, name="quiet.mkv", notify=False)
        failed = await run(engine, files.url("/missing.bin"))
        assert failed.status is TaskStatus.FAILED
    # closed: every pending delivery has had its grace period, so nothing more can arrive
    assert len(receiver.requests) == 1, receiver.requests
    path, headers, raw, status = receiver.requests[0]
    message = json.loads(raw)
    assert path == "/" and headers["Content-Type"] == "application/json"
    assert message["topic"] == "fetchdeck-done"
    assert message["title"] == "fetchdeck: downloaded: movie.mkv"
    assert message["message"].startswith("movie.mkv (300,000 bytes)\n") and message["message"].endswith(done.file)
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        lines = await log_texts(engine, done.id)
        assert f"notify ntfy://127.0.0.1:{receiver.port}/… (success, attempt 1/4): delivered, sent" in lines, lines
        assert not any(t.startswith("notify") for t in await log_texts(engine, quiet.id))
        assert not any(t.startswith("notify") for t in await log_texts(engine, failed.id))
