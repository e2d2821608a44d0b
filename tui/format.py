"""Plain-text formatting for the TUI: sizes, speeds, ETAs, dates, progress bars.

Every function returns a string of a known maximum width so table columns can
have fixed widths and never need re-measuring.
"""

from __future__ import annotations

import time

from core.models import Task, TaskStatus

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")

STATUS_LABELS: dict[TaskStatus, str] = {
    TaskStatus.WAITING: "queued",
    TaskStatus.DOWNLOADING: "active",
    TaskStatus.SUCCESS: "done",
    TaskStatus.FAILED: "failed",
    TaskStatus.STOPPED: "stopped",
}
STATUS_ICONS: dict[TaskStatus, str] = {
    TaskStatus.WAITING: "…",
    TaskStatus.DOWNLOADING: "↓",
    TaskStatus.SUCCESS: "✓",
    TaskStatus.FAILED: "✗",
    TaskStatus.STOPPED: "■",
}

BAR_FILLED = "━"
BAR_HALF = "╸"
BAR_EMPTY = "━"


def size(value: int | float | None) -> str:
    """1536 → '1.5 KB'; None → '-'. At most 8 characters."""
    if value is None or value < 0:
        return "-"
    amount = float(value)
    for unit in _UNITS:
        if amount < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(amount)} B"
            return f"{amount:.1f} {unit}" if amount < 100 else f"{amount:.0f} {unit}"
        amount /= 1024
    return "-"  # pragma: no cover


def speed(value: float | None) -> str:
    """Bytes per second → '1.5 MB/s'; 0/None → ''. At most 10 characters."""
    if not value or value <= 0:
        return ""
    return f"{size(value)}/s"


def eta(seconds: float | None) -> str:
    """Seconds → '42s', '3m05s', '2h07m', '3d04h'; None → ''. At most 6 characters."""
    if seconds is None or seconds < 0:
        return ""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    days = s // 86400
    return f"{days}d{(s % 86400) // 3600:02d}h" if days < 100 else "99d+"


def timestamp(ts: float | None, long: bool = False) -> str:
    """Local time: 'MM-DD HH:MM' (11 chars) or 'YYYY-MM-DD HH:MM:SS' when long."""
    if not ts:
        return ""
    local = time.localtime(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S" if long else "%m-%d %H:%M", local)


def bar_halves(fraction: float | None, width: int) -> int:
    """How many half cells of a `width`-cell bar are filled (-1: unknown total)."""
    return -1 if fraction is None else int(min(1.0, max(0.0, fraction)) * width * 2)


def bar(halves: int, width: int) -> tuple[str, str]:
    """A text progress bar as (filled, empty) parts, `width` cells in total.

    Heavy lines as Rich draws them, with half-cell steps; the caller colors the
    two parts differently.
    """
    full, half = divmod(max(halves, 0), 2)
    full = min(full, width)
    filled = BAR_FILLED * full + (BAR_HALF if half and full < width else "")
    return filled, BAR_EMPTY * (width - len(filled))


def percent(task: Task) -> str:
    if task.status == TaskStatus.SUCCESS:
        return "100%"
    if not task.total:
        return "" if not task.downloaded else "?"
    return f"{int(task.percent)}%"


def fraction(task: Task) -> float | None:
    if task.status == TaskStatus.SUCCESS:
        return 1.0
    if not task.total:
        return None
    return min(1.0, task.downloaded / task.total)


def transferred(task: Task) -> str:
    """'12.0 MB / 40.0 MB', or just the total when finished."""
    if task.status == TaskStatus.SUCCESS or (task.total and task.downloaded >= task.total):
        return size(task.total or task.downloaded)
    if task.total:
        return f"{size(task.downloaded)} / {size(task.total)}"
    return size(task.downloaded) if task.downloaded else ""


def shorten(text: str, width: int) -> str:
    """Cut `text` to `width` cells with an ellipsis in the middle (keeps file extensions)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) * 2 // 3
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")
