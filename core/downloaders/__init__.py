"""Which downloader runs a task: the `DownloaderRegistry` an Engine is given.

A registry maps each task kind to a loader of its downloader (the built-in
http, hls, dash and ytdlp families are imported on first use: yt-dlp is heavy, and
a `get` of an HTTP file must not pay for it). Named backends are downloaders
the host process plugs into ITS engine's registry (the API server adds aria2
and storage transfers, server/app.py); a task selects one with
`options.backend`, and the backend decides which URLs it accepts. Tests swap a
kind's downloader for a scripted one (core/downloaders/scripted.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import DownloadError, InvalidInput
from core.models import TaskKind

if TYPE_CHECKING:
    from core.downloaders.base import Downloader

DownloaderLoader = Callable[[], "Downloader"]


@dataclass(frozen=True, slots=True)
class Backend:
    downloader: Downloader
    check_url: Callable[[str], str]  # returns the URL to store, or raises InvalidInput


def load_http() -> Downloader:
    from core.downloaders.http import DOWNLOADER

    return DOWNLOADER


def load_hls() -> Downloader:
    from core.downloaders import hls

    return hls.load_downloader()


def load_dash() -> Downloader:
    from core.downloaders import dash

    return dash.load_downloader()


def load_ytdlp() -> Downloader:
    from core.downloaders import ytdlp

    return ytdlp.load_downloader()


def load_http_s3() -> Downloader:
    from core.downloaders.http_s3 import DOWNLOADER

    return DOWNLOADER


# Downloaders that write a task of their kind straight to an s3:// destination (HTTP: each range one part of a
# multipart upload). Kinds without one download into a local staging dir; the runner uploads the result.
DIRECT_TO_STORAGE: Mapping[TaskKind, DownloaderLoader] = {TaskKind.HTTP: load_http_s3}

BUILTIN_KINDS: Mapping[TaskKind, DownloaderLoader] = {
    TaskKind.HTTP: load_http,
    TaskKind.HLS: load_hls,
    TaskKind.YTDLP: load_ytdlp,
    TaskKind.DASH: load_dash,
}


class DownloaderRegistry:
    """One downloader per task kind, plus the named backends a host registered."""

    def __init__(self, kinds: Mapping[TaskKind, DownloaderLoader] | None = None) -> None:
        """kinds: a loader per kind (default BUILTIN_KINDS); a kind without one cannot run."""
        self._kinds: dict[TaskKind, DownloaderLoader] = dict(BUILTIN_KINDS if kinds is None else kinds)
        self._backends: dict[str, Backend] = {}
        self._direct: dict[TaskKind, DownloaderLoader] = dict(DIRECT_TO_STORAGE) if kinds is None else {}

    def set_kind(self, kind: TaskKind, downloader: Downloader) -> None:
        """Run tasks of this kind with `downloader` from now on (to an s3:// destination too: staged, uploaded)."""
        self._kinds[kind] = lambda: downloader
        self._direct.pop(kind, None)

    def direct_to_storage(self, kind: TaskKind, backend: str | None = None) -> Downloader | None:
        """The downloader that writes a task of `kind` straight to its s3:// destination (`ctx.remote`);
        None: the task's own downloader writes a local file, which the runner uploads."""
        loader = None if backend else self._direct.get(kind)
        return loader() if loader is not None else None

    def register_backend(self, name: str, downloader: Downloader, check_url: Callable[[str], str]) -> None:
        """Make `options.backend == name` run with `downloader`; `check_url` validates the task's URL."""
        self._backends[name] = Backend(downloader, check_url)

    def backend_url(self, name: str, url: str) -> str:
        """Validate url for the named backend (InvalidInput if it is unknown or refuses the URL)."""
        backend = self._backends.get(name)
        if backend is None:
            raise InvalidInput(f"no downloader named {name!r} is available")
        return backend.check_url(url)

    def downloader(self, kind: TaskKind, backend: str | None = None) -> Downloader:
        """The downloader for a task of `kind` (or its named backend); DownloadError if there is none."""
        if backend:
            found = self._backends.get(backend)
            if found is None:
                raise DownloadError(f"no downloader named {backend!r} in this process (is the API server running?)")
            return found.downloader
        loader = self._kinds.get(kind)
        if loader is None:
            raise DownloadError(f"no {kind.value} downloader in this process")
        return loader()
