"""A task's options edited while its run starts are kept (TaskRunner.options_edit in core/task_run.py).

At a run's start the checksum-sidecar lookup writes the task's options back whole; an Engine.update
stored meanwhile (aria2.remove's mark, aria2.changeOption, a native PATCH) must not be undone by it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core import task_run
from core.engine import Engine
from core.models import TaskSpec
from core.store import TaskPatch
from core.store.base import UNSET
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer, random_bytes

MARK = 12_345  # the edited speed limit, bytes/s


async def test_an_options_edit_at_a_runs_start_is_not_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FileServer() as files:
        url = files.add("/slow.bin", random_bytes(300_000, seed=81))
        files.faults.throttle("/slow.bin", 20_000)
        async with Engine(tmp_path / "db.sqlite", config=engine_config(tmp_path)) as engine:
            asked, stored_edit = asyncio.Event(), asyncio.Event()
            real_fetch = task_run.fetch_sidecar

            async def fetch_sidecar(*args: Any, **kwargs: Any) -> Any:
                asked.set()
                await stored_edit.wait()  # the lookup ends just as the edit is stored, not yet in the run's copy
                return await real_fetch(*args, **kwargs)

            store = engine.store
            real_update = store.update

            async def update(task_id: int, patch: TaskPatch) -> Any:
                result = await real_update(task_id, patch)
                if patch.options is not UNSET and patch.options.speed_limit == MARK:
                    stored_edit.set()
                    await asyncio.sleep(0.2)  # the window: stored, the run's task not yet patched
                return result

            monkeypatch.setattr(task_run, "fetch_sidecar", fetch_sidecar)
            monkeypatch.setattr(store, "update", update)
            (task,) = await engine.create([TaskSpec(url=url)], start=True)
            await asyncio.wait_for(asked.wait(), 10)
            current = await engine.get(task.id)
            await engine.update(task.id, TaskPatch(options=current.options.model_copy(update={"speed_limit": MARK})))
            deadline = asyncio.get_running_loop().time() + 10
            while not (stored := await real_store_get(engine, task.id)).options.checksum_sidecar:
                assert asyncio.get_running_loop().time() < deadline, "the sidecar lookup never wrote its mark"
                await asyncio.sleep(0.02)
            assert stored.options.speed_limit == MARK, stored.options  # the edit survived the run's write
            assert (await engine.get(task.id)).options.speed_limit == MARK
            await engine.stop(task.id)


async def real_store_get(engine: Engine, task_id: int) -> Any:
    task = await engine.store.get(task_id)
    assert task is not None
    return task
