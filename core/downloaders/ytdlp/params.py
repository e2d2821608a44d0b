"""YoutubeDL parameters for a request: options, flags, cookies, logger, ffmpeg.

Shared by the downloader (`download`) and info extraction (`info`).
Imports yt-dlp, so import this module lazily.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor, FFmpegVideoConvertorPP  # type: ignore[import-untyped]
from yt_dlp.utils import PostProcessingError  # type: ignore[import-untyped]

from core.cookies import redact_cookies
from core.downloaders.ffmpeg import find_ffmpeg
from core.downloaders.ytdlp.flags import flags_to_params
from core.downloaders.ytdlp.options import (
    AUDIO_FORMAT_EXT,
    FormatChoice,
    cookies_to_netscape,
    format_choice,
    split_cookie_header,
)
from core.errors import InvalidInput
from core.models import Headers, Task

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REPORT_BOILERPLATE = re.compile(r";?\s*please report this issue on\s.*$", re.IGNORECASE | re.DOTALL)


def clean_message(text: object) -> str:
    """yt-dlp's message without colour codes, the 'ERROR:' tag or the bug-report boilerplate."""
    msg = _ANSI.sub("", str(text)).strip()
    for tag in ("ERROR:", "WARNING:"):
        if msg.startswith(tag):
            msg = msg[len(tag):].strip()
    msg = _REPORT_BOILERPLATE.sub("", msg).strip()
    return msg or "yt-dlp failed"


class YtdlpLogger:
    """yt-dlp's logger → one-line task log entries.

    `check` runs on every debug/info line, so a stop also lands while yt-dlp
    extracts or post-processes (it raises to abort). Errors are kept in
    `errors` (the caller decides whether to log them).
    """

    def __init__(self, emit: Callable[[str], None], check: Callable[[], None] | None = None,
                 verbose: bool = False, log_errors: bool = False) -> None:
        self.emit: Callable[[str], None] = lambda text: emit(redact_cookies(text))  # cookies are never logged
        self.check = check
        self.verbose = verbose
        self.log_errors = log_errors
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        if self.check:
            self.check()
        if msg.startswith("[debug] "):
            if self.verbose:
                self.emit(msg)
            return
        self._screen(msg)

    def info(self, msg: str) -> None:
        if self.check:
            self.check()
        self._screen(msg)

    def _screen(self, msg: str) -> None:
        text = _ANSI.sub("", msg).strip()
        if not text or (text.startswith("[download]") and "%" in text and " of " in text):
            return  # progress lines: the progress hook reports those
        self.emit(text)

    def warning(self, msg: str) -> None:
        text = clean_message(msg)
        if "ffprobe" in text and "not found" in text:
            return  # only ffmpeg is bundled; yt-dlp falls back to it
        self.emit(f"warning: {text}")

    def error(self, msg: str) -> None:
        text = redact_cookies(clean_message(msg))
        self.errors.append(text)
        if self.log_errors:
            self.emit(f"error: {text}")


class ToMp4PP(FFmpegVideoConvertorPP):  # type: ignore[misc]  # yt-dlp is untyped
    """Post-processing "mp4": remux into MP4, re-encode only when remuxing fails.

    `build_plan` makes it before its YoutubeDL exists. yt-dlp's ffmpeg
    post-processors look for ffmpeg once, in `__init__`, in the downloader's
    `ffmpeg_location` (else the `--ffmpeg-location` context variable, which
    only yt-dlp's CLI sets, and in its own thread): without a downloader that
    is bare `ffmpeg` on PATH, which a machine with only the bundled ffmpeg
    lacks. So attaching it to a YoutubeDL (`add_post_processor`) looks again.
    """

    # What FFmpegPostProcessor caches from the paths it found (functools.cached_property).
    _FOUND = ("basename", "probe_basename", "_version", "_probe_version")

    def __init__(self, downloader: Any = None) -> None:
        super().__init__(downloader, preferedformat="mp4")
        self._copy = True

    def set_downloader(self, downloader: Any) -> None:
        super().set_downloader(downloader)
        if not hasattr(self, "_paths"):
            return  # called from __init__: it determines the executables next
        for name in self._FOUND:
            self.__dict__.pop(name, None)
        self._paths = self._determine_executables()

    @property
    def _ACTION(self) -> str:
        return "remuxing" if self._copy else "re-encoding"

    def _options(self, target_ext: str) -> Any:
        return FFmpegPostProcessor.stream_copy_opts(self._copy)

    def run(self, info: dict[str, Any]) -> Any:
        self._copy = True
        try:
            return super().run(info)
        except PostProcessingError as exc:
            last = (str(exc.msg or exc).strip().splitlines() or ["ffmpeg failed"])[-1]
            self.report_warning(f"remuxing to MP4 failed ({last}); re-encoding")
            self._copy = False
            return super().run(info)


@dataclass(frozen=True, slots=True)
class YtdlpRequest:
    """Everything that shapes a yt-dlp run or an info extraction."""

    url: str
    quality: str | None = None
    postprocess: str = "none"
    cookies: str | None = None
    headers: Headers = ()
    proxy: str | None = None
    insecure: bool = False
    flags: tuple[str, ...] = ()
    socket_timeout: float = 30.0
    retries: int = 10
    concurrent_fragments: int = 1
    keep_server_mtime: bool = False
    verbose: bool = False
    jar_cookies: str | None = None  # the cookie jar's cookies for this site, as cookies.txt (core/cookies.py)

    @classmethod
    def from_task(cls, task: Task, proxy: str | None, retries: int, read_timeout: float) -> YtdlpRequest:
        opts = task.options
        return cls(
            url=task.url, quality=opts.quality, postprocess=opts.postprocess, cookies=opts.cookies,
            headers=task.headers, proxy=proxy, insecure=opts.insecure, flags=tuple(opts.ytdlp_flags),
            socket_timeout=read_timeout, retries=retries, concurrent_fragments=opts.segment_threads or 1,
            keep_server_mtime=opts.use_server_file_time, verbose=opts.debug_log,
        )


@dataclass(slots=True)
class Plan:
    """YoutubeDL params plus what fetchdeck needs to know about the result."""

    params: dict[str, Any]
    choice: FormatChoice
    postprocess: str  # effective: none | audio | mp4
    audio_format: str = "best"
    final_ext: str | None = None  # when the flags fix it (e.g. --audio-format mp3)
    extra_pps: list[Any] = field(default_factory=list)  # post-processor objects to add


def build_plan(req: YtdlpRequest, logger: YtdlpLogger) -> Plan:
    """Assemble YoutubeDL params: fetchdeck's defaults < the flags < what fetchdeck controls."""
    choice = format_choice(req.quality, req.postprocess)
    try:
        flag_params = flags_to_params(req.flags)
    except InvalidInput:
        raise
    headers, header_cookies = split_cookie_header(req.headers)
    cookie_text = "; ".join(c for c in (header_cookies,) if c)
    netscape = cookies_to_netscape(req.cookies, req.url)
    header_jar = cookies_to_netscape(cookie_text, req.url) if cookie_text else None
    if header_jar:
        netscape = (netscape or "") + header_jar.split("\n", 1)[1]
    if req.jar_cookies:  # first: the task's own cookies (later lines) replace the jar's of the same name
        netscape = req.jar_cookies + (netscape.split("\n", 1)[1] if netscape else "")

    params: dict[str, Any] = {
        "quiet": True,
        "noprogress": True,
        "color": "no_color",
        "logger": logger,
        "socket_timeout": req.socket_timeout,
        "retries": req.retries,
        "fragment_retries": req.retries,
        "noplaylist": True,  # a video URL that also names a playlist means the video
        "continuedl": True,
        "updatetime": req.keep_server_mtime,
        "concurrent_fragment_downloads": max(1, req.concurrent_fragments),
        "outtmpl": {"default": "media.%(ext)s"},
        "extract_flat": "in_playlist",
        "verbose": req.verbose,
        **choice.params(),
    }
    if req.proxy:
        params["proxy"] = req.proxy
    if req.insecure:
        params["nocheckcertificate"] = True
    ffmpeg = find_ffmpeg()
    if ffmpeg:
        params["ffmpeg_location"] = ffmpeg

    flag_headers = flag_params.pop("http_headers", None) or {}
    flag_pps = flag_params.pop("postprocessors", None) or []
    final_ext = flag_params.pop("final_ext", None)
    params.update(flag_params)
    merged_headers = {**headers, **flag_headers}
    if merged_headers:
        params["http_headers"] = merged_headers
    if netscape:
        params["cookiefile"] = io.StringIO(netscape)

    postprocess = choice.postprocess
    audio_format = "best"
    pps = list(flag_pps)
    extracting = [pp for pp in pps if pp.get("key") == "FFmpegExtractAudio"]
    if extracting:
        postprocess = "audio"
        audio_format = str(extracting[-1].get("preferredcodec") or "best")
    elif postprocess == "audio":
        pps.insert(0, {"key": "FFmpegExtractAudio", "preferredcodec": "best", "nopostoverwrites": False})
    extra: list[Any] = []
    converting = any(pp.get("key") in ("FFmpegVideoRemuxer", "FFmpegVideoConvertor") for pp in pps)
    if postprocess == "mp4" and not converting:
        extra.append(ToMp4PP())
    if pps:
        params["postprocessors"] = pps
    if final_ext is None and audio_format != "best":
        final_ext = AUDIO_FORMAT_EXT.get(audio_format)
    return Plan(params=params, choice=choice, postprocess=postprocess, audio_format=audio_format,
                final_ext=final_ext, extra_pps=extra)
