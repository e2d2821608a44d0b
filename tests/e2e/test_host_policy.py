"""Per-host connection policy through the real engine against real local servers, one per host
(127.0.0.2 and 127.0.0.3): the `[hosts."NAME"]` caps counted at the server under 20 tasks, per-task
connections up to 64, and the back-off on a 429 burst (core/policy.py) that steps one host down and up
while the other host keeps every connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.config import HostLimitConfig
from core.engine import Engine
from core.models import ACTIVE_STATUSES, Task, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes

MB = 1 << 20
HOST_A, HOST_B = "127.0.0.2", "127.0.0.3"

pytestmark = pytest.mark.timeout(60)


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20, what: str = "",
                poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)


def identical(task: Task, data: bytes) -> bool:
    return task.status is TaskStatus.SUCCESS and Path(task.file or "").read_bytes() == data


async def log_of(engine: Engine, task_id: int) -> list[str]:
    return [line.text for line in await engine.logs(task_id)]


async def test_a_host_cap_holds_under_20_tasks_and_a_task_still_opens_64_connections(tmp_path: Path) -> None:
    bodies = {f"/f{i}.bin": random_bytes(2 * MB, seed=i) for i in range(20)}
    big = random_bytes(64 * MB, seed=99)
    config = engine_config(tmp_path, max_concurrent=21, connections=4)
    # The key's port is ignored: it names the host 127.0.0.2 whatever port its server listens on.
    config.hosts.limits = {f"{HOST_A}:1": HostLimitConfig(connections=6, tasks=3)}
    with FileServer(HOST_A) as capped, FileServer(HOST_B) as free:
        for path, body in bodies.items():
            capped.add(path, body)
            capped.faults.throttle(path, 8 * MB)
        free.add("/big.bin", big)
        free.faults.throttle("/big.bin", MB // 4)  # slow, until all 64 ranges are seen in flight
        async with Engine(tmp_path / "db.sqlite", config) as engine:
            created = await engine.create([TaskSpec(url=capped.url(p)) for p in bodies])
            (wide,) = await engine.create([TaskSpec(url=free.url("/big.bin"), options=TaskOptions(connections=64))])
            peak_running, wide_seen = 0, False

            async def count_running() -> bool:
                nonlocal peak_running, wide_seen
                running = [r for r in engine.scheduler.runs.values() if HOST_A in r.task.url]
                peak_running = max(peak_running, len(running))
                if not wide_seen and free.stats.in_flight == 64:
                    wide_seen = True
                    free.faults.throttle("/big.bin", None)  # seen: let it finish
                tasks = [await engine.get(t.id) for t in [*created, wide]]
                return not [t for t in tasks if t.status in ACTIVE_STATUSES]

            await until(count_running, timeout=40, what="every task done")
            done = {t.id: await engine.get(t.id) for t in [*created, wide]}
        wrong = [(t.url, done[t.id].status, done[t.id].error) for t in created
                 if not identical(done[t.id], bodies["/" + t.url.rsplit("/", 1)[1]])]
        assert not wrong, wrong
        assert identical(done[wide.id], big)
        # Counted at the servers: the capped host never saw more than its cap, the free one all 64 at once.
        assert capped.stats.max_in_flight <= 6, capped.stats.max_in_flight
        assert capped.stats.max_in_flight >= 4  # the cap was used, not undershot
        assert 1 < peak_running <= 3, peak_running
        assert wide_seen and free.stats.max_in_flight == 64, free.stats.max_in_flight


async def test_a_429_burst_steps_one_host_down_and_back_up_while_the_other_keeps_its_connections(
        tmp_path: Path) -> None:
    body_a, body_b = random_bytes(40 * MB, seed=1), random_bytes(40 * MB, seed=2)
    config = engine_config(tmp_path, retries=40, connections=8)
    config.policy.quiet_seconds = 0.4
    with FileServer(HOST_A) as a, FileServer(HOST_B) as b:
        a.add("/a.bin", body_a)
        b.add("/b.bin", body_b)
        a.faults.throttle("/a.bin", 0.5 * MB)  # per connection: both downloads last while the test looks
        b.faults.throttle("/b.bin", 0.5 * MB)
        async with Engine(tmp_path / "db.sqlite", config) as engine:
            task_a, task_b = await engine.create([TaskSpec(url=a.url("/a.bin")), TaskSpec(url=b.url("/b.bin"))])
            await until(lambda: a.stats.in_flight == 8 and b.stats.in_flight == 8, what="8 connections to each")

            # Host A sheds its load: every connection dropped, and 429 to every request until further notice.
            a.faults.fail_status(None, status=429, times=None, retry_after=0.1)
            assert a.drop_connections() == 8
            b_during: list[int] = []

            def at_one() -> bool:
                b_during.append(b.stats.in_flight)
                return engine.hosts.allowance(HOST_A) == 1

            await until(at_one, what="host A stepped down to 1 connection")
            a.faults.clear_path(None)  # the burst is over (the per-path throttle stays)
            await until(lambda: a.stats.in_flight <= 1, timeout=5, what="A's extra connections closed")
            a_at_one: list[int] = []

            def stepped_up() -> bool:
                allowance = engine.hosts.allowance(HOST_A)
                if allowance == 1:
                    a_at_one.append(a.stats.in_flight)
                b_during.append(b.stats.in_flight)
                return allowance is None

            await until(stepped_up, timeout=10, what="host A's back-off over")
            await until(lambda: a.stats.in_flight == 8, timeout=10, what="8 connections to A again")
            a.faults.throttle("/a.bin", None)
            b.faults.throttle("/b.bin", None)
            done_a, done_b = await asyncio.wait_for(engine.wait_finished([task_a.id, task_b.id]), 30)
            log_a, log_b = await log_of(engine, task_a.id), await log_of(engine, task_b.id)
    assert identical(done_a, body_a) and identical(done_b, body_b)
    steps = [line for line in log_a if line.startswith(HOST_A)]
    assert steps == [
        f"{HOST_A} answered 429: connections 8 → 4",
        f"{HOST_A} answered 429: connections 4 → 2",
        f"{HOST_A} answered 429: connections 2 → 1",
        f"{HOST_A} quiet for 0.4 s: connections 1 → 2",
        f"{HOST_A} quiet for 0.4 s: connections 2 → 4",
        f"{HOST_A} quiet for 0.4 s: connections 4 → 8 (back-off over)",
    ], log_a
    assert a_at_one and max(a_at_one) <= 1, a_at_one  # counted at the server while A was at 1
    assert b_during and set(b_during) == {8}, b_during  # B kept all 8 the whole time
    assert not [line for line in log_b if "answered" in line or "quiet" in line], log_b
    assert a.stats["/a.bin"].status_counts[429] >= 3


async def test_a_step_down_takes_connections_back_from_running_range_streams(tmp_path: Path) -> None:
    body = random_bytes(24 * MB, seed=3)
    config = engine_config(tmp_path, retries=10, connections=8)
    config.policy.quiet_seconds = 0.5
    with FileServer(HOST_A) as a:
        a.add("/a.bin", body)
        a.faults.throttle("/a.bin", 0.5 * MB)
        async with Engine(tmp_path / "db.sqlite", config) as engine:
            (task,) = await engine.create([TaskSpec(url=a.url("/a.bin"))])
            await until(lambda: a.stats.in_flight == 8, what="8 connections")
            a.faults.fail_status(None, status=429, times=1)
            assert a.drop_connections(limit=1) == 1  # its retry gets the 429; 7 ranges keep streaming
            await until(lambda: engine.hosts.allowance(HOST_A) == 4, what="the step down")
            await until(lambda: a.stats.in_flight <= 4, timeout=5, what="3 running streams given back")
            a.reset_stats()
            at_four: list[int] = []

            def over() -> bool:
                if engine.hosts.allowance(HOST_A) == 4:
                    at_four.append(a.stats.in_flight)
                return engine.hosts.allowance(HOST_A) is None

            await until(over, timeout=10, what="the back-off over")
            await until(lambda: a.stats.in_flight == 8, timeout=10, what="8 connections again")
            a.faults.throttle("/a.bin", None)
            (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 30)
            lines = await log_of(engine, task.id)
    assert identical(done, body)
    assert at_four and max(at_four) <= 4, at_four
    assert [line for line in lines if line.startswith(HOST_A)] == [
        f"{HOST_A} answered 429: connections 8 → 4",
        f"{HOST_A} quiet for 0.5 s: connections 4 → 8 (back-off over)",
    ], lines


async def test_hls_segments_back_off_from_a_503_burst_and_the_stream_completes(tmp_path: Path) -> None:
    segments = [random_bytes(48_000, seed=100 + i) for i in range(24)]
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n" + "".join(
        f"#EXTINF:1.0,\nseg_{i:03d}.ts\n" for i in range(len(segments))) + "#EXT-X-ENDLIST\n"
    config = engine_config(tmp_path, retries=40, segment_threads=8)
    config.policy.quiet_seconds = 0.3
    with FileServer(HOST_A) as a:
        url = a.add("/v/index.m3u8", playlist.encode(), content_type="application/vnd.apple.mpegurl")
        for i, body in enumerate(segments):
            a.add(f"/v/seg_{i:03d}.ts", body, content_type="video/mp2t")
            a.faults.throttle(f"/v/seg_{i:03d}.ts", 192_000)  # a quarter of a second per segment
        async with Engine(tmp_path / "db.sqlite", config) as engine:
            (task,) = await engine.create([TaskSpec(url=url, name="all.ts")])
            await until(lambda: a.stats.in_flight == 8, what="8 segments in flight")
            a.faults.fail_status(None, status=503, times=12)  # no Retry-After: the backoff's own delays
            (done,) = await asyncio.wait_for(engine.wait_finished([task.id]), 40)
            lines = await log_of(engine, task.id)
    assert done.status is TaskStatus.SUCCESS, done.error
    assert Path(done.file or "").read_bytes() == b"".join(segments)
    steps = [line for line in lines if line.startswith(HOST_A)]
    assert steps[0] == f"{HOST_A} answered 503: connections 8 → 4", steps
    assert steps[-1].endswith("→ 8 (back-off over)"), steps
    assert a.stats.total().status_counts[503] == 12
