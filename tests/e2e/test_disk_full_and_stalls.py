"""Disk full and stalled connections: a clear failure or a retry, never a hang or a corrupt file.

Disk full runs on a small tmpfs the test mounts (root only; skipped with the
reason where mounting is not allowed). The database lives elsewhere, as it
does when downloads go to another disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Config
from core.engine import Engine
from core.models import Task, TaskKind, TaskSpec, TaskStatus
from tests.support.fileserver import FileServer, random_bytes

MB = 1 << 20


def config_for(download_dir: Path, **download: object) -> Config:
    config = Config()
    config.download.dir = str(download_dir)
    config.download.connections = 4
    config.download.retries = 3
    for key, value in download.items():
        setattr(config.download, key, value)
    return config


async def finished(engine: Engine, task_id: int, timeout: float) -> Task:
    (task,) = await asyncio.wait_for(engine.wait_finished([task_id]), timeout)
    return task


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "fetchdeck-test", str(mount)],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs for the disk-full test: {exc}")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the disk-full test (needs root/CAP_SYS_ADMIN): "
                    f"{result.stderr.strip() or result.returncode}")
    try:
        yield mount
    finally:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


async def test_disk_full_fails_clearly_then_completes_after_space_is_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    small = random_bytes(300_000, seed=61)
    big = random_bytes(5 * MB, seed=62)
    segments = [random_bytes(400_000, seed=70 + i) for i in range(8)]  # 3.2 MB of HLS
    filler = small_disk / "filler.bin"
    filler.write_bytes(b"\1" * (13 * MB))  # leaves ~3 MB free
    with FileServer() as files:
        small_url = files.add("/small.bin", small)
        big_url = files.add("/big.bin", big)
        for i, seg in enumerate(segments):
            files.add(f"/hls/s{i}.ts", seg)
        playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "".join(f"#EXTINF:2,\ns{i}.ts\n" for i in range(8))
        hls_url = files.add("/hls/index.m3u8", (playlist + "#EXT-X-ENDLIST\n").encode())
        config = config_for(small_disk, max_concurrent=1)
        # The disk fills behind the engine's back here: its free-space check (which would hold big.bin back
        # before it wrote a byte, tests/e2e/test_integrity.py) is off, so the write hits ENOSPC.
        config.integrity.space_check = False
        async with Engine(tmp_path / "data" / "fetchdeck.db", config) as engine:
            ok, full, hls = await engine.create([
                TaskSpec(url=small_url, name="small.bin"), TaskSpec(url=big_url, name="big.bin"),
                TaskSpec(url=hls_url, name="stream.ts", kind=TaskKind.HLS),
            ])
            ok_task = await finished(engine, ok.id, 30)
            full_task = await finished(engine, full.id, 30)
            hls_task = await finished(engine, hls.id, 30)
            assert ok_task.status is TaskStatus.SUCCESS and sha(Path(ok_task.file or "")) == hashlib.sha256(
                small).hexdigest()
            for task in (full_task, hls_task):
                assert task.status is TaskStatus.FAILED, task
                assert "no space left" in (task.error or "").lower(), task.error
            # The store is healthy: it answers, it counts right, and the small file is untouched.
            stats = await engine.stats()
            assert (stats.success, stats.failed) == (1, 2)
            # Free the space and retry: both complete, byte for byte.
            filler.unlink()
            await engine.start(full.id)
            await engine.start(hls.id)
            full_task = await finished(engine, full.id, 60)
            hls_task = await finished(engine, hls.id, 60)
            assert full_task.status is TaskStatus.SUCCESS, full_task.error
            assert hls_task.status is TaskStatus.SUCCESS, hls_task.error
            assert sha(Path(full_task.file or "")) == hashlib.sha256(big).hexdigest()
            assert Path(hls_task.file or "").read_bytes() == b"".join(segments)
            assert sorted(p.name for p in small_disk.iterdir()) == ["big.bin", "small.bin", "stream.ts"]
    with sqlite3.connect(tmp_path / "data" / "fetchdeck.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_stalled_range_is_retried_and_the_file_is_intact(tmp_path: Path) -> None:
    data = random_bytes(4 * MB, seed=63)
    with FileServer() as files:
        url = files.add("/stall.bin", data)
        files.faults.stall("/stall.bin", after_bytes=200_000, seconds=30, times=3)
        async with Engine(tmp_path / "db", config_for(tmp_path / "dl", read_timeout=0.5)) as engine:
            started = time.monotonic()
            (task,) = await engine.create([TaskSpec(url=url)])
            done = await finished(engine, task.id, 30)
            log = "\n".join(line.text for line in await engine.logs(task.id))
        assert done.status is TaskStatus.SUCCESS, done.error
        assert sha(Path(done.file or "")) == hashlib.sha256(data).hexdigest()
        assert "timed out" in log and "retry" in log, log
        assert time.monotonic() - started < 20


@pytest.mark.parametrize("kind", [TaskKind.HTTP, TaskKind.HLS])
async def test_a_server_that_never_answers_fails_the_task_instead_of_hanging(tmp_path: Path, kind: TaskKind) -> None:
    """Every response stalls forever: the task must end `failed` (timed out) within bounded time."""
    with FileServer() as files:
        if kind is TaskKind.HLS:
            files.add("/hang/s0.ts", random_bytes(500_000, seed=64))
            playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns0.ts\n#EXT-X-ENDLIST\n"
            url = files.add("/hang/index.m3u8", playlist)
            files.faults.stall("/hang/s0.ts", after_bytes=1000, seconds=60, times=None)
        else:
            url = files.add("/hang.bin", random_bytes(2 * MB, seed=65))
            # Not a byte, ever (a server trickling a byte per read timeout counts as progress: see guarantees.md).
            files.faults.stall("/hang.bin", after_bytes=0, seconds=60, times=None)
        config = config_for(tmp_path / "dl", read_timeout=0.3, retries=2)
        async with Engine(tmp_path / "db", config) as engine:
            started = time.monotonic()
            (task,) = await engine.create([TaskSpec(url=url, kind=kind)])
            done = await finished(engine, task.id, 40)
            elapsed = time.monotonic() - started
        assert done.status is TaskStatus.FAILED
        assert "timed out" in (done.error or ""), done.error
        assert elapsed < 30, elapsed
        assert not any(p.name.endswith(".part") and p.stat().st_size == 0 for p in (tmp_path / "dl").rglob("*"))


def fill(disk: Path) -> Path:
    """Write until the filesystem has not one byte left; returns the filler to delete later."""
    filler = disk / "filler.bin"
    with filler.open("wb", buffering=0) as out:
        for chunk in (b"\1" * MB, b"\1" * 4096, b"\1"):
            with contextlib.suppress(OSError):
                while True:
                    out.write(chunk)
    return filler


def stored_status(database: Path, task_id: int) -> str:
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
        return str(db.execute("SELECT status FROM tasks WHERE id=?", (task_id,)).fetchone()[0])


@pytest.mark.serial  # alone: a store on a full disk, with deadlines
async def test_full_data_disk_keeps_the_outcome_and_saves_it_when_space_returns(
    tmp_path: Path, small_disk: Path
) -> None:
    """The store's own disk fills while a download runs: the task still ends `success` (readers see it),
    commands answer "store unavailable" instead of acting on a stale status, nothing hangs in
    `downloading`, and once space is back the outcome and the log reach the store by themselves."""
    from quart import Quart

    from core.errors import StoreUnavailable
    from server.app import create_app

    data = random_bytes(3 * MB, seed=66)
    database = small_disk / "data" / "fetchdeck.db"
    with FileServer() as files:
        url = files.add("/slow.bin", data)
        files.faults.throttle("/slow.bin", 64 * 1024)  # held back until the disk is full (12 s on 4 connections)
        config = config_for(tmp_path / "dl")  # downloads on another disk
        async with Engine(database, config) as engine:
            (task,) = await engine.create([TaskSpec(url=url, name="slow.bin")])
            deadline = time.monotonic() + 10
            while (await engine.get(task.id)).downloaded == 0:
                assert time.monotonic() < deadline, "the download never started"
                await asyncio.sleep(0.05)
            # Empty the WAL (so the next write must grow it), then take every free byte.
            with contextlib.closing(sqlite3.connect(database, timeout=10)) as db:
                assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
            filler = fill(small_disk)
            assert stored_status(database, task.id) == "downloading"  # the disk filled under a running download
            files.faults.throttle("/slow.bin", None)  # now let it finish

            done = await finished(engine, task.id, 30)
            assert done.status is TaskStatus.SUCCESS, done.error
            assert sha(Path(done.file or "")) == hashlib.sha256(data).hexdigest()
            assert stored_status(database, task.id) == "downloading"  # the store refused the outcome
            assert (await engine.stats()).success == 1
            assert any("done:" in line.text for line in await engine.logs(task.id))  # from memory
            with pytest.raises(StoreUnavailable, match="disk is full"):
                await engine.start(task.id)  # not on a status the store does not have
            app: Quart = create_app(engine, config)
            response = await app.test_client().post("/api/downloads", json={"tasks": [{"type": "direct",
                                                                                      "url": url}]})
            assert response.status_code == 503
            body = await response.get_json()
            assert body["code"] == 50300 and "disk is full" in body["message"], body
            assert response.headers["Retry-After"] == "5"

            filler.unlink()
            deadline = time.monotonic() + 15
            while stored_status(database, task.id) != "success":
                assert time.monotonic() < deadline, "the outcome was never saved"
                await asyncio.sleep(0.2)
            assert any("done:" in line.text for line in await engine.repo.logs(task.id))
            again = await engine.start(task.id)  # commands work again
            assert again.status is TaskStatus.WAITING
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
