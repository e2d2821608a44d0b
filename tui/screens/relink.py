"""The relink dialog: a new URL for the selected task (an expired link), the current one prefilled.

The engine decides (core/relink.py): a direct download continues from its
bytes when the new URL serves the same file, else it is refused and the
reason is shown under the form (the dialog stays open); "start over"
restarts from the new URL instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from core.models import Task
from tui.client import ClientError


@dataclass(frozen=True, slots=True)
class RelinkRequest:
    url: str
    restart: bool


class RelinkScreen(ModalScreen[Task | None]):
    """Returns the relinked task, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog-cancel"),
        Binding("ctrl+s", "submit", "Relink", id="dialog-submit"),
    ]

    def __init__(self, task: Task, submit: Callable[[RelinkRequest], Awaitable[Task]]) -> None:
        super().__init__()
        self.task_shown = task
        self._submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(id="relink-dialog", classes="dialog") as dialog:
            dialog.border_title = "Relink"
            dialog.border_subtitle = "enter relink · esc cancel"
            yield Static(f"A new URL for “{self.task_shown.name}”; what is on disk is kept when it is the same file.",
                         id="relink-text", markup=False)
            with Horizontal(classes="form-row"):
                yield Label("URL", classes="field-label")
                yield Input(value=self.task_shown.url, id="relink-url", compact=True)
            yield Checkbox("Start over if it is not the same file", value=False, id="relink-restart", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Static(id="relink-error", classes="field-error")
                yield Button("Relink", variant="primary", id="relink-submit", compact=True)
                yield Button("Cancel", id="relink-cancel", compact=True)

    @property
    def url_input(self) -> Input:
        return self.query_one("#relink-url", Input)

    def on_mount(self) -> None:
        self.url_input.focus()

    def _error(self, text: str = "") -> None:
        widget = self.query_one("#relink-error", Static)
        widget.update(text)
        widget.set_class(bool(text), "-visible")

    @on(Input.Submitted, "#relink-url")
    @on(Button.Pressed, "#relink-submit")
    def action_submit(self) -> None:
        url = self.url_input.value.strip()
        if not url:
            self._error("Enter the new URL.")
            return
        self._send(RelinkRequest(url, self.query_one("#relink-restart", Checkbox).value))

    @work(exclusive=True, group="relink-submit")
    async def _send(self, request: RelinkRequest) -> None:
        button = self.query_one("#relink-submit", Button)
        button.disabled = True
        self._error()
        try:
            task = await self._submit(request)
        except ClientError as exc:
            self._error(str(exc))
            return
        finally:
            button.disabled = False
        self.dismiss(task)

    @on(Button.Pressed, "#relink-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
