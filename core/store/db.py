"""The SQLite connection: WAL, one writer, migrations by PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

# Each entry upgrades the schema from version i to i+1. Never edit a shipped one.
MIGRATIONS: list[str] = [
    """
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
    """,
    """
    ALTER TABLE tasks ADD COLUMN host TEXT NOT NULL DEFAULT '';
    ALTER TABLE tasks ADD COLUMN node TEXT;
    ALTER TABLE tasks ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN lease_expires REAL;
    ALTER TABLE tasks ADD COLUMN connections INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX tasks_status_host ON tasks(status, host);
    CREATE TABLE task_state (
        task_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (task_id, key)
    );
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    """,
]


PRAGMAS = ("PRAGMA synchronous=NORMAL", "PRAGMA busy_timeout=5000", "PRAGMA foreign_keys=ON")


async def open_database(path: Path) -> aiosqlite.Connection:
    """The reading connection (and the migrations)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    for pragma in PRAGMAS:
        await conn.execute(pragma)
    await migrate(conn)
    return conn


def open_writer(path: Path) -> sqlite3.Connection:
    """The one writing connection; used only from the store's writer thread."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


async def migrate(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row["user_version"]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this fetchdeck knows ({len(MIGRATIONS)})"
        )
    for number in range(version, len(MIGRATIONS)):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await _run_script(conn, MIGRATIONS[number])
            if number == 1:
                await _backfill_hosts(conn)
            await conn.execute(f"PRAGMA user_version={number + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise


async def _run_script(conn: aiosqlite.Connection, script: str) -> None:
    # executescript() would COMMIT first; run statement by statement inside our transaction.
    for statement in script.split(";"):
        if statement.strip():
            await conn.execute(statement)


async def _backfill_hosts(conn: aiosqlite.Connection) -> None:
    """Version 2: the host every existing task counts under."""
    from core.store.rows import host_of

    rows = await conn.execute_fetchall("SELECT id, url FROM tasks")
    await conn.executemany("UPDATE tasks SET host=? WHERE id=?", [(host_of(r["url"]), r["id"]) for r in rows])
