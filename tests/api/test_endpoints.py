"""Every endpoint of the MediaGo Download API, field by field, against the real server."""

from __future__ import annotations

import re
from pathlib import Path

from core.models import TaskStatus
from core.store import TaskPatch
from tests.api.conftest import Api, sha256
from tests.support.fileserver import FileServer, random_bytes

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TASK_FIELDS = {
    "id", "name", "type", "url", "folder", "headers", "isLive", "status", "file", "createdDate", "updatedDate",
    "downloaded", "total", "speed", "eta", "percent", "error", "exists",
    "note",  # why a running task waits (issue 12), null when it does not
    "node",  # the node running it when several share one queue (issue 13), null when none
    "kind",  # fetchdeck's own kind: http, hls, dash, ytdlp (issue 14: dash is an m3u8 type to MediaGo)
    "speedLimit",  # the task's own speed limit in bytes/s (issue 14), null when none
    "priority", "startAt",  # queue control (issue 14): high/normal/low, not started before (null: at once)
}


async def test_create_batch_returns_download_tasks(api: Api) -> None:
    tasks = await api.create(
        {"type": "m3u8", "url": "https://example.invalid/video.m3u8", "name": "My Video"},
        {"type": "direct", "url": "http://example.invalid/a.zip", "folder": "sub/dir",
         "headers": "User-Agent: test\nReferer: http://example.invalid/"},
        {"type": "youtube", "url": "https://www.youtube.com/watch?v=x"},
        {"type": "bilibili", "url": "https://www.bilibili.com/video/BV1"},
        {"type": "mediago", "url": "http://example.invalid/stream/index.m3u8"},
        {"url": "http://example.invalid/untyped.bin", "isLive": True},
        {"type": "http", "url": "http://example.invalid/b.bin"},
        {"type": "ytdlp", "url": "https://vimeo.com/1"},
        {"type": "hls", "url": "http://example.invalid/c.m3u8", "headers": ["X-A: 1", "X-B: 2"]},
    )
    assert all(set(t) == TASK_FIELDS for t in tasks)
    ids = [t["id"] for t in tasks]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [t["type"] for t in tasks] == [
        "m3u8", "direct", "youtube", "bilibili", "mediago", "direct", "direct", "youtube", "m3u8"
    ]
    first = tasks[0]
    assert first["name"] == "My Video" and first["url"] == "https://example.invalid/video.m3u8"
    assert first["status"] == "stopped" and first["isLive"] is False and first["file"] is None
    assert ISO.match(first["createdDate"]) and ISO.match(first["updatedDate"])
    assert first["downloaded"] == 0 and first["percent"] == 0 and first["total"] is None and first["error"] is None
    assert tasks[1]["folder"] == "sub/dir" and tasks[1]["name"] == "a.zip"
    assert tasks[1]["headers"] == "User-Agent: test\nReferer: http://example.invalid/"
    assert tasks[5]["isLive"] is True
    assert tasks[8]["headers"] == "X-A: 1\nX-B: 2"
    # What was stored is what GET returns.
    for created in tasks:
        assert await api.task(created["id"]) == created


async def test_start_download_true_queues_tasks(api: Api, files: FileServer) -> None:
    data = random_bytes(200_000, seed=1)
    url = files.add("/one.bin", data)
    (task,) = await api.create({"type": "direct", "url": url, "name": "one.bin"}, start=True)
    assert task["status"] in ("waiting", "downloading")
    done = await api.wait_status(task["id"], "success")
    assert done["percent"] == 100 and done["downloaded"] == len(data) == done["total"]
    assert Path(done["file"]).read_bytes() == data and Path(done["file"]).parent == api.download_dir


async def test_list_pagination_filter_and_local_path(api: Api) -> None:
    created = await api.create(*[{"type": "direct", "url": f"http://example.invalid/{i}.bin"} for i in range(25)])
    await api.create({"type": "direct", "url": "http://example.invalid/other.bin", "folder": "elsewhere"})
    page1 = await api.call("GET", "/api/downloads", params={"current": 1, "pageSize": 10})
    page3 = await api.call("GET", "/api/downloads", params={"current": 3, "pageSize": 10})
    assert page1["total"] == 26 and len(page1["list"]) == 10 and len(page3["list"]) == 6
    assert page1["list"][0]["url"].endswith("other.bin")  # newest first
    default = await api.call("GET", "/api/downloads")
    assert len(default["list"]) == 20  # pageSize defaults to 20
    beyond = await api.call("GET", "/api/downloads", params={"current": 9})
    assert beyond == {"total": 26, "list": []}
    # Filters: a status, MediaGo's list/done, and the save path.
    await api.engine.repo.update(created[0]["id"], TaskPatch(status=TaskStatus.SUCCESS))
    done = await api.call("GET", "/api/downloads", params={"filter": "success"})
    assert [t["id"] for t in done["list"]] == [created[0]["id"]]
    assert (await api.call("GET", "/api/downloads", params={"filter": "done"}))["total"] == 1
    assert (await api.call("GET", "/api/downloads", params={"filter": "list"}))["total"] == 25
    assert (await api.call("GET", "/api/downloads", params={"filter": "downloading"}))["total"] == 0
    assert (await api.call("GET", "/api/downloads", params={"filter": ""}))["total"] == 26
    # localPath is MediaGo's download root (where `exists`/`file` are looked for), not a filter:
    # tests/clients/test_mediago_clients.py checks what it finds.
    for local_path in (str(api.download_dir / "elsewhere"), str(api.download_dir), "/nowhere"):
        listed = await api.call("GET", "/api/downloads", params={"localPath": local_path, "pageSize": 100})
        assert listed["total"] == 26 and not any(t["exists"] for t in listed["list"])


async def test_active_folders_export(api: Api) -> None:
    tasks = await api.create(
        {"type": "direct", "url": "http://example.invalid/a.bin"},
        {"type": "direct", "url": "http://example.invalid/b.bin", "folder": "f1"},
        {"type": "direct", "url": "http://example.invalid/c.bin", "folder": "f1"},
    )
    assert await api.call("GET", "/api/downloads/active") == []
    api.engine.scheduler.max_concurrent = 0  # keep them waiting: nothing runs
    await api.call("PUT", "/api/downloads/status", json={"ids": [tasks[0]["id"]], "status": "waiting"})
    active = await api.call("GET", "/api/downloads/active")
    assert [t["id"] for t in active] == [tasks[0]["id"]] and active[0]["status"] == "waiting"
    folders = await api.call("GET", "/api/downloads/folders")
    assert folders == sorted([str(api.download_dir), str(api.download_dir / "f1")])
    response = await api.client.get("/api/downloads/export")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.text == "".join(f"{t['url']}\n" for t in tasks)
    filtered = await api.client.get("/api/downloads/export", params={"filter": "waiting"})
    assert filtered.text == f"{tasks[0]['url']}\n"


async def test_get_logs(api: Api, files: FileServer) -> None:
    url = files.add("/log.bin", random_bytes(50_000, seed=2))
    (task,) = await api.create({"type": "direct", "url": url}, start=True)
    await api.wait_status(task["id"], "success")
    logs = await api.call("GET", f"/api/downloads/{task['id']}/logs")
    assert logs["id"] == task["id"] and isinstance(logs["log"], str)
    lines = logs["log"].splitlines()
    assert any("start http download" in line for line in lines) and any("done:" in line for line in lines)
    assert all(ISO.match(line.split(" ", 1)[0]) for line in lines)
    (fresh,) = await api.create({"type": "direct", "url": url})
    assert await api.call("GET", f"/api/downloads/{fresh['id']}/logs") == {"id": fresh["id"], "log": ""}


async def test_edit_task(api: Api) -> None:
    (task,) = await api.create({"type": "direct", "url": "http://example.invalid/a.bin"})
    edited = await api.call("PUT", f"/api/downloads/{task['id']}", json={
        "name": "New name", "url": "https://example.invalid/new.bin", "headers": "X-Token: 1", "folder": "nf",
    })
    assert (edited["name"], edited["url"], edited["headers"], edited["folder"]) == (
        "New name", "https://example.invalid/new.bin", "X-Token: 1", "nf"
    )
    assert edited["updatedDate"] >= task["updatedDate"]
    same = await api.call("PUT", f"/api/downloads/{task['id']}", json={})
    assert same == edited
    live = await api.call("PUT", f"/api/downloads/{task['id']}/live", json={"isLive": True})
    assert live["isLive"] is True
    assert (await api.task(task["id"]))["isLive"] is True
    off = await api.call("PUT", f"/api/downloads/{task['id']}/live", json={"isLive": False})
    assert off["isLive"] is False


async def test_bulk_status_start_and_stop(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0  # nothing actually runs
    tasks = await api.create(*[{"type": "direct", "url": f"http://example.invalid/{i}"} for i in range(3)])
    ids = [t["id"] for t in tasks]
    started = await api.call("PUT", "/api/downloads/status", json={"ids": ids, "status": "waiting"})
    assert [t["status"] for t in started] == ["waiting"] * 3
    again = await api.call("PUT", "/api/downloads/status", json={"ids": ids[:1], "status": "downloading"})
    assert again[0]["status"] == "waiting"  # "downloading" means start; the scheduler decides when
    stopped = await api.call("PUT", "/api/downloads/status", json={"ids": [*ids, ids[0]], "status": "stopped"})
    assert [t["id"] for t in stopped] == ids and {t["status"] for t in stopped} == {"stopped"}


async def test_start_stop_delete(api: Api, files: FileServer) -> None:
    data = random_bytes(3_000_000, seed=3)
    url = files.add("/slow.bin", data)
    files.faults.throttle("/slow.bin", 1_000_000)
    (task,) = await api.create({"type": "direct", "url": url})
    started = await api.call("POST", f"/api/downloads/{task['id']}/start")
    assert started["id"] == task["id"] and started["status"] in ("waiting", "downloading")
    await api.wait_until(task["id"], lambda t: t["status"] == "downloading" and t["downloaded"] > 0)
    assert await api.call("POST", f"/api/downloads/{task['id']}/stop") == {}
    stopped = await api.wait_status(task["id"], "stopped")
    assert 0 < stopped["downloaded"] < len(data)
    assert await api.call("DELETE", f"/api/downloads/{task['id']}") == {}
    await api.fail("GET", f"/api/downloads/{task['id']}", 404, 40401)
    part = Path(stopped["file"] + ".part")
    assert not part.exists()  # temp files go with the task


async def test_start_with_local_path_and_delete_file(api: Api, files: FileServer) -> None:
    data = random_bytes(100_000, seed=4)
    url = files.add("/lp.bin", data)
    (task,) = await api.create({"type": "direct", "url": url})
    target = api.download_dir / "chosen"
    started = await api.call("POST", f"/api/downloads/{task['id']}/start",
                             json={"localPath": str(target), "deleteSegments": True})
    assert started["folder"] == str(target)
    done = await api.wait_status(task["id"], "success")
    saved = Path(done["file"])
    assert saved.parent == target and sha256(saved.read_bytes()) == sha256(data)
    assert str(target) in await api.call("GET", "/api/downloads/folders")
    await api.call("DELETE", f"/api/downloads/{task['id']}", params={"deleteFile": "true"})
    assert not saved.exists()


async def test_cors_and_docs(make_api) -> None:  # type: ignore[no-untyped-def]
    api: Api = await make_api(cors_origins=["chrome-extension://*", "http://allowed.example"])
    preflight = await api.client.options("/api/downloads", headers={
        "Origin": "chrome-extension://abc", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type", "Access-Control-Request-Private-Network": "true",
    })
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-private-network"] == "true"
    got = await api.client.get("/api/downloads", headers={"Origin": "http://allowed.example"})
    assert got.headers["access-control-allow-origin"] == "http://allowed.example"
    denied = await api.client.get("/api/downloads", headers={"Origin": "http://evil.example"})
    # Not on the allow-list: refused outright (server/guards.py), not just left without CORS headers.
    assert denied.status_code == 403 and denied.json()["code"] == 40301
    assert "access-control-allow-origin" not in denied.headers
    no_preflight = await api.client.options("/api/downloads", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in no_preflight.headers
    docs = await api.client.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await api.client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, methods in {
        "/api/downloads": {"get", "post"}, "/api/downloads/active": {"get"}, "/api/downloads/folders": {"get"},
        "/api/downloads/export": {"get"}, "/api/downloads/status": {"put"},
        "/api/downloads/{task_id}": {"get", "put", "delete"}, "/api/downloads/{task_id}/logs": {"get"},
        "/api/downloads/{task_id}/live": {"put"}, "/api/downloads/{task_id}/start": {"post"},
        "/api/downloads/{task_id}/stop": {"post"}, "/api/events": {"get"},
    }.items():
        assert methods <= set(paths[path]), path
    assert "text/event-stream" in paths["/api/events"]["get"]["responses"]["200"]["content"]


async def test_a_mediago_listener_serves_the_mediago_surface_only(api: Api) -> None:
    """--listen mediago=... (MediaGo's Docker port): the download API and core routes, no other dialect."""
    mediago = await api.listener("mediago")
    assert (await mediago.call("GET", "/healthy")) == {"status": "ok"}
    (task,) = await mediago.create({"type": "direct", "url": "http://example.invalid/m.bin"})
    assert (await api.task(task["id"]))["id"] == task["id"]  # the same engine
    await mediago.fail("GET", "/api/v1/tasks", 404, 40400)  # SaveAny's path: not here, in the envelope
    await mediago.fail("GET", "/api/downloads/tasks", 404, 40400)  # Downie's
