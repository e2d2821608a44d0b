"""The aria2 dialect (server/routes/aria2rpc.py): raw JSON-RPC against a real fetchdeck, then aria2p's library."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aria2p
import httpx
import pytest

from core.config import Listener, parse_listen_flag
from core.models import TaskKind, TaskSpec
from tests.api.compat_support import free_port, hls_vod
from tests.api.conftest import Api, ApiFactory
from tests.support.fileserver import FileServer

SECRET = "s3cret"
TOKEN = f"token:{SECRET}"


async def rpc(api: Api, method: str, *params: Any, token: str | None = TOKEN, status: int = 200) -> Any:
    """One POSTed call that must answer `status`; returns its result (200) or its error object (400)."""
    body = {"jsonrpc": "2.0", "id": "q", "method": method, "params": ([token] if token else []) + list(params)}
    response = await api.client.post("/jsonrpc", json=body)
    frame = response.json()
    assert response.status_code == status, (response.status_code, frame)
    assert frame["id"] == "q" and frame["jsonrpc"] == "2.0", frame
    return frame["result"] if status == 200 else frame["error"]


async def wait_status(api: Api, gid: str, word: str, timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        struct: dict[str, Any] = await rpc(api, "aria2.tellStatus", gid)
        if struct["status"] == word:
            return struct
        assert struct["status"] != "error", struct
        assert asyncio.get_running_loop().time() < deadline, struct
        await asyncio.sleep(0.05)


async def test_jsonrpc_framing_auth_and_errors(make_api: ApiFactory) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    version = await rpc(api, "aria2.getVersion")
    assert version["version"].count(".") == 2 and isinstance(version["enabledFeatures"], list)
    assert await rpc(api, "aria2.getVersion", token=None, status=400) == {"code": 1, "message": "Unauthorized"}
    assert await rpc(api, "aria2.getVersion", token="token:nope", status=400) == {"code": 1, "message": "Unauthorized"}
    methods = await rpc(api, "system.listMethods", token=None)
    assert {"aria2.addUri", "aria2.tellStatus", "system.multicall"} <= set(methods)
    assert "aria2.onDownloadComplete" in await rpc(api, "system.listNotifications", token=None)
    assert (await rpc(api, "aria2.nope", status=400))["message"] == "No such method: aria2.nope"
    assert await rpc(api, "aria2.tellStatus", "00000000000000ff", status=400) == {
        "code": 1, "message": "GID 00000000000000ff is not found"}
    assert await rpc(api, "aria2.tellStatus", "xyz", status=400) == {"code": 1, "message": "Invalid GID xyz"}
    assert (await rpc(api, "aria2.tellStatus", status=400))["message"] == "The parameter at 0 is required but missing."
    assert (await rpc(api, "aria2.tellStatus", 7, status=400))["message"] == "The parameter at 0 has wrong type."

    # framing errors: JSON-RPC's codes, with the HTTP statuses aria2c 1.36 answers them with
    bad = await api.client.post("/jsonrpc", content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 500 and bad.json() == {
        "id": None, "jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error."}}
    assert bad.headers["content-type"] == "application/json-rpc" and bad.headers["cache-control"] == "no-cache"
    bad = await api.client.post("/jsonrpc", json="x")
    assert bad.status_code == 400 and bad.json()["error"] == {"code": -32600, "message": "Invalid Request."}
    bad = await api.client.post("/jsonrpc", json=5)  # a bare number: aria2c 1.36 calls it a parse error
    assert bad.status_code == 500 and bad.json()["error"] == {"code": -32700, "message": "Parse error."}
    bad = await api.client.post("/jsonrpc", json={"method": "aria2.getVersion", "params": [TOKEN]})  # no id
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32600
    bad = await api.client.post("/jsonrpc", json={"id": "x", "method": "aria2.getVersion", "params": {"a": 1}})
    assert bad.status_code == 500 and bad.json()["id"] == "x" and bad.json()["error"]["code"] == -32602
    nojsonrpc = await api.client.post("/jsonrpc", json={"id": 7, "method": "aria2.getVersion", "params": [TOKEN]})
    assert nojsonrpc.status_code == 200 and nojsonrpc.json()["id"] == 7
    empty = await api.client.post("/jsonrpc", json=[])
    assert empty.status_code == 200 and empty.json() == []
    assert (await api.client.get("/jsonrpc")).json()["error"]["code"] == -32600
    other = await api.client.post("/other", json={"id": 1, "method": "aria2.getVersion", "params": [TOKEN]})
    assert other.status_code == 404 and other.content == b""

    # batch: each call answered in order, HTTP 200 even with an error inside
    batch = await api.client.post("/jsonrpc", json=[
        {"jsonrpc": "2.0", "id": 1, "method": "aria2.getGlobalStat", "params": [TOKEN]},
        {"jsonrpc": "2.0", "id": 2, "method": "aria2.getVersion", "params": []},
    ])
    assert batch.status_code == 200
    first, second = batch.json()
    assert first["id"] == 1 and first["result"]["numActive"] == "0"
    assert second == {"id": 2, "jsonrpc": "2.0", "error": {"code": 1, "message": "Unauthorized"}}

    # GET: params as base64 of the JSON array
    params = base64.b64encode(json.dumps([TOKEN]).encode()).decode()
    got = await api.client.get("/jsonrpc", params={"method": "aria2.getVersion", "id": "g", "params": params})
    assert got.status_code == 200 and got.json()["id"] == "g" and got.json()["result"] == version

    # system.multicall: [result] per success, the bare error struct per failure
    calls = [{"methodName": "aria2.getVersion", "params": [TOKEN]},
             {"methodName": "aria2.getVersion", "params": []},
             {"methodName": "aria2.nope", "params": [TOKEN]}]
    assert await rpc(api, "system.multicall", calls, token=None) == [
        [version], {"code": 1, "message": "Unauthorized"}, {"code": 1, "message": "No such method: aria2.nope"}]
    assert await rpc(api, "system.multicall", calls, status=400) == {
        "code": 1, "message": "The parameter at 0 has wrong type."}  # the token goes in each inner call


async def test_methods_on_the_engine(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    data = bytes(range(256)) * 4096  # 1 MiB
    url = files.add("/a.bin", data)
    gid = await rpc(api, "aria2.addUri", [url], {
        "out": "named.bin", "dir": "sub", "header": ["X-Test: 1"], "split": "4", "pause": "true"})
    assert len(gid) == 16 and int(gid, 16) > 0 and gid == gid.lower()
    struct = await rpc(api, "aria2.tellStatus", gid)
    assert struct["gid"] == gid and struct["status"] == "paused" and struct["totalLength"] == "0"
    assert struct["files"][0]["uris"] == [{"uri": url, "status": "waiting"}]  # not started: as aria2c says
    assert "bitfield" not in struct and struct["numPieces"] == "0"
    assert all(isinstance(struct[k], str) for k in ("completedLength", "downloadSpeed", "connections"))
    assert await rpc(api, "aria2.tellStatus", gid, ["gid", "status"]) == {"gid": gid, "status": "paused"}
    assert await rpc(api, "aria2.tellStatus", gid[:15], ["status"]) == {"status": "paused"}  # a unique prefix
    assert [s["gid"] for s in await rpc(api, "aria2.tellWaiting", 0, 10, ["gid"])] == [gid]
    assert await rpc(api, "aria2.tellStopped", 0, 10) == []
    assert (await rpc(api, "aria2.pause", gid, status=400))["message"] == f"GID#{gid} cannot be paused now"

    assert await rpc(api, "aria2.unpause", gid) == gid
    done = await wait_status(api, gid, "complete")
    assert done["totalLength"] == done["completedLength"] == str(len(data))
    assert (done["numPieces"], done["pieceLength"], done["bitfield"]) == ("1", "1048576", "80")
    assert done["files"][0]["uris"] == [{"uri": url, "status": "used"}]
    path = done["files"][0]["path"]
    assert path.endswith("sub/named.bin") and done["dir"].endswith("sub")
    assert (api.download_dir / "sub" / "named.bin").read_bytes() == data
    sent = [{k.lower(): v for k, v in h.items()} for h in files.stats["/a.bin"].headers]
    assert sent and all(h.get("x-test") == "1" for h in sent), sent
    assert [s["gid"] for s in await rpc(api, "aria2.tellStopped", 0, 10, ["gid"])] == [gid]
    assert (await rpc(api, "aria2.remove", gid, status=400))["message"] == f"Active Download not found for GID#{gid}"

    # remove: a stopped task shows as removed and stays in tellStopped; unpause refuses it
    other = await rpc(api, "aria2.addUri", [files.add("/b.bin", b"x" * 1000)], {"pause": "true"})
    assert await rpc(api, "aria2.remove", other) == other
    assert (await rpc(api, "aria2.tellStatus", other, ["status", "errorCode"])) == {
        "status": "removed", "errorCode": "31"}
    assert {s["gid"] for s in await rpc(api, "aria2.tellStopped", 0, 10, ["gid"])} == {gid, other}
    assert [s["gid"] for s in await rpc(api, "aria2.tellStopped", -1, 1, ["gid"])] == [other]
    assert (await rpc(api, "aria2.unpause", other, status=400))["code"] == 1
    assert await rpc(api, "aria2.tellActive") == []
    stat = await rpc(api, "aria2.getGlobalStat")
    assert (stat["numActive"], stat["numWaiting"], stat["numStopped"]) == ("0", "0", "2")
    assert (await rpc(api, "aria2.getFiles", gid))[0]["length"] == str(len(data))
    assert (await rpc(api, "aria2.getUris", gid, status=400))["message"] == f"No URI data is available for GID#{gid}"
    session = (await rpc(api, "aria2.getSessionInfo"))["sessionId"]
    assert len(session) == 40 and session == (await rpc(api, "aria2.getSessionInfo"))["sessionId"]
    assert "torrents" in (await rpc(api, "aria2.addTorrent", "AAAA", status=400))["message"]
    assert (await rpc(api, "aria2.addMetalink", "AAAA", status=400))["code"] == 1

    # pauseAll / unpauseAll; removeDownloadResult and purgeDownloadResult forget stopped downloads only
    third = await rpc(api, "aria2.addUri", [files.add("/c.bin", b"c" * 1000)], {"pause": "true"})
    assert await rpc(api, "aria2.getUris", third) == [{"uri": files.url("/c.bin"), "status": "waiting"}]
    assert await rpc(api, "aria2.unpauseAll") == "OK"
    await wait_status(api, third, "complete")
    assert (await rpc(api, "aria2.removeDownloadResult", "00000000000000ff", status=400))["message"] == (
        "GID 00000000000000ff is not found")
    assert await rpc(api, "aria2.removeDownloadResult", gid) == "OK"
    assert (await rpc(api, "aria2.tellStatus", gid, status=400))["message"] == f"GID {gid} is not found"
    assert (api.download_dir / "sub" / "named.bin").read_bytes() == data  # the file stays
    fourth = await rpc(api, "aria2.addUri", [files.add("/d.bin", b"d" * 1000)], {"pause": "true"})
    assert (await rpc(api, "aria2.removeDownloadResult", fourth, status=400))["message"] == (
        f"Could not remove download result of GID#{fourth}")
    assert await rpc(api, "aria2.purgeDownloadResult") == "OK"
    assert await rpc(api, "aria2.tellStopped", 0, 10) == []
    assert [s["gid"] for s in await rpc(api, "aria2.tellWaiting", 0, 10, ["gid"])] == [fourth]
    assert (await rpc(api, "aria2.addUri", [], status=400))["code"] == 1
    assert await rpc(api, "aria2.addUri", [url], {"split": "65"}, status=400) == {
        "code": 1, "message": "We encountered a problem while processing the option '--split'."}


async def test_aria2p_library_downloads_a_file(make_api: ApiFactory, files: FileServer) -> None:
    """On an aria2 listener beside the main one (as `--listen aria2=127.0.0.1:6800` starts it)."""
    assert parse_listen_flag("aria2=127.0.0.1:6800") == Listener("aria2", "127.0.0.1", 6800)
    main = await make_api(token=SECRET)
    api = await main.listener("aria2")
    data = bytes(reversed(range(256))) * 2048
    url = files.add("/lib.bin", data)
    host, _, port = api.url.removeprefix("http://").rpartition(":")
    client = aria2p.API(aria2p.Client(host=f"http://{host}", port=int(port), secret=SECRET))

    def add_and_list() -> tuple[str, list[str]]:
        download = client.add_uris([url], {"out": "lib.bin"})
        return download.gid, [d.gid for d in client.get_downloads()]

    gid, listed = await asyncio.to_thread(add_and_list)
    assert gid in listed

    deadline = asyncio.get_running_loop().time() + 10
    while True:
        download = await asyncio.to_thread(client.get_download, gid)
        if download.is_complete:
            break
        assert download.status != "error", download.error_message
        assert asyncio.get_running_loop().time() < deadline, download.status
        await asyncio.sleep(0.05)
    assert download.total_length == len(data) and download.completed_length == len(data)
    assert download.name == "lib.bin"
    assert (api.download_dir / "lib.bin").read_bytes() == data
    version = await asyncio.to_thread(client.client.get_version)
    assert version["version"]

    # aria2p's notification listener (websocket-client) on the same listener
    heard: list[tuple[str, str]] = []
    subscribers = len(api.engine.bus._subscribers)
    client.listen_to_notifications(
        threaded=True, timeout=1, handle_signals=False,
        on_download_start=lambda _api, g: heard.append(("start", g)),
        on_download_complete=lambda _api, g: heard.append(("complete", g)))
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while len(api.engine.bus._subscribers) == subscribers:  # its socket is open
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        second = (await asyncio.to_thread(client.add_uris, [files.add("/lib2.bin", data)])).gid
        while ("complete", second) not in heard:
            assert asyncio.get_running_loop().time() < deadline, heard
            await asyncio.sleep(0.02)
        assert heard == [("start", second), ("complete", second)]
    finally:
        await asyncio.to_thread(client.stop_listening)
    # the same task through the native API: the GID is its id in hex
    native = await main.call("GET", f"/api/downloads/{int(gid, 16)}", headers={"Authorization": f"Bearer {SECRET}"})
    assert native["status"] == "success"


async def test_jsonrpc_is_only_on_the_aria2_listener(make_api: ApiFactory) -> None:
    api = await make_api(token=SECRET)
    response = await api.client.post("/jsonrpc", json={"id": 1, "method": "aria2.getVersion", "params": [TOKEN]},
                                     headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 404 and response.json()["success"] is False  # the native envelope


async def test_pause_unpause_a_running_download_and_an_hls_url(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    data = bytes(range(256)) * 1024
    url = files.add("/slow.bin", data)
    files.faults.throttle("/slow.bin", 64_000)
    gid = await rpc(api, "aria2.addUri", [url])
    active = await wait_status(api, gid, "active")
    assert active["connections"] != "0"
    assert [s["gid"] for s in await rpc(api, "aria2.tellActive", ["gid"])] == [gid]
    assert (await rpc(api, "aria2.getGlobalStat"))["numActive"] == "1"
    assert await rpc(api, "aria2.forcePause", gid) == gid
    paused = await wait_status(api, gid, "paused")
    assert paused["downloadSpeed"] == "0" and "errorCode" not in paused
    assert await rpc(api, "aria2.unpause", gid) == gid
    await wait_status(api, gid, "active")
    assert await rpc(api, "aria2.pauseAll") == "OK"
    await wait_status(api, gid, "paused")
    files.faults.throttle("/slow.bin", None)
    assert await rpc(api, "aria2.unpauseAll") == "OK"
    await wait_status(api, gid, "complete")
    assert (api.download_dir / Path(url).name).read_bytes() == data

    # an HLS playlist URL becomes an HLS task through the engine's own detection
    playlist = files.add_dir("/vod", hls_vod().parent) + hls_vod().name
    hls = await rpc(api, "aria2.addUri", [playlist], {"out": "clip.mp4"})
    done = await wait_status(api, hls, "complete", timeout=20)
    assert (await api.engine.get(int(hls, 16))).kind == TaskKind.HLS
    assert int(done["totalLength"]) > 0 and done["files"][0]["path"].endswith(".mp4")


async def aria2p_cli(api: Api, *args: str) -> str:
    host, _, port = api.url.removeprefix("http://").rpartition(":")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aria2p", "-H", f"http://{host}", "-p", port, "-s", SECRET, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, (args, out, err)
    return out.decode()


async def test_aria2p_cli_add_show_pause_resume_remove_purge(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    url = files.add("/cli.bin", bytes(range(256)) * 1024)
    files.faults.throttle("/cli.bin", 32_000)
    out = await aria2p_cli(api, "add", url)
    [gid] = re.findall(r"\b[0-9a-f]{16}\b", out)
    await wait_status(api, gid, "active")
    assert gid in await aria2p_cli(api, "show")  # aria2p 0.12 has `show`, not `ls`
    await aria2p_cli(api, "pause", gid)
    await wait_status(api, gid, "paused")
    await aria2p_cli(api, "resume", gid)
    await wait_status(api, gid, "active")
    # aria2p's remove is aria2.remove then aria2.removeDownloadResult: the task is gone
    await aria2p_cli(api, "remove", gid)
    assert (await rpc(api, "aria2.tellStatus", gid, status=400))["message"] == f"GID {gid} is not found"
    assert await api.engine.list_tasks() and (await api.engine.list_tasks()).total == 0
    await aria2p_cli(api, "purge")


async def test_split_64_opens_64_connections(make_api: ApiFactory, files: FileServer) -> None:
    """aria2c refuses more than 16 connections per server; fetchdeck takes split=64 and opens them all."""
    api = await make_api(token=SECRET, surface="aria2")
    data = random.Random(64).randbytes(64 << 20)  # 64 segments of the 1 MiB minimum
    url = files.add("/wide.bin", data)
    files.faults.throttle("/wide.bin", 256 << 10)  # slow, until all 64 ranges are seen in flight
    gid = await rpc(api, "aria2.addUri", [url], {"split": "64", "max-connection-per-server": "64"})
    deadline = asyncio.get_running_loop().time() + 10
    while files.stats.in_flight < 64:
        assert asyncio.get_running_loop().time() < deadline, files.stats.in_flight
        await asyncio.sleep(0.05)
    assert (await rpc(api, "aria2.tellStatus", gid, ["connections"]))["connections"] == "64"
    files.faults.throttle("/wide.bin", None)
    done = await wait_status(api, gid, "complete", timeout=30)
    assert done["numPieces"] == "64" and done["bitfield"] == "f" * 16
    assert files.stats.max_in_flight == 64
    assert (api.download_dir / "wide.bin").read_bytes() == data


async def _call(client: httpx.AsyncClient, method: str, *params: Any, token: str | None = TOKEN) -> tuple[int, Any]:
    body = {"jsonrpc": "2.0", "id": "c", "method": method, "params": ([token] if token else []) + list(params)}
    response = await client.post("/jsonrpc", json=body)
    frame = response.json()
    return response.status_code, frame.get("result", frame.get("error"))


async def _shapes(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """What one server answers to the same calls: key sets for results, whole objects for errors."""
    out: dict[str, Any] = {}
    out["getVersion"] = sorted((await _call(client, "aria2.getVersion"))[1])
    out["getGlobalStat"] = sorted((await _call(client, "aria2.getGlobalStat"))[1])
    # (a wrong token is left out: aria2c delays that answer ~1.6 s; test_jsonrpc_framing_auth_and_errors has it)
    out["no_method"] = await _call(client, "aria2.nosuch")
    out["unknown_gid"] = await _call(client, "aria2.tellStatus", "0123456789abcdef")
    out["bad_gid"] = await _call(client, "aria2.tellStatus", "zz")
    out["missing_gid"] = await _call(client, "aria2.tellStatus")
    out["int_gid"] = await _call(client, "aria2.tellStatus", 7)
    out["empty_uris"] = await _call(client, "aria2.addUri", [])
    status, gid = await _call(client, "aria2.addUri", [url], {"pause": "true"})
    assert status == 200 and re.fullmatch(r"[0-9a-f]{16}", gid), gid
    paused = (await _call(client, "aria2.tellStatus", gid))[1]
    uri = paused["files"][0]["uris"][0]["status"]
    out["paused"] = (paused["status"], sorted(paused), sorted(paused["files"][0]), uri)
    out["pause_paused"] = (await _call(client, "aria2.pause", gid))[1]["message"].replace(gid, "GID")
    out["unpause"] = (await _call(client, "aria2.unpause", gid))[1] == gid
    deadline = asyncio.get_running_loop().time() + 10
    while (done := (await _call(client, "aria2.tellStatus", gid))[1])["status"] != "complete":
        assert done["status"] in ("active", "waiting"), done
        assert asyncio.get_running_loop().time() < deadline, done
        await asyncio.sleep(0.05)
    out["complete"] = (sorted(done), done["errorCode"], done["errorMessage"], done["totalLength"],
                       done["completedLength"], sorted(done["files"][0]))
    out["remove_complete"] = (await _call(client, "aria2.remove", gid))[1]["message"].replace(gid, "GID")
    out["stopped"] = await _call(client, "aria2.tellStopped", 0, 10, ["gid", "status"])
    out["stopped"] = [{**s, "gid": len(s["gid"])} for s in out["stopped"][1]]
    out["purge"] = await _call(client, "aria2.purgeDownloadResult")
    return out


async def _framed(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


def _keys_of(struct: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """A tellStatus struct's key set, its first file's and that file's first uri's."""
    file = struct["files"][0]
    return sorted(struct), sorted(file), sorted(file["uris"][0]) if file["uris"] else []


async def _wait(client: httpx.AsyncClient, gid: str, done: Any) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 10
    while not done(struct := (await _call(client, "aria2.tellStatus", gid))[1]):
        assert asyncio.get_running_loop().time() < deadline, struct
        await asyncio.sleep(0.03)
    return struct  # type: ignore[no-any-return]


async def _more_shapes(client: httpx.AsyncClient, slow: str, missing: str, refusals: dict[int, str]) -> dict[str, Any]:
    """The rest of the methods both implement, and the framing: shapes (key sets, types, codes), not values."""
    out: dict[str, Any] = {}
    # framing errors, whole frames and HTTP statuses
    out["parse"] = await _framed(await client.post("/jsonrpc", content=b"{"))
    out["params_object"] = await _framed(await client.post("/jsonrpc", json={
        "id": "p", "method": "aria2.getVersion", "params": {"a": 1}}))
    out["no_id"] = await _framed(await client.post("/jsonrpc", json={"method": "aria2.getVersion", "params": [TOKEN]}))
    out["no_method"] = await _framed(await client.post("/jsonrpc", json={"id": "m", "params": [TOKEN]}))
    for name, body in (("number", 5), ("string", "x"), ("true", True), ("null", None),
                       ("junk_batch", [5, {"id": 1, "method": "system.listNotifications"}, "x", None])):
        out[f"body_{name}"] = await _framed(await client.post("/jsonrpc", content=json.dumps(body).encode()))
    out["empty_batch"] = await _framed(await client.post("/jsonrpc", json=[]))
    out["get_nothing"] = await _framed(await client.get("/jsonrpc"))
    out["no_jsonrpc_member"] = (await _framed(await client.post("/jsonrpc", json={
        "id": 0, "method": "system.listNotifications"})))
    out["null_id"] = (await _framed(await client.post("/jsonrpc", json={
        "id": None, "jsonrpc": "2.0", "method": "system.listNotifications"})))
    # a batch: answered in order, each with its id, HTTP 200
    status, frames = await _framed(await client.post("/jsonrpc", json=[
        {"jsonrpc": "2.0", "id": 1, "method": "aria2.getVersion", "params": [TOKEN]},
        {"jsonrpc": "2.0", "id": "two", "method": "aria2.tellStatus", "params": [TOKEN, "0123456789abcdef"]},
        {"jsonrpc": "2.0", "id": 3, "method": "aria2.nosuch", "params": [TOKEN]}]))
    out["batch"] = (status, [(f["id"], sorted(f), sorted(f.get("result", {})), f.get("error")) for f in frames])
    # the GET forms: one call (params base64 of the array) and a batch (params alone)
    params = base64.b64encode(json.dumps([TOKEN]).encode()).decode()
    got = await client.get("/jsonrpc", params={"method": "aria2.getVersion", "id": "g1", "params": params})
    out["get"] = (got.status_code, got.json()["id"], sorted(got.json()), sorted(got.json()["result"]))
    batch = base64.b64encode(json.dumps([{"jsonrpc": "2.0", "id": "b1", "method": "aria2.getGlobalStat",
                                          "params": [TOKEN]}]).encode()).decode()
    got = await client.get("/jsonrpc", params={"params": batch})
    out["get_batch"] = (got.status_code, [(f["id"], sorted(f["result"])) for f in got.json()])
    # system.multicall: [result] per success, the bare error struct per failure; nested is refused
    out["multicall"] = await _call(client, "system.multicall", [
        {"methodName": "aria2.getSessionInfo", "params": [TOKEN]},
        {"methodName": "aria2.tellStatus", "params": [TOKEN, "0123456789abcdef"]},
        {"methodName": "system.multicall", "params": [[]]}], token=None)
    out["multicall"] = (out["multicall"][0], [sorted(r[0]) if isinstance(r, list) else r for r in out["multicall"][1]])
    out["listNotifications"] = await _call(client, "system.listNotifications")
    out["listMethods"] = set((await _call(client, "system.listMethods"))[1])  # compared as a subset
    out["sessionInfo"] = sorted((await _call(client, "aria2.getSessionInfo"))[1])
    out["pauseAll"], out["unpauseAll"] = await _call(client, "aria2.pauseAll"), await _call(client, "aria2.unpauseAll")

    # a download that is running (a throttled file): every key aria2c sends while active, bitfield included
    status, gid = await _call(client, "aria2.addUri", [slow], {"out": "running.bin"})
    assert status == 200, gid
    active = await _wait(client, gid, lambda s: s["status"] == "active" and int(s["completedLength"]) > 0
                         and "bitfield" in s)
    assert active["connections"].isdigit() and int(active["connections"]) > 0, active
    assert re.fullmatch(r"[0-9a-f]+", active["bitfield"]) and int(active["numPieces"]) > 0, active
    out["active"] = _keys_of(active), active["files"][0]["uris"][0]["status"], active["totalLength"]
    out["active_types"] = sorted({type(v).__name__ for k, v in active.items() if k != "files"})
    ariang_keys = ["gid", "totalLength", "completedLength", "uploadSpeed", "downloadSpeed", "connections",
                   "numSeeders", "seeder", "status", "errorCode", "verifiedLength", "verifyIntegrityPending",
                   "files", "bittorrent", "infoHash"]  # AriaNg's full list keys (absent ones left out)
    out["active_ariang_keys"] = sorted((await _call(client, "aria2.tellStatus", gid, ariang_keys))[1])
    out["tellActive"] = [sorted(s) for s in (await _call(client, "aria2.tellActive", ["gid", "status"]))[1]]
    files = (await _call(client, "aria2.getFiles", gid))[1]
    out["getFiles"] = [sorted(f) for f in files], [sorted(u) for u in files[0]["uris"]]
    out["getUris"] = await _call(client, "aria2.getUris", gid)
    out["getUris"] = (out["getUris"][0], [(sorted(u), u["status"]) for u in out["getUris"][1]])
    out["getPeers"] = await _call(client, "aria2.getPeers", gid)
    stat = (await _call(client, "aria2.getGlobalStat"))[1]
    out["busy_stat"] = stat["numActive"], sorted(stat)
    out["removeDownloadResult_active"] = (await _call(client, "aria2.removeDownloadResult", gid))[1]["message"] \
        .replace(gid, "GID")
    out["forcePause"] = (await _call(client, "aria2.forcePause", gid))[1] == gid
    paused = await _wait(client, gid, lambda s: s["status"] == "paused")
    out["paused_after_start"] = _keys_of(paused)
    waiting = (await _call(client, "aria2.tellWaiting", 0, 10))[1]
    out["tellWaiting"] = [(s["status"], _keys_of(s)) for s in waiting]
    out["tellWaiting_neg"] = [s["gid"] == gid for s in (await _call(client, "aria2.tellWaiting", -1, 10))[1]]
    out["unpause_active"] = (await _call(client, "aria2.unpause", gid))[1] == gid
    await _wait(client, gid, lambda s: s["status"] == "active")
    out["unpause_again"] = (await _call(client, "aria2.unpause", gid))[1]["message"].replace(gid, "GID")
    out["forceRemove"] = (await _call(client, "aria2.forceRemove", gid))[1] == gid
    removed = await _wait(client, gid, lambda s: s["status"] == "removed")
    out["removed"] = _keys_of(removed), removed["errorCode"], removed["errorMessage"]
    out["getUris_removed"] = (await _call(client, "aria2.getUris", gid))[1]["message"].replace(gid, "GID")
    out["remove_removed"] = (await _call(client, "aria2.remove", gid))[1]["message"].replace(gid, "GID")
    out["removeDownloadResult"] = await _call(client, "aria2.removeDownloadResult", gid)
    out["gone"] = (await _call(client, "aria2.tellStatus", gid))[1]["message"].replace(gid, "GID")

    # a 404: status error, aria2's errorCode "3" (resource not found) and a message
    status, gid = await _call(client, "aria2.addUri", [missing])
    failed = await _wait(client, gid, lambda s: s["status"] == "error")
    assert failed["errorMessage"], failed
    out["error"] = sorted(failed), failed["errorCode"], sorted(failed["files"][0])
    for code, refused in refusals.items():  # errorCode per HTTP status (server/aria2_shapes.py FAILURE_CODES)
        gid = (await _call(client, "aria2.addUri", [refused]))[1]
        out[f"error_{code}"] = (await _wait(client, gid, lambda s: s["status"] == "error"))["errorCode"]
    out["error_stopped"] = [(s["status"], s["errorCode"]) for s in (await _call(
        client, "aria2.tellStopped", 0, 10, ["status", "errorCode"]))[1]]
    out["purge"] = await _call(client, "aria2.purgeDownloadResult")
    return out


@contextlib.asynccontextmanager
async def real_aria2c(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A real `aria2c --enable-rpc` (skipped where it is not installed), as a client on its RPC port."""
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.skip("aria2c is not installed (apt install aria2)")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        aria2c, "--enable-rpc", f"--rpc-listen-port={port}", f"--rpc-secret={SECRET}", f"--dir={tmp_path / 'aria2c'}",
        "--no-conf", "--quiet", "--rpc-listen-all=false", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as real:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                try:
                    await real.post("/jsonrpc", json={"id": 0, "method": "system.listMethods"})
                    break
                except httpx.TransportError:
                    assert asyncio.get_running_loop().time() < deadline, "aria2c did not start"
                    await asyncio.sleep(0.05)
            yield real
    finally:
        proc.kill()  # its graceful exit takes seconds; nothing of it is kept
        await proc.wait()


async def test_shapes_match_a_real_aria2c(make_api: ApiFactory, files: FileServer, tmp_path: Path) -> None:
    """The same calls against a real `aria2c --enable-rpc` (where installed) and fetchdeck, compared field by field."""
    url = files.add("/same.bin", bytes(range(256)) * 1200)
    slow = files.add("/same-slow.bin", bytes(range(256)) * 12_000)  # 3 MB, 3 pieces of 1 MiB
    files.faults.throttle("/same-slow.bin", 200_000)
    missing = files.url("/same-missing.bin")
    refusals = {code: files.add(f"/same-{code}.bin", b"x") for code in (401, 403, 410)}
    for code in refusals:
        files.faults.fail_status(f"/same-{code}.bin", code, times=None)
    async with real_aria2c(tmp_path) as real:
        expected = await _shapes(real, url)
        expected |= await _more_shapes(real, slow, missing, refusals)
    api = await make_api(token=SECRET, surface="aria2")
    got = await _shapes(api.client, url)
    got |= await _more_shapes(api.client, slow, missing, refusals)
    unknown = got.pop("listMethods") - expected.pop("listMethods")
    assert not unknown, f"fetchdeck lists methods aria2c does not have: {unknown}"
    differ = {key: {"fetchdeck": got.get(key), "aria2c": value} for key, value in expected.items()
              if got.get(key) != value}
    assert not differ, json.dumps(differ, indent=1)


async def test_a_web_ui_from_a_listed_origin_and_an_unlisted_one(make_api: ApiFactory) -> None:
    """AriaNg served from another origin is a web page: it works once its origin is in server.cors_origins."""
    ariang = "http://ariang.example:8080"
    extension = "chrome-extension://mpkodccbngfoacfalldjimigbofkhgjn"  # an "Aria2 Explorer"-style extension
    api = await make_api(token=SECRET, surface="aria2", cors_origins=[ariang, "chrome-extension://*"])
    body = {"jsonrpc": "2.0", "id": "o", "method": "aria2.getVersion", "params": [TOKEN]}
    # an extension's background fetch (its own Origin), once its origin pattern is listed
    from_extension = await api.client.post("/jsonrpc", json=body, headers={"Origin": extension})
    assert from_extension.status_code == 200 and from_extension.headers["access-control-allow-origin"] == extension
    preflight = await api.client.options("/jsonrpc", headers={
        "Origin": ariang, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204 and "Content-Type" in preflight.headers["access-control-allow-headers"]
    listed = await api.client.post("/jsonrpc", json=body, headers={"Origin": ariang})
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == ariang
    assert listed.json()["result"]["version"]
    other = await api.client.post("/jsonrpc", json=body, headers={"Origin": "http://evil.example"})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    assert other.json()["error"]["code"] == 1 and "cors_origins" in other.json()["error"]["message"]
    plain = await api.client.post("/jsonrpc", content=json.dumps(body), headers={
        "Origin": ariang, "Content-Type": "text/plain"})  # a browser's no-preflight trick: refused
    assert plain.status_code == 415


async def test_websocket_calls_and_notifications(make_api: ApiFactory, files: FileServer) -> None:
    """A real WebSocket client (aiohttp) on /jsonrpc: calls answer as over HTTP, and actions taken over HTTP
    notify it (Start, Pause, Start again on unpause, Complete, Error for a 404, Stop for a remove)."""
    import aiohttp

    api = await make_api(token=SECRET, surface="aria2")
    data = bytes(range(256)) * 512
    url = files.add("/ws.bin", data)
    files.faults.throttle("/ws.bin", 32_000)
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{api.url}/jsonrpc") as ws:
        frames: list[Any] = []

        async def frame(match: Any) -> Any:
            """The first frame not yet taken that match(frame) accepts."""
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                for i, seen in enumerate(frames):
                    if match(seen):
                        return frames.pop(i)
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, frames
                try:
                    message = await ws.receive(timeout=left)
                except TimeoutError:
                    pytest.fail(f"no such frame in 10 s; unmatched: {frames}")
                assert message.type == aiohttp.WSMsgType.TEXT, message
                frames.append(json.loads(message.data))

        async def notified(method: str, gid: str) -> None:
            expected = {"jsonrpc": "2.0", "method": f"aria2.{method}", "params": [{"gid": gid}]}
            assert await frame(lambda f: f == expected) == expected

        async def call(call_id: Any, method: str, *params: Any) -> Any:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": list(params)}))
            return await frame(lambda f: isinstance(f, dict) and "id" in f and f["id"] == call_id)

        gid = await rpc(api, "aria2.addUri", [url])
        await notified("onDownloadStart", gid)
        # a call over the socket answers as over HTTP, token and errors included
        over_ws = await call(7, "aria2.tellStatus", TOKEN, gid, ["gid", "status", "dir"])
        assert over_ws == {"id": 7, "jsonrpc": "2.0",
                           "result": await rpc(api, "aria2.tellStatus", gid, ["gid", "status", "dir"])}
        assert over_ws["result"]["status"] == "active"
        assert await call("w2", "aria2.getVersion", "token:wrong") == {
            "id": "w2", "jsonrpc": "2.0", "error": {"code": 1, "message": "Unauthorized"}}
        await ws.send_str(json.dumps([{"id": 1, "method": "aria2.getGlobalStat", "params": [TOKEN]},
                                      {"id": 2, "method": "aria2.nosuch", "params": [TOKEN]}]))
        batch = await frame(lambda f: isinstance(f, list))
        assert batch[0]["id"] == 1 and batch[0]["result"]["numActive"] == "1"
        assert batch[1] == {"id": 2, "jsonrpc": "2.0", "error": {"code": 1, "message": "No such method: aria2.nosuch"}}
        await ws.send_str("{not json")
        assert await frame(lambda f: isinstance(f, dict) and f.get("id", 0) is None) == {
            "id": None, "jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error."}}

        assert await rpc(api, "aria2.pause", gid) == gid
        await notified("onDownloadPause", gid)
        assert await call("w3", "aria2.unpause", TOKEN, gid) == {"id": "w3", "jsonrpc": "2.0", "result": gid}
        await notified("onDownloadStart", gid)
        files.faults.throttle("/ws.bin", None)
        await notified("onDownloadComplete", gid)
        assert (api.download_dir / "ws.bin").read_bytes() == data

        missing = await rpc(api, "aria2.addUri", [files.url("/no-such.bin")])
        await notified("onDownloadStart", missing)  # as aria2c: Start, then Error for a 404
        await notified("onDownloadError", missing)
        assert (await rpc(api, "aria2.tellStatus", missing, ["status"]))["status"] == "error"

        # remove of an active download: onDownloadStop (not Pause); a paused one added with pause: nothing
        url2 = files.add("/ws2.bin", data)
        files.faults.throttle("/ws2.bin", 16_000)
        quiet = await rpc(api, "aria2.addUri", [url2], {"out": "quiet.bin", "pause": "true"})
        other = await rpc(api, "aria2.addUri", [url2])
        await notified("onDownloadStart", other)
        assert await rpc(api, "aria2.remove", other) == other
        await notified("onDownloadStop", other)
        assert await rpc(api, "aria2.remove", quiet) == quiet
        # a task another dialect adds (they all create through the engine) notifies too
        native = (await api.engine.create([TaskSpec(url=files.add("/native.bin", data), name="native.bin")]))[0]
        await notified("onDownloadStart", f"{native.id:016x}")
        await notified("onDownloadComplete", f"{native.id:016x}")
        assert await call("w4", "system.listNotifications") == {"id": "w4", "jsonrpc": "2.0", "result": [
            "aria2.onDownloadStart", "aria2.onDownloadPause", "aria2.onDownloadStop", "aria2.onDownloadComplete",
            "aria2.onDownloadError", "aria2.onBtDownloadComplete"]}
        leftover = [f for f in frames if isinstance(f, dict) and "method" in f]
        assert leftover == [], leftover  # the paused one sent nothing, and nothing came twice
        # a web page from an unlisted origin gets no socket (fetchdeck's origin rules; aria2c accepts any)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{api.url}/jsonrpc", headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


shapes_stopped = ("complete", "error", "removed")
SET_OPTIONS = {"out": "opt.bin", "split": "4", "header": ["X-A: 1", "X-B: 2"], "referer": "http://r.example/",
               "user-agent": "UA/1", "max-download-limit": "200K", "pause": "true"}


async def _method_shapes(client: httpx.AsyncClient, url: str, slow: str, data: bytes) -> dict[str, Any]:
    """The option, position, server, checksum and JSONP calls, as shapes."""
    out: dict[str, Any] = {}
    gids = [(await _call(client, "aria2.addUri", [url], {"out": f"q{i}.bin", "pause": "true"}))[1] for i in range(3)]
    role = {g: f"q{i}" for i, g in enumerate(gids)}

    async def order() -> list[str]:
        return [role.get(s["gid"], "other") for s in (await _call(client, "aria2.tellWaiting", 0, 10, ["gid"]))[1]]

    for name, args in (("set", (gids[2], 0, "POS_SET")), ("end", (gids[2], 0, "POS_END")),
                       ("cur", (gids[2], -1, "POS_CUR")), ("cur_far", (gids[0], -5, "POS_CUR"))):
        out[f"changePosition_{name}"] = (await _call(client, "aria2.changePosition", *args), await order())
    out["changePosition_badhow"] = await _call(client, "aria2.changePosition", gids[0], 0, "POS_BAD")
    out["changePosition_unknown"] = await _call(client, "aria2.changePosition", "0123456789abcdef", 0, "POS_SET")
    first = (await _call(client, "aria2.addUri", [url], {"out": "first.bin", "pause": "true"}, 0))[1]
    role[first] = "first"
    out["addUri_position"] = await order()

    # options: set at add time, read back normalised (bytes, header lines), changed, refused on a stopped download
    opt = (await _call(client, "aria2.addUri", [url], SET_OPTIONS))[1]
    options = (await _call(client, "aria2.getOption", opt))[1]
    out["getOption"] = {k: options.get(k) for k in SET_OPTIONS} | {"types": sorted({type(v).__name__ for v in
                                                                                     options.values()})}
    out["getOption_dir"] = type(options.get("dir")).__name__
    out["getOption_unset"] = [k for k in ("all-proxy", "checksum") if k in options]
    out["changeOption"] = await _call(client, "aria2.changeOption", opt, {"max-download-limit": "1M"})
    out["changeOption_read"] = (await _call(client, "aria2.getOption", opt))[1].get("max-download-limit")
    out["changeOption_unknown_name"] = await _call(client, "aria2.changeOption", opt, {"bogus-opt": "1"})
    out["changeOption_unknown_gid"] = await _call(client, "aria2.changeOption", "0123456789abcdef", {"split": "2"})
    out["getOption_unknown_gid"] = await _call(client, "aria2.getOption", "0123456789abcdef")
    glob = (await _call(client, "aria2.getGlobalOption"))[1]
    out["getGlobalOption"] = sorted({type(v).__name__ for v in glob.values()}), "max-concurrent-downloads" in glob
    out["changeGlobalOption"] = await _call(client, "aria2.changeGlobalOption", {"max-concurrent-downloads": "4"})
    out["changeGlobalOption_read"] = (await _call(client, "aria2.getGlobalOption"))[1]["max-concurrent-downloads"]
    out["changeGlobalOption_bad"] = await _call(client, "aria2.changeGlobalOption", {"max-concurrent-downloads": "abc"})
    await _call(client, "aria2.changeGlobalOption", {"max-concurrent-downloads": "5"})
    for gid in [*gids, first, opt]:
        await _call(client, "aria2.forceRemove", gid)

    # getServers: of a running download; refused for a waiting one
    running = (await _call(client, "aria2.addUri", [slow]))[1]
    await _wait(client, running, lambda s: s["status"] == "active" and int(s["completedLength"]) > 0)
    servers = (await _call(client, "aria2.getServers", running))[1]
    out["getServers"] = [(sorted(f), f["index"], [sorted(s) for s in f["servers"]]) for f in servers]
    waiting = (await _call(client, "aria2.addUri", [url], {"pause": "true"}))[1]
    out["getServers_paused"] = (await _call(client, "aria2.getServers", waiting))[1]["message"].replace(waiting, "GID")
    out["getServers_unknown"] = await _call(client, "aria2.getServers", "0123456789abcdef")
    await _call(client, "aria2.forceRemove", running)

    # checksum: a match completes, a mismatch is errorCode 32, a malformed one is refused
    good = hashlib.sha256(data).hexdigest()
    for name, checksum in (("ok", f"sha-256={good}"), ("bad", "sha-256=" + "0" * 64)):
        gid = (await _call(client, "aria2.addUri", [url], {"out": f"sum-{name}.bin", "checksum": checksum}))[1]
        ended = await _wait(client, gid, lambda s: s["status"] in shapes_stopped)
        out[f"checksum_{name}"] = ended["status"], ended["errorCode"]
    out["checksum_malformed"] = await _call(client, "aria2.addUri", [url], {"checksum": "md5"})
    # JSONP: GET with jsoncallback
    params = base64.b64encode(json.dumps([TOKEN]).encode()).decode()
    got = await client.get("/jsonrpc", params={"method": "aria2.getVersion", "id": "j", "params": params,
                                               "jsoncallback": "cb"})
    body = got.text
    out["jsonp"] = (got.status_code, got.headers["content-type"], body[:3], body[-1],
                    sorted(json.loads(body[3:-1])) if body.startswith("cb(") else body)
    return out


async def test_option_position_and_server_shapes_match_a_real_aria2c(make_api: ApiFactory, files: FileServer,
                                                                     tmp_path: Path) -> None:
    """changePosition, addUri's position, getOption/changeOption, getGlobalOption/changeGlobalOption, getServers,
    checksum and JSONP against a real aria2c and fetchdeck."""
    api = await make_api(token=SECRET, surface="aria2")
    data = bytes(range(256)) * 40
    url = files.add("/opt.bin", data)
    slow = files.add("/opt-slow.bin", bytes(range(256)) * 4000)
    files.faults.throttle("/opt-slow.bin", 100_000)
    async with real_aria2c(tmp_path) as real:
        expected = await _method_shapes(real, url, slow, data)
    got = await _method_shapes(api.client, url, slow, data)
    differ = {key: {"fetchdeck": got.get(key), "aria2c": value} for key, value in expected.items()
              if got.get(key) != value}
    assert not differ, json.dumps(differ, indent=1)
