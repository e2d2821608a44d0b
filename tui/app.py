"""The fetchdeck Textual app: wires a Client, the task index, themes, keys and screens.

The app never owns the engine or the API server: the launcher (tui/launch.py)
creates them, hands the app a Client and an optional EmbeddedApi, and closes
them after the app exits.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer

from core.config import Config, load_config, save_config
from core.models import TaskStatus
from tui.client import Client, ClientError, ConnectionState
from tui.screens.add import AddTaskScreen
from tui.screens.confirm import ConfirmDeleteScreen
from tui.screens.cookies import CookiesScreen
from tui.screens.main import MainScreen
from tui.screens.settings import SettingsSaved, SettingsScreen
from tui.state import TaskFilter, TaskIndex
from tui.sync import TaskSync
from tui.themes import DEFAULT_THEME, load_themes
from tui.widgets.filter_bar import FilterBar

log = logging.getLogger("fetchdeck.tui")


class EmbeddedApi(Protocol):
    """The HTTP API served in this process (see tui/launch.py)."""

    @property
    def address(self) -> str: ...

    @property
    def listeners(self) -> list[str]:
        """One line per running listener ('downie on http://127.0.0.1:8000')."""
        ...

    @property
    def problems(self) -> list[str]:
        """Listeners that could not start (a taken port), one line each; the others serve."""
        ...

    async def start(self) -> None:
        """Start serving; raise with a readable message when it cannot (e.g. a busy port)."""
        ...

    async def stop(self) -> None: ...


def binding_ids(*owners: type[Any]) -> set[str]:
    ids: set[str] = set()
    for owner in owners:
        for binding in getattr(owner, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


KEYMAP_IDS = binding_ids(MainScreen, AddTaskScreen, ConfirmDeleteScreen, SettingsScreen, FilterBar)
KEYMAP_IDS |= binding_ids(CookiesScreen)  # the cookies dialog (tui/screens/cookies.py)


class FetchdeckApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "fetchdeck"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (140, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+p", "command_palette", "Commands", id="commands", show=False),
    ]

    def __init__(
        self,
        client: Client,
        config: Config,
        *,
        config_path: Path | None = None,
        themes_dir: Path | None = None,
        api: EmbeddedApi | None = None,
        api_note: str = "",
        notices: tuple[str, ...] = (),
        open_folders: bool = False,
    ) -> None:
        super().__init__()
        self.client = client
        self.config = config
        self.config_path = config_path
        self.themes_dir = themes_dir
        self.api = api
        self.api_label = api_note
        self.open_folders = open_folders
        self.notices = notices
        self.folders: list[str] = []
        self.index = TaskIndex()
        self.sync = TaskSync(client, self.index, self._connection_changed, self._sync_error)
        self._theme_ready = False
        self._theme_save_timer: Timer | None = None

    # ---- start-up --------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    @property
    def main_screen(self) -> MainScreen | None:
        screen = self.screen_stack[0] if self.screen_stack else None
        return screen if isinstance(screen, MainScreen) else None

    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self._install_themes()
        self._install_keymap()
        self.run_sync()
        self.refresh_folders()
        if self.api is not None:
            self.start_api()
        for notice in self.notices:
            self.notify(notice, severity="warning", timeout=10, markup=False)

    def _install_themes(self) -> None:
        loaded = load_themes(self.themes_dir)
        for theme in loaded.themes.values():
            self.register_theme(theme)
        for name, reason in loaded.errors:
            self.notify(f"{name}: {reason}", title="Theme file ignored", severity="warning", timeout=8,
                        markup=False)
        wanted = self.config.ui.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.notify(f"No theme called “{wanted}”; using {DEFAULT_THEME}.", title="Theme",
                        severity="warning", timeout=8, markup=False)
            wanted = DEFAULT_THEME
        try:
            self.theme = wanted
        except Exception as exc:  # a theme Textual refuses at apply time
            self.notify(f"{wanted}: {exc}; using {DEFAULT_THEME}.", title="Theme", severity="error", markup=False)
            self.theme = DEFAULT_THEME
        self._theme_ready = True

    def _install_keymap(self) -> None:
        keys = dict(self.config.ui.keys)
        unknown = sorted(set(keys) - KEYMAP_IDS)
        for name in unknown:
            keys.pop(name)
        if unknown:
            self.notify(f"Unknown key id(s) in [ui] keys: {', '.join(unknown)}. Known: {', '.join(sorted(KEYMAP_IDS))}",
                        title="Keys", severity="warning", timeout=10, markup=False)
        if keys:
            self.set_keymap(keys)

    # ---- background work ---------------------------------------------------
    @work(exclusive=True, group="sync", exit_on_error=False)
    async def run_sync(self) -> None:
        await self.sync.run()

    @work(exclusive=True, group="folders", exit_on_error=False)
    async def refresh_folders(self) -> None:
        try:
            self.folders = await self.client.folders()
        except ClientError:
            pass

    @work(exclusive=True, group="api", exit_on_error=False)
    async def start_api(self) -> None:
        api = self.api
        if api is None:
            return
        try:
            await api.start()
        except Exception as exc:
            self.api_label = "API off"
            self.notify(str(exc) or exc.__class__.__name__, title="The HTTP API did not start",
                        severity="warning", timeout=10, markup=False)
            return
        self.api_label = f"API {api.address}"
        for problem in api.problems:
            self.notify(problem, title="A listener did not start", severity="warning", timeout=10, markup=False)
        if len(api.listeners) > 1:
            self.notify("\n".join(api.listeners), title="Listening", timeout=6, markup=False)

    def _connection_changed(self, state: ConnectionState, detail: str) -> None:
        if state == ConnectionState.DISCONNECTED:
            log.info("connection lost: %s", detail)
        screen = self.main_screen
        if screen is not None and screen.is_mounted:
            screen.show_status_line()

    def _sync_error(self, message: str) -> None:
        self.notify(message, title="Sync", severity="error", markup=False)

    async def call(self, request: Awaitable[object], what: str) -> bool:
        """Run a client request; a failure is a notification. True on success."""
        try:
            await request
        except ClientError as exc:
            self.notify(str(exc), title=f"Could not {what}", severity="error", markup=False)
            return False
        return True

    # ---- themes ----------------------------------------------------------
    def _theme_changed(self, theme: Theme) -> None:
        screen = self.main_screen
        if screen is not None and screen.is_mounted:
            screen.restyle()
        if self._theme_ready and theme.name != self.config.ui.theme:
            self.config = self.config.override("ui", theme=theme.name)
            if self.config_path is not None:
                # The theme picker previews as you move: write once things settle.
                if self._theme_save_timer is not None:
                    self._theme_save_timer.stop()
                self._theme_save_timer = self.set_timer(0.8, lambda: self.save_theme(self.config.ui.theme))

    @work(thread=True, exit_on_error=False, group="config-write", exclusive=True)
    def save_theme(self, name: str) -> None:
        assert self.config_path is not None
        current = load_config(self.config_path, environ={})
        save_config(self.config_path, current.override("ui", theme=name))

    # ---- cookies (tui/screens/cookies.py) ---------------------------------
    def action_cookies(self) -> None:
        self.push_screen(CookiesScreen(self.client.import_cookies))

    # ---- settings --------------------------------------------------------
    def action_settings(self) -> None:
        if self.config_path is None:
            self.notify("No config file in this session.", severity="warning")
            return
        names = sorted(self.available_themes)
        screen = SettingsScreen(self.config_path, names, self.theme, remote=self.client.is_remote)
        self.push_screen(screen, self._settings_saved)

    async def _settings_saved(self, saved: SettingsSaved | None) -> None:
        if saved is None:
            return
        new = saved.config
        self.config = self.config.model_copy(update={"download": new.download, "server": new.server,
                                                     "notify": new.notify, "webhook": new.webhook,
                                                     "hooks": new.hooks, "schedule": new.schedule,
                                                     "hosts": new.hosts}).override("ui", theme=new.ui.theme)
        if "theme" in saved.changed and new.ui.theme in self.available_themes:
            self.theme = new.ui.theme
        later = await self.client.apply_settings(self.config)
        later += [name for name in ("host", "port", "token") if name in saved.changed]
        message = "Settings saved."
        if later:
            message += f" Restart fetchdeck to apply: {', '.join(later)}."
        self.notify(message, title="Settings", timeout=6)

    # ---- misc ------------------------------------------------------------
    def open_path(self, folder: str) -> None:
        if self.open_folders and not self.client.is_remote and Path(folder).is_dir():
            self._open_in_file_manager(folder)

    @work(thread=True, exit_on_error=False, group="open-folder")
    def _open_in_file_manager(self, folder: str) -> None:
        if sys.platform == "darwin":
            command = ["open", folder]
        elif os.name == "nt":
            command = ["explorer", folder]
        else:
            command = ["xdg-open", folder]
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Settings", "Edit config.toml: download dir, limits, API, theme", self.action_settings)
        yield SystemCommand("Cookies", "Paste a cookies.txt into the cookie jar (C)", self.action_cookies)
        if not isinstance(screen, MainScreen):
            return
        yield SystemCommand("Add downloads", "Add one or more URLs (a)", screen.action_add)
        yield SystemCommand("Start", "Start or resume the selected task (s)", screen.action_start)
        yield SystemCommand("Stop", "Stop the selected task, resumable (x)", screen.action_stop)
        yield SystemCommand("Retry", "Retry the selected task (r)", screen.action_retry)
        yield SystemCommand("Delete", "Delete the selected task (d)", screen.action_delete)
        yield SystemCommand("Details", "Show or hide details and log (enter)", screen.action_details)
        yield SystemCommand("Filter", "Filter tasks by text and status (/)", screen.action_filter)
        yield SystemCommand("Open folder", "Show and copy the task's folder (o)", screen.action_open_folder)
        yield SystemCommand("Raise priority", "Low → normal → high (+)", functools.partial(screen.action_priority, 1))
        yield SystemCommand("Lower priority", "High → normal → low (-)", functools.partial(screen.action_priority, -1))
        for where, keys in (("top", "ctrl+home"), ("up", "K"), ("down", "J"), ("bottom", "ctrl+end")):
            yield SystemCommand(f"Move {where}", f"Reorder the queue ({keys})",
                                functools.partial(screen.action_move, where))
        yield SystemCommand("Clear filter", "Show every task", lambda: screen.set_filter(TaskFilter()))
        for status in TaskStatus:
            yield SystemCommand(f"Show {status.value} tasks", f"Filter: only {status.value}",
                                functools.partial(screen.show_status, status))
