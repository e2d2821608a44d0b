"""m3u8dweb's pages' requests against fetchdeck's m3u8 listener (`--listen m3u8=...`).

The clients are the pages orestonce/m3u8dweb serves (templates/new-download.html,
templates/all-tasks.html): same-origin fetch() calls and a WebSocket to /ws/progress. Each
test sends what the page's JavaScript builds, with the headers Chromium adds to a
same-origin request, and reads the answer as the page does (response.ok; `data.status ===
'success'`; JSON frames with `id` and `status_bar`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.api.compat_support import CompatFactory, hls_vod
from tests.api.conftest import Api
from tests.support.fileserver import FileServer
from tests.support.hls_fixtures import probe, video_frames


async def m3u8_listener(make_compat: CompatFactory, **kwargs: Any) -> Api:
    return await (await make_compat(**kwargs)).listener("m3u8")


def page_headers(api: Api, page: str = "/") -> dict[str, str]:
    """What Chromium sends with a same-origin fetch() from one of the listener's pages."""
    return {"Origin": api.url, "Referer": api.url + page, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Dest": "empty", "Accept": "*/*"}


def serve_vod(files: FileServer, tmp: Path, prefix: str) -> str:
    folder = tmp / prefix.strip("/")
    shutil.copytree(hls_vod().parent, folder)
    return files.add_dir(prefix, folder) + "index.m3u8"


async def listed(api: Api, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """all-tasks.html fetchTasks(): fetch('/api/tasks') → response.json() → renderTasks(tasks)."""
    response = await api.client.get("/api/tasks", headers={k: v for k, v in (headers or {}).items()
                                                            if k not in ("Origin",)})
    assert response.status_code == 200
    tasks = response.json()
    assert isinstance(tasks, list)  # renderTasks(null) throws: never null
    for task in tasks:
        assert isinstance(task["size"], int) and isinstance(task["progress"], int | float)
        assert isinstance(task["status_bar"], str) and "'" not in task["id"]
    return tasks  # type: ignore[no-any-return]


async def until(api: Api, task_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = next((t for t in await listed(api) if t["id"] == task_id), None)
        assert task is not None
        if task["status"] == status:
            return task
        assert task["status"] != "失败", task
        assert time.monotonic() < deadline, f"{task_id} never {status}: {task}"
        await asyncio.sleep(0.05)


async def test_new_download_page_creates_with_and_without_advanced(
    make_compat: CompatFactory, files: FileServer, tmp_path: Path
) -> None:
    api = await m3u8_listener(make_compat)
    headers = {**page_headers(api, "/new-download"), "Content-Type": "application/json"}
    plain = serve_vod(files, tmp_path, "/plain")
    # Advanced off, one header from the list (sorted by key, one value each): the common case.
    body = {"url": plain, "filename": "plain", "advanced": False, "use_http_headers": True,
            "http_headers": {"Referer": ["https://ex.example/"], "User-Agent": ["Mozilla/5.0 m3u8dweb"]}}
    response = await api.client.post("/api/tasks", content=json.dumps(body), headers=headers)
    assert response.is_success, response.text  # the page checks response.ok only
    first = response.json()["id"]
    # Advanced on with the threads box cleared (parseInt('') → NaN → null), proxy "none", temp_directory.
    cleared = serve_vod(files, tmp_path, "/cleared")
    body = {"url": cleared, "filename": "cleared", "advanced": True, "use_http_headers": False,
            "save_location": "m3u8web", "temp_directory": "/tmp", "download_threads": None, "skip_ts_info": "",
            "keep_ts_files": False, "no_merge_ts": False, "log_skipped_ts": False, "allow_insecure_https": False,
            "proxy_type": "none", "proxy_host": "", "proxy_port": 0, "use_server_file_time": False,
            "debug_log": False}
    response = await api.client.post("/api/tasks", content=json.dumps(body), headers=headers)
    assert response.is_success, response.text
    second = response.json()["id"]
    for task_id in (first, second):
        done = await until(api, task_id, "已完成")
        saved = Path((await api.main.call("GET", f"/api/downloads/{task_id}"))["file"])  # type: ignore[union-attr]
        assert done["size"] == saved.stat().st_size and done["progress"] == 100
        assert video_frames(saved) == 40 and any("h264" in s for s in probe(saved).video)
    assert saved.parent == api.download_dir / "m3u8web"
    seen = files.stats.get("/plain/seg_000.ts").headers
    assert {k.lower(): v for k, v in seen[0].items()}["referer"] == "https://ex.example/"
    threads = next(t for t in await listed(api) if t["id"] == second)["advanced_settings"]["download_threads"]
    assert threads == api.engine.config.download.segment_threads  # null took the default


async def test_all_tasks_page_pauses_resumes_and_deletes_twice(
    make_compat: CompatFactory, files: FileServer, tmp_path: Path
) -> None:
    api = await m3u8_listener(make_compat)
    assert await listed(api) == []  # an empty list is [], never null (renderTasks(null) throws)
    url = serve_vod(files, tmp_path, "/slow")
    files.faults.throttle(None, 2000)
    created = await api.client.post("/api/tasks", json={"url": url, "filename": "slow", "advanced": False,
                                                        "use_http_headers": False})
    task_id = created.json()["id"]
    await until(api, task_id, "下载中")
    json_headers = {**page_headers(api), "Content-Type": "application/json"}

    async def put(status: str) -> None:
        response = await api.client.put(f"/api/tasks?id={task_id}", content=json.dumps({"status": status}),
                                        headers=json_headers)
        assert response.json()["status"] == "success"  # the page: data.status === 'success'

    await put("已暂停")
    await until(api, task_id, "已暂停")
    await put("已暂停")  # paused again: no change, success
    files.faults.throttle(None, None)
    await put("等待中")
    await put("等待中")  # the play button also shows on waiting tasks: no change, success
    await until(api, task_id, "已完成")
    for _ in range(2):  # confirm() → DELETE with no headers or body; a second one succeeds too
        response = await api.client.delete(f"/api/tasks?id={task_id}", headers=page_headers(api))
        assert response.json()["status"] == "success"
    assert await listed(api) == []


async def test_progress_websocket_as_the_page_reads_it(
    make_compat: CompatFactory, files: FileServer, tmp_path: Path
) -> None:
    """new WebSocket(`ws://${location.host}/ws/progress`): frames with id and status_bar while downloading,
    and a message at least every 5 s while idle (`{}`), which keeps the page's socket open."""
    api = await m3u8_listener(make_compat)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(api.url.replace("http://", "ws://") + "/ws/progress",
                                      headers={"Origin": api.url, "Sec-WebSocket-Version": "13"})
        started = time.monotonic()
        idle = await ws.receive(timeout=8)
        assert idle.type is aiohttp.WSMsgType.TEXT and json.loads(idle.data) == {}
        assert 4.5 <= time.monotonic() - started <= 7.5  # the 5 s keep-alive, not a flood
        url = serve_vod(files, tmp_path, "/ws")
        files.faults.throttle(None, 4000)  # ~4 s a segment: the page sees it move
        task_id = (await api.client.post("/api/tasks", json={"url": url, "filename": "ws"})).json()["id"]
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while not any(f.get("id") == task_id and f.get("progress") for f in frames):
            assert time.monotonic() < deadline, (frames[-5:], await listed(api))
            message = await ws.receive(timeout=20)
            assert message.type is aiohttp.WSMsgType.TEXT, message
            frames.append(json.loads(message.data))
        mine = [f for f in frames if f.get("id") == task_id]
        assert all(isinstance(f["status_bar"], str) and f["status_bar"] for f in mine)
        assert all(set(f) <= {"id", "status_bar", "progress"} for f in frames)
        await ws.close()


async def test_basic_auth_like_m3u8dwebs_login_prompt(make_compat: CompatFactory) -> None:
    """With a token, a 401 asks for Basic auth (the browser's login box); the browser then sends the
    user and password (the token) on every request, the WebSocket upgrade included."""
    api = await m3u8_listener(make_compat, token="m3u8-pass")
    refused = await api.client.get("/api/tasks")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="m3u8dweb"'
    assert refused.headers["content-type"].startswith("text/plain")
    basic = "Basic " + base64.b64encode(b"admin:m3u8-pass").decode()
    assert (await api.client.get("/api/tasks", headers={"Authorization": basic})).json() == []
    wrong = "Basic " + base64.b64encode(b"admin:nope").decode()
    assert (await api.client.get("/api/tasks", headers={"Authorization": wrong})).status_code == 401
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(api.url.replace("http://", "ws://") + "/ws/progress",
                                      headers={"Authorization": basic, "Origin": api.url})
        await ws.close()
        try:
            await session.ws_connect(api.url.replace("http://", "ws://") + "/ws/progress")
            raise AssertionError("the upgrade without credentials was accepted")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 401


async def test_a_foreign_page_cannot_use_the_m3u8_listener(make_compat: CompatFactory) -> None:
    api = await m3u8_listener(make_compat)
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    response = await api.client.post("/api/tasks", content=b'{"url":"http://x.invalid/a.m3u8","filename":"a"}',
                                     headers=evil)
    assert response.status_code == 403 and response.headers["content-type"].startswith("text/plain")
    assert (await api.client.get("/api/tasks", headers=evil)).status_code == 403
    assert await listed(api) == []
    # curl -d (form content type, no browser headers) is read as JSON, as Go's decoder does.
    made = await api.client.post("/api/tasks", content=b'{"url":"http://127.0.0.1:9/a.m3u8","filename":"a"}',
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert made.status_code == 200 and made.json()["status"] == "success"
