"""The add dialog: URL(s), type (detected, can be overridden), name, folder, headers, start now.

Several URL lines make several tasks. Enter in the URL box adds (paste or
ctrl+j for more lines). Errors are shown under the field they concern, and
errors from the engine (bad folder, ...) under the form; the dialog stays open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

from core.detect import guess_kind
from core.errors import InvalidInput
from core.models import Task, TaskKind, TaskSpec, parse_header_lines
from core.validation import validate_url
from tui.client import ClientError

AUTO = "auto"
KIND_LABELS = {
    TaskKind.HTTP: "http: a direct file",
    TaskKind.HLS: "hls: an m3u8 stream",
    TaskKind.YTDLP: "ytdlp: a video page",
    TaskKind.DASH: "dash: an mpd manifest",
}


@dataclass(frozen=True, slots=True)
class AddRequest:
    specs: list[TaskSpec]
    start: bool


class UrlArea(TextArea):
    """A TextArea where Enter submits and ctrl+j starts a new line (paste keeps its lines)."""

    class Submit(Message):
        pass

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submit())
            return
        if event.key == "ctrl+j":
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)


def url_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def detected_label(urls: list[str]) -> str:
    """What auto-detection makes of these URLs: 'auto: http', 'auto: hls + http'."""
    kinds = {guess_kind(u) for u in urls}
    if not kinds:
        return "auto"
    return "auto: " + " + ".join(sorted(k.value for k in kinds))


class AddTaskScreen(ModalScreen[list[Task] | None]):
    """Returns the created tasks, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog-cancel"),
        Binding("ctrl+s", "submit", "Add", id="dialog-submit"),
    ]

    def __init__(
        self,
        submit: Callable[[AddRequest], Awaitable[list[Task]]],
        folders: list[str] | None = None,
        url: str = "",
    ) -> None:
        super().__init__()
        self._submit = submit
        self._folders = folders or []
        self._initial_url = url

    def compose(self) -> ComposeResult:
        with Vertical(id="add-dialog", classes="dialog") as dialog:
            dialog.border_title = "Add downloads"
            dialog.border_subtitle = "enter add · ctrl+j new line · esc cancel"
            yield UrlArea(self._initial_url, id="add-urls", compact=True, soft_wrap=False,
                          placeholder="https://… (one URL per line)")
            yield Static(id="add-urls-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Type", classes="field-label")
                options = [(label, kind.value) for kind, label in KIND_LABELS.items()]
                yield Select([("auto-detect", AUTO), *options], value=AUTO, allow_blank=False,
                             id="add-kind", compact=True)
                yield Label(id="add-detected")
            with Horizontal(classes="form-row"):
                yield Label("Name", classes="field-label")
                yield Input(placeholder="from the URL or the server", id="add-name", compact=True)
            yield Static(id="add-name-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("Folder", classes="field-label")
                yield Input(placeholder="the download dir", id="add-folder", compact=True,
                            suggester=SuggestFromList(self._folders, case_sensitive=False) if self._folders else None)
            with Horizontal(classes="form-row", id="add-headers-row"):
                yield Label("Headers", classes="field-label")
                yield TextArea(id="add-headers", compact=True, soft_wrap=False, placeholder="Name: value")
            yield Static(id="add-headers-error", classes="field-error")
            with Horizontal(id="add-footer"):
                yield Checkbox("Start now", value=True, id="add-start", compact=True)
                yield Static(id="add-error", classes="field-error")
                yield Button("Add", variant="primary", id="add-submit", compact=True)
                yield Button("Cancel", id="add-cancel", compact=True)

    # ---- typed accessors -------------------------------------------------
    @property
    def urls_area(self) -> UrlArea:
        return self.query_one("#add-urls", UrlArea)

    @property
    def kind_select(self) -> Select[str]:
        return self.query_one("#add-kind", Select)

    @property
    def name_input(self) -> Input:
        return self.query_one("#add-name", Input)

    @property
    def folder_input(self) -> Input:
        return self.query_one("#add-folder", Input)

    @property
    def headers_area(self) -> TextArea:
        return self.query_one("#add-headers", TextArea)

    @property
    def start_checkbox(self) -> Checkbox:
        return self.query_one("#add-start", Checkbox)

    def _error(self, which: str, text: str = "") -> None:
        widget = self.query_one(f"#{which}", Static)
        widget.update(text)
        widget.set_class(bool(text), "-visible")

    # ---- behaviour ---------------------------------------------------------
    def on_mount(self) -> None:
        self.urls_area.focus()
        self._refresh_detected()

    @on(TextArea.Changed, "#add-urls")
    def _urls_changed(self) -> None:
        self._error("add-urls-error")
        self._refresh_detected()

    @on(TextArea.Changed, "#add-headers")
    def _headers_changed(self) -> None:
        self._error("add-headers-error")

    @on(Input.Changed, "#add-name")
    def _name_changed(self) -> None:
        self._error("add-name-error")

    @on(Select.Changed, "#add-kind")
    def _refresh_detected(self) -> None:
        urls = url_lines(self.urls_area.text)
        text = detected_label(urls) if self.kind_select.value == AUTO and urls else ""
        self.query_one("#add-detected", Label).update(text.replace("auto: ", "detected: "))

    def validate(self) -> AddRequest | None:
        """Check every field; show what is wrong next to it; None if anything is."""
        ok = True
        urls = url_lines(self.urls_area.text)
        if not urls:
            self._error("add-urls-error", "Enter at least one URL.")
            ok = False
        else:
            problems = []
            for number, url in enumerate(urls, 1):
                try:
                    validate_url(url)
                except InvalidInput as exc:
                    where = f"line {number}: " if len(urls) > 1 else ""
                    problems.append(where + str(exc))
            if problems:
                self._error("add-urls-error", "\n".join(problems[:3]))
                ok = False
        name = self.name_input.value.strip()
        if name and len(urls) > 1:
            self._error("add-name-error", "A name works with a single URL only.")
            ok = False
        try:
            headers = parse_header_lines(self.headers_area.text)
        except InvalidInput as exc:
            self._error("add-headers-error", str(exc))
            headers = ()
            ok = False
        if not ok:
            return None
        choice = self.kind_select.value
        kind = TaskKind(choice) if isinstance(choice, str) and choice != AUTO else None
        folder = self.folder_input.value.strip() or None
        specs = [TaskSpec(url=url, kind=kind, name=name or None, folder=folder, headers=headers) for url in urls]
        return AddRequest(specs=specs, start=self.start_checkbox.value)

    @on(UrlArea.Submit)
    @on(Input.Submitted)
    @on(Button.Pressed, "#add-submit")
    def _submit_requested(self, event: Message) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        request = self.validate()
        if request is not None:
            self._send(request)

    @work(exclusive=True, group="add-submit")
    async def _send(self, request: AddRequest) -> None:
        button = self.query_one("#add-submit", Button)
        button.disabled = True
        self._error("add-error")
        try:
            tasks = await self._submit(request)
        except ClientError as exc:
            self._error("add-error", str(exc))
            return
        finally:
            button.disabled = False
        self.dismiss(tasks)

    @on(Button.Pressed, "#add-cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)
