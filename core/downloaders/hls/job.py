"""The HLS (m3u8) downloader: playlist → segments → one output file.

Flow: fetch the playlist; for a master, pick a variant (quality option) and
its separate audio rendition if it has one; claim the output name; download
segments concurrently into the work folder (`<output>.parts/`), each as its
own complete file, so a stop or a crash resumes without re-fetching any; then
merge. A single MPEG-TS stream is remuxed *while* it downloads, by piping the
segments in order into ffmpeg (`-c copy`); anything else is concatenated and
remuxed at the end. Live playlists are recorded by `live`.

Options (TaskOptions): segment_threads, skip ("1,92-100", 1-based, applied
to every stream), log_skipped, keep_segments / delete_segments (keep the
segment files and an index.m3u8 for them), no_merge (the output is a folder of
decrypted segments with an index.m3u8), quality, use_server_file_time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from core.detect import is_dash_manifest
from core.downloaders.base import DownloadContext
from core.downloaders.ffmpeg import FfmpegError, PipeRemuxer, container_for, find_ffmpeg
from core.downloaders.hls.crypto import KeyStore, decrypt
from core.downloaders.hls.fetch import Fetcher, NotAPlaylist, short_name
from core.downloaders.hls.live import LiveRecorder
from core.downloaders.hls.merge import Stream, keep_segments, merge, remove_tree, segment_folder
from core.downloaders.hls.playlist import (
    MediaPlaylist,
    MediaSegment,
    SkipRule,
    choose,
    is_master,
    parse_master,
    parse_media,
    parse_skip,
)
from core.downloaders.hls.pool import Arrivals, InOrder, SegmentPool, Tally, supervise
from core.downloaders.hls.refresh import PlaylistRefresher
from core.downloaders.hls.store import SegmentStore, write_file
from core.downloaders.paths import work_dir
from core.errors import DownloadError, WrongKind
from core.models import Task, TaskKind

MEDIA_EXTS = (".ts", ".mp4", ".mkv", ".mov", ".m4a")
STRIPPED_EXTS = (*MEDIA_EXTS, ".m3u8", ".m3u", ".m4s", ".aac", ".mpd")


def output_name(name: str, *, ffmpeg: bool, fmp4: bool, audio_only: bool, no_merge: bool) -> str:
    """The file (or, for no_merge, folder) name: a container the user named is honoured."""
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot and stem else ""
    if ext in STRIPPED_EXTS:
        name = stem
    if no_merge:
        return name
    natural = ".mp4" if fmp4 else ".ts"
    if ext in MEDIA_EXTS and (ffmpeg or ext == natural):
        return name + ext
    if not ffmpeg:
        return name + natural
    return name + (".m4a" if audio_only else ".mp4")


def _source_key(urls: list[str]) -> str:
    """Which playlists a work folder belongs to (queries hold expiring tokens: ignored)."""
    return "\n".join(urlsplit(u)._replace(query="", fragment="").geturl() for u in urls) + "\n"


class HlsJob:
    """One run of one HLS task.

    The DASH downloader (core/downloaders/dash) is a subclass: it overrides `playlists` (the MPD's chosen
    representations as media playlists) and `reload` (a live manifest refreshed); the rest is shared."""

    end_mark = "EXT-X-ENDLIST"  # what ends a live stream, as the log names it

    def __init__(self, task: Task, ctx: DownloadContext) -> None:
        self.task = task
        self.ctx = ctx
        self.opts = task.options
        self.fetcher = Fetcher(ctx, want_mtime=self.opts.use_server_file_time)
        self.keys = KeyStore(self.fetcher.get_key)
        self.ffmpeg = find_ffmpeg()
        self.debug = ctx.log if self.opts.debug_log else (lambda _text: None)
        self._pipe_ok = True
        self.sources: list[tuple[str, str, MediaPlaylist]] = []

    @property
    def keeps_segments(self) -> bool:
        """Whether the segment files (and an index.m3u8 for them) outlive the run."""
        return self.opts.keep_segments or not self.opts.delete_segments

    # ---- playlists -----------------------------------------------------
    async def playlists(self) -> tuple[list[tuple[str, str, MediaPlaylist]], bool]:
        """[(role, url, playlist)] to download, and whether only audio was asked for."""
        try:
            text, url = await self.fetcher.get_text(self.task.url, "playlist")
        except NotAPlaylist as exc:
            if is_dash_manifest(exc.head, exc.content_type):  # an "m3u8" task that is a DASH manifest
                raise WrongKind(TaskKind.DASH, "the URL is a DASH manifest (MPD)", certain=True) from None
            if self.opts.auto_kind:  # the type was guessed: let the engine hand it to the http downloader
                raise WrongKind(TaskKind.HTTP, "the URL is not an HLS playlist") from None
            raise
        audio_only = (self.opts.quality or "").strip().lower() == "audio"
        if not is_master(text):
            return [("video", url, parse_media(text, url))], audio_only
        master = parse_master(text, url)
        choice = choose(master, self.opts.quality)
        self.ctx.log(f"master playlist: {len(master.variants)} variant(s); chose {choice.label}")
        wanted = [(role, u) for role, u in (("video", choice.video), ("audio", choice.audio)) if u]
        out = []
        for role, media_url in wanted:
            media_text, final_url = await self.fetcher.get_text(media_url, f"{role} playlist")
            if is_master(media_text):
                raise DownloadError(f"{role} playlist {short_name(media_url)} is another master playlist")
            out.append((role, final_url, parse_media(media_text, final_url)))
        return out, audio_only and choice.video is None

    # ---- the run -------------------------------------------------------
    async def run(self) -> Path:
        sources, audio_only = await self.playlists()
        self.sources = sources
        for role, url, pl in sources:
            self.debug(f"{role} playlist {url}: {len(pl.segments)} segment(s), {pl.duration:.1f} s, "
                       f"target {pl.target_duration:g} s, media sequence {pl.media_sequence}"
                       f"{'' if pl.endlist else ', live'}")
        live = any(not pl.endlist for _, _, pl in sources)
        if self.task.is_live and not live:
            self.ctx.log(f"playlist has {self.end_mark}: downloading it as a finished stream")
        fmp4 = any(seg.init is not None for _, _, pl in sources for seg in pl.segments[:1])
        name = output_name(self.task.name, ffmpeg=self.ffmpeg is not None, fmp4=fmp4,
                           audio_only=audio_only, no_merge=self.opts.no_merge and not live)
        final = await self.ctx.claim_output(name)
        work = work_dir(final)
        work.mkdir(parents=True, exist_ok=True)
        self._check_work(work, [u for _, u, _ in sources])
        skip = parse_skip(self.opts.skip)
        streams = []
        for role, url, pl in sources:
            store = SegmentStore(work / role, ".m4s" if fmp4 else ".ts")
            await asyncio.to_thread(store.scan)
            if live:
                segments = [(seg.seq, seg) for seg in pl.segments]
            else:
                segments = self._apply_skip(role, pl, skip)
            streams.append(Stream(role, url, segments, store, fmp4))
        try:
            if live:
                if skip:
                    self.ctx.log("skip expression ignored: this is a live recording")
                return await LiveRecorder(self, streams, [pl for _, _, pl in sources], final, work).run()
            return await self.vod(streams, final, work)
        finally:
            for stream in streams:
                stream.store.close()

    async def reload(self, stream: Stream) -> MediaPlaylist:
        """A live stream's playlist again (LiveRecorder polls it)."""
        text, url = await self.fetcher.get_text(stream.url, f"{stream.role} playlist", retries=0)
        return parse_media(text, url)

    def _check_work(self, work: Path, urls: list[str]) -> None:
        """A work folder left by another variant or playlist is not resumed from."""
        marker = work / "source.txt"
        key = _source_key(urls)
        try:
            previous = marker.read_text()
        except FileNotFoundError:
            previous = None
        if previous is not None and previous != key:
            self.ctx.log("the playlist or variant changed since the last run: starting over")
            for child in work.iterdir():
                if child.is_dir():
                    remove_tree(child)
                else:
                    child.unlink(missing_ok=True)
        if previous != key:
            write_file(marker, key.encode())

    def _apply_skip(self, role: str, pl: MediaPlaylist, skip: SkipRule) -> list[tuple[int, MediaSegment]]:
        kept: list[tuple[int, MediaSegment]] = []
        skipped: list[str] = []
        for ordinal, seg in enumerate(pl.segments, 1):
            if ordinal in skip:
                skipped.append(f"{ordinal} ({short_name(seg.url, seg.byterange)})")
            else:
                kept.append((ordinal, seg))
        if skipped:
            what = "audio segment(s)" if role == "audio" else "segment(s)"
            if self.opts.log_skipped:
                self.ctx.log(f"skipped {len(skipped)} {what} by the skip rule: {', '.join(skipped)}")
            else:
                self.ctx.log(f"skipping {len(skipped)} {what} by the skip rule")
        if not kept:
            raise DownloadError("the skip rule leaves no segment to download")
        return kept

    async def fetch_inits(self, stream: Stream, segments: Iterable[MediaSegment]) -> None:
        """EXT-X-MAP sections are few and small: fetched one by one before their segments."""
        for seg in segments:
            init = seg.init
            if init is None or stream.store.init_path(init) is not None:
                continue
            what = f"init section ({short_name(init.url, init.byterange)})"
            data = await self.fetcher.get_segment(init.url, init.byterange, what, count=False)
            if seg.key is not None and seg.key.iv is not None:
                # RFC 8216 4.3.2.5: an encrypted EXT-X-MAP comes with an explicit IV.
                data = decrypt(data, await self.keys.get(seg.key), seg.key.iv, what)
            stream.store.save_init(init, data)

    def refresher(self) -> PlaylistRefresher:
        """Expired segment/key URLs (403/410) are renewed by fetching the task's URL again (hls/refresh.py)."""
        async def reload() -> list[tuple[str, str, MediaPlaylist]]:
            return (await self.playlists())[0]

        settings = self.ctx.settings
        return PlaylistRefresher(self.task.id, {role: pl for role, _, pl in self.sources}, reload, self.ctx.log,
                                 settings.link_refreshes, settings.link_refresh_window, self.ctx.refreshes)

    def new_pool(self, tally: Tally, arrivals: Arrivals) -> SegmentPool:
        return SegmentPool(self.fetcher, self.keys, tally, arrivals, self.ctx.settings.segment_threads)

    async def vod(self, streams: list[Stream], final: Path, work: Path) -> Path:
        ctx = self.ctx
        tally = Tally(ctx.progress)
        total = sum(len(s.segments) for s in streams)
        done = [(s, seg) for s in streams for _, seg in s.segments if seg.seq in s.store.done]
        tally.start(total, len(done), sum(s.store.done[seg.seq] for s, seg in done))
        if done:
            ctx.log(f"resuming: {len(done)} of {total} segments already downloaded")
        for stream in streams:
            await self.fetch_inits(stream, (seg for _, seg in stream.segments))
        todo = [(s, o, seg) for s in streams for o, seg in s.segments if seg.seq not in s.store.done]
        arrivals = Arrivals()
        pool = self.new_pool(tally, arrivals)
        pool.refresher = self.refresher()
        pool.put_all(todo)
        tasks = pool.start(len(todo))
        pool.close()
        pipe = self._pipe(streams, final)
        if pipe is not None:
            try:
                await pipe.start()
            except OSError as exc:
                ctx.log(f"cannot start ffmpeg ({exc}); will keep the MPEG-TS")
                pipe, self.ffmpeg = None, None
        if pipe is None:
            arrivals.keep_in_memory = False
            if self._concatenates(streams, final):
                pool.in_order = InOrder(streams[0])
        else:
            tasks.append(asyncio.create_task(self._feed(pipe, streams[0], arrivals), name="hls-remux-feed"))
        try:
            await supervise(tasks)
            if pipe is not None and self._pipe_ok:
                await pipe.finish()
        except FfmpegError as exc:
            self._pipe_ok = False
            ctx.log(f"remux failed ({exc})")
        except BaseException:
            if pool.in_order is not None:
                with contextlib.suppress(OSError, DownloadError):
                    pool.in_order.flush()  # a stop or failure keeps every segment fetched
            if pipe is not None:
                await pipe.abort()
            raise
        tally.progress.set_total(tally.done_bytes)
        if self.opts.no_merge:
            out = await segment_folder(streams, work, final)
            await asyncio.to_thread(remove_tree, work)
            return out
        if pipe is not None and self._pipe_ok:
            os.replace(pipe.output, final)
            out = final
        else:
            out = await merge(streams, work, final, self.ffmpeg if pipe is None else None, ctx.log,
                              take_pack=not self.keeps_segments)
        await self.finish_work(streams, work)
        self.apply_mtime(out)
        return out

    def _concatenates(self, streams: list[Stream], final: Path) -> bool:
        """Whether the output is the one stream's segments concatenated, the pack not kept (see InOrder)."""
        return (len(streams) == 1 and not self.opts.no_merge and not self.keeps_segments
                and final.suffix.lower() == streams[0].concat_ext)

    def _pipe(self, streams: list[Stream], final: Path) -> PipeRemuxer | None:
        """Remux during the download when there is one MPEG-TS stream going into another container."""
        if self.ffmpeg is None or self.opts.no_merge or len(streams) != 1 or streams[0].fmp4:
            return None
        if final.suffix.lower() == ".ts":
            return None
        part = final.with_name(final.name + ".part")
        return PipeRemuxer(part, container_for(final), "mpegts", self.ffmpeg)

    async def _feed(self, pipe: PipeRemuxer, stream: Stream, arrivals: Arrivals) -> None:
        try:
            for _, seg in stream.segments:
                data = await arrivals.take(stream, seg.seq)
                if data is not None:
                    await pipe.feed(data)
        except FfmpegError as exc:
            self._pipe_ok = False
            arrivals.keep_in_memory = False
            self.ctx.log(f"remux while downloading failed ({exc}); will keep the MPEG-TS")
            await pipe.abort()

    async def finish_work(self, streams: list[Stream], work: Path) -> None:
        if self.keeps_segments:
            await keep_segments(streams)
            for leftover in (work / "source.txt", *(work / f"{s.role}{s.concat_ext}" for s in streams)):
                leftover.unlink(missing_ok=True)
            self.ctx.log(f"segments kept in {work}")
        else:
            for stream in streams:
                stream.store.close()
            await asyncio.to_thread(remove_tree, work)

    def apply_mtime(self, out: Path) -> None:
        if self.opts.use_server_file_time and self.fetcher.newest_mtime and out.exists():
            os.utime(out, (self.fetcher.newest_mtime, self.fetcher.newest_mtime))


class HlsDownloader:
    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        return await HlsJob(task, ctx).run()


DOWNLOADER = HlsDownloader()
