"""The real Downie Enhanced clients against a real fetchdeck Downie listener, request for request.

The requests are the bytes /tmp/specs/downie.md (§1.3, §2.2) captured from Chromium running the
real clients (ychenfen/downie-enhanced at c49c413): its browser extension's service worker
(background.js, popup.js) and the SimpleApp page on http://localhost:3000. Only the port differs
(the clients say localhost:8000). Each answer is read the way that client reads it: the extension
looks at `response.ok` and `result.task_id`, its popup at `formats.length`, `title`, `url` and
`duration`; SimpleApp shows any JSON and calls it an error only when it has an `error` key; the
WebSocket clients (check_status.py, hooks/useDownload.ts) take `initial`, `pong`, `progress`.

The server has a token (`make_api(token="secret")`), and the Downie listener beside it is
`token = false` (`--listen downie=127.0.0.1:8000,token=false`), as a user of these clients runs it.
Downloads are real: yt-dlp's generic extractor fetching tiny media from a FileServer on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.api.compat_support import Ws, wait_for
from tests.api.conftest import Api, ApiFactory
from tests.support.fileserver import FileServer
from tests.support.media_fixtures import MediaSet, get_media, probe

EXTENSION = "chrome-extension://bfcdcmhgbgbogmlmnkfbmmbphbldmgnl"  # any extension id
SIMPLEAPP = "http://localhost:3000"
YOUTUBE_ADD = (b'{"url":"https://www.youtube.com/watch?v=dQw4w9WgXcQ","quality":"720p",'
               b'"post_processing":"audio","cookies":"a=b"}')


@pytest.fixture(scope="module")
def media() -> MediaSet:
    return get_media()


@pytest.fixture
def site(files: FileServer, media: MediaSet) -> FileServer:
    files.add_dir("/m", media.dir)
    return files


async def downie(make_api: ApiFactory, *, token_required: bool = False, **server: Any) -> Api:
    """A server with a token, and a Downie listener beside it (token = false unless told)."""
    main = await make_api(token="secret", **server)
    return await main.listener("downie", token_required=token_required)


# ---------------------------------------------------------------- raw HTTP/1.1, as the browser wrote it


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def ok(self) -> bool:  # fetch's response.ok
        return 200 <= self.status <= 299

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return json.loads(self.body)


async def send(api: Api, head: str, body: bytes = b"") -> Reply:
    """Send these exact bytes (head lines joined by CRLF, then body) and read one response."""
    port = api.handle.port
    raw = head.format(host=f"localhost:{port}").strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n" + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        lines = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "content-length" in headers:
            data = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        else:
            chunks = []
            while size := int((await reader.readline()).strip() or b"0", 16):
                chunks.append(await reader.readexactly(size + 2))
            data = b"".join(c[:-2] for c in chunks)
        return Reply(status, headers, data)
    finally:
        writer.close()


def extension_post(path: str, body: bytes) -> tuple[str, bytes]:
    """background.js: fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}, body})."""
    return (f"""POST {path} HTTP/1.1
Host: {{host}}
Content-Type: application/json
Content-Length: {len(body)}
Origin: {EXTENSION}
Sec-Fetch-Site: none
Sec-Fetch-Mode: cors
Sec-Fetch-Dest: empty""", body)


def extension_get(path: str) -> str:
    """background.js: fetch(url) from the service worker: no Origin, Sec-Fetch-Site: none."""
    return f"""GET {path} HTTP/1.1
Host: {{host}}
Accept: */*
Sec-Fetch-Site: none
Sec-Fetch-Mode: cors
Sec-Fetch-Dest: empty"""


def extension_start(task_id: str) -> str:
    """background.js: fetch(`${BASE}/downloads/start/${task_id}`, {method: 'POST'}): no body, no Content-Type."""
    return f"""POST /api/downloads/start/{task_id} HTTP/1.1
Host: {{host}}
Content-Length: 0
Origin: {EXTENSION}
Sec-Fetch-Site: none
Sec-Fetch-Mode: cors
Sec-Fetch-Dest: empty"""


def video_body(url: str, quality: str = "best", post: str = "none", cookies: str = "") -> bytes:
    """The extension's and SimpleApp's body: JSON.stringify({url, quality, post_processing, cookies})."""
    return json.dumps({"url": url, "quality": quality, "post_processing": post, "cookies": cookies},
                      separators=(",", ":")).encode()


def simpleapp_preflight(path: str, origin: str = SIMPLEAPP) -> str:
    return f"""OPTIONS {path} HTTP/1.1
Host: {{host}}
Origin: {origin}
Access-Control-Request-Method: POST
Access-Control-Request-Headers: content-type
Sec-Fetch-Mode: cors
Sec-Fetch-Site: same-site
Referer: {origin}/"""


def simpleapp_post(path: str, body: bytes, origin: str = SIMPLEAPP) -> tuple[str, bytes]:
    """SimpleApp.tsx: fetch('http://localhost:8000/api/downloads/...', {method: 'POST', headers:
    {'Content-Type': 'application/json'}, body}) from the page on localhost:3000."""
    return (f"""POST {path} HTTP/1.1
Host: {{host}}
Content-Type: application/json
Content-Length: {len(body)}
Origin: {origin}
Sec-Fetch-Mode: cors
Sec-Fetch-Site: same-site
Referer: {origin}/""", body)


def browser_allows(preflight: Reply, origin: str) -> bool:
    """What Chromium checks before it sends the POST (CORS: ok status, origin, method, header)."""
    allowed_headers = {h.strip().lower() for h in preflight.headers.get("access-control-allow-headers", "").split(",")}
    return (preflight.ok and preflight.headers.get("access-control-allow-origin") in (origin, "*")
            and "POST" in preflight.headers.get("access-control-allow-methods", "")
            and ("content-type" in allowed_headers or "*" in allowed_headers))


def page_can_read(reply: Reply, origin: str) -> bool:
    """A cross-origin page sees the response only when it carries Access-Control-Allow-Origin."""
    return reply.headers.get("access-control-allow-origin") in (origin, "*")


async def task(api: Api, task_id: str) -> dict[str, Any]:
    reply = await send(api, extension_get(f"/api/downloads/tasks/{task_id}"))
    assert reply.ok, reply
    return reply.json()  # type: ignore[no-any-return]


async def until(api: Api, task_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    """Poll GET /tasks/{id} as the real clients must (the real server never pushes the final status)."""
    async def check() -> dict[str, Any] | None:
        current = await task(api, task_id)
        assert current["status"] != "failed" or status == "failed", current
        return current if current["status"] == status else None

    return await wait_for(check, timeout)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- the browser extension


async def test_extension_health_add_start_extract_tasks(make_api: ApiFactory, site: FileServer,
                                                        media: MediaSet) -> None:
    api = await downie(make_api)
    # checkServerStatus(): GET /api/health → {online: response.ok, data}.
    health = await send(api, extension_get("/api/health"))
    assert health.ok and health.json()["status"] == "healthy"
    assert "access-control-allow-origin" not in health.headers  # no Origin: none needed (host permissions)

    # sendDownloadRequest() with the exact body Chromium sent (the context menu's download-audio on YouTube).
    head, body = extension_post("/api/downloads/add", YOUTUBE_ADD)
    assert len(body) == 112  # the captured Content-Length
    added = await send(api, head, body)
    assert added.ok, added
    result = added.json()
    assert isinstance(result["task_id"], str) and result["task_id"]
    assert result == {"task_id": result["task_id"], "message": "Download task created successfully",
                      "status": "created"}
    youtube = await task(api, result["task_id"])
    assert youtube["url"] == "https://www.youtube.com/watch?v=dQw4w9WgXcQ" and youtube["status"] == "pending"
    # Not started: this machine does not reach YouTube. The same two calls below download for real.
    assert (await send(api, f"""DELETE /api/downloads/tasks/{result['task_id']} HTTP/1.1
Host: {{host}}
Content-Length: 0""")).ok

    # The popup's "best" tile: add, then start/{task_id} with no body and no Content-Type.
    head, body = extension_post("/api/downloads/add", video_body(site.url("/m/v360.mp4")))
    added = await send(api, head, body)
    assert added.ok, added
    task_id = added.json()["task_id"]
    started = await send(api, extension_start(task_id))
    assert started.ok, started  # startResponse.ok is all the extension looks at
    assert started.json() == {"message": "Download started", "task_id": task_id}
    done = await until(api, task_id, "completed")
    assert Path(done["file_path"]).read_bytes() == media.bytes("v360.mp4")
    assert done["downloaded_bytes"] == done["total_bytes"] == len(media.bytes("v360.mp4"))

    # The popup's "audio" tile (quality best, post_processing audio) with the page's cookies.
    head, body = extension_post("/api/downloads/add", video_body(site.url("/m/v360.mp4"), post="audio",
                                                                 cookies="a=b; session=xyz"))
    audio_id = (await send(api, head, body)).json()["task_id"]
    assert (await send(api, extension_start(audio_id))).ok
    audio = await until(api, audio_id, "completed")
    assert [s.kind for s in probe(Path(audio["file_path"]))] == ["Audio"]
    sent_cookies = [h.get("Cookie", "") for h in site.stats.get("/m/v360.mp4").headers]
    assert any("session=xyz" in c for c in sent_cookies), sent_cookies

    # extractVideoInfo() (the popup's analyze, 500 ms after it opens): formats.length, title, url, duration.
    head, body = extension_post("/api/downloads/extract", video_body(site.url("/m/master.m3u8")))
    extracted = await send(api, head, body)
    assert extracted.ok, extracted
    info = extracted.json()
    assert len(info["formats"]) > 0 and info["title"] and info["url"] == site.url("/m/master.m3u8")
    assert info["duration"] == 3 and isinstance(info["duration"], int)

    # getDownloadHistory(): GET /api/downloads/tasks, an array.
    history = await send(api, extension_get("/api/downloads/tasks"))
    assert history.ok and [t["id"] for t in history.json()] == [audio_id, task_id]


async def test_extension_queues_past_the_concurrency_limit(make_api: ApiFactory, site: FileServer,
                                                           media: MediaSet) -> None:
    """The real server answers 400 to a fourth start (max 3 at once) and the extension gives up;
    fetchdeck queues it, and it runs when a slot frees."""
    api = await downie(make_api, max_concurrent=1)
    site.faults.throttle("/m/v720.mp4", len(media.bytes("v720.mp4")))  # about a second
    ids = []
    for name in ("v720.mp4", "v360.mp4"):
        head, body = extension_post("/api/downloads/add", video_body(site.url(f"/m/{name}")))
        ids.append((await send(api, head, body)).json()["task_id"])
        assert (await send(api, extension_start(ids[-1]))).ok  # the real server: 400 at its limit
    await until(api, ids[0], "downloading")
    assert (await task(api, ids[1]))["status"] == "pending"  # queued behind the first
    first = await until(api, ids[0], "completed")
    second = await until(api, ids[1], "completed")
    assert Path(first["file_path"]).read_bytes() == media.bytes("v720.mp4")
    assert Path(second["file_path"]).read_bytes() == media.bytes("v360.mp4")


# ---------------------------------------------------------------- SimpleApp (frontend/src/SimpleApp.tsx)


async def test_simpleapp_extract_and_add_from_an_allowed_page(make_api: ApiFactory, site: FileServer) -> None:
    api = await downie(make_api, cors_origins=[SIMPLEAPP])
    for path in ("/api/downloads/extract", "/api/downloads/add"):
        preflight = await send(api, simpleapp_preflight(path))
        assert browser_allows(preflight, SIMPLEAPP), preflight

    # handleExtract(): the result is shown as "✅ Result" unless the JSON has an `error` key.
    head, body = simpleapp_post("/api/downloads/extract", video_body(site.url("/m/page.html")))
    extracted = await send(api, head, body)
    assert extracted.ok and page_can_read(extracted, SIMPLEAPP), extracted
    info = extracted.json()
    assert "error" not in info and len(info["formats"]) == 2 and info["title"]

    # handleDownload(): add only; SimpleApp never calls /start, so the task stays pending.
    head, body = simpleapp_post("/api/downloads/add", video_body(site.url("/m/v360.mp4")))
    added = await send(api, head, body)
    assert added.ok and page_can_read(added, SIMPLEAPP), added
    result = added.json()
    assert "error" not in result and result["status"] == "created"
    assert (await task(api, result["task_id"]))["status"] == "pending"

    # A URL typed without a scheme: an error the page can read (the real server's 422 also has no
    # `error` key; its 500s carry no CORS header, so the page only sees a failed fetch there).
    head, body = simpleapp_post("/api/downloads/extract", video_body("youtube.com/watch?v=x"))
    refused = await send(api, head, body)
    assert not refused.ok and page_can_read(refused, SIMPLEAPP), refused
    assert "error" not in refused.json() and refused.json()["detail"]


async def test_simpleapp_refused_when_its_origin_is_not_listed(make_api: ApiFactory, site: FileServer) -> None:
    api = await downie(make_api)
    preflight = await send(api, simpleapp_preflight("/api/downloads/add"))
    assert not browser_allows(preflight, SIMPLEAPP), preflight  # Chromium stops here
    head, body = simpleapp_post("/api/downloads/add", video_body(site.url("/m/v360.mp4")))
    refused = await send(api, head, body)  # and had it sent the POST anyway
    assert refused.status == 403 and refused.json()["error_code"] == "FORBIDDEN", refused
    assert "localhost:3000" in refused.json()["detail"] and not page_can_read(refused, SIMPLEAPP)
    assert (await send(api, extension_get("/api/downloads/tasks"))).json() == []


async def test_a_foreign_page_is_refused_even_without_a_token(make_api: ApiFactory, site: FileServer) -> None:
    """token = false trusts the user's own clients (no Origin, extensions, listed pages), never any web page."""
    api = await downie(make_api, cors_origins=[SIMPLEAPP])
    evil = "http://evil.example"
    assert not browser_allows(await send(api, simpleapp_preflight("/api/downloads/add", evil)), evil)
    head, body = simpleapp_post("/api/downloads/add", video_body(site.url("/m/v360.mp4")), origin=evil)
    refused = await send(api, head, body)
    assert refused.status == 403 and refused.json()["error_code"] == "FORBIDDEN" and "detail" in refused.json()
    assert not page_can_read(refused, evil)
    # A <form> POST from another site carries no Origin the guard could trust either (text/plain, cross-site).
    form_body = video_body(site.url("/m/v360.mp4"))
    form = await send(api, f"""POST /api/downloads/add HTTP/1.1
Host: {{host}}
Content-Type: text/plain
Content-Length: {len(form_body)}
Sec-Fetch-Site: cross-site
Sec-Fetch-Mode: navigate""", form_body)
    assert form.status == 403, form
    # Nor can the page open the WebSocket (CORS does not cover WebSockets).
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await Ws.connect(f"{api.url}/api/downloads/ws", headers={"Origin": evil})
    assert caught.value.status == 403
    assert (await send(api, extension_get("/api/downloads/tasks"))).json() == []


async def test_with_token_required_the_listener_wants_the_token(make_api: ApiFactory) -> None:
    api = await downie(make_api, token_required=True)
    head, body = extension_post("/api/downloads/add", YOUTUBE_ADD)
    refused = await send(api, head, body)
    assert refused.status == 401 and refused.json()["error_code"] == "UNAUTHORIZED" and refused.json()["detail"]
    assert (await send(api, extension_get("/api/downloads/tasks"))).status == 401
    assert (await send(api, extension_get("/api/health"))).ok  # the extension's badge still works
    with_key = head.replace("Content-Type:", "X-API-Key: secret\nContent-Type:")
    assert (await send(api, with_key, body)).ok


# ---------------------------------------------------------------- the WebSocket (check_status.py, useDownload.ts)

PROGRESS_KEYS = {"status", "percentage", "downloaded_bytes", "total_bytes", "speed", "eta", "progress_text",
                 "speed_text"}
SIZE = r"\d+\.\d (?:B|KB|MB|GB|TB)"


def progress_of(task_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "progress" and m["task_id"] == task_id


async def test_websocket_initial_ping_progress_heartbeat(make_api: ApiFactory, site: FileServer,
                                                         media: MediaSet) -> None:
    main = await make_api(token="secret", heartbeat=0.5)
    api = await main.listener("downie", token_required=False)
    head, body = extension_post("/api/downloads/add", video_body(site.url("/m/v720.mp4")))
    earlier = (await send(api, head, body)).json()["task_id"]
    # check_status.py: connect, send the text '{"type": "ping"}', take the first frame as success.
    ws = await Ws.connect(f"ws://localhost:{api.handle.port}/api/downloads/ws")
    try:
        initial = await ws.recv()
        assert initial["type"] == "initial" and [t["id"] for t in initial["tasks"]] == [earlier]
        assert initial["tasks"][0]["status"] == "pending" and initial["tasks"][0]["started_at"] is None
        await ws.ws.send_str('{"type": "ping"}')
        assert (await ws.until(lambda m: m["type"] != "heartbeat"))[-1] == {"type": "pong"}
        await ws.ws.send_str("not json")  # ignored, as the real server does
        await ws.send({"type": "subscribe"})  # other types too

        # useDownload: progress frames merge into the task whose id is task_id.
        size = len(media.bytes("v720.mp4"))
        site.faults.throttle("/m/v720.mp4", max(size // 2, 50_000))  # about two seconds
        assert (await send(api, extension_start(earlier))).ok
        frames = await ws.until(lambda m: progress_of(earlier)(m) and m["progress"]["status"] == "completed", 20)
        moving = [m["progress"] for m in frames
                  if progress_of(earlier)(m) and m["progress"]["status"] == "downloading"
                  and 0 < m["progress"]["downloaded_bytes"] < size]
        assert moving, frames
        for progress in moving:
            assert set(progress) == PROGRESS_KEYS and "error_message" not in progress
            assert isinstance(progress["percentage"], float) and 0 < progress["percentage"] < 100
            assert isinstance(progress["downloaded_bytes"], int) and progress["total_bytes"] == size
            assert isinstance(progress["speed"], float) and isinstance(progress["eta"], int)
            assert re.fullmatch(rf"\d+\.\d% \({SIZE}/{SIZE}\)", progress["progress_text"]), progress
            assert re.fullmatch(rf"{SIZE}/s", progress["speed_text"]), progress
        done = await until(api, earlier, "completed")  # what a client of the real server must poll for
        assert Path(done["file_path"]).read_bytes() == media.bytes("v720.mp4")

        # The client says nothing for a while: heartbeats (every `heartbeat` seconds; 30 s in the real server).
        for _ in range(2):
            assert (await ws.until(lambda m: m["type"] == "heartbeat", 5))[-1] == {"type": "heartbeat"}
    finally:
        await ws.close()
