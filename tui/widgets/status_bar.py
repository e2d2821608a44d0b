"""The header line: task totals, overall speed, active filter, the schedule window in force, API address and
connection state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label

from tui import format as fmt
from tui.client import ConnectionState
from tui.state import TaskFilter, Totals


def totals_content(totals: Totals, flt: TaskFilter, compact: bool, schedule: str = "") -> Content:
    parts: list[Content] = [Content.from_markup("[b $primary]fetchdeck[/]")] if not compact else []
    parts.append(Content.from_markup("[$primary]↓ $n[/] active", n=str(totals.active)))
    parts.append(Content.from_markup("$n queued", n=str(totals.queued)))
    parts.append(Content.from_markup("[$success]✓ $n[/] done", n=str(totals.done)))
    if totals.failed:
        parts.append(Content.from_markup("[$error]✗ $n[/] failed", n=str(totals.failed)))
    if totals.stopped and not compact:
        parts.append(Content.from_markup("■ $n stopped", n=str(totals.stopped)))
    if totals.speed > 0:
        parts.append(Content.from_markup("[b]$speed[/]", speed=fmt.speed(totals.speed)))
    if flt.active:
        parts.append(Content.from_markup("[$accent]filter $f[/]", f=flt.describe()))
    if schedule:  # the bandwidth schedule's window in force (core/schedule.py)
        parts.append(Content.from_markup("[$warning]schedule: $s[/]", s=schedule))
    return Content("  ").join(parts)


def connection_content(state: ConnectionState, address: str, api: str) -> Content:
    if state == ConnectionState.LOCAL:
        return Content.from_markup("[$text-muted]$api[/]", api=api) if api else Content("")
    if state == ConnectionState.CONNECTED:
        return Content.from_markup("$addr [$success]● connected[/]", addr=address)
    if state == ConnectionState.CONNECTING:
        return Content.from_markup("$addr [$warning]◌ connecting…[/]", addr=address)
    return Content.from_markup("$addr [$error]✗ connection lost, retrying[/]", addr=address)


class StatusBar(Horizontal):
    """One line at the top of the main screen."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._last: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        yield Label(id="status-totals")
        yield Label(id="status-connection")

    @property
    def totals_label(self) -> Label:
        return self.query_one("#status-totals", Label)

    @property
    def connection_label(self) -> Label:
        return self.query_one("#status-connection", Label)

    def show(self, totals: Totals, flt: TaskFilter, state: ConnectionState, address: str, api: str,
             schedule: str = "") -> None:
        """schedule: the window in force, as ScheduleState.describe() says it ("paused until 18:00"); "" none."""
        compact = self.app.size.width < 100
        key = (totals, flt, state, address, api, compact, schedule)
        if key == self._last:
            return
        self._last = key
        self.totals_label.update(totals_content(totals, flt, compact, schedule), layout=False)  # width: 1fr
        connection = connection_content(state, address, api)
        label = self.connection_label
        label.update(connection, layout=connection.cell_length != label.content_size.width)
        self.set_class(state == ConnectionState.DISCONNECTED, "-disconnected")
