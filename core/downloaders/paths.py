"""Where a download keeps its unfinished state, next to the final file.

    video.mp4             the final file: appears only when complete (atomic rename)
    video.mp4.part        data being written (pre-sized for segmented HTTP)
    video.mp4.part.json   resume state: validator (ETag/Last-Modified), done ranges
    video.mp4.parts/      work folder (HLS segments, yt-dlp fragments)
"""

from __future__ import annotations

from pathlib import Path


def part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


def state_path(final: Path) -> Path:
    return final.with_name(final.name + ".part.json")


def work_dir(final: Path) -> Path:
    return final.with_name(final.name + ".parts")


def temp_paths(final: Path) -> tuple[Path, Path, Path]:
    return part_path(final), state_path(final), work_dir(final)
