"""Settings: edit config.toml (tomlkit keeps the file's comments and layout).

The form shows what the file says (not environment or command-line
overrides). Save validates every field inline, writes the file in a worker
thread, and returns the new file config for the app to apply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from core.config import Config, load_config, parse_size, save_config
from core.errors import InvalidInput
from core.validation import normalize_proxy

FIELDS: tuple[tuple[str, str, str], ...] = (
    # (widget id, label, placeholder)
    ("dir", "Download dir", "the platform Downloads/fetchdeck folder"),
    ("max_concurrent", "Downloads at once", "3"),
    ("connections", "Connections", "8 per HTTP download"),
    ("speed_limit", "Speed limit", "unlimited (e.g. 5M, 500K)"),
    ("proxy", "Proxy", "none (http://, https://, socks5://)"),
    ("host", "API host", "127.0.0.1"),
    ("port", "API port", "39719"),
    ("token", "API token", "none (required off loopback)"),
)


@dataclass(frozen=True, slots=True)
class SettingsSaved:
    config: Config  # what the file now says
    changed: frozenset[str]  # field ids whose value changed


def _int_in(value: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidInput(f"a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise InvalidInput(f"a whole number from {low} to {high}")
    return number


def _proxy(value: str) -> str:
    text = value.strip()
    if text:
        normalize_proxy(text)  # the engine's rule: raises InvalidInput
    return text


class SettingsScreen(ModalScreen[SettingsSaved | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog-cancel"),
        Binding("ctrl+s", "save", "Save", id="dialog-submit"),
    ]

    def __init__(self, config_path: Path, themes: list[str], theme: str, remote: bool) -> None:
        super().__init__()
        self.config_path = config_path
        self.themes = themes
        self.theme_name = theme
        self.remote = remote
        self.original = Config()

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-dialog", classes="dialog") as dialog:
            dialog.border_title = "Settings"
            dialog.border_subtitle = "ctrl+s save · esc cancel"
            with VerticalScroll(id="settings-form"):
                for field_id, label, placeholder in FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="field-label")
                        yield Input(placeholder=placeholder, id=f"set-{field_id}", compact=True,
                                    password=field_id == "token")
                        if field_id == "token":
                            yield Button("show", id="set-token-toggle", compact=True)
                    yield Static(id=f"set-{field_id}-error", classes="field-error")
                with Horizontal(classes="form-row"):
                    yield Label("Theme", classes="field-label")
                    yield Select([(name, name) for name in self.themes], value=self.theme_name,
                                 allow_blank=False, id="set-theme", compact=True)
            note = "Download and API settings here are this computer's; the remote fetchdeck keeps its own."
            yield Static(note if self.remote else f"File: {self.config_path}", id="settings-note", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Static(id="settings-error", classes="field-error")
                yield Button("Save", variant="primary", id="settings-save", compact=True)
                yield Button("Cancel", id="settings-cancel", compact=True)

    def field(self, field_id: str) -> Input:
        return self.query_one(f"#set-{field_id}", Input)

    @property
    def theme_select(self) -> Select[str]:
        return self.query_one("#set-theme", Select)

    def on_mount(self) -> None:
        self.load_file()

    @work(thread=True, exit_on_error=False, group="settings-io")
    def load_file(self) -> Config:
        return load_config(self.config_path, environ={})

    @work(thread=True, exit_on_error=False, group="settings-io")
    def write_file(self, config: Config) -> Config:
        save_config(self.config_path, config)
        return config

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name == "load_file":
            if event.state == WorkerState.SUCCESS and isinstance(worker.result, Config):
                self._fill(worker.result)
            elif event.state == WorkerState.ERROR:
                self._show_error("settings-error", f"Cannot read the config: {worker.error}")
        elif worker.name == "write_file":
            if event.state == WorkerState.SUCCESS and isinstance(worker.result, Config):
                self.dismiss(SettingsSaved(worker.result, self._changed(worker.result)))
            elif event.state == WorkerState.ERROR:
                self._show_error("settings-error", f"Cannot save: {worker.error}")

    def _fill(self, config: Config) -> None:
        self.original = config
        d, s = config.download, config.server
        values = {
            "dir": d.dir, "max_concurrent": str(d.max_concurrent), "connections": str(d.connections),
            "speed_limit": d.speed_limit, "proxy": d.proxy, "host": s.host, "port": str(s.port), "token": s.token,
        }
        for field_id, value in values.items():
            self.field(field_id).value = value
        self.field("dir").focus()

    def _show_error(self, widget_id: str, text: str) -> None:
        widget = self.query_one(f"#{widget_id}", Static)
        widget.update(text)
        widget.set_class(bool(text), "-visible")

    @on(Input.Changed)
    def _clear_error(self, event: Input.Changed) -> None:
        if event.input.id:
            self._show_error(f"{event.input.id}-error", "")

    @on(Button.Pressed, "#set-token-toggle")
    def _toggle_token(self, event: Button.Pressed) -> None:
        token = self.field("token")
        token.password = not token.password
        event.button.label = "show" if token.password else "hide"

    def collect(self) -> Config | None:
        """The form as a Config, or None after showing the errors inline."""
        errors: dict[str, str] = {}
        values: dict[str, object] = {}
        checks = {
            "max_concurrent": lambda v: _int_in(v, 1, 64),
            "connections": lambda v: _int_in(v, 1, 64),
            "port": lambda v: _int_in(v, 1, 65535),
            "speed_limit": lambda v: (parse_size(v.strip()), v.strip())[1],
            "proxy": _proxy,
            "host": lambda v: v.strip() or "127.0.0.1",
        }
        for field_id, _, _ in FIELDS:
            raw = self.field(field_id).value
            check = checks.get(field_id)
            try:
                values[field_id] = check(raw) if check else raw.strip()
            except InvalidInput as exc:
                errors[field_id] = str(exc)
        for field_id, message in errors.items():
            self._show_error(f"set-{field_id}-error", message)
        if errors:
            return None
        o = self.original
        theme = self.theme_select.value
        return replace(
            o,
            download=replace(o.download, dir=str(values["dir"]), max_concurrent=int(str(values["max_concurrent"])),
                             connections=int(str(values["connections"])), speed_limit=str(values["speed_limit"]),
                             proxy=str(values["proxy"])),
            server=replace(o.server, host=str(values["host"]), port=int(str(values["port"])),
                           token=str(values["token"])),
            ui=replace(o.ui, theme=theme if isinstance(theme, str) else o.ui.theme),
        )

    def _changed(self, new: Config) -> frozenset[str]:
        o = self.original
        pairs = {
            "dir": (o.download.dir, new.download.dir),
            "max_concurrent": (o.download.max_concurrent, new.download.max_concurrent),
            "connections": (o.download.connections, new.download.connections),
            "speed_limit": (o.download.speed_limit, new.download.speed_limit),
            "proxy": (o.download.proxy, new.download.proxy),
            "host": (o.server.host, new.server.host),
            "port": (o.server.port, new.server.port),
            "token": (o.server.token, new.server.token),
            "theme": (o.ui.theme, new.ui.theme),
        }
        return frozenset(k for k, (a, b) in pairs.items() if a != b)

    @on(Button.Pressed, "#settings-save")
    def _save_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        config = self.collect()
        if config is not None:
            self.write_file(config)

    @on(Button.Pressed, "#settings-cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)
