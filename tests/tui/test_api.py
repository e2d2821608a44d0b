"""The TUI with the HTTP API: tasks created through the API, a busy port, remote mode.

Remote mode runs a real `fetchdeck serve` in a subprocess and attaches the
TUI to it with RemoteClient; killing that server shows the connection-lost
state, and starting it again reconnects.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from core.config import Config
from core.engine import Engine
from core.locations import Locations
from core.models import TaskStatus
from tests.support.fileserver import FileServer, random_bytes
from tests.tui.conftest import needs_server, screen_text, wait_for
from tui.app import FetchdeckApp
from tui.client import ConnectionState, LocalClient
from tui.remote import RemoteClient
from tui.screens.add import AddTaskScreen
from tui.widgets.task_table import TaskTable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = needs_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_port(config: Config, port: int) -> Config:
    return config.override("server", host="127.0.0.1", port=port)


async def test_task_created_through_the_api_appears_live(
    engine: Engine, config: Config, make_app: Callable[..., FetchdeckApp], fileserver: FileServer, tmp_path: Path
) -> None:
    from tui.embedded_api import ServerApi

    port = free_port()
    cfg = with_port(config, port)
    locations = Locations(config_dir=tmp_path / "config", data_dir=tmp_path / "data")
    locations.themes_dir.mkdir(parents=True)
    (locations.themes_dir / "mine.toml").write_text('name = "mine"\n[colors]\nprimary = "#aa3377"\n')
    api = ServerApi.for_profile(engine, cfg, locations)  # the profile's themes dir reaches the web page
    app = make_app(LocalClient(engine), config=cfg, api=api)
    url = fileserver.add("/api.bin", random_bytes(100_000, seed=2))
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for(pilot, lambda: app.api_label == f"API 127.0.0.1:{port}", what="API up")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
                response = await http.post("/api/downloads", json={
                    "tasks": [{"type": "direct", "url": url, "name": "from-the-api.bin"}], "startDownload": True})
                assert response.json()["success"], response.text
                task_id = response.json()["data"][0]["id"]
                themes = (await http.get("/ui/themes.json")).json()["themes"]
                assert {"name": "mine", "dark": True} in themes, themes
            await wait_for(pilot, lambda: app.query_one(TaskTable).has_task(task_id), what="the row")
            await wait_for(pilot, lambda: app.index.tasks[task_id].status == TaskStatus.SUCCESS, what="done")
            await wait_for(pilot, lambda: "from-the-api.bin" in screen_text(app), what="the name on screen")
            text = screen_text(app)
            assert f"127.0.0.1:{port}" in text  # the status line shows the API address
    finally:
        await api.stop()


async def test_busy_port_is_a_notification(
    engine: Engine, config: Config, make_app: Callable[..., FetchdeckApp]
) -> None:
    from tui.embedded_api import ServerApi

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        cfg = with_port(config, port)
        api = ServerApi(engine, cfg)
        app = make_app(LocalClient(engine), config=cfg, api=api)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.api_label == "API off", what="the API to give up")
            assert any("Cannot listen" in n.message for n in app._notifications)
            await pilot.press("a")  # the app still works
            assert type(app.screen).__name__ == "AddTaskScreen"


@contextlib.contextmanager
def fetchdeck_serve(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FETCHDECK_CONFIG_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--download-dir", str(data_dir / "downloads")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"fetchdeck serve did not start: {err}")
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_remote_mode_and_connection_lost(
    tmp_path: Path, make_app: Callable[..., FetchdeckApp], fileserver: FileServer
) -> None:
    port = free_port()
    data = random_bytes(200_000, seed=5)
    url = fileserver.add("/remote.bin", data)
    server_dir = tmp_path / "server"
    with fetchdeck_serve(server_dir, port) as proc:
        client = RemoteClient(f"http://127.0.0.1:{port}", reconnect_delays=(0.2, 0.5))
        app = make_app(client)
        try:
            async with app.run_test(size=(120, 30)) as pilot:
                await wait_for(pilot, lambda: app.sync.state == ConnectionState.CONNECTED, what="connected")
                await pilot.press("a")
                screen = app.screen
                assert isinstance(screen, AddTaskScreen)
                screen.urls_area.insert(url)  # a paste; typing is covered in test_tasks.py
                await pilot.press("enter")
                await wait_for(pilot, lambda: len(app.index) == 1, what="the remote task")
                (task_id,) = app.index.tasks
                await wait_for(pilot, lambda: app.index.tasks[task_id].status == TaskStatus.SUCCESS,
                               what="remote success via SSE")
                await wait_for(pilot, lambda: "connected" in screen_text(app), what="the connection shown")
                assert (server_dir / "downloads" / "remote.bin").read_bytes() == data

                proc.terminate()  # the server goes away: the TUI says so and keeps trying
                proc.wait(10)
                await wait_for(pilot, lambda: app.sync.state in (ConnectionState.DISCONNECTED,
                                                                 ConnectionState.CONNECTING), what="lost")
                await wait_for(pilot, lambda: "connection lost" in screen_text(app), what="lost shown")
                assert "remote.bin" in screen_text(app)  # the last known tasks stay on screen

                with fetchdeck_serve(server_dir, port):  # back again: reconnect and resync
                    await wait_for(pilot, lambda: app.sync.state == ConnectionState.CONNECTED, timeout=20,
                                   what="reconnected")
                    await wait_for(pilot, lambda: "connection lost" not in screen_text(app), what="lost gone")
                    assert app.index.tasks[task_id].status == TaskStatus.SUCCESS
        finally:
            await client.close()
