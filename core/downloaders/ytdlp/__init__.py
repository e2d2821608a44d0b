"""Downloads of any site yt-dlp knows: the package's public surface.

Inside: `download` (the downloader: runs yt-dlp in a worker thread), `info`
(extract without downloading, the sites list), `options` (quality, cookies
and flags checks; light, no yt-dlp import), `flags` (yt-dlp command-line
flags → its parameters), `params` (the yt-dlp parameters and post-processors
of one run), `procs` (the ffmpeg children yt-dlp starts).

Importing this package does not import yt-dlp: `options` is light and the
rest loads on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.downloaders.ytdlp.options import validate_ytdlp_options

if TYPE_CHECKING:
    from core.downloaders.base import Downloader
    from core.downloaders.ytdlp.info import MediaEntry, MediaFormat, MediaInfo

__all__ = [
    "MediaEntry",
    "MediaFormat",
    "MediaInfo",
    "extract_info",
    "load_downloader",
    "supported_domains",
    "supported_sites",
    "validate_ytdlp_options",
]


def load_downloader() -> Downloader:
    """The yt-dlp downloader (imports yt-dlp on first use)."""
    from core.downloaders.ytdlp.download import DOWNLOADER

    return DOWNLOADER


async def extract_info(
    url: str, *, quality: str | None = None, cookies: str | None = None, headers: Sequence[tuple[str, str]] = (),
    proxy: str | None = None, insecure: bool = False, flags: Sequence[str] = (), timeout: float = 30.0,
    jar_cookies: str | None = None,
) -> MediaInfo:
    """What yt-dlp finds at url (title, duration, formats...), without downloading."""
    from core.downloaders.ytdlp.info import extract_info as _extract

    return await _extract(url, quality=quality, cookies=cookies, headers=tuple(headers), proxy=proxy,
                          insecure=insecure, flags=flags, timeout=timeout, jar_cookies=jar_cookies)


def supported_sites() -> list[str]:
    """yt-dlp's extractor names."""
    from core.downloaders.ytdlp.info import supported_sites as _sites

    return _sites()


def supported_domains() -> list[str]:
    """The host names yt-dlp's extractors match (youtube.com, vimeo.com, ...), sorted."""
    from core.downloaders.ytdlp.info import supported_domains as _domains

    return _domains()


def __getattr__(name: str) -> object:  # the data classes, without importing yt-dlp before they are used
    if name in ("MediaEntry", "MediaFormat", "MediaInfo"):
        from core.downloaders.ytdlp import info

        return getattr(info, name)
    raise AttributeError(name)
