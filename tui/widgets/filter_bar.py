"""The `/` filter: text (name or URL) and status, applied as you type."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, Select

from core.models import TaskStatus
from tui import format as fmt
from tui.state import TaskFilter

_ALL = "all"


class FilterBar(Horizontal):
    """Hidden until `/`; Escape clears it, Enter goes back to the table keeping it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", id="filter-clear"),
    ]

    class Changed(Message):
        def __init__(self, value: TaskFilter) -> None:
            super().__init__()
            self.value = value

    class Done(Message):
        """The user is done editing (Enter or Escape)."""

    def compose(self) -> ComposeResult:
        yield Label("Filter", classes="filter-label")
        yield Input(placeholder="name or URL…", id="filter-text", compact=True)
        yield Label("Status", classes="filter-label")
        options = [(f"{fmt.STATUS_ICONS[s]} {fmt.STATUS_LABELS[s]}", s.value) for s in TaskStatus]
        yield Select([("any", _ALL), *options], value=_ALL, allow_blank=False, id="filter-status", compact=True)

    @property
    def text_input(self) -> Input:
        return self.query_one("#filter-text", Input)

    @property
    def status_select(self) -> Select[str]:
        return self.query_one("#filter-status", Select)

    @property
    def value(self) -> TaskFilter:
        status = self.status_select.value
        return TaskFilter(
            text=self.text_input.value,
            status=TaskStatus(status) if isinstance(status, str) and status != _ALL else None,
        )

    def open(self) -> None:
        self.display = True
        self.text_input.focus()

    def set_status(self, status: TaskStatus | None) -> None:
        self.display = True
        self.status_select.value = status.value if status else _ALL

    @on(Input.Changed, "#filter-text")
    @on(Select.Changed, "#filter-status")
    def _changed(self, event: Message) -> None:
        event.stop()
        self.post_message(self.Changed(self.value))

    @on(Input.Submitted, "#filter-text")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value.active:
            self.display = False
        self.post_message(self.Done())

    def action_clear(self) -> None:
        self.text_input.value = ""
        self.status_select.value = _ALL
        self.display = False
        self.post_message(self.Changed(TaskFilter()))
        self.post_message(self.Done())
