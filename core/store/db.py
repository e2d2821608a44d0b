"""The SQLite connection: WAL, one writer, migrations by PRAGMA user_version.

The schema itself is core/store/schema.py's (one definition for SQLite and
PostgreSQL); this module renders its operations to SQLite and runs each
version's in one transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite

from core.store.schema import MIGRATIONS, Backfill, Operation, sqlite_statements

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


async def migrate(conn: aiosqlite.Connection, target: int = len(MIGRATIONS)) -> None:
    """Upgrade the schema to version `target` (all of MIGRATIONS unless a test stops earlier)."""
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row["user_version"]) if row else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this fetchdeck knows ({len(MIGRATIONS)})"
        )
    for number in range(version, target):
        # executescript() would COMMIT first; run statement by statement inside our transaction.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for op in MIGRATIONS[number]:
                await _apply(conn, op)
            await conn.execute(f"PRAGMA user_version={number + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise


async def _apply(conn: aiosqlite.Connection, op: Operation) -> None:
    if isinstance(op, Backfill):
        rows = await conn.execute_fetchall(f"SELECT id, {op.source} AS source FROM {op.table}")
        await conn.executemany(f"UPDATE {op.table} SET {op.column}=? WHERE id=?",
                               [(op.derive(r["source"]), r["id"]) for r in rows])
        return
    for statement in sqlite_statements(op):
        await conn.execute(statement)
