"""A task's own notifications through the native API (`notify`, `notifyUrls` on POST /api/downloads)."""

from __future__ import annotations

import asyncio
import json
import time

from tests.api.conftest import Api
from tests.support.fileserver import FileServer, random_bytes
from tests.support.notify_receiver import Receiver


async def test_a_tasks_own_notify_urls_are_notified_and_checked(api: Api, files: FileServer) -> None:
    receiver = await Receiver().start()
    try:
        url = files.add("/song.flac", random_bytes(50_000, seed=9))
        topic = f"ntfy://127.0.0.1:{receiver.port}/per-task"
        (task,) = await api.create({"url": url, "notifyUrls": [topic]}, start=True)
        (quiet,) = await api.create({"url": url, "name": "quiet.flac", "notify": False, "notifyUrls": [topic]},
                                    start=True)
        await api.wait_status(task["id"], "success")
        await api.wait_status(quiet["id"], "success")
        deadline = time.monotonic() + 10
        while not receiver.requests:
            assert time.monotonic() < deadline, "no notification"
            await asyncio.sleep(0.05)
        await api.engine.close()  # the grace period: whatever was pending has been sent
        assert [json.loads(raw)["title"] for _, _, raw, _ in receiver.requests] == ["fetchdeck: downloaded: song.flac"]
    finally:
        await receiver.stop()


async def test_a_bad_notify_url_is_refused_naming_the_field(api: Api) -> None:
    body = await api.fail("POST", "/api/downloads", 400, 40002,
                          json={"tasks": [{"url": "http://127.0.0.1:9/x", "notifyUrls": ["ntfy.sh/no-scheme"]}]})
    assert body["message"].startswith("tasks[0].notify_urls: not an Apprise URL: 'ntfy.sh/no-scheme'"), body
    assert (await api.call("GET", "/api/downloads"))["total"] == 0
