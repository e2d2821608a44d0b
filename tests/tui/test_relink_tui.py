"""The relink key (l, binding id "relink") and its dialog, against a real engine (core/relink.py's rules)."""

from __future__ import annotations

from pathlib import Path

from core.engine import Engine
from core.models import TaskSpec, TaskStatus
from tests.support.fileserver import FileServer, random_bytes
from tests.tui.conftest import screen_text, wait_for
from tui.app import FetchdeckApp
from tui.screens.main import MainScreen
from tui.screens.relink import RelinkScreen


async def test_relink_dialog_prefills_the_url_shows_refusals_and_relinks(
    local_app: FetchdeckApp, engine: Engine, fileserver: FileServer
) -> None:
    data = random_bytes(100_000, seed=5)
    good = fileserver.add("/moved.bin", data)
    (task,) = await engine.create([TaskSpec(url=fileserver.url("/expired.bin"), name="m.bin")], start=False)
    async with local_app.run_test(size=(100, 30)) as pilot:
        main = local_app.screen
        assert isinstance(main, MainScreen)
        # the table shows the index at its next frame: the key acts on the selected row
        await wait_for(pilot, lambda: main.table.selected_id == task.id, what="the row selected")
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(local_app.screen, RelinkScreen), what="the dialog")
        dialog = local_app.screen
        assert isinstance(dialog, RelinkScreen)
        assert dialog.url_input.value == fileserver.url("/expired.bin")

        dialog.url_input.value = "ftp://nowhere/x"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "invalid URL" in screen_text(local_app), what="the refusal under the form")
        assert isinstance(local_app.screen, RelinkScreen) and "Traceback" not in screen_text(local_app)

        dialog.url_input.value = good
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(local_app.screen, MainScreen), what="the dialog to close")
        await wait_for(pilot, lambda: local_app.index.tasks[task.id].status is TaskStatus.SUCCESS, what="success")
    done = await engine.get(task.id)
    assert done.url == good and done.file is not None and Path(done.file).read_bytes() == data
