"""Stop/start resumes to an intact file; token auth on and off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import Api, ApiFactory, sha256
from tests.support.fileserver import FileServer, random_bytes


async def test_stop_then_start_resumes_to_an_intact_file(api: Api, files: FileServer) -> None:
    data = random_bytes(4_000_000, seed=20)
    url = files.add("/resume.bin", data)
    files.faults.throttle("/resume.bin", 1_500_000)
    (task,) = await api.create({"type": "direct", "url": url, "name": "resume.bin"}, start=True)
    await api.wait_until(task["id"], lambda t: t["downloaded"] > 600_000)
    await api.call("POST", f"/api/downloads/{task['id']}/stop")
    stopped = await api.wait_status(task["id"], "stopped")
    assert 0 < stopped["downloaded"] < len(data)
    assert Path(stopped["file"] + ".part").exists() and not Path(stopped["file"]).exists()
    files.reset_stats()
    files.faults.throttle("/resume.bin", None)
    restarted = await api.call("POST", f"/api/downloads/{task['id']}/start")
    assert restarted["status"] in ("waiting", "downloading")
    done = await api.wait_status(task["id"], "success")
    assert done["downloaded"] == done["total"] == len(data) and done["percent"] == 100
    assert sha256(Path(done["file"]).read_bytes()) == sha256(data)
    # It resumed: the second run fetched (about) what was missing, not the whole file again.
    assert files.stats["/resume.bin"].bytes_sent < len(data) - 500_000


@pytest.fixture
async def secured(make_api: ApiFactory) -> Api:
    return await make_api(token="s3cret-token")


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "query"])
async def test_token_accepted_three_ways(secured: Api, how: str) -> None:
    kwargs: dict[str, object] = {
        "bearer": {"headers": {"Authorization": "Bearer s3cret-token"}},
        "x-api-key": {"headers": {"X-API-Key": "s3cret-token"}},
        "query": {"params": {"token": "s3cret-token"}},
    }[how]
    assert await secured.call("GET", "/api/downloads", **kwargs) == {"total": 0, "list": []}  # type: ignore[arg-type]
    created = await secured.call("POST", "/api/downloads", json={"tasks": [{"url": "http://example.invalid/a"}]},
                                 **kwargs)  # type: ignore[arg-type]
    assert len(created) == 1


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Basic czNjcmV0LXRva2Vu"},
    {"Authorization": "Bearer"},
    {"X-API-Key": "s3cret-token-but-longer"},
    {"X-API-Key": "S3CRET-TOKEN"},
])
async def test_missing_or_wrong_token_is_401(secured: Api, headers: dict[str, str]) -> None:
    body = await secured.fail("GET", "/api/downloads", 401, 40100, headers=headers)
    assert "token" in body["message"]
    await secured.fail("POST", "/api/downloads", 401, 40100, headers=headers,
                       json={"tasks": [{"url": "http://example.invalid/a"}]})
    await secured.fail("GET", "/api/events", 401, 40100, headers=headers)
    await secured.fail("GET", "/api/nothing", 401, 40100, headers=headers)
    assert await secured.engine.list_tasks() is not None
    assert (await secured.engine.list_tasks()).total == 0


async def test_token_protected_server_still_serves_docs_and_sse_with_query_token(secured: Api) -> None:
    response = await secured.client.get("/api/downloads")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert (await secured.client.get("/api/openapi.json")).status_code == 200
    assert (await secured.client.get("/api/docs")).status_code == 200
    async with secured.client.stream("GET", "/api/events", params={"token": "s3cret-token"}) as stream:
        assert stream.status_code == 200
    # With a token, any Host is fine (the token is the protection).
    ok = await secured.client.get("/api/downloads", headers={"Host": "nas.example:39719", "X-API-Key": "s3cret-token"})
    assert ok.status_code == 200


async def test_no_token_means_open_on_loopback(api: Api) -> None:
    assert await api.call("GET", "/api/downloads") == {"total": 0, "list": []}
    assert await api.call("GET", "/api/downloads", headers={"Authorization": "Bearer anything"}) is not None


async def test_allowed_hosts(make_api: ApiFactory) -> None:
    api = await make_api(allowed_hosts=["mybox.lan"])
    assert (await api.client.get("/api/downloads", headers={"Host": "mybox.lan:39719"})).status_code == 200
    await api.fail("GET", "/api/downloads", 403, 40300, headers={"Host": "other.lan"})
