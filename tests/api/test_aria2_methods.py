"""The aria2 dialect's queue, option, server and session methods (server/routes/aria2rpc.py) against a real
fetchdeck: changePosition and addUri's position (the file server sees the new order), changeOption/getOption,
changeGlobalOption/getGlobalOption, getServers, checksum, saveSession/shutdown, the removed mark across a
restart, JSONP; and the same calls compared with a real aria2c where it is installed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Config, parse_listen_flag
from core.locations import Locations
from server import aria2_shapes as shapes
from tests.api.compat_support import free_port
from tests.api.conftest import Api, ApiFactory
from tests.api.test_aria2_api import SECRET, TOKEN, rpc, wait_status
from tests.support.fileserver import FileServer


def arrivals(files: FileServer) -> list[str]:
    """The paths in the order their first request reached the file server (recorded from now on)."""
    order: list[str] = []
    begin: Callable[..., None] = files.stats._begin

    def recording(path: str, request: Any) -> None:
        if path not in order:
            order.append(path)
        begin(path, request)

    files.stats._begin = recording  # type: ignore[method-assign]
    return order


async def waiting(api: Api) -> list[str]:
    return [s["gid"] for s in await rpc(api, "aria2.tellWaiting", 0, 100, ["gid"])]


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def test_change_position_reorders_what_the_queue_runs(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2", max_concurrent=1)
    data = {name: bytes([i]) * 40_000 for i, name in enumerate("abcde")}
    urls = {name: files.add(f"/{name}.bin", body) for name, body in data.items()}
    blocker = files.add("/blocker.bin", b"z" * 2_000_000)  # 20 s at the throttle: it runs until let go
    files.faults.throttle("/blocker.bin", 100_000)
    order = arrivals(files)
    first = await rpc(api, "aria2.addUri", [blocker])
    await wait_status(api, first, "active")
    a, b, c = [await rpc(api, "aria2.addUri", [urls[n]]) for n in "abc"]
    assert await waiting(api) == [a, b, c]
    assert await rpc(api, "aria2.changePosition", c, 0, "POS_SET") == 0
    assert await waiting(api) == [c, a, b]
    assert await rpc(api, "aria2.changePosition", a, 5, "POS_END") == 2  # clamped to the last place
    assert await rpc(api, "aria2.changePosition", b, -1, "POS_CUR") == 0
    assert await waiting(api) == [b, c, a]
    # addUri's position: the third param, and the position option (a paused one keeps its place)
    d = await rpc(api, "aria2.addUri", [urls["d"]], {}, 1)
    e = await rpc(api, "aria2.addUri", [urls["e"]], {"position": "0", "pause": "true"})
    assert await waiting(api) == [e, b, d, c, a]
    assert [s["status"] for s in await rpc(api, "aria2.tellWaiting", 0, 2, ["status"])] == ["paused", "waiting"]
    assert [s["gid"] for s in await rpc(api, "aria2.tellWaiting", -1, 2, ["gid"])] == [a, c]  # from the end

    # errors, as aria2c words them
    assert (await rpc(api, "aria2.changePosition", first, 0, "POS_SET", status=400))["message"] == (
        f"GID#{first} not found in the waiting queue.")
    assert (await rpc(api, "aria2.changePosition", c, 0, "POS_BAD", status=400))["message"] == "Illegal argument."
    assert (await rpc(api, "aria2.changePosition", "00000000000000ff", 0, "POS_SET", status=400))["message"] == (
        "GID 00000000000000ff is not found")
    assert (await rpc(api, "aria2.changePosition", c, "1", "POS_SET", status=400))["message"] == (
        "The parameter at 1 has wrong type.")
    assert (await rpc(api, "aria2.changePosition", c, 1, status=400))["message"] == (
        "The parameter at 2 is required but missing.")
    assert (await rpc(api, "aria2.addUri", [urls["a"]], {}, -1, status=400))["message"] == (
        "Position must be greater than or equal to 0.")
    assert await waiting(api) == [e, b, d, c, a]  # nothing was added

    # the queue runs them in that order: the file server sees b, d, c, a (e stays paused)
    files.faults.throttle("/blocker.bin", None)
    for gid in (b, d, c, a):
        await wait_status(api, gid, "complete")
    assert [p for p in order if p != "/blocker.bin" and not p.endswith(".sha256")] == [
        "/b.bin", "/d.bin", "/c.bin", "/a.bin"]
    for name in "abcd":
        assert (api.download_dir / f"{name}.bin").read_bytes() == data[name]
    assert (await rpc(api, "aria2.tellStatus", e, ["status"]))["status"] == "paused"


async def test_options_per_download_and_global(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    body = bytes(range(256)) * 1024  # 256 KiB
    url = files.add("/opt.bin", body)
    # a paused download: everything can change before it starts, and getOption reads it back as strings
    gid = await rpc(api, "aria2.addUri", [url], {"pause": "true", "split": 2, "max-download-limit": "200K"})
    assert await rpc(api, "aria2.getOption", gid) == {
        "dir": str(api.download_dir), "max-connection-per-server": "2", "max-download-limit": "204800", "split": "2"}
    digest = hashlib.sha256(body).hexdigest()
    assert await rpc(api, "aria2.changeOption", gid, {
        "dir": "moved", "out": "renamed.bin", "split": "3", "header": ["X-A: 1", "X-B: 2"], "referer": "http://r/",
        "user-agent": "fdtest/1", "checksum": f"SHA-256={digest.upper()}", "max-download-limit": "0",
        "no-such-option": "x"}) == "OK"
    got = await rpc(api, "aria2.getOption", gid)
    assert got == {"dir": str(api.download_dir / "moved"), "out": "renamed.bin", "split": "3",
                   "max-connection-per-server": "3", "max-download-limit": "0", "header": "X-A: 1\nX-B: 2\n",
                   "referer": "http://r/", "user-agent": "fdtest/1", "checksum": f"sha-256={digest}"}
    assert all(isinstance(v, str) for v in got.values())
    # AriaNg's retry: getOption's answer fed back to addUri gives the same options
    retry = await rpc(api, "aria2.addUri", [url], {**got, "pause": "true"})
    assert await rpc(api, "aria2.getOption", retry) == got
    await rpc(api, "aria2.remove", retry)
    assert (await rpc(api, "aria2.changeOption", gid, {"split": "0"}, status=400))["message"] == (
        "We encountered a problem while processing the option '--split'.")
    assert (await rpc(api, "aria2.changeOption", gid, {"checksum": "md5"}, status=400))["message"] == (
        "We encountered a problem while processing the option '--checksum'.")
    assert await rpc(api, "aria2.unpause", gid) == gid
    done = await wait_status(api, gid, "complete")
    assert done["files"][0]["path"] == str(api.download_dir / "moved" / "renamed.bin")
    assert (api.download_dir / "moved" / "renamed.bin").read_bytes() == body
    sent = {k.lower(): v for k, v in files.stats["/opt.bin"].headers[-1].items()}
    assert (sent["x-a"], sent["x-b"], sent["referer"], sent["user-agent"]) == ("1", "2", "http://r/", "fdtest/1")
    assert (await rpc(api, "aria2.changeOption", gid, {"split": "2"}, status=400))["message"] == (
        f"Cannot change option for GID#{gid}")
    assert (await rpc(api, "aria2.getOption", gid))["out"] == "renamed.bin"  # a stopped one still answers

    # a running one: its speed limit changes at once; dir/out are refused once it writes its file
    slow = files.add("/slow.bin", body)
    running = await rpc(api, "aria2.addUri", [slow], {"max-download-limit": "16K"})
    struct = await wait_status(api, running, "active")
    servers = await rpc(api, "aria2.getServers", running)
    assert servers == [{"index": "1", "servers": [{"uri": slow, "currentUri": slow, "downloadSpeed": servers[0][
        "servers"][0]["downloadSpeed"]}]}] and servers[0]["servers"][0]["downloadSpeed"].isdigit()
    assert (await rpc(api, "aria2.changeOption", running, {"out": "x.bin"}, status=400))["message"].startswith(
        "The option '--out' cannot be changed")
    assert struct["totalLength"] in ("0", str(len(body)))
    assert await rpc(api, "aria2.changeOption", running, {"max-download-limit": "0"}) == "OK"
    await wait_status(api, running, "complete", timeout=10)  # 256 KiB at 16K/s would take 16 s
    assert (api.download_dir / "slow.bin").read_bytes() == body
    assert (await rpc(api, "aria2.getServers", running, status=400))["message"] == (
        f"No active download for GID#{running}")

    # global options: the engine's running-task cap and global limit, live; bad values change nothing
    assert await rpc(api, "aria2.changeGlobalOption", {"max-concurrent-downloads": "1",
                                                       "max-overall-download-limit": "1M", "split": "5"}) == "OK"
    assert api.engine.scheduler.max_concurrent == 1 and api.engine.limits.global_rate == 1 << 20
    glob = await rpc(api, "aria2.getGlobalOption")
    assert (glob["max-concurrent-downloads"], glob["max-overall-download-limit"], glob["split"], glob["dir"]) == (
        "1", "1048576", "5", str(api.download_dir))
    assert (await rpc(api, "aria2.changeGlobalOption", {"max-concurrent-downloads": "abc", "split": "7"},
                      status=400))["message"] == (
        "We encountered a problem while processing the option '--max-concurrent-downloads'.")
    assert (await rpc(api, "aria2.changeGlobalOption", {"dir": "/tmp"}, status=400))["message"] == shapes.MSG_GLOBAL_DIR
    assert (await rpc(api, "aria2.getGlobalOption"))["split"] == "5"
    two = files.add("/two.bin", body)
    files.faults.throttle("/two.bin", 16_000)
    pair = [await rpc(api, "aria2.addUri", [two], {"out": f"two{i}.bin"}) for i in range(2)]
    await wait_status(api, pair[0], "active")
    assert [s["gid"] for s in await rpc(api, "aria2.tellActive", ["gid"])] == [pair[0]]  # the cap of 1 holds
    assert await waiting(api) == [pair[1]]
    assert await rpc(api, "aria2.changeGlobalOption", {"max-concurrent-downloads": "2"}) == "OK"
    await wait_status(api, pair[1], "active")
    await rpc(api, "aria2.forceRemove", pair[0])
    await rpc(api, "aria2.forceRemove", pair[1])


async def test_checksum_option(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    body = b"checked\n" * 1000
    url = files.add("/sum.bin", body)
    good = await rpc(api, "aria2.addUri", [url], {"checksum": f"sha-256={hashlib.sha256(body).hexdigest()}"})
    bad = await rpc(api, "aria2.addUri", [url], {"out": "bad.bin", "checksum": f"sha-1={'0' * 40}"})
    assert (await wait_status(api, good, "complete"))["errorCode"] == "0"
    assert (api.download_dir / "sum.bin").read_bytes() == body
    deadline = asyncio.get_running_loop().time() + 10
    while (failed := await rpc(api, "aria2.tellStatus", bad, ["status", "errorCode", "errorMessage"]))[
            "status"] != "error":
        assert asyncio.get_running_loop().time() < deadline, failed
        await asyncio.sleep(0.05)
    assert failed["errorCode"] == "32" and failed["errorMessage"].startswith("checksum mismatch")
    assert (await rpc(api, "aria2.addUri", [url], {"checksum": "sha-256=abc"}, status=400))["message"] == (
        "We encountered a problem while processing the option '--checksum'.")
    assert "sha-224" in (await rpc(api, "aria2.addUri", [url], {"checksum": f"sha-224={'0' * 56}"},
                                   status=400))["message"]


async def test_save_session_shutdown_refused_and_jsonp(make_api: ApiFactory) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    assert await rpc(api, "aria2.saveSession") == "OK"
    for method in ("aria2.shutdown", "aria2.forceShutdown"):
        assert (await rpc(api, method, status=400))["message"] == shapes.MSG_SHUTDOWN_REFUSED
    api.config.aria2_rpc.allow_shutdown = True  # allowed, but nothing here can stop (the TUI's embedded server)
    assert (await rpc(api, "aria2.shutdown", status=400))["message"] == shapes.MSG_SHUTDOWN_UNAVAILABLE
    # JSONP: NAME(<the frame>) as text/javascript, for a call, an error and a batch
    params = base64.b64encode(json.dumps([TOKEN]).encode()).decode()
    got = await api.client.get("/jsonrpc", params={
        "method": "aria2.getVersion", "id": "j", "params": params, "jsoncallback": "cb"})
    assert got.status_code == 200 and got.headers["content-type"] == "text/javascript"
    assert got.text.startswith("cb(") and got.text.endswith(")")
    assert json.loads(got.text[3:-1]) == {"id": "j", "jsonrpc": "2.0", "result": shapes.version_struct()}
    wrong = await api.client.get("/jsonrpc", params={"method": "aria2.getVersion", "id": "j", "jsoncallback": "a.b"})
    assert wrong.status_code == 400 and wrong.text.startswith("a.b(") and "Unauthorized" in wrong.text
    script = await api.client.get("/jsonrpc", params={"method": "aria2.getVersion", "id": "j",
                                                      "jsoncallback": "alert(1);x"})
    assert script.status_code == 400 and script.headers["content-type"] == "application/json-rpc"


async def test_shutdown_allowed_and_the_removed_mark_survive_a_restart(tmp_path: Path, files: FileServer) -> None:
    """`fetchdeck serve` (run in this process) with [aria2_rpc] allow_shutdown: aria2.shutdown stops it
    gracefully; after a restart the tasks are kept and the removed one still reads "removed"."""
    from tui.serve_command import _serve

    port = free_port()
    config = Config()
    config.download.dir = str(tmp_path / "downloads")
    config = config.override("server", port=0, token=SECRET, listen={
        "aria2": parse_listen_flag(f"aria2=127.0.0.1:{port}")}).override("aria2_rpc", allow_shutdown=True)
    locations = Locations(config_dir=tmp_path / "config", data_dir=tmp_path / "data")
    url = files.add("/kept.bin", b"k" * 300_000)
    files.faults.throttle("/kept.bin", 50_000)

    async def call(client: httpx.AsyncClient, method: str, *params: Any) -> Any:
        response = await client.post("/jsonrpc", json={"id": 1, "method": method, "params": [TOKEN, *params]})
        assert response.status_code == 200, response.text
        return response.json()["result"]

    async def started(client: httpx.AsyncClient) -> bool:
        try:
            await client.post("/jsonrpc", json={"id": 0, "method": "system.listMethods"})
        except httpx.TransportError:
            return False
        return True

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as client:
        stop = asyncio.Event()
        serving = asyncio.create_task(_serve(locations, config, stop))
        await until(lambda: started(client), "the aria2 listener did not start")
        paused = await call(client, "aria2.addUri", [url], {"out": "paused.bin", "pause": "true"})
        removed = await call(client, "aria2.addUri", [url], {"out": "removed.bin"})
        await until(lambda: _status_is(client, removed, "active"), "not active")
        assert await call(client, "aria2.remove", removed) == removed
        assert await call(client, "aria2.shutdown") == "OK"
        assert await asyncio.wait_for(serving, 10) == 0  # `fetchdeck serve` ended by itself, exit code 0

        stop = asyncio.Event()
        serving = asyncio.create_task(_serve(locations, config, stop))
        try:
            await until(lambda: started(client), "the aria2 listener did not start again")
            assert await call(client, "aria2.tellStatus", removed, ["status", "errorCode"]) == {
                "status": "removed", "errorCode": "31"}
            assert [s["gid"] for s in await call(client, "aria2.tellStopped", 0, 10, ["gid"])] == [removed]
            assert [s["gid"] for s in await call(client, "aria2.tellWaiting", 0, 10, ["gid"])] == [paused]
            files.faults.throttle("/kept.bin", None)
            assert await call(client, "aria2.unpause", paused) == paused
            await until(lambda: _status_is(client, paused, "complete"), "not complete")
        finally:
            stop.set()
            assert await asyncio.wait_for(serving, 10) == 0
    assert (tmp_path / "downloads" / "paused.bin").read_bytes() == b"k" * 300_000


async def _status_is(client: httpx.AsyncClient, gid: str, word: str) -> bool:
    response = await client.post("/jsonrpc", json={"id": 1, "method": "aria2.tellStatus",
                                                   "params": [TOKEN, gid, ["status"]]})
    return bool(response.json()["result"]["status"] == word)


# ------------------------------------------------------------------ the same calls on a real aria2c


async def _post(client: httpx.AsyncClient, method: str, *params: Any) -> tuple[int, Any]:
    response = await client.post("/jsonrpc", json={"jsonrpc": "2.0", "id": "c", "method": method,
                                                   "params": [TOKEN, *params]})
    frame = response.json()
    return response.status_code, frame.get("result", frame.get("error"))


async def _method_shapes(client: httpx.AsyncClient, url: str, slow: str) -> dict[str, Any]:
    """What both servers must answer alike: results (ints, "OK", key types) and error objects."""
    out: dict[str, Any] = {}
    gids = [(await _post(client, "aria2.addUri", [url], {"pause": "true", "out": f"p{i}.bin"}))[1] for i in range(3)]
    out["set"] = await _post(client, "aria2.changePosition", gids[2], 0, "POS_SET")
    out["cur"] = await _post(client, "aria2.changePosition", gids[2], 1, "POS_CUR")
    out["end"] = await _post(client, "aria2.changePosition", gids[0], 0, "POS_END")
    out["far"] = await _post(client, "aria2.changePosition", gids[0], -10, "POS_CUR")
    order = (await _post(client, "aria2.tellWaiting", 0, 10, ["gid"]))[1]
    out["order"] = [gids.index(s["gid"]) for s in order]
    out["bad how"] = await _post(client, "aria2.changePosition", gids[0], 0, "POS_BAD")
    out["unknown"] = await _post(client, "aria2.changePosition", "0123456789abcdef", 0, "POS_SET")
    out["str pos"] = await _post(client, "aria2.changePosition", gids[0], "1", "POS_SET")
    out["no how"] = await _post(client, "aria2.changePosition", gids[0], 1)
    out["neg position"] = await _post(client, "aria2.addUri", [url], {}, -1)
    out["str position"] = await _post(client, "aria2.addUri", [url], {}, "1")
    at = (await _post(client, "aria2.addUri", [url], {"pause": "true"}, 1))[1]
    out["added at"] = [s["gid"] for s in (await _post(client, "aria2.tellWaiting", 0, 10, ["gid"]))[1]].index(at)
    out["change"] = await _post(client, "aria2.changeOption", gids[1], {
        "max-download-limit": "200K", "split": "3", "header": ["X-A: 1", "X-B: 2"], "user-agent": "ua/1",
        "referer": "http://r/", "bogus-opt": "1"})
    status, option = await _post(client, "aria2.getOption", gids[1])
    shared = ("max-download-limit", "split", "header", "user-agent", "referer", "out")
    out["getOption"] = (status, {k: option.get(k) for k in shared}, all(isinstance(v, str) for v in option.values()))
    out["bad split"] = await _post(client, "aria2.changeOption", gids[1], {"split": "0"})
    out["bad limit"] = await _post(client, "aria2.changeOption", gids[1], {"max-download-limit": "abc"})
    out["bad checksum"] = await _post(client, "aria2.addUri", [url], {"checksum": "md5"})
    out["getOption unknown"] = await _post(client, "aria2.getOption", "0123456789abcdef")
    out["servers waiting"] = (await _post(client, "aria2.getServers", gids[1]))[0]
    out["servers unknown"] = await _post(client, "aria2.getServers", "0123456789abcdef")
    active = (await _post(client, "aria2.addUri", [slow], {"max-download-limit": "20K", "out": "slow.bin"}))[1]
    await _post(client, "aria2.unpause", gids[0])  # in fetchdeck's and aria2's queue: one more active
    deadline = asyncio.get_running_loop().time() + 10
    while (await _post(client, "aria2.tellStatus", active, ["status"]))[1]["status"] != "active":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    # aria2c lists no server until its connection is up (seen as `servers: []` under load): asked until it does
    while True:
        answer = await _post(client, "aria2.getServers", active)
        if answer[0] != 200 or (answer[1] and all(f["servers"] for f in answer[1])):
            break
        assert asyncio.get_running_loop().time() < deadline, answer
        await asyncio.sleep(0.05)
    status, servers = answer
    out["servers"] = (status, [(sorted(f), [sorted(s) for s in f["servers"]]) for f in servers])
    out["active position"] = (await _post(client, "aria2.changePosition", active, 0, "POS_SET"))[0]
    out["global change"] = await _post(client, "aria2.changeGlobalOption", {
        "max-concurrent-downloads": "4", "max-overall-download-limit": "1M"})
    status, glob = await _post(client, "aria2.getGlobalOption")
    out["getGlobalOption"] = (status, glob["max-concurrent-downloads"], glob["max-overall-download-limit"],
                              all(isinstance(v, str) for v in glob.values()))
    out["global bad"] = await _post(client, "aria2.changeGlobalOption", {"max-concurrent-downloads": "abc"})
    out["saveSession"] = await _post(client, "aria2.saveSession")
    params = base64.b64encode(json.dumps([TOKEN]).encode()).decode()
    jsonp = await client.get("/jsonrpc", params={"method": "aria2.getSessionInfo", "id": "j", "params": params,
                                                 "jsoncallback": "cb"})
    frame = json.loads(jsonp.text[3:-1])
    out["jsonp"] = (jsonp.status_code, jsonp.headers["content-type"], jsonp.text[:3], jsonp.text[-1:],
                    sorted(frame), sorted(frame["result"]))
    await _post(client, "aria2.forceRemove", active)
    return out


async def test_method_shapes_match_a_real_aria2c(make_api: ApiFactory, files: FileServer, tmp_path: Path) -> None:
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.skip("aria2c is not installed (apt install aria2)")
    url = files.add("/m.bin", bytes(range(256)) * 400)
    slow = files.add("/mslow.bin", bytes(range(256)) * 4000)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        aria2c, "--enable-rpc", f"--rpc-listen-port={port}", f"--rpc-secret={SECRET}", f"--dir={tmp_path / 'a2'}",
        f"--save-session={tmp_path / 'a2.session'}", "--no-conf", "--quiet", "--max-concurrent-downloads=2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as real:
            async def up() -> bool:
                try:
                    await real.post("/jsonrpc", json={"id": 0, "method": "system.listMethods"})
                except httpx.TransportError:
                    return False
                return True

            await until(up, "aria2c did not start")
            expected = await _method_shapes(real, url, slow)
        api = await make_api(token=SECRET, surface="aria2", max_concurrent=2)
        got = await _method_shapes(api.client, url, slow)
    finally:
        proc.terminate()
        await proc.wait()
    for key in expected:
        assert got[key] == expected[key], (key, got[key], expected[key])
