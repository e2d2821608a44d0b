"""Queue control end to end (issue 14 item 3): priorities, moves and start times change when tasks start.

A real API and engine (max_concurrent=1) against a real local file server: the order the server sees the
tasks' first requests is the order they started. The CLI commands (`fetchdeck add --priority`, `priority`,
`move`) talk to that API as they would to a running fetchdeck.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from click.testing import CliRunner, Result

from core.models import Priority, TaskOptions, TaskSpec
from tests.api.conftest import ApiFactory
from tests.support.fileserver import FileServer, random_bytes
from tui.commands import main


async def cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), catch_exceptions=False)


async def test_priorities_and_moves_change_the_start_order(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(max_concurrent=1)
    server = ["--server", api.url]
    blocker = files.add("/blocker.bin", random_bytes(2_000_000, seed=1))
    files.faults.throttle("/blocker.bin", 50_000)  # holds the one slot while the queue is arranged
    (first,) = await api.create({"url": blocker}, start=True)
    await api.wait_status(first["id"], "downloading")
    data = {name: random_bytes(30_000, seed=i) for i, name in enumerate("abcde", start=2)}
    ids: dict[str, int] = {}
    for name in "abcde":
        added = await cli("add", *server, files.add(f"/{name}.bin", data[name]),
                          *(["--priority", "low"] if name == "e" else []))
        assert added.exit_code == 0, added.output
        ids[name] = int(added.output.split("\t")[0])
    assert (await api.task(ids["e"]))["priority"] == "low"
    raised = await cli("priority", *server, str(ids["d"]), "high")
    assert raised.exit_code == 0 and raised.output.split("\t")[:3] == [str(ids["d"]), "waiting", "high"], raised.output
    moved = await cli("move", *server, str(ids["c"]), "top")  # first of the normal ones; d (high) stays ahead
    assert moved.exit_code == 0, moved.output
    task = await api.call("POST", f"/api/downloads/{ids['a']}/move", json={"to": "down"})  # a after b
    assert task["id"] == ids["a"] and task["priority"] == "normal"
    await api.fail("POST", f"/api/downloads/{ids['a']}/move", 400, 40002, json={"to": "sideways"})
    await api.fail("POST", "/api/downloads/999999/move", 404, 40401, json={"to": "top"})
    bad = await cli("move", *server, "999999", "up")
    assert bad.exit_code == 1
    files.faults.throttle("/blocker.bin", None)
    for name in "abcde":
        done = await api.wait_status(ids[name], "success", "failed")
        assert done["status"] == "success", done
        assert (api.download_dir / f"{name}.bin").read_bytes() == data[name]
    started = [path for path in files.stats.paths() if not path.endswith(".sha256")]  # not the checksum sidecars
    assert started == ["/blocker.bin", "/d.bin", "/c.bin", "/b.bin", "/a.bin", "/e.bin"]


async def test_start_at_holds_a_task_until_its_time(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api()
    data = random_bytes(50_000, seed=9)
    at = time.time() + 1.5
    stamp = datetime.fromtimestamp(at, UTC).isoformat()
    (task,) = await api.create({"url": files.add("/later.bin", data), "startAt": stamp}, start=True)
    assert task["startAt"] == datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting = await api.task(task["id"])
    assert waiting["status"] == "waiting"
    assert waiting["note"] == f"scheduled: starts {datetime.fromtimestamp(at).strftime('%H:%M')}"
    await api.fail("POST", "/api/downloads", 400, 40002,
                   json={"tasks": [{"url": files.url("/x.bin"), "startAt": "soonish"}]})
    done = await api.wait_status(task["id"], "success", "failed", timeout=15)
    assert done["status"] == "success" and done["note"] is None, done
    assert (api.download_dir / "later.bin").read_bytes() == data
    first_request = min(ts for path, _range, ts in files.stats.served if path == "/later.bin")
    assert first_request >= at


async def test_retry_keeps_the_task_options_and_priority(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api()
    options = TaskOptions(connections=3, debug_log=True, proxy=None)
    spec = TaskSpec(url=files.url("/late.bin"), name="late.bin", options=options, priority=Priority.HIGH)
    (task,) = await api.engine.create([spec])
    failed = await api.wait_status(task.id, "failed")  # not served yet: 404
    assert "404" in (failed["error"] or "")
    data = random_bytes(40_000, seed=11)
    files.add("/late.bin", data)
    retried = await cli("start", "--server", api.url, str(task.id))
    assert retried.exit_code == 0, retried.output
    assert (await api.wait_status(task.id, "success", "failed"))["status"] == "success"
    again = await api.engine.get(task.id)
    # what the run records about itself (the checksum sidecar was looked for) aside, the options are the task's own
    assert again.options.model_copy(update={"checksum_sidecar": False}) == task.options.model_copy(
        update={"checksum_sidecar": False})
    assert again.options.connections == 3 and again.options.debug_log
    assert again.priority is Priority.HIGH
    assert (api.download_dir / "late.bin").read_bytes() == data
