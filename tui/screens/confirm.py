"""Confirm deleting task(s), optionally with their downloaded files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static


@dataclass(frozen=True, slots=True)
class DeleteChoice:
    files: bool


class ConfirmDeleteScreen(ModalScreen[DeleteChoice | None]):
    """Returns DeleteChoice when confirmed, None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel", id="dialog-cancel"),
        Binding("y", "confirm", "Delete", id="dialog-confirm"),
    ]

    def __init__(self, what: str, has_files: bool) -> None:
        super().__init__()
        self.what = what
        self.has_files = has_files

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog") as dialog:
            dialog.border_title = "Delete"
            yield Static(f"Delete {self.what}?", id="confirm-text", markup=False)
            yield Checkbox("Also delete the downloaded files", value=False, id="confirm-files",
                           disabled=not self.has_files, compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Delete", variant="error", id="confirm-yes", compact=True)
                yield Button("Cancel", id="confirm-no", compact=True)

    @property
    def files_checkbox(self) -> Checkbox:
        return self.query_one("#confirm-files", Checkbox)

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed, "#confirm-yes")
    def action_confirm(self) -> None:
        self.dismiss(DeleteChoice(files=self.files_checkbox.value))

    @on(Button.Pressed, "#confirm-no")
    def action_cancel(self) -> None:
        self.dismiss(None)
