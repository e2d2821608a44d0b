"""Registry from task kind to downloader (imported lazily: yt-dlp is heavy)."""

from __future__ import annotations

import importlib

from core.downloaders.base import Downloader
from core.models import TaskKind

_MODULES: dict[TaskKind, str] = {
    TaskKind.HTTP: "core.downloaders.http",
    TaskKind.HLS: "core.downloaders.hls",
    TaskKind.YTDLP: "core.downloaders.ytdlp",
}


def get_downloader(kind: TaskKind) -> Downloader:
    """Each module exposes a `DOWNLOADER` object with `async run(task, ctx) -> Path`."""
    module = importlib.import_module(_MODULES[kind])
    return module.DOWNLOADER  # type: ignore[no-any-return]
