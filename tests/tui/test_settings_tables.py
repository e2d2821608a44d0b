"""The settings screen edits the [[schedule]] windows and the [hosts."NAME"] tables as one line each: a save
writes them into config.toml and a real engine (its schedule on a fake clock) applies them without a restart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from core.config import Config, load_config
from core.engine import Engine
from core.schedule import Mode
from core.store.base import HostLimit
from tests.tui.conftest import screen_text, wait_for
from tui.app import FetchdeckApp
from tui.client import LocalClient
from tui.screens.main import MainScreen
from tui.screens.settings import SettingsScreen


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


async def open_settings(app: FetchdeckApp, pilot: Pilot[Any]) -> SettingsScreen:
    await pilot.press("comma")
    await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
    screen = app.screen
    assert isinstance(screen, SettingsScreen)
    await wait_for(pilot, lambda: screen.field("max_concurrent").value != "", what="values loaded")
    return screen


def error_of(screen: SettingsScreen, field_id: str) -> str:
    return str(screen.query_one(f"#set-{field_id}-error", Static).render())


async def test_schedule_and_hosts_typed_saved_and_in_force(
    tmp_path: Path, config: Config, config_path: Path, make_app: Callable[..., FetchdeckApp],
) -> None:
    config_path.write_text(config_path.read_text() + '\n[hosts."old.example"]  # retired mirror\ntasks = 1\n')
    clock = FakeClock(datetime(2026, 11, 30, 9, 0))  # a Monday
    async with Engine(tmp_path / "fetchdeck.db", config, clock=clock) as engine:
        app = make_app(LocalClient(engine))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_settings(app, pilot)
            assert screen.field("schedule").value == "" and screen.field("hosts").value == "old.example tasks=1"
            screen.field("schedule").value = "mon-fri 08:00-18:00 speed=2M; sat,sun 22:00-06:00 napping"
            screen.field("hosts").value = "example.com tasks=two"
            await pilot.press("ctrl+s")
            await pilot.pause(0.2)
            assert isinstance(app.screen, SettingsScreen)  # not saved: the errors are inline, under each field
            assert error_of(screen, "schedule") == ("window 2 (sat,sun 22:00-06:00 napping): 'napping' is not "
                                                    "paused, a speed (2M/s, speed=2M) or a cap (cap 10G)")
            assert error_of(screen, "hosts").startswith("host example.com: tasks: 'two': ")
            screen.field("schedule").value = "mon-fri 08:00-18:00 speed=fast"
            await pilot.press("ctrl+s")
            await pilot.pause(0.2)
            assert error_of(screen, "schedule") == "window 1: speed: not a size: 'fast' (try 5M, 500K, 1048576)"

            typed = "mon-fri 08:00-18:00 speed=2M; sat,sun 22:00-06:00 pause; daily 00:00-06:00 "
            screen.field("schedule").value = typed
            screen.field("schedule").focus()
            await pilot.press("end", *"cap=10G")  # the end typed
            screen.field("hosts").value = "example.com connections=4 tasks=2 speed=1M; * connections=16"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="saved and closed")

            saved = load_config(config_path, environ={}, report=lambda _: None)
            assert [(w.days, w.from_, w.to, w.speed, w.pause, w.cap) for w in saved.schedule.windows] == [
                ("mon-fri", "08:00", "18:00", "2M", False, ""), ("sat,sun", "22:00", "06:00", "", True, ""),
                ("daily", "00:00", "06:00", "", False, "10G")]
            assert {name: (h.connections, h.tasks, h.speed) for name, h in saved.hosts.limits.items()} == {
                "example.com": (4, 2, "1M"), "*": (16, 0, "")}
            assert "old.example" not in config_path.read_text()

            # in force at once: the speed window (the keeper's loop started with the first windows) ...
            await wait_for(pilot, lambda: "schedule: 2M/s until 18:00" in screen_text(app), what="the window")
            state = engine.schedule_state()
            assert (state.mode, state.speed, state.window) == (Mode.SPEED, 2 << 20, "mon-fri 08:00-18:00")
            assert engine.limits.global_rate == 2 << 20
            # ... and the hosts' caps and speeds
            assert engine.scheduler.caps.of("example.com") == HostLimit(4, 2)
            assert engine.scheduler.caps.of("other.example") == HostLimit(16, 0)
            assert engine.limits.host_rate("example.com") == 1 << 20
            clock.at = datetime(2026, 12, 5, 23, 0)  # Saturday night: the pause window, seen by the keeper's loop
            await wait_for(pilot, lambda: engine.schedule_state().mode is Mode.PAUSED, what="the pause window")

            screen = await open_settings(app, pilot)  # shown back in the form's own words
            assert screen.field("schedule").value == ("mon-fri 08:00-18:00 2M/s; sat,sun 22:00-06:00 paused; "
                                                      "daily 00:00-06:00 normal speed, cap 10G")
            assert screen.field("hosts").value == "example.com connections=4 tasks=2 speed=1M; * connections=16"
            screen.field("schedule").value = ""  # an empty field removes the windows
            screen.field("hosts").value = ""
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="saved and closed")
            await wait_for(pilot, lambda: not engine.schedule_state().active, what="no window in force")
            assert not engine.scheduler.held and engine.limits.host_rate("example.com") is None
            assert not engine.scheduler.caps.any
            saved = load_config(config_path, environ={}, report=lambda _: None)
            assert saved.schedule.windows == [] and saved.hosts.limits == {}
            text = config_path.read_text()
            assert "\n[[schedule]]" not in text and '\n[hosts."' not in text and "# retired mirror" not in text
