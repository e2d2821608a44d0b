"""The DASH (MPD) downloader: manifest → chosen representations → the HLS segment machinery.

A DASH run is an HLS run (core/downloaders/hls `HlsJob`) whose media playlists
come from the MPD: `playlists` fetches and parses the manifest, refuses DRM,
picks one video and one audio representation (the task's quality, as HLS picks
a variant) and expands each into media segments (a SegmentBase's sidx is fetched
here). Everything after that is shared: concurrent segment workers, the segment
store that makes a stop resumable without re-fetching finished segments, the
progress tally, the init + segments concatenation and the ffmpeg remux into
MP4, and the live recorder, which calls `reload` to refresh a dynamic manifest.

Live (MPD@type="dynamic"): the last Period is recorded; the manifest is fetched
again every minimumUpdatePeriod (else every segment duration) until it turns
static or the task is stopped (see core/downloaders/hls live for what a stop
keeps). Multi-Period VOD manifests are downloaded Period after Period into one
output, each Period's representations chosen by the same rule.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urljoin

from core.detect import looks_like_mpd
from core.downloaders.base import DownloadContext
from core.downloaders.dash.mpd import (
    Manifest,
    Period,
    Representation,
    SegmentBase,
    SegmentList,
    SegmentTemplate,
    parse_mpd,
)
from core.downloaders.dash.protection import refuse_drm
from core.downloaders.dash.segments import list_segments, template_segments
from core.downloaders.dash.select import select
from core.downloaders.dash.sidx import parse_sidx
from core.downloaders.hls import (
    ByteRange,
    HlsJob,
    InitSection,
    MediaPlaylist,
    MediaSegment,
    NotAPlaylist,
    Stream,
    short_name,
)
from core.errors import DownloadError, UnsupportedMedia, WrongKind
from core.models import Task, TaskKind

MANIFEST_REUSE = 0.5  # seconds a live manifest fetched for one stream serves the other's poll too


class DashJob(HlsJob):
    """One run of one DASH task."""

    end_mark = 'MPD type="static"'  # a live manifest that turns static has ended

    def __init__(self, task: Task, ctx: DownloadContext) -> None:
        super().__init__(task, ctx)
        self.fetcher.looks_right = looks_like_mpd
        self.fetcher.wrong_body = "not a DASH manifest (no <MPD> element)"
        self._manifest_url = task.url
        self._fresh: tuple[float, Manifest] | None = None

    async def _manifest(self, retries: int | None = None) -> Manifest:
        text, url = await self.fetcher.get_text(self._manifest_url, "manifest", retries=retries)
        mpd = parse_mpd(text, url)
        if mpd.location:
            self._manifest_url = mpd.location
        self._fresh = (time.monotonic(), mpd)
        return mpd

    # ---- what to download ------------------------------------------------------------
    async def playlists(self) -> tuple[list[tuple[str, str, MediaPlaylist]], bool]:
        try:
            mpd = await self._manifest()
        except NotAPlaylist:
            if self.opts.auto_kind:  # guessed from the .mpd name: let the engine hand it to the http downloader
                raise WrongKind(TaskKind.HTTP, "the URL is not a DASH manifest") from None
            raise
        periods = [mpd.periods[-1]] if mpd.dynamic else list(mpd.periods)
        selections = [select(period, self.opts.quality) for period in periods]
        refuse_drm([rep for sel in selections for _, rep in sel.chosen])
        count = sum(len(p.representations) for p in periods)
        where = f" in {len(periods)} periods" if len(periods) > 1 else ""
        self.ctx.log(f"DASH manifest{' (live)' if mpd.dynamic else ''}: {count} representation(s){where}; "
                     f"chose {selections[0].label}")
        out = []
        for role, _ in selections[0].chosen:
            segments: list[MediaSegment] = []
            for period, sel in zip(periods, selections, strict=True):
                rep = sel.of(role)
                if rep is None:
                    self.ctx.log(f"period {period.id or periods.index(period) + 1} has no {role}: skipped")
                    continue
                segments += await self._segments(mpd, period, rep, role)
            if not mpd.dynamic:  # one numbering over all periods (each period's own numbers may restart)
                segments = [_renumbered(seg, i) for i, seg in enumerate(segments)]
            if not segments and not mpd.dynamic:
                raise DownloadError(f"the manifest lists no {role} segment")
            out.append((role, _identity(segments, mpd.url, role), self._playlist(mpd, segments)))
        return out, selections[0].video is None

    async def reload(self, stream: Stream) -> MediaPlaylist:
        """A live manifest again, the stream's representation chosen again, its segments listed."""
        fresh = self._fresh
        if fresh is not None and time.monotonic() - fresh[0] < MANIFEST_REUSE:
            mpd = fresh[1]
        else:
            mpd = await self._manifest(retries=0)
        period = mpd.periods[-1]
        rep = select(period, self.opts.quality).of(stream.role)
        if rep is None:
            raise DownloadError(f"the manifest no longer has a {stream.role} representation")
        refuse_drm([rep])
        return self._playlist(mpd, await self._segments(mpd, period, rep, stream.role))

    @staticmethod
    def _playlist(mpd: Manifest, segments: list[MediaSegment]) -> MediaPlaylist:
        longest = max((s.duration for s in segments), default=0.0) or mpd.max_segment_duration or 2.0
        poll = mpd.minimum_update_period if mpd.minimum_update_period else longest
        return MediaPlaylist(tuple(segments), max(0.5, poll), not mpd.dynamic, segments[0].seq if segments else 0)

    async def _segments(self, mpd: Manifest, period: Period, rep: Representation, role: str) -> list[MediaSegment]:
        addressing = rep.addressing
        if isinstance(addressing, SegmentTemplate):
            return template_segments(rep, addressing, mpd, period, time.time())
        if isinstance(addressing, SegmentList):
            return list_segments(rep, addressing, period)
        if isinstance(addressing, SegmentBase):
            return await self._indexed(rep, addressing, role)
        raise UnsupportedMedia(f"{role} representation {rep.id} has no SegmentTemplate, SegmentList or SegmentBase")

    async def _indexed(self, rep: Representation, base: SegmentBase, role: str) -> list[MediaSegment]:
        """A SegmentBase: its sidx box fetched and read; each entry one byte-range segment of the file."""
        index = base.index_range
        if index is None:
            raise UnsupportedMedia(f"{role} representation {rep.id}: SegmentBase without an indexRange")
        url = rep.base_url
        data = await self.fetcher.get_segment(url, index, f"{role} index ({short_name(url, index)})", count=False)
        entries = parse_sidx(data, index.offset)
        init = base.initialization
        section: InitSection | None
        if init is not None and init.url:
            section = InitSection(urljoin(url, init.url), init.byterange)
        elif init is not None and init.byterange is not None:
            section = InitSection(url, init.byterange)
        else:  # no Initialization: the init part (ftyp, moov) is everything before the sidx
            section = InitSection(url, ByteRange(0, index.offset)) if index.offset > 0 else None
        return [MediaSegment(seq=i, url=url, duration=e.duration, byterange=e.byterange, init=section)
                for i, e in enumerate(entries)]


def _renumbered(seg: MediaSegment, seq: int) -> MediaSegment:
    return MediaSegment(seq=seq, url=seg.url, duration=seg.duration, byterange=seg.byterange, key=seg.key,
                        init=seg.init, discontinuity=seg.discontinuity)


def _identity(segments: list[MediaSegment], manifest_url: str, role: str) -> str:
    """What a work folder's streams are (HlsJob keys resumes on it): the representation's init or first
    segment URL, which names it; the manifest URL for a live one that lists nothing yet."""
    first = segments[0] if segments else None
    if first is None:
        return f"{manifest_url}/{role}"
    return first.init.url if first.init is not None else first.url


class DashDownloader:
    async def run(self, task: Task, ctx: DownloadContext) -> Path:
        return await DashJob(task, ctx).run()


DOWNLOADER = DashDownloader()
