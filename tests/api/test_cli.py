"""`fetchdeck serve` (a real subprocess) and the remote commands add/ls/start/stop/rm/watch."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from tests.api.conftest import Api, ApiFactory, sha256
from tests.support.fileserver import FileServer, random_bytes
from tui.commands import main

ROOT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"serving the API on (http://\S+)")


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run a command in a worker thread (it has its own event loop) against the test's server."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, list(args), env=env, catch_exceptions=False)


# ---- remote commands against the in-process server ------------------------------


async def test_add_ls_start_stop_rm(api: Api, files: FileServer) -> None:
    data = random_bytes(300_000, seed=30)
    url = files.add("/cli.bin", data)
    server = ["--server", api.url]
    added = await cli("add", *server, url, "--type", "direct", "--name", "cli.bin", "--folder", "c",
                      "-H", "X-From: cli", "--no-start")
    assert added.exit_code == 0, added.output
    task_id, status, name = added.output.strip().split("\t")
    assert (status, name) == ("stopped", "cli.bin")
    stored = await api.task(int(task_id))
    assert stored["folder"] == "c" and stored["headers"] == "X-From: cli" and stored["type"] == "direct"

    many = await cli("add", *server, "http://example.invalid/1.bin", "http://example.invalid/2.m3u8", "--no-start")
    assert many.exit_code == 0 and len(many.output.splitlines()) == 2

    listed = await cli("ls", *server)
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "DONE"] and len(lines) == 4
    as_json = json.loads((await cli("ls", *server, "--json")).output)
    assert [t["id"] for t in as_json] == [3, 2, 1] and as_json[0]["type"] == "m3u8"

    started = await cli("start", *server, task_id)
    assert started.exit_code == 0, started.output
    done = await api.wait_status(int(task_id), "success")
    assert sha256(Path(done["file"]).read_bytes()) == sha256(data)
    success = json.loads((await cli("ls", *server, "--status", "success", "--json")).output)
    assert [t["id"] for t in success] == [int(task_id)]

    stopped = await cli("stop", *server, "2")
    assert stopped.exit_code == 0, stopped.output
    refused = await cli("stop", *server, task_id, "2")  # a finished task cannot be stopped
    assert refused.exit_code == 1 and f"task {task_id}:" in refused.output
    missing = await cli("rm", *server, "2", "999")
    assert missing.exit_code == 1 and "task 999: no task with id 999" in missing.output
    assert (await api.call("GET", "/api/downloads"))["total"] == 2
    removed = await cli("rm", *server, "--delete-file", task_id)
    assert removed.exit_code == 0 and not Path(done["file"]).exists()


async def test_bad_input_and_unreachable_server(api: Api) -> None:
    bad = await cli("add", "--server", api.url, "ftp://nope/")
    assert bad.exit_code == 1 and "invalid URL" in bad.output and bad.output.count("\n") == 1
    unknown = await cli("add", "--server", api.url, "http://x.invalid/", "--type", "torrent")
    assert unknown.exit_code == 1 and "unknown task type" in unknown.output
    gone = await cli("ls", "--server", "http://127.0.0.1:9")
    assert gone.exit_code == 3 and "cannot reach http://127.0.0.1:9" in gone.output
    assert (await api.call("GET", "/api/downloads"))["total"] == 0


async def test_token_from_flag_and_environment(make_api: ApiFactory) -> None:
    api = await make_api(token="cli-token")
    denied = await cli("ls", "--server", api.url)
    assert denied.exit_code == 1 and "FETCHDECK_TOKEN" in denied.output
    assert (await cli("ls", "--server", api.url, "--token", "cli-token")).exit_code == 0
    env = {"FETCHDECK_SERVER": api.url, "FETCHDECK_TOKEN": "cli-token"}
    added = await cli("add", "http://example.invalid/x.bin", "--no-start", env=env)
    assert added.exit_code == 0, added.output
    assert (await cli("rm", "1", env=env)).exit_code == 0


# ---- subprocesses: watch and serve ------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FETCHDECK_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _terminal_signals() -> None:
    """In the child: SIGINT and SIGHUP as a terminal gives them. A runner started in the background (`cmd &`
    in a script, nohup) ignores both, and an ignored disposition is inherited: then a child never sees the
    Ctrl-C the tests send (a `watch` left running by CI had SigIgn 0x1001007)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


async def spawn(*args: str, **extra_env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", *args, cwd=ROOT, env=child_env(**extra_env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=_terminal_signals,
    )


async def test_watch_prints_events(api: Api) -> None:
    api.engine.scheduler.max_concurrent = 0
    proc = await spawn("watch", "--json", "--server", api.url)
    try:
        streams = api.handle.app.extensions["fetchdeck"].streams
        for _ in range(200):
            if streams.open_streams:
                break
            await asyncio.sleep(0.05)
        (task,) = await api.create({"type": "direct", "url": "http://example.invalid/w.bin"})
        await api.call("DELETE", f"/api/downloads/{task['id']}")
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        second = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert first["event"] == "download-create" and first["data"] == {"ids": [task["id"]], "count": 1}
        assert second["event"] == "download-delete" and second["data"] == {"id": str(task["id"])}
        assert second["id"] > first["id"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


@pytest.fixture
async def serve_dirs(tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    yield tmp_path / "data", tmp_path / "downloads"


async def start_serve(data: Path, downloads: Path, *extra: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await spawn("serve", "--port", "0", "--data-dir", str(data), "--download-dir", str(downloads), *extra)
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        assert line, f"serve exited early with {await proc.wait()}"
        match = URL_LINE.search(line)
        if match:
            return proc, match.group(1)


async def stop_serve(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode or 0, err.decode()


async def test_serve_stops_cleanly_and_downloads_resume_after_restart(
    serve_dirs: tuple[Path, Path], files: FileServer
) -> None:
    data_dir, downloads = serve_dirs
    payload = random_bytes(12_000_000, seed=31)
    url = files.add("/served.bin", payload)
    # Per connection: at most ~0.8 MB/s in all, so the download is still running (≥ 14 s left) when the
    # test stops the server, however slowly a loaded machine starts the second `serve` and the `ls` polls.
    files.faults.throttle("/served.bin", 100_000)
    proc, base = await start_serve(data_dir, downloads)
    added = await cli("add", "--server", base, url, "--type", "direct")
    assert added.exit_code == 0, added.output
    task_id = int(added.output.split("\t")[0])
    busy = await spawn("serve", "--port", "0", "--data-dir", str(data_dir))
    _, busy_err = await asyncio.wait_for(busy.communicate(), 20)
    assert busy.returncode == 2 and b"another fetchdeck is using" in busy_err
    for _ in range(200):
        listed = json.loads((await cli("ls", "--server", base, "--json")).output)
        if listed[0]["downloaded"] > 1_000_000:
            break
        await asyncio.sleep(0.05)
    code, err = await stop_serve(proc)
    assert code == 0, err
    assert "Traceback" not in err and "stopping" in err
    with sqlite3.connect(data_dir / "fetchdeck.db") as db:
        status, downloaded, file = db.execute(
            "SELECT status, downloaded, file FROM tasks WHERE id=?", (task_id,)).fetchone()
    assert status == "waiting" and 0 < downloaded < len(payload)
    assert Path(file + ".part").exists() and not Path(file).exists()

    files.faults.throttle("/served.bin", None)
    files.reset_stats()
    proc, base = await start_serve(data_dir, downloads)
    try:
        for _ in range(400):
            task = json.loads((await cli("ls", "--server", base, "--json")).output)[0]
            if task["status"] in ("success", "failed"):
                break
            await asyncio.sleep(0.05)
        assert task["status"] == "success", task
        assert sha256(Path(task["file"]).read_bytes()) == sha256(payload)
        assert files.stats["/served.bin"].bytes_sent < len(payload)  # resumed, not restarted
    finally:
        code, err = await stop_serve(proc, signal.SIGINT)
    assert code == 0, err


async def test_serve_refuses_public_address_without_token(serve_dirs: tuple[Path, Path]) -> None:
    data_dir, downloads = serve_dirs
    proc = await spawn("serve", "--host", "0.0.0.0", "--data-dir", str(data_dir))
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"refusing to listen on 0.0.0.0 without a token" in err and b"--token" in err
    # With a token it serves (and requires it).
    proc, base = await start_serve(data_dir, downloads, "--host", "0.0.0.0", "--token", "tok")
    try:
        base = base.replace("0.0.0.0", "127.0.0.1")
        assert (await cli("ls", "--server", base)).exit_code == 1
        assert (await cli("ls", "--server", base, "--token", "tok")).exit_code == 0
    finally:
        code, err = await stop_serve(proc)
    assert code == 0, err
    log = (data_dir / "logs" / "server.log").read_text()
    assert "Running on" in log and "Traceback" not in log


LISTENING = re.compile(r"listening: (\S+) on (http://\S+)( \(no token\))?")


async def test_serve_runs_one_listener_per_dialect(serve_dirs: tuple[Path, Path]) -> None:
    """--listen: each dialect on its own port beside the main one; a taken port is one clear line and the
    others still serve; token=false lets Downie's clients in without the token, on loopback only."""
    data_dir, downloads = serve_dirs
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        proc = await spawn("serve", "--port", "0", "--token", "tok", "--data-dir", str(data_dir),
                           "--download-dir", str(downloads), "--listen", "downie=127.0.0.1:0,token=false",
                           "--listen", "m3u8=127.0.0.1:0", "--listen", f"saveany=127.0.0.1:{busy_port}")
        assert proc.stderr is not None
        lines: list[str] = []
        listeners: dict[str, tuple[str, bool]] = {}
        while len(listeners) < 3:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, f"serve exited early with {await proc.wait()}: {lines}"
            lines.append(line)
            match = LISTENING.search(line)
            if match:
                listeners[match.group(1)] = (match.group(2), match.group(3) is None)
    try:
        assert set(listeners) == {"mediago+downie+saveany", "downie", "m3u8"}, lines
        assert listeners["downie"][1] is False and listeners["m3u8"][1] is True
        problem = [line for line in lines if f"127.0.0.1:{busy_port}" in line]
        assert len(problem) == 1 and "saveany" in problem[0] and "fetchdeck:" in problem[0], lines
        main, downie, m3u8 = (listeners[n][0] for n in ("mediago+downie+saveany", "downie", "m3u8"))
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            assert (await http.get(f"{main}/healthy")).json()["data"] == {"status": "ok"}
            queue = await http.get(f"{main}/api/tasks", headers={"X-API-Key": "tok"})
            assert queue.json()["data"] == {"tasks": [], "total": 0}  # MediaGo's /api/tasks on the main port
            assert (await http.get(f"{main}/api/tasks")).status_code == 401
            added = await http.post(f"{downie}/api/downloads/add", json={"url": "http://127.0.0.1:9/v.mp4"},
                                    headers={"Origin": "chrome-extension://abc", "Sec-Fetch-Site": "none"})
            assert added.status_code == 200 and added.json()["task_id"]
            refused = await http.get(f"{m3u8}/api/tasks")
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
            tasks = await http.get(f"{m3u8}/api/tasks", auth=("admin", "tok"))
            assert [t["id"] for t in tasks.json()] == [added.json()["task_id"]]
    finally:
        code, err = await stop_serve(proc)
    assert code == 0, err
    public = await spawn("serve", "--port", "0", "--token", "tok", "--data-dir", str(data_dir),
                         "--listen", "downie=0.0.0.0:0,token=false")
    _, err_bytes = await asyncio.wait_for(public.communicate(), 20)
    assert public.returncode == 2 and b"token = false, which is allowed only on a loopback address" in err_bytes
    bad = await spawn("serve", "--data-dir", str(data_dir), "--listen", "telnet=1234")
    _, err_bytes = await asyncio.wait_for(bad.communicate(), 20)
    assert bad.returncode == 2 and b"unknown dialect 'telnet'" in err_bytes
