"""yt-dlp task options without yt-dlp: quality words, post-processing, cookies, names.

Everything here is cheap to import (the engine validates options at task
creation with it); the yt-dlp flag allow-list lives in `flags`.

Quality words map onto yt-dlp format selectors plus a format sort:

    best          bv*+ba/b                      (yt-dlp's own default)
    2160p..360p   bv*+ba/b, sort res:<N>        best at or below N, else the smallest above
    worst         wv*+wa/w
    audio         ba/b, and the audio is extracted (as with post-processing "audio")

Post-processing: "audio" extracts the audio track (codec kept when it can be,
so no re-encode), "mp4" prefers H.264/AAC, merges into MP4 and remuxes (or
re-encodes when remuxing cannot) anything else to MP4.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from core.errors import InvalidInput
from core.models import TaskOptions
from core.naming import sanitize_name

QUALITY_WORDS: tuple[str, ...] = ("best", "2160p", "1440p", "1080p", "720p", "480p", "360p", "worst", "audio")
_QUALITY_ALIASES = {"auto": "best", "highest": "best", "lowest": "worst", "bestaudio": "audio", "audio_only": "audio"}
_HEIGHT = re.compile(r"^(\d{3,4})p?$")

# Extensions yt-dlp's FFmpegExtractAudio produces when it keeps the codec ("best").
_AUDIO_EXT_BY_CODEC = {
    "aac": "m4a", "mp4a": "m4a", "alac": "m4a", "mp3": "mp3", "opus": "opus",
    "vorbis": "ogg", "flac": "flac", "wav": "wav", "pcm": "wav",
}
_COMMON_AUDIO_EXTS = frozenset({"aiff", "alac", "flac", "m4a", "mka", "mp3", "ogg", "opus", "wav"})
# --audio-format values → resulting extension (yt-dlp's ACODECS table).
AUDIO_FORMAT_EXT = {
    "mp3": "mp3", "aac": "m4a", "m4a": "m4a", "opus": "opus", "vorbis": "ogg",
    "flac": "flac", "alac": "m4a", "wav": "wav",
}
MEDIA_EXTS = frozenset({
    "mp4", "m4v", "mkv", "webm", "mov", "avi", "flv", "ts", "3gp", "m4a", "mp3", "opus", "ogg",
    "oga", "flac", "wav", "aac", "mka", "weba",
})


@dataclass(frozen=True, slots=True)
class FormatChoice:
    """What to ask yt-dlp for: a format selector, a sort order, and the post-processing."""

    selector: str
    sort: tuple[str, ...]
    postprocess: str  # none | audio | mp4 (quality "audio" implies "audio")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.selector}
        if self.sort:
            out["format_sort"] = list(self.sort)
        if self.postprocess == "mp4":
            out["merge_output_format"] = "mp4"
        return out


def normalize_quality(quality: str | None) -> str:
    """A quality word ('best', '720p', 'audio'...); '720' → '720p', 'auto' → 'best'."""
    text = (quality or "best").strip().lower()
    text = _QUALITY_ALIASES.get(text, text)
    if text in QUALITY_WORDS:
        return text
    match = _HEIGHT.match(text)
    if match and 100 <= int(match.group(1)) <= 4320:
        return f"{int(match.group(1))}p"
    raise InvalidInput(f"unknown quality {quality!r} (use one of: {', '.join(QUALITY_WORDS)})")


def format_choice(quality: str | None, postprocess: str = "none") -> FormatChoice:
    """Map a quality word and a post-processing choice onto yt-dlp's format selection."""
    word = normalize_quality(quality)
    if word == "audio":
        postprocess = "audio"
    height = int(word[:-1]) if word.endswith("p") else None
    sort: list[str] = [f"res:{height}"] if height else []
    if postprocess == "audio":
        selector = "ba/b"
    elif word == "worst":
        selector = "wv*+wa/w"
    else:
        selector = "bv*+ba/b"
    if postprocess == "mp4":
        # Resolution first (the user's choice), then codecs MP4 holds natively.
        sort = [*(sort or ["res"]), "vcodec:h264", "acodec:aac"]
    return FormatChoice(selector=selector, sort=tuple(sort), postprocess=postprocess)


# ---- cookies ------------------------------------------------------------------

_NETSCAPE_LINE = re.compile(r"^(#HttpOnly_)?[^\t#\s][^\t]*\t(TRUE|FALSE)\t[^\t]*\t(TRUE|FALSE)\t-?\d*\t[^\t]*\t", re.I)
NETSCAPE_HEADER = "# Netscape HTTP Cookie File\n"


def _cookie_domain(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    if not host:
        raise InvalidInput("cookies given as a header string need an http(s) URL to scope them to")
    # An IP address or single-label host cannot have domain-wide cookies.
    if re.fullmatch(r"[\d.]+|\[?[0-9a-f:]+\]?", host) or "." not in host:
        return host
    return "." + host


def _line(domain: str, name: str, value: str, path: str = "/", secure: bool = False, expires: int = 0) -> str:
    flag = "TRUE" if domain.startswith(".") else "FALSE"
    for part in (domain, name, value, path):
        if any(c in part for c in "\t\r\n"):
            raise InvalidInput("cookie names, values and domains may not contain tabs or newlines")
    return f"{domain}\t{flag}\t{path or '/'}\t{'TRUE' if secure else 'FALSE'}\t{int(expires)}\t{name}\t{value}"


def _from_json(data: Any, url: str) -> list[str]:
    items = data.get("cookies", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidInput("JSON cookies must be a list of {name, value, domain} objects")
    lines = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise InvalidInput("each JSON cookie needs a name and a value")
        domain = str(item.get("domain") or "") or (_cookie_domain(url) if url else "")
        if not domain:
            raise InvalidInput("JSON cookies need a domain")
        expires = item.get("expirationDate") or item.get("expires") or 0
        lines.append(_line(domain, str(item["name"]), str(item["value"]), str(item.get("path") or "/"),
                           bool(item.get("secure")), int(float(expires)) if expires else 0))
    return lines


def _from_header(text: str, url: str) -> list[str]:
    text = text.strip()
    if text.lower().startswith("cookie:"):
        text = text[7:].strip()
    pairs = [p.strip() for p in text.split(";") if p.strip()]
    if not pairs or any("=" not in p for p in pairs):
        raise InvalidInput("cookies must be Netscape cookies.txt text, a JSON list or a 'name=value; ...' header")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(text)
    except CookieError:
        jar = SimpleCookie()
    domain = _cookie_domain(url)
    if jar and len(jar) == len(pairs):
        return [_line(domain, m.key, m.value) for m in jar.values()]
    # SimpleCookie is strict about characters; fall back to a plain split.
    out = []
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not name.strip():
            raise InvalidInput(f"bad cookie {pair!r}")
        out.append(_line(domain, name.strip(), value.strip()))
    return out


def cookies_to_netscape(cookies: str | None, url: str = "") -> str | None:
    """Netscape cookies.txt text from any accepted form, or None when there are none.

    Accepted: cookies.txt text (as exported by browser add-ons), a JSON list of
    {name, value, domain, path, secure, expirationDate} objects, or a Cookie
    header string 'a=1; b=2' (scoped to the URL's domain).
    """
    if cookies is None or not cookies.strip():
        return None
    text = cookies.strip()
    lines: list[str]
    if text.startswith(("[", "{")):
        try:
            lines = _from_json(json.loads(text), url)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"cookies look like JSON but are not: {exc}") from None
    elif "\t" in text or text.startswith("# Netscape") or text.startswith("# HTTP Cookie File"):
        lines = []
        for raw in text.splitlines():
            line = raw.strip("\r")
            if not line.strip() or (line.startswith("#") and not line.startswith("#HttpOnly_")):
                continue
            if not _NETSCAPE_LINE.match(line) or len(line.split("\t")) != 7:
                raise InvalidInput(f"bad cookies.txt line: {line[:80]!r}")
            lines.append(line)
    else:
        lines = _from_header(text, url)
    if not lines:
        return None
    return NETSCAPE_HEADER + "\n".join(lines) + "\n"


def split_cookie_header(headers: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], str | None]:
    """Task headers as a dict for yt-dlp, with any Cookie header taken out (it goes to the jar)."""
    out: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in headers:
        if key.lower() == "cookie":
            cookies.append(value)
        else:
            out[key] = value
    return out, "; ".join(cookies) if cookies else None


def validate_ytdlp_options(options: TaskOptions, url: str = "") -> TaskOptions:
    """Check a yt-dlp task's options at creation time (→ InvalidInput, an API 400).

    Normalizes the quality word and validates cookies and extra flags; flags
    are parsed with yt-dlp's own option parser, so yt-dlp is imported only
    when there are flags.
    """
    changes: dict[str, Any] = {}
    if options.quality is not None:
        quality = normalize_quality(options.quality)
        if quality != options.quality:
            changes["quality"] = quality
    if options.cookies:
        cookies_to_netscape(options.cookies, url or "http://localhost/")
    if options.ytdlp_flags:
        from core.downloaders.ytdlp.flags import validate_ytdlp_flags

        flags = validate_ytdlp_flags(options.ytdlp_flags)
        if flags != options.ytdlp_flags:
            changes["ytdlp_flags"] = flags
    return options.model_copy(update=changes) if changes else options


# ---- file names -----------------------------------------------------------------


def _acodec_family(acodec: str | None) -> str | None:
    if not acodec or acodec == "none":
        return None
    head = acodec.lower().split(".")[0]
    return {"mp4a": "aac", "ac-3": "ac3", "ec-3": "eac3"}.get(head, head)


def predict_ext(
    info: dict[str, Any], postprocess: str, audio_format: str = "best", final_ext: str | None = None
) -> str:
    """The extension the finished file will most likely have (checked again at the end)."""
    if final_ext:
        return final_ext
    ext = str(info.get("ext") or "mp4")
    if postprocess == "mp4":
        return "mp4"
    if postprocess != "audio":
        return ext
    if audio_format and audio_format != "best":
        return AUDIO_FORMAT_EXT.get(audio_format, audio_format)
    if ext in _COMMON_AUDIO_EXTS:
        return ext
    formats = info.get("requested_formats") or [info]
    codec = None
    for fmt in formats:
        codec = _acodec_family(fmt.get("acodec")) or codec
    if codec is None:
        return "m4a"  # the common case: AAC in MP4; corrected after the fact if not
    return _AUDIO_EXT_BY_CODEC.get(codec, "mp3")  # other codecs are converted to mp3


def proposed_name(title: str | None, ext: str | None, user_name: str | None) -> str:
    """'<user name or title>.<ext>'; a media extension on the user's name is replaced."""
    if user_name:
        stem, dot, old = user_name.rpartition(".")
        base = stem if dot and stem and old.lower() in MEDIA_EXTS else user_name
    else:
        base = (title or "").strip() or "video"
    base = sanitize_name(base, fallback="video")
    if not ext:
        return base
    # Leave room for the extension within the 255-byte limit.
    room = 255 - len(ext.encode()) - 1
    encoded = base.encode("utf-8")
    if len(encoded) > room:
        base = encoded[:room].decode("utf-8", errors="ignore").rstrip(" .") or "video"
    return sanitize_name(f"{base}.{ext}", fallback=f"video.{ext}")
