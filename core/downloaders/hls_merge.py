"""Turning segment files into the output: concatenation, remux, or a segment folder.

Concatenation copies in the kernel (copy_file_range / sendfile) in a worker
thread; the remux is ffmpeg `-c copy`. Every output is written under a temp
name and renamed, so the final name never holds a half-written file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.downloaders.ffmpeg import FfmpegError, remux
from core.downloaders.hls_playlist import InitSection, MediaSegment
from core.downloaders.hls_segments import SegmentStore
from core.errors import NoSpaceLeft
from core.naming import unique_path


@dataclass(slots=True)
class Stream:
    """One media playlist being downloaded (the video, or a separate audio rendition)."""

    role: str  # "video" | "audio"
    url: str
    segments: list[tuple[int, MediaSegment]]  # (1-based ordinal, segment), skipped ones removed
    store: SegmentStore
    fmp4: bool

    @property
    def concat_ext(self) -> str:
        return ".mp4" if self.fmp4 else ".ts"


def copy_into(out_fd: int, path: Path) -> int:
    """Append a whole file to out_fd with as few copies through user space as possible."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        left = size
        offset = 0
        try:
            while left > 0:
                n = os.copy_file_range(fd, out_fd, left, offset)
                if n == 0:
                    break
                left -= n
                offset += n
        except (AttributeError, OSError):
            while left > 0:
                n = os.sendfile(out_fd, fd, offset, left)
                if n == 0:
                    break
                left -= n
                offset += n
        return size
    finally:
        os.close(fd)


def _concat(stream: Stream, out: Path) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        current: InitSection | None = None
        for _, seg in stream.segments:
            if seg.init is not None and seg.init != current:
                init_file = stream.store.init_path(seg.init)
                if init_file is not None:
                    copy_into(fd, init_file)
                current = seg.init
            copy_into(fd, stream.store.path(seg.seq))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NoSpaceLeft(str(out)) from exc
        raise
    finally:
        os.close(fd)


async def concat(stream: Stream, out: Path) -> None:
    await asyncio.to_thread(_concat, stream, out)


async def merge(
    streams: Sequence[Stream], work: Path, final: Path, ffmpeg: str | None, log: Callable[[str], None]
) -> Path:
    """Concatenate each stream, then remux into `final` (or move the single concatenation there).

    If ffmpeg is missing or fails, the concatenation itself is kept (as .ts, or
    .mp4 for fMP4) next to where the output would be, and the log says so.
    """
    part = final.with_name(final.name + ".part")
    concats = [work / f"{s.role}{s.concat_ext}" for s in streams]
    for stream, out in zip(streams, concats, strict=True):
        await concat(stream, out)
    if len(streams) == 1 and final.suffix.lower() == streams[0].concat_ext:
        os.replace(concats[0], final)
        return final
    if ffmpeg:
        try:
            await remux(concats, part, ffmpeg)
        except FfmpegError as exc:
            log(f"remux failed ({exc}); keeping the concatenated segments instead")
        else:
            os.replace(part, final)
            for path in concats:
                path.unlink(missing_ok=True)
            return final
    else:
        log("ffmpeg not found: keeping the concatenated segments without remuxing")
    part.unlink(missing_ok=True)
    first = final.with_suffix(streams[0].concat_ext)
    if first != final:
        first = unique_path(final.parent, first.name)
    os.replace(concats[0], first)
    for stream, path in zip(streams[1:], concats[1:], strict=True):
        extra = unique_path(final.parent, f"{final.stem}.{stream.role}{stream.concat_ext}")
        os.replace(path, extra)
        log(f"{stream.role} kept separately as {extra.name}")
    return first


def local_playlist(stream: Stream, names: dict[int, str], init_names: dict[InitSection, str]) -> str:
    """A playlist for the decrypted segments on disk (no keys: they are plain now)."""
    target = max((seg.duration for _, seg in stream.segments), default=1.0)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{max(1, round(target + 0.499))}",
             "#EXT-X-PLAYLIST-TYPE:VOD"]
    current: InitSection | None = None
    for _, seg in stream.segments:
        if seg.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if seg.init is not None and seg.init != current and seg.init in init_names:
            lines.append(f'#EXT-X-MAP:URI="{init_names[seg.init]}"')
            current = seg.init
        lines.append(f"#EXTINF:{seg.duration:.3f},")
        lines.append(names[seg.seq])
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _segment_folder(streams: Sequence[Stream], target: Path) -> None:
    """Move segments into `target` under readable names, with an index.m3u8 per stream."""
    for stream in streams:
        folder = target if len(streams) == 1 else target / stream.role
        folder.mkdir(parents=True, exist_ok=True)
        names: dict[int, str] = {}
        init_names: dict[InitSection, str] = {}
        for ordinal, seg in stream.segments:
            if seg.init is not None and seg.init not in init_names:
                src = stream.store.init_path(seg.init)
                if src is not None:
                    init_names[seg.init] = f"init{len(init_names) + 1}.mp4"
                    os.replace(src, folder / init_names[seg.init])
            names[seg.seq] = f"{ordinal:05d}{stream.store.ext}"
            os.replace(stream.store.path(seg.seq), folder / names[seg.seq])
        (folder / "index.m3u8").write_text(local_playlist(stream, names, init_names))


async def segment_folder(streams: Sequence[Stream], work: Path, final: Path) -> Path:
    """no_merge: the output is a folder of decrypted segments plus playlists."""
    staging = work / "output"
    if staging.exists():
        await asyncio.to_thread(shutil.rmtree, staging)
    await asyncio.to_thread(_segment_folder, streams, staging)
    os.replace(staging, final)
    return final


def write_kept_playlists(streams: Sequence[Stream]) -> None:
    """keep_segments: an index.m3u8 beside the kept segments makes them playable."""
    for stream in streams:
        names = {seg.seq: stream.store.path(seg.seq).name for _, seg in stream.segments}
        init_names: dict[InitSection, str] = {}
        for _, seg in stream.segments:
            if seg.init is not None and (p := stream.store.init_path(seg.init)) is not None:
                init_names[seg.init] = p.name
        (stream.store.folder / "index.m3u8").write_text(local_playlist(stream, names, init_names))


def remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
