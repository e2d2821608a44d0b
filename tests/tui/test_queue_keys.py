"""Queue control from the TUI (issue 14): the priority and move keys, their ids in the keymap, the marker."""

from __future__ import annotations

from collections.abc import Callable

from core.config import Config, UiConfig
from core.models import Priority
from core.queue import QueueMove
from tests.tui.conftest import screen_text, wait_for
from tests.tui.fakes import MemoryClient, sample_tasks
from tui.app import KEYMAP_IDS, FetchdeckApp
from tui.widgets.task_table import TaskTable


async def test_priority_and_move_keys(make_app: Callable[..., FetchdeckApp], config: Config) -> None:
    assert {"priority-up", "priority-down", "move-up", "move-down", "move-top", "move-bottom"} <= KEYMAP_IDS
    client = MemoryClient(sample_tasks())
    cfg = Config(download=config.download, ui=UiConfig(keys={"move-top": "T"}))  # remapped by its id
    app = make_app(client, config=cfg)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.query_one(TaskTable).rows) == 7, what="rows")
        await pilot.press("down", "down")  # task 3, waiting
        await pilot.press("plus")
        await wait_for(pilot, lambda: client.tasks[3].priority is Priority.HIGH, what="high priority")
        await wait_for(pilot, lambda: "▲ Conference keynote" in screen_text(app), what="the high-priority mark")
        await pilot.press("plus")  # already high: a notification, no change
        await pilot.press("minus", "minus")
        await wait_for(pilot, lambda: client.tasks[3].priority is Priority.LOW, what="low priority")
        await wait_for(pilot, lambda: "▼ Conference keynote" in screen_text(app), what="the low-priority mark")
        await pilot.press("K", "J", "T")
        await wait_for(pilot, lambda: len(client.moves) == 3, what="three moves")
        assert client.moves == [(3, QueueMove.UP), (3, QueueMove.DOWN), (3, QueueMove.TOP)]
