"""`fetchdeck get` as a user runs it: a subprocess, real files, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.fileserver import FileServer, random_bytes

MB = 1 << 20


def fetchdeck(*args: str, **kwargs: object) -> list[str]:
    return [sys.executable, "-m", "tui.cli", *args]


def run_get(url: str, tmp_path: Path, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    cmd = fetchdeck("get", url, "--download-dir", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "data"), *extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def test_get_downloads_and_prints_the_path(tmp_path: Path, server: FileServer) -> None:
    data = random_bytes(5 * MB, seed=11)
    url = server.add("/files/data.bin", data)
    result = run_get(url, tmp_path, "-x", "4")
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    assert out == tmp_path / "dl" / "data.bin"
    assert out.read_bytes() == data
    # Run again: already there, nothing fetched again.
    server.reset_stats()
    again = run_get(url, tmp_path)
    assert again.returncode == 0 and Path(again.stdout.strip()) == out
    assert server.stats.total().bytes_sent == 0


def test_get_failure_exit_code_and_one_line_reason(tmp_path: Path, server: FileServer) -> None:
    good = server.add("/ok.bin", b"fine" * 100)
    result = run_get(server.url("/nope.bin"), tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"fetchdeck: {server.url('/nope.bin')}: HTTP 404 Not Found"]
    both = subprocess.run(
        fetchdeck("get", good, server.url("/nope2.bin"), "-d", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "d")),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert both.returncode == 1 and "nope2.bin: HTTP 404" in both.stderr
    assert Path(both.stdout.strip()).read_bytes() == b"fine" * 100


def test_get_rejects_bad_input_clearly(tmp_path: Path) -> None:
    result = run_get("ftp://example.invalid/x", tmp_path)
    assert result.returncode != 0
    assert "only http:// and https://" in result.stderr and "Traceback" not in result.stderr
    result = run_get("http://127.0.0.1:9/x", tmp_path, "-H", "no colon here")
    assert result.returncode == 2 and "bad header line" in result.stderr


@pytest.mark.serial  # alone: measures the rate the server sent at
def test_kill_9_then_rerun_resumes_without_refetching(tmp_path: Path, server: FileServer) -> None:
    """A kill -9 loses at most ~0.5 s of transfer plus 256 KiB per connection: each connection's
    batch is written after 1 MiB or 100 ms, and what is on disk is recorded every 250 ms."""
    size, connections = 40 * MB, 8
    data = random_bytes(size, seed=12)
    url = server.add("/big.bin", data)
    server.faults.throttle("/big.bin", 512 * 1024)  # per connection: 8 × 0.5 MiB/s
    cmd = fetchdeck("get", url, "-d", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "data"),
                    "-x", str(connections))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    state_file = tmp_path / "dl" / "big.bin.part.json"
    deadline = time.monotonic() + 60
    done_on_disk = 0
    first: tuple[float, int] | None = None  # (time, bytes the server had sent) once bytes flow
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            sent = server.stats["/big.bin"].bytes_sent if "/big.bin" in server.stats else 0
            if first is None and sent > 0:
                first = (time.monotonic(), sent)
            if state_file.exists():
                try:
                    state = json.loads(state_file.read_text())
                except ValueError:
                    continue
                done_on_disk = sum(pos - start for start, pos, _ in state["segments"])
                if done_on_disk >= 0.3 * size:
                    break
        assert done_on_disk >= 0.3 * size, "download made too little progress before the kill"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(timeout=10)
    assert not (tmp_path / "dl" / "big.bin").exists(), "a final file appeared before completion"
    sent_first = server.stats["/big.bin"].bytes_sent
    assert first is not None and sent_first > 0.3 * size
    # The rate the server really sent at (whatever the machine's load made of the throttle).
    rate = (sent_first - first[1]) / max(killed_at - first[0], 0.1)
    allowed = 0.5 * rate + connections * 256 * 1024
    state = json.loads(state_file.read_text())
    recorded = sum(pos - start for start, pos, _ in state["segments"])
    lost = sent_first - recorded
    assert lost <= allowed, f"the kill lost {lost} bytes: more than 0.5 s at {rate:.0f} B/s + 256 KiB per connection"
    server.faults.throttle("/big.bin", None)
    result = run_get(url, tmp_path, "-x", str(connections))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dl" / "big.bin").read_bytes() == data
    refetched = server.stats["/big.bin"].bytes_sent - size
    assert refetched <= allowed, f"re-fetched {refetched} bytes, more than the kill can have lost ({allowed:.0f})"
    assert not list((tmp_path / "dl").glob("*.part*"))


def test_second_engine_on_same_data_dir_is_refused(tmp_path: Path, server: FileServer) -> None:
    url = server.add("/slow.bin", random_bytes(2 * MB, seed=13))
    server.faults.throttle("/slow.bin", 256 * 1024)
    cmd = fetchdeck("get", url, "-d", str(tmp_path / "dl"), "--data-dir", str(tmp_path / "data"), "-x", "1")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        lock = tmp_path / "data" / "fetchdeck.lock"
        deadline = time.monotonic() + 20
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run_get(url, tmp_path)
        assert second.returncode == 2
        assert "another fetchdeck is using" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=20)
    assert first.returncode == 130  # interrupted: resumable, says so


def test_progress_line_shows_why_a_download_waits() -> None:
    """While a retry is pending the line says why, not a pulsing `0/? bytes ?`; then bytes and speed again."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from tui.get_command import TransferOrNote

    column = TransferOrNote()
    progress = Progress(column, console=Console(file=io.StringIO()), auto_refresh=False)
    note = "retrying in 4 s: connection refused by 127.0.0.1:9 (3/8)"
    row = progress.add_task("f.bin", total=None, note=note)
    assert column.render(progress.tasks[0]).plain == note
    progress.update(row, total=2 * MB, completed=MB, note=None)
    shown = column.render(progress.tasks[0]).plain
    assert "1.0/2.1 MB" in shown and "retrying" not in shown
