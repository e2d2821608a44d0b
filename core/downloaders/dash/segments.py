"""A Representation's segments: SegmentTemplate / SegmentList expanded into media segments.

The result is the HLS family's `MediaSegment` (an absolute URL, a duration, an
optional byte range, the init section), so the shared segment machinery fetches,
stores and merges DASH exactly like fMP4 HLS. A segment's `seq` is its identity
(what a resume looks up in the segment store): the segment's number, or its
start time for a SegmentTimeline whose URLs carry only $Time$. SegmentBase needs the sidx box from the
network, so the job resolves it (`sidx`); here it is only recognised.

Templates: $RepresentationID$, $Number$, $Time$, $Bandwidth$, each with an
optional printf width ($Number%05d$), and $$ for a literal $.
"""

from __future__ import annotations

import math
import re
from urllib.parse import urljoin

from core.downloaders.dash.mpd import (
    Initialization,
    Manifest,
    Period,
    Representation,
    SegmentList,
    SegmentTemplate,
    TimelineEntry,
)
from core.downloaders.hls import InitSection, MediaSegment
from core.errors import DownloadError, UnsupportedMedia

MAX_SEGMENTS = 500_000  # per representation and manifest: a bound on what a hostile one can make us list

_IDENTIFIER = re.compile(r"\$(RepresentationID|Number|Time|Bandwidth|SubNumber)?(?:%0?(\d*)([diouxX]))?\$")


def fill_template(template: str, *, rep_id: str, number: int = 0, time: int = 0, bandwidth: int = 0) -> str:
    """Substitute a SegmentTemplate's identifiers (ISO 23009-1 5.3.9.4.4)."""
    values = {"RepresentationID": rep_id, "Number": number, "Time": time, "Bandwidth": bandwidth, "SubNumber": 0}

    def one(m: re.Match[str]) -> str:
        name, width, conv = m.group(1), m.group(2), m.group(3)
        if name is None:
            if width or conv:
                raise DownloadError(f"bad template identifier {m.group(0)!r} in {template!r}")
            return "$"
        value = values[name]
        if isinstance(value, str):
            return value  # RepresentationID takes no format tag
        if not conv:
            return str(value)
        spec = f"0{width}" if width else ""
        return format(value, spec + {"i": "d", "u": "d"}.get(conv, conv))

    return _IDENTIFIER.sub(one, template)


def timeline_times(entries: tuple[TimelineEntry, ...], end: int | None) -> list[tuple[int, int]]:
    """(start time, duration) of every segment a SegmentTimeline lists, repeats expanded.

    end: where the period ends in timescale units (an r=-1 entry repeats up to it, or up to the next
    entry's t); None and an r=-1 as the last entry: an error, there is no way to know how many."""
    out: list[tuple[int, int]] = []
    t = 0
    for i, s in enumerate(entries):
        if s.t is not None:
            t = s.t
        if s.r >= 0:
            count = s.r + 1
        else:
            stop = next((e.t for e in entries[i + 1:] if e.t is not None), None) if i + 1 < len(entries) else end
            if stop is None:
                raise DownloadError("a SegmentTimeline entry repeats to the end (r=-1) of a period with no known end")
            count = max(0, math.ceil((stop - t) / s.d))
        if len(out) + count > MAX_SEGMENTS:
            raise DownloadError(f"the manifest lists more than {MAX_SEGMENTS} segments for one representation")
        for _ in range(count):
            out.append((t, s.d))
            t += s.d
    return out


def _init(rep: Representation, init: Initialization | None, template: str | None = None) -> InitSection | None:
    if template is not None:
        return InitSection(urljoin(rep.base_url, fill_template(template, rep_id=rep.id, bandwidth=rep.bandwidth)),
                           None)
    if init is None:
        return None
    url = urljoin(rep.base_url, init.url) if init.url else rep.base_url
    return InitSection(url, init.byterange)


def _period_end(period: Period, timescale: int, offset: int) -> int | None:
    if period.duration is None:
        return None
    return offset + round(period.duration * timescale)


def _live_numbers(tpl: SegmentTemplate, duration: int, mpd: Manifest, period: Period, now: float) -> range:
    """The segment indexes (from 0) a live SegmentTemplate without a timeline has available at `now`."""
    if mpd.availability_start is None:
        raise UnsupportedMedia("a live manifest without availabilityStartTime (cannot tell which segments exist)")
    seconds = duration / tpl.timescale
    elapsed = now - mpd.availability_start - period.start
    newest = math.floor(elapsed / seconds) - 1  # the last segment that is complete
    if newest < 0:
        return range(0)
    depth = mpd.time_shift_buffer if mpd.time_shift_buffer is not None else 5 * seconds
    oldest = max(0, math.floor((elapsed - depth) / seconds))
    return range(oldest, newest + 1)


def template_segments(rep: Representation, tpl: SegmentTemplate, mpd: Manifest, period: Period,
                      now: float) -> list[MediaSegment]:
    """now: the wall clock (epoch seconds), which decides what a live manifest has available."""
    init = _init(rep, None, tpl.initialization) if tpl.initialization else None
    scale = tpl.timescale

    def segment(number: int, time: int, duration: int, seq: int) -> MediaSegment:
        path = fill_template(tpl.media, rep_id=rep.id, number=number, time=time, bandwidth=rep.bandwidth)
        return MediaSegment(seq=seq, url=urljoin(rep.base_url, path), duration=duration / scale, init=init)

    if tpl.timeline is not None:
        end = _period_end(period, scale, tpl.presentation_time_offset)
        if end is None and mpd.dynamic and mpd.availability_start is not None:
            end = tpl.presentation_time_offset + round((now - mpd.availability_start - period.start) * scale)
        times = timeline_times(tpl.timeline, end)
        # Identity: the number when the URLs carry it (consecutive, as live recording expects), else the time
        # (a $Time$ server may leave startNumber alone while its window slides).
        by_number = "$Number" in tpl.media
        return [segment(tpl.start_number + i, t, d, tpl.start_number + i if by_number else t)
                for i, (t, d) in enumerate(times)]
    if tpl.duration is None or tpl.duration <= 0:
        raise DownloadError(f"representation {rep.id}: SegmentTemplate with neither a duration nor a SegmentTimeline")
    if mpd.dynamic:
        indexes = _live_numbers(tpl, tpl.duration, mpd, period, now)
    else:
        if tpl.end_number is not None:
            count = tpl.end_number - tpl.start_number + 1
        elif period.duration is not None:
            count = math.ceil(period.duration * scale / tpl.duration - 1e-9)
        else:
            raise DownloadError(f"representation {rep.id}: the period's duration is unknown, so is its segment count")
        if count > MAX_SEGMENTS:
            raise DownloadError(f"the manifest lists more than {MAX_SEGMENTS} segments for one representation")
        indexes = range(max(0, count))
    last = None if period.duration is None else period.duration * scale
    out = []
    for i in indexes:
        time = tpl.presentation_time_offset + i * tpl.duration
        duration = tpl.duration if last is None else max(0, min(tpl.duration, round(last) - i * tpl.duration))
        out.append(segment(tpl.start_number + i, time, duration or tpl.duration, tpl.start_number + i))
    return out


def list_segments(rep: Representation, sl: SegmentList, period: Period) -> list[MediaSegment]:
    init = _init(rep, sl.initialization)
    durations: list[float] = []
    if sl.timeline is not None and all(e.r >= 0 for e in sl.timeline):
        durations = [d / sl.timescale for _, d in timeline_times(sl.timeline, None)]
    out = []
    for i, url in enumerate(sl.urls):
        if i < len(durations):
            duration = durations[i]
        elif sl.duration:
            duration = sl.duration / sl.timescale
        else:
            duration = (period.duration or 0.0) / max(1, len(sl.urls))
        media = urljoin(rep.base_url, url.media) if url.media else rep.base_url
        out.append(MediaSegment(seq=sl.start_number + i, url=media, duration=duration, byterange=url.byterange,
                                init=init))
    return out
