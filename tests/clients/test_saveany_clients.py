"""SaveAny-Bot's clients against a real fetchdeck SaveAny listener (`--listen saveany=127.0.0.1:PORT`).

Two sources of requests:

- SaveAny-Bot's own tests (krau/SaveAny-Bot api/handlers_test.go at bd1926d2), replayed over HTTP
  with the token, so the mux and the auth middleware a real server has in front of its handlers are
  there too. Go calls the handlers directly; where its mux would send the request elsewhere
  (`GET /api/v1/tasks` is the list, not GetTaskHandler) the case is replayed as the mux routes it,
  and the handler's own check is reached the way a client reaches it (`/api/v1/tasks/`).
- A SaveAny client as the seed document (shared/seeds/saveany-bot-http-api.zh.txt) describes one:
  the real `curl`, `Authorization: Bearer <token>`, JSON bodies with `-d`.

Answers are checked as the Go structs of api/types.go serialize: keys in field order, omitempty
fields absent (never 0 or ""), integers as integers, time.Time as RFC 3339, `WriteJSON`'s compact
body with its trailing newline and `Content-Type: application/json`. Downloads are real (a
FileServer on 127.0.0.1), compared byte for byte; states are waited for by polling.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.api.compat_support import Receiver, wait_for
from tests.api.conftest import Api, ApiFactory
from tests.support.fileserver import FileServer, random_bytes

TOKEN = "saveany-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
STORAGES = ["local=", "test-storage-dir=other"]
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
# Field order of api/types.go's structs (what encoding/json writes).
TASK_FIELDS = ["task_id", "type", "status", "title", "progress", "storage", "path", "error", "created_at",
               "updated_at"]
TASK_OMITEMPTY = {"progress", "error"}
PROGRESS_FIELDS = ["total_bytes", "downloaded_bytes", "total_files", "downloaded_files", "percent", "speed_mbps"]
WEBHOOK_FIELDS = ["task_id", "type", "status", "storage", "path", "completed_at", "error"]
TYPES = ["directlinks", "ytdlp", "aria2", "parseditem", "tgfiles", "tphpics", "transfer"]
STATUSES = {"queued", "running", "completed", "failed", "cancelled"}


async def saveany(make_api: ApiFactory, **server: Any) -> Api:
    """What `--listen saveany=127.0.0.1:PORT` serves, with `server.token` set; its client sends the token."""
    api = await make_api(surface="saveany", token=TOKEN, api={"storages": STORAGES}, **server)
    api.client.headers.update(BEARER)
    return api


# ---------------------------------------------------------------- the Go structs


def go_marshal(value: Any) -> str:
    """encoding/json's compact output for what these tests see (no floats below 1e-4): Python's compact
    JSON with Go's HTML escaping of <, > and & (they only occur inside strings)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_body(response: httpx.Response) -> Any:
    """The body of a WriteJSON answer: application/json, compact, one trailing newline."""
    assert response.headers["content-type"] == "application/json", response.headers
    text = response.text
    assert text.endswith("}\n") and not text.endswith("\n\n"), text
    body = json.loads(text)
    assert text == go_marshal(body) + "\n", text
    return body


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return is_int(value) or isinstance(value, float)


def check_time(value: Any) -> datetime:
    assert isinstance(value, str) and GO_TIME.match(value), value
    return datetime.fromisoformat(value)


def check_progress(progress: Any) -> dict[str, Any]:
    """TaskProgress: every field omitempty, present only when total_bytes or total_files is above 0."""
    assert isinstance(progress, dict) and list(progress) == [k for k in PROGRESS_FIELDS if k in progress], progress
    assert progress.get("total_bytes", 0) > 0 or progress.get("total_files", 0) > 0, progress
    for key in PROGRESS_FIELDS[:4]:
        assert key not in progress or (is_int(progress[key]) and progress[key] > 0), progress
    for key in PROGRESS_FIELDS[4:]:
        assert key not in progress or (is_number(progress[key]) and progress[key] > 0), progress
    if "total_bytes" in progress:  # percent by bytes, computed as Go does, not rounded
        expected = float(progress.get("downloaded_bytes", 0)) * 100 / float(progress["total_bytes"])
    else:
        expected = float(progress.get("downloaded_files", 0)) * 100 / float(progress["total_files"])
    assert progress.get("percent", 0) == min(expected, 100.0), progress
    return progress


def check_task(task: Any) -> dict[str, Any]:
    """TaskInfoResponse."""
    assert isinstance(task, dict), task
    assert list(task) == [k for k in TASK_FIELDS if k in task], task
    assert set(TASK_FIELDS) - TASK_OMITEMPTY <= set(task), task
    for key in ("task_id", "type", "status", "title", "storage", "path"):
        assert isinstance(task[key], str), (key, task)
    assert task["task_id"] and task["type"] in TYPES and task["status"] in STATUSES, task
    assert "error" not in task or (isinstance(task["error"], str) and task["error"]), task
    if "progress" in task:
        check_progress(task["progress"])
    assert check_time(task["created_at"]) <= check_time(task["updated_at"]), task
    return task


def check_error(response: httpx.Response, status: int, code: str, message: str | None = None) -> str:
    """ErrorResponse."""
    body = go_body(response)
    assert response.status_code == status, (response.status_code, body)
    assert list(body) == ["error", "message"] and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    assert message is None or body["message"] == message, body
    return body["message"]  # type: ignore[no-any-return]


async def get_task(api: Api, task_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return check_task(go_body(response))


async def post_task(api: Api, body: dict[str, Any] | bytes) -> httpx.Response:
    if isinstance(body, bytes):
        return await api.client.post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    return await api.client.post("/api/v1/tasks", json=body)


async def created(api: Api, body: dict[str, Any]) -> str:
    """CreateTaskResponse."""
    response = await post_task(api, body)
    assert response.status_code == 201, response.text
    answer = go_body(response)
    assert list(answer) == ["task_id", "type", "status", "created_at"], answer
    assert answer["type"] == body["type"] and answer["status"] == "queued", answer
    assert isinstance(answer["task_id"], str) and answer["task_id"]
    check_time(answer["created_at"])
    return answer["task_id"]  # type: ignore[no-any-return]


async def poll(api: Api, task_id: str, check: Any, timeout: float = 30) -> dict[str, Any]:
    async def once() -> dict[str, Any] | None:
        task = await get_task(api, task_id)
        return task if check(task) else None

    return await wait_for(once, timeout)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- api/handlers_test.go


async def test_create_task_handler_cases(make_api: ApiFactory) -> None:
    """TestCreateTaskHandler: each case's body as the Go test marshals it (CreateTaskRequest{} has no
    `webhook`: omitempty), Content-Type: application/json when there is a body."""
    api = await saveany(make_api)
    # "Method not allowed" (GET): GetTaskHandler's own check; through the mux GET is the list, so any
    # method the route does not take gets the mux's 405.
    for method in ("PUT", "PATCH", "OPTIONS"):
        check_error(await api.client.request(method, "/api/v1/tasks"), 405, "method_not_allowed",
                    f"method not allowed: {method}")
    cases = [
        (b"invalid json", "invalid_request",
         "failed to decode request body: invalid character 'i' looking for beginning of value"),
        (b'{"type":"","storage":"","path":"","params":null}', "invalid_request", "task type is required"),
        (b'{"type":"","storage":"test-storage","path":"downloads","params":null}', "invalid_request",
         "task type is required"),
        (b'{"type":"directlinks","storage":"","path":"downloads","params":null}', "invalid_request",
         "storage is required"),
        (b'{"type":"directlinks","storage":"non-existent-storage","path":"downloads",'
         b'"params":{"urls":["https://example.com/file.zip"]}}', "task_creation_failed",
         "storage not found: non-existent-storage"),
    ]
    for body, code, message in cases:
        check_error(await post_task(api, body), 400, code, message)
    # TestTaskFactoryValidation: the factory's error names the missing storage.
    message = check_error(await post_task(api, {"type": "directlinks", "storage": "non-existent"}), 400,
                          "task_creation_failed")
    assert "storage not found" in message.lower()
    # TestEdgeCases "nil body": the decoder's EOF.
    check_error(await api.client.post("/api/v1/tasks"), 400, "invalid_request", "failed to decode request body: EOF")
    assert go_body(await api.client.get("/api/v1/tasks")) == {"tasks": [], "total": 0}


async def test_list_get_and_cancel_task_handler_cases(make_api: ApiFactory) -> None:
    """TestListTasksHandler, TestGetTaskHandler, TestCancelTaskHandler and the path cases of
    TestEdgeCases. Go registers `test-get-task` itself; here it is created (fetchdeck's ids are the
    engine's) and stays queued. The Go test skips the successful cancel (it needs the core queue);
    fetchdeck has its queue, so it runs."""
    api = await saveany(make_api)
    api.engine.scheduler.max_concurrent = 0
    task_id = await created(api, {"type": "directlinks", "storage": "local", "path": "downloads", "webhook": "",
                                  "params": {"urls": ["https://example.com/file.zip"]}})
    assert (await api.engine.get(int(task_id))).options.webhook is None  # an empty webhook stays empty
    # TestListTasksHandler: POST is the create route through the mux; another method gets its 405.
    check_error(await api.client.delete("/api/v1/tasks"), 405, "method_not_allowed", "method not allowed: DELETE")
    listed = go_body(await api.client.get("/api/v1/tasks"))
    assert list(listed) == ["tasks", "total"] and listed["total"] == 1 and isinstance(listed["tasks"], list)
    task = check_task(listed["tasks"][0])
    assert task == await get_task(api, task_id)
    assert (task["task_id"], task["type"], task["status"], task["storage"], task["path"]) == (
        task_id, "directlinks", "queued", "local", "downloads")
    assert task["title"] == "[directlinks](file.zip...->local:downloads)" and "progress" not in task
    # TestGetTaskHandler
    check_error(await api.client.post("/api/v1/tasks/test-id"), 405, "method_not_allowed", "method not allowed: POST")
    check_error(await api.client.get("/api/v1/tasks/"), 400, "invalid_request", "task ID is required")
    check_error(await api.client.get("/api/v1/tasks/non-existent-task"), 404, "task_not_found",
                "task not found: non-existent-task")
    # TestCancelTaskHandler
    check_error(await api.client.put("/api/v1/tasks/test-id"), 405, "method_not_allowed", "method not allowed: PUT")
    check_error(await api.client.delete("/api/v1/tasks/"), 400, "invalid_request", "task ID is required")
    check_error(await api.client.delete("/api/v1/tasks/non-existent-task"), 404, "task_not_found",
                "task not found: non-existent-task")
    response = await api.client.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200 and go_body(response) == {"message": "task cancelled successfully"}
    cancelled = await get_task(api, task_id)
    assert cancelled["status"] == "cancelled"
    # TestTaskProgressInfoTimeUpdate: a status change advances updated_at.
    assert check_time(cancelled["updated_at"]) > check_time(task["updated_at"])
    # TestEdgeCases: no length limit on ids; the id is the 4th path segment (the rest is ignored) — the Go
    # test's literal "test%20id" is what a client's "test%2520id" decodes to; an empty 4th segment is no id.
    check_error(await api.client.get("/api/v1/tasks/" + "a" * 1000), 404, "task_not_found")
    check_error(await api.client.get("/api/v1/tasks/test%2520id/with/slashes"), 404, "task_not_found",
                "task not found: test%20id")
    check_error(await api.client.get("/api/v1/tasks//task-id"), 400, "invalid_request", "task ID is required")
    assert (await get_task(api, f"{task_id}/with/slashes"))["task_id"] == task_id


async def test_storages_task_types_health_not_found_and_method_handlers(make_api: ApiFactory) -> None:
    """TestListStoragesHandler, TestGetTaskTypesHandler, TestHealthCheckHandler, TestNotFoundHandler,
    TestMethodNotAllowedHandler."""
    api = await saveany(make_api)
    for path in ("/api/v1/storages", "/api/v1/task-types"):
        for method in ("POST", "DELETE", "OPTIONS"):
            check_error(await api.client.request(method, path), 405, "method_not_allowed", "only GET method is allowed")
    storages = go_body(await api.client.get("/api/v1/storages"))
    assert storages == {"storages": [{"name": "local", "type": "local"}, {"name": "test-storage-dir", "type": "local"}]}
    assert go_body(await api.client.get("/api/v1/task-types")) == {"types": TYPES}
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):  # no method check on /health
        response = await api.client.request(method, "/health")
        assert response.status_code == 200 and go_body(response) == {"status": "ok"}, (method, response.text)
    check_error(await api.client.get("/non-existent-path"), 404, "not_found", "endpoint not found: /non-existent-path")
    for path in ("/api/v1/storages/", "/health/", "/api/v1", "/api/downloads", "/api/openapi/nope.json"):
        check_error(await api.client.get(path), 404, "not_found", f"endpoint not found: {path}")
    check_error(await api.client.post("/api/v1/tasks/some-id"), 405, "method_not_allowed", "method not allowed: POST")


async def test_concurrent_creations_and_reads(make_api: ApiFactory) -> None:
    """TestConcurrentProgressStore: concurrent registrations and reads; every task is there afterwards."""
    api = await saveany(make_api)
    api.engine.scheduler.max_concurrent = 0
    ids = await asyncio.gather(*(created(api, {"type": "directlinks", "storage": "local", "path": "downloads",
                                               "params": {"urls": [f"http://127.0.0.1:9/{n}.bin"]}})
                                 for n in range(40)))
    tasks = await asyncio.gather(*(get_task(api, task_id) for task_id in ids))
    assert [t["task_id"] for t in tasks] == list(ids) and len(set(ids)) == 40
    listed = go_body(await api.client.get("/api/v1/tasks"))
    assert listed["total"] == 40 and {t["task_id"] for t in listed["tasks"]} == set(ids)


async def test_auth_middleware(make_api: ApiFactory) -> None:
    """api/auth.go: every path but fetchdeck's public /health (and its OpenAPI document) needs the token;
    the three messages; the scheme in any case; the check runs before routing."""
    api = await saveany(make_api)
    anonymous = api.new_client()
    for path in ("/api/v1/tasks", "/api/v1/storages", "/nope", "/api/v1/tasks/1"):
        check_error(await anonymous.get(path), 401, "unauthorized", "missing authorization header")
    for header, message in (("Basic", "invalid authorization header format"),
                            (f"Token {TOKEN}", "invalid authorization header format"),
                            ("Bearer nope", "invalid token"), ("Bearer", "invalid authorization header format")):
        check_error(await anonymous.get("/api/v1/tasks", headers={"Authorization": header}), 401, "unauthorized",
                    message)
    # fetchdeck trims the token (the real server compares " <token>" after two spaces, and refuses it).
    assert (await anonymous.get("/api/v1/tasks", headers={"Authorization": f"Bearer  {TOKEN}"})).status_code == 200
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await anonymous.get("/api/v1/task-types", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200, response.text
    assert go_body(await anonymous.get("/health")) == {"status": "ok"}
    assert (await anonymous.get("/api/openapi/saveany.json")).status_code == 200


# ---------------------------------------------------------------- a client per the seed document: curl


async def curl(api: Api, *args: str) -> tuple[int, str]:
    """Run the real curl (in a subprocess: the server runs in this event loop); (status, body)."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_client_per_the_seed_document(make_api: ApiFactory, files: FileServer) -> None:
    api = await saveany(make_api)
    base = api.url
    auth = ["-H", f"Authorization: Bearer {TOKEN}"]
    data = random_bytes(120_000, seed=21)
    url = files.add("/file.zip", data)
    status, body = await curl(api, *auth, f"{base}/api/v1/storages")
    assert status == 200 and json.loads(body)["storages"][0] == {"name": "local", "type": "local"}
    request = json.dumps({"type": "directlinks", "storage": "local", "path": "downloads", "params": {"urls": [url]}})
    status, body = await curl(api, "-X", "POST", "-H", "Content-Type: application/json", *auth, "-d", request,
                              f"{base}/api/v1/tasks")
    assert status == 201, body
    answer = json.loads(body)
    assert list(answer) == ["task_id", "type", "status", "created_at"] and answer["status"] == "queued"
    done = await poll(api, answer["task_id"], lambda t: t["status"] == "completed")
    assert done["progress"] == {"total_bytes": len(data), "downloaded_bytes": len(data), "percent": 100}
    assert (api.download_dir / "downloads" / "file.zip").read_bytes() == data
    status, body = await curl(api, *auth, f"{base}/api/v1/tasks/{answer['task_id']}")
    assert status == 200 and json.loads(body)["status"] == "completed" and body.endswith("}\n")
    # `curl -d` without -H sends application/x-www-form-urlencoded: read as JSON anyway, like Go does.
    status, body = await curl(api, *auth, "-d", json.dumps({"type": "tgfiles", "storage": "local", "params": {}}),
                              f"{base}/api/v1/tasks")
    assert status == 400
    assert json.loads(body) == {"error": "task_creation_failed", "message": "no message links provided"}
    status, body = await curl(api, *auth, "-X", "DELETE", f"{base}/api/v1/tasks/{answer['task_id']}")
    assert (status, json.loads(body)["error"]) == (500, "cancel_failed")
    assert json.loads(body)["message"] == f"failed to cancel task: task {answer['task_id']} does not exist"
    status, body = await curl(api, f"{base}/api/v1/tasks")
    assert (status, json.loads(body)) == (401, {"error": "unauthorized", "message": "missing authorization header"})
    status, body = await curl(api, f"{base}/health")
    assert (status, body) == (200, '{"status":"ok"}\n')


# ---------------------------------------------------------------- downloads, progress, webhooks


async def test_multi_url_directlinks_download_with_live_progress(make_api: ApiFactory, files: FileServer) -> None:
    """A three-URL directlinks task: one task, its progress summed over the files while a throttled
    download runs (bytes, files, percent by bytes, the live speed in MiB/s), the files byte for byte,
    the webhook's body as json.Marshal writes WebhookPayload."""
    api = await saveany(make_api)
    blobs = {name: random_bytes(size, seed=n) for n, (name, size) in
             enumerate((("a.bin", 240_000), ("b.bin", 160_000), ("c.bin", 200_000)))}
    urls = [files.add(f"/dl/{name}", data) for name, data in blobs.items()]
    total = sum(len(d) for d in blobs.values())
    files.faults.throttle(None, 150_000)
    hook = await Receiver().start()
    try:
        task_id = await created(api, {"type": "directlinks", "storage": "test-storage-dir", "path": "set/one",
                                      "webhook": hook.url, "params": {"urls": urls}})
        running = await poll(api, task_id, lambda t: t["status"] == "running" and "downloaded_bytes" in t.get(
            "progress", {}) and "total_bytes" in t["progress"] and "speed_mbps" in t["progress"])
        progress = running["progress"]
        assert progress["total_bytes"] == total and 0 < progress["downloaded_bytes"] < total, progress
        assert progress["total_files"] == 3 and progress.get("downloaded_files", 0) < 3, progress
        assert 0 < progress["percent"] < 100 and isinstance(progress["speed_mbps"], float), progress
        assert progress["speed_mbps"] < 10, progress  # throttled to 3 × 150 kB/s
        assert running["title"] == "[directlinks](a.bin...->test-storage-dir:set/one)"
        assert (running["storage"], running["path"]) == ("test-storage-dir", "set/one")
        listed = go_body(await api.client.get("/api/v1/tasks"))
        assert listed["total"] == 1 and listed["tasks"][0]["task_id"] == task_id  # the group is one task
        done = await poll(api, task_id, lambda t: t["status"] == "completed")
        assert done["progress"] == {"total_bytes": total, "downloaded_bytes": total, "total_files": 3,
                                    "downloaded_files": 3, "percent": 100}
        raw = (await api.client.get(f"/api/v1/tasks/{task_id}")).text
        assert '"percent":100,' in raw or '"percent":100}' in raw  # float64 100 is written 100, not 100.0
        folder = api.download_dir / "other" / "set" / "one"
        for name, data in blobs.items():
            assert (folder / name).read_bytes() == data, name
        await wait_for(lambda: asyncio.sleep(0, hook.raw), timeout=10)
    finally:
        await hook.stop()
    (headers, _, _), body = hook.requests[0], hook.raw[0]
    assert len(hook.raw) == 1
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "SaveAny-Bot/1.0"
    payload = json.loads(body)
    assert list(payload) == ["task_id", "type", "status", "storage", "path", "completed_at"]
    assert body == go_marshal(payload).encode()  # json.Marshal: compact, no newline
    assert payload["task_id"] == task_id and payload["status"] == "completed"
    assert (payload["type"], payload["storage"], payload["path"]) == ("directlinks", "test-storage-dir", "set/one")
    assert check_time(payload["completed_at"]) >= check_time(done["created_at"])


async def test_group_webhook_not_sent_while_the_group_is_being_created(make_api: ApiFactory, files: FileServer,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that starts (and finishes) before the leader lists it: the group is not reported as the stopped
    leader alone ("cancelled"); the one webhook says completed once every file is in."""
    api = await saveany(make_api)
    urls = [files.add(f"/grp/{n}.bin", random_bytes(1000, seed=n)) for n in range(3)]
    real_update = api.engine.update

    async def late_update(task_id: int, patch: Any) -> Any:  # the window a slow machine leaves open
        async def members_done() -> bool:  # the members are the next two ids
            return [(await api.engine.get(task_id + n)).status for n in (1, 2)] == ["success"] * 2
        await wait_for(members_done, timeout=10)
        for _ in range(5):  # let the event consumer handle the members' events
            await asyncio.sleep(0)
        return await real_update(task_id, patch)

    monkeypatch.setattr(api.engine, "update", late_update)
    hook = await Receiver().start()
    try:
        task_id = await created(api, {"type": "directlinks", "storage": "local", "webhook": hook.url,
                                      "params": {"urls": urls}})
        await poll(api, task_id, lambda t: t["status"] == "completed")
        await wait_for(lambda: asyncio.sleep(0, hook.raw), timeout=10)
    finally:
        await hook.stop()
    assert [json.loads(body)["status"] for body in hook.raw] == ["completed"]


async def test_failed_task_error_field_and_webhook(make_api: ApiFactory, files: FileServer) -> None:
    """A failed download: `error` set (omitempty elsewhere), no `progress` (nothing known), the webhook
    with `error` and `completed_at`; cancelling it is the real queue's cancel_failed."""
    api = await saveany(make_api)
    hook = await Receiver().start()
    try:
        task_id = await created(api, {"type": "directlinks", "storage": "local", "webhook": hook.url,
                                      "params": {"urls": [files.url("/missing.bin")]}})
        failed = await poll(api, task_id, lambda t: t["status"] == "failed")
        assert "404" in failed["error"] and "progress" not in failed and failed["path"] == ""
        await wait_for(lambda: asyncio.sleep(0, hook.raw), timeout=10)
    finally:
        await hook.stop()
    payload = json.loads(hook.raw[0])
    assert list(payload) == WEBHOOK_FIELDS and payload["status"] == "failed" and payload["error"] == failed["error"]
    check_time(payload["completed_at"])
    check_error(await api.client.delete(f"/api/v1/tasks/{task_id}"), 500, "cancel_failed",
                f"failed to cancel task: task {task_id} does not exist")


async def test_cancel_a_running_download(make_api: ApiFactory, files: FileServer) -> None:
    """DELETE of a running task: 200, then `cancelled` (the real server usually ends it `failed`
    with `context canceled`, see docs); a second DELETE is 200 again in fetchdeck."""
    api = await saveany(make_api)
    files.add("/slow.bin", random_bytes(3_000_000, seed=3))
    files.faults.throttle(None, 60_000)
    task_id = await created(api, {"type": "directlinks", "storage": "local",
                                  "params": {"urls": [files.url("/slow.bin")]}})
    running = await poll(api, task_id, lambda t: "downloaded_bytes" in t.get("progress", {}))
    assert running["status"] == "running" and running["progress"]["total_bytes"] == 3_000_000
    for _ in range(2):
        response = await api.client.delete(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200 and go_body(response) == {"message": "task cancelled successfully"}
    cancelled = await poll(api, task_id, lambda t: t["status"] == "cancelled")
    assert "speed_mbps" not in cancelled["progress"] and "error" not in cancelled


async def test_saveany_listener_beside_the_main_one(make_api: ApiFactory) -> None:
    """On the main listener SaveAny's paths answer SaveAny's way too; only the SaveAny listener answers
    SaveAny's way on every path."""
    main = await make_api(token=TOKEN, api={"storages": STORAGES})
    main.client.headers.update(BEARER)
    other = await main.listener("saveany")
    other.client.headers.update(BEARER)
    assert other.main is main
    main.engine.scheduler.max_concurrent = 0
    task_id = await created(other, {"type": "ytdlp", "storage": "local", "path": "v",
                                    "params": {"urls": ["http://127.0.0.1:9/watch?v=1", "http://127.0.0.1:9/w"]}})
    seen_main, seen_other = await get_task(main, task_id), await get_task(other, task_id)
    assert seen_main == seen_other and seen_main["title"] == "[ytdlp](2 URLs->local:v)"
    assert seen_main["progress"] == {"total_files": 2}  # nothing downloaded yet: only the file count is known
    check_error(await main.client.get("/api/v1/nope"), 404, "not_found", "endpoint not found: /api/v1/nope")
    check_error(await other.client.get("/api/nope"), 404, "not_found", "endpoint not found: /api/nope")
    assert (await main.client.get("/api/nope")).json()["success"] is False  # main: the native envelope
