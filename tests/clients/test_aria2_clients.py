"""aria2's real clients against a real fetchdeck aria2 listener (server/routes/aria2rpc.py).

- aria2.js (npm `aria2` 4.1.2, unchanged) driven by node (tests/clients/node/aria2js.mjs), over its
  WebSocket and over HTTP: a direct file, an HLS stream, a throttled file; pause, unpause, remove, purge;
  the onDownload* notifications through its event API; multicall and batch as it builds them. The same
  session runs against a real aria2c --enable-rpc too (where installed): same notifications, same shapes.
- AriaNg (mayswind/AriaNg @ 7ad711a4): the exact request bodies its services build, replayed over HTTP
  POST, HTTP GET (its base64 query form) and WebSocket, from its origin listed in cors_origins.
- aria2p's library (PyPI 0.12.3) with a throttled file and an HLS stream.
Outcomes are checked for real: files byte for byte, the HLS output with ffprobe's view (ffmpeg -i).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aria2p
import pytest

from tests.api.compat_support import free_port, hls_vod
from tests.api.conftest import Api, ApiFactory
from tests.support import node_clients
from tests.support.fileserver import FileServer, random_bytes
from tests.support.hls_fixtures import decode_errors, probe

SECRET = "s3cret"
TOKEN = f"token:{SECRET}"


def port_of(api: Api) -> str:
    return api.url.rpartition(":")[2]


def hls_stream(files: FileServer) -> str:
    return files.add_dir("/vod", hls_vod().parent) + hls_vod().name


def check_video(path: Path) -> None:
    """The HLS output is a real video: ffmpeg reads ~4 s of it, with a video stream, and decodes it cleanly."""
    seen = probe(path)
    assert seen.video and 3.5 <= seen.duration <= 4.5, seen.text
    assert decode_errors(path) == ""


# ---------------------------------------------------------------- aria2.js


DIRECT = random_bytes(700_000, seed=51)
THROTTLED = random_bytes(400_000, seed=52)


async def run_aria2js(files: FileServer, port: str, run: str) -> dict[str, Any]:
    """aria2js.mjs against the RPC server on port, with its own copies of the files (under /run/)."""
    files.add(f"/{run}/direct.bin", DIRECT)
    files.add(f"/{run}/throttled.bin", THROTTLED)
    files.add(f"/{run}/slow.bin", random_bytes(400_000, seed=53))
    files.faults.throttle(f"/{run}/throttled.bin", 40_000)
    files.faults.throttle(f"/{run}/slow.bin", 20_000)

    def answer(need: dict[str, Any]) -> None:
        assert need == {"need": "unthrottle"}
        files.faults.throttle(f"/{run}/throttled.bin", None)

    out = await node_clients.drive(
        "aria2js.mjs", port, SECRET, files.url(f"/{run}/direct.bin"), hls_stream(files),
        files.url(f"/{run}/throttled.bin"), files.url(f"/{run}/slow.bin"), files.url(f"/{run}/no-such.bin"),
        answer=answer)
    assert "error" not in out, out.get("error")
    return out


async def test_aria2js_over_websocket_and_http(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    direct, throttled = DIRECT, THROTTLED
    out = await run_aria2js(files, port_of(api), "fd")
    calls = out["calls"]
    # what aria2.js put on the wire: "json-rpc" (not "jsonrpc"), integer ids from 0, the token on system.* too
    first = out["wire"]["http"][0]
    assert first == {"method": "aria2.getVersion", "json-rpc": "2.0", "id": 0, "params": [TOKEN]}
    assert out["wire"]["http"][1]["params"] == [TOKEN] and out["wire"]["http"][1]["method"] == "system.listMethods"
    assert isinstance(out["wire"]["http"][5], list)  # its batch: one array of calls
    assert calls["getVersion"]["version"] and "addUri" in calls["listMethods"]  # aria2.js strips "aria2."
    assert "onDownloadComplete" in calls["listNotifications"]
    assert calls["unknownGid"] == {"thrown": {"name": "JSONRPCError", "code": 1,
                                              "message": "GID 0123456789abcdef is not found"}}
    stat, version, bad = calls["multicallHttp"]
    assert set(stat[0]) >= {"numActive", "numWaiting", "numStopped"} and version[0] == calls["getVersion"]
    assert bad == {"code": 1, "message": "Invalid GID zz"}
    assert "numActive" in calls["batchHttp"][0]["result"]
    assert calls["batchHttp"][1]["thrown"]["message"] == "GID 0123456789abcdef is not found"

    gids = {name: calls[key] for name, key in (("direct", "addDirect"), ("hls", "addHls"),
                                                 ("throttled", "addThrottled"), ("removed", "addSlow"),
                                                 ("missing", "addMissing"))}
    assert all(isinstance(g, str) and len(g) == 16 for g in gids.values()), gids
    # the notifications, in the order they arrived through aria2.js's event API, each with params [{gid}]
    d, h, t, r, m = (gids[k] for k in ("direct", "hls", "throttled", "removed", "missing"))
    assert [tuple(n) for n in out["notes"]] == [
        ("onDownloadStart", d, 1), ("onDownloadComplete", d, 1),
        ("onDownloadStart", h, 1), ("onDownloadComplete", h, 1),
        ("onDownloadStart", t, 1), ("onDownloadPause", t, 1), ("onDownloadStart", t, 1), ("onDownloadComplete", t, 1),
        ("onDownloadStart", r, 1), ("onDownloadStop", r, 1),
        ("onDownloadStart", m, 1), ("onDownloadError", m, 1),
    ]
    assert calls["prefixedCompleteEvents"] == [d, h, t]  # also emitted under aria2's full names

    # the files, byte for byte, where tellStatus said they are
    done = calls["directDone"]
    assert done["status"] == "complete" and done["completedLength"] == str(len(direct))
    assert Path(done["files"][0]["path"]).read_bytes() == direct
    hls = calls["hlsDone"]
    assert hls["status"] == "complete" and hls["files"] == calls["hlsFiles"]
    assert hls["files"][0]["path"].endswith("stream.mp4") and int(hls["totalLength"]) > 0
    check_video(Path(hls["files"][0]["path"]))
    running = calls["throttledActive"]
    assert running["status"] == "active" and running["connections"] != "0"
    assert {s["gid"] for s in calls["tellActive"]} == {t}
    assert calls["pause"] == t and calls["throttledPaused"] == {"gid": t, "status": "paused", "downloadSpeed": "0"}
    assert {"gid": t, "status": "paused"} in calls["tellWaiting"]
    assert calls["pauseAgain"]["thrown"] == {"name": "JSONRPCError", "code": 1,
                                             "message": f"GID#{t} cannot be paused now"}
    assert calls["unpause"] == t
    finished = calls["throttledDone"]
    assert finished["status"] == "complete" and Path(finished["files"][0]["path"]).read_bytes() == throttled
    assert calls["remove"] == r and calls["removed"] == {"status": "removed", "errorCode": "31"}
    assert calls["missing"]["status"] == "error" and calls["missing"]["errorCode"] == "3"  # aria2: resource not found
    assert "404" in calls["missing"]["errorMessage"]

    # multicall and batch over the socket: [result] per call; the batch's promises resolve one by one
    assert calls["multicallWs"][0] == [{"gid": d, "status": "complete"}] and "numActive" in calls["multicallWs"][1][0]
    stopped, version_ws = calls["batchWs"]
    assert {s["gid"] for s in stopped} == {d, h, t, r, m} and version_ws == calls["getVersion"]
    [sent_batch] = [w for w in out["wire"]["ws"] if isinstance(w, list)]
    assert [c["method"] for c in sent_batch] == ["aria2.tellStopped", "aria2.getVersion"]
    assert sent_batch[1]["id"] == sent_batch[0]["id"] + 1
    assert calls["purge"] == "OK" and calls["tellStoppedAfter"] == []
    assert calls["globalStat"]["numStopped"] == "0" and calls["globalStat"]["numActive"] == "0"
    assert Path(done["files"][0]["path"]).read_bytes() == direct  # purge keeps the files


GID = re.compile(r"\b[0-9a-f]{16}\b")
KEPT = ("status", "errorCode", "code", "message")  # values compared; of the rest only the type


def shape(value: Any, roles: dict[str, str]) -> Any:
    """A JSON answer's shape: dicts by key, lists item by item (a list of plain values: the set of their types),
    the values of KEPT keys (GIDs as their roles), and of every other scalar its type only. Of a file's `uris`
    only the first counts: aria2c lists a URI again for each connection it reused (`[used, used, waiting]`)."""
    if isinstance(value, dict):
        if isinstance(value.get("uris"), list):
            value = {**value, "uris": value["uris"][:1]}
        return {k: GID.sub(lambda m: roles.get(m.group(), "GID"), v) if k in KEPT and isinstance(v, str)
                else shape(v, roles) for k, v in value.items()}
    if isinstance(value, list):
        if value and not any(isinstance(v, dict | list) or v in roles for v in value):
            return sorted({shape(v, roles) for v in value})  # a list of plain values: their types
        return [shape(v, roles) for v in value]
    if isinstance(value, str):
        return roles.get(value, "str")
    return type(value).__name__


async def test_aria2js_gets_the_same_answers_from_aria2c(make_api: ApiFactory, files: FileServer,
                                                         tmp_path: Path) -> None:
    """The same aria2.js session against a real aria2c --enable-rpc (skipped where none is installed) and fetchdeck:
    the notifications in the same order, and every answer of the same shape (the keys of every struct per status,
    string values, error objects, multicall wrapping, batch results; not the versions, methods or sizes)."""
    exe = shutil.which("aria2c")
    if exe is None:
        pytest.skip("aria2c is not installed (apt install aria2)")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        exe, "--enable-rpc", f"--rpc-listen-port={port}", f"--rpc-secret={SECRET}", "--rpc-listen-all=false",
        f"--dir={tmp_path / 'aria2c'}", "--no-conf", "--quiet", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, "aria2c did not start"
                await asyncio.sleep(0.05)
        real = await run_aria2js(files, str(port), "real")
    finally:
        proc.kill()
        await proc.wait()
    api = await make_api(token=SECRET, surface="aria2")
    ours = await run_aria2js(files, port_of(api), "fd")
    roles_of = {"addDirect": "DIRECT", "addHls": "HLS", "addThrottled": "THROTTLED", "addSlow": "REMOVED",
                "addMissing": "MISSING"}

    def view(out: dict[str, Any]) -> dict[str, Any]:
        roles = {out["calls"][k]: role for k, role in roles_of.items()}
        skip = {"getVersion", "listMethods", "batchWs"}  # versions and method lists differ by design
        calls = {k: shape(v, roles) for k, v in out["calls"].items() if k not in skip}
        calls["batchWs"] = shape(out["calls"]["batchWs"][0], roles)  # tellStopped; [1] is getVersion
        for key in ("tellStoppedBefore", "batchWs"):  # the order of stopped downloads is not compared
            calls[key] = sorted(calls[key], key=json.dumps)
        return {"notes": [(n[0], roles[n[1]], n[2]) for n in out["notes"]], "calls": calls,
                "wire": [shape(m, roles) for m in out["wire"]["http"]]}

    expected, got = view(real), view(ours)
    assert got["notes"] == expected["notes"]
    differ = {k: {"fetchdeck": got["calls"].get(k), "aria2c": v} for k, v in expected["calls"].items()
              if got["calls"].get(k) != v}
    assert not differ, json.dumps(differ)
    assert got == expected


async def test_aria2js_change_position_and_options(make_api: ApiFactory, files: FileServer) -> None:
    """aria2.changePosition (POS_SET/POS_END/POS_CUR), changeOption/getOption, getGlobalOption through aria2.js."""
    api = await make_api(token=SECRET, surface="aria2")
    slow = files.add("/slow.bin", b"s" * 1000)
    out = await node_clients.drive("aria2js.mjs", port_of(api), SECRET, "-", "-", "-", slow, "-", "methods",
                                   answer=lambda need: None)
    assert "error" not in out, out.get("error")
    calls = out["calls"]
    q1, q2, q3 = calls["queued"]
    assert calls["changePositionSet"] == 0 and [s["gid"] for s in calls["orderAfterSet"]] == [q3, q1, q2]
    assert calls["changePositionEnd"] == 2 and [s["gid"] for s in calls["orderAfterEnd"]] == [q1, q2, q3]
    assert calls["changePositionCur"] == 1 and [s["gid"] for s in calls["orderAfterCur"]] == [q1, q3, q2]
    assert calls["changeOption"] == "OK"
    assert calls["getOption"]["max-download-limit"] == "102400"  # read back in bytes, as aria2 does
    assert all(isinstance(v, str) for v in calls["getOption"].values())
    assert all(isinstance(v, str) for v in calls["getGlobalOption"].values()) and calls["getGlobalOption"]


# ---------------------------------------------------------------- AriaNg

ARIANG = "http://ariang.example:6880"  # AriaNg served from its own origin, listed in server.cors_origins
# What Chrome adds to AriaNg's $http calls from that page.
BROWSER = {"Origin": ARIANG, "Referer": f"{ARIANG}/", "Accept": "application/json, text/plain, */*",
           "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"}
# aria2RpcService.js getBasicTaskParams / getFullTaskParams: the keys of the task lists.
BASIC = ["gid", "totalLength", "completedLength", "uploadSpeed", "downloadSpeed", "connections", "numSeeders", "seeder",
         "status", "errorCode", "verifiedLength", "verifyIntegrityPending"]
FULL = [*BASIC, "files", "bittorrent", "infoHash"]
B, F = json.dumps(BASIC, separators=(",", ":")), json.dumps(FULL, separators=(",", ":"))
# The request bodies AriaNg sends, as aria2RpcService.js invoke() + buildRequestContext() build them and
# aria2HttpRpcService.js posts them (angular.toJson: compact, keys jsonrpc/method/id/params in that order; the
# "token:" first for aria2.* only; params left out when empty; null arguments dropped). $ID is its id
# (ariaNgCommonService.generateUniqueId: base64 of "AriaNg_<unix seconds>_<Math.random()>"), $GID/$URL the task.
ARIANG_CALLS = {
    # controllers/main.js refreshGlobalStat → aria2SettingService.getGlobalStat → aria2RpcService.getGlobalStat
    "getGlobalStat": '{"jsonrpc":"2.0","method":"aria2.getGlobalStat","id":"$ID","params":["token:s3cret"]}',
    # controllers/status.js → aria2SettingService.getAria2Status → aria2RpcService.getVersion
    "getVersion": '{"jsonrpc":"2.0","method":"aria2.getVersion","id":"$ID","params":["token:s3cret"]}',
    # controllers/debug.js → aria2RpcService.listMethods / listNotifications (system.*: no token, so no params)
    "listMethods": '{"jsonrpc":"2.0","method":"system.listMethods","id":"$ID"}',
    "listNotifications": '{"jsonrpc":"2.0","method":"system.listNotifications","id":"$ID"}',
    # controllers/new.js downloadByLinks → aria2TaskService.newUriTasks → aria2RpcService.addUriMulti → addUri
    # (one call per link; header is a submitFormat 'array' option in config/aria2Options.js)
    "addUri": '{"jsonrpc":"2.0","method":"aria2.addUri","id":"$ID","params":["token:s3cret",["$URL"],'
              '{"dir":"$DIR","out":"$OUT","split":"4","max-connection-per-server":"4","header":["X-AriaNg: 1"]}]}',
    # the same with "Pause on added" ticked: buildRequestOptions adds pause: 'true'
    "addUriPaused": '{"jsonrpc":"2.0","method":"aria2.addUri","id":"$ID","params":["token:s3cret",["$URL"],'
                    '{"out":"$OUT","pause":"true"}]}',
    # controllers/list.js refreshDownloadTask → aria2TaskService.getTaskList(type, full) → tellActive/Waiting/Stopped
    "tellActive": '{"jsonrpc":"2.0","method":"aria2.tellActive","id":"$ID","params":["token:s3cret",' + F + ']}',
    "tellWaiting": '{"jsonrpc":"2.0","method":"aria2.tellWaiting","id":"$ID","params":["token:s3cret",0,1000,'
                   + F + ']}',
    "tellStopped": '{"jsonrpc":"2.0","method":"aria2.tellStopped","id":"$ID","params":["token:s3cret",-1,1000,'
                   + B + ']}',
    # controllers/task-detail.js refreshTask, first load → aria2TaskService.getTaskStatus → tellStatus (whole)
    "tellStatus": '{"jsonrpc":"2.0","method":"aria2.tellStatus","id":"$ID","params":["token:s3cret","$GID"]}',
    # the later refreshes → aria2TaskService.getTaskStatusAndBtPeers → multicall (getPeers only for bittorrent)
    "multicallStatus": '{"jsonrpc":"2.0","method":"system.multicall","id":"$ID","params":[[{"methodName":'
                       '"aria2.tellStatus","params":["token:s3cret","$GID"]}]]}',
    # aria2TaskService.getBtTaskPeers → getPeers (AriaNg asks it of bittorrent tasks; aria2c answers [] for HTTP)
    "getPeers": '{"jsonrpc":"2.0","method":"aria2.getPeers","id":"$ID","params":["token:s3cret","$GID"]}',
    # controllers/main.js changeTasksState → aria2TaskService.pauseTasks / startTasks → forcePauseMulti / unpauseMulti
    "forcePause": '{"jsonrpc":"2.0","method":"aria2.forcePause","id":"$ID","params":["token:s3cret","$GID"]}',
    "unpause": '{"jsonrpc":"2.0","method":"aria2.unpause","id":"$ID","params":["token:s3cret","$GID"]}',
    # controllers/main.js removeTasks → aria2TaskService.removeTasks: forceRemoveMulti (running),
    # removeDownloadResultMulti (stopped); clearStoppedTasks → purgeDownloadResult
    "forceRemove": '{"jsonrpc":"2.0","method":"aria2.forceRemove","id":"$ID","params":["token:s3cret","$GID"]}',
    "removeDownloadResult": '{"jsonrpc":"2.0","method":"aria2.removeDownloadResult","id":"$ID",'
                            '"params":["token:s3cret","$GID"]}',
    "purgeDownloadResult": '{"jsonrpc":"2.0","method":"aria2.purgeDownloadResult","id":"$ID",'
                           '"params":["token:s3cret"]}',
}
# Its option, queue and status calls.
ARIANG_OPTION_CALLS = {
    # controllers/new.js (page load) and settings-aria2.js → aria2SettingService.getGlobalOption
    "getGlobalOption": '{"jsonrpc":"2.0","method":"aria2.getGlobalOption","id":"$ID","params":["token:s3cret"]}',
    # controllers/settings-aria2.js setGlobalOption → aria2SettingService.setGlobalOption: one key per call
    "changeGlobalOption": '{"jsonrpc":"2.0","method":"aria2.changeGlobalOption","id":"$ID",'
                          '"params":["token:s3cret",{"max-concurrent-downloads":"4"}]}',
    # controllers/task-detail.js → aria2TaskService.getTaskOptions / setTaskOption → getOption / changeOption
    "getOption": '{"jsonrpc":"2.0","method":"aria2.getOption","id":"$ID","params":["token:s3cret","$GID"]}',
    "changeOption": '{"jsonrpc":"2.0","method":"aria2.changeOption","id":"$ID",'
                    '"params":["token:s3cret","$GID",{"max-download-limit":"100K"}]}',
    # controllers/main.js retryTask → aria2TaskService.retryTask: multicall of tellStatus + getOption
    "multicallRetry": '{"jsonrpc":"2.0","method":"system.multicall","id":"$ID","params":[[{"methodName":'
                      '"aria2.tellStatus","params":["token:s3cret","$GID"]},{"methodName":"aria2.getOption",'
                      '"params":["token:s3cret","$GID"]}]]}',
    # controllers/status.js → aria2SettingService.saveSession / shutdown
    "saveSession": '{"jsonrpc":"2.0","method":"aria2.saveSession","id":"$ID","params":["token:s3cret"]}',
    "shutdown": '{"jsonrpc":"2.0","method":"aria2.shutdown","id":"$ID","params":["token:s3cret"]}',
    # controllers/list.js (drag and drop) → aria2TaskService.changeTaskPosition → changePosition
    "changePosition": '{"jsonrpc":"2.0","method":"aria2.changePosition","id":"$ID",'
                      '"params":["token:s3cret","$GID",0,"POS_SET"]}',
}


def b64json(value: Any) -> str:
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


class AriaNg:
    """Sends AriaNg's bodies the way aria2HttpRpcService.js does (POST with Content-Type: application/json, or GET
    with every object/array value as encodeURIComponent(base64(JSON))), from AriaNg's origin."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.counter = 0
        self.sent: list[str] = []

    def body(self, name: str, **values: str) -> tuple[str, str]:
        self.counter += 1
        call_id = base64.b64encode(f"AriaNg_1764615724_0.{self.counter:016d}".encode()).decode()
        text = {**ARIANG_CALLS, **ARIANG_OPTION_CALLS}[name].replace("$ID", call_id)
        for key, value in values.items():
            text = text.replace(f"${key.upper()}", value)
        json.loads(text)  # a fixture that is not JSON is the test's bug
        return call_id, text

    async def post(self, name: str, status: int = 200, **values: str) -> Any:
        call_id, text = self.body(name, **values)
        response = await self.api.client.post("/jsonrpc", content=text,
                                              headers={**BROWSER, "Content-Type": "application/json"})
        return self._read(response, call_id, status)

    async def get(self, name: str, status: int = 200, **values: str) -> Any:
        call_id, text = self.body(name, **values)
        query = "&".join(f"{key}={quote(b64json(v), safe='') if isinstance(v, dict | list) else v}"
                         for key, v in json.loads(text).items())
        response = await self.api.client.get(f"/jsonrpc?{query}", headers=BROWSER)
        return self._read(response, call_id, status)

    @staticmethod
    def _read(response: Any, call_id: str, status: int) -> Any:
        frame = response.json()
        assert response.status_code == status, (response.status_code, frame)
        assert response.headers["access-control-allow-origin"] == ARIANG  # or the browser hides the answer
        assert frame["id"] == call_id and frame["jsonrpc"] == "2.0", frame  # aria2HttpRpcService: data.id
        return frame["result"] if status == 200 else frame["error"]


def parsed_like_ariang(task: dict[str, Any]) -> dict[str, Any]:
    """What aria2TaskService.js processDownloadTask reads of a task: parseInt'ed numbers, the piece map from
    bitfield/numPieces (getPieceStatus), the name from files[0].path (getTaskName), errorCode as a string key."""
    numbers = {k: int(task[k]) for k in ("totalLength", "completedLength", "uploadSpeed", "downloadSpeed",
                                          "connections") if k in task}
    out: dict[str, Any] = {"status": task["status"], **numbers}
    if "bitfield" in task:
        pieces = int(task["numPieces"])
        bits = bin(int(task["bitfield"], 16))[2:].zfill(len(task["bitfield"]) * 4)
        assert len(task["bitfield"]) == 2 * -(-pieces // 8), task
        out["pieces"] = bits[:pieces].count("1")
    if "files" in task:
        (file,) = task["files"]
        out["name"] = Path(file["path"]).name if file["path"] else file["uris"][0]["uri"]
        assert file["selected"] in ("true", True) and int(file["index"]) == 1
    return out


async def test_ariang_calls_replayed(make_api: ApiFactory, files: FileServer) -> None:
    """Every call AriaNg's pages make (read from mayswind/AriaNg), over POST, GET and its WebSocket, from its origin."""
    api = await make_api(token=SECRET, surface="aria2", cors_origins=[ARIANG])
    ng = AriaNg(api)
    # The page's first call, a POST with Content-Type: application/json from another origin: the browser preflights.
    preflight = await api.client.options("/jsonrpc", headers={
        "Origin": ARIANG, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == ARIANG
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    stat = await ng.post("getGlobalStat")
    assert {k: int(v) for k, v in stat.items()} == {"downloadSpeed": 0, "uploadSpeed": 0, "numActive": 0,
                                                    "numWaiting": 0, "numStopped": 0, "numStoppedTotal": 0}
    version = await ng.post("getVersion")
    assert version["version"] and isinstance(version["enabledFeatures"], list)
    assert "aria2.getPeers" in await ng.post("listMethods") and await ng.get("listMethods")
    assert "aria2.onDownloadComplete" in await ng.post("listNotifications")

    # the new-task page: a throttled link, a paused one, a small one, a broken one
    data = random_bytes(300_000, seed=61)
    small = random_bytes(50_000, seed=62)
    files.add("/ng-slow.bin", data)
    files.add("/ng-small.bin", small)
    files.faults.throttle("/ng-slow.bin", 30_000)
    slow = await ng.post("addUri", url=files.url("/ng-slow.bin"), dir="ariang", out="slow.bin")
    paused = await ng.post("addUriPaused", url=files.url("/ng-small.bin"), out="later.bin")
    done = await ng.post("addUri", url=files.url("/ng-small.bin"), dir="ariang", out="small.bin")
    broken = await ng.get("addUri", url=files.url("/ng-gone.bin"), dir="ariang", out="gone.bin")  # GET mode too
    for gid, word in ((done, "complete"), (broken, "error"), (slow, "active")):
        deadline = asyncio.get_running_loop().time() + 10
        while (await ng.post("tellStatus", gid=gid))["status"] != word:
            assert asyncio.get_running_loop().time() < deadline, (gid, word)
            await asyncio.sleep(0.05)
    sent = [{k.lower(): v for k, v in h.items()} for h in files.stats.get("/ng-small.bin").headers]
    assert sent and all(h["x-ariang"] == "1" for h in sent)
    assert (api.download_dir / "ariang" / "small.bin").read_bytes() == small

    # the lists, with the keys AriaNg asks (absent ones, like numSeeders for HTTP, are left out as aria2c does)
    for fetch in (ng.post, ng.get):
        active, waiting, stopped = await fetch("tellActive"), await fetch("tellWaiting"), await fetch("tellStopped")
        assert [t["gid"] for t in active] == [slow] and [t["gid"] for t in waiting] == [paused]
        assert set(active[0]) == {"gid", "totalLength", "completedLength", "uploadSpeed", "downloadSpeed",
                                  "connections", "status", "files"}
        assert set(waiting[0]) == set(active[0])
        assert [t["gid"] for t in stopped] == [broken, done]  # offset -1: newest first
        assert set(stopped[0]) == {"gid", "totalLength", "completedLength", "uploadSpeed", "downloadSpeed",
                                   "connections", "status", "errorCode"}
        assert [(t["status"], t["errorCode"]) for t in stopped] == [("error", "3"), ("complete", "0")]
        seen = parsed_like_ariang(active[0])
        assert seen["status"] == "active" and seen["totalLength"] == len(data) and seen["name"] == "slow.bin"
        assert parsed_like_ariang(waiting[0])["name"] == "later.bin"

    # the task detail page: the whole struct, then its multicall; getPeers as aria2c answers for HTTP
    whole = await ng.post("tellStatus", gid=done)
    assert parsed_like_ariang(whole) == {"status": "complete", "totalLength": len(small),
                                         "completedLength": len(small), "uploadSpeed": 0, "downloadSpeed": 0,
                                         "connections": 0, "pieces": 1, "name": "small.bin"}
    assert whole["dir"].endswith("ariang") and whole["errorCode"] == "0" and "bittorrent" not in whole
    assert await ng.post("multicallStatus", gid=done) == [[whole]]  # response.data[0][0]
    assert await ng.get("multicallStatus", gid=done) == [[whole]]
    assert await ng.post("getPeers", gid=slow) == []
    assert await ng.post("getPeers", gid="0123456789abcdef", status=400) == {
        "code": 1, "message": "GID 0123456789abcdef is not found"}
    assert (await ng.post("tellStatus", gid=broken))["errorMessage"]  # shown as the task's error text

    # the toolbar: pause, start, remove (running: forceRemove; stopped: removeDownloadResult), clear stopped
    assert await ng.post("forcePause", gid=slow) == slow
    refused = await ng.post("forcePause", gid=slow, status=400)
    assert refused == {"code": 1, "message": f"GID#{slow} cannot be paused now"}
    assert await ng.post("unpause", gid=slow) == slow
    assert await ng.post("forceRemove", gid=slow) == slow
    assert (await ng.post("tellStatus", gid=slow))["status"] == "removed"
    assert await ng.post("removeDownloadResult", gid=broken) == "OK"
    assert await ng.post("purgeDownloadResult") == "OK"
    assert await ng.post("tellStopped") == []
    assert (api.download_dir / "ariang" / "small.bin").read_bytes() == small  # the files stay
    # a wrong secret: exactly "Unauthorized", which AriaNg recognises (config/aria2RpcConstants.js aria2RpcErrors)
    call_id, text = ng.body("getVersion")
    wrong = await api.client.post("/jsonrpc", content=text.replace(SECRET, "nope"),
                                  headers={**BROWSER, "Content-Type": "application/json"})
    assert wrong.status_code == 400 and wrong.json() == {"id": call_id, "jsonrpc": "2.0",
                                                         "error": {"code": 1, "message": "Unauthorized"}}


async def test_ariang_over_its_websocket(make_api: ApiFactory, files: FileServer) -> None:
    """aria2WebSocketRpcService.js: the same bodies, one frame each, answers matched by id, notifications (frames
    with a method and no id) handed params[0]; root.js then asks tellStatus for the finished task's name."""
    import aiohttp

    api = await make_api(token=SECRET, surface="aria2", cors_origins=[ARIANG])
    ng = AriaNg(api)
    data = random_bytes(200_000, seed=63)
    url = files.add("/ng-ws.bin", data)
    files.faults.throttle("/ng-ws.bin", 50_000)
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{api.url}/jsonrpc", headers={"Origin": ARIANG}) as ws:
        pending: list[Any] = []

        async def until(match: Any) -> Any:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                for frame in pending:
                    if match(frame):
                        pending.remove(frame)
                        return frame
                message = await ws.receive(timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
                assert message.type == aiohttp.WSMsgType.TEXT, message
                pending.append(json.loads(message.data))

        async def send(name: str, **values: str) -> Any:
            call_id, text = ng.body(name, **values)
            await ws.send_str(text)
            frame = await until(lambda f: isinstance(f, dict) and f.get("id") == call_id)
            assert "error" not in frame and frame["result"], frame  # AriaNg drops a falsy result
            return frame["result"]

        assert (await send("getVersion"))["version"]
        gid = await send("addUri", url=url, dir="ws", out="ws.bin")
        start = await until(lambda f: isinstance(f, dict) and f.get("method") == "aria2.onDownloadStart")
        assert "id" not in start and start["params"] == [{"gid": gid}]
        assert [t["gid"] for t in await send("tellActive")] == [gid]
        files.faults.throttle("/ng-ws.bin", None)
        complete = await until(lambda f: isinstance(f, dict) and f.get("method") == "aria2.onDownloadComplete")
        assert complete["params"][0] == {"gid": gid}
        task = await send("tellStatus", gid=gid)
        assert parsed_like_ariang(task)["name"] == "ws.bin"
        assert Path(task["files"][0]["path"]).read_bytes() == data
        assert await send("multicallStatus", gid=gid) == [[task]]
        assert [f for f in pending if "method" in f] == []  # no other notification


async def test_ariang_option_and_position_calls(make_api: ApiFactory, files: FileServer) -> None:
    """AriaNg's option pages, retry, drag-to-reorder and status page (ARIANG_OPTION_CALLS)."""
    api = await make_api(token=SECRET, surface="aria2", cors_origins=[ARIANG])
    ng = AriaNg(api)
    url = files.add("/ng-opt.bin", b"o" * 10_000)
    glob = await ng.post("getGlobalOption")
    assert glob and all(isinstance(v, str) for v in glob.values())
    assert await ng.post("changeGlobalOption") == "OK"
    assert (await ng.post("getGlobalOption"))["max-concurrent-downloads"] == "4"
    first = await ng.post("addUriPaused", url=url, out="one.bin")
    second = await ng.post("addUriPaused", url=url, out="two.bin")
    assert await ng.post("changeOption", gid=first) == "OK"
    options = await ng.post("getOption", gid=first)
    assert options["max-download-limit"] == "102400" and options["out"] == "one.bin"
    [[task], [retry_options]] = await ng.post("multicallRetry", gid=first)
    assert len(task["files"]) == 1 and "bittorrent" not in task and retry_options == options
    # drag the second to the top: changePosition answers the new position (an int; 0 here)
    assert await ng.post("changePosition", gid=second) == 0
    assert [t["gid"] for t in await ng.post("tellWaiting")] == [second, first]
    # the status page: fetchdeck's store is always saved; shutdown is refused unless [aria2_rpc] allows it
    assert await ng.post("saveSession") == "OK"
    refused = await ng.post("shutdown", status=400)
    assert refused["code"] == 1 and "allow_shutdown" in refused["message"]
    assert (await ng.post("getVersion"))["version"]  # still serving


# ---------------------------------------------------------------- aria2p's library


def aria2p_api(api: Api) -> aria2p.API:
    return aria2p.API(aria2p.Client(host="http://127.0.0.1", port=int(port_of(api)), secret=SECRET))


async def until(what: str, check: Any, timeout: float = 20) -> Any:
    """Poll a blocking aria2p call (in a thread) until it returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await asyncio.to_thread(check)):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def test_aria2p_throttled_file_and_hls_stream(make_api: ApiFactory, files: FileServer) -> None:
    api = await make_api(token=SECRET, surface="aria2")
    client = aria2p_api(api)
    data = random_bytes(300_000, seed=71)
    url = files.add("/p-slow.bin", data)
    files.faults.throttle("/p-slow.bin", 30_000)
    slow = await asyncio.to_thread(client.add_uris, [url], {"out": "p-slow.bin"})

    def fresh(gid: str) -> aria2p.Download:
        return client.get_download(gid)

    running = await until("active", lambda: (d := fresh(slow.gid)).is_active and d.completed_length > 0 and d)
    assert 0 < running.completed_length < running.total_length == len(data) and running.connections >= 1
    assert running.name == "p-slow.bin" and running.progress < 100
    assert await asyncio.to_thread(client.pause, [running]) == [True]
    paused = await until("paused", lambda: (d := fresh(slow.gid)).is_paused and d)
    assert paused.download_speed == 0 and [d.gid for d in await asyncio.to_thread(client.get_downloads)] == [slow.gid]
    assert await asyncio.to_thread(client.resume, [paused]) == [True]
    await until("active again", lambda: fresh(slow.gid).is_active)
    files.faults.throttle("/p-slow.bin", None)
    done = await until("complete", lambda: (d := fresh(slow.gid)).is_complete and d)
    assert done.completed_length == done.total_length == len(data) and done.error_code == "0"
    assert Path(done.files[0].path).read_bytes() == data

    playlist = hls_stream(files)
    stream = await asyncio.to_thread(client.add_uris, [playlist], {"out": "p-clip.mp4"})
    clip = await until("the stream", lambda: (d := fresh(stream.gid)).is_complete and d)
    assert clip.name == "p-clip.mp4" and clip.total_length > 0 and clip.files[0].uris[0]["uri"] == playlist
    check_video(Path(clip.files[0].path))
    assert (await api.engine.get(int(stream.gid, 16))).kind.value == "hls"
    assert await asyncio.to_thread(client.remove, [clip]) == [True]  # complete: aria2p calls removeDownloadResult
    assert await asyncio.to_thread(client.purge) is True
    assert await asyncio.to_thread(client.get_downloads) == []
    assert Path(clip.files[0].path).exists() and Path(done.files[0].path).read_bytes() == data


async def test_aria2p_moves_and_options(make_api: ApiFactory, files: FileServer) -> None:
    """aria2p's move_to_top/move (aria2.changePosition), Download.options (getOption), set_options (changeOption)."""
    api = await make_api(token=SECRET, surface="aria2")
    client = aria2p_api(api)
    url = files.add("/p-q.bin", b"q" * 1000)
    one, two, three = [await asyncio.to_thread(client.add_uris, [url], {"out": f"{n}.bin", "pause": "true"})
                       for n in ("one", "two", "three")]
    assert await asyncio.to_thread(client.move_to_top, three) == 0
    assert await asyncio.to_thread(client.move, one, 1) == 2
    assert [d.gid for d in await asyncio.to_thread(client.get_downloads)] == [three.gid, two.gid, one.gid]
    assert await asyncio.to_thread(client.set_options, {"max-download-limit": "64K"}, [two]) == [True]
    options = await asyncio.to_thread(lambda: client.get_download(two.gid).options)
    assert options.max_download_limit == 65536 and options.out == "two.bin"
