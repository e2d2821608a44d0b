"""GET /api/events: the documented events for real downloads, replay, heartbeats, many subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.events import TaskChanged
from tests.api.conftest import Api, ApiFactory, RawSse, SseReader, sha256
from tests.support.fileserver import FileServer, random_bytes


@contextlib.asynccontextmanager
async def sse(api: Api, client: httpx.AsyncClient | None = None, **kwargs: object) -> AsyncIterator[SseReader]:
    client = client or api.client
    async with client.stream("GET", "/api/events", **kwargs) as response:  # type: ignore[arg-type]
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        yield SseReader(response)


async def test_create_start_progress_success(api: Api, files: FileServer) -> None:
    data = random_bytes(1_500_000, seed=10)
    url = files.add("/movie.bin", data)
    files.faults.throttle("/movie.bin", 1_500_000)  # about a second: several progress ticks
    async with sse(api) as events:
        ready = await events.next()
        assert ready.event == "ready" and ready.id is not None
        (task,) = await api.create({"type": "direct", "url": url, "name": "movie.bin"}, start=True)
        seen = await events.until(lambda e: e.event in ("download-success", "download-failed"))
    by_type = [e.event for e in seen]
    assert by_type[0] == "download-create"
    assert seen[0].data == {"ids": [task["id"]], "count": 1}
    assert "download-start" in by_type and by_type[-1] == "download-success"
    assert by_type.index("download-start") < by_type.index("download-progress")
    start = seen[by_type.index("download-start")]
    assert start.data == {"id": str(task["id"])}  # the document says {id: string}
    assert seen[-1].data == {"id": str(task["id"])}
    progress = [e.data for e in seen if e.event == "download-progress"]
    assert len(progress) >= 2
    assert all(p["id"] == str(task["id"]) for p in progress) and progress[-1]["total"] == len(data)
    assert [p["downloaded"] for p in progress] == sorted(p["downloaded"] for p in progress)
    assert {"downloaded", "total", "speed", "eta", "percent"} <= set(progress[0])
    ids = [e.id for e in seen]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and ids[0] > ready.id  # type: ignore[operator]
    done = await api.task(task["id"])
    assert sha256(Path(done["file"]).read_bytes()) == sha256(data)


async def test_progress_is_throttled_per_task(api: Api, files: FileServer) -> None:
    url = files.add("/t.bin", random_bytes(2_000_000, seed=11))
    files.faults.throttle("/t.bin", 1_000_000)
    async with sse(api) as events:
        await events.next()
        (task,) = await api.create({"type": "direct", "url": url}, start=True)
        loop = asyncio.get_running_loop()
        started = finished = 0.0
        progress = 0
        while True:
            event = await events.next()
            if event.event == "download-start":
                started = loop.time()
            elif event.event == "download-progress":
                progress += 1
            elif event.event in ("download-success", "download-failed"):
                finished = loop.time()
                break
    assert event.event == "download-success", event
    assert progress >= 3
    assert progress <= 4 * (finished - started) + 2  # ≤ 4 per second (+ the ticks at either end)
    assert (await api.task(task["id"]))["status"] == "success"


async def test_stop_failed_delete_update_events(api: Api, files: FileServer) -> None:
    url = files.add("/s.bin", random_bytes(2_000_000, seed=12))
    files.faults.throttle("/s.bin", 500_000)
    files.faults.fail_status("/gone.bin", status=404, times=None)
    async with sse(api) as events:
        await events.next()
        (task,) = await api.create({"type": "direct", "url": url}, start=True)
        await events.until(lambda e: e.event == "download-progress")
        await api.call("POST", f"/api/downloads/{task['id']}/stop")
        await events.until(lambda e: e.event == "download-stop" and e.data == {"id": str(task["id"])})
        await api.call("PUT", f"/api/downloads/{task['id']}", json={"name": "renamed"})
        await events.until(lambda e: e.event == "download-update" and e.data == {"id": str(task["id"])})
        await api.call("DELETE", f"/api/downloads/{task['id']}")
        await events.until(lambda e: e.event == "download-delete" and e.data == {"id": str(task["id"])})
        (bad,) = await api.create({"type": "direct", "url": files.url("/gone.bin")}, start=True)
        failed = await events.until(lambda e: e.event == "download-failed")
    assert failed[-1].data["id"] == str(bad["id"]) and "404" in failed[-1].data["error"]


async def test_last_event_id_replays_missed_events(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0
    async with sse(api) as events:
        ready = await events.next()
        first = await api.create({"type": "direct", "url": "http://example.invalid/1"})
        got = await events.next()
        assert got.event == "download-create" and got.data["ids"] == [first[0]["id"]]
    # Disconnected: these happen while nobody listens.
    missed = [await api.create({"type": "direct", "url": f"http://example.invalid/m{i}"}) for i in range(3)]
    await api.call("PUT", f"/api/downloads/{missed[0][0]['id']}/live", json={"isLive": True})
    async with sse(api, headers={"Last-Event-ID": str(got.id)}) as events:
        resumed = await events.next()
        assert resumed.event == "ready" and resumed.id == got.id
        replayed = [await events.next() for _ in range(4)]
    assert [e.event for e in replayed] == ["download-create"] * 3 + ["download-update"]
    assert [e.data["ids"] for e in replayed[:3]] == [[m[0]["id"]] for m in missed]
    assert [e.id for e in replayed] == sorted(e.id for e in replayed) and replayed[0].id == got.id + 1  # type: ignore[operator]
    # The query parameter works too (for clients that cannot set headers), and from the very start.
    async with sse(api, params={"lastEventId": str(ready.id)}) as events:
        await events.next()
        again = await events.next()
    assert again.event == "download-create" and again.id == got.id


async def test_reconnect_beyond_the_buffer_gets_resync(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0
    bus = api.engine.bus
    (task,) = await api.create({"type": "direct", "url": "http://example.invalid/1"})
    for _ in range(bus._replay.maxlen + 10):  # type: ignore[operator]
        bus.publish(TaskChanged(task["id"]))
    async with sse(api, headers={"Last-Event-ID": "1"}) as events:
        assert (await events.next()).event == "ready"
        resync = await events.next()
    assert resync.event == "resync" and resync.id is None
    # An id from an earlier server run (beyond anything this server sent) also gets resync.
    async with sse(api, headers={"Last-Event-ID": str(bus.last_seq + 1000)}) as events:
        assert (await events.next()).event == "ready"
        assert (await events.next()).event == "resync"


async def test_heartbeat_comments(make_api: ApiFactory) -> None:
    api = await make_api(heartbeat=0.1)
    async with sse(api) as events:
        await events.next()
        with contextlib.suppress(TimeoutError):
            await events.next(timeout=0.45)
        assert any(line.startswith(": ping") for line in events.comments)


async def test_streams_end_cleanly_on_shutdown(make_api: ApiFactory) -> None:
    api = await make_api()
    async with sse(api) as events:
        await events.next()
        assert api.handle.app.extensions["fetchdeck"].streams.open_streams == 1
        api.handle.app.extensions["fetchdeck"].streams.close()
        with pytest.raises(EOFError):
            await events.next(timeout=5)


async def test_many_subscribers_many_tasks(make_api: ApiFactory, files: FileServer) -> None:
    """200 concurrent SSE subscribers while 50 real downloads run: everyone sees every lifecycle event."""
    api = await make_api(max_concurrent=10)
    subscribers, tasks = 200, 50
    urls = [files.add(f"/many/{i}.bin", random_bytes(40_000, seed=100 + i)) for i in range(tasks)]
    streams = await asyncio.gather(*[RawSse.open(api.handle.port) for _ in range(subscribers)])
    for stream in streams:
        assert (await stream.next()).event == "ready"
    assert api.handle.app.extensions["fetchdeck"].streams.open_streams == subscribers

    async def follow(stream: RawSse) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {"download-create": [], "download-start": [], "download-success": []}
        try:
            while len(seen["download-success"]) < tasks:
                event = await stream.next()
                assert event.event != "download-failed", event.data
                if event.event in seen:
                    seen[event.event].append(str(event.data.get("id", event.data.get("count"))))
        finally:
            stream.close()
        return seen

    runners = [asyncio.create_task(follow(s)) for s in streams]
    created = await api.create(*[{"type": "direct", "url": u} for u in urls], start=True)
    results = await asyncio.wait_for(asyncio.gather(*runners), 60)
    expected = sorted(str(t["id"]) for t in created)
    for seen in results:
        assert seen["download-create"] == [str(tasks)]
        assert sorted(seen["download-start"]) == expected
        assert sorted(seen["download-success"]) == expected
    page = await api.call("GET", "/api/downloads", params={"filter": "success", "pageSize": 100})
    assert page["total"] == tasks


async def test_disconnects_and_head_release_subscriptions(api: Api) -> None:
    bus = api.engine.bus
    baseline = bus.subscriber_count
    head = await api.client.head("/api/events")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    streams = [await RawSse.open(api.handle.port) for _ in range(5)]
    for stream in streams:
        assert (await stream.next()).event == "ready"
    assert api.handle.app.extensions["fetchdeck"].streams.open_streams == 5
    for stream in streams:
        stream.close()
    for _ in range(100):
        if api.handle.app.extensions["fetchdeck"].streams.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert api.handle.app.extensions["fetchdeck"].streams.open_streams == 0
    assert bus.subscriber_count <= baseline + 1  # + the flush clock's own subscription
