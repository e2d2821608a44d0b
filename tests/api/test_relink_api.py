"""Relink over the native API and the CLI (`fetchdeck relink ID URL`): the engine's rules are core/relink.py's."""

from __future__ import annotations

from click.testing import Result

from tests.api.conftest import Api
from tests.api.test_cli import cli
from tests.support.fileserver import FileServer, random_bytes


async def test_relink_over_the_cli_and_the_api(api: Api, files: FileServer) -> None:
    data = random_bytes(200_000, seed=41)
    good = files.add("/good.bin", data)
    (task,) = await api.create({"type": "direct", "url": files.url("/gone.bin"), "name": "r.bin"})
    task_id = str(task["id"])

    relinked: Result = await cli("relink", "--server", api.url, task_id, good)
    assert relinked.exit_code == 0, relinked.output
    assert relinked.output.split()[0] == task_id
    done = await api.wait_status(task["id"], "success")
    assert done["url"] == good
    assert (api.download_dir / "r.bin").read_bytes() == data
    logs = (await api.call("GET", f"/api/downloads/{task_id}/logs"))["log"]
    assert f"relinked to {good}: nothing resumable on disk" in logs

    refused = await cli("relink", "--server", api.url, task_id, good)  # finished: nothing to relink
    assert refused.exit_code == 1 and "has finished" in refused.output, refused.output
    await api.fail("POST", f"/api/downloads/{task_id}/relink", 409, 40900, json={"url": good})
    await api.fail("POST", f"/api/downloads/{task_id}/relink", 400, 40004, json={"url": "ftp://x/y"})
    await api.fail("POST", "/api/downloads/999/relink", 404, 40401, json={"url": good})
