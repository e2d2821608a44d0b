"""The native API's bandwidth endpoints: a running task's own limit, a host's limit, the schedule's state."""

from __future__ import annotations

import time

from tests.api.conftest import Api
from tests.support.fileserver import FileServer, random_bytes


async def test_task_limit_host_limit_and_schedule_over_the_api(api: Api, files: FileServer) -> None:
    data = random_bytes(3_000_000, seed=31)
    url = files.add("/limited.bin", data)
    (task,) = await api.create({"type": "direct", "url": url})
    limited = await api.call("PUT", f"/api/downloads/{task['id']}/limit", json={"speed": "100K"})
    assert limited["speedLimit"] == 100 * 1024
    await api.call("POST", f"/api/downloads/{task['id']}/start")
    running = await api.wait_until(task["id"], lambda t: t["status"] == "downloading" and t["downloaded"] > 0)
    started = time.monotonic()
    later = await api.wait_until(task["id"], lambda t: time.monotonic() - started >= 0.8)
    assert (later["downloaded"] - running["downloaded"]) / (time.monotonic() - started) < 300 * 1024
    assert later["status"] == "downloading"

    await api.fail("PUT", f"/api/downloads/{task['id']}/limit", 400, 40002, json={"speed": "fast"})
    await api.fail("PUT", f"/api/downloads/{task['id']}/limit", 400, 40002, json={"speed": -5})
    await api.fail("PUT", "/api/downloads/999/limit", 404, 40401, json={"speed": "1M"})
    assert await api.call("PUT", "/api/hosts/127.0.0.1/limit", json={"speed": "1M"}) == {}
    assert api.engine.limits.host_rate("127.0.0.1") == 1024 * 1024
    assert await api.call("PUT", "/api/hosts/127.0.0.1/limit", json={"speed": None}) == {}

    unlimited = await api.call("PUT", f"/api/downloads/{task['id']}/limit", json={"speed": 0})
    assert unlimited["speedLimit"] is None
    done = await api.wait_status(task["id"], "success", timeout=10)
    assert open(done["file"], "rb").read() == data

    schedule = await api.call("GET", "/api/schedule")
    assert schedule == {"mode": "normal", "text": "", "until": None, "window": "", "speed": None, "cap": None,
                        "used": 0, "capped": False, "speedLimit": None}


async def test_limit_and_schedule_commands(api: Api, files: FileServer) -> None:
    import asyncio

    from click.testing import CliRunner

    from tui.commands import main

    async def cli(*args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(CliRunner().invoke, main, [*args, "--server", api.url],
                                         catch_exceptions=False)
        return result.exit_code, result.output

    url = files.add("/cli.bin", random_bytes(10_000, seed=32))
    (task,) = await api.create({"type": "direct", "url": url})
    assert await cli("limit", str(task["id"]), "500K") == (0, f"task {task['id']}: 500K/s\n")
    assert (await api.engine.get(task["id"])).options.speed_limit == 500 * 1024
    assert await cli("limit", str(task["id"]), "0") == (0, f"task {task['id']}: no speed limit\n")
    assert (await api.engine.get(task["id"])).options.speed_limit is None
    assert await cli("limit", "--host", "example.com", "2M") == (0, "host example.com: 2M/s\n")
    assert api.engine.limits.host_rate("example.com") == 2 * 1024 * 1024
    code, _ = await cli("limit", str(task["id"]), "fast")
    assert code == 1
    assert await cli("schedule") == (0, "schedule: no window in force\n")
