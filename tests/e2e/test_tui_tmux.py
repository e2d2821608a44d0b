"""The real `fetchdeck` TUI in a real terminal (tmux): type `a`, a URL and Enter, see it finish.

A private tmux server (-L) per test keeps these runs away from anyone's tmux.
The second test attaches the TUI to a `fetchdeck serve` with --server.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fileserver import FileServer, random_bytes

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tmux:
    def __init__(self, name: str) -> None:
        self.socket = f"fetchdeck-test-{os.getpid()}-{name}"
        self.target = f"{name}:0.0"
        self.name = name

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                             timeout=10)
        return out.stdout

    def start(self, command: list[str], env: dict[str, str], size: tuple[int, int] = (120, 32)) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        shell = f"cd {shlex.quote(str(ROOT))} && env {exports} {shlex.join(command)}; echo FETCHDECK-EXIT=$?; sleep 60"
        self.run("-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]),
                 shell)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.target)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.target, *(["-l"] if literal else []), *keys)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear; the screen shows:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux(request: pytest.FixtureRequest) -> Iterator[Tmux]:
    session = Tmux(request.node.name.replace("[", "-").replace("]", "")[:40])
    try:
        yield session
    finally:
        session.kill()


def env_for(tmp: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "FETCHDECK_CONFIG_DIR": str(tmp / "config"), "TERM": "xterm-256color",
            "COLORTERM": "truecolor", "HOME": os.environ.get("HOME", str(tmp))}


def fetchdeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", *args]


def add_by_keyboard(tmux: Tmux, url: str) -> None:
    tmux.wait_for("No downloads yet")
    tmux.keys("a")
    tmux.wait_for("Add downloads")
    tmux.keys(url, literal=True)
    tmux.keys("Enter")


def test_fetchdeck_in_tmux_downloads_a_typed_url(tmux: Tmux, tmp_path: Path) -> None:
    data = random_bytes(2_000_000, seed=11)
    with FileServer() as srv:
        url = srv.add("/movie.bin", data)
        port = free_port()
        tmux.start(fetchdeck("--data-dir", str(tmp_path / "data"), "--download-dir", str(tmp_path / "dl"),
                             "--port", str(port)), env_for(tmp_path))
        tmux.wait_for(f"API 127.0.0.1:{port}")
        add_by_keyboard(tmux, url)
        screen = tmux.wait_for("✓ done")
        assert "movie.bin" in screen and "Traceback" not in screen
        assert (tmp_path / "dl" / "movie.bin").read_bytes() == data
        tmux.keys("q")
        screen = tmux.wait_for("FETCHDECK-EXIT=")
        assert "FETCHDECK-EXIT=0" in screen, screen
        assert "Traceback" not in screen


def test_fetchdeck_in_tmux_attached_with_server(tmux: Tmux, tmp_path: Path) -> None:
    data = random_bytes(500_000, seed=12)
    port = free_port()
    server_dir = tmp_path / "server"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FETCHDECK_CONFIG_DIR": str(server_dir)}
    serve = subprocess.Popen(fetchdeck("serve", "--port", str(port), "--data-dir", str(server_dir),
                                       "--download-dir", str(server_dir / "dl")),
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with FileServer() as srv:
            url = srv.add("/remote.bin", data)
            tmux.start(fetchdeck("--server", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "client")),
                       env_for(tmp_path))
            tmux.wait_for("● connected", timeout=40)
            add_by_keyboard(tmux, url)
            screen = tmux.wait_for("✓ done")
            assert "remote.bin" in screen
            assert (server_dir / "dl" / "remote.bin").read_bytes() == data
            tmux.keys("q")
            assert "FETCHDECK-EXIT=0" in tmux.wait_for("FETCHDECK-EXIT=")
    finally:
        serve.terminate()
        serve.wait(10)


def test_quitting_leaves_downloads_resumable(tmux: Tmux, tmp_path: Path) -> None:
    import sqlite3

    with FileServer() as srv:
        url = srv.add("/slow.bin", random_bytes(3_000_000, seed=13))
        srv.faults.throttle("/slow.bin", 200_000)
        tmux.start(fetchdeck("--data-dir", str(tmp_path / "data"), "--download-dir", str(tmp_path / "dl"),
                             "--no-server"), env_for(tmp_path))
        tmux.wait_for("API off")
        add_by_keyboard(tmux, url)
        tmux.wait_for("↓ active")
        deadline = time.monotonic() + 20
        while not list((tmp_path / "dl").glob("slow.bin.part*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        tmux.keys("q")
        screen = tmux.wait_for("FETCHDECK-EXIT=")
        assert "FETCHDECK-EXIT=0" in screen and "Traceback" not in screen
    with sqlite3.connect(tmp_path / "data" / "fetchdeck.db") as db:
        status, downloaded = db.execute("SELECT status, downloaded FROM tasks").fetchone()
    assert status == "waiting" and downloaded > 0  # resumes on the next start
    assert (tmp_path / "dl" / "slow.bin.part").exists() and not (tmp_path / "dl" / "slow.bin").exists()
