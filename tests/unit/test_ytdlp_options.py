"""yt-dlp options without a network: quality words, cookies, names, params, progress maths."""

from __future__ import annotations

import io

import pytest

from core.downloaders.ytdlp.download import _Progress
from core.downloaders.ytdlp.options import (
    cookies_to_netscape,
    format_choice,
    normalize_quality,
    predict_ext,
    proposed_name,
    split_cookie_header,
    validate_ytdlp_options,
)
from core.downloaders.ytdlp.params import ToMp4PP, YtdlpLogger, YtdlpRequest, build_plan, clean_message
from core.errors import InvalidInput
from core.models import TaskOptions


@pytest.mark.parametrize(
    ("given", "word"),
    [(None, "best"), ("BEST", "best"), ("auto", "best"), ("720", "720p"), ("1080p", "1080p"), (" 360p ", "360p"),
     ("worst", "worst"), ("audio", "audio"), ("2160p", "2160p"), ("240p", "240p")],
)
def test_quality_words(given: str | None, word: str) -> None:
    assert normalize_quality(given) == word


@pytest.mark.parametrize("bad", ["ultra", "10p", "99999p", "720i", ""])
def test_bad_quality_words(bad: str) -> None:
    if bad == "":
        assert normalize_quality(bad) == "best"
        return
    with pytest.raises(InvalidInput, match="unknown quality"):
        normalize_quality(bad)


def test_format_choices() -> None:
    best = format_choice("best")
    assert (best.selector, best.sort, best.postprocess) == ("bv*+ba/b", (), "none")
    hd = format_choice("720p")
    assert hd.selector == "bv*+ba/b" and hd.sort == ("res:720",)
    assert format_choice("worst").selector == "wv*+wa/w"
    audio = format_choice("audio")
    assert (audio.selector, audio.postprocess) == ("ba/b", "audio")
    assert format_choice("720p", "audio").selector == "ba/b"
    mp4 = format_choice("480p", "mp4")
    assert mp4.sort == ("res:480", "vcodec:h264", "acodec:aac")
    assert mp4.params() == {"format": "bv*+ba/b", "format_sort": list(mp4.sort), "merge_output_format": "mp4"}
    assert format_choice(None, "mp4").sort[0] == "res"


def test_header_cookies_are_scoped_to_the_site() -> None:
    text = cookies_to_netscape("Cookie: sid=abc; lang=en", "https://www.example.com/watch?v=1")
    assert text is not None and text.startswith("# Netscape HTTP Cookie File\n")
    lines = text.strip().splitlines()[1:]
    assert lines == [".example.com\tTRUE\t/\tFALSE\t0\tsid\tabc", ".example.com\tTRUE\t/\tFALSE\t0\tlang\ten"]
    ip = cookies_to_netscape("a=1", "http://127.0.0.1:8080/x")
    assert ip is not None and "127.0.0.1\tFALSE\t/\tFALSE\t0\ta\t1" in ip


def test_netscape_and_json_cookies() -> None:
    line = "#HttpOnly_.x.com\tTRUE\t/\tTRUE\t1999999999\tk\tv"
    assert cookies_to_netscape(f"# Netscape HTTP Cookie File\n{line}\n\n") == f"# Netscape HTTP Cookie File\n{line}\n"
    as_json = '[{"name": "k", "value": "v", "domain": ".x.com", "secure": true, "expirationDate": 1999999999.5}]'
    assert cookies_to_netscape(as_json) == "# Netscape HTTP Cookie File\n.x.com\tTRUE\t/\tTRUE\t1999999999\tk\tv\n"
    assert cookies_to_netscape("  ") is None and cookies_to_netscape(None) is None


@pytest.mark.parametrize("bad", ["just words", "x.com\tTRUE\t/", "[{\"name\": 1}]", "{nope", "a=1;b"])
def test_bad_cookies(bad: str) -> None:
    with pytest.raises(InvalidInput):
        cookies_to_netscape(bad, "https://x.com/")


def test_cookie_text_loads_into_ytdlps_jar() -> None:
    from yt_dlp.cookies import YoutubeDLCookieJar

    text = cookies_to_netscape("sid=abc", "https://www.example.com/v")
    jar = YoutubeDLCookieJar(io.StringIO(text))
    jar.load()
    assert jar.get_cookie_header("https://video.example.com/file.mp4") == "sid=abc"
    assert not jar.get_cookie_header("https://other.org/")


def test_cookie_header_is_taken_out_of_the_headers() -> None:
    headers, cookie = split_cookie_header((("Referer", "https://a/"), ("cookie", "a=1"), ("Cookie", "b=2")))
    assert headers == {"Referer": "https://a/"} and cookie == "a=1; b=2"


def test_validate_options_normalizes_and_rejects() -> None:
    opts = validate_ytdlp_options(TaskOptions(quality="720", ytdlp_flags=["-N", "2"]))
    assert opts.quality == "720p" and opts.ytdlp_flags == ["-N", "2"]
    with pytest.raises(InvalidInput, match="--exec"):
        validate_ytdlp_options(TaskOptions(ytdlp_flags=["--exec", "id"]))
    with pytest.raises(InvalidInput):
        validate_ytdlp_options(TaskOptions(cookies="no cookies here"), "https://x.com/")


def test_predicted_extension() -> None:
    video = {"ext": "webm", "requested_formats": [{"acodec": "none"}, {"acodec": "opus"}]}
    assert predict_ext(video, "none") == "webm"
    assert predict_ext(video, "mp4") == "mp4"
    assert predict_ext(video, "audio") == "opus"
    assert predict_ext({"ext": "mp4", "acodec": "mp4a.40.2"}, "audio") == "m4a"
    assert predict_ext({"ext": "m4a"}, "audio") == "m4a"
    assert predict_ext({"ext": "mp4"}, "audio") == "m4a"  # unknown codec: the common case
    assert predict_ext({"ext": "mp4", "acodec": "ac-3"}, "audio") == "mp3"  # converted
    assert predict_ext({"ext": "mp4"}, "audio", "vorbis") == "ogg"
    assert predict_ext({"ext": "mp4"}, "none", final_ext="mkv") == "mkv"


def test_proposed_names() -> None:
    assert proposed_name("A / B: c?", "mp4", None) == "A _ B_ c_.mp4"
    assert proposed_name("Title", "m4a", "my_video.mp4") == "my_video.m4a"
    assert proposed_name("Title", "mp4", "report.v2") == "report.v2.mp4"
    assert proposed_name("", "mp4", None) == "video.mp4"
    assert proposed_name("Playlist", None, None) == "Playlist"
    long = proposed_name("é" * 300, "webm", None)
    assert long.endswith(".webm") and len(long.encode()) <= 255


def test_build_plan_layers_flags_over_defaults() -> None:
    logger = YtdlpLogger(lambda _t: None)
    req = YtdlpRequest(url="https://www.example.com/v", quality="720p", cookies="sid=1",
                       headers=(("X-A", "1"), ("Cookie", "c=2")), proxy="socks5://127.0.0.1:9050",
                       insecure=True, flags=("--add-headers", "X-B:2", "--yes-playlist", "-N", "3"))
    plan = build_plan(req, logger)
    p = plan.params
    assert p["format"] == "bv*+ba/b" and p["format_sort"] == ["res:720"]
    assert p["http_headers"] == {"X-A": "1", "x-b": "2"}
    assert p["noplaylist"] is False  # --yes-playlist wins over fetchdeck's default
    assert p["concurrent_fragment_downloads"] == 3
    assert p["proxy"] == "socks5://127.0.0.1:9050" and p["nocheckcertificate"] is True
    cookies = p["cookiefile"].getvalue()
    assert "\tsid\t1" in cookies and "\tc\t2" in cookies
    assert p["outtmpl"] == {"default": "media.%(ext)s"} and p["logger"] is logger
    assert "ffmpeg_location" in p and "postprocessors" not in p and plan.postprocess == "none"


def test_build_plan_post_processing() -> None:
    logger = YtdlpLogger(lambda _t: None)
    audio = build_plan(YtdlpRequest(url="https://x.com/", quality="audio"), logger)
    assert audio.postprocess == "audio" and audio.params["postprocessors"][0]["key"] == "FFmpegExtractAudio"
    assert audio.final_ext is None and audio.params["format"] == "ba/b"
    mp3 = build_plan(YtdlpRequest(url="https://x.com/", flags=("-x", "--audio-format", "mp3")), logger)
    assert (mp3.postprocess, mp3.audio_format, mp3.final_ext) == ("audio", "mp3", "mp3")
    assert [pp["key"] for pp in mp3.params["postprocessors"]] == ["FFmpegExtractAudio"]
    mp4 = build_plan(YtdlpRequest(url="https://x.com/", postprocess="mp4"), logger)
    assert [type(pp) for pp in mp4.extra_pps] == [ToMp4PP] and mp4.params["merge_output_format"] == "mp4"
    remux = build_plan(YtdlpRequest(url="https://x.com/", postprocess="mp4", flags=("--remux-video", "mkv")), logger)
    assert remux.extra_pps == [] and remux.final_ext == "mkv"


def test_logger_filters_and_checks() -> None:
    lines: list[str] = []
    checks: list[int] = []
    logger = YtdlpLogger(lines.append, check=lambda: checks.append(1))
    logger.debug("[debug] internals")
    logger.debug("[download]  45.0% of 10.00MiB at 1.00MiB/s ETA 00:05")
    logger.debug("[generic] Extracting URL: x")
    logger.warning("Unable to extract metadata: ffprobe not found. Please install")
    logger.warning("\x1b[0;33mWARNING:\x1b[0m something odd")
    logger.error("ERROR: [generic] boom; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues")
    assert lines == ["[generic] Extracting URL: x", "warning: something odd"]
    assert logger.errors == ["[generic] boom"] and len(checks) == 3
    assert clean_message("ERROR: x") == "x"


def test_progress_of_a_merged_download() -> None:
    p = _Progress()
    p.expect({"requested_formats": [{"filesize": 1000}, {"filesize_approx": 200}]})
    assert (p.downloaded, p.total) == (0, 1200)
    p.update({"status": "downloading", "filename": "v", "downloaded_bytes": 400, "total_bytes": 1000})
    assert (p.downloaded, p.total) == (400, 1200)
    p.update({"status": "finished", "filename": "v", "total_bytes": 1000})
    p.update({"status": "downloading", "filename": "a", "downloaded_bytes": 50, "total_bytes_estimate": 250})
    assert (p.downloaded, p.total) == (1050, 1250)
    p.update({"status": "downloading", "filename": "a", "downloaded_bytes": 60, "total_bytes": 250,
              "fragment_index": 2, "fragment_count": 5})
    assert p.segments == (2, 5)


def test_progress_of_a_playlist() -> None:
    p = _Progress(entries=3)
    p.update({"status": "downloading", "filename": "1", "downloaded_bytes": 10, "total_bytes": 100})
    assert p.total is None and p.segments == (0, 3)  # no finished entry to estimate from yet
    p.update({"status": "finished", "filename": "1", "total_bytes": 100})
    p.entry_done()
    p.update({"status": "downloading", "filename": "2", "downloaded_bytes": 20, "total_bytes": 300})
    assert p.downloaded == 120 and p.total == 100 + 300 + 100 and p.segments == (1, 3)
