"""What the task table shows in each cell: column layouts, theme styles, cell values.

A row's *signature* is a tuple of cheap plain values, one per column; comparing
signatures tells which cells changed without building any Rich objects. Cells
that repeat (statuses, progress bars) are built once and shared by every row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.theme import Theme

from core.models import Priority, Task, TaskStatus
from tui import format as fmt

Cell = Text | str
Signature = tuple[object, ...]
# queue control (issue 14): a task's priority as a mark before its name (normal: none)
PRIORITY_MARKS = {Priority.HIGH: "▲ ", Priority.NORMAL: "", Priority.LOW: "▼ "}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    key: str
    label: str
    width: int  # 0 = the stretching name column
    right: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    columns: tuple[ColumnSpec, ...]
    bar_width: int
    size_mode: str  # "total" or "transferred"

    @property
    def fixed_width(self) -> int:
        return sum(c.width + 2 for c in self.columns)  # 2 = cell padding


_NAME = ColumnSpec("name", "Name", 0)
LAYOUTS = (
    Layout(
        "narrow",
        (_NAME, ColumnSpec("status", "Status", 9), ColumnSpec("progress", "Progress", 11),
         ColumnSpec("size", "Size", 8, True), ColumnSpec("speed", "Speed", 10, True),
         ColumnSpec("eta", "ETA", 6, True)),
        bar_width=6, size_mode="total",
    ),
    Layout(
        "medium",
        (_NAME, ColumnSpec("type", "Type", 5), ColumnSpec("status", "Status", 9),
         ColumnSpec("progress", "Progress", 14), ColumnSpec("size", "Size", 8, True),
         ColumnSpec("speed", "Speed", 10, True), ColumnSpec("eta", "ETA", 6, True),
         ColumnSpec("added", "Added", 11)),
        bar_width=9, size_mode="total",
    ),
    Layout(
        "wide",
        (_NAME, ColumnSpec("type", "Type", 5), ColumnSpec("status", "Status", 9),
         ColumnSpec("progress", "Progress", 18), ColumnSpec("size", "Size", 19, True),
         ColumnSpec("speed", "Speed", 10, True), ColumnSpec("eta", "ETA", 6, True),
         ColumnSpec("added", "Added", 11)),
        bar_width=13, size_mode="transferred",
    ),
)
MEDIUM_FROM = 100
WIDE_FROM = 140


def layout_for(width: int) -> Layout:
    if width >= WIDE_FROM:
        return LAYOUTS[2]
    if width >= MEDIUM_FROM:
        return LAYOUTS[1]
    return LAYOUTS[0]


@dataclass(frozen=True, slots=True)
class Palette:
    """Rich styles for cells, derived from the current Textual theme."""

    status: dict[TaskStatus, Style]
    bar_done: Style
    bar_failed: Style
    bar_empty: Style
    dim: Style

    @classmethod
    def from_theme(cls, theme: Theme | None) -> Palette:
        primary = (theme.primary if theme else None) or "#38bdf8"
        success = (theme.success if theme else None) or "green"
        error = (theme.error if theme else None) or "red"
        warning = (theme.warning if theme else None) or "yellow"
        dark = theme.dark if theme else True
        muted = "#6b7280" if dark else "#8a94a6"
        empty = "#3a4150" if dark else "#d3d8e0"
        return cls(
            status={
                TaskStatus.WAITING: Style(color=muted),
                TaskStatus.DOWNLOADING: Style(color=primary, bold=True),
                TaskStatus.SUCCESS: Style(color=success),
                TaskStatus.FAILED: Style(color=error, bold=True),
                TaskStatus.STOPPED: Style(color=warning),
            },
            bar_done=Style(color=primary),
            bar_failed=Style(color=error),
            bar_empty=Style(color=empty),
            dim=Style(color=muted),
        )


@dataclass(slots=True)
class CellMaker:
    """Signatures and cells for one layout and palette."""

    layout: Layout
    palette: Palette
    _status_cells: dict[TaskStatus, Text] = field(default_factory=dict)
    _progress_cells: dict[tuple[int, str, str], Text] = field(default_factory=dict)
    _getters: list[Callable[[Task], object]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.layout.columns]

    def __post_init__(self) -> None:
        self._getters = [self._getter(column.key) for column in self.layout.columns]

    def _getter(self, key: str) -> Callable[[Task], object]:
        """The function giving a column's signature value (plain values, cheap to compare)."""
        downloading = TaskStatus.DOWNLOADING
        if key == "name":
            marks = PRIORITY_MARKS
            return lambda t: marks[t.priority] + (t.name or t.url)
        if key == "type":
            return lambda t: t.kind
        if key == "status":
            return lambda t: t.status
        if key == "progress":
            width = self.layout.bar_width
            failed = TaskStatus.FAILED

            def progress(t: Task) -> object:
                mode = "failed" if t.status == failed else "active" if t.status == downloading else "idle"
                return (fmt.bar_halves(fmt.fraction(t), width), fmt.percent(t), mode)

            return progress
        if key == "size":
            if self.layout.size_mode == "transferred":
                return fmt.transferred
            return lambda t: fmt.size(t.total or t.downloaded) if t.total or t.downloaded else ""
        if key == "speed":
            # A task waiting to retry moves no bytes: say so (the detail pane has the reason); a queued task
            # with a note is held back by the bandwidth schedule ("scheduled: starts 18:00" in the detail pane).
            waiting = TaskStatus.WAITING
            return lambda t: (("retrying" if t.note else fmt.speed(t.speed)) if t.status == downloading
                              else "scheduled" if t.status == waiting and t.note else "")
        if key == "eta":
            return lambda t: fmt.eta(t.eta) if t.status == downloading else ""
        if key == "added":
            return lambda t: t.created_at
        raise ValueError(f"unknown column {key!r}")

    def signature(self, task: Task) -> Signature:
        """Plain values that decide each cell (cheap to compute and compare)."""
        return tuple([get(task) for get in self._getters])

    def render(self, index: int, value: object) -> Cell:
        """The cell for column `index` from its signature value."""
        column = self.layout.columns[index]
        key = column.key
        if key == "name":
            return Text(str(value), no_wrap=True, overflow="ellipsis", end="")
        if key == "status":
            assert isinstance(value, TaskStatus)
            return self._status(value)
        if key == "progress":
            assert isinstance(value, tuple)
            return self._progress(*value)
        if key == "type":
            return str(getattr(value, "value", value))
        if key == "added":
            return fmt.timestamp(value if isinstance(value, float | int) else None)
        return str(value).rjust(column.width)  # size, speed, eta: already text

    def row(self, signature: Signature) -> list[Cell]:
        return [self.render(i, value) for i, value in enumerate(signature)]

    def _status(self, status: TaskStatus) -> Text:
        cell = self._status_cells.get(status)
        if cell is None:
            label = f"{fmt.STATUS_ICONS[status]} {fmt.STATUS_LABELS[status]}"
            cell = self._status_cells[status] = Text(label, style=self.palette.status[status], no_wrap=True, end="")
        return cell

    def _progress(self, halves: int, percent: str, mode: str) -> Text:
        key = (halves, percent, mode)
        cell = self._progress_cells.get(key)
        if cell is None:
            palette = self.palette
            filled, empty = fmt.bar(halves, self.layout.bar_width)
            cell = Text(no_wrap=True, end="")
            cell.append(filled, palette.bar_failed if mode == "failed" else palette.bar_done)
            cell.append(empty, palette.bar_empty)
            cell.append(f" {percent:>4}", "" if mode == "active" else palette.dim)
            self._progress_cells[key] = cell
        return cell
