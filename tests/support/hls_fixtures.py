"""HLS test media made at test time with the bundled ffmpeg, and ways to check outputs.

Everything is tiny (160x120 testsrc at 10 fps, 22 kHz mono sine, 1 s
segments), so the whole set takes a couple of seconds to make. Serve the
folders with tests.support.fileserver.FileServer.add_dir; `LiveWindow`
rewrites a sliding-window playlist on disk on a timer (the file server
re-reads files per request), ending with EXT-X-ENDLIST.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
KEY = bytes(range(16))  # the AES-128 fixture keys
KEY2 = bytes(range(100, 116))
AES_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
AES_FIRST_SEQ = 5


def ffmpeg(*args: str, timeout: float = 60) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _video(seconds: float, size: str = "160x120") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds}"]


def _audio(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=22050:duration={seconds}"]


ENC_V = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-keyint_min", "10",
         "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
ENC_A = ["-c:a", "aac", "-b:a", "32k", "-ac", "1"]


def _hls(folder: Path, *extra: str, playlist: str = "index.m3u8", pattern: str = "seg_%03d.ts") -> list[str]:
    return ["-f", "hls", "-hls_time", "1", "-hls_list_size", "0", "-hls_playlist_type", "vod", *extra,
            "-hls_segment_filename", str(folder / pattern), str(folder / playlist)]


def make_vod(folder: Path, seconds: float = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ffmpeg(*_video(seconds), *_audio(seconds), *ENC_V, *ENC_A, *_hls(folder))
    return folder / "index.m3u8"


def _encrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    plain = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(plain) + encryptor.finalize()


def make_aes(folder: Path, seconds: float = 4) -> Path:
    """AES-128 with a key rotation: the first half without an IV attribute (each
    segment's IV is its media sequence number, starting at 5 here), the second
    half under a second key with an explicit IV."""
    playlist = make_vod(folder, seconds)
    (folder / "k1.key").write_bytes(KEY)
    (folder / "k2.key").write_bytes(KEY2)
    segs = segments_of(playlist)
    half = len(segs) // 2
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{AES_FIRST_SEQ}",
             "#EXT-X-PLAYLIST-TYPE:VOD", '#EXT-X-KEY:METHOD=AES-128,URI="k1.key"']
    for i, (duration, uri) in enumerate(segs):
        seg = folder / uri
        if i < half:
            seg.write_bytes(_encrypt(seg.read_bytes(), KEY, (AES_FIRST_SEQ + i).to_bytes(16, "big")))
        else:
            if i == half:
                lines.append(f'#EXT-X-KEY:METHOD=AES-128,URI="k2.key",IV=0x{AES_IV.hex()}')
            seg.write_bytes(_encrypt(seg.read_bytes(), KEY2, AES_IV))
        lines += [f"#EXTINF:{duration:.6f},", uri]
    lines.append("#EXT-X-ENDLIST")
    playlist.write_text("\n".join(lines) + "\n")
    return playlist


def make_fmp4(folder: Path, seconds: float = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ffmpeg(*_video(seconds), *_audio(seconds), *ENC_V, *ENC_A,
           *_hls(folder, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4", pattern="seg_%03d.m4s"))
    return folder / "index.m3u8"


def make_byterange(folder: Path, seconds: float = 4) -> Path:
    """One media file, segments addressed by EXT-X-BYTERANGE."""
    folder.mkdir(parents=True, exist_ok=True)
    ffmpeg(*_video(seconds), *_audio(seconds), *ENC_V, *ENC_A,
           *_hls(folder, "-hls_flags", "single_file", pattern="all.ts"))
    return folder / "index.m3u8"


MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=150000,RESOLUTION=160x120,CODECS="avc1.42c00c,mp4a.40.2",AUDIO="aud"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x240,CODECS="avc1.42c00d,mp4a.40.2",AUDIO="aud"
high/index.m3u8
"""


def make_master(folder: Path, seconds: float = 3) -> Path:
    """Two video-only variants (120p, 240p) sharing one separate audio rendition."""
    jobs = [
        (folder / "low", [*_video(seconds, "160x120"), *ENC_V, "-an"]),
        (folder / "high", [*_video(seconds, "320x240"), *ENC_V, "-an"]),
        (folder / "audio", [*_audio(seconds), *ENC_A, "-vn"]),
    ]
    for sub, args in jobs:
        sub.mkdir(parents=True, exist_ok=True)
        ffmpeg(*args, *_hls(sub))
    (folder / "master.m3u8").write_text(MASTER)
    return folder / "master.m3u8"


@dataclass(frozen=True)
class HlsMedia:
    root: Path
    vod: Path  # each: the playlist file
    aes: Path
    fmp4: Path
    byterange: Path
    master: Path
    live: Path  # a VOD used as the source of LiveWindow

    def rel(self, playlist: Path) -> str:
        return playlist.relative_to(self.root).as_posix()


def build_media(root: Path) -> HlsMedia:
    """Make every fixture (two ffmpeg runs at a time)."""
    makers = {
        "vod": (make_vod, "vod"), "aes": (make_aes, "aes"), "fmp4": (make_fmp4, "fmp4"),
        "byterange": (make_byterange, "range"), "master": (make_master, "master"),
        "live": (lambda f: make_vod(f, seconds=6), "live"),
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(fn, root / sub) for name, (fn, sub) in makers.items()}
        paths = {name: f.result() for name, f in futures.items()}
    return HlsMedia(root=root, **paths)


def segments_of(playlist: Path) -> list[tuple[float, str]]:
    """(duration, uri) pairs of a simple media playlist."""
    out: list[tuple[float, str]] = []
    duration = 0.0
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            out.append((duration, line))
    return out


@dataclass
class LiveWindow:
    """A sliding-window live playlist rewritten every `interval` seconds, then ended.

    Segments are referenced by absolute path (`segment_base` + name), so the
    playlist can live in its own folder. Step k lists segments up to k (the
    last `window` of them) with the matching EXT-X-MEDIA-SEQUENCE; after the
    last segment the playlist gets EXT-X-ENDLIST.
    """

    source: Path  # a VOD playlist whose segments are published one by one
    folder: Path  # where live.m3u8 is written
    segment_base: str  # URL path prefix of the source segments, e.g. "/media/live/"
    window: int = 3
    interval: float = 1.0
    start_with: int = 2
    published: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def playlist(self) -> Path:
        return self.folder / "live.m3u8"

    def write(self, upto: int, ended: bool) -> None:
        segs = segments_of(self.source)
        first = max(0, upto - self.window + 1)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for duration, uri in segs[first : upto + 1]:
            lines += [f"#EXTINF:{duration:.3f},", self.segment_base + uri]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        tmp = self.playlist.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.playlist)
        self.published.append(upto)

    def _run(self) -> None:
        total = len(segments_of(self.source))
        upto = min(self.start_with, total - 1)
        while not self._stop.wait(self.interval):
            upto += 1
            if upto >= total - 1:
                self.write(total - 1, ended=True)
                return
            self.write(upto, ended=False)

    def start(self) -> LiveWindow:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write(min(self.start_with, len(segments_of(self.source)) - 1), ended=False)
        self._thread = threading.Thread(target=self._run, name="live-window", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass(frozen=True)
class Probe:
    duration: float
    video: list[str]
    audio: list[str]
    text: str


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


def probe(path: Path) -> Probe:
    """What ffmpeg says about a file: duration and stream descriptions."""
    result = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    text = result.stderr
    m = _DURATION.search(text)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else 0.0
    streams = [line.strip() for line in text.splitlines() if line.strip().startswith("Stream #")]
    return Probe(duration, [s for s in streams if "Video:" in s], [s for s in streams if "Audio:" in s], text)


def video_frames(path: Path) -> int:
    """How many video frames the file holds (a remux to nowhere, counted by ffmpeg)."""
    result = subprocess.run([FFMPEG, "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    counts = re.findall(r"frame=\s*(\d+)", result.stderr)
    return int(counts[-1]) if counts else 0


def decode_errors(path: Path) -> str:
    """Fully decode the file; whatever ffmpeg complains about (empty = clean)."""
    result = subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return result.stderr.strip() + ("" if result.returncode == 0 else f"\nexit {result.returncode}")


def wait_for(predicate: object, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False
