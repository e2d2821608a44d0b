"""A yt-dlp playlist added as one task per entry (`expand_playlist`, core/playlists.py), offline: yt-dlp's
generic extractor reads a local page with three <video>s; the entries run in parallel under the host's cap.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.config import HostLimitConfig
from core.engine import Engine
from core.errors import InvalidField
from core.models import ACTIVE_STATUSES, TaskKind, TaskOptions, TaskSpec, TaskStatus
from tests.support.engine import engine_config
from tests.support.fileserver import FileServer
from tests.support.media_fixtures import get_media

pytestmark = pytest.mark.timeout(60)

SOURCES = ("v360.mp4", "v720.mp4", "v360.mkv")
PAGE = (
    "<html><head><title>Three Clips</title></head><body>\n"
    + "".join(f'<video controls><source src="m/{name}"></video>\n' for name in SOURCES)
    + "</body></html>\n"
)


async def test_a_playlist_page_becomes_one_task_per_entry_run_in_parallel_under_the_host_cap(
        tmp_path: Path) -> None:
    media = get_media()
    config = engine_config(tmp_path, max_concurrent=5, retries=2)
    config.hosts.limits = {"127.0.0.1": HostLimitConfig(tasks=2)}
    with FileServer() as server:
        server.add_dir("/m", media.dir)
        for name in SOURCES:
            server.faults.throttle(f"/m/{name}", 200_000)  # each entry lasts long enough to overlap
        page = server.add("/three.html", PAGE.encode(), content_type="text/html")
        async with Engine(tmp_path / "db.sqlite", config) as engine:
            options = TaskOptions(expand_playlist=True)
            created = await engine.create([TaskSpec(url=page, kind=TaskKind.YTDLP, folder="lists", options=options)])
            assert [t.url for t in created] == [server.url(f"/m/{name}") for name in SOURCES]
            assert [t.name for t in created] == [f"{i:03d} - Three Clips ({i})" for i in (1, 2, 3)]
            peak = 0
            deadline = time.monotonic() + 40
            while [seen for seen in [await engine.get(t.id) for t in created] if seen.status in ACTIVE_STATUSES]:
                peak = max(peak, len(engine.scheduler.runs))
                assert time.monotonic() < deadline, "the entries did not finish"
                await asyncio.sleep(0.02)
            done = [await engine.get(t.id) for t in created]
            with pytest.raises(InvalidField) as refused:
                await engine.create([TaskSpec(url=server.url("/nothing.html"), options=options)])
    assert peak == 2  # in parallel, and no more than the host's cap
    for task, name in zip(done, SOURCES, strict=True):
        assert task.status is TaskStatus.SUCCESS, task.error
        path = Path(task.file or "")
        assert path.parent == tmp_path / "dl" / "lists" / "Three Clips"
        assert path.name.startswith(task.name) and path.read_bytes() == media.bytes(name)
    assert refused.value.field == "url" and "cannot list the playlist's entries" in str(refused.value)
