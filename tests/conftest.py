"""Shared fixtures: a real HTTP file server and deterministic test payloads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from core.store import StoreFactory, store_factory
from tests.support.fileserver import FileServer
from tests.support.fileserver import random_bytes as _random_bytes
from tests.support.postgres import PostgresCluster, postgres_cluster

# Property tests draw the same examples on every run, so a green suite stays green on a clean
# clone (CI). `HYPOTHESIS_PROFILE=explore pytest tests/unit` draws new ones to hunt for bugs.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A started FileServer on an ephemeral 127.0.0.1 port, in its own thread and loop.

    Works from sync and async tests and for downloaders run as subprocesses.
    """
    with FileServer() as srv:
        yield srv


@pytest.fixture(name="random_bytes")
def random_bytes_fixture() -> Callable[..., bytes]:
    """`random_bytes(n, seed=0)`: deterministic, fast for 100+ MB (also importable from tests.support.fileserver)."""
    return _random_bytes


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server on 127.0.0.1 for the whole session (skips if there are no binaries)."""
    with postgres_cluster() as cluster:
        if isinstance(cluster, str):
            pytest.skip(cluster)
        yield cluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh empty database of its own for one test."""
    with postgres.database() as url:
        yield url


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """The same fresh database as `postgres_url` (the name tests/cluster uses)."""
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """A store to run on: "" (the SQLite database in the test's tmp dir) or a fresh PostgreSQL database."""
    return str(request.getfixturevalue("postgres_url")) if request.param == "postgresql" else ""


@pytest.fixture
def engine_store(store_url: str, tmp_path: Path) -> StoreFactory:
    """What `Engine(store=…)` opens in the engine tests, on each store in turn: SQLite at tmp_path/db.sqlite,
    then PostgreSQL (every call opens the same database again, as a restarted engine does)."""
    return store_factory(store_url, database=tmp_path / "db.sqlite")
