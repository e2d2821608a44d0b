"""Guess a task's kind from its URL (the response may correct it later)."""

from __future__ import annotations

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
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in _YTDLP_HOSTS):
        return TaskKind.YTDLP
    return TaskKind.HTTP


def is_hls_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";")[0].strip().lower() in HLS_CONTENT_TYPES
