"""The SaveAny-Bot HTTP API (shared/seeds/saveany-bot-http-api.zh.txt) against the real server.

Real downloads from 127.0.0.1, a real webhook receiver (answers 500 first), a
real aria2c JSON-RPC daemon when installed. Codes and messages are the real server's
(krau/SaveAny-Bot api/*.go); tests/clients/test_saveany_clients.py replays its own tests.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.compat_support import CompatFactory, Receiver, aria2_daemon, make_compat, receiver, wait_for
from tests.api.conftest import Api
from tests.support.fileserver import FileServer, random_bytes
from tests.support.media_fixtures import get_media, probe
from tests.support.proxies import HttpProxy

__all__ = ["make_compat", "receiver"]
TOKEN = "sa-token"
# Go's time.Time in JSON: RFC 3339, fraction with trailing zeros trimmed, the server's offset (Z in UTC).
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def start(make_compat: CompatFactory, **kw: Any) -> Api:
    api = await make_compat(token=TOKEN, api={"storages": ["local=", "media=media", "backup=backup"]}, **kw)
    api.client.headers.update(AUTH)
    return api


async def ok(api: Api, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    response = await api.client.request(method, path, **kw)
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


async def error(api: Api, method: str, path: str, status: int, code: str, message: str | None = None,
                **kw: Any) -> str:
    """A request that must fail with this status, code (and message, when given)."""
    response = await api.client.request(method, path, **kw)
    body = response.json()
    assert (response.status_code, body) == (status, {"error": code, "message": body.get("message")}), body
    assert body["message"] and (message is None or body["message"] == message), body
    return body["message"]  # type: ignore[no-any-return]


async def create(api: Api, **body: Any) -> dict[str, Any]:
    created = await ok(api, "POST", "/api/v1/tasks", 201, json=body)
    assert set(created) == {"task_id", "type", "status", "created_at"} and created["status"] == "queued"
    assert created["type"] == body["type"] and ISO.match(created["created_at"])
    return created  # type: ignore[no-any-return]


async def until(api: Api, task_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        task = await ok(api, "GET", f"/api/v1/tasks/{task_id}")
        assert task["status"] != "failed" or "failed" in statuses, task
        return task if task["status"] in statuses else None

    return await wait_for(check, timeout)  # type: ignore[no-any-return]


async def test_directlinks_group_progress_and_webhook_with_retry(
    make_compat: CompatFactory, files: FileServer, receiver: Receiver
) -> None:
    api = await start(make_compat)
    one, two = random_bytes(300_000, seed=5), random_bytes(200_000, seed=6)
    urls = [files.add("/d/one.bin", one), files.add("/d/two.bin", two)]
    files.faults.throttle(None, 400_000)
    created = await create(api, type="directlinks", storage="media", path="downloads", webhook=receiver.url,
                           params={"urls": urls})
    task_id = created["task_id"]
    running = await until(api, task_id, "running")
    assert running["storage"] == "media" and running["path"] == "downloads"
    assert running["title"] == "[directlinks](one.bin...->media:downloads)"  # the real Title() format
    done = await until(api, task_id, "completed")
    # Both files done: no speed (omitted when 0), percent by bytes.
    assert done["progress"] == {"total_bytes": 500_000, "downloaded_bytes": 500_000, "total_files": 2,
                                "downloaded_files": 2, "percent": 100}
    assert "error" not in done and ISO.match(done["updated_at"])
    folder = api.download_dir / "media" / "downloads"
    assert (folder / "one.bin").read_bytes() == one and (folder / "two.bin").read_bytes() == two
    listed = await ok(api, "GET", "/api/v1/tasks")
    assert listed == {"tasks": [done], "total": 1}  # the group is one task
    # The receiver answered 500 first: one retry ~1 s later, then exactly one delivery.
    await wait_for(lambda: asyncio.sleep(0, receiver.delivered), timeout=10)
    await asyncio.sleep(0.5)
    assert [status for *_, status in receiver.requests] == [500, 200]
    headers, body, _ = receiver.requests[-1]
    assert headers["User-Agent"] == "SaveAny-Bot/1.0" and headers["Content-Type"] == "application/json"
    assert body == {"task_id": task_id, "type": "directlinks", "status": "completed", "storage": "media",
                    "path": "downloads", "completed_at": body["completed_at"]}
    assert ISO.match(body["completed_at"])
    log = (await api.call("GET", f"/api/downloads/{task_id}/logs"))["log"]
    assert "HTTP 500; retrying in 1 s" in log and "delivered, HTTP 200" in log
    # The real server's answer: its queue has let go of a finished task.
    await error(api, "DELETE", f"/api/v1/tasks/{task_id}", 500, "cancel_failed",
                f"failed to cancel task: task {task_id} does not exist")


async def test_cancel_sends_one_cancelled_webhook(make_compat: CompatFactory, files: FileServer,
                                                  receiver: Receiver) -> None:
    api = await start(make_compat)
    receiver.fail_first = 0
    url = files.add("/slow.bin", random_bytes(2_000_000, seed=7))
    files.faults.throttle(None, 50_000)
    task_id = (await create(api, type="directlinks", storage="local", path="", webhook=receiver.url,
                            params={"urls": [url]}))["task_id"]
    await wait_for(lambda: _progressing(api, task_id), timeout=20)
    assert await ok(api, "DELETE", f"/api/v1/tasks/{task_id}") == {"message": "task cancelled successfully"}
    cancelled = await until(api, task_id, "cancelled")
    assert cancelled["progress"]["total_bytes"] == 2_000_000
    await wait_for(lambda: asyncio.sleep(0, receiver.delivered), timeout=5)
    # Cancelling it again is no failure (DELETE is idempotent; it was a 500 cancel_failed) and sends nothing.
    assert await ok(api, "DELETE", f"/api/v1/tasks/{task_id}") == {"message": "task cancelled successfully"}
    await asyncio.sleep(0.3)
    assert [b["status"] for b in receiver.delivered] == ["cancelled"]
    assert "completed_at" not in receiver.delivered[0]


async def test_failure_webhook_carries_the_error(make_compat: CompatFactory, files: FileServer,
                                                 receiver: Receiver) -> None:
    api = await start(make_compat)
    receiver.fail_first = 0
    task_id = (await create(api, type="directlinks", storage="local", webhook=receiver.url,
                            params={"urls": [files.url("/nothing-here.bin")]}))["task_id"]
    failed = await until(api, task_id, "failed")
    assert "404" in failed["error"] and "progress" not in failed
    await wait_for(lambda: asyncio.sleep(0, receiver.delivered), timeout=5)
    body = receiver.delivered[0]
    assert body["status"] == "failed" and "404" in body["error"] and ISO.match(body["completed_at"])


async def test_ytdlp_parseditem_tphpics_transfer_and_tgfiles(make_compat: CompatFactory, files: FileServer) -> None:
    api = await start(make_compat)
    media = get_media()
    files.add_dir("/m", media.dir)
    # ytdlp with allow-listed flags; a dangerous flag is refused before anything runs.
    yt = await create(api, type="ytdlp", storage="media", path="videos",
                      params={"urls": [files.url("/m/v360.mp4")], "flags": ["--no-mtime"]})
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "ytdlp", "storage": "local", "params": {"urls": [files.url("/m/v360.mp4")],
                                                                             "flags": ["--exec", "id"]}})
    assert "--exec" in msg
    # parseditem: yt-dlp must be able to parse the page.
    parsed = await create(api, type="parseditem", storage="local", path="parsed",
                          params={"url": files.url("/m/page.html")})
    await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                json={"type": "parseditem", "storage": "local", "params": {"url": files.url("/m/empty.html")}})
    # tphpics: every image of an article page.
    img1, img2 = random_bytes(5_000, seed=1), random_bytes(6_000, seed=2)
    files.add("/file/a.jpg", img1)
    files.add("/file/b.png", img2)
    files.add("/Some-Article-01-01", b'<html><body><h1>T</h1><figure><img src="/file/a.jpg"></figure>'
              b'<p>x</p><img src="/file/b.png"><img src="/file/a.jpg"></body></html>',
              content_type="text/html")
    tph = await create(api, type="tphpics", storage="local", path="telegraph",
                       params={"telegraph_url": files.url("/Some-Article-01-01")})
    # transfer: a folder from one storage into another.
    source = api.download_dir / "backup" / "set"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha" * 1000)
    (source / "sub" / "b.bin").write_bytes(random_bytes(70_000, seed=3))
    moved = await create(api, type="transfer", storage="local", params={
        "source_storage": "backup", "source_path": "set", "target_storage": "media", "target_path": "restored"})
    await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", json={
        "type": "transfer", "storage": "local", "params": {"source_storage": "backup", "source_path": "nope",
                                                          "target_storage": "media", "target_path": "x"}})
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", json={
        "type": "tgfiles", "storage": "local", "params": {"message_links": ["https://t.me/username/123"]}})
    assert "Telegram" in msg and "session" in msg
    for created in (yt, parsed, tph, moved):
        await until(api, created["task_id"], "completed")
    assert (api.download_dir / "media" / "videos" / "v360.mp4").read_bytes() == media.bytes("v360.mp4")
    parsed_file = next((api.download_dir / "parsed").iterdir())
    assert [s.kind for s in probe(parsed_file)] == ["Video", "Audio"]
    assert (api.download_dir / "telegraph" / "a.jpg").read_bytes() == img1
    assert (api.download_dir / "telegraph" / "b.png").read_bytes() == img2
    target = api.download_dir / "media" / "restored" / "set"
    assert (target / "a.txt").read_bytes() == b"alpha" * 1000
    assert (target / "sub" / "b.bin").read_bytes() == (source / "sub" / "b.bin").read_bytes()
    listed = await ok(api, "GET", "/api/v1/tasks")
    assert [t["type"] for t in listed["tasks"]] == ["ytdlp", "parseditem", "tphpics", "transfer"]
    assert listed["tasks"][3]["storage"] == "media" and listed["tasks"][3]["path"] == "restored"


async def test_aria2_delegation(make_compat: CompatFactory, files: FileServer, tmp_path: Path,
                                receiver: Receiver) -> None:
    data = random_bytes(1_500_000, seed=9)
    url = files.add("/big.iso", data)
    with aria2_daemon("rpc-secret", tmp_path / "aria2") as rpc:
        api = await start(make_compat, aria2={"rpc_url": rpc, "secret": "rpc-secret", "poll_interval": 0.1})
        receiver.fail_first = 0
        task_id = (await create(api, type="aria2", storage="media", path="iso", webhook=receiver.url,
                                params={"urls": [url], "options": {"split": "2", "max-connection-per-server": "2"}}))[
            "task_id"]
        done = await until(api, task_id, "completed")
        assert (api.download_dir / "media" / "iso" / "big.iso").read_bytes() == data
        assert done["progress"]["downloaded_bytes"] == len(data) and done["type"] == "aria2"
        await wait_for(lambda: asyncio.sleep(0, receiver.delivered), timeout=5)
        assert receiver.delivered[0]["type"] == "aria2"
        msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", json={
            "type": "aria2", "storage": "local", "params": {"urls": [url], "options": {"dir": "/etc"}}})
        assert "'dir' is not allowed" in msg
        # Cancel a slow one: aria2 lets go of it.
        files.faults.throttle(None, 50_000)
        slow = (await create(api, type="aria2", storage="local", params={"urls": [files.add("/slow.iso", data)]}))[
            "task_id"]
        await wait_for(lambda: _progressing(api, slow), timeout=20)
        await ok(api, "DELETE", f"/api/v1/tasks/{slow}")
        await until(api, slow, "cancelled")
    plain = await start(make_compat)
    msg = await error(plain, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "aria2", "storage": "local", "params": {"urls": [url]}})
    assert msg.startswith("aria2 is not enabled")


async def _progressing(api: Api, task_id: str) -> bool:
    task = await ok(api, "GET", f"/api/v1/tasks/{task_id}")
    return bool(task["status"] == "running" and task.get("progress", {}).get("downloaded_bytes"))


async def test_health_storages_types_auth_and_errors(make_compat: CompatFactory) -> None:
    api = await start(make_compat)
    anonymous = api.new_client()
    assert (await anonymous.get("/health")).json() == {"status": "ok"}  # fetchdeck: /health needs no token
    for headers, message in (({}, "missing authorization header"),
                             ({"Authorization": "Bearer wrong"}, "invalid token"),
                             ({"Authorization": f"Token {TOKEN}"}, "invalid authorization header format"),
                             ({"Authorization": "Bearer"}, "invalid authorization header format"),
                             ({"X-API-Key": "wrong"}, "invalid token")):
        response = await anonymous.get("/api/v1/tasks", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json() == {"error": "unauthorized", "message": message}
    assert (await anonymous.get("/api/v1/tasks", headers={"Authorization": f"bearer {TOKEN}"})).status_code == 200
    assert await ok(api, "GET", "/api/v1/storages") == {"storages": [
        {"name": "local", "type": "local"}, {"name": "media", "type": "local"}, {"name": "backup", "type": "local"}]}
    assert await ok(api, "GET", "/api/v1/task-types") == {"types": [
        "directlinks", "ytdlp", "aria2", "parseditem", "tgfiles", "tphpics", "transfer"]}
    assert await ok(api, "GET", "/api/v1/tasks") == {"tasks": [], "total": 0}
    await error(api, "PUT", "/api/v1/tasks", 405, "method_not_allowed", "method not allowed: PUT", json={})
    await error(api, "POST", "/api/v1/storages", 405, "method_not_allowed", "only GET method is allowed")
    await error(api, "POST", "/api/v1/health", 404, "not_found", "endpoint not found: /api/v1/health", json={})
    await error(api, "POST", "/api/v1/tasks", 400, "invalid_request", "failed to decode request body: unexpected EOF",
                content=b"{", headers={"Content-Type": "application/json"})
    await error(api, "POST", "/api/v1/tasks", 400, "invalid_request", "storage is required",
                json={"type": "directlinks"})
    await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", "unsupported task type: bogus",
                json={"type": "bogus", "storage": "local", "params": {}})
    await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", "storage not found: nowhere",
                json={"type": "directlinks", "storage": "nowhere", "params": {"urls": ["http://x.invalid/a"]}})
    await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", "no URLs provided",
                json={"type": "directlinks", "storage": "local", "params": {"urls": []}})
    # fetchdeck refuses at creation what could never download (the real server fails the task later).
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "directlinks", "storage": "local", "params": {"urls": ["ftp://x/a"]}})
    assert msg.startswith("invalid URL 'ftp://x/a'")
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", json={
        "type": "directlinks", "storage": "local", "webhook": "javascript:x", "params": {"urls": ["http://x.invalid/"]}})
    assert msg.startswith("invalid webhook: ")
    await error(api, "GET", "/api/v1/tasks/", 400, "invalid_request", "task ID is required")
    await error(api, "DELETE", "/api/v1/tasks/", 400, "invalid_request", "task ID is required")
    await error(api, "GET", "/api/v1/tasks/12345", 404, "task_not_found", "task not found: 12345")
    await error(api, "GET", "/api/v1/tasks/abc", 404, "task_not_found", "task not found: abc")
    await error(api, "DELETE", "/api/v1/tasks/12345", 404, "task_not_found", "task not found: 12345")
    assert (await ok(api, "GET", "/api/v1/tasks"))["total"] == 0


async def test_one_engine_behind_every_dialect(make_compat: CompatFactory, files: FileServer) -> None:
    """A task made through any dialect is visible through all of them (and the native API the TUI uses).
    The m3u8 dialect's /api/tasks is on its own listener (on the main one it is MediaGo's queue API)."""
    api = await start(make_compat)
    m3u8 = await api.listener("m3u8")
    m3u8.client.headers.update(AUTH)
    data = random_bytes(100_000, seed=11)
    url = files.add("/shared.bin", data)
    sa = (await create(api, type="directlinks", storage="local", params={"urls": [url]}))["task_id"]
    m3 = (await ok(m3u8, "POST", "/api/tasks", json={"url": files.url("/x.m3u8"), "filename": "clip"}))["id"]
    dn = (await ok(api, "POST", "/api/downloads/add", json={"url": files.url("/v.mp4")}))["task_id"]
    native = await api.call("POST", "/api/downloads", json={"tasks": [{"type": "direct", "url": url}]})
    nv = str(native[0]["id"])
    await until(api, sa, "completed")
    ids = {sa, m3, dn, nv}
    assert {t["task_id"] for t in (await ok(api, "GET", "/api/v1/tasks"))["tasks"]} == ids
    assert {t["id"] for t in await ok(m3u8, "GET", "/api/tasks")} == ids
    assert {t["id"] for t in await ok(api, "GET", "/api/downloads/tasks")} == ids
    assert {str(t["id"]) for t in (await api.call("GET", "/api/downloads"))["list"]} == ids
    m3u8_view = {t["id"]: t for t in await ok(m3u8, "GET", "/api/tasks")}
    assert m3u8_view[sa]["status"] == "已完成" and m3u8_view[dn]["status"] == "已暂停"
    downie_view = await ok(api, "GET", f"/api/downloads/tasks/{sa}")
    assert downie_view["status"] == "completed" and downie_view["total_bytes"] == len(data)
    assert (await ok(api, "GET", f"/api/v1/tasks/{dn}"))["type"] == "ytdlp"
    assert (await api.call("GET", f"/api/downloads/{m3}"))["type"] == "m3u8"
    # Cancel through one dialect, delete through another.
    await ok(m3u8, "DELETE", "/api/tasks", params={"id": sa})
    await error(api, "GET", f"/api/v1/tasks/{sa}", 404, "task_not_found")


@pytest.mark.parametrize("env", [{"FETCHDECK_API_STORAGES": "local=,cold=/srv/cold", "FETCHDECK_ARIA2_SECRET": "s"}])
def test_config_sections_take_env_overrides(env: dict[str, str], tmp_path: Path) -> None:
    from core.config import load_config

    config = load_config(tmp_path / "none.toml", env)
    assert config.api.storages == ["local=", "cold=/srv/cold"] and config.aria2.secret == "s"
    assert config.api.enable is True and config.aria2.rpc_url == ""


async def test_params_decode_as_the_go_structs_and_fail_in_the_real_order(make_compat: CompatFactory) -> None:
    """Found by schemathesis (server/openapi/saveany.json): directlinks refused `flags`/`options` of the wrong
    type (they are ytdlp's and aria2's: unknown params are ignored, as by the Go structs). Every params problem
    is 400 task_creation_failed, checked in the real factory's order: decode, the type's own checks
    (`no URLs provided`), whether aria2 is enabled, then fetchdeck's own (URLs, options)."""
    api = await start(make_compat)
    api.engine.scheduler.max_concurrent = 0
    await create(api, type="directlinks", storage="local",
                 params={"urls": ["http://127.0.0.1:9/a.bin"], "flags": 5, "options": "x", "message_links": 1})
    failures = [
        ({"type": "ytdlp", "params": {"urls": ["http://127.0.0.1:9/v"], "flags": 5}},
         "invalid params: json: cannot unmarshal number into Go struct field YTDLPParams.flags of type []string"),
        ({"type": "directlinks", "params": {"urls": ["http://127.0.0.1:9/v", 7]}},
         "invalid params: json: cannot unmarshal number into Go struct field DirectLinksParams.urls of type string"),
        ({"type": "directlinks", "params": []},
         "invalid params: json: cannot unmarshal array into Go value of type api.DirectLinksParams"),
        ({"type": "directlinks"}, "invalid params: unexpected end of JSON input"),
        ({"type": "directlinks", "params": None}, "no URLs provided"),
        ({"type": "directlinks", "params": {"URLS": ["http://127.0.0.1:9/a"], "urls": None}}, "no URLs provided"),
        ({"type": "tgfiles", "params": {"message_links": []}}, "no message links provided"),
        ({"type": "parseditem", "params": {"url": ""}}, "no URL provided"),
        ({"type": "tphpics", "params": {}}, "no telegraph URL provided"),
        ({"type": "aria2", "params": {"urls": []}}, "no URLs provided"),
        ({"type": "aria2", "params": {"urls": ["magnet:?xt=x"], "options": {"split": 4}}},
         "invalid params: json: cannot unmarshal number into Go struct field Aria2Params.options of type string"),
        ({"type": "transfer", "params": {"source_storage": "nope"}}, "source storage not found: nope"),
        ({"type": "transfer", "params": {"source_storage": "backup", "target_storage": ""}},
         "target storage not found: "),
    ]
    for body, message in failures:
        await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", message,
                    json={"storage": "local", **body})
    for options in ({"dir": "/"}, {"split": "2"}):  # not enabled comes first, whatever the options
        msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", json={
            "type": "aria2", "storage": "local", "params": {"urls": ["magnet:?xt=x"], "options": options}})
        assert msg.startswith("aria2 is not enabled")
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "tgfiles", "storage": "local", "params": {"message_links": ["https://t.me/a/1"]}})
    assert msg.startswith("no files found in provided links")
    assert (await ok(api, "GET", "/api/v1/tasks"))["total"] == 1


async def test_urls_no_download_could_fetch_are_refused_not_crashed(make_compat: CompatFactory) -> None:
    """Found by schemathesis: a telegraph_url with a host IDNA cannot encode was a 500 (httpx.InvalidURL, or a
    UnicodeError for an empty label); such a webhook or direct link was accepted and crashed later."""
    api = await start(make_compat)
    api.engine.scheduler.max_concurrent = 0
    bad = "http://x\u0085y/a"
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "tphpics", "storage": "local", "params": {"telegraph_url": bad}})
    assert msg.startswith("failed to extract telegraph images: invalid URL ")
    await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                json={"type": "directlinks", "storage": "local", "params": {"urls": ["http://127.0.0.1:9/", bad]}})
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed", json={
        "type": "directlinks", "storage": "local", "webhook": bad, "params": {"urls": ["http://127.0.0.1:9/"]}})
    assert msg.startswith("invalid webhook: ")
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "tphpics", "storage": "local", "params": {"telegraph_url": "http://a..b/x"}})
    assert "not a valid host name" in msg
    assert (await ok(api, "GET", "/api/v1/tasks"))["total"] == 0


async def test_tphpics_reads_the_page_through_the_download_proxy(make_compat: CompatFactory, files: FileServer) -> None:
    """The article page went straight out, ignoring download.proxy; an <img> with a bad IPv6 address was a 500."""
    api = await start(make_compat)
    api.engine.scheduler.max_concurrent = 0
    image = files.add("/file/a.jpg", random_bytes(1_000, seed=4))
    page = files.add("/Article-01-01", b'<p><img src="/file/a.jpg"></p>', content_type="text/html")
    odd = files.add("/Article-01-02", b'<p><img src="http://[x/y"><img src="  /file/a.jpg "></p>',
                    content_type="text/html")
    with HttpProxy() as proxy:
        api.config.download.proxy = proxy.url
        first = (await create(api, type="tphpics", storage="local", params={"telegraph_url": page}))["task_id"]
        assert proxy.relayed == 1
        second = (await create(api, type="tphpics", storage="local", params={"telegraph_url": odd}))["task_id"]
        assert proxy.relayed == 2
    for task_id in (first, second):
        task = await api.engine.get(int(task_id))
        assert task.url == image and task.options.members == []


async def test_tphpics_page_reading_has_a_deadline(make_compat: CompatFactory, files: FileServer) -> None:
    """A page that trickles in (each read well within the read timeout) held the creation request for as long as
    it lasted; reading it now has a deadline of download.read_timeout in all."""
    api = await start(make_compat)
    page = files.add("/Slow-Article", b"<p>" + b"x" * 20_000 + b'<img src="/a.jpg"></p>', content_type="text/html")
    files.faults.throttle("/Slow-Article", 2_000)
    api.config.download.read_timeout = 0.5
    started = asyncio.get_running_loop().time()
    msg = await error(api, "POST", "/api/v1/tasks", 400, "task_creation_failed",
                      json={"type": "tphpics", "storage": "local", "params": {"telegraph_url": page}})
    assert msg.startswith("failed to extract telegraph images: failed to get telegraph page: ")
    assert "not read within 0.5 s" in msg and asyncio.get_running_loop().time() - started < 5


async def test_the_task_id_is_the_fourth_path_segment(make_compat: CompatFactory) -> None:
    """Found by schemathesis: an id with a slash was a 308 redirect with an HTML body (`/`) or the route 404
    `not_found` (`a/b`). Everything after /api/v1/tasks/ reaches the task routes, and the id is what the real
    server's extractTaskIDFromPath takes: the 4th segment of the (decoded) path, extra segments ignored."""
    api = await start(make_compat)
    api.engine.scheduler.max_concurrent = 0
    task_id = (await create(api, type="directlinks", storage="local",
                            params={"urls": ["http://127.0.0.1:9/a.bin"]}))["task_id"]
    for method in ("GET", "DELETE"):
        for path, shown in (("/api/v1/tasks/a%2Fb", "a"), ("/api/v1/tasks/a/b", "a"), ("/api/v1/tasks/99//", "99"),
                            ("/api/v1/tasks/a%0Ab", "a\nb"), ("/api/v1/tasks/%0A", "\n")):
            await error(api, method, path, 404, "task_not_found", f"task not found: {shown}")
        for path in ("/api/v1/tasks/", "/api/v1/tasks/%2F", "/api/v1/tasks//1"):
            await error(api, method, path, 400, "invalid_request", "task ID is required")
    assert (await ok(api, "GET", f"/api/v1/tasks/{task_id}/extra/x"))["task_id"] == task_id
    assert (await ok(api, "DELETE", f"/api/v1/tasks/{task_id}/")) == {"message": "task cancelled successfully"}


async def test_openapi_document_is_served_without_a_token(make_compat: CompatFactory) -> None:
    api = await start(make_compat)
    response = await api.new_client().get("/api/openapi/saveany.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    assert sorted((path, method) for path, item in paths.items() for method in item if method != "parameters") == [
        ("/api/v1/storages", "get"), ("/api/v1/task-types", "get"), ("/api/v1/tasks", "get"),
        ("/api/v1/tasks", "post"), ("/api/v1/tasks/{task_id}", "delete"), ("/api/v1/tasks/{task_id}", "get"),
        ("/health", "delete"), ("/health", "get"), ("/health", "patch"), ("/health", "post"), ("/health", "put")]
