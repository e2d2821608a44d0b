"""The database goes away mid-run: a real PostgreSQL restarted or stopped under two nodes downloading from a
real throttled file server. No task is lost: every task ends successful with the right bytes, and no lease
is left behind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.models import TaskSpec, TaskStatus
from tests.support.cluster import node, node_config, until
from tests.support.fileserver import FileServer, random_bytes
from tests.support.postgres import PostgresCluster

pytestmark = [pytest.mark.timeout(120), pytest.mark.serial]  # alone: 1.5 s leases across a database outage


def _add(origin: FileServer, count: int, size: int, rate: int) -> dict[str, bytes]:
    bodies = {}
    for i in range(count):
        path = f"/o{i}.bin"
        bodies[path] = random_bytes(size, seed=40 + i)
        origin.add(path, bodies[path])
        origin.faults.throttle(path, rate)
    return bodies


async def test_a_database_restart_mid_run_loses_no_task(tmp_path: Path, postgres: PostgresCluster, pg_url: str,
                                                        origin: FileServer) -> None:
    bodies = _add(origin, 4, 3 << 20, 1 << 20)
    configs = [node_config(tmp_path, pg_url, name) for name in ("a", "b")]
    for config in configs:
        config.cluster.lease_timeout = 15.0  # longer than the restart: the leases survive it
    async with node(tmp_path, pg_url, "a", configs[0]) as a, node(tmp_path, pg_url, "b", configs[1]) as b:
        created = await a.create([TaskSpec(url=origin.url(p)) for p in bodies])
        await until(lambda: len(a.scheduler.runs) + len(b.scheduler.runs) == 4, what="all four running")
        await asyncio.to_thread(postgres.restart)

        async def done() -> bool:
            tasks = [await a.get(t.id) for t in created]
            assert not [t for t in tasks if t.status is TaskStatus.FAILED], tasks
            return all(t.status is TaskStatus.SUCCESS for t in tasks)

        await until(done, timeout=60, what="every task done after the restart")
        for task in created:
            stored = await b.store.get(task.id)
            assert stored is not None and stored.status is TaskStatus.SUCCESS and stored.node is None
            assert Path(stored.file or "").read_bytes() == bodies["/" + task.url.rsplit("/", 1)[1]]


async def test_outcomes_reached_while_the_database_is_down_are_saved_when_it_is_back(
        tmp_path: Path, postgres: PostgresCluster, pg_url: str, origin: FileServer) -> None:
    quick = _add(origin, 2, 200_000, 100_000)  # about 2 s each
    config = node_config(tmp_path, pg_url, "a")
    config.cluster.lease_timeout = 30.0
    async with node(tmp_path, pg_url, "a", config) as a:
        created = await a.create([TaskSpec(url=origin.url(p)) for p in quick])
        async def both_receiving() -> bool:  # past their claim and their file name: nothing left to store
            return all([(await a.get(t.id)).downloaded > 0 for t in created])

        await until(both_receiving, what="both receiving")
        await asyncio.to_thread(postgres.stop)
        try:
            # the downloads finish meanwhile; their outcomes cannot be stored yet
            await until(lambda: len(a.unsaved) == 2, timeout=30, what="both finished with the database away")
            assert [(await a.get(t.id)).status for t in created] == [TaskStatus.SUCCESS] * 2
        finally:
            await asyncio.to_thread(postgres.start)
        await until(lambda: len(a.unsaved) == 0, timeout=30, what="the outcomes saved")
        for task in created:
            stored = await a.store.get(task.id)
            assert stored is not None and stored.status is TaskStatus.SUCCESS and stored.node is None
            logs = [line.text for line in await a.logs(task.id)]
            assert sum(text.startswith("done: ") for text in logs) == 1


async def test_a_database_away_longer_than_the_lease_hands_the_tasks_back_and_they_finish(
        tmp_path: Path, postgres: PostgresCluster, pg_url: str, origin: FileServer) -> None:
    bodies = _add(origin, 2, 3 << 20, 512 * 1024)  # about 6 s each
    config = node_config(tmp_path, pg_url, "a")
    config.cluster.lease_timeout = 2.0
    async with node(tmp_path, pg_url, "a", config) as a:
        created = await a.create([TaskSpec(url=origin.url(p)) for p in bodies])
        await until(lambda: len(a.scheduler.runs) == 2, what="both running")
        await asyncio.to_thread(postgres.stop)
        try:
            # no heartbeat for a whole lease: another node may hold them by now, so this one lets go
            await until(lambda: not a.scheduler.runs, timeout=20, what="the node to give up its runs")
        finally:
            await asyncio.to_thread(postgres.start)

        async def done() -> bool:
            tasks = [await a.get(t.id) for t in created]
            assert not [t for t in tasks if t.status is TaskStatus.FAILED], tasks
            return all(t.status is TaskStatus.SUCCESS for t in tasks)

        await until(done, timeout=60, what="both reaped, claimed again and finished")
        for task in created:
            stored = await a.store.get(task.id)
            assert stored is not None and stored.node is None
            assert Path(stored.file or "").read_bytes() == bodies["/" + task.url.rsplit("/", 1)[1]]
