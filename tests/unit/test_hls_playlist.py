"""Playlist parsing, variant choice and the skip expression."""

from __future__ import annotations

import pytest

from core.downloaders.hls import output_name
from core.downloaders.hls.playlist import (
    ByteRange,
    choose,
    is_master,
    parse_master,
    parse_media,
    parse_skip,
    pick_variant,
)
from core.errors import DownloadError, InvalidInput, UnsupportedMedia

BASE = "https://cdn.example/path/video/index.m3u8?token=abc"


def media(*body: str, seq: int = 0, end: bool = True) -> str:
    head = ["#EXTM3U", "#EXT-X-VERSION:4", "#EXT-X-TARGETDURATION:4", f"#EXT-X-MEDIA-SEQUENCE:{seq}"]
    return "\n".join([*head, *body, *(["#EXT-X-ENDLIST"] if end else [])]) + "\n"


# ---- skip expressions --------------------------------------------------------

@pytest.mark.parametrize(
    ("expr", "inside", "outside"),
    [
        ("1,92-100", [1, 92, 95, 100], [2, 91, 101]),
        (" 3 , 5-6 ", [3, 5, 6], [4, 7]),
        ("7", [7], [6, 8]),
        ("2-2", [2], [1, 3]),
        ("1;4 9", [1, 4, 9], [2, 5]),
    ],
)
def test_skip_expression(expr: str, inside: list[int], outside: list[int]) -> None:
    rule = parse_skip(expr)
    assert rule
    assert all(n in rule for n in inside)
    assert not any(n in rule for n in outside)


@pytest.mark.parametrize("expr", [None, "", "   "])
def test_empty_skip_expression_skips_nothing(expr: str | None) -> None:
    rule = parse_skip(expr)
    assert not rule and 1 not in rule


@pytest.mark.parametrize(
    ("expr", "why"),
    [("0", "numbered from 1"), ("5-3", "ends before"), ("a", "not a number"), ("1,-3", "not a number"),
     ("1-2-3", "not a number"), ("1.5", "not a number")],
)
def test_bad_skip_expression_is_invalid_input(expr: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        parse_skip(expr)


# ---- media playlists ---------------------------------------------------------

def test_relative_and_absolute_uris_resolve_against_the_playlist() -> None:
    pl = parse_media(media("#EXTINF:4,", "seg0.ts", "#EXTINF:4,", "/abs/seg1.ts", "#EXTINF:4,",
                           "https://other.example/seg2.ts", "#EXTINF:3.5,", "../up/seg3.ts?x=1"), BASE)
    assert [s.url for s in pl.segments] == [
        "https://cdn.example/path/video/seg0.ts",
        "https://cdn.example/abs/seg1.ts",
        "https://other.example/seg2.ts",
        "https://cdn.example/path/up/seg3.ts?x=1",
    ]
    assert pl.endlist and pl.duration == pytest.approx(15.5) and pl.target_duration == 4


def test_vod_playlist_type_is_final_even_without_endlist() -> None:
    text = media("#EXT-X-PLAYLIST-TYPE:VOD", "#EXTINF:4,", "a.ts", end=False)
    assert parse_media(text, BASE).endlist
    assert not parse_media(text.replace("VOD", "EVENT"), BASE).endlist


def test_media_sequence_numbers_segments() -> None:
    pl = parse_media(media("#EXTINF:4,", "a.ts", "#EXTINF:4,", "b.ts", seq=41, end=False), BASE)
    assert [s.seq for s in pl.segments] == [41, 42] and not pl.endlist


def test_byte_ranges_with_implicit_offsets() -> None:
    pl = parse_media(media("#EXTINF:4,", "#EXT-X-BYTERANGE:100@0", "all.ts",
                           "#EXTINF:4,", "#EXT-X-BYTERANGE:50", "all.ts",
                           "#EXTINF:4,", "#EXT-X-BYTERANGE:25@500", "all.ts",
                           "#EXTINF:4,", "#EXT-X-BYTERANGE:10", "all.ts"), BASE)
    assert [s.byterange for s in pl.segments] == [
        ByteRange(0, 100), ByteRange(100, 50), ByteRange(500, 25), ByteRange(525, 10)]
    assert pl.segments[1].byterange is not None and pl.segments[1].byterange.header == "bytes=100-149"


def test_byte_range_without_offset_or_previous_range_is_an_error() -> None:
    with pytest.raises(DownloadError, match="no offset"):
        parse_media(media("#EXTINF:4,", "#EXT-X-BYTERANGE:100", "all.ts"), BASE)


def test_keys_explicit_iv_and_sequence_iv_and_none() -> None:
    pl = parse_media(media(
        '#EXT-X-KEY:METHOD=AES-128,URI="k1.key"', "#EXTINF:4,", "a.ts",
        '#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example/k2",IV=0x0102', "#EXTINF:4,", "b.ts",
        "#EXT-X-KEY:METHOD=NONE", "#EXTINF:4,", "c.ts"), BASE)
    a, b, c = pl.segments
    assert a.key is not None and a.key.url == "https://cdn.example/path/video/k1.key" and a.key.iv is None
    assert b.key is not None and b.key.url == "https://keys.example/k2" and b.key.iv == bytes(14) + b"\x01\x02"
    assert c.key is None


@pytest.mark.parametrize(
    ("line", "message"),
    [('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"', "SAMPLE-AES is not supported"),
     ('#EXT-X-KEY:METHOD=AES-256,URI="k"', "AES-256 is not supported"),
     ('#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="k",KEYFORMAT="com.widevine"', "not supported")],
)
def test_unsupported_encryption_fails_clearly(line: str, message: str) -> None:
    with pytest.raises(UnsupportedMedia, match=message):
        parse_media(media(line, "#EXTINF:4,", "a.ts"), BASE)


def test_drm_key_format_is_unsupported() -> None:
    with pytest.raises(UnsupportedMedia, match="DRM"):
        parse_media(media('#EXT-X-KEY:METHOD=AES-128,URI="k",KEYFORMAT="com.apple.streamingkeydelivery"',
                          "#EXTINF:4,", "a.ts"), BASE)


def test_init_sections_and_discontinuities() -> None:
    pl = parse_media(media('#EXT-X-MAP:URI="init.mp4",BYTERANGE="700@0"', "#EXTINF:4,", "a.m4s",
                           "#EXTINF:4,", "b.m4s", "#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="init2.mp4"',
                           "#EXTINF:4,", "c.m4s"), BASE)
    a, b, c = pl.segments
    assert a.init is not None and a.init.url.endswith("/init.mp4") and a.init.byterange == ByteRange(0, 700)
    assert a.init == b.init and not b.discontinuity
    assert c.discontinuity and c.init is not None and c.init.url.endswith("/init2.mp4")


def test_not_a_playlist() -> None:
    with pytest.raises(DownloadError, match="not an HLS playlist"):
        parse_media("<html>nope</html>", BASE)


# ---- master playlists --------------------------------------------------------

MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="English",LANGUAGE="en",DEFAULT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="French",LANGUAGE="fr",DEFAULT=NO,URI="audio/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2",AUDIO="aac"
v360.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2",AUDIO="aac"
v720.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,CODECS="avc1.640028,mp4a.40.2",AUDIO="aac"
v1080.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"
audio-only.m3u8
"""


@pytest.mark.parametrize(
    ("quality", "expected"),
    [(None, "v1080"), ("best", "v1080"), ("worst", "v360"), ("720p", "v720"), ("1080p", "v1080"),
     ("480p", "v360"), ("144p", "v360"), ("3000k", "v720"), ("900000", "v360"), ("6m", "v1080"),
     ("1k", "v360"), ("audio", "audio-only")],
)
def test_variant_choice(quality: str | None, expected: str) -> None:
    master = parse_master(MASTER, BASE)
    assert pick_variant(master.variants, quality).url.endswith(f"/{expected}.m3u8")


def test_bad_quality_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="quality"):
        pick_variant(parse_master(MASTER, BASE).variants, "ultra")


def test_choice_includes_the_default_audio_rendition() -> None:
    assert is_master(MASTER)
    choice = choose(parse_master(MASTER, BASE), "720p")
    assert choice.video == "https://cdn.example/path/video/v720.m3u8"
    assert choice.audio == "https://cdn.example/path/video/audio/en.m3u8"
    assert "720p" in choice.label and "English" in choice.label


def test_default_rendition_without_uri_means_audio_is_in_the_variant() -> None:
    text = MASTER.replace('DEFAULT=YES,URI="audio/en.m3u8"', "DEFAULT=YES")
    choice = choose(parse_master(text, BASE), None)
    assert choice.video is not None and choice.video.endswith("/v1080.m3u8") and choice.audio is None


def test_master_without_audio_groups() -> None:
    text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nlow.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=9000\nhigh.m3u8\n"
    choice = choose(parse_master(text, BASE), None)
    assert choice.video is not None and choice.video.endswith("/high.m3u8") and choice.audio is None


# ---- output names ------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("index.m3u8", {}, "index.mp4"),
        ("My show", {}, "My show.mp4"),
        ("clip.ts", {}, "clip.ts"),
        ("clip.mkv", {}, "clip.mkv"),
        ("clip.mp4", {"ffmpeg": False}, "clip.ts"),
        ("clip", {"ffmpeg": False, "fmp4": True}, "clip.mp4"),
        ("song.m3u8", {"audio_only": True}, "song.m4a"),
        ("index.m3u8", {"no_merge": True}, "index"),
        ("v1.2 final", {}, "v1.2 final.mp4"),
    ],
)
def test_output_name(name: str, kwargs: dict[str, bool], expected: str) -> None:
    options = {"ffmpeg": True, "fmp4": False, "audio_only": False, "no_merge": False, **kwargs}
    assert output_name(name, **options) == expected
