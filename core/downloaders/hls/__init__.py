"""HLS (m3u8) downloads: the package's public surface.

Inside: `job` (one VOD download: playlist → segments → merge), `live` (a live
recording), `playlist` (parsing, variant choice, skip ranges), `fetch`
(segment and key requests), `pool` (concurrent segment workers), `crypto`
(AES-128), `store` (segment files on disk), `merge` (concat and remux).
Nothing outside this package imports those modules; it uses the names here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.downloaders.hls.playlist import parse_skip

if TYPE_CHECKING:
    from core.downloaders.base import Downloader

__all__ = ["load_downloader", "output_name", "parse_skip"]


def load_downloader() -> Downloader:
    """The HLS downloader (imports the download machinery on first use)."""
    from core.downloaders.hls.job import DOWNLOADER

    return DOWNLOADER


def output_name(name: str, *, ffmpeg: bool, fmp4: bool, audio_only: bool, no_merge: bool) -> str:
    """The file name an HLS task writes for `name` (its extension follows the container)."""
    from core.downloaders.hls.job import output_name as _output_name

    return _output_name(name, ffmpeg=ffmpeg, fmp4=fmp4, audio_only=audio_only, no_merge=no_merge)
