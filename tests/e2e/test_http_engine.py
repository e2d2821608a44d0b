"""Direct HTTP downloads through the real engine against a real local server with faults.

Every case ends with a byte-for-byte comparison against the served bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest

from core.engine import Engine
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from core.store import StoreFactory
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes

MB = 1 << 20


@pytest.fixture
def server() -> AsyncIterator[FileServer]:
    with FileServer() as srv:
        yield srv


make_config = partial(engine_config, retries=6)

async def download(engine: Engine, url: str, timeout: float = 60, **options: object) -> Task:
    (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(**options))])  # type: ignore[arg-type]
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), timeout)
    return done


def assert_identical(task: Task, data: bytes) -> Path:
    assert task.status == TaskStatus.SUCCESS, task.error
    assert task.file is not None
    path = Path(task.file)
    assert path.read_bytes() == data
    leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    return path


@pytest.fixture
async def engine(engine_store: StoreFactory, tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(None, store=engine_store, config=make_config(tmp_path)) as eng:
        yield eng


async def test_segmented_download_is_identical(engine: Engine, server: FileServer) -> None:
    data = random_bytes(24 * MB, seed=1)
    url = server.add("/big.bin", data)
    task = await download(engine, url, connections=8)
    assert_identical(task, data)
    assert server.stats["/big.bin"].range_requests >= 8
    assert task.total == len(data) and task.downloaded == len(data)


@pytest.mark.parametrize(
    "fault",
    ["503 burst", "429 retry-after", "reset mid-body", "truncated body", "stall past read timeout"],
)
async def test_faults_still_give_identical_files(
    engine_store: StoreFactory, tmp_path: Path, server: FileServer, fault: str
) -> None:
    data = random_bytes(6 * MB, seed=2)
    url = server.add("/f.bin", data)
    config = make_config(tmp_path, read_timeout=1.5)
    started = time.monotonic()
    if fault == "503 burst":
        server.faults.fail_status("/f.bin", status=503, times=3)
    elif fault == "429 retry-after":
        server.faults.fail_status("/f.bin", status=429, times=1, retry_after=1)
    elif fault == "reset mid-body":
        server.faults.reset_after("/f.bin", nbytes=200_000, times=4)
    elif fault == "truncated body":
        server.faults.truncate("/f.bin", nbytes=300_000, times=4)
    else:
        server.faults.stall("/f.bin", after_bytes=100_000, seconds=20, times=2)
    async with Engine(None, store=engine_store, config=config) as engine:
        task = await download(engine, url, connections=4)
        assert_identical(task, data)
        log = "\n".join(line.text for line in await engine.logs(task.id))
    if fault == "429 retry-after":
        assert time.monotonic() - started >= 0.9, "Retry-After was not honoured"
    else:
        assert "retry" in log, log


async def test_stalled_connection_range_is_taken_over(
    engine_store: StoreFactory, tmp_path: Path, server: FileServer
) -> None:
    """A connection that stops sending (without timing out) must not hold up the end."""
    data = random_bytes(16 * MB, seed=3)
    url = server.add("/s.bin", data)
    server.faults.throttle("/s.bin", 4 * MB)
    server.faults.stall("/s.bin", after_bytes=64 * 1024, seconds=60, times=1)
    config = make_config(tmp_path, read_timeout=120)
    async with Engine(None, store=engine_store, config=config) as engine:
        started = time.monotonic()
        task = await download(engine, url, connections=4)
        elapsed = time.monotonic() - started
    assert_identical(task, data)
    assert elapsed < 20, f"took {elapsed:.1f}s: the stalled range was not taken over"


async def test_no_range_support_falls_back_to_one_stream(engine: Engine, server: FileServer) -> None:
    data = random_bytes(3 * MB, seed=4)
    url = server.add("/plain.bin", data, ranges=False)
    assert_identical(await download(engine, url), data)
    assert server.stats["/plain.bin"].requests == 1  # the probe's response was the download


async def test_no_length_chunked_stream(engine: Engine, server: FileServer) -> None:
    data = random_bytes(2 * MB + 17, seed=5)
    url = server.add("/chunked.bin", data, send_length=False)
    task = await download(engine, url)
    assert_identical(task, data)
    assert task.total == len(data)


async def test_single_stream_retries_from_start(engine: Engine, server: FileServer) -> None:
    data = random_bytes(2 * MB, seed=6)
    url = server.add("/flaky.bin", data, ranges=False)
    server.faults.truncate("/flaky.bin", nbytes=100_000, times=2)
    assert_identical(await download(engine, url), data)


async def test_http_errors_fail_with_a_readable_reason(engine: Engine, server: FileServer) -> None:
    task = await download(engine, server.url("/missing.bin"))
    assert task.status == TaskStatus.FAILED
    assert task.error == "HTTP 404 Not Found"
    server.add("/forbidden.bin", b"x")
    server.faults.fail_status("/forbidden.bin", status=403, times=None)
    task = await download(engine, server.url("/forbidden.bin"))
    assert task.status == TaskStatus.FAILED and task.error is not None and "403" in task.error


async def test_stop_then_start_resumes(engine: Engine, server: FileServer) -> None:
    data = random_bytes(8 * MB, seed=7)
    url = server.add("/r.bin", data)
    server.faults.throttle("/r.bin", 1 * MB)
    (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(connections=4))])
    while (await engine.get(task.id)).downloaded < 2 * MB:
        await asyncio.sleep(0.1)
    stopped = await engine.stop(task.id)
    assert stopped.status == TaskStatus.STOPPED
    await asyncio.sleep(0.2)
    sent_before = server.stats["/r.bin"].bytes_sent
    server.faults.throttle("/r.bin", None)
    await engine.start(task.id)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 60)
    assert_identical(done, data)
    refetched = server.stats["/r.bin"].bytes_sent - sent_before
    assert refetched < len(data) - stopped.downloaded + 1 * MB, "resume re-fetched what it had"


async def test_changed_remote_file_restarts_cleanly(engine: Engine, server: FileServer) -> None:
    old = random_bytes(6 * MB, seed=8)
    new = random_bytes(6 * MB, seed=9)
    url = server.add("/c.bin", old)
    server.faults.throttle("/c.bin", 1 * MB)
    (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(connections=2))])
    while (await engine.get(task.id)).downloaded < 1 * MB:
        await asyncio.sleep(0.1)
    await engine.stop(task.id)
    server.replace("/c.bin", new)
    server.faults.throttle("/c.bin", None)
    await engine.start(task.id)
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 60)
    assert_identical(done, new)
    assert any("changed" in line.text for line in await engine.logs(task.id))


async def test_content_disposition_names_and_clashes(engine: Engine, server: FileServer) -> None:
    url = server.add("/dl?id=1", b"a" * 1000, content_disposition='attachment; filename="report.pdf"')
    first = await download(engine, url)
    second = await download(engine, url)
    assert Path(first.file or "").name == "report.pdf" and first.name == "report.pdf"
    assert Path(second.file or "").name == "report (1).pdf"
    (named,) = await engine.create([TaskSpec(url=url, name="../../escape")])
    (named,) = await asyncio.wait_for(engine.wait_finished([named.id]), 30)
    assert named.file is not None and Path(named.file).parent == (engine.download_root)
    assert Path(named.file).name == "_.._escape.pdf"


async def test_custom_headers_are_sent(engine: Engine, server: FileServer) -> None:
    url = server.add("/h.bin", b"h" * 5000)
    (task,) = await engine.create([TaskSpec(url=url, headers=(("X-Token", "s3cret"), ("Referer", "http://r/")))])
    (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 30)
    assert done.status == TaskStatus.SUCCESS
    seen = server.stats["/h.bin"].headers
    lowered = [{k.lower(): v for k, v in h.items()} for h in seen]
    assert lowered and all(h.get("x-token") == "s3cret" and h.get("referer") == "http://r/" for h in lowered)


async def test_global_speed_limit(engine_store: StoreFactory, tmp_path: Path, server: FileServer) -> None:
    data = random_bytes(3 * MB, seed=10)
    url = server.add("/slow.bin", data)
    config = make_config(tmp_path, speed_limit="1M")
    async with Engine(None, store=engine_store, config=config) as engine:
        started = time.monotonic()
        task = await download(engine, url, connections=4)
        elapsed = time.monotonic() - started
    assert_identical(task, data)
    assert elapsed >= 2.2, f"3 MiB at 1 MiB/s took only {elapsed:.2f}s"


async def test_hls_content_type_switches_kind(engine: Engine, server: FileServer) -> None:
    url = server.add(
        "/stream", b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-ENDLIST\n", content_type="application/vnd.apple.mpegurl"
    )
    task = await download(engine, url)
    assert task.kind.value == "hls"


async def test_empty_file_downloads(engine: Engine, server: FileServer) -> None:
    url = server.add("/empty.txt", b"")
    task = await download(engine, url)
    assert_identical(task, b"")


async def test_stop_right_after_start_always_sticks(engine: Engine, server: FileServer) -> None:
    """A stop landing while the scheduler launches the task must not be lost."""
    url = server.add("/race.bin", random_bytes(2 * MB, seed=30))
    server.faults.throttle("/race.bin", 64 * 1024)
    # Delays around 5 ms once hit a cancel between BEGIN and COMMIT, which left the one
    # connection inside a transaction (every later write failed; the task stuck in downloading).
    # A lost stop shows at once (the stop says another status) or later (the run goes on: 2 MB at 128 kB/s),
    # so every task is looked at again once, 0.3 s after the last stop, rather than 0.3 s after each.
    stopped_ids: list[tuple[float, int]] = []
    for delay in (0, 0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.02, 0.05) * 6:
        (task,) = await engine.create([TaskSpec(url=url, options=TaskOptions(connections=2))])
        await asyncio.sleep(delay)
        stopped = await engine.stop(task.id)
        assert stopped.status == TaskStatus.STOPPED, (delay, stopped.status)
        stopped_ids.append((delay, task.id))
    await asyncio.sleep(0.3)
    for delay, task_id in stopped_ids:
        assert (await engine.get(task_id)).status == TaskStatus.STOPPED, delay
        assert task_id not in engine.scheduler.runs
