"""A web page must not be able to drive fetchdeck on 127.0.0.1 (server/guards.py, server/auth.py).

Cross-origin requests from origins off the allow-list, no-preflight
text/plain / form / multipart POSTs, <img>-style cross-site GETs, DNS
rebinding (a foreign Host), cross-site WebSockets and folders outside the
allowed roots are all refused, and nothing is created by them.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest

from tests.api.conftest import Api, ApiFactory

TASK = {"type": "direct", "url": "http://example.invalid/a.bin"}
EVIL = "http://evil.example"


async def total(api: Api) -> int:
    return (await api.call("GET", "/api/downloads"))["total"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:3000", "http://127.0.0.1:1",
                                    "chrome-extension-evil://x", "http://chrome-extension.example"])
async def test_cross_origin_requests_off_the_allow_list_are_refused(api: Api, origin: str) -> None:
    body = {"tasks": [TASK], "startDownload": False}
    await api.fail("POST", "/api/downloads", 403, 40301, json=body, headers={"Origin": origin})
    await api.fail("GET", "/api/downloads", 403, 40301, headers={"Origin": origin})
    await api.fail("DELETE", "/api/downloads/1", 403, 40301, headers={"Origin": origin})
    await api.fail("GET", "/api/events", 403, 40301, headers={"Origin": origin})  # EventSource
    assert await total(api) == 0


@pytest.mark.parametrize("origin", ["chrome-extension://abcdefghijklmnopabcdefghijklmnop", "moz-extension://0f1e2d3c-4b5a",
                                    "safari-web-extension://ABCD-1234"])
async def test_browser_extensions_are_the_users_own_software(make_api: ApiFactory, origin: str) -> None:
    """Extensions (MediaGo's, Downie's) are allowed by default, preflight included; a setting turns that off."""
    api = await make_api()
    body = {"tasks": [TASK], "startDownload": False}
    headers = {"Origin": origin, "Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    response = await api.client.post("/api/downloads", json=body, headers=headers)
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == origin
    preflight = await api.client.options("/api/downloads", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204 and "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    assert await total(api) == 1
    # An extension's GETs carry no Origin, only Sec-Fetch-Site: none (checked in Chromium: tests/clients).
    get_headers = {k: v for k, v in headers.items() if k != "Origin"}
    assert (await api.client.get("/api/downloads", headers=get_headers)).status_code == 200
    strict = await make_api(allow_extensions=False)
    await strict.fail("POST", "/api/downloads", 403, 40301, json=body, headers=headers)
    await strict.fail("GET", "/api/downloads", 403, 40301, headers=get_headers)
    await strict.fail("GET", "/api/events", 403, 40301, headers=get_headers)
    typed = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert (await strict.client.get("/api/downloads", headers=typed)).status_code == 200  # a person typed it
    assert await total(strict) == 0


async def test_allowed_and_same_origin_pages_still_work(make_api: ApiFactory) -> None:
    api = await make_api(cors_origins=["chrome-extension://*", "http://allowed.example"])
    body = {"tasks": [TASK], "startDownload": False}
    for origin in ("http://allowed.example", "chrome-extension://abcdef", api.url):  # api.url: its own /api/docs
        response = await api.client.post("/api/downloads", json=body, headers={"Origin": origin})
        assert response.status_code == 200, (origin, response.text)
    assert await total(api) == 3
    await api.fail("POST", "/api/downloads", 403, 40301, json=body, headers={"Origin": "http://allowed.example.evil"})


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", b'{"tasks": [{"type": "direct", "url": "http://example.invalid/a.bin"}]}'),
        ("text/plain;charset=UTF-8", b'{"tasks": [{"type": "direct", "url": "http://example.invalid/a.bin"}]}'),
        ("application/x-www-form-urlencoded", b"tasks=x"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n{}\r\n--x--\r\n"),
        (None, b'{"tasks": [{"type": "direct", "url": "http://example.invalid/a.bin"}]}'),  # a Blob body
    ],
)
async def test_no_preflight_bodies_are_refused(api: Api, content_type: str | None, content: bytes) -> None:
    """What a page can POST without a CORS preflight never reaches a route: from another site the
    Origin (or Sec-Fetch-Site) gives it away (403); from an allowed origin it still must be JSON (415)."""
    headers = {"Content-Type": content_type} if content_type else {}
    await api.fail("POST", "/api/downloads", 403, 40301, content=content, headers={**headers, "Origin": EVIL})
    await api.fail("POST", "/api/downloads", 403, 40301, content=content,
                   headers={**headers, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"})
    own = {**headers, "Origin": api.url, "Sec-Fetch-Site": "same-origin"}
    body = await api.fail("POST", "/api/downloads", 415, 41500, content=content, headers=own)
    assert "application/json" in body["message"]
    await api.fail("POST", "/api/downloads/1/start", 415, 41500, content=b"{}",
                   headers={"Content-Type": "text/plain", "Origin": "chrome-extension://abc", "Sec-Fetch-Site": "none"})
    assert await total(api) == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_bodies_from_no_browser_are_json_whatever_their_type(api: Api, content_type: str | None) -> None:
    """curl -d and requests.post(data=...) send form encoding; the real servers parse the body as JSON."""
    headers = {"Content-Type": content_type} if content_type else {}
    data = b'{"tasks": [{"type": "direct", "url": "http://example.invalid/a.bin"}]}'
    response = await api.client.post("/api/downloads", content=data, headers=headers)
    assert response.status_code == 200, response.text
    await api.fail("POST", "/api/downloads", 400, 40001, content=b"tasks=x", headers=headers)
    assert await total(api) == 1


async def test_json_content_types_are_accepted(api: Api) -> None:
    data = b'{"tasks": [{"type": "direct", "url": "http://example.invalid/a.bin"}], "startDownload": false}'
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON",
                         "application/vnd.api+json"):
        response = await api.client.post("/api/downloads", content=data, headers={"Content-Type": content_type})
        assert response.status_code == 200, (content_type, response.text)
    # No body: no Content-Type needed (curl -X POST .../stop).
    assert (await api.client.post("/api/downloads/1/stop")).status_code == 200


async def test_cross_site_requests_without_origin_are_refused(api: Api) -> None:
    """<img src>, <script src>, <link>: no Origin, but Sec-Fetch-Site gives them away."""
    for site in ("cross-site", "same-site"):
        await api.fail("GET", "/api/downloads", 403, 40301,
                       headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"})
        await api.fail("POST", "/api/downloads/1/stop", 403, 40301, headers={"Sec-Fetch-Site": site})
    # A person following a link to the docs, or typing the URL, is fine.
    navigate = await api.client.get("/api/docs", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert navigate.status_code == 200
    typed = await api.client.get("/api/downloads", headers={"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"})
    assert typed.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:39719", "127.0.0.1.evil.example", "[::ffff:1.2.3.4]"])
async def test_dns_rebinding_host_is_refused(api: Api, host: str) -> None:
    """The page's own origin (same host:port as Host) must not pass when the Host itself is foreign."""
    headers = {"Host": host, "Origin": f"http://{host}"}
    await api.fail("POST", "/api/downloads", 403, 40300, json={"tasks": [TASK]}, headers=headers)
    await api.fail("GET", "/api/downloads", 403, 40300, headers={"Host": host})
    assert await total(api) == 0


async def test_rebinding_against_a_token_server_still_needs_the_token(make_api: ApiFactory) -> None:
    api = await make_api(token="s3cret-token")
    headers = {"Host": "evil.example:1", "Origin": "http://evil.example:1"}
    await api.fail("POST", "/api/downloads", 401, 40100, json={"tasks": [TASK]}, headers=headers)


async def test_folders_and_local_paths_outside_the_roots_are_refused(api: Api, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = api.download_dir / "link"
    api.download_dir.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    for folder in ("/etc", str(outside), str(link / "x"), str(api.download_dir / ".." / "outside"), "/"):
        await api.fail("POST", "/api/downloads", 400, 40006, json={"tasks": [{**TASK, "folder": folder}]})
    for folder in ("/tmp/a\u0000b", "/" + "\u0000" * 3):  # was a 500 (ValueError from Path.resolve)
        response = await api.client.post("/api/downloads", json={"tasks": [{**TASK, "folder": folder}]})
        assert response.status_code == 400, response.text
    (task,) = await api.create(TASK)
    for folder in ("/etc", str(outside), str(link)):
        await api.fail("POST", f"/api/downloads/{task['id']}/start", 400, 40006, json={"localPath": folder})
        await api.fail("PUT", f"/api/downloads/{task['id']}", 400, 40006, json={"folder": folder})
    # Relative folders are sanitized into the download dir, never out of it.
    (rel,) = await api.create({**TASK, "folder": "../../etc/../.."})
    assert ".." not in rel["folder"]
    assert not list(outside.iterdir())


async def test_an_extra_allowed_root_is_honoured(make_api: ApiFactory, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    api = await make_api()
    api.engine.allowed_roots = (extra.resolve(),)
    (task,) = await api.create({**TASK, "folder": str(extra / "sub")})
    assert task["folder"] == str((extra / "sub").resolve())


# ---- WebSockets (CORS does not protect them) -------------------------------------------------


def websocket_paths(api: Api) -> list[str]:
    return [rule.rule for rule in api.handle.app.url_map.iter_rules() if getattr(rule, "websocket", False)]


async def ws_handshake(port: int, path: str, headers: dict[str, str]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return int(head.split(b" ", 2)[1])


async def test_cross_site_websockets_are_refused(make_api: ApiFactory) -> None:
    api = await make_api()
    paths = websocket_paths(api)
    if not paths:
        pytest.skip("no WebSocket route is registered (the Downie dialect adds /api/downloads/ws)")
    path = paths[0]
    assert await ws_handshake(api.handle.port, path, {"Origin": EVIL}) == 403
    assert await ws_handshake(api.handle.port, path, {"Host": "evil.example"}) in (400, 403)
    assert await ws_handshake(api.handle.port, path, {}) == 101
    secured = await make_api(token="ws-token-123")
    assert await ws_handshake(secured.handle.port, path, {}) == 401
    assert await ws_handshake(secured.handle.port, f"{path}?token=ws-token-123", {}) == 101


