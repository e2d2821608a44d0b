"""Hostile bodies: oversized (declared or streamed), deeply nested, 10,000 tasks at once, unicode everywhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api, ApiFactory


async def test_streamed_oversized_body_is_413(make_api: ApiFactory) -> None:
    api = await make_api(max_body_bytes=64 * 1024)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit must hold while reading
        yield b'{"tasks": ['
        for _ in range(200):
            yield b'{"type": "direct", "url": "http://example.invalid/' + b"x" * 1000 + b'"},'
        yield b"{}]}"

    try:
        response = await api.client.post("/api/downloads", content=chunks(),
                                          headers={"Content-Type": "application/json"})
    except httpx.TransportError:
        pass  # the server may answer 413 and close while the client is still sending: also a refusal
    else:
        assert response.status_code == 413 and response.json()["code"] == 41300, response.text
    assert (await api.call("GET", "/api/downloads"))["total"] == 0


async def test_deeply_nested_json_is_a_400(api: Api) -> None:
    for depth in (1_000, 100_000):
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth,
                     '{"tasks": ' + "[" * depth + "]" * depth + "}"):
            response = await api.client.post("/api/downloads", content=body.encode(),
                                              headers={"Content-Type": "application/json"})
            envelope = response.json()
            assert response.status_code == 400 and envelope["code"] in (40001, 40002), envelope
            assert envelope["success"] is False and "Traceback" not in response.text
    await api.create({"type": "direct", "url": "http://example.invalid/still-fine.bin"})


async def test_ten_thousand_tasks_in_one_request(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0
    tasks = [{"type": "direct", "url": f"http://example.invalid/{i}.bin", "name": f"n{i}", "folder": f"f{i % 7}"}
             for i in range(10_000)]
    started = time.monotonic()
    created = await api.call("POST", "/api/downloads", json={"tasks": tasks, "startDownload": False})
    elapsed = time.monotonic() - started
    assert len(created) == 10_000 and len({t["id"] for t in created}) == 10_000
    assert elapsed < 20, elapsed
    page = await api.call("GET", "/api/downloads", params={"pageSize": 10_000})
    assert page["total"] == 10_000
    assert (await api.client.get("/api/downloads/1")).status_code == 200  # still responsive


text = st.text(max_size=80)


async def test_unicode_in_every_field(api: Api) -> None:
    """Any text in any field: a 2xx or a 4xx envelope, never a 500; names and folders stay inside."""
    api.engine.scheduler.max_concurrent = 0
    root = api.download_dir.resolve()

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(name=text, folder=text, headers=text, path=text, query=text, url_host=st.sampled_from(
        ["example.invalid", "例え.テスト", "xn--r8jz45g.invalid", "127.0.0.1"]))
    def check(name: str, folder: str, headers: str, path: str, query: str, url_host: str) -> None:
        url = f"http://{url_host}/{path}?q={query}"
        body = {"tasks": [{"type": "direct", "url": url, "name": name, "folder": folder, "headers": headers}],
                "startDownload": False}
        with httpx.Client(base_url=api.url, trust_env=False, timeout=10) as client:
            response = client.post("/api/downloads", json=body)
            assert response.status_code in (200, 400), response.text
            envelope = response.json()
            assert set(envelope) == {"success", "code", "message", "data"}
            if response.status_code == 200:
                (task,) = envelope["data"]
                target = (root / task["folder"] / task["name"]).resolve()
                assert root in target.parents, task
                assert "/" not in task["name"] and "\x00" not in task["name"]
                edited = client.put(f"/api/downloads/{task['id']}", json={"name": name + "✓", "folder": folder})
                assert edited.status_code in (200, 400), edited.text

    await asyncio.to_thread(check)  # blocking client; the server keeps running in this loop
