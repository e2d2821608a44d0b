"""The TUI shows the bandwidth schedule's window in force and the note of a task it holds, and sets a task's
speed limit (key b), against a real engine whose schedule reads a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from textual.widgets import Input

from core.config import Config, ScheduleWindowConfig
from core.engine import Engine
from core.models import TaskSpec, TaskStatus
from tests.tui.conftest import screen_text, wait_for
from tui.app import FetchdeckApp
from tui.client import LocalClient
from tui.screens.limit import SpeedLimitScreen


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


async def test_status_line_note_limit_key_and_settings(tmp_path: Path, config: Config, config_path: Path,
                                                       make_app: Callable[..., FetchdeckApp]) -> None:
    clock = FakeClock(datetime(2026, 11, 30, 7, 59))  # a Monday
    config.schedule.windows = [ScheduleWindowConfig.model_validate(
        {"days": "mon-fri", "from": "08:00", "to": "18:00", "pause": True})]
    async with Engine(tmp_path / "fetchdeck.db", config, clock=clock) as engine:
        (task,) = await engine.create([TaskSpec(url="http://127.0.0.1:9/never.bin")], start=False)
        app = make_app(LocalClient(engine))
        async with app.run_test(size=(120, 30)) as pilot:
            await wait_for(pilot, lambda: task.id in app.index.tasks, what="the row")
            assert "schedule:" not in screen_text(app)
            clock.at += timedelta(minutes=1)  # 08:00: the pause window begins
            await engine.schedule.tick()
            await wait_for(pilot, lambda: "schedule: paused until 18:00" in screen_text(app), what="the state")
            await engine.start(task.id)  # queued, but held back by the window
            await wait_for(pilot, lambda: app.index.tasks[task.id].note == "scheduled: starts 18:00", what="the note")
            await wait_for(pilot, lambda: "scheduled" in screen_text(app), what="the row saying so")
            await pilot.press("enter")  # the detail pane has the whole note
            await wait_for(pilot, lambda: "scheduled: starts 18:00" in screen_text(app), what="the detail")
            await pilot.press("escape")
            assert (await engine.get(task.id)).status is TaskStatus.WAITING

            await pilot.press("b")
            assert isinstance(app.screen, SpeedLimitScreen)
            app.screen.value_input.value = "fast"
            await pilot.press("enter")
            await wait_for(pilot, lambda: "not a size" in screen_text(app), what="the inline error")
            app.screen.value_input.value = "750K"
            await pilot.press("enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, SpeedLimitScreen), what="the dialog closed")
            await wait_for(pilot, lambda: app.index.tasks[task.id].options.speed_limit == 750 * 1024,
                           what="the limit in the TUI's copy")
            assert (await engine.get(task.id)).options.speed_limit == 750 * 1024

            await pilot.press("B")  # the task's host: 127.0.0.1
            assert isinstance(app.screen, SpeedLimitScreen) and app.screen.value_input.value == ""
            app.screen.value_input.value = "3M"
            await pilot.press("enter")
            await wait_for(pilot, lambda: engine.limits.host_rate("127.0.0.1") == 3 << 20, what="the host's limit")

            with config_path.open("a", encoding="utf-8") as file:
                file.write('\n[[schedule]]\ndays = "mon-fri"\nfrom = "08:00"\nto = "18:00"\npause = true\n'
                           '\n[[schedule]]\ndays = "sat,sun"\nfrom = "00:00"\nto = "00:00"\nspeed = "2M"\ncap = "5G"\n')
            await pilot.press("comma")  # the settings screen shows the schedule (editing it: test_settings_tables.py)
            summary = "mon-fri 08:00-18:00 paused; sat,sun 00:00-00:00 2M/s, cap 5G"
            # (below the other settings: the form scrolls, so the widget is read rather than the screen)
            await wait_for(pilot, lambda: app.screen.query_one("#set-schedule", Input).value != "",
                           what="the schedule in the settings")
            assert app.screen.query_one("#set-schedule", Input).value == summary
            await pilot.press("escape")

            clock.at = datetime(2026, 11, 30, 18, 0)  # the window is over
            await engine.schedule.tick()
            await wait_for(pilot, lambda: "schedule:" not in screen_text(app), what="the state gone")
            await engine.stop(task.id)
