"""Every bad input is a 4xx envelope with a documented code, and stored tasks stay as they were."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import TaskStatus
from core.store import TaskPatch
from tests.api.conftest import Api, ApiFactory

OK_TASK = {"type": "direct", "url": "http://example.invalid/ok.bin"}
JSON_TYPE = {"Content-Type": "application/json"}  # bodies must say JSON (server/guards.py)

# (method, path, request kwargs, status, code)
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, int]] = [
    # malformed bodies
    ("POST", "/api/downloads", {"content": b"{not json", "headers": JSON_TYPE}, 400, 40001),
    ("POST", "/api/downloads", {"content": b""}, 400, 40001),
    ("POST", "/api/downloads", {"content": b"\xff\xfe garbage", "headers": JSON_TYPE}, 400, 40001),
    ("POST", "/api/downloads", {"content": b'{"tasks": [{"url": "http://a/\\ud800"}]}', "headers": JSON_TYPE},
     400, 40001),
    ("POST", "/api/downloads", {"json": [OK_TASK]}, 400, 40002),
    ("POST", "/api/downloads", {"json": {}}, 400, 40002),
    ("POST", "/api/downloads", {"json": {"tasks": []}}, 400, 40002),
    ("POST", "/api/downloads", {"json": {"tasks": "x"}}, 400, 40002),
    ("POST", "/api/downloads", {"json": {"tasks": [OK_TASK], "startDownload": "yes"}}, 400, 40002),
    ("POST", "/api/downloads", {"json": {"tasks": [{"type": "direct"}]}}, 400, 40002),
    ("POST", "/api/downloads", {"json": {"tasks": [{**OK_TASK, "name": 5}]}}, 400, 40002),
    # unknown type (the whole batch is refused, even with valid tasks in it)
    ("POST", "/api/downloads", {"json": {"tasks": [OK_TASK, {**OK_TASK, "type": "torrent"}]}}, 400, 40003),
    ("POST", "/api/downloads", {"json": {"tasks": [{**OK_TASK, "type": ""}]}}, 400, 40003),
    # invalid URLs
    *[
        ("POST", "/api/downloads", {"json": {"tasks": [OK_TASK, {"type": "direct", "url": url}]}}, 400, 40004)
        for url in ["ftp://example.invalid/a", "not a url", "http://", "javascript:alert(1)",
                    "http://h:99999/", "http://exa mple.invalid/", "", "file:///etc/passwd", "http://[::1/"]
    ],
    # bad headers, folders outside the roots
    ("POST", "/api/downloads", {"json": {"tasks": [{**OK_TASK, "headers": "no colon here"}]}}, 400, 40005),
    ("POST", "/api/downloads", {"json": {"tasks": [{**OK_TASK, "headers": "X-A: a\rb"}]}}, 400, 40005),
    ("POST", "/api/downloads", {"json": {"tasks": [{**OK_TASK, "folder": "/etc"}]}}, 400, 40006),
    ("POST", "/api/downloads", {"json": {"tasks": [{**OK_TASK, "folder": "a\u0000b"}]}}, 400, 40006),
    # unknown ids
    ("GET", "/api/downloads/999999", {}, 404, 40401),
    ("GET", "/api/downloads/999999/logs", {}, 404, 40401),
    ("PUT", "/api/downloads/999999", {"json": {"name": "x"}}, 404, 40401),
    ("PUT", "/api/downloads/999999/live", {"json": {"isLive": True}}, 404, 40401),
    ("DELETE", "/api/downloads/999999", {}, 404, 40401),
    ("POST", "/api/downloads/999999/start", {}, 404, 40401),
    ("POST", "/api/downloads/999999/stop", {}, 404, 40401),
    ("PUT", "/api/downloads/status", {"json": {"ids": [1, 999999], "status": "stopped"}}, 404, 40401),
    # ids that are not ids
    ("GET", "/api/downloads/abc", {}, 404, 40400),
    ("GET", "/api/downloads/-1", {}, 404, 40400),
    ("GET", "/api/downloads/99999999999999999999999", {}, 404, 40401),
    ("DELETE", "/api/downloads/36893488147419103232", {}, 404, 40401),
    ("POST", "/api/downloads/36893488147419103232/stop", {}, 404, 40401),
    ("PUT", "/api/downloads/status", {"json": {"ids": [0], "status": "stopped"}}, 400, 40002),
    ("PUT", "/api/downloads/status", {"json": {"ids": [2**64], "status": "stopped"}}, 400, 40002),
    ("PUT", "/api/downloads/status", {"json": {"ids": ["1"], "status": "stopped"}}, 400, 40002),
    # statuses
    ("PUT", "/api/downloads/status", {"json": {"ids": [1], "status": "paused"}}, 400, 40007),
    # success marks only a task whose file is complete on disk; task 1 has none.
    ("PUT", "/api/downloads/status", {"json": {"ids": [1], "status": "success"}}, 409, 40900),
    ("PUT", "/api/downloads/status", {"json": {"ids": [], "status": "stopped"}}, 400, 40002),
    # edits
    ("PUT", "/api/downloads/1", {"json": {"url": "ftp://x/"}}, 400, 40004),
    ("PUT", "/api/downloads/1", {"json": {"headers": "bad"}}, 400, 40005),
    ("PUT", "/api/downloads/1", {"json": {"folder": "/root"}}, 400, 40006),
    ("PUT", "/api/downloads/1", {"content": b"[1,2", "headers": JSON_TYPE}, 400, 40001),
    ("PUT", "/api/downloads/1/live", {"json": {}}, 400, 40002),
    ("PUT", "/api/downloads/1/live", {"json": {"isLive": "true"}}, 400, 40002),
    ("POST", "/api/downloads/1/start", {"json": {"localPath": "/etc"}}, 400, 40006),
    ("POST", "/api/downloads/1/start", {"json": {"deleteSegments": "no"}}, 400, 40002),
    # query strings
    ("GET", "/api/downloads", {"params": {"current": "abc"}}, 400, 40002),
    ("GET", "/api/downloads", {"params": {"current": "0"}}, 400, 40002),
    ("GET", "/api/downloads", {"params": {"pageSize": "100001"}}, 400, 40002),
    ("GET", "/api/downloads", {"params": {"filter": "nope"}}, 400, 40002),
    ("GET", "/api/downloads", {"params": {"localPath": "a\u0000b"}}, 400, 40006),
    ("GET", "/api/events", {"params": {"lastEventId": "-5"}}, 400, 40002),
    # routing
    ("GET", "/api/nothing-here", {}, 404, 40400),
    ("GET", "/", {}, 404, 40400),
    ("PATCH", "/api/downloads", {"json": {}}, 405, 40500),
    ("DELETE", "/api/downloads/active", {}, 405, 40500),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), BAD_REQUESTS,
                         ids=[f"{m} {p} {s}/{c}#{i}" for i, (m, p, _, s, c) in enumerate(BAD_REQUESTS)])
async def test_bad_request_is_a_4xx_envelope(
    api: Api, method: str, path: str, kwargs: dict[str, Any], status: int, code: int
) -> None:
    api.engine.scheduler.max_concurrent = 0
    (stored,) = await api.create(OK_TASK)
    assert stored["id"] == 1
    before = await api.call("GET", "/api/downloads", params={"pageSize": 100})
    await api.fail(method, path, status, code, **kwargs)
    after = await api.call("GET", "/api/downloads", params={"pageSize": 100})
    assert after == before


async def test_method_not_allowed_names_the_allowed_methods(api: Api) -> None:
    response = await api.client.patch("/api/downloads")
    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}


async def test_illegal_transitions_are_409(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0
    done, other = await api.create(OK_TASK, OK_TASK)
    await api.engine.repo.update(done["id"], TaskPatch(status=TaskStatus.SUCCESS))
    before = await api.call("GET", "/api/downloads")
    await api.fail("POST", f"/api/downloads/{done['id']}/stop", 409, 40900)
    # Bulk: checked before anything changes, so `other` is not stopped either.
    await api.fail("PUT", "/api/downloads/status", 409, 40900,
                   json={"ids": [other["id"], done["id"]], "status": "stopped"})
    assert await api.call("GET", "/api/downloads") == before
    # A running task cannot change url or folder, and cannot be started twice.
    await api.engine.repo.update(other["id"], TaskPatch(status=TaskStatus.DOWNLOADING))
    await api.fail("PUT", f"/api/downloads/{other['id']}", 409, 40900, json={"url": "http://example.invalid/x"})
    await api.fail("POST", f"/api/downloads/{other['id']}/start", 409, 40900)


async def test_body_too_large_is_413(make_api: ApiFactory) -> None:
    api = await make_api(max_body_bytes=2048)
    tasks = [{"type": "direct", "url": f"http://example.invalid/{i}.bin"} for i in range(200)]
    await api.fail("POST", "/api/downloads", 413, 41300, json={"tasks": tasks})
    assert (await api.call("GET", "/api/downloads"))["total"] == 0
    await api.create(OK_TASK)  # still serving


async def test_non_loopback_host_header_refused_without_token(api: Api) -> None:
    await api.fail("GET", "/api/downloads", 403, 40300, headers={"Host": "evil.example"})
    assert (await api.client.get("/api/downloads", headers={"Host": "localhost:39719"})).status_code == 200
