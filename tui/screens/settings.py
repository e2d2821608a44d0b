"""Settings: edit config.toml (tomlkit keeps the file's comments, layout and unknown keys); the [[schedule]]
windows and [hosts."NAME"] tables are edited as one line each (their text forms: core/schedule.py, core/config.py).

The form shows what the file says (not environment or command-line
overrides). Save checks every field inline against the setting's own
declaration in core/config.py (its type, range and message: nothing is
re-declared here), writes the file in a worker thread, and returns the new
file config for the app to apply.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from core.config import (
    SECTIONS,
    BadValue,
    Config,
    check_value,
    format_hosts,
    load_config,
    parse_hosts,
    save_config,
)
from core.errors import InvalidInput
from core.schedule import format_windows, parse_windows


@dataclass(frozen=True, slots=True)
class FormField:
    """One row of the form: the widget id, the setting it edits (section.key), its label, and its
    placeholder ("{default}" in it is the setting's declared default)."""

    id: str
    section: str
    key: str
    label: str
    placeholder: str
    secret: bool = False  # typed like a password
    argv: bool = False  # a command line: shown joined with shlex (a list setting is otherwise a comma list)

    def read(self, config: Config) -> Any:
        return getattr(getattr(config, self.section), self.key)

    def text(self, config: Config) -> str:
        """The setting as the form shows it (what check_value reads back)."""
        value = self.read(config)
        if isinstance(value, list):
            return shlex.join(value) if self.argv else ", ".join(value)
        return shown(value)

    @property
    def default(self) -> Any:
        return SECTIONS[self.section].model_fields[self.key].get_default(call_default_factory=True)

    @property
    def hint(self) -> str:
        return self.placeholder.replace("{default}", shown(self.default))


def shown(value: Any) -> str:
    """A scalar setting as config.toml writes it: a bool as `true`/`false` (typed back, core/config.py's Bool
    also takes yes/no and on/off, and says "must be true or false" otherwise)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FIELDS: tuple[FormField, ...] = (
    FormField("dir", "download", "dir", "Download dir", "the platform Downloads/fetchdeck folder"),
    FormField("max_concurrent", "download", "max_concurrent", "Downloads at once", "{default}"),
    FormField("connections", "download", "connections", "Connections", "{default} per HTTP download"),
    FormField("speed_limit", "download", "speed_limit", "Speed limit", "unlimited (e.g. 5M, 500K)"),
    FormField("proxy", "download", "proxy", "Proxy", "none (http://, https://, socks5://)"),
    FormField("host", "server", "host", "API host", "{default}"),
    FormField("port", "server", "port", "API port", "{default}"),
    FormField("token", "server", "token", "API token", "none (required off loopback)"),
    # Events out (core/notify/)
    FormField("notify_urls", "notify", "urls", "Notify URLs", "none (Apprise URLs, comma separated)"),
    FormField("webhook_url", "webhook", "url", "Webhook URL", "none (signed JSON POST per finished task)"),
    FormField("webhook_secret", "webhook", "secret", "Webhook secret", "none (unsigned)", secret=True),
    FormField("hook_success", "hooks", "on_success", "On success run", "nothing (e.g. notify-send done {file})",
              argv=True),
    FormField("hook_failure", "hooks", "on_failure", "On failure run", "nothing", argv=True),
    # Cookie jars (core/cookies.py)
    FormField("cookies_dir", "cookies", "dir", "Cookie jar dir", "<data dir>/cookies"),
    # Expired links (core/downloaders/refresh.py)
    FormField("relink_refreshes", "relink", "refreshes", "Link refreshes",
              "{default} per task per window (expired links; 0: none)"),
    # Checksums and disk safety (core/integrity.py)
    FormField("min_free", "integrity", "min_free", "Disk reserve", "none: free space kept (e.g. 100M)"),
    # per-host back-off (core/policy.py): seconds without a 429/503 before a host gets more connections again
    FormField("quiet_seconds", "policy", "quiet_seconds", "Back-off quiet", "{default} s without a 429/503"),
    # downloads from the browser (server/files.py): how long a signed link to a finished file stays valid
    FormField("file_link_ttl", "files", "link_ttl", "File link time", "{default} s a download link stays valid"),
    # the aria2 JSON-RPC dialect (server/routes/aria2rpc.py): may RPC clients stop the server?
    FormField("aria2_shutdown", "aria2_rpc", "allow_shutdown", "aria2 shutdown", "{default} (true: RPC may stop it)"),
    # the web page (server/web.py)
    FormField("web_enable", "web", "enable", "Web page", "{default} (the page at /ui/; false: API only)"),
)
BLANK_IS_DEFAULT = frozenset({"host"})  # an emptied field that means "the setting's default"


# The tables edited as one line each (the text form's owners: core/schedule.py for [[schedule]], core/config.py
# for [hosts."NAME"]): widget id, label, placeholder.
TABLE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("schedule", "Schedule", "none (e.g. mon-fri 08:00-18:00 2M/s; sat,sun 22:00-06:00 paused, cap 10G)"),
    ("hosts", "Per-host caps", "none (e.g. example.com connections=4 tasks=2 speed=1M; * connections=16)"),
)


def table_text(field_id: str, config: Config) -> str:
    """A table field as the form shows it (what `read_tables` reads back)."""
    if field_id == "schedule":
        return format_windows(config.schedule.windows)
    return format_hosts(config.hosts.limits)


def read_tables(config: Config, texts: dict[str, str]) -> tuple[Config, dict[str, str]]:
    """`config` with the table fields' texts as its [[schedule]] windows and [hosts."NAME"] tables, and the
    errors by field id (the text form's own message, or the config's for a bad size)."""
    errors: dict[str, str] = {}
    try:
        windows = check_value("schedule", "windows", [w.table() for w in parse_windows(texts["schedule"])])
        config = config.override("schedule", windows=windows)
    except BadValue as exc:
        errors["schedule"] = exc.rule
    except InvalidInput as exc:
        errors["schedule"] = str(exc)
    try:
        config = config.override("hosts", limits=parse_hosts(texts["hosts"]))
    except InvalidInput as exc:
        errors["hosts"] = exc.rule if isinstance(exc, BadValue) else str(exc)
    return config, errors


@dataclass(frozen=True, slots=True)
class SettingsSaved:
    config: Config  # what the file now says
    changed: frozenset[str]  # field ids whose value changed


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
        self.file_warnings: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-dialog", classes="dialog") as dialog:
            dialog.border_title = "Settings"
            dialog.border_subtitle = "ctrl+s save · esc cancel"
            with VerticalScroll(id="settings-form"):
                for form in FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(form.label, classes="field-label")
                        yield Input(placeholder=form.hint, id=f"set-{form.id}", compact=True,
                                    password=form.id == "token" or form.secret)
                        if form.id == "token":
                            yield Button("show", id="set-token-toggle", compact=True)
                    yield Static(id=f"set-{form.id}-error", classes="field-error")
                with Horizontal(classes="form-row"):
                    yield Label("Theme", classes="field-label")
                    yield Select([(name, name) for name in self.themes], value=self.theme_name,
                                 allow_blank=False, id="set-theme", compact=True)
                # The bandwidth schedule ([[schedule]]) and the per-host caps ([hosts."NAME"]), one line each.
                for field_id, label, hint in TABLE_FIELDS:
                    with Horizontal(classes="form-row"):
                        yield Label(label, classes="field-label")
                        yield Input(placeholder=hint, id=f"set-{field_id}", compact=True)
                    yield Static(id=f"set-{field_id}-error", classes="field-error")
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
        self.file_warnings = []  # unknown keys: shown, and kept in the file on save
        return load_config(self.config_path, environ={}, report=self.file_warnings.append)

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
        for form in FIELDS:
            self.field(form.id).value = form.text(config)
        for field_id, _label, _hint in TABLE_FIELDS:
            self.field(field_id).value = table_text(field_id, config)
        if self.file_warnings:
            self._show_error("settings-error", "; ".join(w.split(": ", 1)[-1] for w in self.file_warnings))
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
        """The form as a Config, or None after showing the errors inline (each setting's own message)."""
        errors: dict[str, str] = {}
        values: dict[str, dict[str, Any]] = {}
        for form in FIELDS:
            raw = self.field(form.id).value.strip()
            if not raw and form.id in BLANK_IS_DEFAULT:
                raw = form.default
            try:
                values.setdefault(form.section, {})[form.key] = check_value(form.section, form.key, raw)
            except BadValue as exc:
                errors[form.id] = exc.rule
        config, table_errors = read_tables(self.original, {f: self.field(f).value for f, _l, _h in TABLE_FIELDS})
        errors |= table_errors
        for field_id, message in errors.items():
            self._show_error(f"set-{field_id}-error", message)
        if errors:
            return None
        for section, changes in values.items():
            config = config.override(section, **changes)
        theme = self.theme_select.value
        return config.override("ui", theme=theme if isinstance(theme, str) else None)

    def _changed(self, new: Config) -> frozenset[str]:
        changed = {form.id for form in FIELDS if form.read(self.original) != form.read(new)}
        if self.original.ui.theme != new.ui.theme:
            changed.add("theme")
        changed |= {f for f, _l, _h in TABLE_FIELDS if getattr(self.original, f) != getattr(new, f)}
        return frozenset(changed)

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
