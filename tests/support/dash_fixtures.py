"""DASH test media made at test time with the bundled ffmpeg's `-f dash` muxer.

All tiny (hls_fixtures' 160x120 testsrc at 10 fps and 22 kHz sine, 1 s segments,
SECONDS long), made once per test module in parallel (about a second):

- timeline/: SegmentTemplate + SegmentTimeline (ffmpeg's default), two video
  representations (160x120 and 96x72) and one audio;
- list/: SegmentList (`-use_template 0 -use_timeline 0`), one video, one audio;
- base/: one file per representation with a global sidx (`-single_file 1
  -global_sidx 1`); manifest.mpd rewritten to SegmentBase@indexRange (found by
  walking the file's boxes), ffmpeg's own SegmentList with mediaRanges kept as
  ranges.mpd to check the sidx reading against;
- drm/: the timeline manifest with Widevine ContentProtection on its video.

`LiveMpd` publishes the timeline fixture's segments as a dynamic manifest
growing on a timer (the file server re-reads files per request), then static.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.hls_fixtures import ENC_A, ENC_V, _audio, _video, ffmpeg

SECONDS = 6
WIDEVINE = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"


@dataclass(frozen=True)
class DashMedia:
    root: Path

    def manifest(self, flavour: str) -> Path:
        return self.root / flavour / "manifest.mpd"

    def segments(self, flavour: str, stream: int) -> list[str]:
        """Media segment file names of a template/list fixture's stream, in order."""
        return sorted(p.name for p in (self.root / flavour).glob(f"chunk-stream{stream}-*.m4s"))


def _dash(folder: Path, *extra: str) -> list[str]:
    return ["-f", "dash", "-seg_duration", "1", *extra, str(folder / "manifest.mpd")]


def _timeline(folder: Path) -> None:
    ffmpeg(*_video(SECONDS), *_audio(SECONDS), "-map", "0:v", "-map", "0:v", "-map", "1:a", *ENC_V, *ENC_A,
           "-s:v:1", "96x72", "-b:v:1", "30k", *_dash(folder))


def _list(folder: Path) -> None:
    ffmpeg(*_video(SECONDS), *_audio(SECONDS), "-map", "0:v", "-map", "1:a", *ENC_V, *ENC_A,
           *_dash(folder, "-use_template", "0", "-use_timeline", "0"))


def boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of an MP4 file's top-level boxes."""
    out, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        out.append((offset, size, kind))
        offset += size
    return out


def _base(folder: Path) -> None:
    ffmpeg(*_video(SECONDS), *_audio(SECONDS), "-map", "0:v", "-map", "1:a", *ENC_V, *ENC_A,
           *_dash(folder, "-single_file", "1", "-global_sidx", "1"))
    manifest = folder / "manifest.mpd"
    text = manifest.read_text()
    (folder / "ranges.mpd").write_text(text)

    def segment_base(m: re.Match[str]) -> str:
        data = (folder / m.group(1)).read_bytes()
        sidx = next((off, size) for off, size, kind in boxes(data) if kind == b"sidx")
        return (f"<BaseURL>{m.group(1)}</BaseURL>\n<SegmentBase indexRange=\"{sidx[0]}-{sidx[0] + sidx[1] - 1}\">"
                f"<Initialization range=\"0-{sidx[0] - 1}\" /></SegmentBase>")

    text = re.sub(r"<BaseURL>([^<]+)</BaseURL>\s*<SegmentList.*?</SegmentList>", segment_base, text, flags=re.S)
    assert text.count("<SegmentBase") == 2, text
    manifest.write_text(text)


def _drm(root: Path) -> None:
    text = (root / "timeline" / "manifest.mpd").read_text()
    protection = (f'<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc" />'
                  f'<ContentProtection schemeIdUri="{WIDEVINE}"><pssh>AAAA</pssh></ContentProtection>')
    text = text.replace('<Representation id="0"', protection + '<Representation id="0"', 1)
    text = text.replace('initialization="init-', 'initialization="../timeline/init-')
    text = text.replace('media="chunk-', 'media="../timeline/chunk-')
    (root / "drm").mkdir(parents=True, exist_ok=True)
    (root / "drm" / "manifest.mpd").write_text(text)


def build_dash(root: Path) -> DashMedia:
    makers = {"timeline": _timeline, "list": _list, "base": _base}
    for name in makers:
        (root / name).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(len(makers)) as pool:
        for job in [pool.submit(make, root / name) for name, make in makers.items()]:
            job.result()
    _drm(root)
    return DashMedia(root)


@dataclass
class LiveMpd:
    """The timeline fixture's first stream pair as a live (dynamic) manifest that grows by one segment every
    `interval` seconds, then turns static. Segments are referenced through `segment_base` (a URL path)."""

    media: DashMedia
    folder: Path
    segment_base: str  # e.g. "/media/timeline/"
    interval: float = 0.6
    start_with: int = 2
    published: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def manifest(self) -> Path:
        return self.folder / "live.mpd"

    def write(self, upto: int, ended: bool) -> None:
        """Publish segments 1..upto (each stream's timeline cut after `upto` entries)."""
        text = self.media.manifest("timeline").read_text()
        text = text.replace('type="static"', 'type="static"' if ended else
                            'type="dynamic" availabilityStartTime="2020-01-01T00:00:00Z" '
                            'minimumUpdatePeriod="PT0.5S" timeShiftBufferDepth="PT30S"')
        if not ended:
            text = re.sub(r'\s*mediaPresentationDuration="[^"]*"', "", text)

        def cut(m: re.Match[str]) -> str:
            entries: list[str] = []
            for s in re.finditer(r"<S ([^/]*)/>", m.group(1)):
                attrs = dict(re.findall(r'(\w+)="([^"]*)"', s.group(1)))
                repeats = int(attrs.pop("r", "0")) + 1
                for _ in range(repeats):
                    entries.append(" ".join(f'{k}="{v}"' for k, v in attrs.items()))
                    attrs.pop("t", None)
            return "<SegmentTimeline>" + "".join(f"<S {e} />" for e in entries[:upto]) + "</SegmentTimeline>"

        text = re.sub(r"<SegmentTimeline>(.*?)</SegmentTimeline>", cut, text, flags=re.S)
        text = text.replace("<Period", f"<BaseURL>{self.segment_base}</BaseURL><Period", 1)
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.manifest)
        self.published.append(upto)

    def _run(self) -> None:
        upto = self.start_with
        while not self._stop.wait(self.interval):
            upto += 1
            if upto >= SECONDS:
                self.write(SECONDS, ended=True)
                return
            self.write(upto, ended=False)

    def start(self) -> LiveMpd:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write(self.start_with, ended=False)
        self._thread = threading.Thread(target=self._run, name="live-mpd", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
