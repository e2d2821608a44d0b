"""Two engines (nodes "a" and "b") in one process on one real PostgreSQL database, downloading from a real
throttled file server: the claim goes to one node, commands and events cross nodes, a lost lease is fenced.

The fleet test (tests/cluster/test_fleet.py) does the same with node processes, SIGKILL and S3.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import HostLimitConfig
from core.engine import Engine
from core.events import EventType, TaskProgress
from core.models import TaskOptions, TaskSpec, TaskStatus
from tests.support.cluster import LEASE, node, node_config, until
from tests.support.fileserver import FileServer, random_bytes

pytestmark = [pytest.mark.timeout(90), pytest.mark.serial]  # alone: stops and hand-overs within 1-2 s

async def test_each_task_is_claimed_by_one_node_and_both_work(tmp_path: Path, pg_url: str,
                                                              origin: FileServer) -> None:
    bodies = {f"/f{i}.bin": random_bytes(300_000 + i * 1000, seed=i) for i in range(12)}
    for path, body in bodies.items():
        origin.add(path, body)
    async with node(tmp_path, pg_url, "a") as a, node(tmp_path, pg_url, "b") as b:
        created = await a.create([TaskSpec(url=origin.url(p)) for p in bodies])
        await until(lambda: _all_done(a, [t.id for t in created]), what="every task done")
        for task in created:
            done = await b.get(task.id)
            assert done.status is TaskStatus.SUCCESS
            assert done.node is None  # the lease ended with the run
            assert Path(done.file or "").read_bytes() == bodies["/" + Path(task.url).name]
        logs = {t.id: [line.text for line in await a.logs(t.id)] for t in created}
        starts = {tid: sum(text.startswith("start ") for text in lines) for tid, lines in logs.items()}
        assert set(starts.values()) == {1}, starts  # claimed once each
        by_node = {n.name: n for n in await a.store.nodes()}
        assert {"a", "b"} <= set(by_node)
    assert sum(origin.stats[p].requests for p in bodies) >= len(bodies)


async def _all_done(engine: Engine, ids: list[int]) -> bool:
    tasks = [await engine.get(i) for i in ids]
    return all(t.status is TaskStatus.SUCCESS for t in tasks)


async def _running_on(engine: Engine, task_id: int) -> bool:
    """True once this engine runs the task and bytes have arrived."""
    task = await engine.get(task_id)
    return engine.scheduler.running(task_id) is not None and task.downloaded > 0


async def _running_on_any(engines: tuple[Engine, ...], task_id: int) -> bool:
    return any([await _running_on(engine, task_id) for engine in engines])


async def test_stop_and_delete_sent_to_the_other_node_reach_its_run_within_a_second(
        tmp_path: Path, pg_url: str, origin: FileServer) -> None:
    body = random_bytes(8 << 20, seed=3)
    origin.add("/slow.bin", body)
    origin.faults.throttle("/slow.bin", 256 * 1024)
    async with node(tmp_path, pg_url, "a") as a:
        (task,) = await a.create([TaskSpec(url=origin.url("/slow.bin"))])
        await until(lambda: _running_on(a, task.id), what="a runs it")
        async with node(tmp_path, pg_url, "b") as b:
            seen = await b.get(task.id)
            assert seen.node == "a" and seen.status is TaskStatus.DOWNLOADING
            sub = b.subscribe()
            started = time.monotonic()
            stopped = await b.stop(task.id)
            elapsed = time.monotonic() - started
            assert stopped.status is TaskStatus.STOPPED
            assert elapsed < 1.0, f"the stop took {elapsed:.2f} s"
            assert a.scheduler.running(task.id) is None  # a's run is gone, not just the row
            types = []

            def relayed() -> bool:  # a's row is written before its event is relayed: the event may come just after
                while (event := sub.get_nowait()) is not None:
                    types.append((event.type, event.origin))
                return (EventType.STOP, "a") in types

            await until(relayed, timeout=5, what="a's own stop event, relayed to b's subscribers")
            sub.close()

            await b.start(task.id)
            await until(lambda: _running_on_any((a, b), task.id), what="running again")
            runner = a if a.scheduler.running(task.id) else b
            other = b if runner is a else a
            started = time.monotonic()
            await other.delete(task.id, files=True)
            assert time.monotonic() - started < 1.0
            assert runner.scheduler.running(task.id) is None
            assert await a.store.get(task.id) is None


async def test_progress_of_a_task_on_another_node_is_live_on_this_one(tmp_path: Path, pg_url: str,
                                                                     origin: FileServer) -> None:
    origin.add("/slow.bin", random_bytes(6 << 20, seed=4))
    origin.faults.throttle("/slow.bin", 512 * 1024)  # per connection: one connection, 12 s of transfer
    async with node(tmp_path, pg_url, "a") as a:
        (task,) = await a.create([TaskSpec(url=origin.url("/slow.bin"), options=TaskOptions(connections=1))])
        await until(lambda: _running_on(a, task.id), what="a runs it")
        async with node(tmp_path, pg_url, "b") as b:
            sub = b.subscribe()
            lags = []
            for _ in range(8):
                event = await sub.get(timeout=5)
                while event is not None and not isinstance(event.payload, TaskProgress):
                    event = await sub.get(timeout=5)
                assert event is not None, "no progress from node a reached node b"
                run = a.scheduler.running(task.id)
                assert run is not None
                live = await b.get(task.id)
                assert live.node == "a"
                # what b shows now, against what a has now: bytes a received since b's last tick
                lags.append((run.task.downloaded - live.downloaded) / (512 * 1024))
            sub.close()
            assert max(lags) <= 1.0, f"b lags a by up to {max(lags):.2f} s of transfer"


async def test_an_idle_node_wakes_on_notify_not_by_polling(tmp_path: Path, pg_url: str,
                                                           origin: FileServer) -> None:
    origin.add("/x.bin", random_bytes(50_000, seed=5))
    config = node_config(tmp_path, pg_url, "a", max_concurrent=1)
    async with node(tmp_path, pg_url, "b") as b, node(tmp_path, pg_url, "a", config) as a:
        # a (one slot) is busy with a slow task, so the new one is b's to take
        origin.add("/slow.bin", random_bytes(4 << 20, seed=6))
        origin.faults.throttle("/slow.bin", 256 * 1024)
        (slow,) = await a.create([TaskSpec(url=origin.url("/slow.bin"))])
        await until(lambda: _running_on_any((a, b), slow.id), what="slow task runs")
        started = time.monotonic()
        (quick,) = await a.create([TaskSpec(url=origin.url("/x.bin"))])
        await until(lambda: _all_done(b, [quick.id]), timeout=5, what="the quick task done")
        assert time.monotonic() - started < 2.0
        await a.stop(slow.id)


async def test_a_node_that_loses_its_lease_stops_writing(tmp_path: Path, pg_url: str, origin: FileServer) -> None:
    body = random_bytes(6 << 20, seed=7)
    origin.add("/slow.bin", body)
    origin.faults.throttle("/slow.bin", 1 << 20)
    async with node(tmp_path, pg_url, "a") as a:
        (task,) = await a.create([TaskSpec(url=origin.url("/slow.bin"))])
        await until(lambda: _running_on(a, task.id), what="a runs it")
        assert a.cluster is not None
        await a.cluster.stop()  # a hangs as far as the cluster can tell: no heartbeat, no reaper
        lease = a.store.lease(task.id)
        assert lease is not None
        async with node(tmp_path, pg_url, "b") as b:
            await until(lambda: a.scheduler.running(task.id) is None, timeout=LEASE * 6, what="a stops its run")
            await until(lambda: _all_done(b, [task.id]), timeout=30, what="b finishes it")
            done = await b.get(task.id)
            assert Path(done.file or "").read_bytes() == body
            stored = await b.store.get(task.id)
            assert stored is not None and stored.status is TaskStatus.SUCCESS  # a wrote nothing over it


async def test_a_host_cap_holds_across_nodes(tmp_path: Path, pg_url: str, origin: FileServer) -> None:
    for i in range(6):
        origin.add(f"/c{i}.bin", random_bytes(3 << 20, seed=10 + i))
        origin.faults.throttle(f"/c{i}.bin", 2 << 20)
    configs = []
    for name in ("a", "b"):
        config = node_config(tmp_path, pg_url, name, connections=4)
        config.hosts.limits = {"127.0.0.1": HostLimitConfig(connections=3, tasks=2)}
        configs.append(config)
    async with node(tmp_path, pg_url, "a", configs[0]) as a, node(tmp_path, pg_url, "b", configs[1]) as b:
        created = await a.create([TaskSpec(url=origin.url(f"/c{i}.bin")) for i in range(6)])
        peak_tasks = 0

        async def done_and_count() -> bool:
            nonlocal peak_tasks
            tasks = [await a.get(t.id) for t in created]
            peak_tasks = max(peak_tasks, sum(t.status is TaskStatus.DOWNLOADING for t in tasks))
            return all(t.status is TaskStatus.SUCCESS for t in tasks)

        await until(done_and_count, timeout=60, what="every capped task done")
        assert peak_tasks <= 2
        assert origin.stats.max_in_flight <= 3, origin.stats.max_in_flight
        assert {len(b.scheduler.runs), len(a.scheduler.runs)} == {0}


async def test_a_node_that_stops_hands_its_tasks_over_at_once(tmp_path: Path, pg_url: str,
                                                              origin: FileServer) -> None:
    body = random_bytes(4 << 20, seed=21)
    origin.add("/slow.bin", body)
    origin.faults.throttle("/slow.bin", 1 << 20)
    config = node_config(tmp_path, pg_url, "b")
    config.cluster.lease_timeout = 60.0  # far longer than the test: only the clean hand-over can explain it
    async with node(tmp_path, pg_url, "b", config) as b:
        async with node(tmp_path, pg_url, "a") as a:
            b.scheduler.max_concurrent = 0  # a takes it first
            async with b.scheduler.launching:  # (a claim b's start-up began has ended)
                pass
            (task,) = await a.create([TaskSpec(url=origin.url("/slow.bin"))])
            await until(lambda: _running_on(a, task.id), what="a runs it")
            b.scheduler.set_max_concurrent(2)
        stopped_at = time.monotonic()  # a closed: its run went back to the queue and b heard of it
        await until(lambda: _running_on(b, task.id), timeout=10, what="b takes it over")
        assert time.monotonic() - stopped_at < 5
        await until(lambda: _all_done(b, [task.id]), timeout=30, what="b finishes it")
        done = await b.get(task.id)
        assert Path(done.file or "").read_bytes() == body
        texts = [line.text for line in await b.logs(task.id)]
        assert any(text.startswith("resuming: ") for text in texts), texts  # from a's .part, not byte 0
