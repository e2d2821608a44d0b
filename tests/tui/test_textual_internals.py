"""Guards for the Textual internals the TUI relies on (pyproject bounds textual to <9).

TaskTable (tui/widgets/task_table.py) writes DataTable's row store and bookkeeping directly and evicts
single cells from its render caches by the shape of their keys; it replaces `_update_dimensions`.
UrlArea (tui/screens/add.py) overrides TextArea's `_on_key` and calls `_replace_via_keyboard`.
tests/tui/test_parts.py checks the names exist; these check the shapes and the calls, so a Textual
release that changes them fails here with what to fix, not with a stale or slow 10,000-row table.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from typing import Any

from textual.app import App, ComposeResult
from textual.cache import LRUCache
from textual.widgets import DataTable, Input, TextArea
from textual.widgets.data_table import ColumnKey, Row, RowKey

from tui.screens.add import UrlArea


class _Table(DataTable[str]):
    def __init__(self) -> None:
        super().__init__(id="table")
        self.dimension_updates: list[list[RowKey]] = []

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        self.dimension_updates.append(list(new_rows))
        super()._update_dimensions(new_rows)


class _TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield _Table()


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


async def test_datatable_rows_and_caches_have_the_shapes_task_table_writes() -> None:
    app = _TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(_Table)
        table.add_column("A", key="a")
        table.add_column("B", key="b")
        for n in range(3):
            table.add_row(f"a{n}", f"b{n}", key=f"r{n}")
        await pilot.pause()
        assert table.dimension_updates, "DataTable no longer calls self._update_dimensions(new_rows) for new rows"

        data = table._data
        assert isinstance(data, dict) and set(data) == {RowKey("r0"), RowKey("r1"), RowKey("r2")}, (
            "DataTable._data is no longer a dict keyed by RowKey: TaskTable._append and _write_row write it"
        )
        assert data[RowKey("r1")] == {ColumnKey("a"): "a1", ColumnKey("b"): "b1"}, (
            "DataTable._data rows are no longer dicts keyed by ColumnKey"
        )
        assert table._row_locations.get(RowKey("r2")) == 2, "DataTable._row_locations no longer maps RowKey → index"
        assert table._row_locations.get_key(2) == RowKey("r2")
        assert [f.name for f in dataclasses.fields(Row)][:2] == ["key", "height"], (
            "DataTable's Row is no longer Row(key, height, ...): TaskTable._append builds Row(row_key, 1)"
        )
        assert isinstance(table.rows[RowKey("r0")], Row)
        assert isinstance(table._update_count, int) and isinstance(table._require_update_dimensions, bool)

        caches: dict[str, LRUCache[Any, Any]] = {
            "_cell_render_cache": table._cell_render_cache, "_row_render_cache": table._row_render_cache,
            "_row_renderable_cache": table._row_renderable_cache, "_line_cache": table._line_cache,
        }
        for name, cache in caches.items():
            for method in ("keys", "discard", "clear"):
                assert callable(getattr(cache, method, None)), f"DataTable.{name} has no {method}()"
            assert cache.keys(), f"DataTable.{name} is empty after a render: it is no longer the render cache"
        for key in table._cell_render_cache.keys():
            assert isinstance(key[0], RowKey) and isinstance(key[1], ColumnKey), (
                f"DataTable._cell_render_cache keys no longer start (RowKey, ColumnKey): {key!r}; "
                "TaskTable._forget_renders evicts changed cells by them"
            )
        for row_key in table._row_render_cache.keys():
            assert isinstance(row_key[0], RowKey), (
                f"DataTable._row_render_cache keys no longer start with the RowKey: {row_key!r}"
            )
        for renderable_key in table._row_renderable_cache.keys():
            assert len(renderable_key) == 2 and all(isinstance(part, int) for part in renderable_key), (
                f"DataTable._row_renderable_cache keys are no longer (update_count, row_index): {renderable_key!r}"
            )

        table._clear_caches()
        assert not any(cache.keys() for cache in caches.values()), "DataTable._clear_caches() no longer clears them"


def test_datatable_methods_task_table_overrides_or_calls_keep_their_signatures() -> None:
    assert _parameters(DataTable._update_dimensions) == ["self", "new_rows"]
    assert _parameters(DataTable.watch_scroll_y) == ["self", "old_value", "new_value"]
    assert _parameters(DataTable._clear_caches) == ["self"]


def test_the_cursor_blinks_the_tui_tests_stop_still_exist() -> None:
    """tests/tui/conftest.py stops these so screenshots are steady (one with raising=False)."""
    assert callable(getattr(Input, "_toggle_cursor", None)), "Input._toggle_cursor is gone: fix conftest.py"
    assert callable(getattr(TextArea, "_toggle_cursor_blink_visible", None)), (
        "TextArea._toggle_cursor_blink_visible is gone: tests/tui/conftest.py no longer steadies the cursor"
    )


class _AreaApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.submitted = 0

    def compose(self) -> ComposeResult:
        yield UrlArea(id="urls")

    def on_url_area_submit(self, message: UrlArea.Submit) -> None:
        self.submitted += 1


async def test_text_area_key_handling_url_area_overrides() -> None:
    assert inspect.iscoroutinefunction(TextArea._on_key) and _parameters(TextArea._on_key) == ["self", "event"], (
        "TextArea._on_key(event) changed: UrlArea overrides it for enter and ctrl+j"
    )
    assert _parameters(TextArea._replace_via_keyboard)[:4] == ["self", "insert", "start", "end"], (
        "TextArea._replace_via_keyboard(insert, start, end) changed: UrlArea calls it for ctrl+j"
    )
    app = _AreaApp()
    async with app.run_test(size=(60, 10)) as pilot:
        area = app.query_one(UrlArea)
        area.focus()
        await pilot.press("a", "ctrl+j", "b")
        assert area.text == "a\nb", f"ctrl+j should insert a new line, the area holds {area.text!r}"
        await pilot.press("enter")
        await pilot.pause()
        assert app.submitted == 1 and area.text == "a\nb", "enter should submit, not insert a new line"
