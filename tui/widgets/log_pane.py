"""The log of the selected task, following it live."""

from __future__ import annotations

from textual.widgets import Log


class TaskLog(Log):
    """Shows one task's log; `follow` appends only the lines it has not shown yet."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=2000, highlight=False, auto_scroll=True)
        self.task_id: int | None = None
        self._shown: list[str] = []

    def show_task(self, task_id: int | None) -> None:
        if task_id != self.task_id:
            self.task_id = task_id
            self._shown = []
            self.clear()

    def follow(self, task_id: int, lines: list[str]) -> None:
        """Bring the pane up to date with the full log of `task_id`."""
        if task_id != self.task_id:
            return
        shown = self._shown
        if len(lines) >= len(shown) and lines[: len(shown)] == shown:
            new = lines[len(shown):]
        else:  # the log was trimmed or replaced: start over
            self.clear()
            new = lines
        if new:
            self.write_lines(new)
        self._shown = list(lines)
