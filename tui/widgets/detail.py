"""Everything about the selected task, including its error text when it failed and why it waits."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from core.models import Priority, Task, TaskStatus
from tui import format as fmt

_STATUS_COLORS = {
    TaskStatus.WAITING: "$text-muted",
    TaskStatus.DOWNLOADING: "$primary",
    TaskStatus.SUCCESS: "$success",
    TaskStatus.FAILED: "$error",
    TaskStatus.STOPPED: "$warning",
}


LABEL_WIDTH = 9


def detail_content(task: Task | None, folder: str, width: int = 0) -> Content:
    """The detail text; with a width, long one-line values are shortened in the middle (errors wrap)."""
    if task is None:
        return Content.from_markup("[$text-muted]No task selected. Press [b]a[/b] to add a download.[/]")
    rows: list[tuple[str, Content]] = []
    status = Content.from_markup(
        f"[{_STATUS_COLORS[task.status]}]$icon $label[/]",
        icon=fmt.STATUS_ICONS[task.status], label=fmt.STATUS_LABELS[task.status],
    )
    kind = task.kind.value + (" live" if task.is_live else "")
    status += Content.from_markup("[$text-muted] · $kind · added $added[/]", kind=kind,
                                  added=fmt.timestamp(task.created_at))
    rows.append(("Status", status))
    if task.node and task.status == TaskStatus.DOWNLOADING:
        rows.append(("Node", Content(task.node)))
    if task.error:
        rows.append(("Error", Content.from_markup("[$error]$e[/]", e=task.error)))
    # Why it is not moving: "retrying in 4 s: ..." (downloading), "scheduled: starts 18:00" (waiting)
    if task.note and task.status in (TaskStatus.DOWNLOADING, TaskStatus.WAITING):
        rows.append(("Waiting", Content.from_markup("[$warning]$n[/]", n=task.note)))
    if task.priority is not Priority.NORMAL or (task.note and task.status == TaskStatus.WAITING):
        # queue control (issue 14): its priority, and when it starts ("scheduled: starts 22:30")
        queue = [f"{task.priority.value} priority", task.note if task.status == TaskStatus.WAITING else None]
        rows.append(("Queue", Content(" · ".join(part for part in queue if part))))
    room = width - LABEL_WIDTH if width > LABEL_WIDTH + 8 else 10_000

    def one_line(text: str) -> Content:
        return Content(fmt.shorten(text, room))

    rows.append(("Name", one_line(task.name)))
    rows.append(("URL", one_line(task.url)))
    rows.append(("File" if task.file else "Folder", one_line(task.file or folder)))
    size = fmt.transferred(task) or "unknown"
    if task.total and task.status != TaskStatus.SUCCESS:
        size += f" ({fmt.percent(task)})"
    if task.segments_total:
        size += f" · {task.segments_done}/{task.segments_total} segments"
    rows.append(("Size", one_line(size)))
    if task.status == TaskStatus.DOWNLOADING:
        speed = fmt.speed(task.speed) or "starting"
        if task.eta is not None:
            speed += f" · {fmt.eta(task.eta)} left"
        rows.append(("Speed", Content(speed)))
    if task.headers:
        rows.append(("Headers", one_line(", ".join(k for k, _ in task.headers))))
    lines = [Content.from_markup("[$text-muted]$k[/]", k=f"{label:<{LABEL_WIDTH}}") + value for label, value in rows]
    return Content("\n").join(lines)


class TaskDetail(Static):
    """Key/value view of one task."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._last: Content | None = None
        self._shown: tuple[Task | None, str] = (None, "")

    def show(self, task: Task | None, folder: str) -> None:
        self._shown = (task.copy() if task else None, folder)
        content = detail_content(task, folder, self.content_region.width)
        if content != self._last:
            self._last = content
            self.update(content, layout=False)  # the pane's size is set by the CSS

    def on_resize(self) -> None:
        self.show(*self._shown)
