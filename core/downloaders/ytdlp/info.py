"""Info without download (`Engine.extract`) and the lists of supported sites and domains.

`MediaInfo` carries what the Downie-style `extract` answer needs (title,
duration, thumbnail, uploader, description, formats with id, ext,
resolution, fps, size and codecs) plus which format the quality word would
pick; a playlist lists its entries instead of formats.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from core.downloaders.ytdlp.options import validate_ytdlp_options
from core.downloaders.ytdlp.params import YtdlpLogger, YtdlpRequest, build_plan, clean_message
from core.errors import DownloadError, UnsupportedUrl
from core.models import Headers, TaskOptions

__all__ = ["MediaEntry", "MediaFormat", "MediaInfo", "UnsupportedUrl", "extract_info", "supported_domains",
           "supported_sites"]


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
    # What downloads this entry alone (a playlist expanded into one task per entry, core/playlists.py):
    # `source` is its own page for yt-dlp, or (direct=True) a media file or HLS stream for fetchdeck's own
    # downloaders; None: only the playlist's URL with the entry's `index` selects it.
    source: str | None = None
    direct: bool = False
    index: int | None = None


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


_DIRECT_PROTOCOLS = frozenset({"http", "https", "m3u8", "m3u8_native"})


def entry_source(entry: dict[str, Any], page: str) -> tuple[str | None, bool]:
    """(URL, direct) that downloads one playlist entry alone (see MediaEntry.source)."""
    own = _str(entry.get("url"))
    if entry.get("_type") in ("url", "url_transparent") and own:
        return own, False  # a flat entry: its own page, extracted when its task runs
    entry_page = _str(entry.get("webpage_url"))
    if entry_page and entry_page != page:
        return entry_page, False
    if own and not entry.get("requested_formats") and entry.get("protocol") in _DIRECT_PROTOCOLS:
        return own, True  # a video on the playlist's own page (e.g. a <video> of a generic page)
    return None, False


def media_info(url: str, info: dict[str, Any]) -> MediaInfo:
    """Turn a processed yt-dlp info dict into MediaInfo."""
    is_playlist = info.get("_type") in ("playlist", "multi_video")
    entries: list[MediaEntry] = []
    formats: list[MediaFormat] = []
    if is_playlist:
        page = _str(info.get("webpage_url")) or url
        for position, entry in enumerate(info.get("entries") or [], start=1):
            if not isinstance(entry, dict):
                continue
            source, direct = entry_source(entry, page)
            entries.append(MediaEntry(
                url=_str(entry.get("webpage_url") or entry.get("url")), title=_str(entry.get("title")),
                id=_str(entry.get("id")), duration=_float(entry.get("duration")),
                source=source, direct=direct, index=_int(entry.get("playlist_index")) or position,
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
    import yt_dlp  # type: ignore[import-untyped]

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
    jar_cookies: str | None = None,
) -> MediaInfo:
    """Validate the options (InvalidInput), then extract in a worker thread. jar_cookies: the cookie jar's
    for the site, as cookies.txt (core/cookies.py)."""
    options = validate_ytdlp_options(
        TaskOptions(quality=quality, cookies=cookies, ytdlp_flags=list(flags), insecure=insecure), url
    )
    req = YtdlpRequest(
        url=url, quality=options.quality, cookies=options.cookies, headers=headers, proxy=proxy,
        insecure=insecure, flags=tuple(options.ytdlp_flags), socket_timeout=timeout, retries=3,
        jar_cookies=jar_cookies,
    )
    return await asyncio.to_thread(extract_media_info, req)


def _listed_extractors() -> list[Any]:
    """yt-dlp's enabled, listed extractors, without the generic one."""
    from yt_dlp.extractor import gen_extractor_classes  # type: ignore[import-untyped]

    return [ie for ie in gen_extractor_classes()
            if getattr(ie, "_ENABLED", True) and getattr(ie, "IE_DESC", None) is not False
            and str(ie.IE_NAME).lower() != "generic"]


@functools.cache
def _site_names() -> tuple[str, ...]:
    return tuple(sorted({str(ie.IE_NAME) for ie in _listed_extractors()}, key=str.lower))


def supported_sites() -> list[str]:
    """yt-dlp's extractor names (sites), sorted; the generic extractor is left out."""
    return list(_site_names())


# ---- domains --------------------------------------------------------------------------------------
# The host names in the extractors' `_VALID_URL` regexes. A regex is reduced to plain text step by
# step: char classes, lookarounds and comments go, every group becomes `(?:`, optional parts are
# dropped (`(?:www\.)?`, `tiktokv?`), and literal alternatives are multiplied out with the labels
# around them (`bili(?:bili\.tv|intl\.com)` → `(?:bilibili\.tv|biliintl\.com)`), until the host
# names stand as literal runs like `youtube\.com`. Hosts written as char classes (`[yY][oO]...`)
# are not found that way: WELL_KNOWN_DOMAINS makes sure the common ones are listed.

WELL_KNOWN_DOMAINS = frozenset({
    "youtube.com", "youtu.be", "vimeo.com", "bilibili.com", "dailymotion.com", "tiktok.com", "twitter.com",
    "x.com", "instagram.com", "facebook.com",
})
_VERBOSE = re.compile(r"\(\?[a-z]*x[a-z]*[):]")
_COMMENT = re.compile(r"(?<!\\)#[^\n]*")
_GROUP_START = re.compile(r"\(\?p<\w+>|\(\?[a-z]*:")  # (?P<name>, (?:, (?x:
_INLINE_FLAGS = re.compile(r"\(\?[a-z]+\)")  # (?x), (?i)
_LIT = r"(?:[a-z0-9|-]|\\\.)*"  # the inside of a group of literal alternatives
_RUN = r"((?:[a-z0-9-]|\\\.)+)"  # label characters and escaped dots
_REWRITES: tuple[tuple[re.Pattern[str], Any], ...] = (
    # tiktokv?\.com → tiktok\.com; https? → http
    (re.compile(r"(?<!\\)[a-z0-9]\?"), ""),
    # (?:www\.)? → nothing
    (re.compile(r"\(\?:" + _LIT + r"\)[?*]"), ""),
    # (?:a|(?:b|c)) → (?:a|b|c)
    (re.compile(r"(?:(?<=\(\?:)|(?<=\|))\(\?:(" + _LIT + r")\)(?=[|)])"), lambda m: m[1]),
    # (?:a|b)\.com → (?:a\.com|b\.com)
    (re.compile(r"\(\?:(" + _LIT + r")\)" + _RUN + r"(?![a-z0-9\\-])"),
     lambda m: "(?:" + "|".join(alt + m[2] for alt in m[1].split("|")) + ")"),
    # bilibili\.(?:com|tv) → (?:bilibili\.com|bilibili\.tv)
    (re.compile(r"(?<![a-z0-9\\-])" + _RUN + r"\(\?:(" + _LIT + r")\)"),
     lambda m: "(?:" + "|".join(m[1] + alt for alt in m[2].split("|")) + ")"),
    # (?:a\.|b\.)(?:com|tv) → every pair
    (re.compile(r"\(\?:(" + _LIT + r")\)\(\?:(" + _LIT + r")\)"),
     lambda m: "(?:" + "|".join(a + b for a in m[1].split("|") for b in m[2].split("|")) + ")"),
)
_HOST = re.compile(r"(?<![a-z0-9\\-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\\.)+[a-z][a-z0-9-]*[a-z0-9])(?![a-z0-9\\-])")
# Last labels that are file extensions in a URL's path (`player\.html`), not top-level domains.
_NOT_TLDS = frozenset({
    "php", "php3", "php4", "php5", "html", "htm", "shtml", "ihtml", "json", "xml", "mp4", "m3u8", "mpd", "f4m",
    "swf", "js", "aspx", "asp", "jsp", "cgi", "do", "action", "cfm", "pl", "txt", "png", "jpg", "gif", "mp3",
    "flv", "ism", "smil", "onion",
})
_MAX_PASSES = 200


def _skip_class(text: str, i: int) -> int:
    """The index just past the char class that starts at text[i] == "["."""
    j = i + 1
    if text.startswith("^", j):
        j += 1
    if text.startswith("]", j):
        j += 1
    while j < len(text) and text[j] != "]":
        j += 2 if text[j] == "\\" else 1
    return j + 1


def _plain_regex(pattern: str) -> str:
    """The regex lower-cased, without comments, char classes (each a "~", which no host contains),
    lookarounds and inline flags, every group written `(?:`."""
    text = pattern.lower()
    if _VERBOSE.match(text):
        text = re.sub(r"\s+", "", _COMMENT.sub("", text))
    out: list[str] = []
    groups: list[bool] = []  # per open group: is it a lookaround (dropped with its content)?
    hidden = 0  # how many lookarounds we are inside
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if not hidden:
                out.append(text[i:i + 2])
            i += 2
            continue
        if ch == "[":
            if not hidden:
                out.append("~")
            i = _skip_class(text, i)
            continue
        if ch == "(":
            flags = _INLINE_FLAGS.match(text, i)
            if flags:
                i = flags.end()
                continue
            lookaround = text.startswith(("(?!", "(?=", "(?<!", "(?<="), i)
            groups.append(lookaround)
            hidden += lookaround
            if not hidden:
                out.append("(?:")
            start = _GROUP_START.match(text, i)  # None: a capturing group, a lookaround, (?P=name)
            i = start.end() if start else i + 1
            continue
        if ch == ")" and groups:
            if groups.pop():
                hidden -= 1
                i += 1
                continue
        after_label = bool(out) and (out[-1][-1:].isalnum() or out[-1][-1:] == ")")
        if ch == "." and after_label and text[i + 1:i + 2].isalpha():
            ch = "\\."  # a dot left unescaped between labels: (?:tvopen|ethnos).gr
        if not hidden:
            out.append(ch)
        i += 1
    return "".join(out)


def hosts_in_regex(pattern: str) -> set[str]:
    """The literal host names a `_VALID_URL`-style regex matches (without a leading "www.")."""
    text = _plain_regex(pattern)
    for _ in range(_MAX_PASSES):
        before = text
        for regex, replacement in _REWRITES:
            text = regex.sub(replacement, text)
        if text == before:
            break
    hosts = set()
    for token in _HOST.findall(text):
        host = token.replace("\\.", ".").removeprefix("www.")
        if "." in host and host.rsplit(".", 1)[1] not in _NOT_TLDS:
            hosts.add(host)
    return hosts


def _without_subdomains(hosts: set[str]) -> set[str]:
    """player.vimeo.com goes when vimeo.com is there."""
    return {h for h in hosts if not any(h.split(".", n)[-1] in hosts for n in range(1, h.count(".")))}


@functools.cache
def _domains() -> tuple[str, ...]:
    hosts: set[str] = set(WELL_KNOWN_DOMAINS)
    for ie in _listed_extractors():
        patterns = getattr(ie, "_VALID_URL", None)
        for pattern in [patterns] if isinstance(patterns, str) else patterns or ():
            if isinstance(pattern, str):
                hosts |= hosts_in_regex(pattern)
    return tuple(sorted(_without_subdomains(hosts)))


def supported_domains() -> list[str]:
    """The domains yt-dlp's extractors handle (youtube.com, vimeo.com, ...): sorted, no duplicates,
    a subdomain only when its parent is not listed. Computed once (about 0.3 s)."""
    return list(_domains())
