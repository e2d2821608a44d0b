"""DASH (MPEG-DASH .mpd manifests) downloads: the package's public surface.

Inside: `mpd` (the manifest as data: periods, representations, segment
addressing, BaseURLs), `segments` (SegmentTemplate / SegmentList expansion),
`sidx` (a SegmentBase's segment index), `select` (which video and audio),
`protection` (DRM refusal), `job` (the run, on the HLS family's segment
machinery: core/downloaders/hls).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.downloaders.base import Downloader

__all__ = ["load_downloader"]


def load_downloader() -> Downloader:
    """The DASH downloader (imports the download machinery on first use)."""
    from core.downloaders.dash.job import DOWNLOADER

    return DOWNLOADER
