"""HLS playlists as plain data: parsing (via `m3u8`), variant choice, skip rules.

The `m3u8` package does the tag parsing; this module turns its objects into
small frozen dataclasses with absolute URLs and resolved byte ranges, so the
downloader never deals with relative URIs or implicit range offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin

import m3u8  # type: ignore[import-untyped]

from core.errors import DownloadError, InvalidInput, UnsupportedMedia


@dataclass(frozen=True, slots=True)
class ByteRange:
    offset: int
    length: int

    @property
    def header(self) -> str:
        return f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An EXT-X-KEY in effect; only AES-128 survives parsing."""

    method: str
    url: str
    iv: bytes | None  # explicit IV, else the media sequence number is the IV


@dataclass(frozen=True, slots=True)
class InitSection:
    url: str
    byterange: ByteRange | None

    @property
    def ident(self) -> str:
        return self.url if self.byterange is None else f"{self.url}#{self.byterange.offset}"


@dataclass(frozen=True, slots=True)
class MediaSegment:
    seq: int  # media sequence number: the segment's identity, also the default IV
    url: str
    duration: float
    byterange: ByteRange | None = None
    key: KeyInfo | None = None
    init: InitSection | None = None
    discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    segments: tuple[MediaSegment, ...]
    target_duration: float
    endlist: bool
    media_sequence: int

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)


@dataclass(frozen=True, slots=True)
class Variant:
    url: str
    bandwidth: int
    height: int | None
    codecs: str | None
    audio_group: str | None


@dataclass(frozen=True, slots=True)
class Rendition:
    url: str | None  # None: the audio is muxed into the variant itself
    group_id: str
    name: str
    language: str | None
    default: bool


@dataclass(frozen=True, slots=True)
class MasterPlaylist:
    variants: tuple[Variant, ...]
    audio: tuple[Rendition, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """What to download from a master playlist: a video variant and maybe a separate audio."""

    video: str | None
    audio: str | None
    label: str


def _load(text: str) -> m3u8.M3U8:
    if not text.lstrip("\ufeff \t\r\n").startswith("#EXTM3U"):
        raise DownloadError("not an HLS playlist (no #EXTM3U header)")
    try:
        return m3u8.M3U8(text)
    except Exception as exc:  # the parser raises assorted errors on bad input
        raise DownloadError(f"cannot parse the playlist: {exc}") from exc


def is_master(text: str) -> bool:
    return "#EXT-X-STREAM-INF" in text


def _byterange(spec: str | None, previous_end: int | None, what: str) -> ByteRange | None:
    if not spec:
        return None
    length_text, _, offset_text = spec.strip().strip('"').partition("@")
    try:
        length = int(length_text)
        offset = int(offset_text) if offset_text else previous_end
    except ValueError:
        raise DownloadError(f"bad EXT-X-BYTERANGE {spec!r} on {what}") from None
    if offset is None:
        raise DownloadError(f"EXT-X-BYTERANGE {spec!r} on {what} has no offset and no previous range")
    if length <= 0 or offset < 0:
        raise DownloadError(f"bad EXT-X-BYTERANGE {spec!r} on {what}")
    return ByteRange(offset, length)


def _key(key: m3u8.Key | None, base: str) -> KeyInfo | None:
    if key is None or not key.method or key.method.upper() == "NONE":
        return None
    method = key.method.upper()
    if method != "AES-128":
        raise UnsupportedMedia(f"encryption method {key.method} is not supported (only AES-128 is)")
    keyformat = (key.keyformat or "identity").strip('"')
    if keyformat != "identity":
        raise UnsupportedMedia(f"key format {keyformat!r} (DRM) is not supported")
    if not key.uri:
        raise DownloadError("AES-128 key without a URI")
    iv = None
    if key.iv:
        text = key.iv.strip()
        text = text[2:] if text[:2].lower() == "0x" else text
        try:
            iv = bytes.fromhex(text.rjust(32, "0"))
        except ValueError:
            raise DownloadError(f"bad key IV {key.iv!r}") from None
        if len(iv) != 16:
            raise DownloadError(f"bad key IV {key.iv!r}: not 128 bits")
    return KeyInfo(method, urljoin(base, key.uri), iv)


def parse_media(text: str, url: str) -> MediaPlaylist:
    """A media playlist with absolute URLs and explicit byte ranges."""
    pl = _load(text)
    if pl.is_variant:
        raise DownloadError("expected a media playlist, got a master playlist")
    first_seq = int(pl.media_sequence or 0)
    segments: list[MediaSegment] = []
    range_end: dict[str, int] = {}  # per URL: where an offset-less range continues
    inits: dict[tuple[str, str | None], InitSection] = {}
    for i, seg in enumerate(pl.segments):
        seq = first_seq + i
        seg_url = urljoin(url, seg.uri)
        br = _byterange(seg.byterange, range_end.get(seg_url), f"segment {seq}")
        if br is not None:
            range_end[seg_url] = br.offset + br.length
        init = None
        if seg.init_section is not None and seg.init_section.uri:
            spec = seg.init_section.byterange
            ikey = (seg.init_section.uri, spec)
            init = inits.get(ikey)
            if init is None:
                init_url = urljoin(url, seg.init_section.uri)
                init = InitSection(init_url, _byterange(spec, 0, "EXT-X-MAP"))
                inits[ikey] = init
        segments.append(
            MediaSegment(
                seq=seq,
                url=seg_url,
                duration=float(seg.duration or 0.0),
                byterange=br,
                key=_key(seg.key, url),
                init=init,
                discontinuity=bool(seg.discontinuity),
            )
        )
    target = float(pl.target_duration or 0) or max((s.duration for s in segments), default=6.0) or 6.0
    # A VOD playlist type means the list is final even if a server forgot EXT-X-ENDLIST.
    ended = bool(pl.is_endlist) or (pl.playlist_type or "").upper() == "VOD"
    return MediaPlaylist(tuple(segments), target, ended, first_seq)


def parse_master(text: str, url: str) -> MasterPlaylist:
    pl = _load(text)
    variants = []
    for p in pl.playlists:
        info = p.stream_info
        res = info.resolution
        variants.append(
            Variant(
                url=urljoin(url, p.uri),
                bandwidth=int(info.bandwidth or info.average_bandwidth or 0),
                height=int(res[1]) if res else None,
                codecs=info.codecs,
                audio_group=info.audio,
            )
        )
    audio = tuple(
        Rendition(
            url=urljoin(url, m.uri) if m.uri else None,
            group_id=m.group_id or "",
            name=m.name or "",
            language=m.language,
            default=(m.default or "").upper() == "YES",
        )
        for m in pl.media
        if (m.type or "").upper() == "AUDIO"
    )
    if not variants:
        raise DownloadError("master playlist lists no variants")
    return MasterPlaylist(tuple(variants), audio)


_HEIGHT = re.compile(r"^(\d{3,4})p$")
_BANDWIDTH = re.compile(r"^(\d+(?:\.\d+)?)\s*([km]?)(?:bps|b)?$")


def _audio_only(v: Variant) -> bool:
    return v.height is None and bool(v.codecs) and not any(
        c.strip().startswith(("avc", "hvc", "hev", "vp0", "vp9", "av01", "dvh")) for c in (v.codecs or "").split(",")
    )


def pick_variant(variants: Iterable[Variant], quality: str | None) -> Variant:
    """best (default) / worst / '720p' (tallest ≤ 720) / a bandwidth ('800k', '2500000')."""
    pool = sorted(variants, key=lambda v: (v.bandwidth, v.height or 0))
    if not pool:
        raise DownloadError("no variants to choose from")
    q = (quality or "best").strip().lower()
    video = [v for v in pool if not _audio_only(v)] or pool
    if q in ("", "best"):
        return video[-1]
    if q == "worst":
        return video[0]
    if q == "audio":
        audio_only = [v for v in pool if _audio_only(v)]
        return audio_only[-1] if audio_only else pool[0]
    if m := _HEIGHT.match(q):
        limit = int(m.group(1))
        fitting = [v for v in video if v.height is not None and v.height <= limit]
        if fitting:
            return max(fitting, key=lambda v: (v.height or 0, v.bandwidth))
        return min(video, key=lambda v: (v.height or 0, v.bandwidth))
    if m := _BANDWIDTH.match(q):
        limit = int(float(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2)])
        fitting = [v for v in video if v.bandwidth <= limit]
        return fitting[-1] if fitting else video[0]
    raise InvalidInput(f"quality {quality!r}: use best, worst, audio, a height like 720p or a bandwidth like 800k")


def choose(master: MasterPlaylist, quality: str | None) -> Choice:
    """The variant to download and, when it names an audio group with its own URI, that audio."""
    variant = pick_variant(master.variants, quality)
    audio_only = (quality or "").strip().lower() == "audio"
    group = [r for r in master.audio if r.group_id == variant.audio_group] if variant.audio_group else []
    default = next((r for r in group if r.default), None)
    # A DEFAULT rendition without a URI means the variant carries that audio itself.
    rendition = default if default is not None else next((r for r in group if r.url), None)
    if rendition is not None and rendition.url is None:
        rendition = None
    label = f"{variant.height}p" if variant.height else "audio" if _audio_only(variant) else "variant"
    label = f"{label} @ {variant.bandwidth // 1000} kbit/s"
    if rendition is None:
        return Choice(video=variant.url, audio=None, label=label)
    label = f"{label} + audio {rendition.name or rendition.language or rendition.group_id}"
    if audio_only:
        return Choice(video=None, audio=rendition.url, label=f"audio {rendition.name or rendition.group_id}")
    return Choice(video=variant.url, audio=rendition.url, label=label)


# ---- skip expressions ("1,92-100", 1-based, as the m3u8 task API defines) ----


@dataclass(frozen=True, slots=True)
class SkipRule:
    ranges: tuple[tuple[int, int], ...] = ()

    def __contains__(self, ordinal: object) -> bool:
        return isinstance(ordinal, int) and any(lo <= ordinal <= hi for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)


def parse_skip(expr: str | None) -> SkipRule:
    """'1,92-100' → segments 1 and 92..100 (1-based, inclusive); raises InvalidInput."""
    if expr is None or not expr.strip():
        return SkipRule()
    ranges: list[tuple[int, int]] = []
    for raw in re.split(r"[,;\s]+", expr.strip()):
        if not raw:
            continue
        m = re.fullmatch(r"([0-9]{1,12})(?:-([0-9]{1,12}))?", raw)  # ASCII digits, bounded: int() stays cheap
        if not m:
            raise InvalidInput(f"skip expression {expr!r}: {raw!r} is not a number or a range like 92-100")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if lo < 1:
            raise InvalidInput(f"skip expression {expr!r}: segments are numbered from 1")
        if hi < lo:
            raise InvalidInput(f"skip expression {expr!r}: range {raw!r} ends before it starts")
        ranges.append((lo, hi))
    return SkipRule(tuple(ranges))
