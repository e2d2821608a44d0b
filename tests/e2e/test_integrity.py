"""Checksums and disk safety (core/integrity.py) through the real engine against a real local server.

Expected digests given with the task or found in the server's URL.sha256 sidecar are verified on
multi-connection downloads (hashed while writing), also across a stop and resume; a mismatch fails the
task with both digests and keeps the file as NAME.corrupt. On a small tmpfs, a task that would overfill
it waits with a note while another task holds the space, and starts once the space is freed.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.config import Config
from core.engine import Engine
from core.integrity import Checksum, InOrderHasher
from core.models import Task, TaskKind, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes

MB = 1 << 20


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as srv:
        yield srv


def _config(tmp_path: Path, **integrity: object) -> Config:
    config = engine_config(tmp_path, retries=4)
    for key, value in integrity.items():
        setattr(config.integrity, key, value)
    return config


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(tmp_path / "db.sqlite", config=_config(tmp_path)) as eng:
        yield eng


async def _run(engine: Engine, url: str, **options: object) -> Task:
    (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(**options))])  # type: ignore[arg-type]
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 30)
    return done


async def _log(engine: Engine, task_id: int) -> str:
    return "\n".join(line.text for line in await engine.logs(task_id))


async def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert callable(condition)
        if await condition():
            return
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        await asyncio.sleep(0.05)


async def test_wrong_checksum_fails_with_both_digests_and_keeps_the_file_as_corrupt(
    engine: Engine, server: FileServer
) -> None:
    data = random_bytes(12 * MB, seed=41)
    url = server.add("/w.bin", data)
    wrong = hashlib.sha256(b"something else").hexdigest()
    task = await _run(engine, url, connections=8, checksum=f"SHA256={wrong.upper()}")
    actual = hashlib.sha256(data).hexdigest()
    assert task.status == TaskStatus.FAILED
    assert task.error is not None
    assert f"checksum mismatch: expected sha256 {wrong}, got {actual}" in task.error
    assert server.stats["/w.bin"].range_requests >= 8  # it really was a multi-connection download
    assert task.file is not None
    final = Path(task.file)
    corrupt = final.with_name(final.name + ".corrupt")
    assert not final.exists()
    assert corrupt.read_bytes() == data
    assert sorted(p.name for p in final.parent.iterdir()) == [corrupt.name]  # no .part or state left
    log = await _log(engine, task.id)
    assert wrong in log and actual in log and corrupt.name in log


async def test_right_checksum_passes_and_logs_the_digest(engine: Engine, server: FileServer) -> None:
    data = random_bytes(12 * MB + 12345, seed=42)
    url = server.add("/ok.bin", data)
    digest = hashlib.sha512(data).hexdigest()
    task = await _run(engine, url, connections=8, checksum=f"sha512={digest}")
    assert task.status == TaskStatus.SUCCESS, task.error
    assert task.file is not None and Path(task.file).read_bytes() == data
    assert server.stats["/ok.bin"].range_requests >= 8
    assert f"checksum ok: sha512 {digest}" in await _log(engine, task.id)
    assert "/ok.bin.sha256" not in server.stats  # a checksum given: no sidecar looked for


async def test_the_servers_sidecar_is_used(engine: Engine, server: FileServer) -> None:
    data = random_bytes(6 * MB, seed=43)
    good = server.add("/s.bin", data)
    server.add("/s.bin.sha256", f"{hashlib.sha256(data).hexdigest()}  s.bin\n".encode())
    bad = server.add("/t.bin", data)
    server.add("/t.bin.sha256", f"{'0' * 64} *t.bin\n".encode())
    plain = server.add("/n.bin", data)  # no sidecar: 404

    ok, failed, unchecked = await asyncio.gather(
        _run(engine, good, connections=4), _run(engine, bad, connections=4), _run(engine, plain, connections=4))
    assert ok.status == TaskStatus.SUCCESS, ok.error
    assert ok.options.checksum == f"sha256={hashlib.sha256(data).hexdigest()}"
    log = await _log(engine, ok.id)
    assert "from the server's sidecar" in log and f"checksum ok: sha256 {hashlib.sha256(data).hexdigest()}" in log
    assert failed.status == TaskStatus.FAILED and failed.error is not None
    assert f"expected sha256 {'0' * 64}, got {hashlib.sha256(data).hexdigest()}" in failed.error
    assert unchecked.status == TaskStatus.SUCCESS and unchecked.options.checksum is None
    assert unchecked.options.checksum_sidecar  # looked for once, not again
    assert server.stats["/s.bin.sha256"].requests == 1 and server.stats["/n.bin.sha256"].requests == 1


async def test_resume_after_stop_still_verifies(engine: Engine, server: FileServer) -> None:
    data = random_bytes(8 * MB, seed=44)
    url = server.add("/r.bin", data)
    server.faults.throttle("/r.bin", 3 * MB)
    digest = hashlib.sha256(data).hexdigest()
    (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(connections=4, checksum=digest))])
    await _until(lambda: _downloaded_at_least(engine, task.id, 2 * MB))
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED
    server.faults.throttle("/r.bin", None)
    await engine.start(task.id)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 30)
    assert done.status == TaskStatus.SUCCESS, done.error
    assert done.file is not None and Path(done.file).read_bytes() == data
    log = await _log(engine, task.id)
    assert "resuming:" in log and f"checksum ok: sha256 {digest}" in log


async def test_an_hls_result_is_verified_by_reading_it(engine: Engine, server: FileServer) -> None:
    segments = [random_bytes(200_000, seed=60 + i) for i in range(4)]
    for i, seg in enumerate(segments):
        server.add(f"/hls/s{i}.ts", seg)
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + "".join(f"#EXTINF:2,\ns{i}.ts\n" for i in range(4))
    url = server.add("/hls/index.m3u8", (playlist + "#EXT-X-ENDLIST\n").encode())
    digest = hashlib.sha1(b"".join(segments)).hexdigest()
    (task,) = await engine.create([TaskSpec(url=url, name="stream.ts", kind=TaskKind.HLS,
                                            options=TaskOptions(checksum=f"sha1={digest}"))])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 30)
    assert done.status == TaskStatus.SUCCESS, done.error
    assert done.file is not None and Path(done.file).read_bytes() == b"".join(segments)
    assert f"checksum ok: sha1 {digest}" in await _log(engine, task.id)


async def _downloaded_at_least(engine: Engine, task_id: int, nbytes: int) -> bool:
    return (await engine.get(task_id)).downloaded >= nbytes


def test_in_order_hasher_follows_scattered_overlapping_writes(tmp_path: Path) -> None:
    """Pieces written in a random order (some twice, some before the hasher existed) give the file's digest."""
    data = random_bytes(3 * MB + 777, seed=45)
    path = tmp_path / "f.part"
    path.write_bytes(bytes(len(data)))
    rng = random.Random(5)
    cuts = sorted({0, len(data), *(rng.randrange(len(data)) for _ in range(60))})
    pieces = list(itertools.pairwise(cuts))
    on_disk = pieces[3:6]  # a resume: these were written by an earlier run
    with path.open("r+b") as fh:
        for start, end in on_disk:
            fh.seek(start)
            fh.write(data[start:end])
    hasher = InOrderHasher(Checksum("sha256", "0" * 64), path, on_disk)
    todo = [p for p in pieces if p not in on_disk] + rng.sample(pieces, 5)  # some written twice
    rng.shuffle(todo)
    with path.open("r+b") as fh:
        for start, end in todo:
            mid = (start + end) // 2
            fh.seek(start)
            fh.write(data[start:end])
            fh.flush()
            hasher.wrote(start, [data[start:mid], memoryview(data)[mid:end]])
    assert hasher.finish(len(data)) == hashlib.sha256(data).hexdigest()


# ---- disk space ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip() or result.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_task_that_would_overfill_the_disk_waits_until_space_frees(
    tmp_path: Path, small_disk: Path, server: FileServer
) -> None:
    first, second, huge = random_bytes(5 * MB, seed=46), random_bytes(4 * MB, seed=47), random_bytes(9 * MB, seed=48)
    url_first, url_second, url_huge = (server.add("/a.bin", first), server.add("/b.bin", second),
                                       server.add("/c.bin", huge))
    server.faults.throttle("/a.bin", 1 * MB)  # holds its 5 MiB claim on the 8 MiB disk for a while
    config = _config(tmp_path, disk_retry=0.3)
    config.download.dir = str(small_disk)
    async with Engine(tmp_path / "db.sqlite", config=config) as engine:
        (a,) = await engine.create([TaskSpec(url=url_first, options=TaskOptions(connections=2))])

        async def a_has_begun() -> bool:
            task = await engine.get(a.id)
            return task.status == TaskStatus.DOWNLOADING and task.total == len(first) and task.downloaded > 0

        await _until(a_has_begun)
        (b,) = await engine.create([TaskSpec(url=url_second, options=TaskOptions(connections=2))])

        async def b_waits() -> bool:
            task = await engine.get(b.id)
            return task.status == TaskStatus.WAITING and (task.note or "").startswith("waiting for disk space")

        await _until(b_waits)
        note = (await engine.get(b.id)).note or ""
        assert "needs 4.0 MiB" in note, note
        assert "waiting for disk space: needs 4.0 MiB" in await _log(engine, b.id)
        assert not list(small_disk.glob("b.bin*"))  # not a byte written

        # A file bigger than the whole filesystem can never fit: it fails at once instead of waiting.
        (c,) = await engine.create([TaskSpec(url=url_huge)])
        (c_done,) = await asyncio.wait_for(engine.wait_finished([c.id]), 10)
        assert c_done.status == TaskStatus.FAILED and c_done.error is not None
        assert "not enough disk space, ever" in c_done.error and "9.0 MiB" in c_done.error

        # `c` ending let `b` check again (a short run: one probe); `a` still holds the space, so it waits on.
        await _until(b_waits)
        assert not list(small_disk.glob("b.bin*"))
        await engine.delete(a.id, files=True)  # frees the space
        (b_done,) = await asyncio.wait_for(engine.wait_finished([b.id]), 15)
        assert b_done.status == TaskStatus.SUCCESS, b_done.error
        assert b_done.file is not None and Path(b_done.file).read_bytes() == second
        assert b_done.note is None
