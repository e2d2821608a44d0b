"""The TUI's pure parts: formatting, the task index, theme files, the wire format, SSE parsing,
and the DataTable internals the task table relies on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from core.events import TaskProgress
from core.models import TaskKind, TaskStatus
from server.wire import decode_task as task_from_wire
from tests.tui.fakes import sample_tasks
from tui import format as fmt
from tui.sse import parse_sse
from tui.state import TaskFilter, TaskIndex
from tui.themes import ThemeFileError, load_themes, theme_from_toml
from tui.widgets.cells import LAYOUTS, CellMaker, Palette, layout_for


def test_sizes_speeds_and_etas() -> None:
    assert fmt.size(None) == "-"
    assert fmt.size(512) == "512 B"
    assert fmt.size(1536) == "1.5 KB"
    assert fmt.size(5 * 1024**3) == "5.0 GB"
    assert fmt.size(250 * 1024**2) == "250 MB"
    assert fmt.speed(0) == "" and fmt.speed(2 * 1024**2) == "2.0 MB/s"
    assert [fmt.eta(s) for s in (None, 5, 65, 3700, 90000)] == ["", "5s", "1m05s", "1h01m", "1d01h"]
    assert fmt.shorten("abcdefghij.iso", 8) == "abcd…iso"
    assert fmt.bar(fmt.bar_halves(0.5, 6), 6) == ("━━━", "━━━")
    assert fmt.bar(fmt.bar_halves(0.25, 6), 6) == ("━╸", "━━━━")
    assert fmt.bar(fmt.bar_halves(None, 4), 4) == ("", "━━━━")
    assert fmt.bar(fmt.bar_halves(1.0, 4), 4) == ("━━━━", "")


def test_index_counts_filter_and_changes() -> None:
    index = TaskIndex()
    index.replace_all(sample_tasks())
    changes = index.take_changes()
    assert changes.rebuild
    totals = index.totals()
    assert (totals.active, totals.queued, totals.done, totals.failed, totals.stopped) == (2, 1, 2, 1, 1)
    index.progress(TaskProgress(1, downloaded=10, total=None, speed=5.0, eta=None, percent=0.0))
    index.set_status(3, TaskStatus.DOWNLOADING)
    index.remove(7)
    changes = index.take_changes()
    assert changes.dirty == {1, 3} and changes.removed == {7} and not changes.rebuild
    assert index.totals().active == 3 and index.totals().done == 1
    index.set_status(3, TaskStatus.FAILED, "boom")
    assert [t.error for t in index.take_changes().failures] == ["boom"]
    index.set_filter(TaskFilter(text=".ISO"))
    assert [t.id for t in index.visible()] == [1]
    index.set_filter(TaskFilter(status=TaskStatus.FAILED))
    assert [t.id for t in index.visible()] == [3, 5]
    assert index.take_changes().rebuild


def test_cells_only_change_where_the_task_changed() -> None:
    maker = CellMaker(LAYOUTS[2], Palette.from_theme(None))
    task = sample_tasks()[0]
    before = maker.signature(task)
    task.downloaded += 1  # below what the cells show: nothing to redraw
    assert maker.signature(task) == before
    task.downloaded += 500 * 1024**2
    after = maker.signature(task)
    changed = {maker.keys[i] for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
    assert changed == {"progress", "size"}
    assert layout_for(80).name == "narrow" and layout_for(120).name == "medium" and layout_for(200).name == "wide"
    # repeated cells are shared, not rebuilt per row
    assert maker.render(2, TaskStatus.SUCCESS) is maker.render(2, TaskStatus.SUCCESS)


def test_bundled_themes_load_and_bad_files_are_reported(tmp_path: Path) -> None:
    themes = load_themes(tmp_path)
    assert {"fetchdeck-dark", "fetchdeck-light", "fetchdeck-ocean", "fetchdeck-ember"} <= set(themes.themes)
    assert not themes.themes["fetchdeck-light"].dark
    (tmp_path / "a.toml").write_text("this is not toml ==")
    (tmp_path / "b.toml").write_text('[colors]\nprimary = "#123456"\nmauve = "#000000"\n')
    (tmp_path / "c.toml").write_text('name = "c"\n[colors]\nprimary = "#123456"\n')
    themes = load_themes(tmp_path)
    reasons = dict(themes.errors)
    assert "not valid TOML" in reasons["a.toml"] and "mauve" in reasons["b.toml"]
    assert "c" in themes.themes
    with pytest.raises(ThemeFileError, match="needs at least primary"):
        theme_from_toml("[colors]\n", "x")


def test_tasks_from_the_wire() -> None:
    task = task_from_wire({
        "id": "12", "name": "a.m3u8", "type": "m3u8", "url": "https://x/a.m3u8", "status": "downloading",
        "headers": "Referer: https://x\nUser-Agent: t", "createdDate": "2025-03-14T09:26:00Z",
        "downloaded": 10, "total": 100, "speed": 2.5, "eta": 36.0, "error": None, "isLive": True,
    })
    assert task.id == 12 and task.kind == TaskKind.HLS and task.status == TaskStatus.DOWNLOADING
    assert task.headers == (("Referer", "https://x"), ("User-Agent", "t"))
    assert task.total == 100 and task.is_live and task.created_at == 1741944360.0
    odd = task_from_wire({"id": 3, "type": "mediago", "status": "weird", "total": 0})
    assert odd.kind == TaskKind.HTTP and odd.status == TaskStatus.WAITING and odd.total is None


async def test_sse_parser() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["retry: 3000", "", ": ping", "id: 7", "event: download-start", 'data: {"id": "1"}', "",
                     "event: download-create", "data: {", 'data: "ids": [1]}', "", "data: tail-without-blank"]:
            yield line

    messages = [m async for m in parse_sse(lines())]
    assert [(m.event, m.id) for m in messages] == [("download-start", "7"), ("download-create", "7")]
    assert messages[1].data == '{\n"ids": [1]}'


def test_datatable_internals_still_exist() -> None:
    """TaskTable short-circuits these DataTable internals; a Textual upgrade that renames
    them must fail here, not silently make 10,000-row tables slow or stale."""
    table: DataTable[str] = DataTable()
    for name in ("_data", "_row_locations", "_update_count", "_row_render_cache", "_cell_render_cache",
                 "_row_renderable_cache", "_line_cache", "_require_update_dimensions"):
        assert hasattr(table, name), name
    assert callable(DataTable._update_dimensions) and callable(DataTable._clear_caches)
