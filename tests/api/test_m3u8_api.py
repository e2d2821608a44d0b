"""The m3u8 task API (shared/seeds/m3u8-task-api.zh.txt) against the real server: /api/tasks and /ws/progress."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.api.compat_support import CompatFactory, Ws, hls_vod, make_compat, wait_for
from tests.api.conftest import Api
from tests.support.fileserver import FileServer
from tests.support.hls_fixtures import probe, segments_of, video_frames
from tests.support.proxies import HttpProxy

__all__ = ["make_compat"]


@pytest.fixture
def make_m3u8(make_compat: CompatFactory) -> CompatFactory:
    """The m3u8 dialect's own listener (what `--listen m3u8=...` serves), beside a main one (`api.main`)."""

    async def factory(**kwargs: Any) -> Api:
        return await (await make_compat(**kwargs)).listener("m3u8")

    return factory
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
OLD = 1_577_836_800  # 2020-01-01T00:00:00Z


def serve_vod(files: FileServer, tmp: Path, prefix: str = "/hls") -> str:
    folder = tmp / prefix.strip("/")
    shutil.copytree(hls_vod().parent, folder)
    for item in folder.iterdir():
        os.utime(item, (OLD, OLD))
    return files.add_dir(prefix, folder) + "index.m3u8"


def native(api: Api) -> Api:
    assert api.main is not None
    return api.main


async def tasks(api: Api) -> dict[str, dict]:  # type: ignore[type-arg]
    response = await api.client.get("/api/tasks")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return {t["id"]: t for t in response.json()}


async def until_status(api: Api, task_id: str, status: str, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    last: list[Any] = []

    async def check() -> dict | None:  # type: ignore[type-arg]
        task = (await tasks(api)).get(task_id)
        assert task is not None
        assert task["status"] != "失败" or status == "失败", task
        last[:] = [task]
        return task if task["status"] == status else None

    try:
        return await wait_for(check, timeout)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"task {task_id} never {status}: {last}") from exc


async def plain_error(api: Api, method: str, path: str, status: int, text: str | None = None, **kw) -> str:  # type: ignore[no-untyped-def]
    response = await api.client.request(method, path, **kw)
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    if text is not None:
        assert response.text.strip() == text or response.text.startswith(text), response.text
    return response.text


async def test_create_with_every_advanced_option_downloads_and_pushes_progress(
    make_m3u8: CompatFactory, files: FileServer, tmp_path: Path
) -> None:
    api = await make_m3u8()
    url = serve_vod(files, tmp_path)
    files.faults.throttle(None, 150_000)  # slow enough to watch progress at 10 Hz
    ws = await Ws.connect(f"{api.url}/ws/progress")
    try:
        with HttpProxy("u", "pw") as proxy:
            response = await api.client.post("/api/tasks", json={
                "url": url, "filename": "movie",
                "use_http_headers": True, "http_headers": {"X-Token": ["abc"], "X-Multi": ["1", "2"]},
                "advanced": True, "save_location": "m3u8/out", "download_threads": 2, "skip_ts_info": "2",
                "keep_ts_files": True, "no_merge_ts": False, "log_skipped_ts": True, "allow_insecure_https": True,
                "proxy_type": "http", "proxy_host": "127.0.0.1", "proxy_port": proxy.port,
                "proxy_username": "u", "proxy_password": "pw", "use_server_file_time": True, "debug_log": True,
            })
            assert response.status_code == 200, response.text
            created = response.json()
            assert created["status"] == "success" and isinstance(created["id"], str) and created["id"].isdigit()
            task_id = created["id"]
            pushed = await ws.until(lambda m: m.get("id") == task_id and m.get("progress", 0) > 0)
            done = await until_status(api, task_id, "已完成")
            assert proxy.relayed > 0  # every request went through the authenticated proxy
    finally:
        await ws.close()
    assert set(pushed[-1]) == {"id", "status_bar", "progress"} and pushed[-1]["status_bar"]
    assert done["filename"] == "movie" and done["progress"] == 100 and done["url"] == url
    assert done["status_bar"] == "下载完成" and done["err_msg"] == ""
    assert all(ISO.match(done[k]) for k in ("created_at", "updated_at", "completed_at"))
    assert done["header_map"] == {"X-Token": ["abc"], "X-Multi": ["1", "2"]}
    adv = done["advanced_settings"]
    assert adv["download_threads"] == 2 and adv["skip_ts_info"] == "2" and adv["keep_ts_files"] is True
    assert adv["proxy_host"] == "127.0.0.1" and adv["proxy_port"] == proxy.port and adv["proxy_username"] == "u"
    assert "proxy_password" not in adv and adv["allow_insecure_https"] is True and adv["debug_log"] is True
    out_dir = api.download_dir / "m3u8" / "out"
    assert adv["save_location"] == str(out_dir)
    saved = Path((await native(api).call("GET", f"/api/downloads/{task_id}"))["file"])
    assert saved.parent == out_dir and saved.name == "movie.mp4" and done["size"] == saved.stat().st_size
    # Segment 2 of 4 skipped: 3 s of 10 fps video; the headers reached the server; mtime from the server.
    assert video_frames(saved) == 30 and any("h264" in s for s in probe(saved).video)
    seg_headers = files.stats.get("/hls/seg_000.ts").headers
    assert seg_headers and {k.lower(): v for k, v in seg_headers[0].items()}.get("x-token") == "abc", seg_headers[0]
    assert "/hls/seg_001.ts" not in files.stats
    assert int(saved.stat().st_mtime) == OLD
    kept = sorted(p.name for p in (out_dir / "movie.mp4.parts").rglob("*.ts"))
    assert len(kept) == 3  # keep_ts_files
    log = (await native(api).call("GET", f"/api/downloads/{task_id}/logs"))["log"]
    assert "skip" in log.lower() and "playlist" in log  # log_skipped_ts and debug_log lines


async def test_no_merge_keeps_segments_as_a_folder(
    make_m3u8: CompatFactory, files: FileServer, tmp_path: Path
) -> None:
    api = await make_m3u8()
    url = serve_vod(files, tmp_path)
    response = await api.client.post("/api/tasks", json={"url": url, "filename": "raw", "advanced": True,
                                                         "no_merge_ts": True})
    task_id = response.json()["id"]
    await until_status(api, task_id, "已完成")
    saved = Path((await native(api).call("GET", f"/api/downloads/{task_id}"))["file"])
    assert saved.is_dir() and len(list(saved.glob("*.ts"))) == len(segments_of(hls_vod()))
    # advanced=false: the advanced fields are ignored.
    response = await api.client.post("/api/tasks", json={"url": url, "filename": "plain", "no_merge_ts": True,
                                                         "download_threads": 3})
    plain = (await tasks(api))[response.json()["id"]]
    assert plain["advanced_settings"]["no_merge_ts"] is False and plain["advanced_settings"]["download_threads"] == 16


async def test_pause_resume_and_delete(make_m3u8: CompatFactory, files: FileServer, tmp_path: Path) -> None:
    api = await make_m3u8()
    url = serve_vod(files, tmp_path)
    files.faults.throttle(None, 500)  # 16 segment fetches: ~8 KB/s, the pause lands mid-download
    task_id = (await api.client.post("/api/tasks", json={"url": url, "filename": "slow"})).json()["id"]
    await until_status(api, task_id, "下载中")
    ok = await api.client.put("/api/tasks", params={"id": task_id}, json={"status": "已暂停"})
    assert ok.status_code == 200 and ok.json() == {"status": "success"}
    paused = await until_status(api, task_id, "已暂停")
    assert paused["status_bar"].startswith("已暂停")
    # The same task, in the native shape:
    assert (await native(api).call("GET", f"/api/downloads/{task_id}"))["status"] == "stopped"
    files.faults.throttle(None, None)
    ok = await api.client.put("/api/tasks", params={"id": task_id}, json={"status": "等待中"})
    assert ok.status_code == 200
    await until_status(api, task_id, "已完成")
    gone = await api.client.delete("/api/tasks", params={"id": task_id})
    assert gone.status_code == 200 and gone.json() == {"status": "success"}
    assert task_id not in await tasks(api)
    again = await api.client.delete("/api/tasks", params={"id": task_id})
    assert again.status_code == 200 and again.json() == {"status": "success"}


async def test_every_documented_error(make_m3u8: CompatFactory, files: FileServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    api = await make_m3u8()
    await plain_error(api, "POST", "/api/tasks", 400, "解析请求失败", content="{not json",
                      headers={"Content-Type": "application/json"})
    await plain_error(api, "POST", "/api/tasks", 400, "解析请求失败", json={"url": "http://x.invalid/a.m3u8"})
    await plain_error(api, "POST", "/api/tasks", 400, "解析请求失败", json={"url": "ftp://x/a.m3u8", "filename": "a"})
    await plain_error(api, "POST", "/api/tasks", 400, "解析请求失败",
                      json={"url": "http://x.invalid/a.m3u8", "filename": "a", "advanced": True, "skip_ts_info": "x-"})
    await plain_error(api, "PUT", "/api/tasks", 400, "任务ID不能为空", json={"status": "已暂停"})
    await plain_error(api, "DELETE", "/api/tasks", 400, "任务ID不能为空")
    await plain_error(api, "PUT", "/api/tasks?id=999", 404, "任务不存在", json={"status": "已暂停"})
    await plain_error(api, "PUT", "/api/tasks?id=abc", 404, "任务不存在", json={"status": "已暂停"})
    # Deleting what is not there succeeds, as m3u8dweb's own server answers (its page may delete twice).
    assert (await api.client.delete("/api/tasks?id=999")).json() == {"status": "success"}
    await plain_error(api, "PATCH", "/api/tasks", 405)
    created = await api.client.post("/api/tasks", json={"url": files.url("/missing.m3u8"), "filename": "a"})
    task_id = created.json()["id"]
    await plain_error(api, "PUT", f"/api/tasks?id={task_id}", 400, "无效的状态", json={"status": "已完成"})
    await plain_error(api, "PUT", f"/api/tasks?id={task_id}", 400, "解析请求失败", json={"status": 3})
    failed = await until_status(api, task_id, "失败")
    assert failed["err_msg"] and failed["status_bar"].startswith("下载失败")

    async def broken(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.engine, "create", broken)
    await plain_error(api, "POST", "/api/tasks", 500, "保存任务失败", json={"url": "http://x.invalid/a.m3u8",
                                                                     "filename": "a"})


async def test_bodies_the_fuzzer_found_are_judged_like_the_native_api(make_m3u8: CompatFactory) -> None:
    """Found by schemathesis (tests/api/test_schemathesis.py): a control character in the URL or a
    header value, or a header name that is no RFC 9110 token, is a 400; 4.0 threads is the integer 4."""
    api = await make_m3u8()
    base = {"url": "http://127.0.0.1:9/a.m3u8", "filename": "a"}
    for bad in ({"url": "http://127.0.0.1:9/a\tb.m3u8"}, {"url": "http://127.0.0.1:9/\x01.m3u8"},
                {"use_http_headers": True, "http_headers": {"X Bad": ["1"]}},
                {"use_http_headers": True, "http_headers": {"X-Ok": ["a\x00b"]}},
                {"download_threads": 4.5}, {"download_threads": "4"}):
        await plain_error(api, "POST", "/api/tasks", 400, "解析请求失败", json={**base, **bad})
    created = await api.client.post("/api/tasks", json={**base, "advanced": True, "download_threads": 4.0,
                                                        "use_http_headers": True,
                                                        "http_headers": {"X-Ok": ["a\tb"]}})
    assert created.status_code == 200, created.text
    assert (await api.engine.get(int(created.json()["id"]))).options.segment_threads == 4


async def test_token_applies_to_the_dialect(make_m3u8: CompatFactory) -> None:
    api = await make_m3u8(token="s3cret")
    await plain_error(api, "GET", "/api/tasks", 401)
    assert (await api.client.get("/api/tasks", headers={"Authorization": "Bearer s3cret"})).status_code == 200
    ws = await Ws.connect(f"{api.url}/ws/progress?token=s3cret")
    await ws.close()
