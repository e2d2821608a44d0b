"""The DASH manifest as data: templates, timelines, inheritance, BaseURLs, sidx, DRM, quality."""

from __future__ import annotations

import struct

import pytest

from core.detect import guess_kind, is_dash_manifest, refine_kind
from core.downloaders.dash.mpd import (
    SegmentBase,
    SegmentList,
    SegmentTemplate,
    TimelineEntry,
    parse_duration,
    parse_mpd,
)
from core.downloaders.dash.protection import refuse_drm
from core.downloaders.dash.segments import fill_template, list_segments, template_segments, timeline_times
from core.downloaders.dash.select import select
from core.downloaders.dash.sidx import parse_sidx
from core.downloaders.hls import ByteRange
from core.errors import DownloadError, UnsupportedMedia
from core.models import TaskKind

NS = 'xmlns="urn:mpeg:dash:schema:mpd:2011"'


def mpd(body: str, attrs: str = 'type="static" mediaPresentationDuration="PT10S"') -> str:
    return f'<?xml version="1.0"?><MPD {NS} {attrs}>{body}</MPD>'


def test_template_identifiers_and_widths() -> None:
    tpl = "$RepresentationID$/seg-$Number%05d$-$Time$-$Bandwidth$-$Number$.m4s?x=$$"
    assert fill_template(tpl, rep_id="v1", number=42, time=9000, bandwidth=800000) == (
        "v1/seg-00042-9000-800000-42.m4s?x=$")
    assert fill_template("$Time%08x$", rep_id="a", time=255) == "000000ff"
    with pytest.raises(DownloadError):
        fill_template("$%05d$", rep_id="a")


def test_timeline_repeats_and_open_ended_repeats() -> None:
    entries = (TimelineEntry(0, 10, 2), TimelineEntry(None, 5, 0), TimelineEntry(100, 20, -1), TimelineEntry(200, 7))
    assert timeline_times(entries, None) == [(0, 10), (10, 10), (20, 10), (30, 5), (100, 20), (120, 20),
                                             (140, 20), (160, 20), (180, 20), (200, 7)]
    # r=-1 on the last entry repeats up to the period's end (a last, partial segment included).
    assert timeline_times((TimelineEntry(50, 20, -1),), 110) == [(50, 20), (70, 20), (90, 20)]
    with pytest.raises(DownloadError, match="no known end"):
        timeline_times((TimelineEntry(0, 20, -1),), None)


def test_durations() -> None:
    assert parse_duration("PT6.0S") == 6.0
    assert parse_duration("PT1H2M3.5S") == 3723.5
    assert parse_duration("P1DT1S") == 86401.0
    assert parse_duration(None) is None
    with pytest.raises(DownloadError):
        parse_duration("6 seconds")


def test_base_urls_resolve_level_by_level_and_templates_inherit() -> None:
    text = mpd(
        '<BaseURL>https://cdn.example/root/</BaseURL>'
        '<Period duration="PT5S"><BaseURL>p1/</BaseURL>'
        '<AdaptationSet contentType="video"><BaseURL>video/</BaseURL>'
        '<SegmentTemplate timescale="1000" duration="2000" startNumber="3" media="$RepresentationID$_$Number$.m4s"'
        ' initialization="$RepresentationID$_init.mp4"/>'
        '<Representation id="hi" bandwidth="2000000" width="1280" height="720"><BaseURL>hi/</BaseURL>'
        '<SegmentTemplate media="h$Number%03d$.m4s"/></Representation>'
        '<Representation id="lo" bandwidth="500000" width="640" height="360"/>'
        "</AdaptationSet>"
        '<AdaptationSet mimeType="audio/mp4" lang="en"><Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>'
        '<Representation id="a" bandwidth="64000"><SegmentList duration="5" timescale="1">'
        '<Initialization sourceURL="a/init.mp4"/><SegmentURL media="a/1.m4s"/></SegmentList></Representation>'
        "</AdaptationSet></Period>"
    )
    manifest = parse_mpd(text, "https://origin.example/live/manifest.mpd")
    (period,) = manifest.periods
    hi, lo, audio = period.representations
    assert hi.base_url == "https://cdn.example/root/p1/video/hi/"
    assert lo.base_url == "https://cdn.example/root/p1/video/"
    assert isinstance(hi.addressing, SegmentTemplate) and hi.addressing.start_number == 3
    segs = template_segments(hi, hi.addressing, manifest, period, now=0)
    assert [s.url.rsplit("/", 1)[1] for s in segs] == ["h003.m4s", "h004.m4s", "h005.m4s"]  # 5 s / 2 s: 3
    assert segs[0].init is not None and segs[0].init.url == "https://cdn.example/root/p1/video/hi/hi_init.mp4"
    assert [s.duration for s in segs] == [2.0, 2.0, 1.0]
    assert isinstance(lo.addressing, SegmentTemplate)
    assert template_segments(lo, lo.addressing, manifest, period, now=0)[0].url.endswith("/video/lo_3.m4s")
    assert isinstance(audio.addressing, SegmentList) and audio.kind == "audio" and audio.main
    (a1,) = list_segments(audio, audio.addressing, period)
    assert a1.url == "https://cdn.example/root/p1/a/1.m4s" and a1.init is not None
    assert select(period, None).video is hi and select(period, "480p").video is lo
    assert select(period, "audio").video is None and select(period, "audio").audio is audio


def test_a_timeline_template_numbers_from_start_number_and_uses_times_as_identity() -> None:
    text = mpd('<Period><AdaptationSet contentType="audio"><Representation id="1" bandwidth="1">'
               '<SegmentTemplate timescale="10" startNumber="7" media="$Number$-$Time$.m4s">'
               '<SegmentTimeline><S t="100" d="20" r="1"/><S d="10"/></SegmentTimeline>'
               "</SegmentTemplate></Representation></AdaptationSet></Period>")
    manifest = parse_mpd(text, "http://h/m.mpd")
    rep = manifest.periods[0].representations[0]
    assert isinstance(rep.addressing, SegmentTemplate)
    segs = template_segments(rep, rep.addressing, manifest, manifest.periods[0], now=0)
    assert [s.url for s in segs] == ["http://h/7-100.m4s", "http://h/8-120.m4s", "http://h/9-140.m4s"]
    assert [s.seq for s in segs] == [7, 8, 9] and [s.duration for s in segs] == [2.0, 2.0, 1.0]
    by_time = SegmentTemplate(media="$Time$.m4s", initialization=None, timescale=10, timeline=rep.addressing.timeline)
    assert [s.seq for s in template_segments(rep, by_time, manifest, manifest.periods[0], now=0)] == [100, 120, 140]


def test_a_live_template_lists_what_the_clock_says_is_available() -> None:
    text = mpd('<Period start="PT0S"><AdaptationSet contentType="video"><Representation id="v" bandwidth="1">'
               '<SegmentTemplate timescale="1" duration="2" startNumber="1" media="$Number$.m4s"/>'
               "</Representation></AdaptationSet></Period>",
               'type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z" timeShiftBufferDepth="PT6S"')
    manifest = parse_mpd(text, "http://h/m.mpd")
    assert manifest.dynamic and manifest.availability_start == 1704067200.0
    period = manifest.periods[0]
    rep = period.representations[0]
    assert isinstance(rep.addressing, SegmentTemplate)
    segs = template_segments(rep, rep.addressing, manifest, period, now=1704067200.0 + 21)
    # 21 s in: segments 0..9 (numbers 1..10) are complete; a 6 s buffer keeps the last three and the newest.
    assert [s.url.rsplit("/", 1)[1] for s in segs] == ["8.m4s", "9.m4s", "10.m4s"]
    assert [s.seq for s in segs] == [8, 9, 10]


def test_periods_follow_each_other_and_the_last_lasts_to_the_end() -> None:
    manifest = parse_mpd(mpd('<Period id="a" duration="PT4S"/><Period id="b"/>'), "http://h/m.mpd")
    assert [(p.start, p.duration) for p in manifest.periods] == [(0.0, 4.0), (4.0, 6.0)]


def test_hostile_or_foreign_documents_are_refused() -> None:
    with pytest.raises(DownloadError, match="DTD"):
        parse_mpd('<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY a "aaaa">]><MPD>&a;</MPD>', "http://h/m.mpd")
    with pytest.raises(DownloadError, match="not a DASH manifest"):
        parse_mpd("<html><body/></html>", "http://h/m.mpd")
    with pytest.raises(DownloadError, match="cannot parse"):
        parse_mpd("<MPD><Period>", "http://h/m.mpd")


def _sidx(version: int, timescale: int, first_offset: int, refs: list[tuple[int, int]]) -> bytes:
    body = struct.pack(">B3xII", version, 1, timescale)
    body += struct.pack(">II", 0, first_offset) if version == 0 else struct.pack(">QQ", 0, first_offset)
    body += struct.pack(">HH", 0, len(refs))
    for size, duration in refs:
        body += struct.pack(">III", size, duration, 0x90000000)
    return struct.pack(">I4s", 8 + len(body), b"sidx") + body


@pytest.mark.parametrize("version", [0, 1])
def test_sidx_gives_byte_ranges_after_the_box(version: int) -> None:
    box = _sidx(version, 1000, 16, [(100, 2000), (150, 1500)])
    segs = parse_sidx(b"\0\0\0\x08free" + box, 500)  # the index range starts at byte 500, a free box first
    anchor = 500 + 8 + len(box)
    assert [s.byterange for s in segs] == [ByteRange(anchor + 16, 100), ByteRange(anchor + 116, 150)]
    assert [s.duration for s in segs] == [2.0, 1.5]
    with pytest.raises(DownloadError, match="cut off"):
        parse_sidx(box[:-5], 0)
    with pytest.raises(UnsupportedMedia, match="hierarchical"):
        parse_sidx(_sidx(version, 1000, 0, [(0x80000000 | 50, 10)]), 0)


def test_drm_is_refused_naming_the_systems() -> None:
    text = mpd('<Period><AdaptationSet contentType="video">'
               '<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>'
               '<ContentProtection schemeIdUri="urn:uuid:9A04F079-9840-4286-AB92-E65BE0885F95"/>'
               '<ContentProtection schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"/>'
               '<Representation id="v" bandwidth="1" height="720"><SegmentBase indexRange="10-20"/></Representation>'
               '</AdaptationSet><AdaptationSet contentType="audio"><Representation id="a" bandwidth="1">'
               '<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cbcs"/>'
               "</Representation></AdaptationSet></Period>")
    video, audio = parse_mpd(text, "http://h/m.mpd").periods[0].representations
    assert isinstance(video.addressing, SegmentBase) and video.addressing.index_range == ByteRange(10, 11)
    with pytest.raises(UnsupportedMedia) as err:
        refuse_drm([video])
    assert str(err.value) == "DRM-protected stream (PlayReady, ClearKey): fetchdeck does not decrypt DRM"
    with pytest.raises(UnsupportedMedia, match=r"^DRM-protected stream \(cbcs\)"):
        refuse_drm([audio])


def test_what_counts_as_a_dash_manifest() -> None:
    assert guess_kind("https://h/a/manifest.mpd?token=x") is TaskKind.DASH
    assert refine_kind(TaskKind.HLS, "https://h/a/manifest.MPD") is TaskKind.DASH  # an m3u8-typed .mpd
    assert refine_kind(TaskKind.HLS, "https://h/a/index.m3u8") is TaskKind.HLS
    assert refine_kind(TaskKind.HTTP, "https://h/a/manifest.mpd") is TaskKind.HTTP  # a kind asked for stays
    usp = b'<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n<!-- Created with <b>a packager</b> '
    assert is_dash_manifest(usp, None)  # no element yet in the head: the DASH downloader checks the root
    assert is_dash_manifest(b'<?xml version="1.0"?><mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011">', None)
    assert is_dash_manifest(b"#EXTM3U", "application/dash+xml; charset=utf-8")
    assert not is_dash_manifest(b'<?xml version="1.0"?><rss version="2.0">', "text/xml")
    assert not is_dash_manifest(b"\0\0\0\x20ftypisom", "video/mp4")
