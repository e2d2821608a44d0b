"""Set the selected task's own speed limit (on top of the global and per-host limits), while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from core.config import parse_size
from core.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class LimitChoice:
    rate: int | None  # bytes/s; None: no limit of its own


class SpeedLimitScreen(ModalScreen[LimitChoice | None]):
    """Returns the new limit, or None when cancelled. An empty field or 0 means no limit."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog-cancel"),
        Binding("ctrl+s", "save", "Set", id="dialog-submit"),
    ]

    def __init__(self, what: str, current: int | None) -> None:
        super().__init__()
        self.what = what
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="limit-dialog", classes="dialog") as dialog:
            dialog.border_title = "Speed limit"
            yield Static(f"Speed limit of {self.what}", id="limit-text", markup=False)
            with Horizontal(classes="form-row"):
                yield Label("Limit", classes="field-label")
                yield Input(value=str(self.current or ""), placeholder="none (e.g. 500K, 2M)", id="limit-value",
                            compact=True)
            yield Static(id="limit-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Set", variant="primary", id="limit-set", compact=True)
                yield Button("Cancel", id="limit-cancel", compact=True)

    @property
    def value_input(self) -> Input:
        return self.query_one("#limit-value", Input)

    def on_mount(self) -> None:
        self.value_input.focus()

    @on(Input.Submitted, "#limit-value")
    @on(Button.Pressed, "#limit-set")
    def action_save(self) -> None:
        try:
            rate = parse_size(self.value_input.value.strip())
        except InvalidInput as exc:
            error = self.query_one("#limit-error", Static)
            error.update(str(exc))
            error.set_class(True, "-visible")
            return
        self.dismiss(LimitChoice(rate))

    @on(Button.Pressed, "#limit-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
