"""Tiny real media for yt-dlp tests, made once per test process with the bundled ffmpeg.

    media = get_media()
    url = server.add_dir("/m", media.dir)          # FileServer: Range, throttling, stats
    ... url + "master.m3u8", url + "page.html" ...

Files (3 s, 15 fps, a 440 Hz tone; keyframe every second):
    v360.mp4, v720.mp4     H.264 + AAC at 640x360 and 1280x720
    v360.mkv               the 360p streams in Matroska (for the mp4 post-processing)
    long.mp4               v720.mp4 looped to 60 s (3 MB): slow to re-encode
    hls360/, hls720/       one HLS rendition each (3 MPEG-TS segments)
    master.m3u8            master playlist over both renditions
    split.m3u8             video-only renditions hlsv360/, hlsv720/ + an audio group hlsa/ (merged by yt-dlp)
    page.html              one <video> with two <source res=...> (360, 720)
    two.html               two <video> elements: a playlist of two entries
    empty.html             a page without media (unsupported)
"""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

RENDITIONS = {360: (640, 360), 720: (1280, 720)}


def ffmpeg_exe() -> str:
    """The imageio-ffmpeg binary (never the system one: fresh machines have none)."""
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class MediaSet:
    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def bytes(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


def _build(root: Path) -> MediaSet:
    for height, (w, h) in RENDITIONS.items():
        mp4 = root / f"v{height}.mp4"
        _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate=15:duration=3",
                "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "64k", "-shortest", str(mp4))
        variant = root / f"hls{height}"
        variant.mkdir()
        _ffmpeg("-i", str(mp4), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
                "-hls_segment_filename", str(variant / "seg%d.ts"), str(variant / "index.m3u8"))
        split = root / f"hlsv{height}"  # video only, for the master with a separate audio group
        split.mkdir()
        _ffmpeg("-i", str(mp4), "-an", "-c:v", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
                "-hls_segment_filename", str(split / "seg%d.ts"), str(split / "index.m3u8"))
    (root / "hlsa").mkdir()
    _ffmpeg("-i", str(root / "v360.mp4"), "-vn", "-c:a", "copy", "-f", "hls", "-hls_time", "1",
            "-hls_playlist_type", "vod", "-hls_segment_filename", str(root / "hlsa" / "seg%d.ts"),
            str(root / "hlsa" / "index.m3u8"))
    _ffmpeg("-i", str(root / "v360.mp4"), "-c", "copy", str(root / "v360.mkv"))
    _ffmpeg("-stream_loop", "19", "-i", str(root / "v720.mp4"), "-c", "copy", str(root / "long.mp4"))
    (root / "split.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,'
        'URI="hlsa/index.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=640x360,CODECS="avc1.42c01e,mp4a.40.2",AUDIO="aud"\n'
        "hlsv360/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"\n'
        "hlsv720/index.m3u8\n"
    )
    (root / "master.m3u8").write_text(
        "#EXTM3U\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=640x360,CODECS="avc1.42c01e,mp4a.40.2"\n'
        "hls360/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"\n'
        "hls720/index.m3u8\n"
    )
    (root / "page.html").write_text(
        "<html><head><title>Sample Clip</title></head><body>\n"
        '<video controls>\n  <source src="v360.mp4" type="video/mp4" res="360" label="360p">\n'
        '  <source src="v720.mp4" type="video/mp4" res="720" label="720p">\n</video>\n</body></html>\n'
    )
    (root / "two.html").write_text(
        "<html><head><title>Two Clips</title></head><body>\n"
        '<video controls><source src="v360.mp4" type="video/mp4"></video>\n'
        '<video controls><source src="v720.mp4" type="video/mp4"></video>\n</body></html>\n'
    )
    (root / "empty.html").write_text("<html><head><title>Nothing</title></head><body><p>hi</p></body></html>\n")
    return MediaSet(root)


@functools.cache
def get_media() -> MediaSet:
    """Build the media set once per process (about a second), removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="fetchdeck-media-"))
    atexit.register(shutil.rmtree, root, True)
    return _build(root)


@dataclass(frozen=True)
class Stream:
    kind: str  # "Video" | "Audio"
    codec: str
    height: int | None


_STREAM = re.compile(r"Stream #\d+:\d+[^:]*: (Video|Audio): (\w+)([^\n]*)")
_SIZE = re.compile(r", (\d{2,5})x(\d{2,5})")


def probe(path: Path) -> list[Stream]:
    """The streams ffmpeg reads from a file (ffmpeg only: no ffprobe needed)."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                         timeout=30)
    streams = []
    for kind, codec, rest in _STREAM.findall(out.stderr):
        size = _SIZE.search(rest) if kind == "Video" else None
        streams.append(Stream(kind, codec, int(size.group(2)) if size else None))
    if not streams:
        raise AssertionError(f"ffmpeg reads no streams from {path}:\n{out.stderr[-800:]}")
    return streams
