"""The Downie Enhanced API (shared/seeds/downie-enhanced-api.zh.txt) against the real server, yt-dlp on 127.0.0.1."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.compat_support import CompatFactory, Ws, make_compat, wait_for
from tests.api.conftest import Api
from tests.support.fileserver import FileServer
from tests.support.media_fixtures import MediaSet, get_media, probe

__all__ = ["make_compat"]
TASK_FIELDS = {"id", "url", "title", "status", "progress_percentage", "downloaded_bytes", "total_bytes", "speed",
               "eta", "created_at", "started_at", "completed_at", "error_message", "file_path"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def media() -> MediaSet:
    return get_media()


@pytest.fixture
def site(media: MediaSet) -> Any:
    with FileServer() as srv:
        srv.add_dir("/m", media.dir)
        yield srv


async def ok(api: Api, method: str, path: str, **kw: Any) -> Any:
    response = await api.client.request(method, path, **kw)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


async def error(api: Api, method: str, path: str, status: int, code: str, **kw: Any) -> dict[str, Any]:
    response = await api.client.request(method, path, **kw)
    body = response.json()
    assert (response.status_code, body.get("error_code")) == (status, code), (response.status_code, body)
    assert set(body) == {"detail", "error_code", "timestamp"} and body["detail"] and TS.match(body["timestamp"])
    return body  # type: ignore[no-any-return]


async def until(api: Api, task_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        task = await ok(api, "GET", f"/api/downloads/tasks/{task_id}")
        assert task["status"] not in ("failed",) or "failed" in statuses, task
        return task if task["status"] in statuses else None

    return await wait_for(check, timeout)  # type: ignore[no-any-return]


async def test_add_start_progress_complete_list_cancel_delete(
    make_compat: CompatFactory, site: FileServer, media: MediaSet
) -> None:
    api = await make_compat(heartbeat=0.3)
    ws = await Ws.connect(f"{api.url}/api/downloads/ws")
    try:
        initial = await ws.recv()
        assert initial == {"type": "initial", "tasks": []}
        added = await ok(api, "POST", "/api/downloads/add", json={
            "url": site.url("/m/v360.mp4"), "quality": "720p", "post_processing": "none", "cookies": "",
            "custom_filename": "my_video.mp4"})
        assert added["message"] == "Download task created successfully" and added["status"] == "created"
        task_id = added["task_id"]
        assert isinstance(task_id, str)
        pending = await ok(api, "GET", f"/api/downloads/tasks/{task_id}")
        assert set(pending) == TASK_FIELDS and pending["status"] == "pending" and pending["started_at"] is None
        assert pending["title"] == "my_video.mp4" and pending["url"] == site.url("/m/v360.mp4")
        site.faults.throttle(None, 400_000)
        started = await ok(api, "POST", f"/api/downloads/start/{task_id}")
        assert started == {"message": "Download started", "task_id": task_id}
        await error(api, "POST", f"/api/downloads/start/{task_id}", 409, "TASK_ALREADY_RUNNING")
        seen = await ws.until(lambda m: m["type"] == "progress" and m["progress"]["status"] == "completed", 60)
        await ws.send({"type": "ping"})
        assert (await ws.until(lambda m: m["type"] == "pong"))[-1] == {"type": "pong"}
        beat = await ws.until(lambda m: m["type"] == "heartbeat", 5)
        assert beat[-1] == {"type": "heartbeat"}
    finally:
        await ws.close()
    moving = [m for m in seen if m["type"] == "progress" and m["progress"]["status"] == "downloading"]
    assert moving, seen
    progress = moving[-1]["progress"]
    assert set(progress) == {"status", "percentage", "downloaded_bytes", "total_bytes", "speed", "eta",
                             "progress_text", "speed_text"}
    assert re.match(r"^\d+\.\d% \(", progress["progress_text"]) and progress["speed_text"].endswith("/s")
    done = await ok(api, "GET", f"/api/downloads/tasks/{task_id}")
    assert done["status"] == "completed" and done["progress_percentage"] == 100.0 and done["error_message"] == ""
    assert done["started_at"] and done["completed_at"] >= done["started_at"] >= done["created_at"]
    saved = Path(done["file_path"])
    assert saved.name == "my_video.mp4" and saved.read_bytes() == media.bytes("v360.mp4")
    assert done["downloaded_bytes"] == done["total_bytes"] == saved.stat().st_size
    # Listing, filters, paging, stats.
    second = (await ok(api, "POST", "/api/downloads/add", json={"url": site.url("/m/v720.mp4")}))["task_id"]
    everything = await ok(api, "GET", "/api/downloads/tasks")
    assert [t["id"] for t in everything] == [second, task_id]
    assert [t["id"] for t in await ok(api, "GET", "/api/downloads/tasks", params={"status": "completed"})] == [task_id]
    assert [t["id"] for t in await ok(api, "GET", "/api/downloads/tasks", params={"status": "pending"})] == [second]
    assert await ok(api, "GET", "/api/downloads/tasks", params={"limit": 1, "offset": 1}) == [everything[1]]
    assert await ok(api, "GET", "/api/downloads/tasks", params={"status": "failed"}) == []
    assert await ok(api, "GET", "/api/downloads/tasks/active") == []
    stats = await ok(api, "GET", "/api/downloads/stats")
    assert stats == {"total_tasks": 2, "active_tasks": 0, "completed_tasks": 1, "failed_tasks": 0,
                     "pending_tasks": 1, "total_downloaded_bytes": saved.stat().st_size, "current_speed": 0}
    # Cancel a running download, then delete it.
    site.faults.throttle(None, 100_000)
    await ok(api, "POST", f"/api/downloads/start/{second}")
    running = await until(api, second, "downloading")
    assert [t["id"] for t in await ok(api, "GET", "/api/downloads/tasks/active")] == [running["id"]]
    assert await ok(api, "POST", f"/api/downloads/cancel/{second}") == {"message": "Download cancelled",
                                                                       "task_id": second}
    cancelled = await until(api, second, "cancelled")
    assert cancelled["speed"] == 0
    assert await ok(api, "DELETE", f"/api/downloads/tasks/{second}") == {"message": "Task deleted", "task_id": second}
    await error(api, "GET", f"/api/downloads/tasks/{second}", 404, "TASK_NOT_FOUND")
    # cleanup removes finished tasks older than max_age_hours.
    kept = await ok(api, "POST", "/api/downloads/cleanup", params={"max_age_hours": 1})
    assert kept["message"] == "Cleaned up tasks older than 1 hours" and kept["removed"] == 0
    gone = await ok(api, "POST", "/api/downloads/cleanup", params={"max_age_hours": 0})
    assert gone["message"] == "Cleaned up tasks older than 0 hours" and gone["removed"] == 1
    assert await ok(api, "GET", "/api/downloads/tasks") == []


async def test_quality_audio_postprocessing_and_cookies(
    make_compat: CompatFactory, site: FileServer, media: MediaSet
) -> None:
    api = await make_compat()
    batch = await ok(api, "POST", "/api/downloads/batch/add", json=[
        {"url": site.url("/m/master.m3u8"), "quality": "360p", "post_processing": "none",
         "cookies": "session=abc123"},
        {"url": site.url("/m/v360.mp4"), "quality": "best", "post_processing": "audio"},
        {"url": "ftp://nope/x", "quality": "best"},
        {"url": site.url("/m/v360.mp4"), "quality": "8k"},
        {"url": site.url("/m/v720.mp4"), "post_processing": "permute", "custom_filename": "permuted.mp4"},
    ])
    results = batch["results"]
    assert [r["status"] for r in results] == ["created", "created", "error", "error", "created"]
    assert results[0]["url"] == site.url("/m/master.m3u8")
    # The real server's failed item: {"url", "status": "error", "error"}, no task_id.
    assert set(results[2]) == set(results[3]) == {"url", "status", "error"} and results[2]["url"] == "ftp://nope/x"
    assert results[2]["error"] and results[3]["error"]
    ids = [r["task_id"] for r in (results[0], results[1], results[4])]
    started = await ok(api, "POST", "/api/downloads/batch/start", json=[*ids, "424242"])
    assert [r["status"] for r in started["results"]] == ["started", "started", "started", "failed"]
    assert started["results"][3]["error_code"] == "TASK_NOT_FOUND"
    video = await until(api, ids[0], "completed")
    audio = await until(api, ids[1], "completed")
    permuted = await until(api, ids[2], "completed")
    streams = probe(Path(video["file_path"]))
    assert [s.height for s in streams if s.kind == "Video"] == [360]
    assert [s.kind for s in probe(Path(audio["file_path"]))] == ["Audio"]
    # "permute" is accepted and does nothing, as in the real server: the file is the source, byte for byte.
    assert Path(permuted["file_path"]).name == "permuted.mp4"
    assert Path(permuted["file_path"]).read_bytes() == media.bytes("v720.mp4")
    cookie_headers = [h.get("Cookie", "") for p in site.stats.paths() if p.startswith("/m/hls360/")
                      for h in site.stats.get(p).headers]
    assert cookie_headers and all("session=abc123" in c for c in cookie_headers)


async def test_extract_sites_qualities_health_and_stats(make_compat: CompatFactory, site: FileServer) -> None:
    api = await make_compat()
    info = await ok(api, "POST", "/api/downloads/extract", json={"url": site.url("/m/page.html"), "quality": "best",
                                                                 "post_processing": "none", "cookies": ""})
    assert set(info) == {"url", "title", "duration", "thumbnail", "description", "uploader", "formats"}
    assert info["title"] and len(info["formats"]) == 2
    # An HTML5 page: no duration, thumbnail, ... to report; the real server's int 0 and "" (never null).
    assert info["duration"] == 0 and info["thumbnail"] == info["description"] == info["uploader"] == ""
    assert {f["height"] for f in info["formats"]} == {360, 720}
    assert set(info["formats"][0]) == {"format_id", "url", "ext", "quality", "filesize", "width", "height", "fps",
                                       "vcodec", "acodec", "tbr"}
    # POST /api/analyze (the real server's main.py): the same information in its own shape.
    analysis = await ok(api, "POST", "/api/analyze", json={"url": site.url("/m/master.m3u8")})
    assert set(analysis) == {"title", "duration", "thumbnail", "formats", "is_playlist", "playlist_count"}
    assert analysis["duration"] == 3 and isinstance(analysis["duration"], int) and analysis["title"] == "master"
    assert analysis["is_playlist"] is False and analysis["playlist_count"] == 0 and analysis["thumbnail"] == ""
    assert sorted(f["height"] for f in analysis["formats"]) == [360, 720]
    playlist = await ok(api, "POST", "/api/analyze", json={"url": site.url("/m/two.html"), "extract_playlist": True,
                                                          "quality_preference": "720p"})
    assert playlist["is_playlist"] is True and playlist["playlist_count"] == 2 and playlist["formats"] == []
    await error(api, "POST", "/api/analyze", 400, "INVALID_URL", json={"url": "notaurl"})
    await error(api, "POST", "/api/analyze", 422, "VALIDATION_ERROR", json={"url": site.url("/m/v360.mp4"),
                                                                           "extract_playlist": "yes"})
    failed = await error(api, "POST", "/api/analyze", 500, "ANALYSIS_FAILED", json={"url": site.url("/m/missing.mp4")})
    assert failed["detail"].startswith("Analysis failed: ")
    # Supported sites are domains (the real server's list is 12 of them), derived from yt-dlp's extractors.
    sites = await ok(api, "GET", "/api/downloads/supported-sites")
    domains = sites["supported_sites"]
    assert sites["total_sites"] == len(domains) > 1000 and domains == sorted(set(domains))
    assert {"youtube.com", "youtu.be", "vimeo.com", "bilibili.com", "dailymotion.com", "tiktok.com", "twitter.com",
            "x.com", "instagram.com", "facebook.com"} <= set(domains)
    assert all(re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", d) for d in domains), [d for d in domains if "." not in d]
    assert await ok(api, "GET", "/api/supported-sites") == {"sites": domains, "total": len(domains)}
    assert await ok(api, "GET", "/api/downloads/qualities") == {
        "qualities": ["auto", "best", "1080p", "720p", "480p", "360p", "worst"],
        "post_processing": ["none", "audio", "mp4", "permute"]}
    health = await ok(api, "GET", "/api/health")
    assert health["status"] == "healthy" and health["version"] == "1.0.0"
    assert await ok(api, "GET", "/api/stats") == {"active_downloads": 0, "total_downloads": 0,
                                                  "supported_sites": sites["total_sites"]}


async def test_every_documented_error(make_compat: CompatFactory, site: FileServer) -> None:
    api = await make_compat(token="tok")
    await error(api, "GET", "/api/downloads/tasks", 401, "UNAUTHORIZED")
    assert (await api.client.get("/api/health")).status_code == 200  # health needs no token
    api.client.headers["X-API-Key"] = "tok"
    await error(api, "POST", "/api/downloads/extract", 400, "INVALID_URL", json={"url": "notaurl"})
    await error(api, "POST", "/api/downloads/add", 400, "INVALID_URL", json={"url": "file:///etc/passwd"})
    await error(api, "POST", "/api/downloads/extract", 400, "UNSUPPORTED_SITE",
                json={"url": site.url("/m/empty.html")})
    await error(api, "POST", "/api/downloads/extract", 500, "EXTRACTION_FAILED",
                json={"url": site.url("/m/missing.mp4")})
    await error(api, "POST", "/api/downloads/add", 422, "VALIDATION_ERROR", json={"quality": "best"})
    await error(api, "POST", "/api/downloads/add", 422, "VALIDATION_ERROR",
                json={"url": site.url("/m/v360.mp4"), "post_processing": "flac"})
    await error(api, "POST", "/api/downloads/add", 422, "VALIDATION_ERROR", content=b"[1,",
                headers={"Content-Type": "application/json"})
    await error(api, "POST", "/api/downloads/cleanup", 422, "VALIDATION_ERROR", params={"max_age_hours": "x"})
    await error(api, "GET", "/api/downloads/tasks", 422, "VALIDATION_ERROR", params={"status": "weird"})
    for method, path in (("GET", "/api/downloads/tasks/77"), ("POST", "/api/downloads/start/77"),
                         ("POST", "/api/downloads/cancel/abc"), ("DELETE", "/api/downloads/tasks/77")):
        await error(api, method, path, 404, "TASK_NOT_FOUND")
    await error(api, "PUT", "/api/downloads/add", 405, "METHOD_NOT_ALLOWED", json={})
    # A download that fails: the task says why.
    task_id = (await ok(api, "POST", "/api/downloads/add", json={"url": site.url("/m/missing.mp4")}))["task_id"]
    await ok(api, "POST", f"/api/downloads/start/{task_id}")
    failed = await until(api, task_id, "failed")
    assert "404" in failed["error_message"] and failed["completed_at"] <= time.time()


async def test_cleanup_refuses_hours_that_are_not_finite(make_compat: CompatFactory) -> None:
    """float() reads "inf", "nan" and "1e400"; an infinite cutoff used to crash the message (500)."""
    api = await make_compat()
    for raw in ("inf", "-inf", "Infinity", "nan", "1e400"):
        await error(api, "POST", "/api/downloads/cleanup", 422, "VALIDATION_ERROR", params={"max_age_hours": raw})
    half = await ok(api, "POST", "/api/downloads/cleanup", params={"max_age_hours": "0.5"})
    assert half == {"message": "Cleaned up tasks older than 0.5 hours", "removed": 0}


async def test_task_ids_must_be_ascii_digits(make_compat: CompatFactory) -> None:
    """"²" passed str.isdigit() and crashed int() (500); "١" (Arabic-Indic one) was read as task 1."""
    api = await make_compat()
    task_id = (await ok(api, "POST", "/api/downloads/add", json={"url": "http://127.0.0.1:9/v.mp4"}))["task_id"]
    assert task_id == "1"
    for raw in ("²", "١", "1²"):
        for method, path in (("GET", "/api/downloads/tasks/{}"), ("POST", "/api/downloads/start/{}"),
                             ("POST", "/api/downloads/cancel/{}"), ("DELETE", "/api/downloads/tasks/{}")):
            await error(api, method, path.format(raw), 404, "TASK_NOT_FOUND")
    started = await ok(api, "POST", "/api/downloads/batch/start", json=["²", "١"])
    assert [r["error_code"] for r in started["results"]] == ["TASK_NOT_FOUND", "TASK_NOT_FOUND"]
    assert (await ok(api, "GET", f"/api/downloads/tasks/{task_id}"))["status"] == "pending"


async def test_guard_errors_carry_downie_codes(make_compat: CompatFactory) -> None:
    """The app-wide guards answer in Downie's format with its own codes (415 and a refused Origin said BAD_REQUEST).
    415 is for browsers only (a body without a JSON Content-Type from curl is read as JSON): the extension's
    origin sends these."""
    api = await make_compat(token="tok", max_body_bytes=1000)
    await error(api, "POST", "/api/downloads/add", 401, "UNAUTHORIZED", json={"url": "http://127.0.0.1:9/a"})
    api.client.headers["Authorization"] = "Bearer tok"
    browser = {"Origin": "chrome-extension://abcdefghijklmnop", "Sec-Fetch-Site": "none"}
    await error(api, "POST", "/api/downloads/add", 415, "UNSUPPORTED_MEDIA_TYPE", content=b"url=x",
                headers={**browser, "Content-Type": "application/x-www-form-urlencoded"})
    await error(api, "POST", "/api/downloads/start/1", 415, "UNSUPPORTED_MEDIA_TYPE", content=b"x",
                headers={**browser, "Content-Type": "text/plain"})
    await error(api, "GET", "/api/downloads/tasks", 403, "FORBIDDEN", headers={"Origin": "https://evil.example"})
    await error(api, "POST", "/api/downloads/add", 413, "PAYLOAD_TOO_LARGE",
                json={"url": "http://127.0.0.1:9/a", "cookies": "a=" + "b" * 2000})
