"""Info without download (`Engine.extract`) and the list of supported sites.

`MediaInfo` carries what the Downie-style `extract` answer needs (title,
duration, thumbnail, uploader, description, formats with id, ext,
resolution, fps, size and codecs) plus which format the quality word would
pick; a playlist lists its entries instead of formats.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from core.downloaders.ytdlp_options import validate_ytdlp_options
from core.downloaders.ytdlp_params import YtdlpLogger, YtdlpRequest, build_plan, clean_message
from core.errors import DownloadError, UnsupportedUrl
from core.models import Headers, TaskOptions

__all__ = ["MediaEntry", "MediaFormat", "MediaInfo", "UnsupportedUrl", "extract_info", "supported_sites"]


@dataclass(frozen=True, slots=True)
class MediaFormat:
    format_id: str
    ext: str | None = None
    url: str | None = None
    resolution: str | None = None  # "1280x720", "audio only"
    quality: str | None = None  # "720p", "audio" (the word fetchdeck's quality uses)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    filesize: int | None = None  # exact, or yt-dlp's estimate when exact is unknown
    filesize_exact: bool = False
    tbr: float | None = None  # total bitrate, kbit/s
    vcodec: str | None = None  # None: unknown; "none": no video
    acodec: str | None = None
    protocol: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class MediaEntry:
    """One item of a playlist (flat: not extracted yet)."""

    url: str | None
    title: str | None = None
    id: str | None = None
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    url: str
    webpage_url: str | None
    id: str | None
    title: str | None
    duration: float | None
    thumbnail: str | None
    uploader: str | None
    description: str | None
    extractor: str | None
    is_live: bool = False
    is_playlist: bool = False
    ext: str | None = None  # of the format the quality word picks
    selected_format: str | None = None  # e.g. "137+140"
    filesize: int | None = None  # of the selection, exact or estimated
    formats: list[MediaFormat] = field(default_factory=list)
    entries: list[MediaEntry] = field(default_factory=list)
    playlist_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def quality_label(fmt: dict[str, Any]) -> str | None:
    """'720p' for a video format, 'audio' for audio only, None when unknown."""
    height = _int(fmt.get("height"))
    if height:
        return f"{height}p"
    if fmt.get("vcodec") == "none" and fmt.get("acodec") not in (None, "none"):
        return "audio"
    return None


def media_format(fmt: dict[str, Any]) -> MediaFormat:
    size = _int(fmt.get("filesize"))
    approx = _int(fmt.get("filesize_approx"))
    return MediaFormat(
        format_id=str(fmt.get("format_id") or ""),
        ext=_str(fmt.get("ext")),
        url=_str(fmt.get("url")),
        resolution=_str(fmt.get("resolution")),
        quality=quality_label(fmt),
        width=_int(fmt.get("width")),
        height=_int(fmt.get("height")),
        fps=_float(fmt.get("fps")),
        filesize=size if size is not None else approx,
        filesize_exact=size is not None,
        tbr=_float(fmt.get("tbr")),
        vcodec=_str(fmt.get("vcodec")),
        acodec=_str(fmt.get("acodec")),
        protocol=_str(fmt.get("protocol")),
        note=_str(fmt.get("format_note")),
    )


def selection_size(info: dict[str, Any]) -> int | None:
    """Bytes of what yt-dlp selected (all parts), or None if any part is unknown."""
    parts = info.get("requested_formats") or [info]
    total = 0
    for part in parts:
        size = _int(part.get("filesize")) or _int(part.get("filesize_approx"))
        if size is None:
            return None
        total += size
    return total


def media_info(url: str, info: dict[str, Any]) -> MediaInfo:
    """Turn a processed yt-dlp info dict into MediaInfo."""
    is_playlist = info.get("_type") in ("playlist", "multi_video")
    entries: list[MediaEntry] = []
    formats: list[MediaFormat] = []
    if is_playlist:
        for entry in info.get("entries") or []:
            if not isinstance(entry, dict):
                continue
            entries.append(MediaEntry(
                url=_str(entry.get("webpage_url") or entry.get("url")), title=_str(entry.get("title")),
                id=_str(entry.get("id")), duration=_float(entry.get("duration")),
            ))
    else:
        formats = [media_format(f) for f in info.get("formats") or [info] if f.get("format_id") is not None]
    return MediaInfo(
        url=url,
        webpage_url=_str(info.get("webpage_url")),
        id=_str(info.get("id")),
        title=_str(info.get("title")),
        duration=_float(info.get("duration")),
        thumbnail=_str(info.get("thumbnail")),
        uploader=_str(info.get("uploader") or info.get("channel") or info.get("uploader_id")),
        description=_str(info.get("description")),
        extractor=_str(info.get("extractor_key") or info.get("extractor")),
        is_live=bool(info.get("is_live")),
        is_playlist=is_playlist,
        ext=None if is_playlist else _str(info.get("ext")),
        selected_format=None if is_playlist else _str(info.get("format_id")),
        filesize=None if is_playlist else selection_size(info),
        formats=formats,
        entries=entries,
        playlist_count=_int(info.get("playlist_count")) or (len(entries) if is_playlist else None),
    )


def raise_ytdlp_error(exc: BaseException, logger: YtdlpLogger | None = None) -> NoReturn:
    """Re-raise a yt-dlp failure as a DownloadError carrying yt-dlp's message."""
    text = clean_message(exc)
    if logger and logger.errors and text in ("yt-dlp failed", ""):
        text = logger.errors[-1]
    if "Unsupported URL" in text:
        raise UnsupportedUrl(text) from None
    raise DownloadError(text) from None


def extract_media_info(req: YtdlpRequest) -> MediaInfo:
    """Blocking: run yt-dlp's extraction for req.url without downloading."""
    import yt_dlp

    logger = YtdlpLogger(lambda _text: None)
    plan = build_plan(req, logger)
    params = {**plan.params, "skip_download": True}
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.extract_info(req.url, download=False)
    except yt_dlp.utils.YoutubeDLError as exc:
        raise_ytdlp_error(exc, logger)
    if not info:
        raise DownloadError(logger.errors[-1] if logger.errors else "yt-dlp found nothing at this URL")
    return media_info(req.url, info)


async def extract_info(
    url: str, *, quality: str | None = None, cookies: str | None = None, headers: Headers = (),
    proxy: str | None = None, insecure: bool = False, flags: Sequence[str] = (), timeout: float = 30.0,
) -> MediaInfo:
    """Validate the options (InvalidInput), then extract in a worker thread."""
    options = validate_ytdlp_options(
        TaskOptions(quality=quality, cookies=cookies, ytdlp_flags=list(flags), insecure=insecure), url
    )
    req = YtdlpRequest(
        url=url, quality=options.quality, cookies=options.cookies, headers=headers, proxy=proxy,
        insecure=insecure, flags=tuple(options.ytdlp_flags), socket_timeout=timeout, retries=3,
    )
    return await asyncio.to_thread(extract_media_info, req)


@functools.cache
def _site_names() -> tuple[str, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    names: set[str] = set()
    for ie in gen_extractor_classes():
        if not getattr(ie, "_ENABLED", True) or getattr(ie, "IE_DESC", None) is False:
            continue
        name = str(ie.IE_NAME)
        if name.lower() == "generic":
            continue
        names.add(name)
    return tuple(sorted(names, key=str.lower))


def supported_sites() -> list[str]:
    """yt-dlp's extractor names (sites), sorted; the generic extractor is left out."""
    return list(_site_names())
