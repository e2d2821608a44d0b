"""Guards for the yt-dlp internals fetchdeck relies on (pyproject bounds it to <2028).

- `ToMp4PP` (core/downloaders/ytdlp/params.py) subclasses FFmpegVideoConvertorPP and relies on how
  FFmpegPostProcessor finds ffmpeg (`_paths`, `_determine_executables`, its cached properties) and how
  the convertor runs (`_ACTION`, `_options`, `run_ffmpeg`);
- `procs` wraps `yt_dlp.utils.Popen.__init__` to find the ffmpeg a stopped task started;
- `flags` walks yt-dlp's option parser (`_get_all_options`, `option._long_opts`, `option.process`,
  `parse_known_args`) and names option destinations in its allow- and deny-lists;
- `info` reads extractor classes' `_VALID_URL`, `_ENABLED` and `IE_NAME`.

A release that changes one of these must fail here, with what to fix, not make a stop leave
ffmpeg running, a yt-dlp flag slip past the allow-list, or MP4 post-processing look for ffmpeg on PATH.
"""

from __future__ import annotations

import functools
import inspect
import optparse
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yt_dlp  # type: ignore[import-untyped]
import yt_dlp.downloader.external  # type: ignore[import-untyped]
import yt_dlp.postprocessor.ffmpeg  # type: ignore[import-untyped]
from yt_dlp.extractor import gen_extractor_classes  # type: ignore[import-untyped]
from yt_dlp.extractor.common import InfoExtractor  # type: ignore[import-untyped]
from yt_dlp.options import create_parser  # type: ignore[import-untyped]
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor, FFmpegVideoConvertorPP
from yt_dlp.utils import PostProcessingError  # type: ignore[import-untyped]

from core.downloaders.ytdlp import flags, procs
from core.downloaders.ytdlp.info import hosts_in_regex
from core.downloaders.ytdlp.params import ToMp4PP

# ---- ToMp4PP -------------------------------------------------------------------------------------


def test_ffmpeg_post_processors_cache_only_what_to_mp4_forgets() -> None:
    cached = {name for klass in FFmpegPostProcessor.__mro__ for name, value in vars(klass).items()
              if isinstance(value, functools.cached_property)}
    assert cached == set(ToMp4PP._FOUND), (
        f"FFmpegPostProcessor now caches {sorted(cached)}; ToMp4PP._FOUND lists {sorted(ToMp4PP._FOUND)}: "
        "set_downloader must forget every cached value derived from the ffmpeg paths"
    )
    assert callable(getattr(FFmpegPostProcessor, "_determine_executables", None)), (
        "FFmpegPostProcessor._determine_executables is gone: ToMp4PP.set_downloader calls it"
    )
    params = inspect.signature(FFmpegVideoConvertorPP.__init__).parameters
    assert list(params)[:3] == ["self", "downloader", "preferedformat"], (
        f"FFmpegVideoConvertorPP.__init__ is now {list(params)}: ToMp4PP passes (downloader, preferedformat=)"
    )


def test_to_mp4_finds_the_downloaders_ffmpeg_when_attached(tmp_path: Path) -> None:
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text("")
    pp = ToMp4PP()
    assert isinstance(getattr(pp, "_paths", None), dict), (
        "FFmpegPostProcessor.__init__ no longer sets self._paths: ToMp4PP.set_downloader relies on it"
    )
    with yt_dlp.YoutubeDL({"quiet": True, "ffmpeg_location": str(ffmpeg)}) as ydl:
        ydl.add_post_processor(pp, when="post_process")  # what the downloader does (download.py)
    assert pp._paths.get("ffmpeg") == str(ffmpeg), (
        f"after add_post_processor ToMp4PP looks for ffmpeg at {pp._paths!r}, not the downloader's "
        "ffmpeg_location: yt-dlp changed how post-processors determine their executables"
    )


class _Recording(ToMp4PP):
    def __init__(self, fail_first: bool) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.runs: list[list[str]] = []
        self.screen: list[str] = []

    def run_ffmpeg(self, path: str, out_path: str, opts: Any) -> None:
        self.runs.append(list(opts))
        if self.fail_first and len(self.runs) == 1:
            raise PostProcessingError("Conversion failed!")

    def to_screen(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.screen.append(text)

    def report_warning(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.screen.append(text)


@pytest.mark.parametrize("fail_first", [False, True])
def test_to_mp4_remuxes_and_re_encodes_through_the_convertors_hooks(fail_first: bool, tmp_path: Path) -> None:
    pp = _Recording(fail_first)
    info = {"filepath": str(tmp_path / "media.webm"), "ext": "webm", "vcodec": "vp9", "acodec": "opus"}
    _files, result = pp.run(info)
    copy = list(FFmpegPostProcessor.stream_copy_opts(True))
    encode = list(FFmpegPostProcessor.stream_copy_opts(False))
    assert copy != encode, "FFmpegPostProcessor.stream_copy_opts(copy) no longer tells copying from re-encoding"
    assert pp.runs == ([copy, encode] if fail_first else [copy]), (
        f"FFmpegVideoConvertorPP.run passed {pp.runs}: it no longer takes its ffmpeg options from "
        "self._options(target_ext), which ToMp4PP overrides"
    )
    assert result["ext"] == "mp4" and result["filepath"].endswith("media.mp4")
    shown = " | ".join(pp.screen)
    action = "Re-Encoding" if fail_first else "Remuxing"  # ToMp4PP._ACTION, as run() writes it: .title()
    assert f"{action} video" in shown, (
        f"FFmpegVideoConvertorPP.run no longer names its action from self._ACTION: {shown!r}"
    )


# ---- procs: the ffmpeg a task's thread starts ----------------------------------------------------


def test_ffmpeg_is_started_through_the_wrapped_popen() -> None:
    popen = yt_dlp.utils.Popen
    assert issubclass(popen, subprocess.Popen), "yt_dlp.utils.Popen is no longer a subprocess.Popen"
    for module in (yt_dlp.postprocessor.ffmpeg, yt_dlp.downloader.external):
        assert getattr(module, "Popen", None) is popen, (
            f"{module.__name__} no longer starts programs through yt_dlp.utils.Popen: "
            "core/downloaders/ytdlp/procs.py cannot see (and a stop cannot kill) the ffmpeg it starts"
        )
    procs.install()
    procs.track()
    ident = threading.get_ident()
    try:
        # A child that lives until it is killed: it blocks reading a stdin nobody writes to.
        child = popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        assert procs.kill_children(ident) == 1, "the wrapped Popen.__init__ did not note the child process"
        assert child.wait(timeout=10) != 0
        assert child.stdin is not None
        child.stdin.close()
    finally:
        procs.untrack(ident)


# ---- flags: the option parser --------------------------------------------------------------------


def test_the_option_parser_still_has_the_shape_flags_walks() -> None:
    parser = create_parser()
    options = parser._get_all_options()
    assert options and all(isinstance(o, optparse.Option) for o in options), (
        "yt-dlp's parser no longer lists optparse.Option objects in _get_all_options()"
    )
    assert all(isinstance(o._long_opts, list) and isinstance(o._short_opts, list) for o in options)
    dests = {o.dest for o in options}
    strings = {s for o in options for s in (*o._short_opts, *o._long_opts)}
    named = flags.ALLOWED_DESTS | set(flags.DENY_REASONS)
    assert named <= dests, (
        f"yt-dlp has no option destinations {sorted(named - dests)} any more: update ALLOWED_DESTS / "
        "DENY_REASONS in core/downloaders/ytdlp/flags.py (a renamed one is rejected or unexplained)"
    )
    listed = {*flags._DENY_OPTION_STRINGS, flags._PRESET_OPTION}
    assert listed <= strings, f"yt-dlp has no options {sorted(listed - strings)} any more: update flags.py"


def test_each_option_occurrence_goes_through_option_process() -> None:
    parser = create_parser()
    fmt = next(o for o in parser._get_all_options() if o.dest == "format")
    seen: list[str] = []
    original = fmt.process

    def process(opt: str, value: Any, values: Any, parser: Any) -> Any:
        seen.append(opt)
        return original(opt, value, values, parser)

    fmt.process = process
    values, rest = parser.parse_known_args(["-f", "best", "--format=worst"], strict=True)
    assert seen == ["-f", "--format"], (
        f"the parser called option.process for {seen}: flags.py checks each occurrence there before it acts"
    )
    assert values.format == "worst" and rest == []
    assert isinstance(yt_dlp.parse_options([]).ydl_opts, dict), "yt_dlp.parse_options(...).ydl_opts is gone"


# ---- info: extractor classes ---------------------------------------------------------------------


def test_extractors_still_describe_their_urls() -> None:
    assert InfoExtractor._ENABLED is True, "InfoExtractor._ENABLED is gone: info.py lists disabled extractors"
    classes = list(gen_extractor_classes())
    with_urls = [ie for ie in classes if isinstance(getattr(ie, "_VALID_URL", None), str | tuple | list)]
    assert len(with_urls) > 0.9 * len(classes), (
        f"only {len(with_urls)} of {len(classes)} extractors have a _VALID_URL: supported_domains reads them"
    )
    by_name = {str(ie.IE_NAME): ie for ie in classes}
    assert "vimeo.com" in hosts_in_regex(by_name["vimeo"]._VALID_URL)
