"""Bandwidth through the real engine against a real local server: the weekly schedule (with a fake clock, moved
by the test: no real waiting for windows), the data cap, and per-task / per-host speed limits changed while
a download runs. Every download ends byte-identical to what the server holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.config import HostLimitConfig, ScheduleWindowConfig
from core.engine import Engine
from core.models import Task, TaskOptions, TaskSpec, TaskStatus
from core.schedule import Mode
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes

KB, MB = 1 << 10, 1 << 20
MONDAY_0759 = datetime(2026, 11, 30, 7, 59)  # a Monday


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, minutes: float) -> None:
        self.at += timedelta(minutes=minutes)


@pytest.fixture
def server() -> AsyncIterator[FileServer]:
    with FileServer() as srv:
        yield srv


async def until(check: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def wait_task(engine: Engine, task_id: int, check: Callable[[Task], bool], timeout: float = 15.0) -> Task:
    deadline = time.monotonic() + timeout
    while True:
        task = await engine.get(task_id)
        if check(task):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} never got there: {task}")
        await asyncio.sleep(0.02)


def identical(task: Task, data: bytes) -> None:
    assert task.status is TaskStatus.SUCCESS, task.error
    assert task.file is not None and Path(task.file).read_bytes() == data


def window(**values: object) -> ScheduleWindowConfig:
    return ScheduleWindowConfig.model_validate(values)


def make_engine(tmp_path: Path, clock: FakeClock, *windows: ScheduleWindowConfig, **download: object) -> Engine:
    config = engine_config(tmp_path, **download)
    config.schedule.windows = list(windows)
    engine = Engine(tmp_path / "db.sqlite", config, clock=clock)
    engine.schedule.poll = 0.05
    return engine


async def test_pause_window_pauses_running_tasks_starts_none_and_resumes_them(
    tmp_path: Path, server: FileServer
) -> None:
    clock = FakeClock(MONDAY_0759)
    first, second = random_bytes(3 * MB, seed=21), random_bytes(1 * MB, seed=22)
    url1, url2 = server.add("/one.bin", first), server.add("/two.bin", second)
    server.faults.throttle(None, 1 * MB)
    async with make_engine(tmp_path, clock, window(days="mon", **{"from": "08:00"}, to="09:00", pause=True),
                           connections=1) as engine:
        assert engine.schedule_state().mode is Mode.NORMAL
        (task,) = await engine.create([TaskSpec(url=url1)])
        await wait_task(engine, task.id, lambda t: t.downloaded >= 256 * KB)

        clock.advance(1)  # 08:00: the pause window is in force
        state = await engine.schedule.tick()
        assert state.paused and state.until == datetime(2026, 11, 30, 9, 0)
        assert state.describe() == "paused until 09:00"
        paused = await engine.get(task.id)
        assert paused.status is TaskStatus.WAITING and engine.scheduler.running(task.id) is None
        assert paused.note == "scheduled: starts 09:00"
        kept = paused.downloaded
        assert 256 * KB <= kept < len(first)

        (later,) = await engine.create([TaskSpec(url=url2)])  # nothing starts while paused
        await engine.schedule.tick()
        await engine.start(later.id)  # not even when asked to
        await engine.scheduler.fill_slots()  # what a poke makes the loop do, run here to its end
        assert not engine.scheduler.runs and "/two.bin" not in server.stats
        assert (await engine.get(later.id)).note == "scheduled: starts 09:00"

        server.faults.throttle(None, None)
        clock.advance(60)  # 09:00: the window is over
        assert not (await engine.schedule.tick()).active
        done = await asyncio.wait_for(engine.wait_finished([task.id, later.id]), 20)
    identical(done[0], first)
    identical(done[1], second)
    # The paused task resumed from where it was: its second request asked for the rest, not the whole file.
    ranges = server.stats["/one.bin"].range_headers
    assert any(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges
    assert server.stats["/one.bin"].bytes_sent < len(first) + kept // 2


async def test_speed_window_sets_the_global_rate_and_throttles(tmp_path: Path, server: FileServer) -> None:
    clock = FakeClock(MONDAY_0759.replace(hour=8, minute=30))
    data = random_bytes(1 * MB, seed=23)
    url = server.add("/speed.bin", data)
    async with make_engine(tmp_path, clock, window(days="mon-fri", **{"from": "08:00"}, to="18:00", speed="768K"),
                           speed_limit="50M") as engine:
        state = engine.schedule_state()
        assert state.mode is Mode.SPEED and state.describe() == "768K/s until 18:00"
        assert engine.limiter.rate == 768 * KB
        started = time.monotonic()
        (task,) = await engine.create([TaskSpec(url=url)])
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 20)
        elapsed = time.monotonic() - started
        identical(done, data)
        # 1 MiB at 768 KiB/s, less the bucket's first 192 KiB burst: ≥ 1.08 s (unthrottled: milliseconds).
        assert elapsed >= 0.95, elapsed
        clock.advance(10 * 60)  # 18:30: outside every window, the configured limit is back
        await engine.schedule.tick()
        assert engine.limiter.rate == 50 * MB and not engine.schedule_state().active


@pytest.mark.serial  # alone: the bytes stored at the pause against the cap, at 1 MB/s and 50 ms ticks
async def test_data_cap_pauses_until_the_window_ends(tmp_path: Path, server: FileServer) -> None:
    """The schedule is ticked by the test alone here (no background ticks): a run's bytes are counted while
    it runs and when it ends, so a task that starts and ends between two ticks counts too."""
    clock = FakeClock(MONDAY_0759.replace(hour=23))
    data, small = random_bytes(2 * MB, seed=24), random_bytes(200 * KB, seed=26)
    url, small_url = server.add("/cap.bin", data), server.add("/small.bin", small)
    server.faults.throttle("/cap.bin", 1 * MB)
    cap = window(days="mon", **{"from": "22:00"}, to="02:00", cap="512K")  # crosses midnight
    engine = make_engine(tmp_path, clock, cap, connections=1)
    engine.schedule.poll = 3600

    async def ticked_until(check: Callable[[], bool]) -> None:
        async def ticked() -> bool:
            await engine.schedule.tick()
            return check()
        deadline = time.monotonic() + 15
        while not await ticked():
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.05)

    async with engine:
        (quick,) = await engine.create([TaskSpec(url=small_url)])
        identical((await asyncio.wait_for(engine.wait_finished([quick.id]), 10))[0], small)
        assert (await engine.schedule.tick()).used == len(small)
        (task,) = await engine.create([TaskSpec(url=url)])
        await ticked_until(lambda: engine.schedule_state().paused)
        state = engine.schedule_state()
        assert state.capped and state.used >= 512 * KB and state.describe() == "cap reached, paused until 02:00"
        paused = await wait_task(engine, task.id, lambda t: t.status is TaskStatus.WAITING and t.note is not None)
        assert paused.note == "scheduled: starts 02:00" and 512 * KB - len(small) <= paused.downloaded < len(data)

        clock.advance(2 * 60)  # Tuesday 01:00: still Monday's window, still capped
        assert (await engine.schedule.tick()).capped
        server.faults.throttle("/cap.bin", None)
        clock.advance(60)  # 02:00: the window is over
        assert not (await engine.schedule.tick()).active
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 20)
    identical(done, data)


@pytest.mark.serial  # alone: once under xdist load its progress stood at 64 KiB for 15 s (cause not found)
@pytest.mark.parametrize("scope", ["task", "host"])
async def test_speed_limit_changed_while_running(tmp_path: Path, server: FileServer, scope: str) -> None:
    data = random_bytes(4 * MB, seed=25)
    url = server.add("/limit.bin", data)
    config = engine_config(tmp_path)
    options = TaskOptions()
    if scope == "host":
        config.hosts.limits = {"127.0.0.1": HostLimitConfig(speed="128K")}
    else:
        options = TaskOptions(speed_limit=128 * KB)
    async with Engine(tmp_path / "db.sqlite", config) as engine:
        (task,) = await engine.create([TaskSpec(url=url, options=options)])
        await wait_task(engine, task.id, lambda t: t.downloaded > 0)
        before, started = (await engine.get(task.id)).downloaded, time.monotonic()
        await wait_task(engine, task.id, lambda t: t.downloaded >= before + 256 * KB)
        # 256 KiB at 128 KiB/s, less at most one 64 KiB burst: at least 1.5 s (a loaded machine only adds)
        assert time.monotonic() - started >= 1.4
        if scope == "host":
            engine.set_host_speed_limit("127.0.0.1", None)
        else:
            changed = await engine.set_task_speed_limit(task.id, None)
            assert changed.options.speed_limit is None
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 8)  # 28 s at the old limit
    identical(done, data)


async def test_a_task_limit_holds_for_hls_segments(tmp_path: Path, server: FileServer) -> None:
    from core.models import TaskKind
    from tests.support.hls_fixtures import make_vod, probe

    playlist = make_vod(tmp_path / "media", seconds=6)
    size = sum(p.stat().st_size for p in playlist.parent.iterdir())
    server.add_dir("/media", playlist.parent)
    rate = 20 * KB
    async with Engine(tmp_path / "db.sqlite", engine_config(tmp_path)) as engine:
        started = time.monotonic()
        (task,) = await engine.create([TaskSpec(url=server.url("/media/index.m3u8"), kind=TaskKind.HLS,
                                                options=TaskOptions(speed_limit=rate))])
        (done,) = await asyncio.wait_for(engine.wait_finished([task.id], poll=0.05), 20)
        elapsed = time.monotonic() - started
    assert done.status is TaskStatus.SUCCESS and done.file is not None, done.error
    assert abs(probe(Path(done.file)).duration - 6) <= 0.4
    # Every segment byte waited for the task's bucket: all but its first 64 KiB at 20 KiB/s
    # (≥ 1.4 s here; unlimited, the whole run takes about 0.3-0.8 s).
    assert size > 96 * KB and elapsed >= 0.8 * (size - 64 * KB) / rate, (size, elapsed)
