"""HLS (m3u8) downloads: the package's public surface.

Inside: `job` (one VOD download: playlist → segments → merge), `live` (a live
recording), `playlist` (parsing, variant choice, skip ranges), `fetch`
(segment and key requests), `pool` (concurrent segment workers), `crypto`
(AES-128), `store` (segment files on disk), `merge` (concat and remux).
Nothing outside this package imports those modules; it uses the names here.

The segment machinery is shared with the DASH downloader (core/downloaders/dash),
which subclasses `HlsJob` with media playlists built from an MPD: those names are
loaded on first use (`__getattr__`), like the downloader itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from core.downloaders.hls.playlist import parse_skip

if TYPE_CHECKING:
    from core.downloaders.base import Downloader
    from core.downloaders.hls.fetch import NotAPlaylist, short_name
    from core.downloaders.hls.job import HlsJob
    from core.downloaders.hls.merge import Stream
    from core.downloaders.hls.playlist import ByteRange, InitSection, MediaPlaylist, MediaSegment, Variant, pick_variant

__all__ = [
    "ByteRange", "HlsJob", "InitSection", "MediaPlaylist", "MediaSegment", "NotAPlaylist", "Stream", "Variant",
    "load_downloader", "output_name", "parse_skip", "pick_variant", "short_name",
]

# For the DASH downloader: name -> the module that defines it (imported when first asked for).
_SHARED = {
    "HlsJob": "job", "Stream": "merge", "short_name": "fetch", "NotAPlaylist": "fetch",
    **dict.fromkeys(("ByteRange", "InitSection", "MediaPlaylist", "MediaSegment", "Variant", "pick_variant"),
                    "playlist"),
}


def __getattr__(name: str) -> object:
    module = _SHARED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def load_downloader() -> Downloader:
    """The HLS downloader (imports the download machinery on first use)."""
    from core.downloaders.hls.job import DOWNLOADER

    return DOWNLOADER


def output_name(name: str, *, ffmpeg: bool, fmp4: bool, audio_only: bool, no_merge: bool) -> str:
    """The file name an HLS task writes for `name` (its extension follows the container)."""
    from core.downloaders.hls.job import output_name as _output_name

    return _output_name(name, ffmpeg=ffmpeg, fmp4=fmp4, audio_only=audio_only, no_merge=no_merge)
