"""Live HLS recording: poll the playlist, fetch new segments, append them in order.

Each stream (video, and a separate audio rendition if any) is recorded into
`<work>/<role>.rec.ts` as segments arrive, in media-sequence order, with a
small state file (last sequence, size) written after every append. That file
is a valid MPEG-TS at every moment, so even after a kill -9 the recording so
far is playable and the next run truncates it to the recorded size and goes
on appending.

What a user gets when a recording stops before the stream ends:
- stop (or engine shutdown, or a failure): the output file is written from
  what was recorded (remuxed like a finished one), *then* the task stops. The
  recording state stays in the work folder, so starting the task again keeps
  recording and rewrites the output with everything (segments that left the
  live window meanwhile are a gap, logged).
- EXT-X-ENDLIST: the recording is complete; output written, work folder
  removed (unless segments are to be kept).
- The playlist cannot be fetched, or brings nothing new, for LIVE_GIVE_UP
  seconds (default 15 minutes; errors are retried with backoff meanwhile):
  the stream is taken as over and the recording finishes successfully.
A segment that cannot be fetched after its retries is a gap, not a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.downloaders.base import DownloadContext
from core.downloaders.ffmpeg import FfmpegError, Input, file_url, remux
from core.downloaders.hls.fetch import Fetcher
from core.downloaders.hls.merge import Stream, keep_segments, remove_tree
from core.downloaders.hls.playlist import MediaPlaylist, MediaSegment
from core.downloaders.hls.pool import Arrivals, SegmentPool, Tally, cancel_all, supervise
from core.downloaders.hls.store import init_key, write_file
from core.downloaders.net import Retry, RetryPolicy, RetryWait, describe_error
from core.errors import DownloadError, UnsupportedMedia
from core.naming import unique_path

LIVE_GIVE_UP = 15 * 60.0  # seconds with no playlist or no new segment before the stream counts as over
POLL_BACKOFF_MAX = 30.0


@dataclass(slots=True)
class Recording:
    """One stream's growing recording and how far it got."""

    path: Path
    seq: int = -1  # last appended media sequence number
    size: int = 0
    init: str | None = None  # key of the init section last written (fMP4)

    @property
    def state_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def load(self) -> None:
        """Resume: trust the state file, cut whatever was appended after it."""
        try:
            state = json.loads(self.state_path.read_text())
            self.seq, self.size, self.init = int(state["seq"]), int(state["size"]), state.get("init")
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            self.seq, self.size, self.init = -1, 0, None
        with open(self.path, "ab") as f:
            f.truncate(self.size)

    def append(self, seq: int, data: bytes, init: tuple[str, bytes] | None) -> None:
        """Append (an init section if it changed, then) a segment, then record it: no await inside."""
        with open(self.path, "r+b") as f:
            f.seek(self.size)
            if init is not None:
                f.write(init[1])
                self.init = init[0]
            f.write(data)
            self.size = f.tell()
        self.seq = seq
        state = {"seq": seq, "size": self.size, "init": self.init}
        write_file(self.state_path, json.dumps(state).encode())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


class LiveJob(Protocol):
    """What a live recording uses of the HLS run that found the live playlists (`job.HlsJob`)."""

    @property
    def ctx(self) -> DownloadContext: ...
    @property
    def fetcher(self) -> Fetcher: ...
    @property
    def ffmpeg(self) -> str | None: ...
    @property
    def keeps_segments(self) -> bool: ...

    @property
    def end_mark(self) -> str: ...  # what ends a live stream ("EXT-X-ENDLIST")

    def new_pool(self, tally: Tally, arrivals: Arrivals) -> SegmentPool: ...
    async def reload(self, stream: Stream) -> MediaPlaylist: ...
    async def fetch_inits(self, stream: Stream, segments: Iterable[MediaSegment]) -> None: ...
    def apply_mtime(self, out: Path) -> None: ...


class LiveRecorder:
    def __init__(
        self, job: LiveJob, streams: list[Stream], playlists: list[MediaPlaylist], final: Path, work: Path
    ) -> None:
        self.job = job
        self.ctx = job.ctx
        self.streams = streams
        self.playlists = playlists
        self.final = final
        self.work = work
        self.recs = [Recording(work / f"{s.role}.rec{s.concat_ext}") for s in streams]
        self.keep = job.keeps_segments
        self.tally = Tally(self.ctx.progress, live=True)
        self.arrivals = Arrivals()
        self.pool: SegmentPool = job.new_pool(self.tally, self.arrivals)
        self.pool.tolerate_failures = True
        self.queues: list[asyncio.Queue[MediaSegment | None]] = [asyncio.Queue() for _ in streams]

    async def run(self) -> Path:
        for stream, rec in zip(self.streams, self.recs, strict=True):
            await asyncio.to_thread(rec.load)
            stream.segments = []
        self.tally.start(0, 0, sum(r.size for r in self.recs))
        if any(r.seq >= 0 for r in self.recs):
            self.ctx.log(f"resuming the live recording after segment {self.recs[0].seq}")
        else:
            self.ctx.log(f"live stream: recording until {self.job.end_mark} or stop")
        tasks = self.pool.start()
        tasks.append(asyncio.create_task(self._poll_all(), name="hls-live-poll"))
        tasks += [asyncio.create_task(self._append(i), name=f"hls-live-append-{i}") for i in range(len(self.streams))]
        try:
            await supervise(tasks)
        except BaseException:
            await cancel_all(tasks)
            await self._finalize(done=False)
            raise
        out = await self._finalize(done=True)
        if out is None:
            raise DownloadError("the live stream ended before any segment was recorded")
        for rec in self.recs:
            rec.remove()
        if self.keep:
            await keep_segments(self.streams)
            (self.work / "source.txt").unlink(missing_ok=True)
        else:
            for stream in self.streams:
                stream.store.close()
            await asyncio.to_thread(remove_tree, self.work)
        self.job.apply_mtime(out)
        self.ctx.progress.set_total(self.tally.done_bytes)
        return out

    # ---- polling ---------------------------------------------------------
    async def _poll_all(self) -> None:
        await asyncio.gather(*(self._poll(i) for i in range(len(self.streams))))
        self.pool.close()

    async def _poll(self, i: int) -> None:
        stream, rec, pl = self.streams[i], self.recs[i], self.playlists[i]
        last = rec.seq
        last_new = last_ok = time.monotonic()
        try:
            while True:
                started = time.monotonic()
                new = [seg for seg in pl.segments if seg.seq > last]
                if not new and pl.segments and pl.segments[-1].seq < last - len(pl.segments):
                    self.ctx.log(f"{stream.role}: media sequence went back (stream restarted?); following it")
                    new = list(pl.segments)
                if new:
                    # (not when the last one is still listed: a DASH $Time$ stream's numbers are times)
                    if last >= 0 and new[0].seq > last + 1 and all(seg.seq != last for seg in pl.segments):
                        self.ctx.log(f"{stream.role}: {new[0].seq - last - 1} segment(s) left the live window "
                                     "before they could be fetched (gap)")
                    await self._queue(i, new)
                    last, last_new = new[-1].seq, started
                if pl.endlist:
                    self.ctx.log(f"{stream.role}: stream ended ({self.job.end_mark})")
                    return
                if started - last_new > LIVE_GIVE_UP:
                    self.ctx.log(f"{stream.role}: no new segment for {LIVE_GIVE_UP / 60:.0f} min: recording ends")
                    return
                delay = pl.target_duration if new else pl.target_duration / 2
                await asyncio.sleep(max(0.0, started + delay - time.monotonic()))
                fetched = await self._refresh(stream, pl.target_duration, last_ok)
                if fetched is None:
                    return
                pl, last_ok = fetched, time.monotonic()
        finally:
            self.queues[i].put_nowait(None)

    async def _refresh(self, stream: Stream, target: float, last_ok: float) -> MediaPlaylist | None:
        """The playlist again; outages are waited out with backoff, up to LIVE_GIVE_UP."""
        settings = self.ctx.settings
        note = self.ctx.progress.set_note

        def waiting(wait: RetryWait) -> None:
            if wait.failures == 1 or wait.failures % 10 == 0:
                self.ctx.log(f"{wait.doing}: {wait.reason}; polling again in {wait.delay:.1f}s")
            note(f"{wait.doing} unavailable, polling again in {wait.delay:.0f} s: {wait.reason}")

        policy = RetryPolicy(retries=sys.maxsize, backoff_base=settings.backoff_base,
                             backoff_max=min(settings.backoff_max, max(target, POLL_BACKOFF_MAX)))
        # Every failure but an unsupported playlist is waited out, until LIVE_GIVE_UP.
        retry = Retry(policy, f"{stream.role} playlist", log=self.ctx.log, note=note, contact=self.ctx.contact,
                      retryable=lambda exc: not isinstance(exc, UnsupportedMedia), final=lambda exc: exc,
                      on_wait=waiting)
        while True:
            try:
                playlist = await self.job.reload(stream)
            except Exception as exc:
                if not isinstance(exc, UnsupportedMedia) and time.monotonic() - last_ok > LIVE_GIVE_UP:
                    self.ctx.log(f"{stream.role} playlist unavailable for {LIVE_GIVE_UP / 60:.0f} min "
                                 f"({describe_error(exc)}): recording ends")
                    return None
                await retry.failed(exc)
                continue
            if retry.failures:
                self.ctx.log(f"{stream.role} playlist is back after {retry.failures} failed poll(s)")
            retry.succeeded()
            return playlist

    async def _queue(self, i: int, new: list[MediaSegment]) -> None:
        stream = self.streams[i]
        await self.job.fetch_inits(stream, new)
        for seg in new:
            if seg.seq not in stream.store.done:
                self.pool.queue.put_nowait((stream, seg.seq, seg))
            self.queues[i].put_nowait(seg)
        self.tally.add_expected(len(new))

    # ---- appending -------------------------------------------------------
    async def _append(self, i: int) -> None:
        stream, rec, queue = self.streams[i], self.recs[i], self.queues[i]
        appended: list[tuple[int, MediaSegment]] = []
        while (seg := await queue.get()) is not None:
            data = await self.arrivals.take(stream, seg.seq)
            if data is None:
                continue
            init = None
            if seg.init is not None and init_key(seg.init) != rec.init:
                init_file = stream.store.init_path(seg.init)
                if init_file is not None:
                    init = (init_key(seg.init), init_file.read_bytes())
            rec.append(seg.seq, data, init)
            appended.append((seg.seq, seg))
            if self.keep:
                stream.segments = appended
            else:
                stream.store.forget(seg.seq)

    # ---- output ----------------------------------------------------------
    async def _finalize(self, done: bool) -> Path | None:
        """Write the output from the recordings; keep the recordings unless done."""
        try:
            out = await self._write_output(done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if done:
                raise
            self.ctx.log(f"could not write the recording so far: {describe_error(exc)}")
            return None
        if out is not None and not done:
            self.ctx.log(f"recording so far written to {out.name}; start the task again to continue it")
        return out

    async def _write_output(self, done: bool) -> Path | None:
        recorded = [(s, r) for s, r in zip(self.streams, self.recs, strict=True) if r.size > 0]
        if not recorded:
            return None
        final = self.final
        part = final.with_name(final.name + ".part")
        if len(recorded) == 1 and final.suffix.lower() == recorded[0][0].concat_ext:
            await self._place(recorded[0][1].path, final, part, move=done)
            return final
        if self.job.ffmpeg:
            try:
                await remux([Input(file_url(r.path)) for _, r in recorded], part, self.job.ffmpeg)
                os.replace(part, final)
                return final
            except FfmpegError as exc:
                self.ctx.log(f"remux failed ({exc}); keeping the recording as MPEG-TS")
        first = unique_path(final.parent, final.stem + recorded[0][0].concat_ext)
        for stream, rec in recorded:
            target = first if rec is recorded[0][1] else unique_path(
                final.parent, f"{final.stem}.{stream.role}{stream.concat_ext}")
            await self._place(rec.path, target, part, move=done)
        return first

    @staticmethod
    async def _place(src: Path, target: Path, part: Path, move: bool) -> None:
        if move:
            os.replace(src, target)
            return
        await asyncio.to_thread(shutil.copyfile, src, part)
        os.replace(part, target)
