"""Pilot tests: the main screen against a real engine and a real local file server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.engine import Engine
from core.events import TaskProgress
from core.models import TaskSpec, TaskStatus
from tests.support.fileserver import FileServer, random_bytes
from tests.tui.conftest import screen_text, wait_for
from tui.app import FetchdeckApp
from tui.client import LocalClient
from tui.screens.add import AddTaskScreen
from tui.screens.confirm import ConfirmDeleteScreen
from tui.screens.main import MainScreen
from tui.widgets.task_table import TaskTable


def table(app: FetchdeckApp) -> TaskTable:
    return app.query_one(TaskTable)


def main_screen(app: FetchdeckApp) -> MainScreen:
    screen = app.main_screen
    assert screen is not None
    return screen


def status_cell(app: FetchdeckApp, task_id: int) -> str:
    """The row's status text ("" while the row is not drawn yet)."""
    grid = table(app)
    return str(grid.get_cell(str(task_id), "status")) if grid.has_task(task_id) else ""


async def test_add_a_download_by_keyboard(local_app: FetchdeckApp, engine: Engine, fileserver: FileServer) -> None:
    data = random_bytes(300_000, seed=7)
    url = fileserver.add("/f.bin", data)
    async with local_app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: local_app.sync.loaded.is_set(), what="first load")
        await pilot.press("a")
        assert isinstance(local_app.screen, AddTaskScreen)
        await pilot.press(*url)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(local_app.screen, MainScreen), what="dialog closed")
        await wait_for(pilot, lambda: len(local_app.index) == 1, what="the task in the index")
        (task_id,) = local_app.index.tasks
        await wait_for(pilot, lambda: local_app.index.tasks[task_id].status == TaskStatus.SUCCESS, what="success")
        await wait_for(pilot, lambda: "done" in status_cell(local_app, task_id), what="the row to say done")
        assert table(local_app).selected_id == task_id
        task = await engine.get(task_id)
        assert task.file is not None and Path(task.file).read_bytes() == data
        assert "f.bin" in screen_text(local_app)


async def test_invalid_url_is_an_inline_error(local_app: FetchdeckApp, engine: Engine) -> None:
    async with local_app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await pilot.press(*"ftp://nope")
        await pilot.press("enter")
        await pilot.pause()
        screen = local_app.screen
        assert isinstance(screen, AddTaskScreen)  # still open
        assert "only http:// and https://" in screen_text(local_app)
        await pilot.press("escape")
        assert isinstance(local_app.screen, MainScreen)
    assert (await engine.list_tasks()).total == 0


async def test_several_lines_make_several_tasks(local_app: FetchdeckApp, engine: Engine,
                                                fileserver: FileServer) -> None:
    urls = [fileserver.add(f"/p{i}.bin", b"x" * 1000) for i in range(3)]
    async with local_app.run_test(size=(100, 30)) as pilot:
        await pilot.press("a")
        screen = local_app.screen
        assert isinstance(screen, AddTaskScreen)
        screen.urls_area.text = "\n".join(urls)
        await pilot.pause()
        assert "detected: http" in screen_text(local_app)
        await pilot.click("#add-start")  # untick "start now"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(local_app.index) == 3, what="three tasks")
    page = await engine.list_tasks()
    assert page.total == 3 and {t.status for t in page.items} == {TaskStatus.STOPPED}


async def test_start_stop_retry_delete_keys(local_app: FetchdeckApp, engine: Engine,
                                            fileserver: FileServer) -> None:
    url = fileserver.add("/slow.bin", random_bytes(2_000_000, seed=3))
    fileserver.faults.throttle("/slow.bin", 100_000)  # 20 s at full length: we stop it long before
    (task,) = await engine.create([TaskSpec(url=url)], start=False)
    async with local_app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: table(local_app).row_count == 1, what="the row")
        await pilot.press("s")
        await wait_for(pilot, lambda: local_app.index.tasks[task.id].status == TaskStatus.DOWNLOADING,
                       what="downloading")
        await wait_for(pilot, lambda: local_app.index.tasks[task.id].downloaded > 0, what="progress")
        await wait_for(pilot, lambda: "%" in str(table(local_app).get_cell(str(task.id), "progress")),
                       what="a percentage in the row")
        await pilot.press("x")
        await wait_for(pilot, lambda: local_app.index.tasks[task.id].status == TaskStatus.STOPPED, what="stopped")
        assert (await engine.get(task.id)).status == TaskStatus.STOPPED
        await pilot.press("r")
        await wait_for(pilot, lambda: local_app.index.tasks[task.id].status == TaskStatus.DOWNLOADING,
                       what="downloading again")
        await pilot.press("d")
        assert isinstance(local_app.screen, ConfirmDeleteScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: table(local_app).row_count == 0, what="row removed")
    assert (await engine.list_tasks()).total == 0


async def test_delete_can_be_cancelled(local_app: FetchdeckApp, engine: Engine) -> None:
    await engine.create([TaskSpec(url="http://127.0.0.1:9/a.bin")], start=False)
    async with local_app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: table(local_app).row_count == 1, what="the row")
        await pilot.press("d", "escape")
        await pilot.pause()
        assert isinstance(local_app.screen, MainScreen)
    assert (await engine.list_tasks()).total == 1


async def test_failed_task_shows_its_error(local_app: FetchdeckApp, engine: Engine,
                                           fileserver: FileServer) -> None:
    url = fileserver.url("/missing.bin") if hasattr(fileserver, "url") else f"{fileserver.base_url}/missing.bin"
    async with local_app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: local_app.sync.loaded.is_set(), what="first load")
        (task,) = await engine.create([TaskSpec(url=url)])
        await wait_for(pilot, lambda: task.id in local_app.index
                       and local_app.index.tasks[task.id].status == TaskStatus.FAILED, what="failure")
        await wait_for(pilot, lambda: "failed" in status_cell(local_app, task.id), what="the row to say failed")
        await wait_for(pilot, lambda: "404" in screen_text(local_app), what="the reason on screen")
        text = screen_text(local_app)  # in the detail pane (and the notification)
        assert "Traceback" not in text


@pytest.mark.serial  # alone: the retry wait is on screen for a moment
async def test_a_task_waiting_to_retry_says_why(local_app: FetchdeckApp, engine: Engine) -> None:
    async with local_app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: local_app.sync.loaded.is_set(), what="first load")
        # 4 retries: waits of ~0.4, 0.8, 1.5, 3 s keep it waiting long enough to be seen on a loaded machine
        # (the fixture's one retry waits ~0.4 s, and the row, the detail and the text were all read in it)
        engine.config.download.retries = 4
        (task,) = await engine.create([TaskSpec(url="http://127.0.0.1:9/refused.bin")])  # nothing listens on 9
        await wait_for(pilot, lambda: "retrying" in str(table(local_app).get_cell(str(task.id), "speed"))
                       if table(local_app).has_task(task.id) else False, what="the row to say retrying")
        await wait_for(pilot, lambda: "connection refused" in screen_text(local_app), what="the reason in the detail")
        text = screen_text(local_app)
        assert "Waiting" in text and "retrying in" in text and "Traceback" not in text
        await engine.stop(task.id)


async def test_engine_events_update_only_changed_cells(engine: Engine, make_app: Callable[..., FetchdeckApp]) -> None:
    await engine.create([TaskSpec(url=f"http://127.0.0.1:9/{i}.bin") for i in range(50)], start=False)
    app = make_app(LocalClient(engine))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: table(app).row_count == 50, what="rows")
        grid = table(app)
        before = {key.value: dict(zip(grid.columns, grid.get_row(key), strict=True)) for key in grid.rows}
        app.index.progress(TaskProgress(7, downloaded=500, total=1000, speed=100.0, eta=5, percent=50.0))
        await wait_for(pilot, lambda: "50%" in str(grid.get_cell("7", "progress")), what="row 7 updated")
        after = {key.value: dict(zip(grid.columns, grid.get_row(key), strict=True)) for key in grid.rows}
        changed = {k for k in before if before[k] != after[k]}
        assert changed == {"7"}
        assert "50%" in str(grid.get_cell("7", "progress"))
