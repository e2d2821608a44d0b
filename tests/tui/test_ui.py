"""Pilot tests: filter, themes, settings (config.toml comments kept), keymap, details, palette."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Static

from core.config import Config, UiConfig, load_config
from core.events import TaskProgress
from core.models import TaskStatus
from tests.tui.conftest import screen_text, wait_for
from tests.tui.fakes import MemoryClient, sample_tasks
from tui.app import FetchdeckApp
from tui.screens.main import MainScreen
from tui.screens.settings import SettingsScreen
from tui.widgets.filter_bar import FilterBar
from tui.widgets.task_table import TaskTable


def rows(app: FetchdeckApp) -> list[int]:
    grid = app.query_one(TaskTable)
    return [int(str(key.value)) for key in grid.rows]


async def open_settings(pilot: Pilot[None], app: FetchdeckApp, field: str, loaded: str) -> SettingsScreen:
    """Open the settings screen (`,`) and wait until `field` shows the config's value `loaded`."""
    await pilot.press("comma")
    await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
    screen = app.screen
    assert isinstance(screen, SettingsScreen)
    await wait_for(pilot, lambda: screen.field(field).value == loaded, what="values loaded")
    return screen


async def test_filter_by_text_and_status(make_app: Callable[..., FetchdeckApp]) -> None:
    app = make_app(MemoryClient(sample_tasks()))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(rows(app)) == 7, what="rows")
        await pilot.press("slash")
        assert app.query_one(FilterBar).display
        await pilot.press(*".ISO")  # case-insensitive, name or URL
        await wait_for(pilot, lambda: "filter “.ISO”" in screen_text(app), what="the text filter")
        assert rows(app) == [1]
        await pilot.press("enter")  # back to the table, filter kept
        assert isinstance(app.focused, TaskTable)
        assert rows(app) == [1]
        bar = app.query_one(FilterBar)
        bar.text_input.value = ""
        bar.set_status(TaskStatus.SUCCESS)
        await wait_for(pilot, lambda: rows(app) == [4, 7], what="the status filter")
        await pilot.press("slash", "escape")  # escape in the filter clears it
        await wait_for(pilot, lambda: rows(app) == list(range(1, 8)), what="the filter cleared")
        assert not bar.display


async def test_filter_keeps_following_status_changes(make_app: Callable[..., FetchdeckApp]) -> None:
    from core.events import TaskFailed

    client = MemoryClient(sample_tasks())
    app = make_app(client)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(rows(app)) == 7, what="rows")
        main = app.main_screen
        assert main is not None
        main.show_status(TaskStatus.FAILED)
        await wait_for(pilot, lambda: rows(app) == [5], what="the failed filter")
        client.tasks[6].status = TaskStatus.FAILED
        client.tasks[6].error = "disk full"
        client.push(TaskFailed(6, "disk full"))
        await wait_for(pilot, lambda: rows(app) == [5, 6], what="task 6 to join the failed filter")


async def test_theme_switch_is_saved(make_app: Callable[..., FetchdeckApp], config_path: Path) -> None:
    app = make_app(MemoryClient(sample_tasks()))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "fetchdeck-dark"
        await pilot.press("t")
        await pilot.pause(0.2)
        await pilot.press(*"fetchdeck-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "fetchdeck-light", what="the light theme")
        await wait_for(pilot, lambda: 'theme = "fetchdeck-light"' in config_path.read_text(), what="saved")
    text = config_path.read_text()
    assert "# fetchdeck configuration." in text and "# How many tasks download at once." in text


async def test_bad_theme_file_is_a_notification_not_a_crash(make_app: Callable[..., FetchdeckApp],
                                                            tmp_path: Path, config: Config) -> None:
    themes = tmp_path / "themes"
    themes.mkdir()
    (themes / "broken.toml").write_text('name = "broken"\n[colors]\nprimary = "not-a-color"\n')
    (themes / "mine.toml").write_text('name = "mine"\ndark = false\n[colors]\nprimary = "#aa3377"\n')
    cfg = Config(download=config.download, ui=UiConfig(theme="broken"))
    app = make_app(MemoryClient(), config=cfg)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        assert app.theme == "fetchdeck-dark"
        assert "mine" in app.available_themes and "broken" not in app.available_themes
        messages = [n.message for n in app._notifications]
        assert any("broken.toml" in m and "not a color" in m for m in messages), messages
        assert any("broken" in m for m in messages)


async def test_settings_save_keeps_comments(make_app: Callable[..., FetchdeckApp], config_path: Path) -> None:
    config_path.write_text(config_path.read_text().replace(
        "[download]\n", "[download]\n# my own note: keep this\n"))
    app = make_app(MemoryClient(sample_tasks()))
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_settings(pilot, app, "max_concurrent", "3")
        screen.field("max_concurrent").value = "7"
        screen.field("speed_limit").value = "5M"
        screen.field("token").value = "s3cret-token"
        assert "s3cret-token" not in screen_text(app)  # masked
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="saved and closed")
    text = config_path.read_text()
    assert "# my own note: keep this" in text
    assert "# How many tasks download at once." in text
    saved = load_config(config_path, environ={})
    assert saved.download.max_concurrent == 7
    assert saved.download.speed_limit == "5M"
    assert saved.server.token == "s3cret-token"
    assert app.config.download.max_concurrent == 7


async def test_settings_show_booleans_as_toml_writes_them(make_app: Callable[..., FetchdeckApp],
                                                          config_path: Path) -> None:
    """A bool setting reads `true`/`false` (not Python's True/False); typed back it takes yes/no and on/off
    too, and anything else is an inline error."""
    app = make_app(MemoryClient())
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_settings(pilot, app, "port", "39719")
        assert (screen.field("web_enable").value, screen.field("aria2_shutdown").value) == ("true", "false")
        assert screen.field("web_enable").placeholder.startswith("true (")
        assert screen.field("aria2_shutdown").placeholder.startswith("false (")
        screen.field("web_enable").value = "maybe"
        await pilot.press("ctrl+s")
        error = screen.query_one("#set-web_enable-error", Static)
        await wait_for(pilot, lambda: "must be true or false" in str(error.render()), what="the inline error")
        assert isinstance(app.screen, SettingsScreen)
        screen.field("web_enable").value = "off"
        screen.field("aria2_shutdown").value = "Yes"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="saved and closed")
    saved = load_config(config_path, environ={})
    assert (saved.web.enable, saved.aria2_rpc.allow_shutdown) == (False, True)
    assert "enable = false" in config_path.read_text() and "allow_shutdown = true" in config_path.read_text()


async def test_settings_validation_is_inline(make_app: Callable[..., FetchdeckApp], config_path: Path) -> None:
    before = config_path.read_text()
    app = make_app(MemoryClient())
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_settings(pilot, app, "port", "39719")
        screen.field("port").value = "99999"
        screen.field("speed_limit").value = "fast"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, SettingsScreen)
        text = screen_text(app)
        assert "a whole number from 1 to 65535" in text
        assert "not a size" in text
        await pilot.press("escape")
    assert config_path.read_text() == before


async def test_keys_can_be_remapped_from_config(make_app: Callable[..., FetchdeckApp], config: Config) -> None:
    cfg = Config(download=config.download, ui=UiConfig(keys={"add": "n", "bogus": "z"}))
    app = make_app(MemoryClient(), config=cfg)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert any("bogus" in n.message for n in app._notifications)
        await pilot.press("n")
        await pilot.pause()
        assert type(app.screen).__name__ == "AddTaskScreen"


async def test_details_and_log_follow_the_selection(make_app: Callable[..., FetchdeckApp]) -> None:
    app = make_app(MemoryClient(sample_tasks()))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: len(rows(app)) == 7, what="rows")
        await pilot.press("down", "down", "down", "down")  # the failed task
        await wait_for(pilot, lambda: "HEAD 404 Not Found" in screen_text(app), what="its log")
        text = screen_text(app)
        assert "HTTP 404 Not Found" in text
        assert "HEAD 404 Not Found" in text  # its log
        await pilot.press("enter")
        assert app.screen.has_class("-expanded")
        await pilot.press("escape")
        assert not app.screen.has_class("-expanded")


async def test_command_palette_lists_the_actions(make_app: Callable[..., FetchdeckApp]) -> None:
    app = make_app(MemoryClient(sample_tasks()))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for wanted in ("Add downloads", "Start", "Stop", "Retry", "Delete", "Filter", "Open folder", "Settings",
                       "Theme", "Quit", "Show failed tasks"):
            assert wanted in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"show failed")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: rows(app) == [5], what="failed filter from the palette")


async def test_open_folder_copies_the_path(make_app: Callable[..., FetchdeckApp]) -> None:
    app = make_app(MemoryClient(sample_tasks()))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(rows(app)) == 7, what="rows")
        await pilot.press("down", "down", "down", "o")
        await pilot.pause()
        assert app.clipboard == "/home/ada/Downloads/fetchdeck"


async def test_off_screen_rows_update_when_scrolled_into_view(make_app: Callable[..., FetchdeckApp]) -> None:
    from tests.tui.fakes import _task

    tasks = [_task(i, f"f{i}.bin", TaskStatus.DOWNLOADING, total=1000, downloaded=0) for i in range(1, 2001)]
    app = make_app(MemoryClient(tasks))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(rows(app)) == 2000, what="rows")
        await pilot.pause(0.3)  # the layout settles (a resize may rebuild once)
        grid = app.query_one(TaskTable)
        for task_id in (1, 1500):
            app.index.progress(TaskProgress(task_id, downloaded=500, total=1000, speed=10.0, eta=50, percent=50.0))
        await wait_for(pilot, lambda: "50%" in str(grid.get_cell("1", "progress")), what="on screen: written")
        assert "50%" not in str(grid.get_cell("1500", "progress"))  # off screen: waits
        grid.move_cursor(row=1499, animate=False)
        await wait_for(pilot, lambda: "50%" in str(grid.get_cell("1500", "progress")), what="scrolled into view")
        app.theme = "fetchdeck-light"  # new colors: only what is visible is redrawn at once
        await pilot.pause(0.2)
        assert len(grid._stale) > 1900
