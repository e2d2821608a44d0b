"""MPEG-DASH manifests (MPD) as plain data: parsing, inheritance, BaseURL resolution.

`parse_mpd(text, url)` turns the XML into frozen dataclasses: Periods, each
with its Representations (the AdaptationSet's attributes folded in), every
Representation carrying its absolute base URL (MPD → Period → AdaptationSet →
Representation BaseURL, each resolved against the one above) and its one
segment addressing scheme (SegmentTemplate, SegmentList or SegmentBase, with the
attributes it inherits from the Period and AdaptationSet levels merged in).
Expanding that into segments is `segments`; DRM signalling is `protection`.

The XML comes from a remote server: a document with a DTD (entity tricks) is
refused before parsing, and xml.etree resolves no external entities.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

from core.downloaders.hls import ByteRange
from core.errors import DownloadError

MANIFEST_MAX_ELEMENTS = 2_000_000  # far beyond any real MPD (a 24 h SegmentList is ~90k)


# ---- the data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One <S>: `r` repeats (r=-1: until the next entry's t, or the period's end)."""

    t: int | None
    d: int
    r: int = 0


@dataclass(frozen=True, slots=True)
class Initialization:
    url: str | None  # None: the representation's own URL (a SegmentBase, or an Initialization range only)
    byterange: ByteRange | None


@dataclass(frozen=True, slots=True)
class SegmentTemplate:
    media: str
    initialization: str | None
    timescale: int = 1
    duration: int | None = None
    start_number: int = 1
    end_number: int | None = None
    presentation_time_offset: int = 0
    timeline: tuple[TimelineEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class SegmentUrl:
    media: str | None  # None: the representation's own URL
    byterange: ByteRange | None


@dataclass(frozen=True, slots=True)
class SegmentList:
    urls: tuple[SegmentUrl, ...]
    initialization: Initialization | None
    timescale: int = 1
    duration: int | None = None
    start_number: int = 1
    timeline: tuple[TimelineEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class SegmentBase:
    """One file per representation; its sidx (at index_range) lists the segments as byte ranges."""

    index_range: ByteRange | None
    initialization: Initialization | None
    timescale: int = 1


Addressing = SegmentTemplate | SegmentList | SegmentBase


@dataclass(frozen=True, slots=True)
class Representation:
    id: str
    kind: str  # "video", "audio", "text" or "other"
    bandwidth: int
    width: int | None
    height: int | None
    codecs: str | None
    mime_type: str | None
    language: str | None
    base_url: str  # absolute
    addressing: Addressing | None
    protection: tuple[str, ...]  # ContentProtection schemeIdUri[=value], lowercased
    main: bool = False  # its AdaptationSet has <Role value="main">
    adaptation: int = 0  # index of its AdaptationSet in the Period

    @property
    def key(self) -> str:
        """Unique within a Period (ids are only unique within one, and often not even that)."""
        return f"{self.adaptation}/{self.id}"


@dataclass(frozen=True, slots=True)
class Period:
    id: str | None
    start: float  # seconds from the presentation's start
    duration: float | None
    representations: tuple[Representation, ...]


@dataclass(frozen=True, slots=True)
class Manifest:
    url: str  # where it was fetched from (after redirects)
    dynamic: bool
    periods: tuple[Period, ...]
    duration: float | None  # mediaPresentationDuration
    availability_start: float | None  # epoch seconds
    time_shift_buffer: float | None
    minimum_update_period: float | None
    max_segment_duration: float | None
    location: str | None  # <Location>: where to fetch the next version of a live manifest


# ---- small parsers ---------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNITS = {"y": 365 * 86400.0, "mo": 30 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "mi": 60.0, "s": 1.0}


def parse_duration(text: str | None) -> float | None:
    """An xs:duration ('PT6.0S', 'P1DT2H', 'PT1M30.5S') in seconds; None if absent."""
    if text is None or not text.strip():
        return None
    m = _DURATION.match(text.strip())
    if m is None or text.strip() in ("P", "PT"):
        raise DownloadError(f"bad duration {text!r} in the manifest")
    return sum(float(v) * _UNITS[k] for k, v in m.groupdict().items() if v)


def parse_datetime(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DownloadError(f"bad date-time {text!r} in the manifest") from None
    if stamp.tzinfo is None:  # ISO 23009-1: a time without a zone is UTC
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def parse_range(text: str | None, what: str) -> ByteRange | None:
    """'first-last' (inclusive, as in a Range header) → ByteRange."""
    if text is None or not text.strip():
        return None
    first, sep, last = text.strip().partition("-")
    if not sep or not first.isdigit() or not last.isdigit() or int(last) < int(first):
        raise DownloadError(f"bad byte range {text!r} on {what}")
    return ByteRange(int(first), int(last) - int(first) + 1)


def _int(value: str | None, what: str, default: int | None = None) -> int | None:
    if value is None or not value.strip():
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise DownloadError(f"bad number {value!r} for {what} in the manifest") from None


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if _tag(c) == name]


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    found = _children(el, name)
    return found[0] if found else None


def _base(url: str, el: ET.Element) -> str:
    """The element's first BaseURL resolved against `url` (the level above's), else `url`."""
    base = _child(el, "BaseURL")
    text = (base.text or "").strip() if base is not None else ""
    return urljoin(url, text) if text else url


# ---- segment addressing, with inheritance ---------------------------------------------


def _merged(levels: list[ET.Element | None], name: str) -> tuple[dict[str, str], list[ET.Element]] | None:
    """The attributes of the `name` element over the levels (outermost first, inner wins) and the elements."""
    found = [c for level in levels if (c := _child(level, name)) is not None]
    if not found:
        return None
    attrs: dict[str, str] = {}
    for el in found:
        attrs.update({k.rsplit("}", 1)[-1]: v for k, v in el.attrib.items()})
    return attrs, found


def _innermost(found: list[ET.Element], name: str) -> ET.Element | None:
    for el in reversed(found):
        child = _child(el, name)
        if child is not None:
            return child
    return None


def _timeline(found: list[ET.Element]) -> tuple[TimelineEntry, ...] | None:
    timeline = _innermost(found, "SegmentTimeline")
    if timeline is None:
        return None
    entries = []
    for s in _children(timeline, "S"):
        d = _int(s.get("d"), "S@d")
        if d is None or d <= 0:
            raise DownloadError("a SegmentTimeline <S> without a positive duration (d)")
        entries.append(TimelineEntry(_int(s.get("t"), "S@t"), d, _int(s.get("r"), "S@r", 0) or 0))
    return tuple(entries)


def _initialization(found: list[ET.Element], attrs: dict[str, str], what: str) -> Initialization | None:
    init = _innermost(found, "Initialization")
    if init is not None:
        return Initialization(init.get("sourceURL"), parse_range(init.get("range"), f"{what} Initialization"))
    if "initialization" in attrs:  # SegmentBase@initialization is not standard, but seen
        return Initialization(None, parse_range(attrs["initialization"], what))
    return None


def _addressing(levels: list[ET.Element | None], what: str) -> Addressing | None:
    if (merged := _merged(levels, "SegmentTemplate")) is not None:
        attrs, found = merged
        media = attrs.get("media")
        if not media:
            raise DownloadError(f"{what}: SegmentTemplate without a media template")
        return SegmentTemplate(
            media=media,
            initialization=attrs.get("initialization"),
            timescale=_int(attrs.get("timescale"), "timescale", 1) or 1,
            duration=_int(attrs.get("duration"), "duration"),
            start_number=_int(attrs.get("startNumber"), "startNumber", 1) or 0,
            end_number=_int(attrs.get("endNumber"), "endNumber"),
            presentation_time_offset=_int(attrs.get("presentationTimeOffset"), "presentationTimeOffset", 0) or 0,
            timeline=_timeline(found),
        )
    if (merged := _merged(levels, "SegmentList")) is not None:
        attrs, found = merged
        urls_from = next((el for el in reversed(found) if _child(el, "SegmentURL") is not None), None)
        urls = tuple(
            SegmentUrl(u.get("media") or None, parse_range(u.get("mediaRange"), f"{what} SegmentURL"))
            for u in _children(urls_from, "SegmentURL")
        )
        return SegmentList(
            urls=urls,
            initialization=_initialization(found, attrs, what),
            timescale=_int(attrs.get("timescale"), "timescale", 1) or 1,
            duration=_int(attrs.get("duration"), "duration"),
            start_number=_int(attrs.get("startNumber"), "startNumber", 1) or 0,
            timeline=_timeline(found),
        )
    if (merged := _merged(levels, "SegmentBase")) is not None:
        attrs, found = merged
        return SegmentBase(
            index_range=parse_range(attrs.get("indexRange"), f"{what} SegmentBase@indexRange"),
            initialization=_initialization(found, attrs, what),
            timescale=_int(attrs.get("timescale"), "timescale", 1) or 1,
        )
    return None


# ---- the document ------------------------------------------------------------------------


def _kind(rep: ET.Element, aset: ET.Element) -> str:
    content = (aset.get("contentType") or rep.get("contentType") or "").lower()
    mime = (rep.get("mimeType") or aset.get("mimeType") or "").lower()
    for kind in ("video", "audio", "text"):
        if content == kind or mime.startswith(kind + "/"):
            return kind
    if mime.startswith("application/ttml") or "wvtt" in (rep.get("codecs") or "") or mime == "application/mp4":
        return "text"
    if rep.get("width") or rep.get("height") or aset.get("maxWidth"):
        return "video"
    return "other"


def _protection(*levels: ET.Element) -> tuple[str, ...]:
    schemes = []
    for level in levels:
        for cp in _children(level, "ContentProtection"):
            scheme = (cp.get("schemeIdUri") or "").strip().lower()
            value = (cp.get("value") or "").strip().lower()
            schemes.append(f"{scheme}={value}" if value else scheme)
    return tuple(schemes)


def _representations(period: ET.Element, base: str) -> tuple[Representation, ...]:
    reps: list[Representation] = []
    for index, aset in enumerate(_children(period, "AdaptationSet")):
        aset_base = _base(base, aset)
        main = any((role.get("value") or "").lower() == "main" for role in _children(aset, "Role"))
        for rep in _children(aset, "Representation"):
            rid = rep.get("id") or str(len(reps))
            what = f"representation {rid}"
            reps.append(Representation(
                id=rid,
                kind=_kind(rep, aset),
                bandwidth=_int(rep.get("bandwidth"), "bandwidth", 0) or 0,
                width=_int(rep.get("width") or aset.get("width"), "width"),
                height=_int(rep.get("height") or aset.get("height"), "height"),
                codecs=rep.get("codecs") or aset.get("codecs"),
                mime_type=rep.get("mimeType") or aset.get("mimeType"),
                language=aset.get("lang") or rep.get("lang"),
                base_url=_base(aset_base, rep),
                addressing=_addressing([period, aset, rep], what),
                protection=_protection(aset, rep),
                main=main,
                adaptation=index,
            ))
    return tuple(reps)


def parse_mpd(text: str, url: str) -> Manifest:
    """The manifest at `url` (its final URL: relative BaseURLs resolve against it)."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DownloadError("the manifest has a DTD (<!DOCTYPE>): refused")
    try:
        root = ET.fromstring(text)  # no DTD: see above
    except ET.ParseError as exc:
        raise DownloadError(f"cannot parse the DASH manifest: {exc}") from None
    if _tag(root) != "MPD":
        raise DownloadError(f"not a DASH manifest (the root element is <{_tag(root)}>, not <MPD>)")
    if sum(1 for _ in root.iter()) > MANIFEST_MAX_ELEMENTS:
        raise DownloadError("the DASH manifest is too large")
    base = _base(url, root)
    dynamic = (root.get("type") or "static").strip().lower() == "dynamic"
    total = parse_duration(root.get("mediaPresentationDuration"))
    periods: list[Period] = []
    elements = _children(root, "Period")
    for i, el in enumerate(elements):
        start = parse_duration(el.get("start"))
        if start is None:  # ISO 23009-1 5.3.2.1: follows the previous Period (the first starts at 0)
            start = periods[-1].start + (periods[-1].duration or 0.0) if periods else 0.0
        periods.append(Period(el.get("id"), start, parse_duration(el.get("duration")),
                              _representations(el, _base(base, el))))
        if i > 0 and periods[-2].duration is None:  # the previous one lasts until this one starts
            prev = periods[-2]
            periods[-2] = Period(prev.id, prev.start, max(0.0, start - prev.start), prev.representations)
    if periods and periods[-1].duration is None and total is not None:
        last = periods[-1]
        periods[-1] = Period(last.id, last.start, max(0.0, total - last.start), last.representations)
    if not periods:
        raise DownloadError("the DASH manifest has no Period")
    location = _child(root, "Location")
    return Manifest(
        url=url,
        dynamic=dynamic,
        periods=tuple(periods),
        duration=total,
        availability_start=parse_datetime(root.get("availabilityStartTime")),
        time_shift_buffer=parse_duration(root.get("timeShiftBufferDepth")),
        minimum_update_period=parse_duration(root.get("minimumUpdatePeriod")),
        max_segment_duration=parse_duration(root.get("maxSegmentDuration")),
        location=urljoin(url, location.text.strip()) if location is not None and location.text else None,
    )
