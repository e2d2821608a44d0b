"""The task table: a keyed DataTable (row key = task id) with fixed column widths.

Rows are never redrawn wholesale while downloads run: each frame the screen
hands over the ids that changed; a row whose signature (tui/widgets/cells.py)
is unchanged is skipped, and of the others only the differing cells are
replaced. Column widths are fixed per layout (narrow / medium / wide, chosen
from the widget's width); only the name column stretches.

Three DataTable internals are short-circuited for speed with 10,000 rows
(tests/tui/test_parts.py fails loudly if Textual renames them):
`_update_dimensions` (nothing to measure: fixed widths, one-line rows),
bulk appends into `_data`/`rows`/`_row_locations`, and per-frame cell writes
that evict just the changed cells from the render caches instead of bumping
`_update_count` (which would recompute the row order and offsets of all
10,000 rows, and re-render every visible cell, every frame).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, Row, RowKey

from core.models import Task
from tui.state import Changes, TaskIndex
from tui.widgets.cells import LAYOUTS, Cell, CellMaker, Palette, Signature, layout_for

NAME_MIN = 12
VIEW_MARGIN = 10  # rows above and below the screen kept up to date


class TaskTable(DataTable[Cell], inherit_bindings=False):
    """Keyed, fixed-width, incrementally updated table of tasks."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_top", "Top", show=False),
        Binding("end,G", "scroll_bottom", "Bottom", show=False),
    ]

    class TaskHighlighted(Message):
        """The cursor moved to another task (None: the table is empty)."""

        def __init__(self, task_id: int | None) -> None:
            super().__init__()
            self.task_id = task_id

    class TaskActivated(Message):
        """A click on the highlighted task."""

        def __init__(self, task_id: int) -> None:
            super().__init__()
            self.task_id = task_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, show_row_labels=False)
        self.maker = CellMaker(LAYOUTS[0], Palette.from_theme(None))
        self._signatures: dict[int, Signature] = {}
        self._column_keys: list[ColumnKey] = []
        self._highlighted: int | None = None
        self._stale: set[int] = set()  # rows whose cells wait until they scroll into view
        self._index: TaskIndex | None = None

    # ---- reading -------------------------------------------------------
    @property
    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return int(key.value) if key.value is not None else None

    def has_task(self, task_id: int) -> bool:
        return RowKey(str(task_id)) in self.rows

    # ---- layout and styles ---------------------------------------------
    def configure(self, width: int, palette: Palette, index: TaskIndex) -> None:
        """Use the layout for this width and these colors.

        A new layout (other columns) rebuilds the rows; new colors only mark
        every row stale, so just the visible ones are redrawn now.
        """
        layout = layout_for(width)
        if layout != self.maker.layout or not self.columns:
            self.maker = CellMaker(layout, palette)
            self.rebuild(index.visible())
        elif palette != self.maker.palette:
            self.maker = CellMaker(layout, palette)
            self._index = index
            self._signatures.clear()
            self._stale = {int(str(key.value)) for key in self.rows}
            changed: set[tuple[str, str]] = set()
            self._write_stale(index, changed)
            self._clear_caches()
            self.refresh()
        else:
            self.fit_name_column()

    @property
    def palette(self) -> Palette:
        return self.maker.palette

    def name_width(self) -> int:
        gutter = 1  # the vertical scrollbar is always reserved (scrollbar-gutter: stable)
        return max(NAME_MIN, self.size.width - gutter - self.maker.layout.fixed_width - 2)

    def fit_name_column(self) -> None:
        """Give the name column whatever the fixed columns leave free."""
        column = self.columns.get(ColumnKey("name"))
        if column is None:
            return
        width = self.name_width()
        if column.width != width:
            column.width = width
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()

    # ---- writing -------------------------------------------------------
    def rebuild(self, tasks: Iterable[Task], keep: int | None = None) -> None:
        """Replace every row (first load, resync, filter, layout or theme change)."""
        from rich.text import Text

        keep = self.selected_id if keep is None else keep
        self.clear(columns=True)
        self._signatures.clear()
        self._stale.clear()
        for spec in self.maker.layout.columns:
            label = Text(spec.label, justify="right" if spec.right else "left")
            self.add_column(label, width=spec.width or self.name_width(), key=spec.key)
        self._column_keys = [ColumnKey(key) for key in self.maker.keys]
        self._append(tasks)
        if keep is not None and self.has_task(keep):
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)
        self._emit_highlight()

    def apply(self, changes: Changes, index: TaskIndex) -> int:
        """Apply one frame of changes; return how many cells changed.

        Rows out of sight are only marked stale: their cells are written when
        they scroll into view, so a frame costs O(visible rows), not O(changes).
        """
        self._index = index
        for task_id in changes.removed:
            self._remove(task_id)
        flt = index.filter
        tasks = index.tasks
        new: list[Task] = []
        changed: set[tuple[str, str]] = set()
        top, bottom = self._visible_rows()
        locations = self._row_locations
        stale = self._stale
        for task_id in sorted(changes.dirty):
            task = tasks.get(task_id)
            if task is None:
                continue
            row = locations.get(RowKey(str(task_id)))
            wanted = flt.matches(task)
            if row is None:
                if wanted:
                    new.append(task)
            elif not wanted:
                self._remove(task_id)
            elif top <= row <= bottom:
                self._write_row(task, changed)
            else:
                stale.add(task_id)
        self._write_stale(index, changed)
        if changed:
            self._forget_renders(changed)
        if new:
            self._append(new)
        self._emit_highlight()
        return len(changed)

    def _visible_rows(self) -> tuple[int, int]:
        """Row indexes on screen now, with a margin for a quick scroll."""
        first = int(self.scroll_y)
        height = max(self.size.height, 1)
        return max(0, first - VIEW_MARGIN), first + height + VIEW_MARGIN

    def _write_stale(self, index: TaskIndex, changed: set[tuple[str, str]]) -> None:
        if not self._stale:
            return
        top, bottom = self._visible_rows()
        locations = self._row_locations
        for task_id in list(self._stale):
            row = locations.get(RowKey(str(task_id)))
            task = index.tasks.get(task_id)
            if row is None or task is None:
                self._stale.discard(task_id)
            elif top <= row <= bottom:
                self._stale.discard(task_id)
                self._write_row(task, changed)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._stale and self._index is not None:
            changed: set[tuple[str, str]] = set()
            self._write_stale(self._index, changed)
            if changed:
                self._forget_renders(changed)

    def _remove(self, task_id: int) -> None:
        if self.has_task(task_id):
            self.remove_row(str(task_id))
        self._signatures.pop(task_id, None)
        self._stale.discard(task_id)

    def _write_row(self, task: Task, changed: set[tuple[str, str]]) -> None:
        """Replace the cells of one row that differ from what it shows; note them in `changed`."""
        signature = self.maker.signature(task)
        old = self._signatures.get(task.id)
        if old == signature:
            return
        row_value = str(task.id)
        cells = self._data[RowKey(row_value)]
        render = self.maker.render
        for i, key in enumerate(self._column_keys):
            if old is None or old[i] != signature[i]:
                cells[key] = render(i, signature[i])
                changed.add((row_value, self.maker.keys[i]))
        self._signatures[task.id] = signature

    def _forget_renders(self, changed: set[tuple[str, str]]) -> None:
        """Cell values changed, rows and columns did not: evict just those cells (and their
        rows' lines) from the render caches, so only what changed and is visible re-renders."""
        rows = {row for row, _ in changed}
        indexes = {self._row_locations.get(RowKey(row)) for row in rows}
        cell_cache = self._cell_render_cache
        for cell_key in [k for k in cell_cache.keys() if (k[0].value, k[1].value) in changed]:
            cell_cache.discard(cell_key)
        row_cache = self._row_render_cache
        for row_key in [k for k in row_cache.keys() if k[0].value in rows]:
            row_cache.discard(row_key)
        renderables = self._row_renderable_cache
        for renderable_key in [k for k in renderables.keys() if k[1] in indexes]:
            renderables.discard(renderable_key)
        self._line_cache.clear()  # lines are cheap joins of cached row renders
        self.refresh()

    def _append(self, tasks: Iterable[Task]) -> None:
        """add_row for many rows at once, without its per-row bookkeeping."""
        maker = self.maker
        keys = self._column_keys
        data = self._data
        rows = self.rows
        locations = self._row_locations
        index = len(rows)
        added = False
        for task in tasks:
            row_key = RowKey(str(task.id))
            if row_key in rows:
                continue
            signature = maker.signature(task)
            data[row_key] = dict(zip(keys, maker.row(signature), strict=True))
            locations[row_key] = index
            rows[row_key] = Row(row_key, 1)
            self._signatures[task.id] = signature
            index += 1
            added = True
        if added:
            self._require_update_dimensions = True
            self._update_count += 1
            self.cursor_coordinate = self.cursor_coordinate  # revalidate
            self.check_idle()
            self.refresh()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Fixed widths and one-line rows: only the virtual size changes (DataTable's version
        renders every cell of every new row: seconds for 10,000 rows)."""
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width, len(self.rows) + header)

    # ---- events --------------------------------------------------------
    def _emit_highlight(self) -> None:
        current = self.selected_id
        if current != self._highlighted:
            self._highlighted = current
            self.post_message(self.TaskHighlighted(current))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._emit_highlight()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.TaskActivated(int(event.row_key.value)))
