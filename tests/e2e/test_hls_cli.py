"""`fetchdeck get URL.m3u8` as a user runs it: every fixture kind, and kill -9 then resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fileserver import FileServer
from tests.support.hls_fixtures import HlsMedia, LiveWindow, build_media, decode_errors, probe, segments_of


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> HlsMedia:
    return build_media(tmp_path_factory.mktemp("hls-cli-media"))


@pytest.fixture
def server(media: HlsMedia) -> Iterator[FileServer]:
    with FileServer() as srv:
        srv.add_dir("/media", media.root)
        yield srv


def get_cmd(url: str, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", "get", url, "--download-dir", str(tmp_path / "dl"),
            "--data-dir", str(tmp_path / "data"), *extra]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def run_get(url: str, tmp_path: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(get_cmd(url, tmp_path, *extra), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env())


@pytest.mark.parametrize(
    ("fixture", "duration", "width"),
    [("vod", 4.0, 160), ("aes", 4.0, 160), ("fmp4", 4.0, 160), ("byterange", 4.0, 160), ("master", 3.0, 320)],
)
def test_get_with_a_name(
    tmp_path: Path, server: FileServer, media: HlsMedia, fixture: str, duration: float, width: int
) -> None:
    playlist: Path = getattr(media, fixture)
    result = run_get(server.url("/media/" + media.rel(playlist)), tmp_path, "--name", f"N {fixture}")
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out == tmp_path / "dl" / f"N {fixture}.mp4"
    info = probe(out)
    assert abs(info.duration - duration) < 0.4 and f" {width}x" in info.video[0] and len(info.audio) == 1
    assert decode_errors(out) == ""
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_get_records_a_live_stream_until_it_ends(tmp_path: Path, server: FileServer, media: HlsMedia) -> None:
    # A window as long as the stream: the process start-up must not cost it segments.
    window = LiveWindow(source=media.live, folder=tmp_path / "live", segment_base="/media/live/", interval=0.7,
                        window=6)
    server.add_dir("/live", window.folder)
    window.start()
    try:
        result = run_get(server.url("/live/live.m3u8"), tmp_path, "--name", "show")
    finally:
        window.stop()
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out.name == "show.mp4" and abs(probe(out).duration - 6.0) < 0.5


def test_kill_9_then_resume_refetches_no_finished_segment(
    tmp_path: Path, server: FileServer, media: HlsMedia
) -> None:
    segs = [uri for _, uri in segments_of(media.vod)]
    for uri in segs:
        server.faults.throttle(f"/media/vod/{uri}", 40_000)  # ~0.4 s per segment
    url = server.url("/media/" + media.rel(media.vod))
    proc = subprocess.Popen(get_cmd(url, tmp_path, "--name", "resumed"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env(FETCHDECK_DOWNLOAD_SEGMENT_THREADS="1"))
    try:
        deadline = time.monotonic() + 30
        # One segment at a time: once segment 3 is asked for, segments 1 and 2 are stored.
        while server.stats[f"/media/vod/{segs[2]}"].requests == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the download never reached segment 3"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert not (tmp_path / "dl" / "resumed.mp4").exists()
    for uri in segs:
        server.faults.throttle(f"/media/vod/{uri}", None)
    result = run_get(url, tmp_path, "--name", "resumed")
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip().splitlines()[-1])
    assert out == tmp_path / "dl" / "resumed.mp4"
    assert abs(probe(out).duration - 4.0) < 0.4 and decode_errors(out) == ""
    for uri in segs[:2]:
        assert server.stats[f"/media/vod/{uri}"].requests == 1, uri
    assert sorted(p.name for p in out.parent.iterdir()) == ["resumed.mp4"]
