"""Engines as cluster nodes in one test process: each on its own store connection to one database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from core.config import Config
from core.engine import Engine
from core.store import TaskStore, open_store

LEASE = 1.5  # seconds: short, so a lost node is noticed quickly


def node_config(tmp_path: Path, url: str, name: str, **download: object) -> Config:
    config = Config()
    config.download.dir = str(tmp_path / "dl")  # one folder for both: a shared filesystem
    config.download.max_concurrent = 2
    for key, value in download.items():
        setattr(config.download, key, value)
    config.store.url = url
    config.cluster.node = name
    config.cluster.lease_timeout = LEASE
    return config


@asynccontextmanager
async def node(tmp_path: Path, url: str, name: str, config: Config | None = None) -> AsyncIterator[Engine]:
    config = config or node_config(tmp_path, url, name)

    async def opener() -> TaskStore:
        return await open_store(url, database=tmp_path / f"{name}.sqlite", node=name)

    engine = Engine(None, config, store=opener)
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


async def until(check: Callable[[], object], timeout: float = 20.0, what: str = "state") -> None:
    """Wait for a state, re-checking every 50 ms (an async check is awaited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


