"""The main screen: status line, filter, task table, detail + log, footer.

Engine events only touch the TaskIndex; a 4 Hz timer takes the accumulated
changes and applies them inside `batch_update()` (so a frame is one repaint),
touching only cells that changed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.models import ACTIVE_STATUSES, Priority, Task, TaskStatus
from core.queue import QueueMove
from core.schedule import format_rate
from tui.client import ClientError
from tui.screens.add import AddRequest, AddTaskScreen
from tui.screens.confirm import ConfirmDeleteScreen, DeleteChoice
from tui.screens.relink import RelinkRequest, RelinkScreen
from tui.state import Changes, TaskFilter
from tui.widgets.cells import Palette
from tui.widgets.detail import TaskDetail
from tui.widgets.filter_bar import FilterBar
from tui.widgets.log_pane import TaskLog
from tui.widgets.status_bar import StatusBar
from tui.widgets.task_table import TaskTable

if TYPE_CHECKING:
    from tui.app import FetchdeckApp

log = logging.getLogger("fetchdeck.tui")

FRAME_INTERVAL = 0.25  # 4 Hz
LOG_POLL_INTERVAL = 1.0
MAX_FAILURE_NOTES = 3


class FrameStats:
    """How long applying each frame took (for the benchmark and the debug log)."""

    def __init__(self, keep: int = 10_000) -> None:
        self.durations: deque[float] = deque(maxlen=keep)
        self.cells = 0

    def record(self, seconds: float) -> None:
        self.durations.append(seconds)


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add", id="add", tooltip="Add downloads"),
        Binding("s", "start", "Start", id="start", tooltip="Start (or resume) the selected task"),
        Binding("x", "stop", "Stop", id="stop", tooltip="Stop the selected task (resumable)"),
        Binding("r", "retry", "Retry", id="retry", tooltip="Retry a failed task, or download a finished one again"),
        Binding("d,delete", "delete", "Delete", id="delete", tooltip="Delete the selected task"),
        Binding("enter", "details", "Details", id="details", tooltip="Show or hide the details and log"),
        Binding("slash", "filter", "Filter", id="filter", key_display="/", tooltip="Filter by text and status"),
        Binding("o", "open_folder", "Folder", id="open-folder", tooltip="Show and copy the task's folder"),
        Binding("l", "relink", "Relink", id="relink", show=False,
                tooltip="Give the selected task a new URL (an expired link); it continues when it is the same file"),
        Binding("b", "limit", "Limit", id="limit", show=False, tooltip="Set the selected task's speed limit"),
        Binding("B", "host_limit", "Host limit", id="host-limit", show=False,
                tooltip="Set the speed limit of the selected task's host (all its tasks)"),
        Binding("t", "app.change_theme", "Theme", id="theme", tooltip="Choose a theme"),
        Binding("comma", "app.settings", "Settings", id="settings", key_display=",", show=False),
        Binding("C", "app.cookies", "Cookies", id="cookies", show=False, tooltip="Paste a cookies.txt"),
        Binding("q", "app.quit", "Quit", id="quit", tooltip="Quit (downloads resume next time)"),
        Binding("escape", "collapse", "Back", id="collapse", show=False),
        # queue control (issue 14): priority and order of the waiting tasks
        Binding("plus", "priority(1)", "Priority+", id="priority-up", key_display="+", show=False,
                tooltip="Raise the selected task's priority (low → normal → high)"),
        Binding("minus", "priority(-1)", "Priority-", id="priority-down", key_display="-", show=False,
                tooltip="Lower the selected task's priority (high → normal → low)"),
        Binding("K,ctrl+up", "move('up')", "Move up", id="move-up", show=False,
                tooltip="Move the selected task one place up in the queue"),
        Binding("J,ctrl+down", "move('down')", "Move down", id="move-down", show=False,
                tooltip="Move the selected task one place down in the queue"),
        Binding("ctrl+home", "move('top')", "Move to top", id="move-top", show=False,
                tooltip="Move the selected task to the top of its priority's queue"),
        Binding("ctrl+end", "move('bottom')", "Move to bottom", id="move-bottom", show=False,
                tooltip="Move the selected task to the bottom of the queue"),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")
        self.frame_stats = FrameStats()
        self._log_task: int | None = None
        self._log_stale = True
        self._frame_error_shown = False
        self._hint: str | None = None

    @property
    def fetchdeck(self) -> FetchdeckApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status-bar")
        yield FilterBar(id="filter-bar")
        with Vertical(id="table-area"):
            yield TaskTable(id="task-table")
            yield Static(id="empty-hint")
        with Horizontal(id="inspector"):
            yield TaskDetail(id="task-detail")
            yield TaskLog(id="task-log")
        yield Footer(compact=True)

    # ---- typed accessors -------------------------------------------------
    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def filter_bar(self) -> FilterBar:
        return self.query_one(FilterBar)

    @property
    def detail(self) -> TaskDetail:
        return self.query_one(TaskDetail)

    @property
    def task_log(self) -> TaskLog:
        return self.query_one(TaskLog)

    @property
    def selected(self) -> Task | None:
        return self.fetchdeck.index.get(self.table.selected_id)

    # ---- frames ----------------------------------------------------------
    def on_mount(self) -> None:
        self.filter_bar.display = False
        self.query_one("#task-detail").border_title = "Details"
        self.query_one("#task-log").border_title = "Log"
        self.restyle()
        self.set_interval(FRAME_INTERVAL, self.apply_frame, name="frame")
        self.set_interval(LOG_POLL_INTERVAL, self.poll_log, name="log-poll")
        self.table.focus()

    def restyle(self) -> None:
        """Theme or size changed: pick the table layout and colors (rows redraw as needed)."""
        self.query_one(Footer).show_command_palette = self.size.width >= 100
        palette = Palette.from_theme(self.app.current_theme)
        with self.app.batch_update():
            self.table.configure(self.table.size.width or self.app.size.width, palette, self.fetchdeck.index)
        self._refresh_selected()
        self._update_hint()

    def on_resize(self) -> None:
        self.call_after_refresh(self.restyle)

    def apply_frame(self) -> None:
        """Apply the changes collected since the last frame (4 Hz)."""
        app = self.fetchdeck
        started = time.perf_counter()
        changes = app.index.take_changes()
        try:
            if changes:
                self._apply(changes)
            self.show_status_line()
        except Exception:  # a bug here must not take the whole TUI down: log it, resync
            log.exception("applying a frame failed")
            app.index.take_changes()
            self.table.rebuild(app.index.visible())
            if not self._frame_error_shown:
                self._frame_error_shown = True
                self.notify("The display hit an internal error and was rebuilt; see the log file.",
                            severity="error", markup=False)
        if changes:
            self.frame_stats.record(time.perf_counter() - started)

    def show_status_line(self) -> None:
        app = self.fetchdeck
        self.status_bar.show(app.index.totals(), app.index.filter, app.sync.state, app.client.address,
                             app.api_label, app.sync.schedule.describe())

    def _apply(self, changes: Changes) -> None:
        index = self.fetchdeck.index
        table = self.table
        with self.app.batch_update():
            if changes.rebuild:
                table.rebuild(index.visible())
            else:
                table.apply(changes, index)
        selected = table.selected_id
        if changes.rebuild or (selected is not None and selected in changes.dirty):
            self._refresh_selected()
        self._update_hint()
        self._report_failures(changes.failures)

    def _report_failures(self, failures: list[Task]) -> None:
        if not failures:
            return
        if len(failures) > MAX_FAILURE_NOTES:
            self.notify(f"{len(failures)} downloads failed; filter by status to see them.",
                        title="Downloads failed", severity="error")
            return
        for task in failures:
            self.notify(task.error or "failed", title=f"Failed: {task.name}", severity="error", markup=False)

    def _update_hint(self) -> None:
        """The line shown instead of an empty table (cheap when nothing changes)."""
        hint = self.query_one("#empty-hint", Static)
        index = self.fetchdeck.index
        if self.table.row_count:
            text = ""
        elif len(index) and index.filter.active:
            text = "No task matches the filter. Press / to change it, Esc in the filter to clear it."
        else:
            text = "No downloads yet.\nPress [b]a[/b] to add one, or send one to the API."
        if text != self._hint:
            self._hint = text
            hint.display = bool(text)
            hint.update(text)
            self.query_one("#table-area").set_class(bool(text), "-empty")

    # ---- selection, details, log -----------------------------------------
    @on(TaskTable.TaskHighlighted)
    def _highlighted(self, event: TaskTable.TaskHighlighted) -> None:
        self._refresh_selected()

    @on(TaskTable.TaskActivated)
    def _activated(self, event: TaskTable.TaskActivated) -> None:
        self.action_details()

    def _refresh_selected(self) -> None:
        task = self.selected
        folder = self.fetchdeck.client.folder_of(task) if task else ""
        self.detail.show(task, folder)
        task_id = task.id if task else None
        if task_id != self._log_task:
            self._log_task = task_id
            self.task_log.show_task(task_id)
        self._log_stale = True
        if task_id is not None:
            self.load_log(task_id)

    def poll_log(self) -> None:
        task = self.selected
        if task is not None and (self._log_stale or task.status in ACTIVE_STATUSES):
            self.load_log(task.id)

    @work(exclusive=True, group="log", exit_on_error=False)
    async def load_log(self, task_id: int) -> None:
        try:
            lines = await self.fetchdeck.client.logs(task_id)
        except ClientError:
            return
        self._log_stale = False
        self.task_log.follow(task_id, lines)

    # ---- actions ---------------------------------------------------------
    def action_add(self) -> None:
        app = self.fetchdeck

        async def submit(request: AddRequest) -> list[Task]:
            return await app.client.create(request.specs, request.start)

        def added(tasks: list[Task] | None) -> None:
            if not tasks:
                return
            for task in tasks:
                app.index.upsert(task)
            self.apply_frame()
            last = tasks[-1].id
            if self.table.has_task(last):
                self.table.move_cursor(row=self.table.get_row_index(str(last)))
            count = len(tasks)
            self.notify(f"Added {count} download{'s' if count > 1 else ''}.", timeout=3)

        self.app.push_screen(AddTaskScreen(submit, folders=app.folders), added)

    def _need_selection(self) -> Task | None:
        task = self.selected
        if task is None:
            self.notify("No task selected.", severity="warning", timeout=3)
        return task

    async def action_start(self) -> None:
        task = self._need_selection()
        if task is None:
            return
        if task.status == TaskStatus.SUCCESS:
            self.notify("Already downloaded. Press r to download it again.", timeout=4)
            return
        if task.status in ACTIVE_STATUSES:
            self.notify(f"Already {'downloading' if task.status == TaskStatus.DOWNLOADING else 'queued'}.",
                        timeout=3)
            return
        await self.fetchdeck.call(self.fetchdeck.client.start(task.id), f"start {task.name}")

    async def action_retry(self) -> None:
        task = self._need_selection()
        if task is None:
            return
        if task.status in ACTIVE_STATUSES:
            self.notify("It is already queued or downloading.", timeout=3)
            return
        await self.fetchdeck.call(self.fetchdeck.client.start(task.id), f"retry {task.name}")

    async def action_priority(self, step: int) -> None:
        """Raise (step 1) or lower (step -1) the selected task's priority."""
        task = self._need_selection()
        if task is None:
            return
        order = [Priority.LOW, Priority.NORMAL, Priority.HIGH]
        index = order.index(task.priority) + step
        if not 0 <= index < len(order):
            self.notify(f"It is already {task.priority.value} priority.", timeout=3)
            return
        new = order[index]
        if await self.fetchdeck.call(self.fetchdeck.client.set_priority(task.id, new),
                                     f"set the priority of {task.name}"):
            self.notify(f"{task.name}: {new.value} priority.", timeout=2)

    async def action_move(self, where: str) -> None:
        """Move the selected task in the queue (top, bottom, up, down)."""
        task = self._need_selection()
        if task is None:
            return
        await self.fetchdeck.call(self.fetchdeck.client.move(task.id, QueueMove(where)), f"move {task.name}")

    async def action_stop(self) -> None:
        task = self._need_selection()
        if task is None:
            return
        if task.status in (TaskStatus.SUCCESS, TaskStatus.STOPPED):
            self.notify(f"It is {task.status.value}; nothing to stop.", timeout=3)
            return
        await self.fetchdeck.call(self.fetchdeck.client.stop(task.id), f"stop {task.name}")

    def action_limit(self) -> None:
        """The selected task's own speed limit (applied at once if it runs)."""
        from tui.screens.limit import LimitChoice, SpeedLimitScreen

        task = self._need_selection()
        if task is None:
            return
        app = self.fetchdeck

        async def chosen(choice: LimitChoice | None) -> None:
            if choice is not None and await app.call(app.client.set_speed_limit(task.id, choice.rate),
                                                    f"limit {task.name}"):
                self.notify(f"{task.name}: {format_rate(choice.rate) if choice.rate else 'no speed limit'}",
                            timeout=3, markup=False)

        self.app.push_screen(SpeedLimitScreen(task.name, task.options.speed_limit), chosen)

    async def action_host_limit(self) -> None:
        """The speed limit of the selected task's host, shared by all its tasks on the engine's node."""
        from core.ratelimit import host_of
        from tui.screens.limit import LimitChoice, SpeedLimitScreen

        task = self._need_selection()
        if task is None:
            return
        app, host = self.fetchdeck, host_of(task.url)
        if not host:
            self.notify("This task's URL has no host.", severity="warning", timeout=3)
            return

        async def chosen(choice: LimitChoice | None) -> None:
            if choice is not None and await app.call(app.client.set_host_speed_limit(host, choice.rate),
                                                    f"limit {host}"):
                self.notify(f"{host}: {format_rate(choice.rate) if choice.rate else 'no speed limit'}",
                            timeout=3, markup=False)

        try:
            current = await app.client.host_speed_limit(host)
        except ClientError:
            current = None
        self.app.push_screen(SpeedLimitScreen(f"host {host} (all its tasks)", current), chosen)

    def action_delete(self) -> None:
        task = self._need_selection()
        if task is None:
            return

        async def confirmed(choice: DeleteChoice | None) -> None:
            if choice is None:
                return
            app = self.fetchdeck
            if await app.call(app.client.delete(task.id, choice.files), f"delete {task.name}"):
                app.index.remove(task.id)
                self.apply_frame()

        self.app.push_screen(ConfirmDeleteScreen(f"“{task.name}”", has_files=bool(task.file)), confirmed)

    def action_relink(self) -> None:
        task = self._need_selection()
        if task is None:
            return
        if task.status == TaskStatus.SUCCESS:
            self.notify("Already downloaded; there is nothing to relink.", timeout=3)
            return
        app = self.fetchdeck

        async def submit(request: RelinkRequest) -> Task:
            return await app.client.relink(task.id, request.url, request.restart)

        def relinked(updated: Task | None) -> None:
            if updated is None:
                return
            app.index.upsert(updated)
            self.apply_frame()
            self.notify(f"Relinked “{updated.name}”.", timeout=3)

        self.app.push_screen(RelinkScreen(task, submit), relinked)

    def action_details(self) -> None:
        expanded = not self.has_class("-expanded")
        self.set_class(expanded, "-expanded")
        if expanded and self.selected is not None:
            self._refresh_selected()

    def action_collapse(self) -> None:
        if self.has_class("-expanded"):
            self.remove_class("-expanded")
        elif self.filter_bar.display:
            self.filter_bar.action_clear()

    def action_filter(self) -> None:
        self.filter_bar.open()

    def show_status(self, status: TaskStatus | None) -> None:
        """Filter by one status (command palette)."""
        self.filter_bar.set_status(status)

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        self.fetchdeck.index.set_filter(event.value)  # the next frame rebuilds (typing coalesces)

    @on(FilterBar.Done)
    def _filter_done(self) -> None:
        self.table.focus()

    def set_filter(self, flt: TaskFilter) -> None:
        self.fetchdeck.index.set_filter(flt)
        self.apply_frame()

    def action_open_folder(self) -> None:
        task = self._need_selection()
        if task is None:
            return
        folder = self.fetchdeck.client.folder_of(task)
        self.app.copy_to_clipboard(folder)
        self.notify(folder, title="Folder (copied to the clipboard)", markup=False, timeout=6)
        self.fetchdeck.open_path(folder)
