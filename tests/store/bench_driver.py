"""Which PostgreSQL driver the store uses: asyncpg against psycopg 3's async API, on the store's own queries.

Not collected by pytest (a measurement, run by hand). psycopg is not a fetchdeck dependency; install it
beside the project's venv without changing it, then run from the repository root:

    .venv/bin/pip install --target /tmp/psy "psycopg[binary]>=3.2" && rm -rf /tmp/psy/typing_extensions*
    PYTHONPATH=/tmp/psy:. .venv/bin/python tests/store/bench_driver.py

It starts a throwaway PostgreSQL (tests/support/postgres.py), stores 20,000 tasks, and times with each
driver (median of several runs): a 10k-row page of tasks (the API's list query, each row decoded to a Task by
core/store/rows.py, by column name: asyncpg Records, psycopg dict rows),
one-row reads by id, and claim-shaped transactions (SELECT … FOR UPDATE SKIP LOCKED LIMIT 4, then the
UPDATE … RETURNING that takes them) on one connection. Then the real `PgTaskStore.claim` across 3 nodes.

Two runs here (2 shared cores, PostgreSQL 15 on 127.0.0.1, fsync off), 2026-12-01:

        10k-row page: asyncpg   240.8 ms   psycopg   286.5 ms     |  asyncpg   258.8 ms   psycopg   238.4 ms
       reads by id/s: asyncpg      11630   psycopg       3386     |  asyncpg       5153   psycopg       2230
          claim tx/s: asyncpg       1003   psycopg        352     |  asyncpg        702   psycopg        522
    PgTaskStore.claim: 3133 tasks/s (20000 tasks, 3 nodes, 8 per claim) | 3472 tasks/s
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

from core.models import Task, TaskKind, TaskOptions, TaskStatus
from core.store import open_store
from core.store.base import HostCaps
from core.store.pg import PgTaskStore
from core.store.rows import READ_COLUMNS, task_from_row
from tests.support.postgres import PostgresCluster, find_binaries

TASKS = 20_000
PAGE = 10_000
ROUNDS = 7
READS = 2_000
CLAIM_TX = 1_000

SELECT_PAGE = f"SELECT {READ_COLUMNS} FROM tasks ORDER BY id DESC LIMIT {PAGE}"
CLAIM_SELECT = "SELECT id FROM tasks WHERE status='waiting' ORDER BY id LIMIT 4 FOR UPDATE SKIP LOCKED"


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


async def fill(url: str) -> None:
    store = await open_store(url, database=Path("unused"), node="filler")
    try:
        tasks = [Task(id=0, kind=TaskKind.HTTP, url=f"http://h{i % 5}.test/file{i}.bin", name=f"file{i}.bin",
                      folder="", headers=(("Referer", "http://r/"),), status=TaskStatus.WAITING, options=TaskOptions())
                 for i in range(TASKS)]
        await store.insert_many(tasks)
    finally:
        await store.close()


async def reset(url: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute("UPDATE tasks SET status='waiting', node=NULL, lease_expires=NULL, connections=0")
    await conn.close()


async def bench_asyncpg(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    out: dict[str, str] = {}
    try:
        samples = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            rows = await conn.fetch(SELECT_PAGE)
            _ = [task_from_row(r) for r in rows]
            samples.append(time.perf_counter() - started)
        out["10k-row page"] = median_ms(samples)
        started = time.perf_counter()
        for i in range(READS):
            await conn.fetchrow(f"SELECT {READ_COLUMNS} FROM tasks WHERE id=$1", i % TASKS + 1)
        out["reads by id/s"] = f"{READS / (time.perf_counter() - started):.0f}"
        started = time.perf_counter()
        for _ in range(CLAIM_TX):
            async with conn.transaction():
                ids = [r["id"] for r in await conn.fetch(CLAIM_SELECT)]
                await conn.fetch("UPDATE tasks SET status='downloading' WHERE id = ANY($1::bigint[]) RETURNING id",
                                 ids)
        out["claim tx/s"] = f"{CLAIM_TX / (time.perf_counter() - started):.0f}"
    finally:
        await conn.close()
    return out


async def bench_psycopg(url: str) -> dict[str, str]:
    import psycopg
    from psycopg.rows import dict_row

    out: dict[str, str] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0,
                                                     row_factory=dict_row) as conn:
        samples = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            cur = await conn.execute(SELECT_PAGE)  # type: ignore[arg-type]
            rows = await cur.fetchall()
            _ = [task_from_row(r) for r in rows]
            samples.append(time.perf_counter() - started)
        out["10k-row page"] = median_ms(samples)
        started = time.perf_counter()
        for i in range(READS):
            cur = await conn.execute(f"SELECT {READ_COLUMNS} FROM tasks WHERE id=%s", (i % TASKS + 1,))  # type: ignore[arg-type]
            await cur.fetchone()
        out["reads by id/s"] = f"{READS / (time.perf_counter() - started):.0f}"
        started = time.perf_counter()
        for _ in range(CLAIM_TX):
            async with conn.transaction():
                cur = await conn.execute(CLAIM_SELECT)  # type: ignore[arg-type]
                ids = [r["id"] for r in await cur.fetchall()]
                cur = await conn.execute(
                    "UPDATE tasks SET status='downloading' WHERE id = ANY(%s) RETURNING id", (ids,))
                await cur.fetchall()
        out["claim tx/s"] = f"{CLAIM_TX / (time.perf_counter() - started):.0f}"
    return out


async def bench_store_claims(url: str) -> str:
    nodes = [await PgTaskStore.open(url, f"n{i}") for i in range(3)]
    caps = HostCaps()
    claimed = 0

    async def node_loop(store: PgTaskStore) -> None:
        nonlocal claimed
        while True:
            got = await store.claim(8, lease_seconds=30, caps=caps, want_connections=lambda _t: 1)
            if not got:
                return
            claimed += len(got)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(node_loop(s) for s in nodes))
        elapsed = time.perf_counter() - started
    finally:
        for s in nodes:
            await s.close()
    return f"{claimed / elapsed:.0f} tasks/s ({claimed} tasks, 3 nodes, 8 per claim)"


async def main(cluster: PostgresCluster) -> None:
    with cluster.database() as url:
        await fill(url)
        results = {}
        for name, bench in (("asyncpg", bench_asyncpg), ("psycopg", bench_psycopg)):
            await reset(url)
            results[name] = await bench(url)
        for key in results["asyncpg"]:
            print(f"{key:>16}: asyncpg {results['asyncpg'][key]:>10}   psycopg {results['psycopg'][key]:>10}")
        await reset(url)
        print(f"PgTaskStore.claim: {await bench_store_claims(url)}")


if __name__ == "__main__":
    bin_dir = find_binaries()
    if bin_dir is None:
        sys.exit("no PostgreSQL binaries")
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
        asyncio.run(main(cluster))
    finally:
        cluster.close()

