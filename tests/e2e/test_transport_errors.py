"""A download that cannot even start: `fetchdeck get` ends in seconds with a one-line reason, never a traceback.

Each case is a real failure on 127.0.0.1 (or a `.invalid` name): nothing listening, no such host, https
spoken to a plain-HTTP port, a server that accepts and then says nothing, one that resets the connection.
Queued tasks keep the patient retry policy and show why they wait (`Task.note`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.engine import Engine
from core.models import TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BadServer:
    """Accepts connections on 127.0.0.1 and then stalls (says nothing) or resets them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def __enter__(self) -> BadServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        if self.mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST, not FIN
            return
        try:
            await self._stop.wait()  # stall: the request is read, nothing is ever answered
        finally:
            writer.close()


@pytest.fixture
def plain_server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


def run_get(tmp_path: Path, url: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [sys.executable, "-m", "tui.cli", "get", url, "-d", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "d")]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                            env={**os.environ, **env})
    return result, time.monotonic() - started


def assert_one_line_failure(result: subprocess.CompletedProcess[str], url: str, reason: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "crashed" not in output, output
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"fetchdeck: {url}: {reason}", result.stderr


# Retries stay on for the timeout and reset cases (they are retryable), just fewer and quicker.
QUICK = {"FETCHDECK_DOWNLOAD_RETRIES": "2", "FETCHDECK_DOWNLOAD_READ_TIMEOUT": "1"}


def test_refused_gives_up_in_seconds(tmp_path: Path) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/f.bin"
    result, took = run_get(tmp_path, url)
    assert_one_line_failure(result, url, f"connection refused by 127.0.0.1:{port}")
    assert took < 15, f"took {took:.1f} s"  # a 5 s budget (the patient policy took 71 s)


def test_unknown_host_gives_up_in_seconds(tmp_path: Path) -> None:
    url = "http://no-such-host.invalid/f.bin"
    result, took = run_get(tmp_path, url)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "crashed" not in output, output
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"fetchdeck: {url}: cannot resolve no-such-host.invalid")
    assert took < 15, f"took {took:.1f} s"


def test_tls_to_a_plain_http_port_is_not_retried(tmp_path: Path, plain_server: FileServer) -> None:
    plain_server.add("/f.bin", b"x" * 1000)
    url = plain_server.url("/f.bin").replace("http://", "https://")
    result, took = run_get(tmp_path, url)
    port = url.split(":")[2].split("/")[0]
    assert_one_line_failure(result, url, f"TLS handshake with 127.0.0.1:{port} failed: wrong version number "
                                         "(does the server speak https?)")
    assert took < 10, f"took {took:.1f} s"


@pytest.mark.parametrize(("mode", "reason"), [("stall", "timed out waiting for the server"),
                                              ("reset", "the connection was reset by the server")])
def test_timeout_and_reset_end_with_the_reason(tmp_path: Path, mode: str, reason: str) -> None:
    with BadServer(mode) as server:
        url = f"http://127.0.0.1:{server.port}/f.bin"
        result, took = run_get(tmp_path, url, **QUICK)
        assert_one_line_failure(result, url, reason)
        # The first try and both retries (aiohttp itself may try a reset request twice): the server
        # did answer (TCP), so the retries are made, not cut short like an unreachable server's.
        assert server.accepted >= 3
        assert took < 20, f"took {took:.1f} s"


async def test_queued_task_retries_patiently_and_says_why(tmp_path: Path) -> None:
    """No budget outside `get`: every retry is made, and the wait shows as the task's note until it ends."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/f.bin"
    async with Engine(tmp_path / "db.sqlite", engine_config(tmp_path, retries=3)) as engine:
        (task,) = await engine.create([TaskSpec(url=url)])
        notes: list[str] = []
        while (live := await engine.get(task.id)).status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
            if live.note and live.note not in notes:
                notes.append(live.note)
            await asyncio.sleep(0.02)
        done = await engine.get(task.id)
        logs = "\n".join(line.text for line in await engine.logs(task.id))
    assert done.status == TaskStatus.FAILED and done.error == f"connection refused by 127.0.0.1:{port}"
    assert done.note is None
    assert logs.count("retry ") == 3, logs  # all three retries, no budget
    assert notes and all(n.startswith("retrying in ") for n in notes), notes
    assert notes[-1].endswith(f"connection refused by 127.0.0.1:{port} (3/3)"), notes


async def test_the_note_goes_once_bytes_flow_again(tmp_path: Path, plain_server: FileServer) -> None:
    data = b"z" * (3 << 20)
    url = plain_server.add("/back.bin", data)
    plain_server.faults.fail_status("/back.bin", 503, times=2, retry_after=0.3)
    plain_server.faults.throttle("/back.bin", 1 << 20)  # 3 s of bytes: time to see the note gone while they flow
    async with Engine(tmp_path / "db.sqlite", engine_config(tmp_path, retries=3, connections=1)) as engine:
        (task,) = await engine.create([TaskSpec(url=url)])
        notes: list[str | None] = []
        flowing_without_note = False
        while (live := await engine.get(task.id)).status in (TaskStatus.WAITING, TaskStatus.DOWNLOADING):
            if not notes or live.note != notes[-1]:
                notes.append(live.note)
            if live.downloaded > 0 and live.note is None and notes and any(notes):
                flowing_without_note = True
            await asyncio.sleep(0.02)
        done = await engine.get(task.id)
    assert done.status == TaskStatus.SUCCESS, done.error
    assert any(n and n.startswith("retrying in 0.3 s: HTTP 503 Service Unavailable (") for n in notes), notes
    assert flowing_without_note, notes
