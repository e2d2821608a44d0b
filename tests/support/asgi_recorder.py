"""Every HTTP request one listener receives and the status it answered, recorded by an ASGI middleware
around the listener's Quart app (its documented `app.asgi_app` wrapping): what a real browser really
sent, whatever the guards decided. Used by the Chromium tests (tests/clients, tests/browser)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.api.conftest import Api


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names, as ASGI gives them
    status: int | None = None  # what fetchdeck answered
    response_headers: dict[str, str] = field(default_factory=dict)
    query: str = ""  # the raw query string


class Recorder:
    """Every HTTP request one listener receives and the status it answered, whatever the guards decide."""

    def __init__(self, api: Api) -> None:
        self.seen: list[Seen] = []
        app = api.handle.app
        inner = app.asgi_app

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            entry = Seen(scope["method"], scope["path"],
                         {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                         query=scope.get("query_string", b"").decode("latin-1"))
            self.seen.append(entry)

            async def sending(message: Any) -> None:
                if message["type"] == "http.response.start":
                    entry.status = message["status"]
                    entry.response_headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                                              for k, v in message.get("headers", [])}
                await send(message)

            return await inner(scope, receive, sending)

        app.asgi_app = recording  # type: ignore[method-assign]

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def one(self, method: str, path: str) -> Seen:
        found = self.requests(method, path)
        assert len(found) == 1, (method, path, self.seen)
        return found[0]
