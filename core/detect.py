"""Guess a task's kind from its URL (the response may correct it later)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from core.models import TaskKind

# Hosts whose pages are videos yt-dlp extracts, not files.
_YTDLP_HOSTS = (
    "youtube.com", "youtu.be", "bilibili.com", "b23.tv", "vimeo.com", "twitch.tv",
    "dailymotion.com", "tiktok.com", "twitter.com", "x.com", "instagram.com",
    "facebook.com", "soundcloud.com", "nicovideo.jp", "douyin.com", "ixigua.com",
)
HLS_CONTENT_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl",
                     "audio/x-mpegurl")


def guess_kind(url: str) -> TaskKind:
    parts = urlsplit(url)
    path = parts.path.lower()
    if path.endswith((".m3u8", ".m3u")):
        return TaskKind.HLS
    if path.endswith(".mpd"):
        return TaskKind.DASH
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in _YTDLP_HOSTS):
        return TaskKind.YTDLP
    return TaskKind.HTTP


def is_hls_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";")[0].strip().lower() in HLS_CONTENT_TYPES


# ---- DASH (MPEG-DASH manifests, core/downloaders/dash) ----
DASH_CONTENT_TYPES = ("application/dash+xml", "video/vnd.mpeg.dash.mpd")
_FIRST_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_COMMENT = re.compile(rb"<!--.*?(?:-->|$)", re.S)  # a head may end inside one


def refine_kind(kind: TaskKind, url: str) -> TaskKind:
    """The kind a task of `kind` really is: an HLS-typed task (MediaGo's and the m3u8 API's `m3u8` type, which
    N_m3u8DL-RE behind them also uses for DASH) whose URL is an .mpd manifest is a DASH task."""
    return TaskKind.DASH if kind is TaskKind.HLS and guess_kind(url) is TaskKind.DASH else kind


def is_dash_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";")[0].strip().lower() in DASH_CONTENT_TYPES


def _first_element(text: bytes) -> bytes | None:
    """The local name of the first element in an XML head (None: only a declaration and comments so far)."""
    first = _FIRST_ELEMENT.search(_COMMENT.sub(b"", text))
    return None if first is None else first.group(1).rsplit(b":", 1)[-1]


def looks_like_mpd(head: bytes) -> bool:
    """Whether a body's first bytes can be an MPD: XML whose first element is <MPD> (or not yet seen)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"<"):
        return False
    return _first_element(text) in (None, b"MPD")


def is_dash_manifest(head: bytes, content_type: str | None) -> bool:
    """A response that is a DASH manifest: served as one, or an XML body whose first element is <MPD> (or
    whose first bytes are only a declaration and comments: the DASH downloader then checks the root)."""
    return is_dash_content_type(content_type) or looks_like_mpd(head)
