"""`fetchdeck get`'s progress bar on a terminal (rich): one line per task, bytes and speed or why it waits.

tui/get_command.py imports this module only when stderr is a terminal, so a `get` whose stderr is a
pipe or a file never loads rich's progress machinery.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Task as ProgressTask
from rich.text import Text


class TransferOrNote(ProgressColumn):
    """Bytes, speed and time left; or, while the download waits, why ("retrying in 4 s: ...")."""

    def __init__(self) -> None:
        super().__init__()
        self._parts = (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())

    def render(self, task: ProgressTask) -> Text:
        note = task.fields.get("note")
        if note:
            return Text(str(note), style="yellow")
        return Text(" ").join(part.render(task) for part in self._parts)


def progress_bar(console: Console) -> Progress:
    """The bar `get` shows on a terminal: name, bar, percent, then TransferOrNote."""
    columns = (
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=None),
        TextColumn("{task.percentage:>5.1f}%"),
        TransferOrNote(),
    )
    return Progress(*columns, console=console, transient=False, refresh_per_second=8)
