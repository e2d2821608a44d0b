"""The TaskStore contract (core/store/base.py), run against both stores: SQLite and a real PostgreSQL.

Every test gets `open_node(name)`, which opens another store on the same database as that node
(several PgTaskStore pools on one PostgreSQL database; several TaskRepo connections on one SQLite
file), and `store`, node "a". The PostgreSQL cases run on the session's throwaway cluster
(tests/support/postgres.py), each in a fresh database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest

from core.errors import LeaseLost, StoreUnavailable
from core.models import Priority, Task, TaskKind, TaskOptions, TaskStatus
from core.queue import QueueMove
from core.store import TaskFilter, TaskPatch, TaskStore, open_store
from core.store.base import Claim, HostCaps, HostLimit
from core.store.db import migrate, open_database
from core.store.schema import MIGRATIONS, sqlite_statements
from tests.support.postgres import PostgresCluster

OpenNode = Callable[[str], Awaitable[TaskStore]]
NO_CAPS = HostCaps()


def new_task(url: str = "http://a.test/f.bin", *, status: TaskStatus = TaskStatus.WAITING, name: str = "f.bin",
             folder: str = "", kind: TaskKind = TaskKind.HTTP) -> Task:
    return Task(id=0, kind=kind, url=url, name=name, folder=folder, headers=(("X-A", "1"),), status=status,
                options=TaskOptions())


async def add(store: TaskStore, *urls: str) -> list[int]:
    return [t.id for t in await store.insert_many([new_task(u, name=u.rsplit("/", 1)[-1]) for u in urls])]


def want(n: int) -> Callable[[Task], int]:
    return lambda _task: n


async def claim(store: TaskStore, limit: int = 100, *, lease: float = 30.0, caps: HostCaps = NO_CAPS,
                wants: int = 1, **kw: frozenset[int] | None) -> list[Claim]:
    return await store.claim(limit, lease_seconds=lease, caps=caps, want_connections=want(wants), **kw)  # type: ignore[arg-type]


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def open_node(store_url: str, tmp_path: Path) -> AsyncIterator[OpenNode]:
    opened: list[TaskStore] = []

    async def open_(node: str) -> TaskStore:
        store = await open_store(store_url, database=tmp_path / "db.sqlite", node=node)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_node: OpenNode) -> TaskStore:
    return await open_node("a")


# ---- tasks, pages, logs --------------------------------------------------------
async def test_insert_get_update_and_ids_ascending(store: TaskStore) -> None:
    first = await add(store, "http://a.test/1", "http://a.test/2")
    second = await add(store, "http://a.test/3")
    assert first[1] == first[0] + 1 and second[0] > first[1]
    task = await store.get(first[0])
    assert task is not None and task.url == "http://a.test/1" and task.headers == (("X-A", "1"),)
    assert task.status is TaskStatus.WAITING and task.node is None and task.options == TaskOptions()
    await store.update(first[0], TaskPatch(name="renamed", downloaded=5, total=None, file="/x/y", is_live=True))
    task = await store.get(first[0])
    assert task is not None and (task.name, task.downloaded, task.total, task.file, task.is_live) == (
        "renamed", 5, None, "/x/y", True)
    assert task.updated_at >= task.created_at
    await store.update(999_999, TaskPatch(name="nobody"))  # a missing task is not an error
    assert await store.get(999_999) is None
    assert await store.integrity_ok()


async def test_page_filters_counts_folders_and_files(store: TaskStore) -> None:
    tasks = [new_task(f"http://a.test/{i}", name=f"File{i}", folder="x" if i % 2 else "y",
                      kind=TaskKind.HLS if i == 3 else TaskKind.HTTP) for i in range(6)]
    ids = [t.id for t in await store.insert_many(tasks)]
    await store.update(ids[0], TaskPatch(status=TaskStatus.SUCCESS, file="/d/0"))
    await store.update(ids[1], TaskPatch(status=TaskStatus.FAILED, file="/d/1"))
    page, total = await store.page(0, 2, TaskFilter())
    assert total == 6 and [t.id for t in page] == ids[::-1][:2]
    page, total = await store.page(1, 2, TaskFilter(newest_first=False))
    assert total == 6 and [t.id for t in page] == ids[1:3]
    _, total = await store.page(0, 10, TaskFilter(statuses=frozenset({TaskStatus.WAITING})))
    assert total == 4
    page, _ = await store.page(0, 10, TaskFilter(text="file3"))
    assert [t.id for t in page] == [ids[3]]
    page, _ = await store.page(0, 10, TaskFilter(kinds=frozenset({TaskKind.HLS})))
    assert [t.id for t in page] == [ids[3]]
    _, total = await store.page(0, 10, TaskFilter(folders=frozenset({"x"})))
    assert total == 3
    page, total = await store.page(0, 10, TaskFilter(ids=frozenset(ids[:2]), statuses=frozenset({TaskStatus.FAILED})))
    assert total == 1 and page[0].id == ids[1]
    counts = await store.count_by_status()
    assert counts[TaskStatus.WAITING] == 4 and counts[TaskStatus.SUCCESS] == 1 and counts[TaskStatus.STOPPED] == 0
    assert await store.folders() == ["x", "y"]
    assert await store.files_in_use() == {"/d/1"}
    assert await store.waiting_ids() == ids[2:] and await store.waiting_ids(limit=2) == ids[2:4]


async def test_logs_and_delete(store: TaskStore) -> None:
    (keep, gone) = await add(store, "http://a.test/k", "http://a.test/g")
    await store.append_logs([(keep, 1.0, "one"), (gone, 1.5, "other"), (keep, 2.0, "two"), (keep, 3.0, "three")])
    assert [line.text for line in await store.logs(keep)] == ["one", "two", "three"]
    assert [line.text for line in await store.logs(keep, limit=2)] == ["two", "three"]
    await store.put_state(gone, "s3-upload", b"\x00state")
    await store.delete(gone)
    assert await store.get(gone) is None and await store.logs(gone) == []
    assert await store.get_state(gone, "s3-upload") is None
    assert await store.get(keep) is not None


async def test_task_state_blobs(store: TaskStore) -> None:
    (task_id,) = await add(store, "http://a.test/s")
    assert await store.get_state(task_id, "k") is None
    await store.put_state(task_id, "k", b"\x00\xffone")
    await store.put_state(task_id, "k", b"two")
    await store.put_state(task_id, "other", b"3")
    assert await store.get_state(task_id, "k") == b"two" and await store.get_state(task_id, "other") == b"3"
    await store.put_state(task_id, "k", None)
    assert await store.get_state(task_id, "k") is None and await store.get_state(task_id, "other") == b"3"


# ---- claims ----------------------------------------------------------------------
async def test_claim_takes_waiting_tasks_in_queue_order(store: TaskStore) -> None:
    ids = await add(store, *(f"http://a.test/{i}" for i in range(6)))
    await store.update(ids[1], TaskPatch(status=TaskStatus.STOPPED))
    await store.update(ids[2], TaskPatch(error="old failure"))
    claims = await claim(store, 3, wants=4)
    assert [c.task.id for c in claims] == [ids[0], ids[2], ids[3]]
    for c in claims:
        assert c.task.status is TaskStatus.DOWNLOADING and c.task.error is None and c.task.node == "a"
        assert c.lease.node == "a" and c.lease.gen >= 1 and c.connections == 4
        assert store.lease(c.task.id) == c.lease
        stored = await store.get(c.task.id)
        assert stored is not None and stored.status is TaskStatus.DOWNLOADING and stored.node == "a"
        assert stored.error is None
    assert [c.task.id for c in await claim(store, 10, skip=frozenset({ids[4]}))] == [ids[5]]
    assert [c.task.id for c in await claim(store, 10, only=frozenset({ids[1], ids[4]}))] == [ids[4]]
    assert await claim(store, 10) == []
    assert await claim(store, 10, only=frozenset()) == []


async def test_every_task_is_claimed_exactly_once_by_concurrent_nodes(open_node: OpenNode) -> None:
    nodes = [await open_node(f"n{i}") for i in range(4)]
    ids = await add(nodes[0], *(f"http://h{i % 3}.test/{i}" for i in range(120)))
    taken: dict[str, list[int]] = {}

    async def worker(store: TaskStore) -> None:
        mine = taken.setdefault(store.node, [])
        while True:
            claims = await claim(store, 4)
            if not claims:
                if not await store.waiting_ids(limit=1):
                    return
                continue
            mine.extend(c.task.id for c in claims)
            assert all(c.task.node == store.node for c in claims)

    await asyncio.wait_for(asyncio.gather(*(worker(s) for s in nodes)), 60)
    everything = [task_id for mine in taken.values() for task_id in mine]
    assert sorted(everything) == ids, "a task was claimed twice or not at all"
    page, _ = await nodes[0].page(0, 200, TaskFilter())
    owner = {task_id: node for node, mine in taken.items() for task_id in mine}
    assert all(t.status is TaskStatus.DOWNLOADING and t.node == owner[t.id] for t in page)


async def test_host_caps_on_connections_and_tasks_across_nodes(open_node: OpenNode) -> None:
    a, b = await open_node("a"), await open_node("b")
    caps = HostCaps(hosts={"capped.test": HostLimit(connections=3)}, default=HostLimit(tasks=1))
    ids = await add(a, "http://CAPPED.test/1", "http://capped.test/2", "http://capped.test/3",
                    "http://other.test/1", "http://other.test/2", "http://third.test/1")
    first = await claim(a, 10, caps=caps, wants=2)
    assert [(c.task.id, c.connections) for c in first] == [(ids[0], 2), (ids[1], 1), (ids[3], 2), (ids[5], 2)]
    # Node b sees a's use: every capped host is full.
    assert await claim(b, 10, caps=caps, wants=2) == []
    # A task leaving DOWNLOADING frees its host's connections and task slot.
    await a.update(ids[0], TaskPatch(status=TaskStatus.SUCCESS))
    await a.update(ids[3], TaskPatch(status=TaskStatus.FAILED, error="x"))
    second = await claim(b, 10, caps=caps, wants=5)
    assert [(c.task.id, c.connections) for c in second] == [(ids[2], 2), (ids[4], 5)]
    stored = await b.get(ids[0])
    assert stored is not None and stored.node is None


async def test_a_capped_host_does_not_block_the_hosts_behind_it(store: TaskStore) -> None:
    caps = HostCaps(hosts={"slow.test": HostLimit(tasks=1)})
    ids = await add(store, *(f"http://slow.test/{i}" for i in range(300)), "http://fast.test/1")
    claims = await claim(store, 5, caps=caps)
    assert [c.task.id for c in claims] == [ids[0], ids[-1]]


async def test_a_new_url_moves_the_task_to_its_new_host(store: TaskStore) -> None:
    caps = HostCaps(hosts={"a.test": HostLimit(tasks=1)})
    (running, moved) = await add(store, "http://a.test/1", "http://b.test/2")
    assert len(await claim(store, 1, caps=caps)) == 1
    await store.update(moved, TaskPatch(url="http://a.test/2"))
    assert await claim(store, 10, caps=caps) == []
    await store.update(running, TaskPatch(status=TaskStatus.STOPPED))
    assert [c.task.id for c in await claim(store, 10, caps=caps)] == [moved]


# ---- leases and fencing ------------------------------------------------------------
async def test_a_lease_taken_over_fences_the_old_node(open_node: OpenNode) -> None:
    a, b = await open_node("a"), await open_node("b")
    (lost_id, kept_id) = await add(a, "http://a.test/1", "http://a.test/2")
    (lost,) = await claim(a, 1, lease=0.3)
    await a.update(lost_id, TaskPatch(downloaded=10))  # while the lease holds, a's writes land
    await until(lambda: _reaped(b, lost_id), "the expired lease to be reaped")
    (taken,) = await claim(b, 1, only=frozenset({lost_id}))
    assert taken.lease.gen > lost.lease.gen and taken.task.node == "b"
    await b.update(lost_id, TaskPatch(downloaded=3))
    with pytest.raises(LeaseLost) as raised:
        await a.update(lost_id, TaskPatch(downloaded=99, status=TaskStatus.SUCCESS))
    assert raised.value.task_ids == {lost_id}
    with pytest.raises(LeaseLost):
        await a.put_state(lost_id, "k", b"stale")
    assert await a.get_state(lost_id, "k") is None
    (kept,) = await claim(a, 1, only=frozenset({kept_id}))
    with pytest.raises(LeaseLost) as raised:
        await a.update_many([(lost_id, TaskPatch(downloaded=50)), (kept_id, TaskPatch(downloaded=7))])
    assert raised.value.task_ids == {lost_id}
    stored = await b.get(lost_id)
    assert stored is not None and stored.downloaded == 3 and stored.status is TaskStatus.DOWNLOADING
    assert stored.node == "b"
    kept_row = await a.get(kept_id)
    assert kept_row is not None and kept_row.downloaded == 7  # the rest of the batch was written
    assert await a.renew(30) == {lost_id} and a.lease(lost_id) is None and a.lease(kept_id) == kept.lease
    await b.put_state(lost_id, "k", b"fresh")
    assert await a.get_state(lost_id, "k") == b"fresh"


async def _reaped(store: TaskStore, task_id: int) -> bool:
    return task_id in await store.reap()


async def test_renew_keeps_leases_and_reap_takes_only_expired_ones(open_node: OpenNode) -> None:
    a, b = await open_node("a"), await open_node("b")
    (renewed_id, expiring_id) = await add(a, "http://a.test/1", "http://a.test/2")
    await claim(a, 1, lease=0.4)
    await claim(b, 1, lease=0.4)
    started = time.monotonic()
    assert await a.renew(60) == set()
    reaped: set[int] = set()

    async def expiring_reaped() -> bool:
        reaped.update(await a.reap())
        return expiring_id in reaped

    await until(expiring_reaped, "b's unrenewed lease to be reaped")
    while time.monotonic() - started < 0.6:  # past the first expiry too
        reaped.update(await b.reap())
        await asyncio.sleep(0.05)
    assert renewed_id not in reaped
    assert (await a.get(expiring_id)).status is TaskStatus.WAITING  # type: ignore[union-attr]
    assert (await a.get(renewed_id)).status is TaskStatus.DOWNLOADING  # type: ignore[union-attr]
    assert await b.renew(60) == {expiring_id} and b.lease(expiring_id) is None
    nodes = {n.name: n for n in await a.nodes()}
    assert set(nodes) == {"a", "b"} and nodes["a"].leases == 1 and nodes["b"].leases == 0
    assert nodes["a"].heartbeat_at >= nodes["a"].started_at


async def test_leaving_downloading_ends_the_lease(store: TaskStore) -> None:
    (task_id,) = await add(store, "http://a.test/1")
    (c,) = await claim(store, 1, wants=3)
    await store.update(task_id, TaskPatch(status=TaskStatus.SUCCESS, downloaded=5))
    assert store.lease(task_id) is None
    stored = await store.get(task_id)
    assert stored is not None and stored.node is None and stored.status is TaskStatus.SUCCESS
    await store.update(task_id, TaskPatch(name="later"))  # no lease: not fenced any more
    assert await store.renew(30) == set()
    await store.update(task_id, TaskPatch(status=TaskStatus.WAITING))
    (again,) = await claim(store, 1)
    assert again.lease.gen == c.lease.gen + 1


async def test_release_and_delete_forget_the_lease(store: TaskStore) -> None:
    (released, deleted) = await add(store, "http://a.test/1", "http://a.test/2")
    await claim(store, 2)
    await store.release(released)
    assert store.lease(released) is None
    stored = await store.get(released)
    assert stored is not None and stored.status is TaskStatus.DOWNLOADING and stored.node == "a"  # nothing written
    await store.delete(deleted)
    assert store.lease(deleted) is None
    assert await store.renew(30) == set()


async def test_recover_requeues_this_nodes_tasks(open_node: OpenNode, store_url: str) -> None:
    a, b = await open_node("a"), await open_node("b")
    (mine, theirs, orphan) = await add(a, "http://a.test/1", "http://a.test/2", "http://a.test/3")
    await claim(a, 1)
    await claim(b, 1)
    await a.update(orphan, TaskPatch(status=TaskStatus.DOWNLOADING))  # DOWNLOADING without a node
    restarted = await open_node("a")
    if store_url:  # shared: b is alive, its task stays
        assert await restarted.recover() == 2
        assert (await restarted.get(theirs)).status is TaskStatus.DOWNLOADING  # type: ignore[union-attr]
    else:  # nobody else uses a SQLite store: everything downloading is requeued
        assert await restarted.recover() == 3
        assert (await restarted.get(theirs)).status is TaskStatus.WAITING  # type: ignore[union-attr]
    for task_id in (mine, orphan):
        task = await restarted.get(task_id)
        assert task is not None and task.status is TaskStatus.WAITING and task.node is None
    assert "a" in {n.name for n in await restarted.nodes()}


# ---- migrations ---------------------------------------------------------------------
SHIPPED_V1 = """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        name TEXT NOT NULL,
        folder TEXT NOT NULL DEFAULT '',
        headers TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL,
        is_live INTEGER NOT NULL DEFAULT 0,
        file TEXT,
        downloaded INTEGER NOT NULL DEFAULT 0,
        total INTEGER,
        segments_done INTEGER NOT NULL DEFAULT 0,
        segments_total INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        options TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX tasks_status ON tasks(status, id);
    CREATE TABLE task_logs (
        id INTEGER PRIMARY KEY,
        task_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX task_logs_task ON task_logs(task_id, id);
"""  # the version 1 script fetchdeck shipped in core/store/db.py before the schema definition


def sqlite_shape(path: Path) -> dict[str, object]:
    """Every table's columns (name, type, not null, default, pk) and indexes (name, columns)."""
    conn = sqlite3.connect(path)
    try:
        shape: dict[str, object] = {}
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            indexes = {}
            for index in conn.execute(f"PRAGMA index_list({table})").fetchall():
                indexes[index[1]] = [r[2] for r in conn.execute(f"PRAGMA index_info({index[1]})")]
            shape[table] = (conn.execute(f"PRAGMA table_info({table})").fetchall(), indexes)
        return shape
    finally:
        conn.close()


async def test_sqlite_version_1_renders_the_shipped_schema(tmp_path: Path) -> None:
    shipped, rendered = tmp_path / "shipped.sqlite", tmp_path / "rendered.sqlite"
    conn = sqlite3.connect(shipped)
    conn.executescript(SHIPPED_V1)
    conn.close()
    conn = sqlite3.connect(rendered)
    for op in MIGRATIONS[0]:
        for statement in sqlite_statements(op):
            conn.execute(statement)
    conn.close()
    assert sqlite_shape(rendered) == sqlite_shape(shipped)


async def test_a_version_1_sqlite_database_upgrades_in_place(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite"
    conn = sqlite3.connect(old)
    conn.executescript(SHIPPED_V1)
    conn.execute(
        "INSERT INTO tasks (kind, url, name, status, created_at, updated_at) VALUES"
        " ('http', 'https://Files.Example.test:8443/a.bin', 'a.bin', 'downloading', 1, 1)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = await open_store("", database=old)
    try:
        assert await store.recover() == 1
        task = await store.get(1)
        assert task is not None and task.url == "https://Files.Example.test:8443/a.bin"
        caps = HostCaps(hosts={"files.example.test": HostLimit(tasks=1)})
        (claimed,) = await claim(store, 5, caps=caps)
        assert claimed.task.id == 1
        (new_id,) = await add(store, "https://files.example.test/b.bin")
        assert new_id == 2 and await claim(store, 5, caps=caps) == []  # the backfilled host counts
    finally:
        await store.close()
    fresh = tmp_path / "fresh.sqlite"
    await (await open_database(fresh)).close()
    assert sqlite_shape(old) == sqlite_shape(fresh)
    conn = sqlite3.connect(old)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


async def test_postgres_nodes_starting_together_migrate_once(postgres_url: str, tmp_path: Path) -> None:
    from core.store.pg import PgTaskStore

    stores = await asyncio.gather(*(open_store(postgres_url, database=tmp_path / "x", node=f"n{i}")
                                    for i in range(5)))
    try:
        assert all(isinstance(s, PgTaskStore) for s in stores)
        for s in stores:
            assert isinstance(s, PgTaskStore) and await s.schema_version() == len(MIGRATIONS)
            assert await s.integrity_ok()
        await add(stores[0], "http://a.test/1")
        assert (await stores[4].count_by_status())[TaskStatus.WAITING] == 1
    finally:
        for s in stores:
            await s.close()


# ---- queue control: priority, position, start_at (issue 14) ------------------------------
async def test_claim_order_is_priority_then_position_then_creation(store: TaskStore) -> None:
    a, b, c, d, e = await add(store, *(f"http://a.test/{i}" for i in range(5)))
    assert await store.waiting_ids() == [a, b, c, d, e]
    await store.update(d, TaskPatch(priority=Priority.HIGH))
    await store.update(a, TaskPatch(priority=Priority.LOW))
    assert await store.move(c, QueueMove.TOP)  # top of the normal ones, still after the high one
    assert await store.waiting_ids() == [d, c, b, e, a]
    assert not await store.move(c, QueueMove.TOP)  # already there: nothing written
    assert await store.move(c, QueueMove.DOWN) and await store.waiting_ids() == [d, b, c, e, a]
    assert await store.move(e, QueueMove.UP) and await store.waiting_ids() == [d, b, e, c, a]
    assert await store.move(b, QueueMove.BOTTOM) and await store.waiting_ids() == [d, e, c, b, a]
    assert not await store.move(b, QueueMove.DOWN) and not await store.move(d, QueueMove.UP)
    (f,) = await add(store, "http://a.test/f")  # a new task goes after every one of its class, the moved too
    assert await store.waiting_ids() == [d, e, c, b, f, a]
    stored = await store.get(d)
    assert stored is not None and stored.priority is Priority.HIGH
    assert [cl.task.id for cl in await claim(store, 3)] == [d, e, c]
    assert [cl.task.id for cl in await claim(store, 10, only=frozenset({a, f, b}))] == [b, f, a]
    assert not await store.move(999_999, QueueMove.TOP)


async def test_many_moves_between_the_same_neighbours_keep_the_order(store: TaskStore) -> None:
    ids = await add(store, *(f"http://a.test/{i}" for i in range(4)))
    order = list(ids)
    for i in range(60):  # more halvings than a float has between two neighbours (52): the class is spread out
        assert await store.move(order[2], QueueMove.UP)
        order[1], order[2] = order[2], order[1]
        if i % 4 == 3 or i > 48:
            assert await store.waiting_ids() == order


async def test_a_task_is_not_claimed_before_its_start_time(store: TaskStore) -> None:
    now = time.time()
    tasks = [new_task("http://a.test/later"), new_task("http://a.test/past"), new_task("http://a.test/now")]
    tasks[0].start_at, tasks[1].start_at = now + 3600, now - 5
    later, past, plain = [t.id for t in await store.insert_many(tasks)]
    stored = await store.get(later)
    assert stored is not None and stored.start_at == pytest.approx(now + 3600)
    assert await store.next_start(now) == pytest.approx(now + 3600)
    assert [cl.task.id for cl in await claim(store, 10)] == [past, plain]
    assert await claim(store, 10, only=frozenset({later})) == []
    await store.update(later, TaskPatch(start_at=None))
    assert await store.next_start(now) is None
    assert [cl.task.id for cl in await claim(store, 10)] == [later]


async def test_a_version_3_database_keeps_its_queue_order_after_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    conn = await open_database_at(path, 3)
    for i in range(3):
        await conn.execute(
            "INSERT INTO tasks (kind, url, name, status, created_at, updated_at, host) VALUES"
            " ('http', ?, 'f', 'waiting', 1, 1, 'a.test')", (f"http://a.test/{i}",))
    await conn.close()
    store = await open_store("", database=path)
    try:
        assert await store.waiting_ids() == [1, 2, 3]
        assert [t.position for t in (await store.page(0, 10, TaskFilter(newest_first=False)))[0]] == [1.0, 2.0, 3.0]
        (new_id,) = await add(store, "http://a.test/new")
        assert await store.move(new_id, QueueMove.TOP) and await store.waiting_ids() == [new_id, 1, 2, 3]
    finally:
        await store.close()


async def open_database_at(path: Path, version: int) -> aiosqlite.Connection:
    """A SQLite database migrated only up to `version`."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await migrate(conn, target=version)
    return conn


# ---- PostgreSQL outages and LISTEN/NOTIFY -------------------------------------------
async def test_postgres_outage_is_store_unavailable_and_the_pool_comes_back(
    postgres: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    store = await open_store(postgres_url, database=tmp_path / "x", node="a")
    try:
        (task_id,) = await add(store, "http://a.test/1")
        postgres.stop()
        try:
            with pytest.raises(StoreUnavailable):
                await store.get(task_id)
            with pytest.raises(StoreUnavailable):
                await store.update(task_id, TaskPatch(name="while down"))
            with pytest.raises(StoreUnavailable):
                await claim(store, 1)
        finally:
            postgres.start()
        await until(lambda: _answers(store), "the store to answer again")
        await store.update(task_id, TaskPatch(name="after"))
        task = await store.get(task_id)
        assert task is not None and task.name == "after"
    finally:
        await store.close()


async def _answers(store: TaskStore) -> bool:
    try:
        await store.count_by_status()
    except StoreUnavailable:
        return False
    return True


async def test_listen_notify_survives_a_database_restart(
    postgres: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    from core.store.pg import PgTaskStore

    listener = await PgTaskStore.open(postgres_url, "a")
    sender = await PgTaskStore.open(postgres_url, "b")
    got: list[str] = []
    reconnected = asyncio.Event()
    listener.on_reconnect = reconnected.set
    try:
        await listener.listen("fetchdeck_test", got.append)
        await sender.notify("fetchdeck_test", "one")
        await until(lambda: _has(got, "one"), "the first notification")
        with pytest.raises(ValueError):
            await sender.notify("fetchdeck_test", "x" * 8000)
        postgres.restart()
        await asyncio.wait_for(reconnected.wait(), 30)
        await until(lambda: _sent(sender, "fetchdeck_test", "two"), "the sender's pool to reconnect")
        await until(lambda: _has(got, "two"), "a notification after the restart")
        await listener.unlisten("fetchdeck_test")
        await sender.notify("fetchdeck_test", "three")
        await sender.notify("other", "x")
        await listener.listen("other", got.append)
        await sender.notify("other", "four")
        await until(lambda: _has(got, "four"), "a notification on a second channel")
        assert "three" not in got
    finally:
        await listener.close()
        await sender.close()


async def _has(got: list[str], payload: str) -> bool:
    return payload in got


async def _sent(store: TaskStore, channel: str, payload: str) -> bool:
    from core.store.pg import PgTaskStore

    assert isinstance(store, PgTaskStore)
    try:
        await store.notify(channel, payload)
    except StoreUnavailable:
        return False
    return True


async def test_set_positions_writes_the_order_claims_follow(store: TaskStore) -> None:
    """`set_positions` (core/queue.py `placement`'s writes: aria2's changePosition) in one transaction."""
    first, second, third = await add(store, "http://a.test/1", "http://a.test/2", "http://a.test/3")
    await store.set_positions([(third, -5.0), (first, 7.5)])
    assert await store.waiting_ids() == [third, second, first]
    assert [(await store.get(i)).position for i in (third, first)] == [-5.0, 7.5]  # type: ignore[union-attr]
    assert [c.task.id for c in await claim(store, 2)] == [third, second]
