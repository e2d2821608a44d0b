"""Registry from task kind to downloader (imported lazily: yt-dlp is heavy).

Named backends (`register_backend`) are downloaders a host process plugs in
(the API server registers aria2 and storage transfers); a task selects one
with `options.backend`, and the backend decides which URL schemes it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.downloaders.base import Downloader
from core.errors import DownloadError, InvalidInput
from core.models import TaskKind


@dataclass(frozen=True, slots=True)
class Backend:
    downloader: Downloader
    check_url: Callable[[str], str]  # returns the URL to store, or raises InvalidInput


_BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, downloader: Downloader, check_url: Callable[[str], str]) -> None:
    _BACKENDS[name] = Backend(downloader, check_url)


def backend_url(name: str, url: str) -> str:
    """Validate url for the named backend (InvalidInput if it is unknown or refuses the URL)."""
    backend = _BACKENDS.get(name)
    if backend is None:
        raise InvalidInput(f"no downloader named {name!r} is available")
    return backend.check_url(url)


def get_downloader(kind: TaskKind, backend: str | None = None) -> Downloader:
    """Each module exposes a `DOWNLOADER` object with `async run(task, ctx) -> Path`."""
    if backend:
        found = _BACKENDS.get(backend)
        if found is None:
            raise DownloadError(f"no downloader named {backend!r} in this process (is the API server running?)")
        return found.downloader
    if kind is TaskKind.HLS:
        from core.downloaders import hls

        return hls.load_downloader()
    if kind is TaskKind.YTDLP:
        from core.downloaders import ytdlp

        return ytdlp.load_downloader()
    from core.downloaders.http import DOWNLOADER

    return DOWNLOADER
