"""A throwaway PostgreSQL cluster for the tests: `initdb` into a temp dir, `pg_ctl` on 127.0.0.1.

The machine's PostgreSQL 15 binaries (`initdb`, `pg_ctl`, `postgres`; on PATH, in /usr/local/bin or
/usr/lib/postgresql/*/bin) run the cluster; as root they run as an unprivileged user (`nobody`, through
`runuser`), since PostgreSQL refuses to run as root. Trust authentication on 127.0.0.1, fsync off (the
data is thrown away), one free port. `PostgresCluster.database()` makes a fresh database per test (from
template0); `restart()` stops and starts the server (a database outage in the middle of a run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

SUPERUSER = "postgres"
RUN_AS = "nobody"


def find_binaries() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    candidates.append(Path("/usr/local/bin"))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server in its own temp dir; `start`/`stop`/`restart`, `url(db)`, `database()`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="fetchdeck-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", RUN_AS, "--"]
            shutil.chown(self.root, user=RUN_AS)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self._as_user, str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}\n{log}")
        return done

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off -c synchronous_commit=off"
                   f" -c full_page_writes=off -c max_connections=200 -k {self.root}")
        self._run("pg_ctl", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect every client, as an outage does; `immediate`: like a crash)."""
        self._run("pg_ctl", "-w", "-t", "60", "-D", str(self.data), "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port: every open connection is dropped."""
        self.stop(mode)
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql_command(self, sql: str, database: str = "postgres") -> None:
        """Run one SQL command as the superuser (asyncpg, on a loop of its own in a thread: callable from
        sync code and from inside a running loop alike)."""
        import asyncio
        import threading

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.url(database))
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        failure: list[BaseException] = []

        def thread() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # re-raised in the caller
                failure.append(exc)

        worker = threading.Thread(target=thread)
        worker.start()
        worker.join()
        if failure:
            raise failure[0]

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh empty database for one test (its URL); dropped afterwards."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.psql_command(f"CREATE DATABASE {name} TEMPLATE template0")
        try:
            yield self.url(name)
        finally:
            with contextlib.suppress(Exception):
                self.psql_command(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster | str]:
    """A started cluster, or the reason there is none (no binaries)."""
    bin_dir = find_binaries()
    if bin_dir is None:
        yield "no PostgreSQL binaries (initdb, pg_ctl, postgres) on PATH, in /usr/local/bin or /usr/lib/postgresql"
        return
    cluster = PostgresCluster(bin_dir)
    try:
        for attempt in range(3):  # the free port may be taken meanwhile (another xdist worker's server)
            try:
                cluster.start()
                break
            except RuntimeError as exc:
                if attempt == 2 or "already in use" not in str(exc):
                    raise
                cluster.port = _free_port()
        yield cluster
    finally:
        cluster.close()
