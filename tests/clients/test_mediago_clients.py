"""MediaGo's real clients against a real fetchdeck on its main listener.

Each test replays what one client sends (caorushizi/mediago: the browser extension's
background/mediago-client.ts and sniffer.ts, the SDK packages/core-sdk, the web UI's
apps/ui/src/api, the AI skill skills/mediago/SKILL.md) with the headers a browser adds, and
reads the answer the way that client does. The SDK itself is installed from npm and driven
by node (tests/clients/node/mediago_sdk.mjs).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import Api, ApiFactory, SseReader
from tests.support import node_clients
from tests.support.fileserver import FileServer, random_bytes

EXTENSION = "chrome-extension://jdlfkhcobcmmfngmoaknkljmddikkpmd"
# What Chrome adds to a fetch() from an extension's service worker with host permissions.
WORKER_FETCH = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty",
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"}
# sniffer.ts formatHeaders: every header Chrome saw on the media request, as a JSON object string.
SNIFFED = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Referer": "https://video.example/watch/42",
    "Accept": "*/*",
    "Accept-Encoding": "identity;q=1, *;q=0",
    "Range": "bytes=0-",
    "sec-ch-ua": '"Chromium";v="131", "Not_A Brand";v="24"',
    "sec-ch-ua-platform": '"Linux"',
}


def received(files: FileServer, path: str) -> list[dict[str, str]]:
    """The request headers the origin server got for path, names lower-cased."""
    return [{k.lower(): v for k, v in h.items()} for h in files.stats.get(path).headers]


async def wait_task(api: Api, task_id: int, status: str, timeout: float = 30) -> dict[str, Any]:
    return await api.wait_status(task_id, status, timeout=timeout)


# ---------------------------------------------------------------- the browser extension


async def test_extension_probe_and_import_with_sniffed_headers(make_api: ApiFactory, files: FileServer) -> None:
    """mediago-client.ts probeHttp + importViaHttp in desktop-http mode (no key), from the extension's origin."""
    api = await make_api()
    data = random_bytes(3_000_000, seed=21)
    media = files.add("/media/clip.mp4", data, content_type="video/mp4")
    probe = await api.client.get("/healthy", headers={"Accept": "application/json", **WORKER_FETCH})
    assert 200 <= probe.status_code < 300  # the badge reads res.ok only
    body = {"tasks": [{"name": "Clip title from the tab", "url": media, "type": "direct",
                       "headers": json.dumps(SNIFFED), "folder": ""}], "startDownload": True}
    response = await api.client.post("/api/downloads", content=json.dumps(body), headers={
        "Content-Type": "application/json", "Accept": "application/json", "Origin": EXTENSION, **WORKER_FETCH})
    assert 200 <= response.status_code < 300, response.text  # importViaHttp: res.ok only
    assert response.headers["access-control-allow-origin"] == EXTENSION
    (task,) = response.json()["data"]
    done = await wait_task(api, task["id"], "success")
    assert Path(done["file"]).read_bytes() == data and done["exists"] is True
    seen = received(files, "/media/clip.mp4")
    assert seen and all(h["user-agent"] == SNIFFED["User-Agent"] and h["referer"] == SNIFFED["Referer"]
                        and h["sec-ch-ua"] == SNIFFED["sec-ch-ua"] for h in seen)
    # The page's Range and Accept-Encoding were the browser's; the downloader sends its own.
    assert all(h.get("range") != "bytes=0-" and h.get("accept-encoding") == "identity" for h in seen), seen
    stored = await api.task(task["id"])
    assert "User-Agent: Mozilla" in stored["headers"] and "Range" not in stored["headers"]


async def test_extension_docker_mode_sends_its_key(make_api: ApiFactory, files: FileServer) -> None:
    """docker-http mode: the extension adds X-API-Key (probe and import); without it a token server says 401."""
    api = await make_api(token="k3y-from-settings")
    media = files.add("/a.mp4", b"x" * 1000)
    headers = {"Accept": "application/json", "Origin": EXTENSION, **WORKER_FETCH}
    assert (await api.client.get("/healthy", headers=headers)).status_code == 200  # no key needed for health
    body = {"tasks": [{"name": "a", "url": media, "type": "direct", "folder": ""}], "startDownload": False}
    refused = await api.client.post("/api/downloads", json=body, headers=headers)
    assert refused.status_code == 401 and refused.json()["message"]  # the extension shows res.json().message
    accepted = await api.client.post("/api/downloads", json=body, headers={**headers, "X-API-Key": "k3y-from-settings"})
    assert accepted.status_code == 200, accepted.text


# ---------------------------------------------------------------- the SDK, from npm


async def test_the_published_sdk_makes_every_call(make_api: ApiFactory, files: FileServer) -> None:
    """@mediago/core-sdk 0.0.4: health, createTask (headers as a JSON array), getTask, listTasks,
    getTaskLogs, stopTask, updateConfig, streamEvents; errors as it rejects them."""
    api = await make_api()
    data = random_bytes(500_000, seed=22)
    fast = files.add("/sdk.bin", data)
    slow = files.add("/slow.bin", random_bytes(4_000_000, seed=23))
    files.faults.throttle("/slow.bin", 100_000)
    out = await asyncio.to_thread(node_clients.run_script, "mediago_sdk.mjs", api.url, fast, slow)
    assert "error" not in out, out
    calls = out["calls"]
    assert calls["health"]["success"] is True and calls["health"]["data"] == {"status": "ok"}
    created = calls["createTask"]["data"]
    assert created["message"] == "Task enqueued successfully" and created["status"] in ("pending", "downloading")
    task_id = created["id"]
    assert task_id.isdigit()
    done = calls["getTask"]["data"]
    assert done["id"] == task_id and done["status"] == "success" and done["percent"] == 100
    assert done["name"] == "sdk-file.bin" and done["type"] == "direct" and isinstance(done["isLive"], bool)
    listed = calls["listTasks"]["data"]
    assert listed["total"] == len(listed["tasks"]) and task_id in {t["id"] for t in listed["tasks"]}
    assert calls["getTaskLogs"]["data"]["id"] == task_id and calls["getTaskLogs"]["data"]["log"]
    assert calls["getSlowRunning"]["data"]["status"] == "downloading"
    assert 0 < calls["getSlowRunning"]["data"]["percent"] < 100
    assert calls["getSlowRunning"]["data"]["speed"].endswith("/s")
    assert calls["stopTask"]["data"] == {"message": "Task stopped"}
    assert calls["getSlowStopped"]["data"]["status"] == "stopped"
    assert calls["updateConfig"]["success"] is True and api.engine.scheduler.max_concurrent == 2
    assert calls["getMissing"] == {"thrown": "API request failed: task not found: '999999'"}
    names = [(e["event"], e["payload"]["id"]) for e in out["events"]]
    assert ("download-start", task_id) in names and ("download-success", task_id) in names
    assert ("download-stop", calls["createSlow"]["data"]["id"]) in names
    # The file, byte for byte, and the SDK's headers at the origin server.
    assert Path((await api.task(int(task_id)))["file"]).read_bytes() == data
    seen = received(files, "/sdk.bin")
    assert seen and all(h["x-sdk"] == "yes" and h["referer"] == "http://origin.example/page" for h in seen)


# ---------------------------------------------------------------- the web UI and Electron


async def test_web_ui_polls_progress_and_lists_with_its_local_path(make_api: ApiFactory, files: FileServer) -> None:
    """apps/ui: GET /api/config (local), GET /api/downloads?...&localPath=local, POST start with
    {localPath, deleteSegments}, and GET /api/tasks every second for percent/speed of downloading tasks."""
    api = await make_api(token="ui-key")
    api.client.headers["X-API-Key"] = "ui-key"  # for the test's own polling
    client = api.new_client(headers={"X-API-Key": "ui-key", "Accept": "application/json, text/plain, */*"})
    config = (await client.get("/api/config")).json()["data"]
    local = config["local"]
    assert local == str(api.download_dir) and "apiKey" not in config and "passwordHash" not in config
    slow_data = random_bytes(3_000_000, seed=24)
    files.add("/ui-slow.bin", slow_data)
    files.faults.throttle("/ui-slow.bin", 150_000)
    created = (await client.post("/api/downloads", json={"tasks": [
        {"type": "direct", "url": files.url("/ui-slow.bin"), "name": "ui-slow.bin", "folder": "sub1",
         "headers": "Origin: http://a.example\nReferer: http://a.example/"}], "startDownload": False})).json()["data"]
    task_id = created[0]["id"]
    started = await client.post(f"/api/downloads/{task_id}/start", json={"localPath": local, "deleteSegments": True})
    assert started.json()["success"] is True
    progress: dict[str, Any] = {}
    for _ in range(600):  # the UI's 1 s poll, faster
        tasks = (await client.get("/api/tasks")).json()["data"]["tasks"]
        row = next((t for t in tasks if t["id"] == str(task_id)), None)
        if row and row["status"] == "downloading" and 0 < row["percent"] < 100:
            progress = row
            break
        await asyncio.sleep(0.05)
    assert progress, "no downloading row with 0 < percent < 100 in GET /api/tasks"
    assert isinstance(progress["percent"], float | int) and progress["speed"].endswith("/s")
    files.faults.throttle("/ui-slow.bin", None)
    done = await wait_task(api, task_id, "success")
    assert Path(done["file"]).parent == api.download_dir / "sub1"  # localPath is the root; the folder stays
    assert Path(done["file"]).read_bytes() == slow_data
    listed = (await client.get("/api/downloads", params={
        "current": 1, "pageSize": 50, "filter": "done", "localPath": local})).json()["data"]
    assert listed["total"] == 1 and listed["list"][0]["exists"] is True
    # A root the files were moved to: found there, and `file` says where.
    moved = api.tmp / "moved"
    (moved / "sub1").mkdir(parents=True)
    Path(done["file"]).rename(moved / "sub1" / "ui-slow.bin")
    api.engine.allowed_roots = (moved.resolve(),)
    listed = (await client.get("/api/downloads", params={"filter": "done", "localPath": str(moved)})).json()["data"]
    assert listed["list"][0]["exists"] is True and listed["list"][0]["file"] == str(moved / "sub1" / "ui-slow.bin")
    gone = (await client.get("/api/downloads", params={"filter": "done", "localPath": local})).json()["data"]
    assert gone["list"][0]["exists"] is False


async def test_start_with_another_local_path_keeps_the_task_folder(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api()
    other = api.tmp / "other-root"
    other.mkdir()
    api.engine.allowed_roots = (other.resolve(),)
    url = files.add("/f.bin", b"y" * 5000)
    (task,) = await api.create({"type": "direct", "url": url, "folder": "sub1"})
    await api.call("POST", f"/api/downloads/{task['id']}/start", json={"localPath": str(other), "deleteSegments": True})
    done = await wait_task(api, task["id"], "success")
    assert Path(done["file"]) == other.resolve() / "sub1" / "f.bin"
    await api.fail("POST", f"/api/downloads/{task['id']}/start", 400, 40006, json={"localPath": "/etc"})


# ---------------------------------------------------------------- the AI skill (curl)


async def test_skill_flow(make_api: ApiFactory, files: FileServer) -> None:
    """SKILL.md: /healthy, /api/config (local), POST /api/downloads with X-API-Key, poll GET /api/downloads/ID."""
    api = await make_api(token="skill-key")
    data = random_bytes(200_000, seed=25)
    url = files.add("/skill/video.mp4", data)
    curl_headers = {"User-Agent": "curl/8.5.0", "Accept": "*/*", "X-API-Key": "skill-key"}
    async with httpx.AsyncClient(base_url=api.url, trust_env=False, headers=curl_headers) as curl:
        assert (await curl.get("/healthy")).json()["success"] is True
        assert (await curl.get("/api/config")).json()["data"]["local"] == str(api.download_dir)
        created = (await curl.post("/api/downloads", json={"tasks": [{"type": "direct", "url": url}],
                                                            "startDownload": True})).json()
        task_id = created["data"][0]["id"]
        for _ in range(400):
            task = (await curl.get(f"/api/downloads/{task_id}")).json()["data"]
            if task["status"] in ("success", "failed"):
                break
            await asyncio.sleep(0.05)
        assert task["status"] == "success" and task["exists"] is True
        assert Path(task["file"]).read_bytes() == data
        assert (await curl.get("/api/downloads", params={"current": 1, "pageSize": 20})).json()["data"]["total"] == 1
        assert (await curl.get("/api/config", headers={"X-API-Key": "wrong"})).status_code == 401


# ---------------------------------------------------------------- shapes every client relies on


async def test_three_header_shapes_reach_the_server(api: Api, files: FileServer) -> None:
    shapes = {
        "object": json.dumps({"X-Shape": "object", "Referer": "http://r.example/"}),  # the extension
        "array": json.dumps(["X-Shape: array", "Referer: http://r.example/"]),  # MediaGo core's storage
        "lines": "X-Shape:lines\nReferer: http://r.example/",  # the UI's form, the in-app sniffer
    }
    tasks = []
    for shape, headers in shapes.items():
        url = files.add(f"/{shape}.bin", shape.encode() * 100)
        tasks.append((shape, (await api.create({"type": "direct", "url": url, "headers": headers}, start=True))[0]))
    for shape, task in tasks:
        await wait_task(api, task["id"], "success")
        seen = received(files, f"/{shape}.bin")
        assert seen and all(h["x-shape"] == shape and h["referer"] == "http://r.example/" for h in seen), seen
    await api.fail("POST", "/api/downloads", 400, 40005, json={"tasks": [{"url": files.url("/x"), "headers": "{bad"}]})
    await api.fail("POST", "/api/downloads", 400, 40005,
                   json={"tasks": [{"url": files.url("/x"), "headers": json.dumps({"X": {"nested": 1}})}]})


async def test_bulk_status_takes_every_word(api: Api, files: FileServer) -> None:
    """waiting/pending/downloading start, stopped/ready stop, failed marks failed, success marks a complete file."""
    api.engine.scheduler.max_concurrent = 0
    a, b = await api.create({"type": "direct", "url": files.url("/a")}, {"type": "direct", "url": files.url("/b")})
    ids = [a["id"], b["id"]]
    for word, status in (("pending", "waiting"), ("ready", "stopped"), ("downloading", "waiting"),
                         ("stopped", "stopped"), ("waiting", "waiting")):
        out = await api.call("PUT", "/api/downloads/status", json={"ids": ids, "status": word})
        assert [t["status"] for t in out] == [status, status], word
    failed = await api.call("PUT", "/api/downloads/status", json={"ids": [a["id"]], "status": "failed"})
    assert failed[0]["status"] == "failed" and failed[0]["error"] == "marked as failed by a client"
    await api.fail("PUT", "/api/downloads/status", 409, 40900, json={"ids": [a["id"]], "status": "success"})
    api.engine.scheduler.max_concurrent = 3
    url = files.add("/whole.bin", b"z" * 3000)
    (c,) = await api.create({"type": "direct", "url": url}, start=True)
    done = await wait_task(api, c["id"], "success")
    await api.call("POST", f"/api/downloads/{c['id']}/start")
    await wait_task(api, c["id"], "success")
    assert Path(done["file"]).exists()
    again = await api.call("PUT", "/api/downloads/status", json={"ids": [c["id"]], "status": "success"})
    assert again[0]["status"] == "success"
    await api.fail("PUT", "/api/downloads/status", 409, 40900, json={"ids": [c["id"]], "status": "failed"})
    await api.fail("PUT", "/api/downloads/status", 400, 40007, json={"ids": [c["id"]], "status": "paused"})


async def test_config_reads_writes_and_config_changed_events(api: Api) -> None:
    async with api.client.stream("GET", "/api/events") as response:
        sse = SseReader(response)
        await sse.next()  # ready
        config = await api.call("GET", "/api/config")
        assert config["local"] == str(api.download_dir) and config["maxRunner"] == 3
        assert await api.call("GET", "/api/config/local") == str(api.download_dir)
        assert await api.call("GET", "/api/config/noSuchKey") is None
        assert (await api.call("PUT", "/api/config/maxRunner", json={"value": 2}))["message"]
        assert api.engine.scheduler.max_concurrent == 2
        event = (await sse.until(lambda e: e.event == "config-changed"))[-1]
        assert event.data == {"key": "maxRunner", "value": 2}
        await api.call("POST", "/api/config", json={"isMobile": True, "theme": "dark"})
        events = await sse.until(lambda e: e.event == "config-changed" and e.data["key"] == "theme")
        changed = [e.data for e in events if e.event == "config-changed"]
        assert changed == [{"key": "isMobile", "value": True}, {"key": "theme", "value": "dark"}]
        assert (await api.call("GET", "/api/config"))["theme"] == "dark"
        # The TUI's settings screen changes the same engine: the event reaches MediaGo clients too.
        api.engine.set_max_concurrent(4)
        event = (await sse.until(lambda e: e.event == "config-changed"))[-1]
        assert event.data == {"key": "maxRunner", "value": 4}
    await api.fail("PUT", "/api/config/local", 400, 40002, json={"value": "/tmp"})
    await api.fail("PUT", "/api/config/maxRunner", 400, 40002, json={"value": 0})
    await api.fail("PUT", "/api/config/maxRunner", 400, 40002, json={"value": 65})  # the config model's range
    await api.fail("PUT", "/api/config/maxRunner", 400, 40002, json={"value": "4"})
    await api.fail("POST", "/api/config", 400, 40002, json={"theme": "x", "apiKey": "steal"})
    assert (await api.call("GET", "/api/config"))["theme"] == "dark"  # nothing of a refused patch applied


async def test_queue_api_errors_are_envelopes(api: Api) -> None:
    await api.fail("GET", "/api/tasks/42", 404, 40401)
    await api.fail("POST", "/api/tasks/42/stop", 404, 40401)
    await api.fail("POST", "/api/tasks", 400, 40004, json={"type": "direct", "url": "ftp://x/a", "name": "a"})
    await api.fail("POST", "/api/tasks", 400, 40005, json={"type": "direct", "url": "http://x.invalid/a",
                                                            "name": "a", "headers": ["no colon"]})
    await api.fail("POST", "/api/tasks", 400, 40003, json={"type": "torrent", "url": "http://x.invalid/a"})


async def test_a_client_chosen_id_finds_its_task(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0
    made = await api.call("POST", "/api/tasks", json={"id": "my-uuid-1", "type": "direct",
                                                       "url": "http://x.invalid/a", "name": "a"})
    assert made["id"] == "my-uuid-1" and made["status"] == "pending"
    task = await api.call("GET", "/api/tasks/my-uuid-1")
    assert task["name"] == "a" and task["status"] == "pending"
    assert (await api.call("POST", "/api/tasks/my-uuid-1/stop")) == {"message": "Task stopped"}
    # An id that looks like the engine's is not kept: the answer names the task's real id.
    other = await api.call("POST", "/api/tasks", json={"id": "77", "type": "direct", "url": "http://x.invalid/b"})
    assert other["id"] != "77" and (await api.call("GET", f"/api/tasks/{other['id']}"))["url"] == "http://x.invalid/b"


async def test_a_foreign_page_still_reaches_nothing(api: Api) -> None:
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    for method, path, body in (("GET", "/healthy", None), ("GET", "/api/tasks", None), ("GET", "/api/config", None),
                               ("POST", "/api/tasks", {"type": "direct", "url": "http://x.invalid/a", "name": "a"}),
                               ("PUT", "/api/config/maxRunner", {"value": 9}), ("GET", "/api/events", None)):
        await api.fail(method, path, 403, 40301, headers=evil, **({"json": body} if body else {}))
    assert (await api.call("GET", "/api/downloads"))["total"] == 0 and api.engine.scheduler.max_concurrent == 3
