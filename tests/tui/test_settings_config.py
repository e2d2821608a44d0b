"""The settings screen over the typed config: a save keeps the file's comments and unknown keys, the
inline errors are the settings' own declarations (core/config.py), unknown keys are shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from core.config import describe, load_config
from tests.tui.conftest import screen_text, wait_for
from tests.tui.fakes import MemoryClient
from tui.app import FetchdeckApp
from tui.screens.main import MainScreen
from tui.screens.settings import FIELDS, SettingsScreen

FILE = """\
# my fetchdeck: hand-written
[download]
# two at a time, the line is slow
max_concurrent = 2  # see above
max_concurent = 9  # a typo the screen must not drop

[server]
port = 40000

[plugins]
# not fetchdeck's (yet)
colour = "teal"
"""


async def open_settings(app: FetchdeckApp, pilot: Pilot[Any]) -> SettingsScreen:
    await pilot.press("comma")
    await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
    screen = app.screen
    assert isinstance(screen, SettingsScreen)
    await wait_for(pilot, lambda: screen.field("max_concurrent").value == "2", what="values loaded")
    return screen


async def test_a_settings_save_keeps_comments_and_unknown_keys(
    make_app: Callable[..., FetchdeckApp], config_path: Path,
) -> None:
    config_path.write_text(FILE)
    app = make_app(MemoryClient())
    async with app.run_test(size=(110, 40)) as pilot:
        screen = await open_settings(app, pilot)
        text = screen_text(app)
        assert "unknown key download.max_concurent (ignored)" in text and "unknown key plugins" in text
        screen.field("max_concurrent").value = "5"
        screen.field("token").value = "n3w-token"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="saved and closed")
    saved = config_path.read_text()
    for kept in ("# my fetchdeck: hand-written", "# two at a time, the line is slow", "# see above",
                 "max_concurent = 9  # a typo the screen must not drop", "port = 40000",
                 '[plugins]\n# not fetchdeck\'s (yet)\ncolour = "teal"'):
        assert kept in saved, kept
    assert "max_concurrent = 5  # see above" in saved
    config = load_config(config_path, environ={}, report=lambda _: None)
    assert config.download.max_concurrent == 5 and config.server.token == "n3w-token"
    assert config.server.port == 40000


async def test_inline_errors_are_the_declared_rules(make_app: Callable[..., FetchdeckApp], config_path: Path) -> None:
    config_path.write_text(FILE)
    before = config_path.read_text()
    app = make_app(MemoryClient())
    async with app.run_test(size=(110, 40)) as pilot:
        screen = await open_settings(app, pilot)
        screen.field("connections").value = "65"
        screen.field("max_concurrent").value = "two"
        screen.field("proxy").value = "proxy.lan:3128"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, SettingsScreen)
        text = screen_text(app)
        assert text.count(f"must be {describe('download', 'connections')}") == 2  # connections and max_concurrent
        assert "proxy 'proxy.lan:3128': must look like http://" in text  # core/validation.py's proxy rule
        await pilot.press("escape")
    assert config_path.read_text() == before


async def test_events_out_lists_and_commands_round_trip(
    make_app: Callable[..., FetchdeckApp], config_path: Path,
) -> None:
    """[notify] urls is a comma list, a hook a command line (shlex): saved as TOML arrays, shown back the same."""
    config_path.write_text(FILE)
    app = make_app(MemoryClient())
    async with app.run_test(size=(110, 40)) as pilot:
        screen = await open_settings(app, pilot)
        assert screen.field("webhook_secret").password
        screen.field("notify_urls").value = "ntfy.sh/topic"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert "not an Apprise URL: 'ntfy.sh/topic'" in screen_text(app)
        screen.field("notify_urls").value = "ntfy://127.0.0.1:8080/dl, gotify://g.lan/TOKEN"
        screen.field("webhook_url").value = "https://hooks.lan/fetchdeck"
        screen.field("webhook_secret").value = "k3y"
        screen.field("hook_success").value = "/usr/bin/mv {file} '/media/My Films/'"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="saved and closed")
    config = load_config(config_path, environ={}, report=lambda _: None)
    assert config.notify.urls == ["ntfy://127.0.0.1:8080/dl", "gotify://g.lan/TOKEN"]
    assert (config.webhook.url, config.webhook.secret) == ("https://hooks.lan/fetchdeck", "k3y")
    assert config.hooks.on_success == ["/usr/bin/mv", "{file}", "/media/My Films/"]
    shown = {form.id: form.text(config) for form in FIELDS}  # what the form shows when opened again
    assert shown["notify_urls"] == "ntfy://127.0.0.1:8080/dl, gotify://g.lan/TOKEN"
    assert shown["hook_success"] == "/usr/bin/mv '{file}' '/media/My Films/'"
