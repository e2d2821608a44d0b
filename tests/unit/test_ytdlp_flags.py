"""The yt-dlp flag allow-list: parsed with yt-dlp's own parser, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.downloaders.ytdlp.flags import flags_to_params, validate_ytdlp_flags
from core.errors import InvalidInput


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["-x", "--audio-format", "mp3"],
        ["--extract-audio", "--audio-format=opus", "--audio-quality", "0"],
        ["-t", "mp3"],
        ["-f", "bv*[height<=480]+ba/b", "-S", "res,ext:mp4:m4a"],
        ["--no-playlist"],
        ["--yes-playlist", "-I", "1:3"],
        ["-N", "4", "--limit-rate", "1M", "--retries", "3"],
        ["--embed-subs", "--sub-langs", "en.*", "--write-auto-subs"],
        ["--add-headers", "Referer:https://example.com/"],
        ["--match-filters", "duration < 600", "--max-filesize", "200M"],
        ["--extractor-args", "youtube:player_client=web"],
        ["-u", "me", "-p", "secret"],
        ["--remux-video", "mkv"],
        ["--proxy", "socks5://127.0.0.1:9050", "--socket-timeout", "10"],
    ],
)
def test_allowed_flags(flags: list[str]) -> None:
    assert validate_ytdlp_flags(flags) == flags


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--exec", "rm -rf ~"], "--exec is not allowed: it runs other programs"),
        (["--exec=touch x"], "--exec is not allowed"),
        (["--exec-before-download", "id"], "--exec-before-download is not allowed"),
        (["-o", "/etc/%(title)s"], "--output (-o) is not allowed: fetchdeck decides where files go"),
        (["-xo", "/tmp/x"], "--output (-o) is not allowed"),  # bundled short options
        (["--output=../x"], "--output is not allowed"),
        (["-P", "/tmp"], "--paths (-P) is not allowed"),
        (["--paths", "temp:/tmp"], "--paths is not allowed"),
        (["--config-locations", "/etc/yt-dlp.conf"], "--config-locations is not allowed: it loads config files"),
        (["--ignore-config"], "--ignore-config is not allowed"),
        (["-a", "urls.txt"], "--batch-file (-a) is not allowed"),
        (["--cookies", "/root/cookies.txt"], "--cookies is not allowed"),
        (["--cookies-from-browser", "firefox"], "--cookies-from-browser is not allowed"),
        (["--load-info-json", "x.json"], "--load-info-json is not allowed"),
        (["--download-archive", "/tmp/a.txt"], "--download-archive is not allowed"),
        (["--ffmpeg-location", "/tmp/evil"], "--ffmpeg-location is not allowed"),
        (["--downloader", "aria2c"], "--downloader is not allowed: it runs other programs"),
        (["--downloader-args", "aria2c:-x"], "--downloader-args is not allowed"),
        (["--ppa", "ffmpeg:-y /etc/passwd"], "--postprocessor-args (--ppa) is not allowed"),
        (["--use-postprocessor", "Evil"], "--use-postprocessor is not allowed: it loads plugins"),
        (["--plugin-dirs", "/tmp"], "--plugin-dirs is not allowed"),
        (["--netrc-cmd", "cat /etc/shadow"], "--netrc-cmd is not allowed"),
        (["--print-to-file", "title", "/tmp/t"], "--print-to-file is not allowed"),
        (["--print", "title"], "--print is not allowed: the task would not download"),
        (["-j"], "--dump-json (-j) is not allowed"),
        (["--version"], "--version is not allowed"),
        (["-h"], "--help (-h) is not allowed"),
        (["-U"], "--update (-U) is not allowed"),
        (["--alias", "get", "-o /tmp/x"], "--alias is not allowed"),
        (["--cache-dir", "/tmp/c"], "--cache-dir is not allowed"),
        (["--no-part"], "--no-part is not allowed"),
        (["-x", "--exec", "id"], "--exec is not allowed"),
    ],
)
def test_rejected_flags(flags: list[str], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_ytdlp_flags(flags)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["https://example.com/other"], "may not contain URLs"),
        (["--bogus-option"], "unknown yt-dlp flag --bogus-option"),
        (["-f"], "-f option requires 1 argument"),
        (["-x", "--audio-format", "nope"], 'invalid audio format "nope"'),
        ("-x", "must be a list"),
        (["--proxy", "a\nb"], "control characters"),
        (["-x"] * 65, "at most 64"),
    ],
)
def test_malformed_flags(flags: list[str], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_ytdlp_flags(flags)
    assert message in str(info.value)


def test_nothing_runs_while_validating(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(InvalidInput):
        validate_ytdlp_flags(["--version"])
    with pytest.raises(InvalidInput):
        validate_ytdlp_flags(["-x", "--exec", f"touch {marker}"])
    out = capsys.readouterr()
    assert out.out == "" and out.err == "" and not marker.exists()


def test_flags_to_params_gives_what_ytdlp_would_set() -> None:
    params = flags_to_params(["-x", "--audio-format", "mp3", "--limit-rate", "1M", "-I", "2"])
    assert params["ratelimit"] == 1 << 20 and params["playlist_items"] == "2" and params["final_ext"] == "mp3"
    assert params["postprocessors"] == [
        {"key": "FFmpegExtractAudio", "preferredcodec": "mp3", "preferredquality": "5", "nopostoverwrites": False}
    ]
    assert flags_to_params([]) == {}
    preset = flags_to_params(["-t", "mp4"])
    assert preset["merge_output_format"] == "mp4" and preset["format_sort"][0] == "vcodec:h264"
    assert flags_to_params(["--yes-playlist"]) == {"noplaylist": False}
