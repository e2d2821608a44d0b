"""The web page with 10,000 tasks, 500 of them moving, over the real SSE stream of a real fetchdeck.

The tasks are written to the store directly (10,000 creates through the API would only test the API);
the progress of the 500 active ones is published on the engine's event bus at the rate the engine itself
allows (4 a second per task), so it reaches the page through server/sse.py exactly as a download's does.
The page times each render frame with performance.measure("fd-render"); the test reads those marks.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from core.events import TaskProgress
from core.models import Task, TaskKind, TaskOptions, TaskStatus
from tests.api.conftest import Api
from tests.browser.conftest import OpenPage, run, running_fetchdeck
from tests.support.asgi_recorder import Recorder
from tests.support.chromium import STEP, needs_chromium

pytestmark = [needs_chromium, pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.serial]  # alone: render frames timed against a 16 ms budget
TASKS = 10_000
ACTIVE = 500
TOTAL = 100_000_000
SECONDS = 2.0
FRAME_BUDGET_MS = 16.0


async def timings(page: Page, name: str) -> list[float]:
    """The page's performance.measure durations of that name (ms), sorted."""
    return sorted(await run(page, "(name) => performance.getEntriesByName(name).map((e) => e.duration)", name))


def percentile(values: list[float], fraction: float) -> float:
    return values[int(fraction * (len(values) - 1))]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def crowded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with running_fetchdeck(tmp_path_factory.mktemp("crowded")) as api:
        now = time.time()
        tasks = [Task(id=0, kind=TaskKind.HTTP, url=f"http://127.0.0.1:9/crowd/{i}.bin", name=f"crowd-{i:05d}.bin",
                      folder="", headers=(), options=TaskOptions(),
                      status=TaskStatus.DOWNLOADING if i >= TASKS - ACTIVE else TaskStatus.STOPPED,
                      total=TOTAL, created_at=now, updated_at=now) for i in range(TASKS)]
        stored = await api.engine.store.insert_many(tasks)
        assert [t.id for t in stored] == list(range(1, TASKS + 1))  # a fresh store: ids in insertion order
        yield api


async def test_ten_thousand_tasks_500_moving(crowded: Api, open_page: OpenPage) -> None:
    seen = Recorder(crowded)
    streams = crowded.handle.app.extensions["fetchdeck"].streams
    page = await open_page(crowded.url + "/ui/")
    await expect(page.locator("#counts")).to_contain_text(f"{TASKS} tasks · {ACTIVE} downloading", timeout=STEP * 1000)
    rows = page.locator("#list .row")
    geometry = await run(page, """() => {
        const list = document.querySelector("#list");
        return {rows: list.querySelectorAll(".row").length, height: list.clientHeight,
                rowHeight: parseFloat(getComputedStyle(list).getPropertyValue("--row-h")),
                spacer: document.querySelector("#spacer").getBoundingClientRect().height};
    }""")
    in_view = -(-geometry["height"] // geometry["rowHeight"])
    assert geometry["spacer"] == TASKS * geometry["rowHeight"], geometry
    assert in_view <= geometry["rows"] <= in_view + 10, geometry  # the rows in view and a few more, of 10,000
    moving = list(range(TASKS - ACTIVE + 1, TASKS + 1))  # the newest 500, at the top of the list

    await run(page, "() => { performance.clearMeasures('fd-render'); performance.clearMeasures('fd-events'); }")
    # 4 progress events a second per task, spread over the second as the engine's coalescing spreads them.
    slices = 10
    start = asyncio.get_running_loop().time()
    tick = 0
    latest: dict[int, float] = {}
    while asyncio.get_running_loop().time() - start < SECONDS:
        for task_id in moving[tick % slices::slices]:
            done = min(TOTAL, (tick + 1) * 100_000 + task_id % 1000)
            latest[task_id] = 100 * done / TOTAL
            crowded.engine.bus.publish(TaskProgress(task_id=task_id, downloaded=done, total=TOTAL,
                                                    speed=2e6 + task_id, eta=(TOTAL - done) / 2e6,
                                                    percent=latest[task_id]))
        tick += 1
        await asyncio.sleep(0.25 / slices)
    for task_id in (TASKS, TASKS - 1, TASKS - 7):  # rows in view show the last progress sent
        await expect(page.locator(f'#list .row[data-id="{task_id}"] .pct')).to_have_text(f"{latest[task_id]:.1f} %")

    durations = await timings(page, "fd-render")
    chunks = await timings(page, "fd-events")
    median, p95 = statistics.median(durations), percentile(durations, 0.95)
    print(f"\nweb page, {TASKS} tasks, {ACTIVE} active, {tick * ACTIVE // slices} progress events in {SECONDS:.0f} s: "
          f"{len(durations)} render frames, script time median {median:.2f} ms, p95 {p95:.2f} ms, "
          f"max {durations[-1]:.2f} ms; {len(chunks)} stream chunks parsed and applied, median "
          f"{statistics.median(chunks):.2f} ms, p95 {percentile(chunks, 0.95):.2f} ms; "
          f"{geometry['rows']} rows in the DOM for {in_view} in view")
    assert len(durations) >= 20, durations  # the updates were rendered, frame by frame
    assert median < FRAME_BUDGET_MS and p95 < FRAME_BUDGET_MS, (median, p95, durations[-10:])
    assert percentile(chunks, 0.95) < FRAME_BUDGET_MS, chunks[-10:]
    assert geometry["rows"] == await rows.count()  # updates added no rows

    # Scrolled to the middle: still only the rows in view, showing the tasks that belong there.
    await run(page, "(y) => { document.querySelector('#list').scrollTop = y; }", 5000 * geometry["rowHeight"])
    middle = f"translateY({5000 * geometry['rowHeight']}px)"
    await page.wait_for_function("""(t) => Array.from(document.querySelectorAll("#list .row"))
        .some((r) => !r.hidden && r.style.transform === t)""", arg=middle)
    name = await run(page, """(t) => Array.from(document.querySelectorAll("#list .row"))
        .find((r) => !r.hidden && r.style.transform === t).querySelector(".c-name").textContent""", middle)
    assert name == "crowd-04999.bin"  # row 5000 from the top (newest first) is task id 5000
    assert await rows.count() == geometry["rows"]

    # One page: one SSE stream, and no polling, 10,000 tasks or not.
    assert len(seen.requests("GET", "/api/events")) == 1 and streams.open_streams == 1
    browser_requests = [s for s in seen.seen if "sec-fetch-site" in s.headers and s.path.startswith("/api/")]
    assert [(s.path, s.query) for s in browser_requests] == [
        ("/api/downloads", "pageSize=1"), ("/api/events", ""), ("/api/downloads", "current=1&pageSize=10000")]
