"""net.GetOpener: segment GETs straight on aiohttp keep what the httpx path does.

Each test asks the same thing through the opener and through httpx (or checks the
opener did not fall back to httpx) against a local aiohttp server: the headers and
cookies sent, cookies stored from a response, a gzip body decoded, a redirect
followed (by httpx, with its rules), and a refused connection classified alike.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from core.downloaders.net import GetOpener, HttpClients, SharedClient, classify
from core.errors import ConnectionRefused


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        name = request.match_info["name"]
        if name == "cookie":
            response = web.Response(body=b"ok")
            response.set_cookie("session", "abc", path="/")
            return response
        if name == "gzip":
            return web.Response(body=gzip.compress(b"z" * 5000), headers={"Content-Encoding": "gzip"})
        if name == "moved":
            raise web.HTTPFound("/plain")
        return web.Response(body=b"plain body")

    app = web.Application()
    app.router.add_get("/{name}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[SharedClient]:
    clients = HttpClients(connect_timeout=5.0)
    shared = clients.get()
    assert isinstance(shared, SharedClient) and shared.direct is not None
    try:
        yield shared
    finally:
        await clients.aclose()


def no_httpx(monkeypatch: pytest.MonkeyPatch, client: httpx.AsyncClient) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the opener fell back to httpx")

    monkeypatch.setattr(client, "stream", fail)


async def get(opener: GetOpener, client: httpx.AsyncClient, url: str, **headers: str) -> tuple[bytes, str, int]:
    async with opener.open(client, url, headers) as response:
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
        return body, str(response.url), response.status_code


async def test_same_headers_as_httpx_and_the_task_header_wins(
    site: tuple[str, list[dict[str, str]]], client: SharedClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = site
    async with client.stream("GET", f"{base}/plain", headers={"x-token": "1", "user-agent": "mine"}) as r:
        await r.aread()
    no_httpx(monkeypatch, client)
    opener = GetOpener()
    assert await get(opener, client, f"{base}/plain", **{"X-Token": "1", "User-Agent": "mine"}) == (
        b"plain body", f"{base}/plain", 200)
    via_httpx, direct = seen
    assert direct == via_httpx
    assert direct["user-agent"] == "mine" and direct["x-token"] == "1"
    assert opener.direct


async def test_cookies_are_stored_in_and_sent_from_the_clients_jar(
    site: tuple[str, list[dict[str, str]]], client: SharedClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = site
    no_httpx(monkeypatch, client)
    opener = GetOpener()
    await get(opener, client, f"{base}/cookie")
    assert client.cookies.get("session") == "abc"  # httpx requests (playlists) see it too
    await get(opener, client, f"{base}/plain")
    assert "session=abc" in seen[-1]["cookie"]
    await get(opener, client, f"{base}/plain", Cookie="mine=1")
    assert seen[-1]["cookie"] == "mine=1"  # as httpx: a Cookie header the task gives wins over the jar


async def test_a_gzip_body_is_decoded(site: tuple[str, list[dict[str, str]]], client: SharedClient,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    base, _ = site
    no_httpx(monkeypatch, client)
    body, _, status = await get(GetOpener(), client, f"{base}/gzip")
    assert (body, status) == (b"z" * 5000, 200)


async def test_a_redirect_is_followed_by_httpx_from_then_on(
    site: tuple[str, list[dict[str, str]]], client: SharedClient
) -> None:
    base, seen = site
    opener = GetOpener()
    assert await get(opener, client, f"{base}/moved") == (b"plain body", f"{base}/plain", 200)
    assert not opener.direct
    assert [h.get("host") for h in seen] == [base.removeprefix("http://")] * 3  # direct try, httpx, its redirect


async def test_a_refused_connection_is_classified_as_through_httpx(client: SharedClient) -> None:
    with socket.socket() as held:  # bound, never listening: connecting to it is refused
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/x"
        with pytest.raises(httpx.TransportError) as direct:
            await get(GetOpener(), client, url)
        with pytest.raises(httpx.TransportError) as via_httpx:
            await client.get(url)
    ours, theirs = classify(direct.value), classify(via_httpx.value)
    assert isinstance(ours, ConnectionRefused) and type(ours) is type(theirs)
    assert str(ours) == str(theirs)
