"""An HTTP receiver on 127.0.0.1 for the events-out tests: an ntfy-compatible endpoint or a webhook receiver."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web


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
