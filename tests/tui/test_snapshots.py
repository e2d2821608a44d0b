"""Screenshots of the main screens at 80×24 and 160×45 (pytest-textual-snapshot).

Deterministic: an in-memory client with fixed tasks, times and logs, a fixed
config file, steady cursors. Update the baselines with
`pytest tests/tui/test_snapshots.py --snapshot-update` and look at them
(the SVGs are under tests/tui/__snapshots__/).
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core.config import Config, DownloadConfig, ensure_config_file
from tests.tui.conftest import screen_text, wait_for
from tests.tui.fakes import MemoryClient, sample_tasks
from tui.app import FetchdeckApp
from tui.screens.add import AddTaskScreen
from tui.screens.settings import SettingsScreen

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 45), id="160x45")]
# The settings screen shows the config path: keep it the same on every machine.
SNAPSHOT_CONFIG_DIR = Path("/tmp/fetchdeck-snapshots")

SnapCompare = Callable[..., bool]


def make_app(tasks: bool) -> FetchdeckApp:
    if SNAPSHOT_CONFIG_DIR.exists():
        shutil.rmtree(SNAPSHOT_CONFIG_DIR)
    config_path = SNAPSHOT_CONFIG_DIR / "config.toml"
    ensure_config_file(config_path)
    config_path.write_text(config_path.read_text().replace('token = ""', 'token = "hunter2-hunter2"'))
    client = MemoryClient(sample_tasks() if tasks else [])
    config = Config(download=DownloadConfig(dir="/home/ada/Downloads/fetchdeck"))
    return FetchdeckApp(client, config, config_path=config_path, themes_dir=None, api_note="API 127.0.0.1:39719")


def settled(then: Callable[[Pilot[Any]], Awaitable[None]] | None = None) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, FetchdeckApp)
        while not app.sync.loaded.is_set() or app.index.has_changes:  # loaded, and drawn by a frame
            await pilot.pause(0.02)
        await pilot.pause(0.1)
        if then is not None:
            await then(pilot)
        await pilot.pause(0.1)

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_main_empty(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tasks=False), terminal_size=size, run_before=settled())


@pytest.mark.parametrize("size", SIZES)
def test_main_every_status(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def select_failed(pilot: Pilot[Any]) -> None:
        await pilot.press("down", "down", "down", "down")
        app = pilot.app
        assert isinstance(app, FetchdeckApp) and app.main_screen is not None
        log = app.main_screen.task_log
        await wait_for(pilot, lambda: log.task_id == 5 and log.line_count > 0, what="its log")
        await wait_for(pilot, lambda: "404 Not Found" in screen_text(app), what="its details")

    assert snap_compare(make_app(tasks=True), terminal_size=size, run_before=settled(select_failed))


@pytest.mark.parametrize("size", SIZES)
def test_add_dialog(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def open_dialog(pilot: Pilot[Any]) -> None:
        await pilot.press("a")
        screen = pilot.app.screen
        assert isinstance(screen, AddTaskScreen)
        screen.urls_area.insert("https://stream.example.org/live/index.m3u8")
        await pilot.pause(0.1)

    assert snap_compare(make_app(tasks=True), terminal_size=size, run_before=settled(open_dialog))


@pytest.mark.parametrize("size", SIZES)
def test_settings_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def open_settings(pilot: Pilot[Any]) -> None:
        await pilot.press("comma")
        for _ in range(100):
            screen = pilot.app.screen
            if isinstance(screen, SettingsScreen) and screen.field("port").value:
                break
            await pilot.pause(0.02)

    assert snap_compare(make_app(tasks=True), terminal_size=size, run_before=settled(open_settings))


def test_light_theme(snap_compare: SnapCompare) -> None:
    async def light(pilot: Pilot[Any]) -> None:
        pilot.app.theme = "fetchdeck-light"
        await pilot.pause(0.3)

    app = make_app(tasks=True)
    app.config_path = None  # do not write the theme to the snapshot config
    assert snap_compare(app, terminal_size=(100, 30), run_before=settled(light))
