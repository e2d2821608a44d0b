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

from core.downloaders.ffmpeg import FfmpegError, Input, remux
from core.downloaders.hls.playlist import InitSection, MediaSegment
from core.downloaders.hls.store import SegmentStore
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


def copy_file_into(out_fd: int, path: Path) -> int:
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
                    copy_file_into(fd, init_file)
                current = seg.init
            stream.store.copy_into(fd, seg.seq)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NoSpaceLeft(str(out)) from exc
        raise
    finally:
        os.close(fd)


async def concat(stream: Stream, out: Path) -> None:
    await asyncio.to_thread(_concat, stream, out)


def concat_list(stream: Stream) -> str:
    """An ffmpeg `concatf:` list: each init section and segment, as byte ranges of its file.

    ffmpeg's concat protocol then reads the binary concatenation straight
    from the pack, so no concatenated copy is ever written. Paths are relative
    to the work folder, where ffmpeg runs: no user-chosen name appears in them.
    """
    lines = []
    current: InitSection | None = None
    store = stream.store
    folder = store.folder.name
    for _, seg in stream.segments:
        if seg.init is not None and seg.init != current:
            init_file = store.init_path(seg.init)
            if init_file is not None:
                lines.append(f"file:{folder}/{init_file.name}")
            current = seg.init
        start, size = store.span(seg.seq)
        lines.append(f"subfile,,start,{start},end,{start + size},,:{folder}/{store.pack_path.name}")
    return "\n".join(lines) + "\n"


async def remux_streams(streams: Sequence[Stream], part: Path, ffmpeg: str) -> None:
    """Binary-concatenate each stream (inside ffmpeg) and remux them all into `part`."""
    inputs = []
    work = streams[0].store.folder.parent
    for stream in streams:
        listing = stream.store.folder / "concat.txt"
        listing.write_text(concat_list(stream))
        inputs.append(Input(f"concatf:{stream.store.folder.name}/concat.txt", None if stream.fmp4 else "mpegts"))
    try:
        await remux(inputs, part, ffmpeg, cwd=work)
    finally:
        for stream in streams:
            (stream.store.folder / "concat.txt").unlink(missing_ok=True)


async def merge(
    streams: Sequence[Stream], work: Path, final: Path, ffmpeg: str | None, log: Callable[[str], None],
    take_pack: bool = False,
) -> Path:
    """Remux the streams into `final`; or, for a .ts output, concatenate into it.

    take_pack: the segments are not needed after this, so a pack that already is the
    concatenation (stored in playlist order, no init sections) becomes the output by a rename.

    If ffmpeg is missing or fails, the concatenation itself is kept (as .ts, or
    .mp4 for fMP4) next to where the output would be, and the log says so.
    """
    part = final.with_name(final.name + ".part")
    if len(streams) == 1 and final.suffix.lower() == streams[0].concat_ext:
        stream = streams[0]
        seqs = [seg.seq for _, seg in stream.segments]
        if take_pack and all(seg.init is None for _, seg in stream.segments) and stream.store.holds_in_order(seqs):
            stream.store.take_pack(part)
            os.replace(part, final)
            return final
        await concat(stream, part)
        os.replace(part, final)
        return final
    if ffmpeg:
        try:
            await remux_streams(streams, part, ffmpeg)
        except FfmpegError as exc:
            log(f"remux failed ({exc}); keeping the concatenated segments instead")
        else:
            os.replace(part, final)
            return final
    else:
        log("not remuxing (no ffmpeg): keeping the concatenated segments")
    part.unlink(missing_ok=True)
    first = final.with_suffix(streams[0].concat_ext)
    if first != final:
        first = unique_path(final.parent, first.name)
    for stream in streams:
        target = first if stream is streams[0] else unique_path(
            final.parent, f"{final.stem}.{stream.role}{stream.concat_ext}")
        await concat(stream, part)
        os.replace(part, target)
        if stream is not streams[0]:
            log(f"{stream.role} kept separately as {target.name}")
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
            stream.store.export(seg.seq, folder / names[seg.seq])
        (folder / "index.m3u8").write_text(local_playlist(stream, names, init_names))
        stream.store.remove_pack()


async def segment_folder(streams: Sequence[Stream], work: Path, final: Path) -> Path:
    """no_merge: the output is a folder of decrypted segments plus playlists."""
    staging = work / "output"
    if staging.exists():
        await asyncio.to_thread(shutil.rmtree, staging)
    await asyncio.to_thread(_segment_folder, streams, staging)
    os.replace(staging, final)
    return final


def _keep_segments(streams: Sequence[Stream]) -> None:
    for stream in streams:
        store = stream.store
        names = {}
        for ordinal, seg in stream.segments:
            if seg.seq in store.done:
                names[seg.seq] = f"{ordinal:05d}{store.ext}"
                store.export(seg.seq, store.folder / names[seg.seq])
        init_names: dict[InitSection, str] = {}
        for _, seg in stream.segments:
            if seg.init is not None and (p := store.init_path(seg.init)) is not None:
                init_names[seg.init] = p.name
        kept = Stream(stream.role, stream.url, [(o, s) for o, s in stream.segments if s.seq in names], store,
                      stream.fmp4)
        (store.folder / "index.m3u8").write_text(local_playlist(kept, names, init_names))
        store.remove_pack()


async def keep_segments(streams: Sequence[Stream]) -> None:
    """keep_segments: each segment as a file beside an index.m3u8 that plays them."""
    await asyncio.to_thread(_keep_segments, streams)


def remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
