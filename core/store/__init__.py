"""Where tasks are kept: the `TaskStore` contract (base.py), its SQLite implementation (repo.py, db.py) and its
PostgreSQL implementation shared by many nodes (pg.py); one schema for both (schema.py), the encodings and
claim rules both use (rows.py).

Importing this package is cheap (no database driver): the engine names the
contract and its data types from here and opens a concrete store through a
`StoreFactory`; `open_store` imports aiosqlite or asyncpg only for the store it opens.
"""

from __future__ import annotations

from pathlib import Path

from core.store.base import LOCAL_NODE, MAX_FILTER_IDS, UNSET, StoreFactory, TaskFilter, TaskPatch, TaskStore

__all__ = [
    "LOCAL_NODE", "MAX_FILTER_IDS", "UNSET", "StoreFactory", "TaskFilter", "TaskPatch", "TaskStore", "is_postgres_url",
    "open_store", "store_factory",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    return url.strip().lower().startswith(POSTGRES_SCHEMES)


async def open_store(url: str, *, database: Path, node: str = LOCAL_NODE) -> TaskStore:
    """The store `url` names: empty → the SQLite database at `database`; postgresql://… → a pool on that
    database, shared with every other node (`node`: this node's name). ValueError for any other URL."""
    url = url.strip()
    if not url:
        from core.store.repo import TaskRepo

        return await TaskRepo.open(database, node=node)
    if is_postgres_url(url):
        from core.store.pg import PgTaskStore

        return await PgTaskStore.open(url, node)
    raise ValueError(f"unknown store URL {url!r}: give a postgresql:// URL, or none for the SQLite database")


def store_factory(url: str, *, database: Path, node: str = LOCAL_NODE) -> StoreFactory:
    """A StoreFactory (what `Engine(store=…)` takes) opening `open_store(url, database=…, node=…)`."""

    async def factory() -> TaskStore:
        return await open_store(url, database=database, node=node)

    return factory
