"""`fetchdeck get URL --type ytdlp [--audio-only] [--quality Q]` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fileserver import FileServer
from tests.support.media_fixtures import MediaSet, get_media, probe


@pytest.fixture(scope="module")
def media() -> MediaSet:
    return get_media()


@pytest.fixture
def server(media: MediaSet) -> Iterator[FileServer]:
    with FileServer() as srv:
        srv.add_dir("/m", media.dir)
        yield srv


def run_get(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tui.cli", "get", url, "--type", "ytdlp", "--download-dir", str(tmp_path / "dl"),
           "--data-dir", str(tmp_path / "data"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)


def test_get_audio_only(tmp_path: Path, server: FileServer) -> None:
    result = run_get(server.url("/m/v720.mp4"), tmp_path, "--audio-only")
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    assert out == tmp_path / "dl" / "v720.m4a"
    assert [s.kind for s in probe(out)] == ["Audio"]


def test_get_quality(tmp_path: Path, server: FileServer) -> None:
    result = run_get(server.url("/m/master.m3u8"), tmp_path, "--quality", "720p")
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    assert out == tmp_path / "dl" / "master.mp4"
    assert [s.height for s in probe(out) if s.kind == "Video"] == [720]
    assert not [p for p in server.stats.paths() if p.startswith("/m/hls360/seg")]
